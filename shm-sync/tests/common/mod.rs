//! Helpers for the cross-process tests: they live once in [`shm_core::testing`]
//! (children that re-run this test binary in a role, killed on drop, whose stdout lines
//! the parent can wait for; `env`, `say`, a small generator).

#[allow(unused_imports)]
pub use shm_core::testing::{
    BlockedIn, Kid, Rng, Task, child_role, current_tid, env, run_child, say, wait_until_blocked,
};
