//! Everything the lock algorithms (`raw/`) take from `std` that a model check must
//! replace: atomics, the spin hint and the clock. Normally these are `std`'s own items,
//! re-exported (the compiled code is exactly what `std` gives); under `cfg(loom)` they
//! are loom's atomics and spin hint and the model's virtual clock (see `loom_model`), so
//! loom can explore every interleaving of the algorithms.

#[cfg(not(loom))]
pub(crate) use std::hint::spin_loop;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::time::Instant;

#[cfg(loom)]
pub(crate) use crate::loom_model::Instant;
#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Nothing (and no code) normally. Under loom a `fence(SeqCst)`: loom models `SeqCst`
/// *accesses* as `AcqRel` (loom's README, tokio-rs/loom#180), too weak for the
/// store-then-load pairs between two threads (Dekker: "I count myself as a waiter, then
/// look at the count" against "I raise the count, then look for waiters") that `SeqCst`
/// accesses order in the C++ model and on real hardware. Placed between such a `SeqCst`
/// store and the `SeqCst` load after it, the fence gives the model that order; without
/// it loom reports lost wake-ups that cannot happen.
#[inline(always)]
pub(crate) fn seqcst_for_model() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// Defines a `const fn` normally and a plain `fn` under `cfg(loom)`, whose atomics
/// cannot be built in a constant (they register with the running model).
macro_rules! const_fn_unless_loom {
    (
        $(#[$attr:meta])*
        $vis:vis const fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block
    ) => {
        $(#[$attr])*
        #[cfg(not(loom))]
        $vis const fn $name($($arg: $ty),*) -> $ret $body

        $(#[$attr])*
        #[cfg(loom)]
        $vis fn $name($($arg: $ty),*) -> $ret $body
    };
}

pub(crate) use const_fn_unless_loom;
