//! CPython as the peer: every CPython 3.9+ on the machine attaches to segments made
//! here, and segments CPython made open here.

use shm_core::Segment;
use shm_core::testing::{PY_ATTACH, UnlinkGuard, pythons, run_python};

#[test]
fn cpython_reads_and_writes_a_segment_made_here() {
    for python in pythons() {
        let seg = Segment::create(4096).unwrap();
        seg.write_at(0, b"from rust").unwrap();
        let script = format!(
            "{PY_ATTACH}
shm = attach(sys.argv[1])
assert shm.size == 4096, shm.size
print(bytes(shm.buf[:9]).decode())
shm.buf[100:111] = b'from python'
shm.close()"
        );
        let out = run_python(&python, &script, &[seg.name().unwrap()]);
        assert_eq!(out.trim(), "from rust", "{}", python.display());
        let mut buf = [0; 11];
        seg.read_at(100, &mut buf).unwrap();
        assert_eq!(&buf, b"from python", "{}", python.display());
        // The Python peer did not unlink it on exit.
        assert!(
            Segment::open(seg.name().unwrap()).is_ok(),
            "{}",
            python.display()
        );
    }
}

#[test]
fn a_segment_cpython_made_opens_here() {
    for python in pythons() {
        let script = "
import sys
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(create=True, size=1000)
resource_tracker.unregister(shm._name, 'shared_memory')
shm.buf[:11] = b'from python'
print(shm.name)
shm.close()";
        let name = run_python(&python, script, &[]).trim().to_owned();
        let _guard = UnlinkGuard::new(&name);
        assert!(name.starts_with("psm_"), "{name}");
        let seg = Segment::open(&name).unwrap();
        assert_eq!(seg.len(), 1000, "CPython's size is exact on Linux");
        let mut buf = [0; 11];
        seg.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"from python");
        seg.write_at(500, b"from rust").unwrap();
        let check = format!(
            "{PY_ATTACH}\nshm = attach(sys.argv[1])\nprint(bytes(shm.buf[500:509]).decode())\nshm.close()"
        );
        assert_eq!(run_python(&python, &check, &[&name]).trim(), "from rust");
    }
}

#[test]
fn names_with_a_leading_slash_mean_the_same_segment_in_both() {
    let python = &pythons()[0];
    let seg = Segment::create(64).unwrap();
    seg.write_at(0, b"slash").unwrap();
    let slashed = format!("/{}", seg.name().unwrap());
    let script = format!(
        "{PY_ATTACH}\nshm = attach(sys.argv[1])\nprint(shm.name, bytes(shm.buf[:5]).decode())\nshm.close()"
    );
    let out = run_python(python, &script, &[seg.name().unwrap()]);
    assert_eq!(out.trim(), format!("{} slash", seg.name().unwrap()));
    assert_eq!(Segment::open(&slashed).unwrap().len(), 64);
}
