//! Start + join of a child running an empty function, against the floor: the same
//! binary re-executed with `Command` (posix_spawn) and waited for, exiting at once;
//! and the same with a `pre_exec` hook (which makes std fork instead), as `Process`
//! needs one to hand descriptors on. The three alternate, so that a busy machine
//! slows them alike.
//!
//! `cargo run --release -p shm-process --example spawn_cost`

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

fn empty(_: ()) {}

fn main() {
    shm_process::main!(empty);
    if std::env::var_os("SPAWN_COST_FLOOR").is_some() {
        return;
    }
    let rounds = 200u32;
    let exe = std::env::current_exe().expect("the current binary");
    let mut times = [Duration::ZERO; 3];
    for _ in 0..rounds {
        let start = Instant::now();
        let status = Command::new(&exe).env("SPAWN_COST_FLOOR", "1").status();
        assert!(status.expect("spawn").success());
        times[0] += start.elapsed();

        let start = Instant::now();
        let mut cmd = Command::new(&exe);
        cmd.env("SPAWN_COST_FLOOR", "1");
        // SAFETY: an empty closure: nothing runs between fork and exec.
        unsafe { cmd.pre_exec(|| Ok(())) };
        assert!(cmd.status().expect("spawn").success());
        times[1] += start.elapsed();

        let start = Instant::now();
        let mut p = shm_process::Process::spawn(empty, ()).expect("spawn");
        assert_eq!(p.join().expect("join"), 0);
        times[2] += start.elapsed();
    }
    let [floor, forked, ours] = times.map(|t| t / rounds);
    let ratio = |t: Duration| t.as_secs_f64() / floor.as_secs_f64();
    println!("Command spawn+wait (floor):    {floor:?}");
    println!(
        "Command with pre_exec (fork):  {forked:?} ({:.2}x)",
        ratio(forked)
    );
    println!(
        "Process::spawn+join:           {ours:?} ({:.2}x)",
        ratio(ours)
    );
}
