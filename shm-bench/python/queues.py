"""CPython's figures for the shm-collections queue benchmarks: one JSON object per line.

IDs (ns per message received, or per round trip; two processes, fork context):
py/queue/mp_queue_64b_throughput, py/queue/mp_queue_4k_throughput (multiprocessing.Queue,
bytes objects), py/queue/mp_simplequeue_64b_throughput, py/queue/mp_pipe_64b_throughput
(Connection.send_bytes / recv_bytes), py/queue/mp_queue_roundtrip,
py/queue/mp_pipe_roundtrip (64 bytes there and back).
"""
import json
import multiprocessing as mp
import time

WARM = 1000


def emit(name, ns):
    print(json.dumps({"id": "py/queue/" + name, "ns": ns}), flush=True)


def produce(q, size, count):
    msg = b"\x07" * size
    for _ in range(count):
        q.put(msg)


def queue_throughput(ctx, make, size, count):
    q = make()
    child = ctx.Process(target=produce, args=(q, size, count + WARM), daemon=True)
    child.start()
    for _ in range(WARM):
        q.get()
    start = time.perf_counter_ns()
    for _ in range(count):
        q.get()
    ns = (time.perf_counter_ns() - start) / count
    child.join(10)
    return ns


def pipe_produce(conn, size, count):
    msg = b"\x07" * size
    for _ in range(count):
        conn.send_bytes(msg)


def pipe_throughput(ctx, size, count):
    rx, tx = ctx.Pipe(duplex=False)
    child = ctx.Process(target=pipe_produce, args=(tx, size, count + WARM), daemon=True)
    child.start()
    for _ in range(WARM):
        rx.recv_bytes()
    start = time.perf_counter_ns()
    for _ in range(count):
        rx.recv_bytes()
    ns = (time.perf_counter_ns() - start) / count
    child.join(10)
    return ns


def queue_echo(a, b):
    while True:
        m = a.get()
        if m is None:
            return
        b.put(m)


def queue_roundtrip(ctx, rounds):
    a, b = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=queue_echo, args=(a, b), daemon=True)
    child.start()
    msg = b"\x05" * 64
    for _ in range(100):
        a.put(msg)
        b.get()
    start = time.perf_counter_ns()
    for _ in range(rounds):
        a.put(msg)
        b.get()
    ns = (time.perf_counter_ns() - start) / rounds
    a.put(None)
    child.join(10)
    return ns


def pipe_echo(conn):
    while True:
        m = conn.recv_bytes()
        if not m:
            return
        conn.send_bytes(m)


def pipe_roundtrip(ctx, rounds):
    mine, theirs = ctx.Pipe()
    child = ctx.Process(target=pipe_echo, args=(theirs,), daemon=True)
    child.start()
    msg = b"\x05" * 64
    for _ in range(100):
        mine.send_bytes(msg)
        mine.recv_bytes()
    start = time.perf_counter_ns()
    for _ in range(rounds):
        mine.send_bytes(msg)
        mine.recv_bytes()
    ns = (time.perf_counter_ns() - start) / rounds
    mine.send_bytes(b"")
    child.join(10)
    return ns


def main():
    ctx = mp.get_context("fork")
    emit("mp_queue_64b_throughput", queue_throughput(ctx, ctx.Queue, 64, 200_000))
    emit("mp_queue_4k_throughput", queue_throughput(ctx, ctx.Queue, 4096, 50_000))
    emit("mp_simplequeue_64b_throughput", queue_throughput(ctx, ctx.SimpleQueue, 64, 200_000))
    emit("mp_pipe_64b_throughput", pipe_throughput(ctx, 64, 200_000))
    emit("mp_queue_roundtrip", queue_roundtrip(ctx, 5_000))
    emit("mp_pipe_roundtrip", pipe_roundtrip(ctx, 10_000))


if __name__ == "__main__":
    main()
