//! `cargo xtask bench`: criterion benches and CPython anchors in one run, then a table
//! of ns/op and ratios, `target/shm-bench/report.json` and `report.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::{Result, cargo, target_dir, workspace_root};

/// One row of `shm-bench/comparisons/*.json`.
struct Comparison {
    label: String,
    rust: String,
    anchor: String,
}

pub fn run(filter: Option<&str>, python: bool) -> Result {
    let started = SystemTime::now();
    // `peers` builds benches/peers.rs (iceoryx2, ipc-channel, raw_sync, shared_hashmap),
    // which CI never compiles.
    let mut args = vec![
        "bench",
        "-p",
        "shm-bench",
        "--benches",
        "--features",
        "peers",
        "--",
        "--noplot",
    ];
    if let Some(f) = filter {
        args.push(f);
    }
    // `manager/footprint` times `shm ls` over 10^5 objects: the release `shm` binary.
    let footprint = filter.is_none_or(|f| matches_filter(f, FOOTPRINT_ID));
    let shm_bin = target_dir().join("release/shm");
    let mut envs = Vec::new();
    if footprint {
        cargo(
            &["build", "--release", "-p", "shm-manager", "--bin", "shm"],
            &[],
        )?;
        envs.push((
            "SHM_BENCH_SHM_BIN",
            shm_bin.to_str().ok_or("target path is not UTF-8")?,
        ));
    }
    cargo(&args, &envs)?;
    let mut results = criterion_results(&target_dir().join("criterion"), started)?;
    if python {
        results.extend(python_results(filter)?);
    }
    let comparisons = comparisons()?;
    let report = report(&results, &comparisons);
    print_tables(&results, &report);
    if footprint {
        print_footprint(started);
    }
    let out = target_dir().join("shm-bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out.join("report.svg"), svg(&report))?;
    println!(
        "\nwrote {} and report.svg",
        out.join("report.json").display()
    );
    Ok(())
}

/// The id of the manager's footprint measurement (shm-bench/benches/manager.rs).
const FOOTPRINT_ID: &str = "manager/footprint";

/// Prints `target/shm-bench/manager_footprint.json` when this run wrote it.
fn print_footprint(since: SystemTime) {
    let path = target_dir().join("shm-bench/manager_footprint.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    let Some(v) = fresh
        .then(|| std::fs::read_to_string(&path).ok())
        .flatten()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
    else {
        return;
    };
    println!(
        "\n{FOOTPRINT_ID}: {} Value<u64> through one manager: {} bytes of /dev/shm per object ({} in the registry), RSS {} bytes per object; `shm ls` over them: {} s",
        v["objects"],
        v["bytes_per_object"],
        v["registry_bytes"],
        v["rss_bytes_per_object"],
        v["shm_ls_seconds"]
    );
}

/// The two-process throughput rows: a child moves messages while the parent times them,
/// so a sample that caught a sleep (a full or empty ring) is part of what a user gets.
/// They are reported by criterion's mean (total time over messages moved), with the
/// median beside them as `<id> (median)`; every other row by its median.
const MEAN_ROWS: [&str; 2] = ["queue/bytes_64b_throughput", "queue/bytes_4k_throughput"];

/// Appended to a [`MEAN_ROWS`] id for its median row.
const MEDIAN_SUFFIX: &str = " (median)";

/// The ns/op reported for benchmark `id` from its criterion `estimates.json`: the mean
/// for [`MEAN_ROWS`], the median otherwise.
fn reported_ns(id: &str, estimates: &Value) -> Option<f64> {
    let stat = if MEAN_ROWS.contains(&id) {
        "mean"
    } else {
        "median"
    };
    estimates[stat]["point_estimate"].as_f64()
}

/// The median of a [`MEAN_ROWS`] benchmark, shown beside its mean; `None` for others.
fn throughput_median(id: &str, estimates: &Value) -> Option<f64> {
    MEAN_ROWS
        .contains(&id)
        .then(|| estimates["median"]["point_estimate"].as_f64())
        .flatten()
}

/// ns/op of every criterion benchmark measured since `since`, by full id (see
/// [`reported_ns`]; [`MEAN_ROWS`] add a median row).
fn criterion_results(dir: &Path, since: SystemTime) -> Result<BTreeMap<String, f64>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.file_name().is_none_or(|n| n != "estimates.json")
                || !path.parent().is_some_and(|p| p.ends_with("new"))
            {
                continue;
            }
            if std::fs::metadata(&path)?.modified()? < since {
                continue; // a result of an earlier run
            }
            let estimates: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            let bench: Value = serde_json::from_str(&std::fs::read_to_string(
                path.with_file_name("benchmark.json"),
            )?)?;
            if let Some(id) = bench["full_id"].as_str() {
                if let Some(ns) = reported_ns(id, &estimates) {
                    found.insert(id.to_owned(), ns);
                }
                if let Some(median) = throughput_median(id, &estimates) {
                    found.insert(format!("{id}{MEDIAN_SUFFIX}"), median);
                }
            }
        }
    }
    Ok(found)
}

