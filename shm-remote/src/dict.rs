//! [`ShareableDict`], [`ShareableVec`], [`Namespace`] and [`Value`] over Redis: a hash,
//! a list, a hash and a string under `<namespace>:d:<name>`, with the serde codec of
//! `shm_collections` (bincode 2, standard configuration).
//!
//! (Filled in after the skeleton.)
