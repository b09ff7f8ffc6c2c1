//! The functions a child may run, found by name: [`Entry`], [`entry`], and the
//! registry [`init`](crate::init) fills.

use std::any::Any;
use std::sync::atomic::AtomicBool;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Set once [`init`] ran in this process (and returned: not a child, or done).
pub(crate) static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Decodes the arguments, runs the function and encodes its result; `Err` names what
/// did not decode or encode.
type Runner = dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, String> + Send + Sync;

/// In a child: the functions its `main!` registered (pool workers find tasks here).
pub(crate) static REGISTRY: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();

/// The registered function named `name`, or a message naming what is registered.
pub(crate) fn registered(name: &str) -> std::result::Result<&'static Entry, String> {
    let entries = REGISTRY.get().map(Vec::as_slice).unwrap_or_default();
    entries.iter().find(|e| e.name == name).ok_or_else(|| {
        let known: Vec<_> = entries.iter().map(|e| e.name).collect();
        format!(
            "expected {name} among the functions registered with shm_process::main!, \
             found only {known:?}"
        )
    })
}

/// A function a child may run, found by name: made by [`entry`], listed in
/// [`main!`](crate::main).
///
/// ```
/// fn work(_: ()) {}
/// let e = shm_process::entry(work);
/// assert!(e.name().ends_with("::work"));
/// ```
pub struct Entry {
    name: &'static str,
    pub(crate) run: Box<Runner>,
}

impl Entry {
    /// The function's name (its `type_name`), which the parent sends.
    ///
    /// ```
    /// fn job(_: u8) {}
    /// assert!(shm_process::entry(job).name().contains("job"));
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("name", &self.name).finish()
    }
}

/// Makes the [`Entry`] of a function (a `fn` item taking one argument: use a tuple for
/// several; its result is what a [`Pool`](crate::Pool) returns). Usually written
/// through [`main!`](crate::main).
///
/// ```
/// fn work(args: (u32, String)) { let _ = args; }
/// let e = shm_process::entry(work);
/// assert_eq!(e.name(), std::any::type_name_of_val(&work));
/// ```
pub fn entry<A, R, F>(f: F) -> Entry
where
    A: DeserializeOwned,
    R: Serialize,
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
{
    Entry {
        name: std::any::type_name::<F>(),
        run: Box::new(move |bytes| {
            let (args, _) =
                bincode::serde::decode_from_slice::<A, _>(bytes, bincode::config::standard())
                    .map_err(|e| format!("cannot decode the arguments: {e}"))?;
            let r = f(args);
            bincode::serde::encode_to_vec(&r, bincode::config::standard())
                .map_err(|e| format!("cannot encode the result: {e}"))
        }),
    }
}

/// The message of a panic payload (a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic with a non-string payload)".to_owned()
    }
}
