//! [`object_methods!`](crate::object_methods): the [`SharedObject`](crate::SharedObject)
//! methods as inherent methods of a type, so that users call `Event::open(name)` without
//! importing the trait, with one definition for every type of the workspace.

/// Adds the [`SharedObject`](crate::SharedObject) lifecycle as inherent methods
/// (`open`, `open_timeout`, `from_segment`, `anonymous`, `name`, `unlink`,
/// `set_unlink_on_drop`, `share`, `from_env`, `object`) and a `Debug` impl naming the
/// object; with a `create(args) => init, args: ", example"` clause also `create`,
/// `create_named` and `create_with` taking those arguments. `$make` is an expression
/// creating one (for the docs' examples), `$path` the type's path (for the examples, e.g. `"shm_sync::Mutex::<u32>"`).
///
/// ```
/// use shm_core::{Error, Kind, Layout, Object, ObjectSpec, SharedObject};
/// pub struct Flag(Object);
/// impl SharedObject for Flag {
///     type Error = Error;
///     type Init = ();
///     fn layout() -> Layout { Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start + 5, "Flag"), 1)) }
///     fn payload_len(_: &()) -> Result<usize, Error> { Ok(8) }
///     fn init_payload(_: &Object, _: ()) -> Result<(), Error> { Ok(()) }
///     fn attach(o: Object) -> Result<Self, Error> { Ok(Flag(o)) }
///     fn object(&self) -> &Object { &self.0 }
///     fn object_mut(&mut self) -> &mut Object { &mut self.0 }
/// }
/// shm_core::object_methods!(Flag, Error, "<Flag as shm_core::SharedObject>::create(())", "Flag");
/// let f = <Flag as SharedObject>::create(())?;
/// let again = Flag::open(f.name().unwrap())?; // no trait import needed
/// assert!(format!("{again:?}").contains("Flag"));
/// # Ok::<(), shm_core::Error>(())
/// ```
#[macro_export]
macro_rules! object_methods {
    (
        $ty:ident $(<$g:ident : $b:path>)?, $err:ty, $make:literal, $path:literal
        $(, create($($arg:ident : $argty:ty),*) => $init:expr, args: $ex:literal)?
    ) => {
        impl$(<$g: $b>)? $ty$(<$g>)? {
            $(
            /// Creates the object under a fresh random `psm_` name (CPython's naming); the
            /// name is removed when this handle drops (see `set_unlink_on_drop`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.name().unwrap().starts_with("psm_"));
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create($($arg: $argty),*) -> ::std::result::Result<Self, $err> {
                <Self as $crate::SharedObject>::create($init)
            }

            /// Creates the object under `name` (a leading `/` is optional);
            /// `AlreadyExists` if the name is taken.
            ///
            /// ```
            #[doc = concat!("let name = format!(\"shm-doc-", stringify!($ty), "-{}\", std::process::id());")]
            #[doc = concat!("let obj = ", $path, "::create_named(&name", $ex, ")?;")]
            /// assert_eq!(obj.name(), Some(name.as_str()));
            #[doc = concat!("assert!(", $path, "::create_named(&name", $ex, ").is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create_named(
                name: &str,
                $($arg: $argty),*
            ) -> ::std::result::Result<Self, $err> {
                <Self as $crate::SharedObject>::create_named(name, $init)
            }

            /// Creates the object with chosen segment options (name, page reservation,
            /// unlink on drop).
            ///
            /// ```
            /// let options = shm_core::SegmentOptions::new().reserve(false);
            #[doc = concat!("let obj = ", $path, "::create_with(&options", $ex, ")?;")]
            /// assert!(obj.name().is_some());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create_with(
                options: &$crate::SegmentOptions,
                $($arg: $argty),*
            ) -> ::std::result::Result<Self, $err> {
                <Self as $crate::SharedObject>::create_with(options, $init)
            }
            )?

            /// Opens the object another process created, by name, checking its kind,
            /// layout version and element type.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            #[doc = concat!("let again = ", $path, "::open(obj.name().unwrap())?;")]
            /// assert_eq!(again.name(), obj.name());
            #[doc = concat!("assert!(", $path, "::open(\"shm-doc-no-such-object\").is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn open(name: &str) -> ::std::result::Result<Self, $err> {
                <Self as $crate::SharedObject>::open(name)
            }

            /// Opens the object, waiting up to `wait` for another process to create and
            /// initialise it.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            #[doc = concat!("let again = ", $path, "::open_timeout(obj.name().unwrap(), std::time::Duration::from_millis(50))?;")]
            /// assert_eq!(again.name(), obj.name());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn open_timeout(
                name: &str,
                wait: ::std::time::Duration,
            ) -> ::std::result::Result<Self, $err> {
                <Self as $crate::SharedObject>::open_timeout(name, wait)
            }

            /// Wraps an already mapped segment (received or inherited), checking it.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// let seg = shm_core::Segment::open(obj.name().unwrap())?;
            #[doc = concat!("let again = ", $path, "::from_segment(seg)?;")]
            /// assert_eq!(again.name(), obj.name());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn from_segment(
                segment: $crate::Segment,
            ) -> ::std::result::Result<Self, $err> {
                <Self as $crate::SharedObject>::from_segment(segment)
            }

            /// The object's name (without the leading `/`; `segment@offset` inside an
            /// arena), `None` for an anonymous object.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.name().unwrap().starts_with("psm_"));
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn name(&self) -> Option<&str> {
                $crate::SharedObject::object(self).name()
            }

            /// Removes the name now (Python's `unlink`); processes that have the object
            /// open keep using it.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// obj.unlink()?;
            #[doc = concat!("assert!(", $path, "::open(obj.name().unwrap()).is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn unlink(&self) -> ::std::result::Result<(), $err> {
                <Self as $crate::SharedObject>::unlink(self)
            }

            /// Whether dropping this handle removes the name: `true` for the creator by
            /// default, `false` for handles from `open`.
            ///
            /// ```
            #[doc = concat!("let mut obj = ", $make, "?;")]
            /// obj.set_unlink_on_drop(false);
            /// let name = obj.name().unwrap().to_owned();
            /// drop(obj);
            /// shm_core::unlink(&name)?; // still there: remove it by hand
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn set_unlink_on_drop(&mut self, yes: bool) {
                <Self as $crate::SharedObject>::set_unlink_on_drop(self, yes)
            }

            /// Hands the object to a child process (Python's `Process(args=...)`): the
            /// child finds it under `var` with `from_env`. A named object is passed by
            /// name, an anonymous one by an inherited descriptor.
            ///
            /// ```no_run
            #[doc = concat!("let obj = ", $make, "?;")]
            /// let mut cmd = std::process::Command::new("my-worker");
            /// obj.share(&mut cmd, "MY_OBJECT")?.status()?;
            #[doc = concat!("// in my-worker: let obj = ", $path, "::from_env(\"MY_OBJECT\")?;")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn share<'c>(
                &self,
                command: &'c mut ::std::process::Command,
                var: &str,
            ) -> ::std::result::Result<&'c mut ::std::process::Command, $err> {
                <Self as $crate::SharedObject>::share(self, command, var)
            }

            /// Takes the object a parent handed over with `share` under `var`; a typed
            /// error when it is of another kind or type.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// // SAFETY: no other thread reads the environment in this example.
            /// unsafe { std::env::set_var("SHM_DOC_OBJECT", obj.name().unwrap()) };
            #[doc = concat!("let again = ", $path, "::from_env(\"SHM_DOC_OBJECT\")?;")]
            /// assert_eq!(again.name(), obj.name());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn from_env(var: &str) -> ::std::result::Result<Self, $err> {
                <Self as $crate::SharedObject>::from_env(var)
            }

            /// The object underneath: header, segment, payload.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.object().info().is_some());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn object(&self) -> &$crate::Object {
                $crate::SharedObject::object(self)
            }
        }

        impl$(<$g: $b>)? ::std::fmt::Debug for $ty$(<$g>)? {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &$crate::SharedObject::object(self).label())
                    .finish_non_exhaustive()
            }
        }
    };
}
