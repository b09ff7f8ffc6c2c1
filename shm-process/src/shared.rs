//! [`Shared`]: a shared object as a process argument, serialised as its handle.

use std::cell::RefCell;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shm_collections::PipeEnd;
use shm_core::{Handle, Segment, SharedObject};

use crate::error::Error;

thread_local! {
    /// While a [`Process`](crate::Process) encodes its arguments: the duplicated
    /// descriptors of anonymous objects, which the child inherits.
    pub(crate) static OUTGOING_FDS: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
}

/// In a child: the descriptors the parent handed over, as (the parent's number, which
/// handles carry; the number received here), so that a handle can name no other
/// descriptor (stdin, the report socket).
pub(crate) static INCOMING_FDS: std::sync::OnceLock<Vec<(i32, i32)>> = std::sync::OnceLock::new();

/// The descriptor received for the parent's number `fd`, if the parent handed it over.
fn incoming(fd: i32) -> Option<i32> {
    INCOMING_FDS
        .get()?
        .iter()
        .find(|(parent, _)| *parent == fd)
        .map(|(_, ours)| *ours)
}

/// A shared object passed to a child process: serialises as its [`Handle`] and
/// deserialises by opening the object, with its kind and type checked (and then its
/// header, as every `open`).
///
/// A named object travels as its name; an anonymous (memfd) one as a descriptor the
/// child inherits, which works only inside [`Process`](crate::Process) arguments.
///
/// ```no_run
/// use shm_core::SharedObject;
/// use shm_collections::Value;
/// use shm_process::{Process, Shared};
///
/// fn add(args: (Shared<Value<u64>>, u64)) {
///     let (counter, n) = args;
///     counter.update(|v| *v += n).unwrap();
/// }
///
/// fn main() {
///     shm_process::main!(add);
///     let counter = Value::create(0u64).unwrap();
///     let mut p = Process::spawn(add, (Shared::of(&counter).unwrap(), 5)).unwrap();
///     p.join().unwrap();
///     assert_eq!(counter.get().unwrap(), 5);
/// }
/// ```
pub struct Shared<T: SharedObject> {
    object: T,
}

impl<T: SharedObject> Shared<T> {
    /// Wraps an object to pass it on.
    ///
    /// Keep the creator alive until the child has opened it: a creator that unlinks
    /// its name on drop may remove it before the child looks. [`Process`](crate::Process)
    /// keeps its arguments alive until `join`.
    ///
    /// ```
    /// let s = shm_process::Shared::new(shm_collections::Value::create(3u8)?);
    /// assert_eq!(s.get()?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(object: T) -> Shared<T> {
        Shared { object }
    }

    /// Opens `object` a second time (by name, or by a duplicate of its descriptor), so
    /// that the caller keeps the original.
    ///
    /// ```
    /// use shm_core::SharedObject;
    /// let v = shm_collections::Value::anonymous(3u8)?;
    /// let s = shm_process::Shared::of(&v)?;
    /// v.set(4)?;
    /// assert_eq!(s.get()?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn of(object: &T) -> Result<Shared<T>, T::Error> {
        let obj = object.object();
        let again = match obj.name() {
            Some(name) => T::open(name)?,
            None => {
                let fd = obj
                    .segment()
                    .fd()
                    .ok_or_else(|| shm_core::Error::Unsupported {
                        name: obj.label(),
                        what: "passing on an object inside an anonymous arena",
                    })?;
                let owned = fd
                    .try_clone_to_owned()
                    .map_err(|e| shm_core::Error::Corrupted {
                        name: obj.label(),
                        what: format!("cannot duplicate its descriptor: {e}"),
                    })?;
                if obj.offset() != 0 {
                    return Err(shm_core::Error::Unsupported {
                        name: obj.label(),
                        what: "passing on an object inside an anonymous arena",
                    }
                    .into());
                }
                T::from_segment(Segment::from_fd(owned)?)?
            }
        };
        Ok(Shared { object: again })
    }

    /// The object.
    ///
    /// ```
    /// let v = shm_process::Shared::new(shm_collections::Value::create(3u8)?).into_inner();
    /// assert_eq!(v.get()?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        self.object
    }
}

impl<T: SharedObject> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.object
    }
}

impl<T: SharedObject> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("type", &std::any::type_name::<T>())
            .field("name", &self.object.name())
            .finish()
    }
}