/// The packages `dict.py` measures, as pip names them and as Python imports them.
const DICT_PACKAGES: [(&str, &str); 3] = [
    ("UltraDict", "UltraDict"),
    ("atomics", "atomics"),
    ("shared-memory-dict", "shared_memory_dict"),
];

/// The package `process.py` fills shared memory with (numpy over `SharedMemory.buf`).
const PROCESS_PACKAGES: [(&str, &str); 1] = [("numpy", "numpy")];

/// The python of `target/shm-bench/venv`, given `packages` (pip name, import name) when
/// it lacks them. On failure (offline, no venv module) prints why, with `skipped` (what
/// the script does without them), and returns `python3`.
fn venv_python(packages: &[(&str, &str)], skipped: &str) -> String {
    let venv = target_dir().join("shm-bench/venv");
    let python = venv.join("bin/python");
    let imports = packages
        .iter()
        .map(|(_, m)| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let has_all = || {
        Command::new(&python)
            .args(["-c", &imports])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_all() {
        return python.display().to_string();
    }
    let step = |what: &str, cmd: &mut Command| -> bool {
        eprintln!("$ {what}");
        match cmd.output() {
            Ok(o) if o.status.success() => true,
            Ok(o) => {
                eprintln!(
                    "note: `{what}` failed ({}):\n{}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim_end()
                );
                false
            }
            Err(e) => {
                eprintln!("note: `{what}` could not run: {e}");
                false
            }
        }
    };
    let made = python.exists()
        || step(
            &format!("python3 -m venv {}", venv.display()),
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        );
    let pip: Vec<&str> = packages.iter().map(|(p, _)| *p).collect();
    if made
        && step(
            &format!("{} -m pip install {}", python.display(), pip.join(" ")),
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .args(&pip),
        )
        && has_all()
    {
        return python.display().to_string();
    }
    eprintln!("note: no venv with {}: {skipped}", pip.join(", "));
    "python3".to_owned()
}

/// Runs every `shm-bench/python/*.py` with `python3` (`dict.py` and `process.py` with the
/// venv's python, see [`venv_python`]); each prints `{"id", "ns"}` lines and may print `note: ` lines
/// on stderr, which are passed on.
fn python_results(filter: Option<&str>) -> Result<BTreeMap<String, f64>> {
    let mut found = BTreeMap::new();
    let dir = workspace_root().join("shm-bench/python");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    scripts.sort();
    for script in scripts
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
    {
        let python = match script.file_name().and_then(|n| n.to_str()) {
            Some("dict.py") => venv_python(
                &DICT_PACKAGES,
                "the UltraDict and shared-memory-dict anchors are skipped \
                 (Manager().dict() is still measured)",
            ),
            Some("process.py") => venv_python(
                &PROCESS_PACKAGES,
                "the 100 MB fill's CPython row is a plain-Python fill \
                 (py/process/fill_100mb_f64_plain), not numpy",
            ),
            _ => "python3".to_owned(),
        };
        eprintln!("$ {python} {}", script.display());
        let out = Command::new(&python)
            .arg(&script)
            .env("SHM_BENCH_FILTER", filter.unwrap_or(""))
            // The script's own directory must not shadow the standard library:
            // `collections.py` there would replace `collections` (Python >= 3.11).
            .env("PYTHONSAFEPATH", "1")
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        for line in String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("note: "))
        {
            eprintln!("{line}");
        }
        for line in String::from_utf8(out.stdout)?
            .lines()
            .filter(|l| l.starts_with('{'))
        {
            let v: Value = serde_json::from_str(line)?;
            if let (Some(id), Some(ns)) = (v["id"].as_str(), v["ns"].as_f64()) {
                if filter.is_none_or(|f| matches_filter(f, id)) {
                    found.insert(id.to_owned(), ns);
                }
            }
        }
    }
    Ok(found)
}

/// Whether a CPython id passes the filter: criterion reads the filter as a regex, so
/// `a|b` (any alternative contained in the id) is honoured here too.
fn matches_filter(filter: &str, id: &str) -> bool {
    filter.split('|').any(|part| id.contains(part))
}

fn comparisons() -> Result<Vec<Comparison>> {
    let dir = workspace_root().join("shm-bench/comparisons");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for file in files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let list: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
        for row in list
            .as_array()
            .ok_or_else(|| format!("{}: expected a JSON array", file.display()))?
        {
            let field = |k: &str| {
                row[k]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{}: a row lacks {k:?}", file.display()))
            };
            rows.push(Comparison {
                label: field("label")?,
                rust: field("rust")?,
                anchor: field("anchor")?,
            });
        }
    }
    Ok(rows)
}

