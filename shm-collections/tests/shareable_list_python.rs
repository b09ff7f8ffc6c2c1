//! Interop with CPython 3.9+ (`python3` and every pyenv CPython that
//! `shm_core::testing::pythons()` finds): both directions, every item type, type
//! changes in place, and writes from one side while the other is attached.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use shm_collections::{Item, ShareableList};
use shm_core::testing::{UnlinkGuard, pythons, run_python};

/// Attaches to a list without letting this interpreter's resource tracker unlink it.
const PY_PRELUDE: &str = r#"
import sys
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import ShareableList
def attach_list(name):
    sl = ShareableList(name=name)
    resource_tracker.unregister(sl.shm._name, "shared_memory")
    return sl
def dump(sl):
    return bytes(sl.shm.buf).hex()
"#;

/// Every item type, edge values, quotes, non-ASCII text (sized alike by characters
/// and by UTF-8 bytes, so CPython's layout is byte-identical).
const PY_ITEMS: &str = r#"ITEMS = ['howdy', b'HoWdY', -273.154, 100, None, True, 42, 'héllo wörld', b'',
    '', 2**63 - 1, -2**63, 1e16, float('inf'), 0.1, 'it\'s "q"', b'\x01\xff\'', False, -0.0, 'a' * 17]"#;

fn items() -> Vec<Item> {
    vec![
        "howdy".into(),
        b"HoWdY".into(),
        (-273.154).into(),
        100.into(),
        Item::None,
        true.into(),
        42.into(),
        "héllo wörld".into(),
        Item::Bytes(vec![]),
        "".into(),
        i64::MAX.into(),
        i64::MIN.into(),
        1e16.into(),
        f64::INFINITY.into(),
        0.1.into(),
        "it's \"q\"".into(),
        b"\x01\xff'".into(),
        false.into(),
        (-0.0).into(),
        "a".repeat(17).into(),
    ]
}

/// Writes CPython applies (type changes in place included); `rust_writes_a` mirrors them.
const PY_WRITES_A: &str = r#"
for i, v in [(0, 'changed'), (1, 12345), (2, None), (3, b'by'), (4, 2.5), (5, 'x'), (6, False),
             (7, 'ok'), (8, -1), (9, b'12345678'), (12, True), (19, b'0123456789abcdefghijklm')]:
    sl[i] = v
"#;

fn writes_a() -> Vec<(usize, Item)> {
    vec![
        (0, "changed".into()),
        (1, 12345.into()),
        (2, Item::None),
        (3, b"by".into()),
        (4, 2.5.into()),
        (5, "x".into()),
        (6, false.into()),
        (7, "ok".into()),
        (8, (-1).into()),
        (9, b"12345678".into()),
        (12, true.into()),
        (19, b"0123456789abcdefghijklm".into()),
    ]
}

/// Writes this side applies while CPython is attached.
fn writes_b() -> Vec<(usize, Item)> {
    vec![
        (0, 99.into()),
        (1, "now str".into()),
        (13, b"zz".into()),
        (14, "é".into()),
        (15, Item::None),
        (19, "twenty-four bytes exact!".into()),
    ]
}

