//! [`SharedObject`]: the one lifecycle every shared type implements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::handoff::env;
use crate::header::ObjectSpec;
use crate::layout::Layout;
use crate::object::Object;
use crate::segment::{Segment, SegmentOptions};

/// The one lifecycle of every shared type (iceoryx2's `NamedConcept` is the model):
/// the same constructors and handle methods everywhere, so generic code (a manager, a
/// test helper, a CLI) creates, opens, hands on and unlinks any kind without knowing it.
///
/// A type implements five small methods ([`layout`](Self::layout),
/// [`payload_len`](Self::payload_len), [`init_payload`](Self::init_payload),
/// [`attach`](Self::attach), [`object`](Self::object)/[`object_mut`](Self::object_mut));
/// everything else is provided.
///
/// ```
/// use shm_core::{Error, Kind, Layout, Object, ObjectSpec, SharedObject};
///
/// /// A shared u64 counter, updated with atomics.
/// struct Counter(Object);
///
/// impl SharedObject for Counter {
///     type Error = Error;
///     type Init = u64;
///     fn layout() -> Layout {
///         Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start + 9, "Counter"), 1))
///     }
///     fn payload_len(_: &u64) -> Result<usize, Error> { Ok(8) }
///     fn init_payload(o: &Object, init: u64) -> Result<(), Error> { o.write_at(0, &init.to_ne_bytes()) }
///     fn attach(o: Object) -> Result<Self, Error> {
///         if o.payload_len() < 8 { return Err(Error::Corrupted { name: o.label(), what: "short".into() }); }
///         Ok(Counter(o))
///     }
///     fn object(&self) -> &Object { &self.0 }
///     fn object_mut(&mut self) -> &mut Object { &mut self.0 }
/// }
///
/// let c = Counter::create(5)?;
/// let again = Counter::open(c.name().unwrap())?;
/// let mut b = [0; 8];
/// again.object().read_at(0, &mut b)?;
/// assert_eq!(u64::from_ne_bytes(b), 5);
/// c.unlink()?;
/// assert!(Counter::open(c.name().unwrap()).is_err());
/// # Ok::<(), shm_core::Error>(())
/// ```
pub trait SharedObject: Sized {
    /// The type's error; every shm-core error converts into it.
    type Error: From<Error>;
    /// What creating one takes: an initial value, a length, items...
    type Init;

    /// How the object is laid out: behind a checked header, or in a foreign format.
    fn layout() -> Layout;

    /// Payload bytes needed for `init`.
    fn payload_len(init: &Self::Init) -> std::result::Result<usize, Self::Error>;

    /// Writes the initial payload into the zeroed `object`, before anyone else can see it.
    fn init_payload(object: &Object, init: Self::Init) -> std::result::Result<(), Self::Error>;

    /// Wraps an opened or created object, after its header was checked: validates what
    /// the payload says about itself (lengths, counts) and builds the handle.
    fn attach(object: Object) -> std::result::Result<Self, Self::Error>;

    /// The object underneath.
    fn object(&self) -> &Object;

    /// The object underneath, mutably (for [`set_unlink_on_drop`](Self::set_unlink_on_drop)).
    fn object_mut(&mut self) -> &mut Object;

    /// Creates the object with chosen segment options (name, page reservation, unlink
    /// on drop).
    fn create_with(
        options: &SegmentOptions,
        init: Self::Init,
    ) -> std::result::Result<Self, Self::Error> {
        let len = Self::payload_len(&init)?;
        let object = Self::layout().select(
            init,
            |spec, init| Object::create(options, spec, len, |o| Self::init_payload(o, init)),
            |_, init| foreign_init::<Self>(options.create(len)?, init),
        )?;
        Self::attach(object)
    }

    /// Creates the object under a fresh random `psm_` name, removed when the handle drops.
    fn create(init: Self::Init) -> std::result::Result<Self, Self::Error> {
        Self::create_with(&SegmentOptions::new(), init)
    }

    /// Creates the object under `name` ([`Error::AlreadyExists`] if taken). A type
    /// with a header refuses a name containing `@` ([`Error::InvalidName`]): `open`
    /// reads `segment@offset` as an object inside an arena.
    fn create_named(name: &str, init: Self::Init) -> std::result::Result<Self, Self::Error> {
        Self::create_with(&SegmentOptions::new().name(name), init)
    }

    /// Creates the object in an anonymous (memfd) segment: no name, handed to children
    /// with [`share`](Self::share), never leaks.
    fn anonymous(init: Self::Init) -> std::result::Result<Self, Self::Error> {
        let len = Self::payload_len(&init)?;
        let object = Self::layout().select(
            init,
            |spec, init| Object::create_anonymous(spec, len, |o| Self::init_payload(o, init)),
            |_, init| foreign_init::<Self>(Segment::anonymous(len)?, init),
        )?;
        Self::attach(object)
    }