fn report(results: &BTreeMap<String, f64>, comparisons: &[Comparison]) -> Value {
    let rows: Vec<Value> = comparisons
        .iter()
        .filter_map(|c| {
            let (r, a) = (results.get(&c.rust)?, results.get(&c.anchor)?);
            Some(json!({
                "label": c.label, "rust": c.rust, "anchor": c.anchor,
                "rust_ns": r, "anchor_ns": a, "ratio": a / r,
            }))
        })
        .collect();
    let uname = Command::new("uname")
        .arg("-srm")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    json!({
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "uname": uname },
        "ratio": "anchor ns / rust ns: above 1 means the Rust side is faster",
        "results_ns": results,
        "comparisons": rows,
    })
}

fn print_tables(results: &BTreeMap<String, f64>, report: &Value) {
    println!("\n{:<58} {:>14}", "benchmark", "ns/op");
    for (id, ns) in results {
        println!("{id:<58} {:>14}", fmt_ns(*ns));
    }
    println!(
        "\n{:<78} {:>12} {:>12} {:>10}",
        "comparison (ratio = anchor / rust)", "rust ns", "anchor ns", "ratio"
    );
    for row in report["comparisons"].as_array().into_iter().flatten() {
        println!(
            "{:<78} {:>12} {:>12} {:>9.2}x",
            row["label"].as_str().unwrap_or(""),
            fmt_ns(row["rust_ns"].as_f64().unwrap_or(0.0)),
            fmt_ns(row["anchor_ns"].as_f64().unwrap_or(0.0)),
            row["ratio"].as_f64().unwrap_or(0.0)
        );
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 100.0 {
        format!("{ns:.0}")
    } else {
        format!("{ns:.2}")
    }
}

/// A bar per comparison, log scale, 1x marked.
fn svg(report: &Value) -> String {
    let rows = report["comparisons"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (label_w, bar_w, row_h) = (560.0, 420.0, 22.0);
    let height = 40.0 + row_h * rows.len() as f64;
    let max_log = rows
        .iter()
        .filter_map(|r| r["ratio"].as_f64())
        .map(|r| r.log10().abs())
        .fold(1.0_f64, f64::max)
        .ceil();
    let x_of = |ratio: f64| label_w + bar_w / 2.0 + (ratio.log10() / max_log) * (bar_w / 2.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="12">"#,
        label_w + bar_w + 90.0
    );
    let _ = writeln!(
        s,
        r#"<text x="4" y="16">shm bench: anchor / rust (log scale, 1x marked; right of the line = Rust faster)</text>"#
    );
    for (i, row) in rows.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let ratio = row["ratio"].as_f64().unwrap_or(1.0);
        let (x0, x1) = (x_of(1.0), x_of(ratio));
        let color = if ratio >= 1.0 { "#3a7" } else { "#c54" };
        let label = row["label"]
            .as_str()
            .unwrap_or("")
            .replace('&', "&amp;")
            .replace('<', "&lt;");
        let _ = writeln!(s, r#"<text x="4" y="{}">{label}</text>"#, y + 14.0);
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{color}"/>"#,
            x0.min(x1),
            y + 3.0,
            (x1 - x0).abs().max(1.0),
            row_h - 6.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{ratio:.2}x</text>"#,
            label_w + bar_w + 8.0,
            y + 14.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{0}" y1="24" x2="{0}" y2="{height}" stroke="#000"/></svg>"##,
        x_of(1.0)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of criterion 0.5's `new/estimates.json` (numbers shortened).
    const ESTIMATES: &str = r#"{
        "mean": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": 130.1, "upper_bound": 134.9},
                 "point_estimate": 132.5, "standard_error": 1.2},
        "median": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": 75.0, "upper_bound": 78.0},
                   "point_estimate": 76.7, "standard_error": 0.8},
        "median_abs_dev": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": 1.0, "upper_bound": 2.0},
                           "point_estimate": 1.5, "standard_error": 0.1},
        "slope": null,
        "std_dev": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": 10.0, "upper_bound": 20.0},
                    "point_estimate": 15.0, "standard_error": 2.0}
    }"#;

    #[test]
    fn throughput_rows_report_the_mean_with_the_median_beside() {
        let e: Value = serde_json::from_str(ESTIMATES).unwrap();
        for id in MEAN_ROWS {
            assert_eq!(reported_ns(id, &e), Some(132.5), "{id}");
            assert_eq!(throughput_median(id, &e), Some(76.7), "{id}");
        }
    }

    #[test]
    fn other_rows_report_the_median() {
        let e: Value = serde_json::from_str(ESTIMATES).unwrap();
        for id in [
            "queue/bytes_roundtrip",
            "queue/slot_spsc_4k_throughput",
            "sync/mutex",
        ] {
            assert_eq!(reported_ns(id, &e), Some(76.7), "{id}");
            assert_eq!(throughput_median(id, &e), None, "{id}");
        }
    }

    #[test]
    fn criterion_results_reads_a_results_tree() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (id, sub) in [
            (
                "queue/bytes_64b_throughput",
                "queue/bytes_64b_throughput/new",
            ),
            ("queue/bytes_roundtrip", "queue/bytes_roundtrip/new"),
        ] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("estimates.json"), ESTIMATES).unwrap();
            std::fs::write(
                d.join("benchmark.json"),
                json!({ "full_id": id }).to_string(),
            )
            .unwrap();
        }
        let found = criterion_results(&dir, SystemTime::UNIX_EPOCH).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found["queue/bytes_64b_throughput"], 132.5);
        assert_eq!(found["queue/bytes_64b_throughput (median)"], 76.7);
        assert_eq!(found["queue/bytes_roundtrip"], 76.7);
        assert_eq!(found.len(), 3);
    }
}
