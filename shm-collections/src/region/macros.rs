//! The lifecycle every growable collection shares, as macros: `region_object!` (the
//! [`SharedObject`](shm_core::SharedObject) impl) and `growable_methods!` (the same
//! lifecycle as inherent methods).

/// Implements [`SharedObject`](shm_core::SharedObject) for a growable collection whose
/// `region` field is a [`Region`]: the control object is created with `limits`, checked
/// against `$spec` on open, and `unlink` removes the current data segment too.
macro_rules! region_object {
    (impl[$($gen:tt)*] $ty:ty, spec: $spec:expr, index: $index:expr, build: |$r:ident| $build:expr) => {
        impl<$($gen)*> shm_core::SharedObject for $ty {
            type Error = $crate::region::RegionError;
            type Init = $crate::region::Limits;

            fn layout() -> shm_core::Layout {
                shm_core::Layout::Header($spec)
            }

            fn payload_len(_: &$crate::region::Limits) -> $crate::region::RegionResult<usize> {
                Ok($crate::region::CTRL_LEN)
            }

            fn init_payload(
                object: &shm_core::Object,
                limits: $crate::region::Limits,
            ) -> $crate::region::RegionResult<()> {
                $crate::region::Region::init(object, &$spec, limits)
            }

            fn attach(object: shm_core::Object) -> $crate::region::RegionResult<Self> {
                let $r = $crate::region::Region::attach(object, &$spec, $index)?;
                Ok($build)
            }

            fn object(&self) -> &shm_core::Object {
                self.region.object()
            }

            fn object_mut(&mut self) -> &mut shm_core::Object {
                self.region.object_mut()
            }

            /// Removes the control object's name and the current data segment's.
            fn unlink(&self) -> $crate::region::RegionResult<()> {
                self.region.unlink_data()?;
                Ok(self.region.object().unlink()?)
            }
        }
    };
}

pub(crate) use region_object;

