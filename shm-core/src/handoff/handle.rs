//! [`Handle`]: the one serialisable form of a shared object.

use serde::{Deserialize, Serialize};

use crate::shared_object::SharedObject;

/// The serialisable form of a shared object: its kind, its Rust type, and where it is
/// (a name, or the number of a descriptor the receiving process inherits).
///
/// This is the one handle form of the design: process arguments (`shm-process`
/// re-exports it as `shm_process::Handle`) and messages carry it, and the receiver
/// checks kind and type before opening.
///
/// ```
/// use shm_core::{Error, Handle, Kind, Layout, Object, ObjectSpec, SharedObject};
///
/// struct Flag(Object);
/// impl SharedObject for Flag {
///     type Error = Error;
///     type Init = ();
///     fn layout() -> Layout { Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start + 7, "Flag"), 1)) }
///     fn payload_len(_: &()) -> Result<usize, Error> { Ok(1) }
///     fn init_payload(_: &Object, _: ()) -> Result<(), Error> { Ok(()) }
///     fn attach(o: Object) -> Result<Self, Error> { Ok(Flag(o)) }
///     fn object(&self) -> &Object { &self.0 }
///     fn object_mut(&mut self) -> &mut Object { &mut self.0 }
/// }
///
/// let f = Flag::create(())?;
/// let h = Handle::of(&f).unwrap();
/// assert_eq!((h.kind.as_str(), h.name.as_deref()), ("Flag", f.name()));
/// assert!(h.is_of::<Flag>());
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// The object's kind name (`Value`, `Queue`, ...).
    pub kind: String,
    /// The Rust type (`std::any::type_name`), checked before opening.
    pub type_name: String,
    /// The object's name (`segment` or `segment@offset`), `None` for an anonymous one.
    pub name: Option<String>,
    /// For an anonymous object: the descriptor number the receiver inherits.
    pub fd: Option<i32>,
}

impl Handle {
    /// The handle of a named object; `None` for an anonymous one (which travels only
    /// with its descriptor, see [`Handle::inherited`]).
    ///
    /// ```
    /// # use shm_core::{Error, Handle, Kind, Layout, Object, ObjectSpec, SharedObject};
    /// # struct Flag(Object);
    /// # impl SharedObject for Flag {
    /// #     type Error = Error;
    /// #     type Init = ();
    /// #     fn layout() -> Layout { Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start + 7, "Flag"), 1)) }
    /// #     fn payload_len(_: &()) -> Result<usize, Error> { Ok(1) }
    /// #     fn init_payload(_: &Object, _: ()) -> Result<(), Error> { Ok(()) }
    /// #     fn attach(o: Object) -> Result<Self, Error> { Ok(Flag(o)) }
    /// #     fn object(&self) -> &Object { &self.0 }
    /// #     fn object_mut(&mut self) -> &mut Object { &mut self.0 }
    /// # }
    /// assert!(Handle::of(&Flag::anonymous(())?).is_none());
    /// assert!(Handle::of(&Flag::create(())?).is_some());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn of<T: SharedObject>(object: &T) -> Option<Handle> {
        Some(Handle {
            name: Some(object.name()?.to_owned()),
            ..Handle::typed::<T>()
        })
    }

    /// The handle of an anonymous object of type `T` whose descriptor the receiver
    /// inherits under the number `fd`.
    ///
    /// ```
    /// # use shm_core::{Error, Handle, Kind, Layout, Object, ObjectSpec, SharedObject};
    /// # struct Flag(Object);
    /// # impl SharedObject for Flag {
    /// #     type Error = Error;
    /// #     type Init = ();
    /// #     fn layout() -> Layout { Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start + 7, "Flag"), 1)) }
    /// #     fn payload_len(_: &()) -> Result<usize, Error> { Ok(1) }
    /// #     fn init_payload(_: &Object, _: ()) -> Result<(), Error> { Ok(()) }
    /// #     fn attach(o: Object) -> Result<Self, Error> { Ok(Flag(o)) }
    /// #     fn object(&self) -> &Object { &self.0 }
    /// #     fn object_mut(&mut self) -> &mut Object { &mut self.0 }
    /// # }
    /// let h = Handle::inherited::<Flag>(7);
    /// assert_eq!((h.name, h.fd), (None, Some(7)));
    /// ```
    pub fn inherited<T: SharedObject>(fd: i32) -> Handle {
        Handle {
            fd: Some(fd),
            ..Handle::typed::<T>()
        }
    }

    /// Kind and type of `T`, no location yet.
    fn typed<T: SharedObject>() -> Handle {
        Handle {
            kind: T::layout().kind_name().to_owned(),
            type_name: std::any::type_name::<T>().to_owned(),
            name: None,
            fd: None,
        }
    }

    /// Whether this handle names an object of type `T` (its kind and Rust type).
    ///
    /// ```
    /// # use shm_core::{Error, Handle, Kind, Layout, Object, ObjectSpec, SharedObject};
    /// # struct Flag(Object);
    /// # impl SharedObject for Flag {
    /// #     type Error = Error;
    /// #     type Init = ();
    /// #     fn layout() -> Layout { Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start + 7, "Flag"), 1)) }
    /// #     fn payload_len(_: &()) -> Result<usize, Error> { Ok(1) }
    /// #     fn init_payload(_: &Object, _: ()) -> Result<(), Error> { Ok(()) }
    /// #     fn attach(o: Object) -> Result<Self, Error> { Ok(Flag(o)) }
    /// #     fn object(&self) -> &Object { &self.0 }
    /// #     fn object_mut(&mut self) -> &mut Object { &mut self.0 }
    /// # }
    /// let mut h = Handle::inherited::<Flag>(3);
    /// assert!(h.is_of::<Flag>());
    /// h.type_name = "another::Type".into();
    /// assert!(!h.is_of::<Flag>());
    /// ```
    pub fn is_of<T: SharedObject>(&self) -> bool {
        self.kind == T::layout().kind_name() && self.type_name == std::any::type_name::<T>()
    }

    /// Where the object is, for messages: its name, `descriptor N`, or `(empty)`.
    ///
    /// ```
    /// let mut h = shm_core::Handle {
    ///     kind: "Value".into(),
    ///     type_name: "u8".into(),
    ///     name: None,
    ///     fd: Some(5),
    /// };
    /// assert_eq!(h.location(), "descriptor 5");
    /// h.name = Some("psm_1".into());
    /// assert_eq!(h.location(), "psm_1");
    /// ```
    pub fn location(&self) -> String {
        match (&self.name, self.fd) {
            (Some(n), _) => n.clone(),
            (None, Some(fd)) => format!("descriptor {fd}"),
            (None, None) => "(empty)".into(),
        }
    }
}
