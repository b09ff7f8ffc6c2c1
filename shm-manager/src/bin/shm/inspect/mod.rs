//! `shm inspect NAME`: an object's header and contents by kind, in three parts: the
//! report's schema ([`report`]), probing by kind ([`probe`]) and rendering for people
//! ([`render()`]; `--json` is the report serialised as it is).

mod probe;
mod render;
mod report;

pub use probe::inspect;
pub use render::render;
