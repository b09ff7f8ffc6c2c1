"""CPython's figures for the shm-sync benchmarks: one JSON object per line.

IDs: py/sync/lock_acquire_release, py/sync/rlock_acquire_release,
py/sync/event_set_clear, py/sync/semaphore_acquire_release, py/sync/barrier_round,
py/sync/locked_increment (Value('q').get_lock() + increment),
py/sync/two_process_event_pingpong (one round trip between two processes).
"""
import json
import multiprocessing as mp
import time


def per_op_ns(fn, seconds=1.0, batch=1000):
    """Runs fn in batches for about `seconds`; returns ns per call."""
    for _ in range(batch):  # warm-up
        fn()
    iters, start = 0, time.perf_counter_ns()
    while True:
        for _ in range(batch):
            fn()
        iters += batch
        elapsed = time.perf_counter_ns() - start
        if elapsed >= seconds * 1e9:
            return elapsed / iters


def emit(name, ns):
    print(json.dumps({"id": "py/sync/" + name, "ns": ns}), flush=True)


def acquire_release(lock):
    def op():
        lock.acquire()
        lock.release()
    return op


def set_clear(event):
    def op():
        event.set()
        event.clear()
    return op


def locked_increment(value):
    def op():
        with value.get_lock():
            value.value += 1
    return op


def pong(ping, pong_ev, stop):
    while not stop.is_set():
        if ping.wait(0.5):
            ping.clear()
            pong_ev.set()


def pingpong_ns(ctx, rounds=2000):
    ping, pong_ev, stop = ctx.Event(), ctx.Event(), ctx.Event()
    child = ctx.Process(target=pong, args=(ping, pong_ev, stop), daemon=True)
    child.start()
    try:
        for _ in range(100):  # warm-up
            ping.set()
            pong_ev.wait()
            pong_ev.clear()
        start = time.perf_counter_ns()
        for _ in range(rounds):
            ping.set()
            pong_ev.wait()
            pong_ev.clear()
        return (time.perf_counter_ns() - start) / rounds
    finally:
        stop.set()
        child.join(5)
        if child.is_alive():
            child.kill()


def main():
    ctx = mp.get_context("fork")
    emit("lock_acquire_release", per_op_ns(acquire_release(ctx.Lock())))
    emit("rlock_acquire_release", per_op_ns(acquire_release(ctx.RLock())))
    emit("semaphore_acquire_release", per_op_ns(acquire_release(ctx.Semaphore(1))))
    barrier = ctx.Barrier(1)
    emit("barrier_round", per_op_ns(barrier.wait))
    emit("event_set_clear", per_op_ns(set_clear(ctx.Event())))
    emit("locked_increment", per_op_ns(locked_increment(ctx.Value("q", 0))))
    emit("two_process_event_pingpong", pingpong_ns(ctx))


if __name__ == "__main__":
    main()
