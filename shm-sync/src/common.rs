//! Methods every named object has.

/// `name`, `unlink`, `set_unlink_on_drop` and `Debug` for a named object type whose
/// `shared` field is a `Shared<_>`; `$make` is an expression creating one and `$open` the path of its `open` (for docs).
macro_rules! named_common {
    ($ty:ident $(<$g:ident>)?, $make:literal, $open:literal) => {
        impl$(<$g: bytemuck::Pod>)? $ty$(<$g>)? {
            /// The segment's name (without the leading `/`), to open it elsewhere.
            ///
            /// ```
            #[doc = concat!("let obj = shm_sync::", $make, "?;")]
            /// assert!(obj.name().starts_with("psm_"));
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn name(&self) -> &str {
                self.shared.object().segment().name().unwrap_or("<anonymous>")
            }

            /// Removes the name now (Python's `unlink`); processes that have the object
            /// open keep using it.
            ///
            /// ```
            #[doc = concat!("let obj = shm_sync::", $make, "?;")]
            /// obj.unlink()?;
            #[doc = concat!("assert!(shm_sync::", $open, "(obj.name()).is_err());")]
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn unlink(&self) -> Result<(), $crate::Error> {
                Ok(self.shared.object().segment().unlink()?)
            }

            /// Whether dropping this handle removes the name: `true` for the creator by
            /// default, `false` for handles from `open`.
            ///
            /// ```
            #[doc = concat!("let mut obj = shm_sync::", $make, "?;")]
            /// obj.set_unlink_on_drop(false);
            /// let name = obj.name().to_owned();
            /// drop(obj);
            /// shm_core::unlink(&name)?; // still there: remove it by hand
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn set_unlink_on_drop(&mut self, yes: bool) {
                self.shared.object_mut().segment_mut().set_unlink_on_drop(yes);
            }
        }

        impl$(<$g: bytemuck::Pod>)? std::fmt::Debug for $ty$(<$g>)? {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).field("name", &self.name()).finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use named_common;

/// Offset of data of alignment `align` after a primitive of `after` bytes.
pub(crate) const fn data_offset(after: usize, align: usize) -> usize {
    after.div_ceil(align) * align
}
