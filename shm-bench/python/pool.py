"""CPython's figures for the shm-process Pool benchmarks: one JSON object per line.

IDs (ns per task; 2 workers, the default start method, pool start not timed):
py/pool/map_10k_chunk1 (Pool.map of 10^4 tiny tasks, chunksize=1),
py/pool/map_10k_auto (the same, chunksize=None: CPython's automatic size).
The median of several maps.
"""
import json
import multiprocessing as mp
import statistics
import time

TASKS = 10_000


def tiny(x):
    return (x * x) & 0xFFFFFFFFFFFFFFFF ^ 0x5A


def emit(name, ns):
    print(json.dumps({"id": "py/pool/" + name, "ns": ns}), flush=True)


def per_task(pool, chunksize, reps):
    pool.map(tiny, range(TASKS), chunksize=chunksize)  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter_ns()
        pool.map(tiny, range(TASKS), chunksize=chunksize)
        times.append((time.perf_counter_ns() - start) / TASKS)
    return statistics.median(times)


def main():
    with mp.Pool(2) as pool:
        emit("map_10k_chunk1", per_task(pool, 1, 5))
        emit("map_10k_auto", per_task(pool, None, 20))


if __name__ == "__main__":
    main()
