"""Lock acquire+release and Value.value read under its lock: shm against
multiprocessing and (in-process floor) threading. Prints `name<TAB>ns_per_op` lines."""

import multiprocessing as mp
import threading
import time

import shm

N = 200_000
REPEAT = 5


def best_ns(fn, n=N):
    best = float("inf")
    for _ in range(REPEAT):
        t = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t) / n)
    return best


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
    rows.append(("lock_acquire_release/shm.Lock", best_ns(lock_loop(shm.Lock()))))
    rows.append(("lock_acquire_release/mp.Lock", best_ns(lock_loop(mp.Lock()))))
    rows.append(("lock_acquire_release/threading.Lock", best_ns(lock_loop(threading.Lock()))))
    rows.append(("lock_with/shm.Lock", best_ns(with_loop(shm.Lock()))))
    rows.append(("lock_with/mp.Lock", best_ns(with_loop(mp.Lock()))))
    rows.append(("lock_with/threading.Lock", best_ns(with_loop(threading.Lock()))))
    rows.append(("rlock_acquire_release/shm.RLock", best_ns(lock_loop(shm.RLock()))))
    rows.append(("rlock_acquire_release/mp.RLock", best_ns(lock_loop(mp.RLock()))))
    rows.append(("value_read_locked/shm.Value", best_ns(value_loop(shm.Value("i", 1)))))
    rows.append(("value_read_locked/mp.Value", best_ns(value_loop(mp.Value("i", 1)))))
    for name, ns in rows:
        print(f"{name}\t{ns:.1f}")


if __name__ == "__main__":
    main()