    /// Lays the object out at `offset` inside `segment`, an arena that many small
    /// objects share (one mapping and no descriptor for all of them); its name is
    /// `segment@offset`. Foreign layouts (CPython's) are [`Error::Unsupported`].
    ///
    /// # Safety
    /// As [`Object::create_at`]: the range is handed out once by the caller's allocator
    /// and nothing else uses or initialises it while the object lives.
    unsafe fn create_at(
        segment: Arc<Segment>,
        offset: usize,
        init: Self::Init,
    ) -> std::result::Result<Self, Self::Error> {
        let layout = Self::layout();
        let spec = arena_spec(
            &layout,
            &segment,
            "placing a foreign-format object inside an arena",
        )?;
        let len = Self::payload_len(&init)?;
        // SAFETY: forwarded from this function's contract.
        let object = unsafe {
            Object::create_at(segment, offset, spec, len, |o| Self::init_payload(o, init))?
        };
        Self::attach(object)
    }

    /// Opens the object at `offset` in an arena already mapped by this process (no new
    /// mapping), checking its header.
    fn open_at(segment: Arc<Segment>, offset: usize) -> std::result::Result<Self, Self::Error> {
        let layout = Self::layout();
        let spec = arena_spec(&layout, &segment, "a foreign-format object inside an arena")?;
        Self::attach(Object::from_segment_at(segment, offset, spec)?)
    }

    /// Opens the object another process created, by name (`segment` or
    /// `segment@offset`), checking its header.
    fn open(name: &str) -> std::result::Result<Self, Self::Error> {
        Self::attach(Self::layout().open(name)?)
    }

    /// Opens the object, waiting up to `wait` for it to be created and initialised.
    fn open_timeout(name: &str, wait: Duration) -> std::result::Result<Self, Self::Error> {
        let object = Self::layout().select(
            (),
            |spec, ()| Object::open_timeout(name, spec, wait),
            |_, ()| {
                let start = Instant::now();
                loop {
                    match Segment::open(name) {
                        Err(Error::NotFound { .. } | Error::Empty { .. })
                            if start.elapsed() < wait =>
                        {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        other => break other.map(Object::foreign),
                    }
                }
            },
        )?;
        Self::attach(object)
    }

    /// Wraps an already mapped segment (received or inherited), checking its header.
    fn from_segment(segment: Segment) -> std::result::Result<Self, Self::Error> {
        Self::attach(Self::layout().wrap(segment)?)
    }

    /// The object's name (`None` for an anonymous one), to open it elsewhere.
    fn name(&self) -> Option<&str> {
        self.object().name()
    }

    /// Removes the name now (Python's `unlink`); processes that have the object open
    /// keep using it.
    fn unlink(&self) -> std::result::Result<(), Self::Error> {
        Ok(self.object().unlink()?)
    }

    /// Whether dropping this handle removes the name (`true` for the creator by default).
    fn set_unlink_on_drop(&mut self, yes: bool) {
        self.object_mut().set_unlink_on_drop(yes);
    }

    /// Hands the object to a child process, the way Python passes objects in
    /// `Process(args=...)`: sets `var` in the child's environment to the object's name,
    /// or, for an anonymous object, lets the child inherit its descriptor. The child
    /// takes it with [`from_env`](Self::from_env).
    fn share<'c>(
        &self,
        command: &'c mut std::process::Command,
        var: &str,
    ) -> std::result::Result<&'c mut std::process::Command, Self::Error> {
        Ok(env::share(self.object(), command, var)?)
    }

    /// Takes the object a parent handed over with [`share`](Self::share) under `var`,
    /// checking that it is of this type.
    fn from_env(var: &str) -> std::result::Result<Self, Self::Error> {
        let object = env::from_env(var, Self::layout())?;
        Self::attach(object)
    }
}

/// A foreign-format object in `segment`, its payload written from `init` (a foreign
/// format has no header to publish).
fn foreign_init<T: SharedObject>(segment: Segment, init: T::Init) -> Result<Object, T::Error> {
    let object = Object::foreign(segment);
    T::init_payload(&object, init)?;
    Ok(object)
}

/// The spec of a type placed inside an arena: foreign layouts (CPython's) have no
/// header to place there, [`Error::Unsupported`] (`what`).
fn arena_spec<'a>(
    layout: &'a Layout,
    arena: &Segment,
    what: &'static str,
) -> crate::Result<&'a ObjectSpec> {
    layout.select(
        (),
        |spec, ()| Ok(spec),
        |_, ()| {
            Err(Error::Unsupported {
                name: arena.display_name().to_owned(),
                what,
            })
        },
    )
}
