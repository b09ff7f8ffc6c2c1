//! What every named object of this crate shares: its kind number, and the
//! [`SharedObject`](shm_core::SharedObject) implementation over a `shared: Shared<R>`
//! field.

use shm_core::Kind;

/// The object kinds of shm-sync (numbers in [`Kind::SYNC`]).
pub mod kinds {
    use super::Kind;
    /// [`Mutex`](crate::Mutex).
    pub const MUTEX: Kind = Kind::new(0x1001, "Mutex");
    /// [`RwLock`](crate::RwLock).
    pub const RWLOCK: Kind = Kind::new(0x1002, "RwLock");
    /// [`Condvar`](crate::Condvar).
    pub const CONDVAR: Kind = Kind::new(0x1003, "Condvar");
    /// [`Event`](crate::Event).
    pub const EVENT: Kind = Kind::new(0x1004, "Event");
    /// [`Semaphore`](crate::Semaphore) and [`BoundedSemaphore`](crate::BoundedSemaphore).
    pub const SEMAPHORE: Kind = Kind::new(0x1005, "Semaphore");
    /// [`Barrier`](crate::Barrier).
    pub const BARRIER: Kind = Kind::new(0x1006, "Barrier");
    /// [`RLock`](crate::RLock).
    pub const RLOCK: Kind = Kind::new(0x1007, "RLock");
    /// [`Condition`](crate::Condition).
    pub const CONDITION: Kind = Kind::new(0x1008, "Condition");
}

/// Implements [`SharedObject`](shm_core::SharedObject) and the inherent lifecycle
/// methods for a type with a `shared: Shared<$raw>` field (plus `$field: $value` extra
/// fields). `write` initialises the zeroed payload of a new object (`$o` the object,
/// `$v` the init value); `check` validates an opened one.
macro_rules! sync_object {
    (
        $ty:ident $(<$g:ident>)?, $raw:ty,
        make: $make:literal, path: $path:literal,
        create($($arg:ident : $argty:ty),*) => $initval:expr, args: $ex:literal,
        init: $init:ty, spec: $spec:expr, payload: $payload:expr,
        write: |$o:ident, $v:ident| $write:expr
        $(, check: |$c:ident| $check:expr)?
        $(, extra: $field:ident = $value:expr)?
    ) => {
        impl$(<$g: bytemuck::Pod>)? shm_core::SharedObject for $ty$(<$g>)? {
            type Error = $crate::Error;
            type Init = $init;

            fn layout() -> shm_core::Layout {
                shm_core::Layout::Header($spec)
            }

            fn payload_len(_: &$init) -> Result<usize, $crate::Error> {
                Ok($payload)
            }

            #[allow(unused_variables)]
            fn init_payload(
                $o: &shm_core::Object,
                $v: $init,
            ) -> Result<(), $crate::Error> {
                $write
            }

            fn attach(object: shm_core::Object) -> Result<Self, $crate::Error> {
                let shared = $crate::inplace::Shared::<$raw>::attach(object, $payload)?;
                $( let $c = &shared; $check?; )?
                Ok(Self { shared $(, $field: $value)? })
            }

            fn object(&self) -> &shm_core::Object {
                self.shared.object()
            }

            fn object_mut(&mut self) -> &mut shm_core::Object {
                self.shared.object_mut()
            }
        }

        shm_core::object_methods!(
            $ty $(<$g: bytemuck::Pod>)?, $crate::Error, $make, $path,
            create($($arg: $argty),*) => $initval, args: $ex
        );
    };
}

pub(crate) use sync_object;

/// Offset of data of alignment `align` after a primitive of `after` bytes.
pub(crate) const fn data_offset(after: usize, align: usize) -> usize {
    after.div_ceil(align) * align
}
