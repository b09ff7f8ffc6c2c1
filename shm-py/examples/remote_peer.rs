//! The Rust side of the Python package's Redis interop test (`tests/test_remote.py`):
//! opens the manager at the address given, prints the dict `key` that Python wrote
//! (as `Dynamic` values, sorted), and adds `"rust": 1` to it.
//!
//! ```text
//! cargo run -p shm-py --example remote_peer -- redis://127.0.0.1:6379/ns scores
//! ```

use shm_collections::Dynamic;
use shm_remote::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(key)) = (args.next(), args.next()) else {
        return Err("usage: remote_peer ADDRESS KEY".into());
    };
    let m = shm_remote::Manager::connect(&address)?;
    let d = m.dict::<Dynamic, Dynamic>(&key)?;
    let mut pairs: Vec<(Dynamic, Dynamic)> = d.iter()?.collect();
    pairs.sort();
    for (k, v) in pairs {
        println!("{k:?} = {v:?}");
    }
    d.insert(Dynamic::Str("rust".into()), Dynamic::Int(1))?;
    Ok(())
}
