"""Collections benchmark (run by `cargo xtask bench py`): prints `name<TAB>ns_per_op`.

dict get/set with int keys and values: shm.ShareableDict (any values, and typed
(int, int)), Manager().dict(), UltraDict, shared-memory-dict, a plain dict (in-process
floor). Queue put+get of a small tuple: in one process (shm.Queue, mp.Queue, faster-fifo,
queue.Queue as the floor), and across processes with 1 producer/1 consumer and
4 producers/4 consumers (ns per item from first put to last get). Peers that are not
installed are skipped."""

import multiprocessing as mp
import os
import queue
import time

import shm

ITEM = (1, 2.5, "x")
KEYS = list(range(1000))


def emit(name, ns):
    print(f"{name}\t{ns:.1f}", flush=True)


def per_op(fn, n):
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - t) / n)
    return best


def bench_dict(label, d, rounds):
    for k in KEYS:
        d[k] = k

    def gets():
        for _ in range(rounds):
            for k in KEYS:
                d[k]

    def sets():
        for _ in range(rounds):
            for k in KEYS:
                d[k] = k

    n = rounds * len(KEYS)
    emit(f"dict_get_int/{label}", per_op(gets, n))
    emit(f"dict_set_int/{label}", per_op(sets, n))


def dicts():
    d = shm.ShareableDict()
    bench_dict("shm", d, 200)
    t = shm.ShareableDict(types=(int, int))
    bench_dict("shm_typed", t, 200)
    with mp.Manager() as m:
        bench_dict("Manager().dict", m.dict(), 2)
    try:
        from UltraDict import UltraDict

        u = UltraDict(buffer_size=1 << 20)
        bench_dict("UltraDict", u, 20)
        u.unlink()
    except ImportError:
        pass
    try:
        from shared_memory_dict import SharedMemoryDict

        s = SharedMemoryDict(name=f"bench_smd_{os.getpid()}", size=1 << 16)
        bench_dict("shared-memory-dict", s, 1)
        s.shm.close()
        s.shm.unlink()
    except ImportError:
        pass
    bench_dict("dict", {}, 200)


def one_process(label, q, n):
    def run():
        for _ in range(n):
            q.put(ITEM)
            q.get()

    emit(f"queue_put_get_1proc/{label}", per_op(run, n))


def _produce(q, n):
    for _ in range(n):
        q.put(ITEM)


def _consume(q, n, done):
    for _ in range(n):
        q.get()
    done.put(1)


def across(label, q, n, pairs):
    ctx = mp.get_context("fork")
    done = mp.get_context("fork").SimpleQueue()
    per = n // pairs
    cs = [ctx.Process(target=_consume, args=(q, per, done)) for _ in range(pairs)]
    ps = [ctx.Process(target=_produce, args=(q, per)) for _ in range(pairs)]
    for c in cs:
        c.start()
    time.sleep(0.2)
    t = time.perf_counter_ns()
    for p in ps:
        p.start()
    for _ in range(pairs):
        done.get()
    elapsed = time.perf_counter_ns() - t
    for p in ps + cs:
        p.join()
    emit(f"queue_put_get_{pairs}x{pairs}/{label}", elapsed / (per * pairs))


def queues():
    peers = [("shm", lambda: shm.Queue(4096), 100_000), ("mp.Queue", lambda: mp.Queue(4096), 5_000)]
    try:
        from faster_fifo import Queue as FastQueue

        peers.append(("faster-fifo", lambda: FastQueue(max_size_bytes=4 << 20), 50_000))
    except ImportError:
        pass
    for label, make, n in peers:
        one_process(label, make(), n)
    one_process("queue.Queue", queue.Queue(), 100_000)
    for pairs in (1, 4):
        for label, make, n in peers:
            across(label, make(), n, pairs)


if __name__ == "__main__":
    dicts()
    queues()
