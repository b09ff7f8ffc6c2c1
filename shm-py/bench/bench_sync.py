"""Lock acquire+release and Value.value read under its lock: shm against
multiprocessing and (in-process floor) threading. Prints `name<TAB>ns_per_op` lines."""

import multiprocessing as mp
import threading
import time

import shm

N = 20_000
ROUNDS = 25


def interleaved(cases):
    """The best ns/op of each case over ROUNDS rounds, the cases taking turns within a
    round: on a busy machine, load that comes and goes hits every case alike."""
    best = {name: float("inf") for name, _ in cases}
    for _ in range(ROUNDS):
        for name, fn in cases:
            t = time.perf_counter_ns()
            fn(N)
            best[name] = min(best[name], (time.perf_counter_ns() - t) / N)
    return [(name, best[name]) for name, _ in cases]


def lock_loop(lock):
    acquire, release = lock.acquire, lock.release

    def run(n):
        for _ in range(n):
            acquire()
            release()

    return run


def with_loop(lock):
    def run(n):
        for _ in range(n):
            with lock:
                pass

    return run


def value_loop(v):
    def run(n):
        for _ in range(n):
            v.value

    return run


def main():
    rows = []
    rows += interleaved([
        ("lock_acquire_release/shm.Lock", lock_loop(shm.Lock())),
        ("lock_acquire_release/mp.Lock", lock_loop(mp.Lock())),
        ("lock_acquire_release/threading.Lock", lock_loop(threading.Lock())),
    ])
    rows += interleaved([
        ("lock_with/shm.Lock", with_loop(shm.Lock())),
        ("lock_with/mp.Lock", with_loop(mp.Lock())),
        ("lock_with/threading.Lock", with_loop(threading.Lock())),
    ])
    rows += interleaved([
        ("rlock_acquire_release/shm.RLock", lock_loop(shm.RLock())),
        ("rlock_acquire_release/mp.RLock", lock_loop(mp.RLock())),
    ])
    rows += interleaved([
        ("value_read_locked/shm.Value", value_loop(shm.Value("i", 1))),
        ("value_read_locked/mp.Value", value_loop(mp.Value("i", 1))),
    ])
    for name, ns in rows:
        print(f"{name}\t{ns:.1f}")


if __name__ == "__main__":
    main()