/// The [`SharedObject`](shm_core::SharedObject) lifecycle as inherent methods of a
/// growable collection (`object_methods!` of shm-core takes one generic parameter;
/// these types have up to two). `$make` creates one, `$path` names the type.
macro_rules! growable_methods {
    ($ty:ident<$($g:ident: $b:path),+>, $make:literal, $path:literal) => {
        impl<$($g: $b),+> $ty<$($g),+> {
            /// Creates the collection under a fresh random `psm_` name with the default
            /// [`Limits`](crate::Limits); the names (control and data segments) are
            /// removed when this handle drops (see `set_unlink_on_drop`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.name().unwrap().starts_with("psm_"));
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create() -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::create($crate::Limits::default())
            }

            /// Creates the collection under `name`; `AlreadyExists` if it is taken.
            ///
            /// ```
            #[doc = concat!("let name = format!(\"shm-doc-", stringify!($ty), "-{}\", std::process::id());")]
            #[doc = concat!("let obj = ", $path, "::create_named(&name)?;")]
            /// assert_eq!(obj.name(), Some(name.as_str()));
            #[doc = concat!("assert!(", $path, "::create_named(&name).is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create_named(name: &str) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::create_named(name, $crate::Limits::default())
            }

            /// Creates the collection with chosen segment options and limits.
            ///
            /// ```
            /// let options = shm_core::SegmentOptions::new();
            /// let limits = shm_collections::Limits { max_key: 64, max_value: 1024 };
            #[doc = concat!("let obj = ", $path, "::create_with(&options, limits)?;")]
            /// assert_eq!(obj.limits(), limits);
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create_with(
                options: &shm_core::SegmentOptions,
                limits: $crate::Limits,
            ) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::create_with(options, limits)
            }

            /// Opens the collection another process created, by name, checking its
            /// kind, layout version and types.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            #[doc = concat!("let again = ", $path, "::open(obj.name().unwrap())?;")]
            /// assert_eq!(again.name(), obj.name());
            #[doc = concat!("assert!(", $path, "::open(\"shm-doc-no-such-object\").is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn open(name: &str) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::open(name)
            }

            /// Opens the collection, waiting up to `wait` for it to be created.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            #[doc = concat!("let again = ", $path, "::open_timeout(obj.name().unwrap(), std::time::Duration::from_millis(50))?;")]
            /// assert_eq!(again.name(), obj.name());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn open_timeout(name: &str, wait: std::time::Duration) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::open_timeout(name, wait)
            }

            /// The control object's name (its data segments are `<name>.g<generation>`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.name().is_some());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn name(&self) -> Option<&str> {
                shm_core::SharedObject::object(self).name()
            }

            /// Removes the names (control object and current data segment) now;
            /// processes that have the collection open keep using it.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// obj.unlink()?;
            #[doc = concat!("assert!(", $path, "::open(obj.name().unwrap()).is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn unlink(&self) -> $crate::RegionResult<()> {
                <Self as shm_core::SharedObject>::unlink(self)
            }

            /// Whether dropping this handle removes the names (`true` for the creator).
            ///
            /// ```
            #[doc = concat!("let mut obj = ", $make, "?;")]
            /// obj.set_unlink_on_drop(false);
            /// let name = obj.name().unwrap().to_owned();
            /// drop(obj);
            #[doc = concat!("let again = ", $path, "::open(&name)?;")]
            /// again.unlink()?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn set_unlink_on_drop(&mut self, yes: bool) {
                <Self as shm_core::SharedObject>::set_unlink_on_drop(self, yes)
            }

            /// Hands the collection to a child process by name; the child takes it with
            /// `from_env`.
            ///
            /// ```no_run
            #[doc = concat!("let obj = ", $make, "?;")]
            /// let mut cmd = std::process::Command::new("my-worker");
            /// obj.share(&mut cmd, "MY_OBJECT")?.status()?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn share<'c>(
                &self,
                command: &'c mut std::process::Command,
                var: &str,
            ) -> $crate::RegionResult<&'c mut std::process::Command> {
                <Self as shm_core::SharedObject>::share(self, command, var)
            }

            /// Takes the collection a parent handed over with `share` under `var`.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// // SAFETY: no other thread reads the environment in this example.
            /// unsafe { std::env::set_var("SHM_DOC_GROWABLE", obj.name().unwrap()) };
            #[doc = concat!("let again = ", $path, "::from_env(\"SHM_DOC_GROWABLE\")?;")]
            /// assert_eq!(again.name(), obj.name());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn from_env(var: &str) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::from_env(var)
            }

            /// The control object underneath.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.object().info().is_some());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn object(&self) -> &shm_core::Object {
                shm_core::SharedObject::object(self)
            }

            /// How long this handle's writes (every call that changes the collection,
            /// and `salvage`) wait for the writer lock while another writer holds it:
            /// `None` (the default) waits as long as it takes, `Some(d)` gives up after
            /// `d` with [`RegionError::Lock`](crate::RegionError::Lock) whose source is
            /// [`RawError::Timeout`](shm_sync::RawError::Timeout). A holder in another
            /// PID namespace counts as alive, so without a patience such a wait can be
            /// forever. Reads take no lock (a snapshot that writers keep disturbing falls
            /// back to it, and then waits the same). The uncontended write costs the same
            /// either way.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// obj.set_patience(Some(std::time::Duration::from_secs(2)));
            /// assert_eq!(obj.patience(), Some(std::time::Duration::from_secs(2)));
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn set_patience(&self, patience: Option<std::time::Duration>) {
                self.region.set_patience(patience)
            }

            /// This handle's patience for the writer lock (see `set_patience`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert_eq!(obj.patience(), None);
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn patience(&self) -> Option<std::time::Duration> {
                self.region.patience()
            }

            /// The way out when a record is broken (its checksum or bounds fail, so
            /// growth and compaction stop with `Corrupted`): copies every intact record
            /// into a fresh data segment, publishes it and reports what was dropped.
            /// Reads and writes then work again. Waits for the writer lock (see
            /// `set_patience`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// let report = obj.salvage()?;
            /// assert!(report.dropped.is_empty());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn salvage(&self) -> $crate::RegionResult<$crate::region::SalvageReport> {
                self.region.salvage()
            }
        }

        impl<$($g: $b),+> std::fmt::Debug for $ty<$($g),+> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &shm_core::SharedObject::object(self).label())
                    .finish_non_exhaustive()
            }
        }
    };
}
