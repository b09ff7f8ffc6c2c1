//! Runs every port of the porting material (`examples/`, see
//! `../shared/porting-examples.md`): each prints what its Python original prints, leaves
//! nothing in /dev/shm, and is at most twice its original's non-blank lines.
//!
//! The examples are built once with the `cargo` that runs this test (the `CARGO`
//! variable), in this test's profile, then run from `target/<profile>/examples/`
//! (`cargo run --example` would check the build once per example).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shm_core::identity::Liveness;

/// What an example's output must be.
enum Expect {
    /// These lines, in this order.
    Exactly(&'static [&'static str]),
    /// These lines in any order (the original's order depends on scheduling too).
    AnyOrder(&'static [&'static str]),
    /// Checked by a function (random numbers, random names).
    Check(fn(&[&str]) -> Result<(), String>),
}

/// Each port: its file name, the material's number (`#n`), the non-blank lines of the
/// Python original as quoted there, and its expected output.
const PORTS: &[(&str, u32, usize, Expect)] = &[
    (
        "numpy_view_doubled",
        1,
        31,
        Expect::Exactly(&[
            "Initial Data in Parent Process: [1 2 3 4]",
            "Child Process Modified Data: [2 4 6 8]",
            "Data in Parent Process After Child Modification: [2 4 6 8]",
        ]),
    ),
    (
        "shareable_list_child",
        2,
        22,
        Expect::Exactly(&[
            "Initial Data in Parent Process: [1, 2, 3, 4]",
            "Child Process Modified Data: [99, 2, 3, 4]",
            "Data in Parent Process After Child Modification: [99, 2, 3, 4]",
        ]),
    ),
    (
        "shareable_dict_child",
        3,
        22,
        Expect::Exactly(&[
            "Initial Data in Parent Process: {'key': 'initial_value'}",
            "Child Process Modified Data: {'key': 'initial_value', 'key1': 'value1'}",
            "Data in Parent Process After Child Modification: {'key': 'initial_value', 'key1': 'value1'}",
        ]),
    ),
    ("value_two_processes", 4, 12, Expect::AnyOrder(&["1", "2"])),
    // CPython's actual output (the document's numbers are one too high).
    (
        "array_two_processes",
        5,
        13,
        Expect::AnyOrder(&["[1, 2, 3, 4, 5]", "[2, 3, 4, 5, 6]"]),
    ),
    (
        "manager_dict_two_processes",
        6,
        14,
        Expect::Exactly(&["{0: 'b', 1: 'a'}", "{0: 'b', 1: 'a'}"]),
    ),
    (
        "pipe_send_list",
        7,
        10,
        Expect::Exactly(&["['hi!! I am Python']"]),
    ),
    ("queue_producer_consumer", 8, 35, Expect::Check(check_queue)),
    (
        "lock_ten_processes",
        9,
        11,
        Expect::AnyOrder(&[
            "hello world 0",
            "hello world 1",
            "hello world 2",
            "hello world 3",
            "hello world 4",
            "hello world 5",
            "hello world 6",
            "hello world 7",
            "hello world 8",
            "hello world 9",
        ]),
    ),
    ("event_two_workers", 10, 30, Expect::Check(check_event)),
    ("value_set_in_child", 11, 9, Expect::Exactly(&["10.78"])),
    (
        "array_set_in_child",
        12,
        9,
        Expect::Exactly(&["[1, 2, 9999, 4, 5]"]),
    ),
    (
        "shared_memory_attach",
        13,
        17,
        Expect::Exactly(&[
            "<class 'memoryview'>",
            "10",
            "array('b', [22, 33, 44, 55, 100])",
            "b'howdy'",
        ]),
    ),
    (
        "shareable_list_session",
        14,
        29,
        Expect::Check(check_list_session),
    ),
    ("manager_fragments", 15, 20, Expect::Exactly(&[])),
    // The document's order (CPython 3.11 prints insertion order).
    (
        "manager_dict_list",
        16,
        15,
        Expect::Exactly(&[
            "{0.25: None, 1: '1', '2': 2}",
            "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]",
        ]),
    ),
    ("smm_two_workers", 17, 18, Expect::Exactly(&["3998000"])),
    ("custom_type_manager", 18, 14, Expect::Exactly(&["7", "56"])),
    (
        "manager_list_not_started",
        20,
        17,
        Expect::Exactly(&["it's ok"]),
    ),
];

fn check_queue(lines: &[&str]) -> Result<(), String> {
    let number = |l: &&str, pre: &str, post: &str| {
        let n = l
            .strip_prefix(pre)?
            .strip_suffix(post)?
            .parse::<u64>()
            .ok()?;
        (n % 2 == 0 && (1..=100).contains(&n)).then_some(n)
    };
    let put: Vec<u64> = lines
        .iter()
        .map_while(|l| number(l, "put ", " in queue by producer"))
        .collect();
    // "queue is full" only after five puts, when a sixth even number came.
    let full = usize::from(put.len() == 5 && lines.get(5) == Some(&"queue is full"));
    let took: Vec<u64> = lines[put.len() + full..]
        .iter()
        .map_while(|l| number(l, "take data ", " from queue by consumer"))
        .collect();
    if put != took
        || put.len() > 5
        || lines.len() != 2 * put.len() + full + 1
        || lines.last() != Some(&"0")
    {
        return Err(format!(
            "expected up to 5 even puts, the same takes, then 0; found {lines:?}"
        ));
    }
    Ok(())
}

