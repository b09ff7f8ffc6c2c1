//! Handing a segment or a shared object to another process, in one encoding.
//!
//! - Through the environment ([`env`]): a child finds what its parent handed over in an
//!   environment variable whose value is the decimal number of a descriptor it
//!   inherits (an anonymous segment), a marker then a name (a named segment given to
//!   [`CommandExt::inherit_segment`], which has no descriptor), or the name of a named
//!   object. [`CommandExt`], [`Segment::from_inherited`](crate::Segment::from_inherited)
//!   and [`SharedObject::share`](crate::SharedObject::share) /
//!   [`from_env`](crate::SharedObject::from_env) read and write that encoding, and
//!   nothing else in the crate does.
//! - As a value ([`Handle`]): the same facts (kind, Rust type, name or descriptor) in
//!   serialisable form, for process arguments and messages.

pub(crate) mod env;
mod handle;

pub use env::CommandExt;
pub use handle::Handle;
