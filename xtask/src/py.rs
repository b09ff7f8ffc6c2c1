//! `cargo xtask test` (the Python half) and `cargo xtask bench py`: the package `shm`
//! (shm-py) built with maturin in `target/py-venv`, its pytest suite, the abi3 wheel
//! imported on every CPython 3.9+ on the machine, and the Python benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::{Result, target_dir, workspace_root};

/// What the test venv gets from PyPI (maturin builds, the rest runs the suite).
const TEST_PACKAGES: &[&str] = &["maturin>=1.5,<2", "pytest", "hypothesis", "numpy"];
/// What the bench venv adds: the peers the issue compares with.
const BENCH_PACKAGES: &[&str] = &["UltraDict", "shared-memory-dict", "faster-fifo"];

fn run(cmd: &mut Command) -> Result {
    eprintln!("$ {cmd:?}");
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}").into());
    }
    Ok(())
}

/// A venv under `target/` with `packages`, made once (a stamp file names what it has).
fn venv(dir: &Path, packages: &[&str]) -> Result<PathBuf> {
    let python = dir.join("bin/python");
    let stamp = dir.join("shm-packages.txt");
    let want = packages.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && python.exists() {
        return Ok(python);
    }
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(dir))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--timeout",
            "60",
            "--retries",
            "3",
        ])
        .args(packages))?;
    std::fs::write(&stamp, want)?;
    Ok(python)
}

/// Builds the abi3 wheel with the venv's maturin and returns its path.
fn build_wheel(python: &Path) -> Result<PathBuf> {
    let out = target_dir().join("py-wheels");
    let _ = std::fs::remove_dir_all(&out);
    let maturin = python.with_file_name("maturin");
    run(Command::new(maturin)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-m",
            "shm-py/Cargo.toml",
            "-i",
        ])
        .arg(python)
        .arg("-o")
        .arg(&out))?;
    let wheel = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin wrote no wheel")?;
    Ok(wheel)
}

/// Every CPython 3.9+ on the machine: `python3` and pyenv's versions.
fn interpreters() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut candidates = vec![PathBuf::from("python3")];
    for root in ["/root/.pyenv/versions", "/usr/bin"] {
        let Ok(dir) = std::fs::read_dir(root) else {
            continue;
        };
        for e in dir.flatten() {
            let p = e.path();
            if root.ends_with("versions") {
                for minor in 9..=20 {
                    let c = p.join(format!("bin/python3.{minor}"));
                    if c.exists() {
                        candidates.push(c);
                    }
                }
            } else if let Some(n) = p.file_name().and_then(|n| n.to_str())
                && n.strip_prefix("python3.")
                    .is_some_and(|m| m.parse::<u32>().is_ok())
            {
                candidates.push(p);
            }
        }
    }
    for c in candidates {
        let Ok(out) = Command::new(&c)
            .args([
                "-c",
                "import sys; print('%d.%d' % sys.version_info[:2], sys.implementation.name)",
            ])
            .output()
        else {
            continue;
        };
        let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let Some((ver, imp)) = v.split_once(' ') else {
            continue;
        };
        let minor = ver.strip_prefix("3.").and_then(|m| m.parse::<u32>().ok());
        if imp == "cpython" && minor.is_some_and(|m| m >= 9) && seen.insert(ver.to_owned()) {
            found.push(c);
        }
    }
    found
}

/// The Python half of `cargo xtask test`.
pub fn test() -> Result {
    let python = venv(&py_venv(), TEST_PACKAGES)?;
    let wheel = build_wheel(&python)?;
    install_wheel(&python, &wheel, SystemTime::now())?;
    run(Command::new(&python).current_dir(workspace_root()).args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "shm-py/tests",
    ]))?;
    abi_smoke(&python, &wheel)
}

/// The venv `cargo xtask test` uses (and the demo's Python worker).
fn py_venv() -> PathBuf {
    target_dir().join("py-venv")
}

/// Next to the installed wheel: its mtime is when the sources it was built from were read.
const WHEEL_STAMP: &str = "shm-wheel-built";

/// Installs `wheel` into the venv of `python` and stamps it as built from the sources
/// as they were at `built_from`.
fn install_wheel(python: &Path, wheel: &Path, built_from: SystemTime) -> Result {
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
        ])
        .arg(wheel))?;
    let stamp = python
        .parent()
        .and_then(Path::parent)
        .ok_or("a venv's python lives in <venv>/bin")?
        .join(WHEEL_STAMP);
    std::fs::File::create(&stamp)?.set_modified(built_from)?;
    Ok(())
}

/// What the wheel is built from: shm-py and the crates it links (their `src` and
/// manifests), and the lock file.
const WHEEL_SOURCES: &[&str] = &[
    "Cargo.lock",
    "shm-py/Cargo.toml",
    "shm-py/pyproject.toml",
    "shm-py/src",
    "shm-py/python",
    "shm-core/Cargo.toml",
    "shm-core/src",
    "shm-sync/Cargo.toml",
    "shm-sync/src",
    "shm-collections/Cargo.toml",
    "shm-collections/src",
    "shm-manager/Cargo.toml",
    "shm-manager/src",
];

