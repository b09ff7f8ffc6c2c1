"""CPython's figures for the shm-process benchmarks: one JSON object per line,
{"id": "py/process/<name>", "ns": <ns per operation>}.

- spawn_join_empty_fork, spawn_join_empty_spawn: `multiprocessing.Process(target=empty)`
  started and joined, with the fork and with the spawn start method.
- fill_100mb_f64_numpy: two fork-started workers each attach a 100 MB
  `SharedMemory`, view it as `np.ndarray((n,), np.float64, buffer=shm.buf)` and fill
  their half (`.fill(value)`), then are joined. The fork start method is CPython's
  fastest (numpy is already imported in the child). Without numpy (no venv):
  fill_100mb_f64_plain, the same through a `memoryview` cast to 'd' and a slice
  assignment, which is not numpy.

Timed as the other scripts: a fixed number of operations per run, the fastest of
several runs, nothing subtracted.
"""
import json
import multiprocessing
import os
import time
from multiprocessing.shared_memory import SharedMemory

try:
    import numpy as np
except ImportError:
    np = None

FILL_LEN = 100_000_000 // 8


def emit(name, ns):
    print(json.dumps({"id": "py/process/" + name, "ns": round(ns, 1)}), flush=True)


def wanted(name):
    f = os.environ.get("SHM_BENCH_FILTER", "")
    return not f or any(part in "py/process/" + name for part in f.split("|"))


def best_ns(op, number, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            op()
        best = min(best, (time.perf_counter() - t) / number)
    return best * 1e9


def empty():
    pass


def spawn_join(method, number, repeat):
    ctx = multiprocessing.get_context(method)

    def op():
        p = ctx.Process(target=empty)
        p.start()
        p.join()
        assert p.exitcode == 0

    return best_ns(op, number, repeat)


def fill_half(name, start, end, value):
    shm = SharedMemory(name=name)
    try:
        if np is not None:
            a = np.ndarray((FILL_LEN,), dtype=np.float64, buffer=shm.buf)
            a[start:end].fill(value)
            del a
        else:
            mv = shm.buf.cast("d")
            mv[start:end] = memoryview(
                __import__("array").array("d", [value]) * (end - start)
            )
            mv.release()
    finally:
        shm.close()


def fill(number, repeat):
    ctx = multiprocessing.get_context("fork")
    shm = SharedMemory(create=True, size=FILL_LEN * 8)
    half = FILL_LEN // 2
    value = [0.0]
    try:

        def op():
            value[0] += 1.0
            ps = [
                ctx.Process(target=fill_half, args=(shm.name, s, e, value[0]))
                for s, e in ((0, half), (half, FILL_LEN))
            ]
            for p in ps:
                p.start()
            for p in ps:
                p.join()
                assert p.exitcode == 0

        ns = best_ns(op, number, repeat)
        last = shm.buf.cast("d")
        assert last[FILL_LEN - 1] == value[0]
        last.release()
        return ns
    finally:
        shm.close()
        shm.unlink()


def main():
    if wanted("spawn_join_empty_fork"):
        emit("spawn_join_empty_fork", spawn_join("fork", 50, 5))
    if wanted("spawn_join_empty_spawn"):
        emit("spawn_join_empty_spawn", spawn_join("spawn", 5, 3))
    name = "fill_100mb_f64_numpy" if np is not None else "fill_100mb_f64_plain"
    if np is None:
        import sys

        print("note: numpy is missing: py/process/fill_100mb_f64_plain is a plain-Python "
              "fill, not numpy", file=sys.stderr)
    if wanted(name):
        emit(name, fill(3, 3))


if __name__ == "__main__":
    main()
