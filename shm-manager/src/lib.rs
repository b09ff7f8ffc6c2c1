//! # shm-manager (planned)
//!
//! Lifetimes of shared objects: a tracker that unlinks what a process created when it
//! exits (without CPython's bug of unlinking what it merely attached), a scoped
//! manager in the spirit of `SharedMemoryManager`, a registry of named objects, and the
//! `shm` command-line tool.
//!
//! Nothing of that is implemented yet: this crate is empty so that the workspace
//! layout is fixed. Until it lands, own segments with
//! `shm_core::SegmentOptions::unlink_on_drop`, which is the default for segments you create.
