"""A Rust process and a Python process share one dict (typed ShareableDict<String, i64>
and dynamic ShareableDict<Dynamic, Dynamic>), one queue and one lock. The Rust side is
the example `py_peer` of shm-collections (built here with cargo if needed)."""

import os
import pathlib
import subprocess
import threading

import pytest

import shm
from _leaks import no_leaks  # noqa: F401 (autouse fixture)

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def peer():
    subprocess.run(
        ["cargo", "build", "-q", "-p", "shm-collections", "--example", "py_peer"],
        cwd=ROOT, check=True, timeout=900,
    )
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    exe = target / "debug" / "examples" / "py_peer"
    assert exe.exists(), exe
    return str(exe)


def run(peer, *args):
    out = subprocess.run([peer, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_one_dict_typed_and_dynamic(peer):
    typed = shm.ShareableDict(types=(str, int))
    typed["from_py"] = 41
    dyn = shm.ShareableDict()
    dyn["py"] = (1, "two", [3.0, None], b"4", {"five": True})

    def count():
        for _ in range(500):
            typed.increment("counter")
            dyn.increment("counter")

    t = threading.Thread(target=count)
    t.start()
    out = run(peer, "dict", typed.name, dyn.name)
    t.join()
    assert out == [
        "typed from_py = Some(41)",
        "dynamic py = (1, 'two', [3.0, None], b'4', {'five': True})",
    ]
    assert typed["from_rust"] == 42 and typed["counter"] == 1000
    assert dyn["rust_saw"] == 10 and dyn["counter"] == 1000
    assert dyn[7] == {"list": [1.5, None, True], "bytes": b"\x00\xff", "tuple": ("rust",)}


def test_one_queue(peer):
    q = shm.Queue()
    q.put((1, "a"))
    q.put([2.5, None, b"x"])
    q.put({"k": (True,)})
    out = run(peer, "queue", q.name)
    assert out == ["got (1, 'a')", "got [2.5, None, b'x']", "got {'k': (True,)}"]
    assert q.get_many(10, timeout=10) == [(0, "rust"), (1, "rust"), (2, "rust")]


def test_one_lock(peer):
    lock = shm.Lock()
    d = shm.ShareableDict(types=(str, int))
    rounds = 300
    p = subprocess.Popen([peer, "lock", lock.name, d.name, str(rounds)], stdout=subprocess.PIPE, text=True)
    for _ in range(rounds):
        with lock:
            n = d.get("guarded", 0)
            d["guarded"] = n + 1
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and out.strip() == "lock done"
    assert d["guarded"] == 2 * rounds


def test_objects_made_in_rust_open_in_python(peer):
    p = subprocess.Popen([peer, "make"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    dname, qname = p.stdout.readline().split()
    d = shm.ShareableDict(name=dname)
    assert d.types == ("str", "i64") and d["made_in_rust"] == 1
    d["made_in_python"] = 2
    q = shm.Queue(name=qname)
    assert q.get(timeout=10) == ["from", "rust"]
    out, _ = p.communicate("done\n", timeout=60)
    assert out.strip() == "rust sees Some(2)"
