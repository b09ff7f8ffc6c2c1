"""Run by `cargo xtask test` with the test venv's Python: shares objects with another
CPython (argv[1]) that imports the abi3 wheel unpacked in argv[2]."""

import os
import pickle
import subprocess
import sys

CHILD = r"""
import pickle, sys
import shm
if len(sys.argv) > 1:
    seg, lock, value = pickle.loads(bytes.fromhex(sys.argv[1]))
    seg.buf[0] = sys.version_info[1]
    seg.close()
    with lock:
        with value.get_lock():
            value.value += 1
print("%d.%d" % sys.version_info[:2], shm.__file__)
"""


def main():
    interp, path = sys.argv[1], sys.argv[2]
    import shm

    env = dict(os.environ, PYTHONPATH=path)
    if not hasattr(shm, "SharedMemory"):
        out = subprocess.run([interp, "-c", CHILD], env=env, check=True, capture_output=True, text=True, timeout=60)
        assert out.stdout.split()[1].startswith(path), out.stdout
        print("abi3 smoke: CPython", out.stdout.split()[0], "imports shm")
        return
    seg = shm.SharedMemory(create=True, size=16)
    try:
        lock, value = shm.Lock(), shm.Value("i", 41)
        handle = pickle.dumps((seg, lock, value), protocol=4).hex()
        out = subprocess.run(
            [interp, "-c", CHILD, handle], env=env, check=True, capture_output=True, text=True, timeout=60
        )
        minor = seg.buf[0]
        ver = out.stdout.split()[0]
        assert ver == "3.%d" % minor, (ver, minor)
        assert value.value == 42 and not lock.locked()
        assert out.stdout.split()[1].startswith(path), out.stdout
        print("abi3 smoke: CPython", ver, "shares a SharedMemory, a Lock and a Value with", "%d.%d" % sys.version_info[:2])
    finally:
        seg.close()
        seg.unlink()


if __name__ == "__main__":
    main()