impl<T: SharedObject> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let obj = self.object.object();
        let handle = match Handle::of(&self.object) {
            Some(handle) => handle,
            None => {
                let fd = match obj.segment().fd() {
                    Some(fd) if obj.offset() == 0 => fd,
                    _ => {
                        return Err(S::Error::custom(format!(
                            "{} is inside an anonymous arena: it has no name and no descriptor of its own",
                            obj.label()
                        )));
                    }
                };
                let kind = T::layout().kind_name().to_owned();
                let fd = hand_over(fd, || {
                    format!(
                        "anonymous {kind} has no name: it can only be passed as a Process argument \
                         (its descriptor is inherited)"
                    )
                })
                .map_err(S::Error::custom)?;
                Handle::inherited::<T>(fd)
            }
        };
        handle.serialize(s)
    }
}

/// Opening a [`Handle`] in a process, as a [`Shared`] object: the descriptor of an
/// anonymous object is the one the parent handed over with the process's arguments.
///
/// ```
/// use shm_core::SharedObject;
/// use shm_collections::Value;
/// use shm_process::HandleExt;
/// let v = Value::create(5u64)?;
/// let h = shm_process::Handle::of(&v).unwrap();
/// assert_eq!(h.open::<Value<u64>>()?.get()?, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait HandleExt {
    /// Opens the object this handle names as a `T`: checks kind and type first
    /// ([`Error::WrongType`]), then opens it by name, or, in a child, by the descriptor
    /// its parent handed over, checking its header ([`Error::Open`]).
    ///
    /// ```
    /// use shm_core::SharedObject;
    /// use shm_collections::Value;
    /// use shm_process::HandleExt;
    /// let v = Value::create(5u64)?;
    /// let h = shm_process::Handle::of(&v).unwrap();
    /// assert_eq!(h.open::<Value<u64>>()?.get()?, 5);
    /// assert!(matches!(h.open::<Value<u32>>(), Err(shm_process::Error::WrongType { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn open<T: SharedObject>(&self) -> Result<Shared<T>, Error>
    where
        T::Error: fmt::Display;
}

impl HandleExt for Handle {
    fn open<T: SharedObject>(&self) -> Result<Shared<T>, Error>
    where
        T::Error: fmt::Display,
    {
        let want = std::any::type_name::<T>();
        if !self.is_of::<T>() {
            return Err(wrong_type(self, want, T::layout().kind_name()));
        }
        let fail = |message: String| Error::Open {
            handle: self.location(),
            type_name: want.to_owned(),
            message,
        };
        let object = match &self.name {
            Some(name) => T::open(name).map_err(|e| fail(e.to_string()))?,
            None => T::from_segment(handed_over(self).map_err(fail)?)
                .map_err(|e| fail(e.to_string()))?,
        };
        Ok(Shared { object })
    }
}

/// The error for a handle that names another kind or type than `want` of `kind`.
fn wrong_type(handle: &Handle, want: &str, kind: &str) -> Error {
    Error::WrongType {
        expected: format!("{want} (kind {kind})"),
        found: format!("{} (kind {})", handle.type_name, handle.kind),
    }
}

/// Duplicates `fd` into the list of descriptors the child being spawned inherits, and
/// returns the number the handle carries; outside [`Process`](crate::Process) arguments
/// there is no such list, the error `outside()`.
fn hand_over(fd: BorrowedFd<'_>, outside: impl FnOnce() -> String) -> Result<i32, String> {
    let dup = fd
        .try_clone_to_owned()
        .map_err(|e| format!("cannot duplicate a descriptor: {e}"))?;
    let number = dup.as_raw_fd();
    OUTGOING_FDS.with(|out| match out.borrow_mut().as_mut() {
        Some(list) => {
            list.push(dup);
            Ok(number)
        }
        None => Err(outside()),
    })
}

/// In a child: the segment of a handle without a name, by the descriptor its parent
/// handed over (duplicated: the received one stays until dispatch is over).
fn handed_over(handle: &Handle) -> Result<Segment, String> {
    let Some(fd) = handle.fd else {
        return Err("expected a name or a descriptor, found neither".into());
    };
    let Some(fd) = incoming(fd) else {
        return Err("expected a descriptor the parent handed over, found one it did not".into());
    };
    // SAFETY: `fd` is one this child received from the parent for its arguments and
    // keeps open until dispatch is over; it is only borrowed to duplicate it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed
        .try_clone_to_owned()
        .map_err(|e| format!("the inherited descriptor is not open: {e}"))?;
    Segment::from_fd(owned).map_err(|e| e.to_string())
}

