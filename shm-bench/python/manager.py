"""CPython's figures for the shm-manager benchmarks: one JSON object per line,
{"id": "py/manager/<name>", "ns": <ns per operation>}.

`value_create`: `multiprocessing.Value('Q', 0)` (a slot in the multiprocessing heap
plus its lock, a POSIX semaphore), what `manager/value_create` does by key in an arena.
Timed with timeit: the fastest of several runs.
"""
import json
import multiprocessing
import timeit

REPEAT = 5


def per_op_ns(stmt, env):
    timer = timeit.Timer(stmt, globals=env)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=REPEAT, number=number))
    return best / number * 1e9


def emit(name, ns):
    print(json.dumps({"id": "py/manager/" + name, "ns": round(ns, 1)}), flush=True)


def main():
    emit("value_create", per_op_ns("multiprocessing.Value('Q', 0)", {"multiprocessing": multiprocessing}))


if __name__ == "__main__":
    main()