/// The newest mtime of a file under `path` (the file itself if it is one).
fn newest(path: &Path) -> std::io::Result<SystemTime> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return meta.modified();
    }
    let mut t = SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(path)? {
        t = t.max(newest(&e?.path())?);
    }
    Ok(t)
}

/// The python of `target/py-venv` with the package `shm` installed: the venv made and
/// the wheel built (release, a few minutes the first time) only when missing or older
/// than its sources. For the demo's Python worker.
pub(crate) fn python_with_shm() -> Result<PathBuf> {
    let dir = py_venv();
    let python = venv(&dir, TEST_PACKAGES)?;
    let root = workspace_root();
    let mut sources = SystemTime::UNIX_EPOCH;
    for s in WHEEL_SOURCES {
        sources = sources.max(newest(&root.join(s))?);
    }
    let installed = std::fs::metadata(dir.join(WHEEL_STAMP)).and_then(|m| m.modified());
    if installed.is_ok_and(|t| t >= sources) {
        return Ok(python);
    }
    println!("building the Python package shm into target/py-venv (maturin, release; once)");
    // Sources saved during the build make the next run build again.
    let started = SystemTime::now();
    let wheel = build_wheel(&python)?;
    install_wheel(&python, &wheel, started)?;
    Ok(python)
}

/// Imports the one abi3 wheel on every CPython 3.9+ present; each shares objects with
/// the venv's Python (`shm-py/tests/abi_smoke.py`).
fn abi_smoke(python: &Path, wheel: &Path) -> Result {
    let script = workspace_root().join("shm-py/tests/abi_smoke.py");
    let mut versions = Vec::new();
    for interp in interpreters() {
        let out = Command::new(&interp)
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .output()?;
        let ver = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        // The wheel unpacked (a wheel is a zip): no pip, nothing in the interpreter.
        let dir = target_dir().join(format!("py-abi/{ver}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        run(Command::new(&interp)
            .args([
                "-c",
                "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
            ])
            .arg(wheel)
            .arg(&dir))?;
        run(Command::new(python).arg(&script).arg(&interp).arg(&dir))?;
        versions.push(ver);
    }
    println!("abi3 wheel imported on CPython {}", versions.join(", "));
    Ok(())
}

/// `cargo xtask bench py`: every `shm-py/bench/bench_*.py` in the bench venv.
pub fn bench() -> Result {
    let python = venv(&target_dir().join("py-bench-venv"), TEST_PACKAGES)?;
    // The peers one by one: one that does not build here (faster-fifo compiles C++) is
    // left out of the table with a note, not a failed run.
    for peer in BENCH_PACKAGES {
        let stamp = python.with_file_name(format!("shm-peer-{peer}"));
        if stamp.exists() {
            continue;
        }
        let ok = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--timeout",
                "60",
                peer,
            ])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            std::fs::write(&stamp, "")?;
        } else {
            eprintln!("xtask: the peer {peer} did not install; its rows are left out");
        }
    }
    let wheel = build_wheel(&python)?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
        ])
        .arg(&wheel))?;
    let dir = workspace_root().join("shm-py/bench");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("bench_") && n.ends_with(".py"))
        })
        .collect();
    scripts.sort();
    let mut rows = Vec::new();
    for s in &scripts {
        eprintln!("$ {} {}", python.display(), s.display());
        let out = Command::new(&python).arg(s).output()?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}\n{}",
                s.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((name, ns)) = line.split_once('\t')
                && let Ok(ns) = ns.trim().parse::<f64>()
            {
                rows.push((name.to_owned(), ns));
            } else {
                println!("{line}");
            }
        }
    }
    print_table(&rows);
    Ok(())
}

/// One table: every row's ns/op, and for a row `group/ours` the ratio of each
/// `group/peer` to it (how many times faster ours is).
fn print_table(rows: &[(String, f64)]) {
    // "vs shm": how many times longer the row takes than shm's row of its group.
    println!("\n{:<48} {:>12} {:>10}", "benchmark", "ns/op", "vs shm");
    for (name, ns) in rows {
        let group = name.split_once('/').map_or(name.as_str(), |(g, _)| g);
        let ours = rows
            .iter()
            .find(|(n, _)| {
                n.strip_prefix(group)
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(|r| r.starts_with("shm"))
            })
            .map(|(_, v)| *v);
        let ratio = match ours {
            Some(o) if o > 0.0 => format!("{:.2}x", ns / o),
            _ => String::new(),
        };
        println!("{name:<48} {ns:>12.1} {ratio:>10}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wheel_source_exists() {
        for s in WHEEL_SOURCES {
            assert!(
                workspace_root().join(s).exists(),
                "{s} is gone: update WHEEL_SOURCES"
            );
        }
    }

    #[test]
    fn newest_finds_the_newest_file_in_a_tree() {
        let dir = target_dir().join(format!("xtask-newest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let new = old + std::time::Duration::from_secs(60);
        for (f, t) in [("x", old), ("a/y", old), ("a/b/z", new)] {
            std::fs::File::create(dir.join(f))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        // Directories' own mtimes (now) do not count, only files'.
        let found = newest(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, new);
    }
}