impl<'de, T: SharedObject> Deserialize<'de> for Shared<T>
where
    T::Error: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shared<T>, D::Error> {
        Handle::deserialize(d)?.open().map_err(D::Error::custom)
    }
}

/// Takes ownership of an inherited descriptor number to close it (dispatch is over).
pub(crate) fn close_inherited(fd: i32) {
    // SAFETY: the parent handed `fd` to this process for the arguments only; every
    // handle duplicated it, so nothing else owns this number.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

/// A pipe end passed to a child process (Python's `Process(target=f, args=(conn,))`
/// with a `Connection`): serialises as the pipe's [`Handle`] (kind `Pipe`, an inherited
/// descriptor: pipes are anonymous) and the end's number, and deserialises by taking
/// that end over ([`PipeEnd::from_segment`]), header checked.
///
/// The parent's handle moves into the [`Process`](crate::Process) arguments, which keep
/// the end held until `join`; the child holds it from its start. So the other end sees
/// the pipe closed (`QueueError::Closed`, Python's `EOFError`) once the child has exited
/// and been joined.
///
/// ```no_run
/// use shm_collections::Pipe;
/// use shm_process::{Process, SharedPipeEnd};
///
/// fn child(conn: SharedPipeEnd) {
///     conn.send(&"hello").unwrap();
/// }
///
/// fn main() {
///     shm_process::main!(child);
///     let (parent_conn, child_conn) = Pipe::new().unwrap();
///     let mut p = Process::spawn(child, SharedPipeEnd::new(child_conn)).unwrap();
///     assert_eq!(parent_conn.recv::<String>().unwrap(), "hello");
///     p.join().unwrap();
/// }
/// ```
pub struct SharedPipeEnd {
    end: PipeEnd,
}

/// The kind and type a pipe end's handle names.
const PIPE_KIND: &str = "Pipe";

impl SharedPipeEnd {
    /// Wraps an end to pass it on.
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// let b = shm_process::SharedPipeEnd::new(b);
    /// a.send(&1u8)?;
    /// assert_eq!(b.recv::<u8>()?, 1);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn new(end: PipeEnd) -> SharedPipeEnd {
        SharedPipeEnd { end }
    }

    /// The end.
    ///
    /// ```
    /// let (_a, b) = shm_collections::Pipe::new()?;
    /// assert_eq!(shm_process::SharedPipeEnd::new(b).into_inner().end(), 1);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn into_inner(self) -> PipeEnd {
        self.end
    }
}

impl std::ops::Deref for SharedPipeEnd {
    type Target = PipeEnd;
    fn deref(&self) -> &PipeEnd {
        &self.end
    }
}

impl fmt::Debug for SharedPipeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedPipeEnd").field(&self.end).finish()
    }
}

impl Serialize for SharedPipeEnd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let seg = self.end.segment();
        let mut handle = Handle {
            kind: PIPE_KIND.to_owned(),
            type_name: std::any::type_name::<PipeEnd>().to_owned(),
            name: seg.name().map(str::to_owned),
            fd: None,
        };
        if handle.name.is_none() {
            let fd = seg
                .fd()
                .ok_or_else(|| S::Error::custom("a pipe with neither a name nor a descriptor"))?;
            let fd = hand_over(fd, || {
                "a pipe end can only be passed as a Process argument (its descriptor is inherited)"
                    .to_owned()
            })
            .map_err(S::Error::custom)?;
            handle.fd = Some(fd);
        }
        (handle, self.end.end() as u8).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedPipeEnd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedPipeEnd, D::Error> {
        let (handle, end) = <(Handle, u8)>::deserialize(d)?;
        let want = std::any::type_name::<PipeEnd>();
        if handle.kind != PIPE_KIND || handle.type_name != want {
            return Err(D::Error::custom(wrong_type(&handle, want, PIPE_KIND)));
        }
        let fail = |message: String| {
            D::Error::custom(Error::Open {
                handle: handle.location(),
                type_name: want.to_owned(),
                message,
            })
        };
        let seg = match &handle.name {
            Some(name) => Segment::open(name).map_err(|e| fail(e.to_string()))?,
            None => handed_over(&handle).map_err(fail)?,
        };
        let end = PipeEnd::from_segment(seg, usize::from(end)).map_err(|e| fail(e.to_string()))?;
        Ok(SharedPipeEnd { end })
    }
}
