//! Issue 18, item 4: memory per small object. 10^5 `Value<u64>` counters through one
//! manager: the bytes of the manager's segments in /dev/shm per counter (arenas plus
//! the registry), printed, and held under a generous bound. The crate docs quote the
//! figure this test prints (`cargo test -p shm-manager --test footprint -- --nocapture`).
//! `SHM_FOOTPRINT_OBJECTS` changes the count.

mod common;

use common::tracked;

#[test]
fn small_objects_cost_a_few_hundred_bytes_each() {
    let n: usize = std::env::var("SHM_FOOTPRINT_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let (m, root, _g) = common::manager();
    let counters: Vec<_> = (0..n)
        .map(|i| m.value(&format!("c{i}"), i as u64).unwrap())
        .collect();
    let (mut total, mut registry, mut arenas) = (0u64, 0u64, 0u64);
    let names = tracked(&root);
    for name in &names {
        let len = std::fs::metadata(format!("/dev/shm/{name}")).unwrap().len();
        total += len;
        if *name == root
            || shm_collections::region::parse_data_segment_name(name)
                .is_some_and(|p| p.control == root)
        {
            registry += len;
        } else {
            arenas += len;
        }
    }
    let per = |b: u64| b as f64 / n as f64;
    println!(
        "footprint: {n} Value<u64> counters: {:.0} bytes of /dev/shm each ({:.1} MB in {} \
         segments: arenas {:.0} bytes each, registry {:.0} bytes each)",
        per(total),
        total as f64 / 1e6,
        names.len(),
        per(arenas),
        per(registry)
    );
    assert_eq!(counters[n - 1].get().unwrap(), (n - 1) as u64);
    // Before registry layout 2: 556 bytes each (a 357-byte registry share).
    // Registry layout 2 with page-rounded growth: 332 (a 132-byte registry share).
    assert!(per(total) < 420.0, "{:.0} bytes per counter", per(total));
    assert!(
        per(registry) < 200.0,
        "registry: {:.0} bytes per counter",
        per(registry)
    );
    drop(counters);
    m.shutdown().unwrap();
    assert!(tracked(&root).is_empty());
}
