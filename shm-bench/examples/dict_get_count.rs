//! A fixed number of `ShareableDict<u64, u64>::get`s on 10^3 entries, for counting
//! instructions per get with callgrind (wall-clock figures on a shared 2-core machine
//! are noisy; instruction counts are not):
//!
//! ```text
//! cargo build --release -p shm-bench --example dict_get_count
//! valgrind --tool=callgrind target/release/examples/dict_get_count 0
//! valgrind --tool=callgrind target/release/examples/dict_get_count 100000
//! ```
//!
//! (difference of the two totals) / 100000 = instructions per get. The keys follow the
//! benchmark's stride walk (`+ 7919 mod n`).

use std::hint::black_box;

fn main() {
    let gets: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("a number of gets"));
    let n = 1_000u64;
    let d = shm_collections::ShareableDict::<u64, u64>::create().expect("create a dict");
    d.extend((0..n).map(|i| (i, i))).expect("fill");
    let mut k = 0u64;
    let mut sum = 0u64;
    let t = std::time::Instant::now();
    for _ in 0..gets {
        k = (k + 7919) % n;
        sum = sum.wrapping_add(black_box(d.get(black_box(&k)).expect("get")).expect("present"));
    }
    let ns = t.elapsed().as_nanos() as f64 / gets.max(1) as f64;
    assert_eq!(sum, (0..gets).map(|i| (i + 1) * 7919 % n).sum::<u64>());
    println!("{gets} gets, sum {sum}, {ns:.1} ns per get (wall clock, noisy)");
}
