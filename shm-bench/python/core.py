"""CPython's figures for the shm-core benchmarks: one JSON object per line."""
import json
import time
from multiprocessing import shared_memory

SMALL = 4096
LARGE = 64 << 20
PAGE = 4096


def per_op_ns(fn, seconds=1.0, min_iters=5):
    """Runs fn in a loop for about `seconds` and returns ns per call."""
    fn()  # warm-up
    iters, start = 0, time.perf_counter_ns()
    while True:
        fn()
        iters += 1
        elapsed = time.perf_counter_ns() - start
        if iters >= min_iters and elapsed >= seconds * 1e9:
            return elapsed / iters


def emit(name, ns):
    print(json.dumps({"id": "py/core/" + name, "ns": ns}), flush=True)


def create_unlink_small():
    shm = shared_memory.SharedMemory(create=True, size=SMALL)
    shm.close()
    shm.unlink()


def create_touch_unlink_large():
    shm = shared_memory.SharedMemory(create=True, size=LARGE)
    buf = shm.buf
    for off in range(0, LARGE, PAGE):
        buf[off] = 1
    del buf
    shm.close()
    shm.unlink()


def main():
    emit("segment_create_unlink_4k", per_op_ns(create_unlink_small))
    emit("segment_create_touch_unlink_64m", per_op_ns(create_touch_unlink_large, seconds=2.0))

    owner = shared_memory.SharedMemory(create=True, size=SMALL)
    try:
        def open_close():
            # track=False (3.13+) keeps the resource tracker out of the timing, as
            # attaching elsewhere would register the segment for unlinking.
            shm = shared_memory.SharedMemory(name=owner.name)
            shm.close()
        from multiprocessing import resource_tracker
        real_register = resource_tracker.register
        resource_tracker.register = lambda *a, **k: None
        try:
            emit("segment_open_4k", per_op_ns(open_close))
        finally:
            resource_tracker.register = real_register
    finally:
        owner.close()
        owner.unlink()

    big = shared_memory.SharedMemory(create=True, size=LARGE)
    try:
        src = bytes([0x5A]) * LARGE
        buf = big.buf

        def write():
            buf[:] = src
        emit("bulk_write_64m", per_op_ns(write, seconds=2.0))
        del buf
    finally:
        big.close()
        big.unlink()


if __name__ == "__main__":
    main()
