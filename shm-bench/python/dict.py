"""CPython's shared dicts, the anchors of the ShareableDict benchmarks: one JSON object
per line, {"id": "py/collections/<name>", "ns": <ns per operation>}.

- `dict_{get,insert,update}_{u64,str}_{1e3,1e5}`: `multiprocessing.Manager().dict()`
  (every operation a round trip to the manager process);
- `ultradict_{get,insert}_{u64,str}_{1e3,1e5}`: UltraDict with `shared_lock=True` (the
  `atomics` package), a 1 MiB update stream (it re-dumps the whole dict when that fills);
- `smdict_{get,insert}_{u64,str}_{1e3,1e5}`: shared-memory-dict, which unpickles (and on a
  write re-pickles) the whole dict on every operation.

Keys are ints (`u64`) or 8-character strings (`str`), values ints; insert overwrites an
existing key, as the Rust side does. `cargo xtask bench` runs this script with a venv
that has UltraDict, atomics and shared-memory-dict; a package that does not import is
skipped with a note on stderr. SHM_BENCH_FILTER (substrings of the ids, `|`-separated)
skips the rest.

Timed with timeit: iterations for >= 0.2 s, the fastest of several runs, nothing
subtracted.
"""
import json
import os
import sys
import timeit

FILTER = os.environ.get("SHM_BENCH_FILTER", "")
SIZES = ((1000, "1e3"), (100_000, "1e5"))


def wanted(name):
    # As `cargo xtask bench` reads it: any `|`-separated part contained in the id.
    return any(part in "py/collections/" + name for part in FILTER.split("|"))


def per_op_ns(stmt, env):
    timer = timeit.Timer(stmt, globals=env)
    number, took = timer.autorange()  # iterations for >= 0.2 s
    # Fast statements get more runs; the slow ones (ms per op at 10^5) stay near 1 s.
    repeat = 7 if took / number < 1e-5 else 3
    if took / number < 1e-5:
        number *= 5
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number * 1e9


def emit(name, ns):
    print(json.dumps({"id": "py/collections/" + name, "ns": round(ns, 1)}), flush=True)


def note(text):
    print("note: dict.py: " + text, file=sys.stderr, flush=True)


def contents(n, kind):
    if kind == "u64":
        return {i: i for i in range(n)}, n // 2
    return {f"k{i:07d}": i for i in range(n)}, f"k{n // 2:07d}"


def manager_dict():
    """Manager().dict(): get, set (an existing key) and a read-modify-write."""
    if not any(wanted(f"dict_{op}") for op in ("get", "insert", "update")):
        return
    import multiprocessing
    with multiprocessing.Manager() as manager:
        for n, tag in SIZES:
            for kind in ("u64", "str"):
                if not any(wanted(f"dict_{op}_{kind}_{tag}") for op in ("get", "insert", "update")):
                    continue
                data, k = contents(n, kind)
                d = manager.dict(data)
                env = {"d": d, "k": k}
                emit(f"dict_get_{kind}_{tag}", per_op_ns("d[k]", env))
                emit(f"dict_insert_{kind}_{tag}", per_op_ns("d[k] = 5", env))
                # Manager().dict() has no atomic update: get + set is what callers write.
                emit(f"dict_update_{kind}_{tag}", per_op_ns("d[k] = d[k] + 1", env))
                del d


def ultradict():
    if not any(wanted(f"ultradict_{op}") for op in ("get", "insert")):
        return
    try:
        from UltraDict import UltraDict
        import atomics  # noqa: F401  (shared_lock=True needs it)
    except ImportError as e:
        note(f"UltraDict anchors skipped ({e})")
        return
    for n, tag in SIZES:
        for kind in ("u64", "str"):
            if not any(wanted(f"ultradict_{op}_{kind}_{tag}") for op in ("get", "insert")):
                continue
            data, k = contents(n, kind)
            d = UltraDict(data, shared_lock=True, buffer_size=1 << 20,
                          full_dump_size=64 * n + (1 << 16), auto_unlink=True)
            try:
                env = {"d": d, "k": k}
                emit(f"ultradict_get_{kind}_{tag}", per_op_ns("d[k]", env))
                emit(f"ultradict_insert_{kind}_{tag}", per_op_ns("d[k] = 5", env))
            finally:
                d.unlink()


def shared_memory_dict():
    if not any(wanted(f"smdict_{op}") for op in ("get", "insert")):
        return
    try:
        from shared_memory_dict import SharedMemoryDict
    except ImportError as e:
        note(f"shared-memory-dict anchors skipped ({e})")
        return
    for n, tag in SIZES:
        for kind in ("u64", "str"):
            if not any(wanted(f"smdict_{op}_{kind}_{tag}") for op in ("get", "insert")):
                continue
            data, k = contents(n, kind)
            # Room for the pickled dict and a little more; every read unpickles it all.
            d = SharedMemoryDict(name=f"shm-bench-smd-{os.getpid()}-{kind}-{tag}",
                                 size=32 * n + (1 << 16))
            try:
                d.update(data)
                env = {"d": d, "k": k}
                emit(f"smdict_get_{kind}_{tag}", per_op_ns("d[k]", env))
                emit(f"smdict_insert_{kind}_{tag}", per_op_ns("d[k] = 5", env))
            finally:
                d.shm.close()
                d.shm.unlink()


def main():
    manager_dict()
    ultradict()
    shared_memory_dict()


if __name__ == "__main__":
    main()
