"""CPython's figures for the shm-collections benchmarks: one JSON object per line,
{"id": "py/collections/<name>", "ns": <ns per operation>}. The shared dicts
(`Manager().dict()`, UltraDict, shared-memory-dict) are in `dict.py`.

Timed with timeit: many iterations per run, the fastest of several runs, nothing
subtracted (the loop's own overhead is part of each figure, as it is for any caller).
"""
import json
import timeit
from multiprocessing.shared_memory import ShareableList

REPEAT = 7


def per_op_ns(stmt, env):
    timer = timeit.Timer(stmt, globals=env)
    number, _ = timer.autorange()  # iterations for >= 0.2 s
    number *= 5
    best = min(timer.repeat(repeat=REPEAT, number=number))
    return best / number * 1e9


def emit(name, ns):
    print(json.dumps({"id": "py/collections/" + name, "ns": round(ns, 1)}), flush=True)


def shareable_list():
    sl = ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42])
    try:
        env = {"sl": sl}
        emit("shareable_list_get_int", per_op_ns("sl[3]", env))
        emit("shareable_list_set_int", per_op_ns("sl[3] = 12345", env))
        emit("shareable_list_get_str", per_op_ns("sl[0]", env))
        emit("shareable_list_set_str", per_op_ns("sl[0] = 'hello'", env))
    finally:
        sl.shm.close()
        sl.shm.unlink()


def value_and_array():
    import multiprocessing
    v = multiprocessing.Value('q', 0)
    emit("value_locked_increment", per_op_ns("with v.get_lock(): v.value += 1", {"v": v}))
    n = (64 << 20) // 8
    arr = multiprocessing.RawArray('q', n)
    # Real bytes, as the Rust side copies: bytes(8 * n) would be calloc'd zero pages,
    # which all map one physical page and read faster than any real data.
    src = memoryview(b'\x07' * (8 * n)).cast('q')
    mv = memoryview(arr).cast('B').cast('q')
    timer = timeit.Timer("mv[:] = src", globals={"mv": mv, "src": src})
    best = min(timer.repeat(repeat=5, number=3))
    emit("raw_array_copy_in_64m", best / 3 * 1e9)


def main():
    shareable_list()
    value_and_array()


if __name__ == "__main__":
    main()