fn check_event(lines: &[&str]) -> Result<(), String> {
    let starts: BTreeSet<&str> = lines.iter().take(2).copied().collect();
    let ends: BTreeSet<&str> = lines.iter().skip(2).take(2).copied().collect();
    let in_range = |l: Option<&&str>, r: std::ops::RangeInclusive<u64>| {
        l.and_then(|l| l.parse::<u64>().ok())
            .is_some_and(|n| r.contains(&n))
    };
    let ok = lines.len() == 6
        && starts == BTreeSet::from(["subprocess joo_a start", "subprocess joo_b start"])
        && ends == BTreeSet::from(["subprocess joo_a ended", "subprocess joo_b ended"])
        && in_range(lines.get(4), 200..=300)
        && in_range(lines.get(5), 1..=100);
    if !ok {
        return Err(format!(
            "expected two starts, two ends, 200..=300 then 1..=100; found {lines:?}"
        ));
    }
    Ok(())
}

fn check_list_session(lines: &[&str]) -> Result<(), String> {
    let fixed = [
        "[<class 'str'>, <class 'bytes'>, <class 'float'>, <class 'int'>, <class 'NoneType'>, <class 'bool'>, <class 'int'>]",
        "-273.154",
        "-78.5",
        "'dry ice'",
        "",
        "'dry ice'",
        "7",
        "6",
        "0",
        "1",
        "",
        "-999",
    ];
    let ok = lines.len() == fixed.len()
        && lines
            .iter()
            .zip(fixed)
            .enumerate()
            .all(|(i, (l, f))| match i {
                4 => l.starts_with("ValueError: "),
                10 => l.starts_with("ShareableList([0, 1, 2, 3, 4], name='") && l.ends_with("')"),
                _ => *l == f,
            });
    if !ok {
        return Err(format!(
            "expected the session's results {fixed:?}, found {lines:?}"
        ));
    }
    Ok(())
}

/// `target/<profile>`: this test binary lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/")
        .to_owned()
}

fn shm_names() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .expect("/dev/shm is readable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// Names created since `before` that stay, waiting a little for trackers; a segment
/// whose header names a living creator belongs to someone else (other tests running
/// beside this one), since every process of an example has exited.
fn leftovers(before: &BTreeSet<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<String> = shm_names()
            .difference(before)
            .filter(|n| {
                !shm_core::Object::inspect(n).is_ok_and(|i| i.creator.liveness() == Liveness::Alive)
            })
            .cloned()
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_port_prints_what_its_original_prints_and_leaves_nothing() {
    let profile = profile_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // `--workspace`: the features `cargo test --workspace` unifies, so that after it
    // this build has nothing to do (`-p shm-process` would build the crates again).
    build.args(["build", "--quiet", "--workspace", "--examples"]);
    if profile.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    assert!(
        build.status().expect("cargo runs").success(),
        "building the examples failed"
    );

    let mut failures = Vec::new();
    for (name, number, _, expect) in PORTS {
        let before = shm_names();
        let out = Command::new(profile.join("examples").join(name))
            .output()
            .unwrap_or_else(|e| panic!("cannot run example {name}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let verdict = if !out.status.success() {
            Err(format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        } else {
            match expect {
                Expect::Exactly(want) if lines != *want => {
                    Err(format!("expected {want:?}, found {lines:?}"))
                }
                Expect::AnyOrder(want) => {
                    let (mut got, mut want) = (lines.clone(), want.to_vec());
                    got.sort_unstable();
                    want.sort_unstable();
                    if got == want {
                        Ok(())
                    } else {
                        Err(format!("expected {want:?} in any order, found {lines:?}"))
                    }
                }
                Expect::Check(check) => check(&lines),
                Expect::Exactly(_) => Ok(()),
            }
        };
        if let Err(e) = verdict {
            failures.push(format!("{name} (#{number}): {e}"));
        }
        let left = leftovers(&before);
        for n in &left {
            let _ = shm_core::unlink(n); // reported below; not left for the next run
        }
        if !left.is_empty() {
            failures.push(format!(
                "{name} (#{number}): expected nothing left in /dev/shm, found {left:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_port_is_listed_and_at_most_twice_its_original() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".rs")
                .map(str::to_owned)
        })
        .filter(|n| n != "spawn_cost") // a benchmark, not a port
        .collect();
    files.sort();
    let mut listed: Vec<String> = PORTS.iter().map(|p| p.0.to_owned()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "expected every example in PORTS and every port in examples/"
    );
    for (name, number, python, _) in PORTS {
        let text = std::fs::read_to_string(dir.join(format!("{name}.rs"))).expect("the example");
        let rust = text.lines().filter(|l| !l.trim().is_empty()).count();
        assert!(
            rust <= 2 * python,
            "{name} (#{number}): expected at most {} non-blank lines (twice the Python's {python}), found {rust}",
            2 * python
        );
    }
}