fn py_repr(items: &[Item]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

fn bytes_of(sl: &ShareableList) -> Vec<u8> {
    let mut buf = vec![0; sl.segment().len()];
    sl.segment().read_at(0, &mut buf).unwrap();
    buf
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn apply(sl: &mut ShareableList, writes: &[(usize, Item)], model: &mut [Item]) {
    for (i, v) in writes {
        sl.set(*i, v.clone()).unwrap();
        model[*i] = v.clone();
    }
}

/// Rust creates; CPython attaches, reads, writes (type changes), and while it stays
/// attached Rust reads its writes and writes back, which CPython then reads.
fn rust_creates(python: &Path) {
    let mut model = items();
    let mut sl = ShareableList::create(model.clone()).unwrap();
    let name = sl.name().unwrap().to_owned();
    let format_before = sl.format().unwrap();
    let script = format!(
        "{PY_PRELUDE}\nsl = attach_list(sys.argv[1])\nprint(repr(list(sl)))\nprint(sl.format)\n\
         {PY_WRITES_A}\nprint(dump(sl))\nsys.stdout.flush()\nsys.stdin.readline()\n\
         print(repr(list(sl)))\nsl.shm.close()\n"
    );
    let mut child = Command::new(python)
        .arg("-c")
        .arg(&script)
        .arg(&name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = || {
        let mut s = String::new();
        out.read_line(&mut s).unwrap();
        s.trim_end_matches('\n').to_owned()
    };
    let who = python.display();
    let first = line();
    assert_eq!(
        first,
        py_repr(&model),
        "{who}: CPython's view of a Rust-made list"
    );
    assert_eq!(line(), format_before, "{who}");
    let dumped = unhex(&line());
    // CPython's writes, seen through the handle that stayed open.
    let mut twin = ShareableList::create(items()).unwrap();
    apply(&mut twin, &writes_a(), &mut model);
    assert_eq!(sl.to_vec().unwrap(), model, "{who}: CPython's writes");
    // The same writes made here give the same bytes, type changes included.
    assert_eq!(bytes_of(&sl), dumped, "{who}");
    assert_eq!(
        bytes_of(&twin),
        dumped,
        "{who}: Rust's set vs CPython's __setitem__"
    );
    // Now Rust writes while CPython is attached.
    apply(&mut sl, &writes_b(), &mut model);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let last = line();
    let status = child.wait_with_output().unwrap();
    assert!(
        status.status.success(),
        "{who}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(last, py_repr(&model), "{who}: CPython reads Rust's writes");
    assert_eq!(sl.to_vec().unwrap(), model);
}

/// CPython creates and leaves the segment; Rust opens it, compares it byte for byte
/// with its own list of the same items, reads, writes; CPython re-attaches, checks,
/// writes; Rust reads those writes through its open handle.
fn python_creates(python: &Path) {
    let who = python.display();
    let script = format!(
        "{PY_PRELUDE}\n{PY_ITEMS}\nsl = ShareableList(ITEMS)\n\
         resource_tracker.unregister(sl.shm._name, 'shared_memory')\n\
         print(sl.shm.name)\nprint(dump(sl))\nsl.shm.close()\n"
    );
    let out = run_python(python, &script, &[]);
    let mut lines = out.lines();
    let name = lines.next().unwrap().to_owned();
    let _guard = UnlinkGuard::new(&name);
    let dumped = unhex(lines.next().unwrap());
    let mut model = items();
    let mut sl = ShareableList::open(&name).unwrap();
    assert_eq!(sl.to_vec().unwrap(), model, "{who}");
    let mine = ShareableList::create(model.clone()).unwrap();
    assert_eq!(bytes_of(&mine), dumped, "{who}: same items, same bytes");
    assert_eq!(bytes_of(&sl), dumped, "{who}");
    // Rust writes (type changes too), CPython re-attaches and checks.
    let mut writes = writes_a();
    writes.extend(writes_b());
    apply(&mut sl, &writes, &mut model);
    let script = format!(
        "{PY_PRELUDE}\nsl = attach_list(sys.argv[1])\nprint(repr(list(sl)))\n\
         sl[3] = 'py'\nsl[4] = -7\nsl[7] = b'bytes now'\nsl.shm.close()\n"
    );
    let seen = run_python(python, &script, &[&name]);
    assert_eq!(
        seen.trim_end(),
        py_repr(&model),
        "{who}: CPython reads Rust's writes"
    );
    model[3] = "py".into();
    model[4] = (-7).into();
    model[7] = b"bytes now".into();
    assert_eq!(
        sl.to_vec().unwrap(),
        model,
        "{who}: Rust reads CPython's writes"
    );
}

/// A str CPython sizes by characters and Rust by UTF-8 bytes: each side still reads
/// and writes the other's list (readers trust offsets and `<n>s` only).
fn non_ascii_sizing(python: &Path) {
    let who = python.display();
    let sl = ShareableList::create(["ééééé", "日本語"]).unwrap();
    assert_eq!(sl.slot_capacity(0).unwrap(), 16); // CPython would make 8
    let name = sl.name().unwrap().to_owned();
    let script = format!(
        "{PY_PRELUDE}\nsl = attach_list(sys.argv[1])\nprint(repr(list(sl)))\nsl[1] = 'ßß'\nsl.shm.close()\n"
    );
    let seen = run_python(python, &script, &[&name]);
    assert_eq!(seen.trim_end(), "['ééééé', '日本語']", "{who}");
    assert_eq!(sl.get(1).unwrap(), Item::from("ßß"));
    sl.set(0, "ü").unwrap();
    let script = format!(
        "{PY_PRELUDE}\nsl = ShareableList(['ab', 'üü'])\n\
         resource_tracker.unregister(sl.shm._name, 'shared_memory')\nprint(sl.shm.name)\nsl.shm.close()\n"
    );
    let name = run_python(python, &script, &[]).trim().to_owned();
    let _guard = UnlinkGuard::new(&name);
    let theirs = ShareableList::open(&name).unwrap();
    assert_eq!(
        theirs.to_vec().unwrap(),
        [Item::from("ab"), "üü".into()],
        "{who}"
    );
    theirs.set(0, "ßßßß").unwrap(); // 8 bytes: fits the 8-byte slot
    let script =
        format!("{PY_PRELUDE}\nsl = attach_list(sys.argv[1])\nprint(sl[0])\nsl.shm.close()\n");
    assert_eq!(
        run_python(python, &script, &[&name]).trim(),
        "ßßßß",
        "{who}"
    );
}

#[test]
fn interop_rust_creates_python_attaches() {
    for python in pythons() {
        rust_creates(&python);
    }
}

#[test]
fn interop_python_creates_rust_attaches() {
    for python in pythons() {
        python_creates(&python);
    }
}

#[test]
fn interop_non_ascii_sizing() {
    for python in pythons() {
        non_ascii_sizing(&python);
    }
}

#[test]
fn interop_found_several_pythons() {
    let found = pythons();
    eprintln!("CPython interpreters: {found:?}");
    assert!(!found.is_empty());
}

/// `Display` of items equals Python's `repr` for awkward text, bytes and floats.
#[test]
fn interop_repr_of_awkward_values() {
    let python = &pythons()[0];
    let items: Vec<Item> = vec![
        "tab\tnl\ncr\r back\\slash".into(),
        "'single'".into(),
        "\"double\"".into(),
        "both ' and \"".into(),
        "\u{1}\u{1f}\u{7f}\u{80}\u{9f}\u{a0}\u{ad}".into(),
        "é日本語🦀 ñ".into(),
        "\u{200b}\u{2028}\u{2029}\u{feff}\u{3000}".into(),
        "\u{e000}".into(),
        b"\x00\x7f\x80\xff'\"\\\t".into(),
        b"it's".into(),
        1e22.into(),
        1.5e-7.into(),
        123456789.125.into(),
        (-1e-300).into(),
        2.5e15.into(),
        9007199254740993i64.into(),
        f64::NAN.into(),
    ];
    let sl = ShareableList::create(items.clone()).unwrap();
    let script =
        format!("{PY_PRELUDE}\nsl = attach_list(sys.argv[1])\nprint(repr(sl))\nsl.shm.close()\n");
    let seen = run_python(python, &script, &[sl.name().unwrap()]);
    assert_eq!(seen.trim_end(), sl.to_string());
}

/// CPython refuses exactly the ints `Item`'s `TryFrom` conversions refuse (the `q`
/// range), and stores the boundary values Rust stores.
#[test]
fn interop_int_range_matches_cpython() {
    let values: [i128; 6] = [
        i128::from(i64::MAX),
        i128::from(i64::MAX) + 1,
        i128::from(i64::MIN),
        i128::from(i64::MIN) - 1,
        i128::MIN,
        i128::MAX,
    ];
    let args: Vec<String> = values.iter().map(ToString::to_string).collect();
    let script = format!(
        "{PY_PRELUDE}\nsl = attach_list(sys.argv[1])\n\
         for v in sys.argv[2:]:\n    \
             try:\n        sl[0] = int(v)\n        print('ok', sl[0])\n    \
             except struct_error:\n        print('refused')\n\
         sl.shm.close()\n"
    );
    let script = format!("import struct\nstruct_error = struct.error\n{script}");
    for python in pythons() {
        let who = python.display();
        let sl = ShareableList::create([0]).unwrap();
        let mut argv: Vec<&str> = vec![sl.name().unwrap()];
        argv.extend(args.iter().map(String::as_str));
        let seen = run_python(&python, &script, &argv);
        let mut lines = seen.lines();
        for &v in &values {
            let line = lines.next().unwrap();
            match Item::try_from(v) {
                Ok(item) => {
                    assert_eq!(line, format!("ok {v}"), "{who}");
                    sl.set(0, v).unwrap();
                    assert_eq!(sl.get(0).unwrap(), item, "{who}");
                }
                Err(e) => {
                    assert_eq!(line, "refused", "{who}: {v}");
                    assert_eq!(e.value(), v.to_string());
                    assert!(sl.set(0, v).is_err(), "{who}: {v}");
                }
            }
        }
    }
}
