"""shm.Queue, JoinableQueue and SimpleQueue: multiprocessing's methods and exceptions,
put_many/get_many, every start method, Ctrl-C of a blocked get."""

import multiprocessing as mp
import os
import pickle
import queue
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import shm

START_METHODS = ["fork", "spawn", "forkserver"]


from _leaks import names as shm_names  # noqa: F401
from _leaks import no_leaks  # noqa: F401 (autouse fixture)


def test_queue_methods_and_exceptions():
    q = shm.Queue(maxsize=3)
    assert q.empty() and not q.full() and q.qsize() == 0
    q.put((1, "a"))
    q.put_nowait([2.5, None])
    q.put({"k": b"v"}, timeout=1)
    assert q.full() and q.qsize() == 3
    with pytest.raises(queue.Full):
        q.put_nowait(4)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(4, timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    with pytest.raises(queue.Full):
        q.put(4, block=False)
    assert q.get() == (1, "a") and q.get_nowait() == [2.5, None] and q.get(timeout=1) == {"k": b"v"}
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get(False)
    q.put_many(range(3))
    assert q.get_many(10) == [0, 1, 2]
    q.put_many([b"x" * 100_000, "y"])  # a large message spans slots
    assert q.get_many(1) == [b"x" * 100_000] and q.get() == "y"
    with pytest.raises(queue.Empty):
        q.get_many(5, timeout=0.01)
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put(1)
    with pytest.raises(ValueError, match="closed"):
        q.get()
    q.join_thread()
    q.cancel_join_thread()


def test_default_queue_takes_large_items():
    q = shm.Queue()
    q.put(b"z" * (1 << 20))
    assert len(q.get()) == 1 << 20
    assert "maxsize=0" in repr(q)


def test_joinable_queue():
    q = shm.JoinableQueue()
    assert isinstance(q, shm.Queue)
    q.put(1)
    q.put(2)
    with pytest.raises(TimeoutError):
        q.join(timeout=0.05)
    q.get()
    q.task_done()
    q.get()
    q.task_done()
    q.join()
    with pytest.raises(ValueError):
        q.task_done()
    peer = pickle.loads(pickle.dumps(q))
    assert type(peer) is shm.JoinableQueue
    peer.put("x")
    assert q.get() == "x"


def test_simple_queue():
    q = shm.SimpleQueue()
    assert q.empty()
    q.put([1])
    assert not q.empty() and q.get() == [1]
    peer = pickle.loads(pickle.dumps(q))
    peer.put(2)
    assert q.get() == 2
    q.close()
    with pytest.raises(ValueError):
        q.put(1)


def _producer(q, n, tag):
    for i in range(n):
        q.put((tag, i))


def _consumer(q, n, out):
    for _ in range(n):
        tag, i = q.get(timeout=30)
        out.put((tag, i))


@pytest.mark.parametrize("method", START_METHODS)
def test_many_producers_and_consumers(method):
    ctx = mp.get_context(method)
    q = shm.Queue(maxsize=8)
    out = shm.Queue()
    n = 300
    ps = [ctx.Process(target=_producer, args=(q, n, t)) for t in range(2)]
    cs = [ctx.Process(target=_consumer, args=(q, n, out)) for _ in range(2)]
    for p in ps + cs:
        p.start()
    for p in ps + cs:
        p.join(60)
        assert p.exitcode == 0
    got = sorted(out.get_many(10_000))
    assert got == sorted((t, i) for t in range(2) for i in range(n))


def _joinable_worker(q):
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            return
        q.task_done()


def test_joinable_queue_across_processes():
    q = shm.JoinableQueue()
    p = mp.get_context("spawn").Process(target=_joinable_worker, args=(q,))
    p.start()
    q.put_many(range(50))
    q.put(None)
    q.join(timeout=30)
    p.join(30)
    assert p.exitcode == 0


def test_ctrl_c_interrupts_a_blocked_get():
    # A separate interpreter blocks in get(); SIGINT raises KeyboardInterrupt at once.
    code = textwrap.dedent(
        """
        import sys, shm
        q = shm.Queue()
        print("ready", flush=True)
        try:
            q.get()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert out.strip() == "interrupted"
    assert time.monotonic() - t0 < 10


def test_other_threads_run_while_get_blocks():
    import threading

    q = shm.Queue()
    ticks = []

    def ticker():
        for _ in range(5):
            ticks.append(1)
            time.sleep(0.01)
        q.put("done")

    t = threading.Thread(target=ticker)
    t.start()
    assert q.get(timeout=30) == "done"
    t.join()
    assert len(ticks) == 5


def test_queue_by_name():
    q = shm.Queue(4)
    again = shm.Queue(name=q.name)
    again.put("hi")
    assert q.get() == "hi"
    with pytest.raises(FileNotFoundError):
        shm.Queue(name="psm_no_such_queue_here")


# Every kind of value the codec writes straight from Python objects into the ring and
# reads straight back, varint widths and the pickle fallbacks included.
EVERY_KIND = [
    None, True, False, 0, -1, 124, 125, -126, 32767, -32768, 32768, 2**31, -2**31 - 1,
    2**63 - 1, -2**63, 2**63, -2**100, 0.0, -0.0, float("inf"), 1.5e300, "", "x",
    "é" * 300, "a" * 70000, b"", b"\x00\xff" * 200, (), (1, 2.5, "x"),
    [None, [True, b"y"], ()], {}, {"k": 1, 2: (3,), (4, "five"): [6.0], None: {}},
    [1] * 300, bytearray(b"ab"), {1, 2}, queue.Queue,
]


def _put_every_kind(name):
    q = shm.Queue(name=name)
    for i, v in enumerate(EVERY_KIND):
        # Both call paths: the raw put(obj) and the full put(obj, block, timeout).
        if i % 2:
            q.put(v)
        else:
            q.put(v, True, 30)


def test_every_value_kind_round_trips_between_processes():
    q = shm.Queue()
    p = mp.get_context("fork").Process(target=_put_every_kind, args=(q.name,))
    p.start()
    got = [q.get() if i % 2 else q.get(True, 30) for i in range(len(EVERY_KIND))]
    p.join(30)
    assert p.exitcode == 0
    assert got == EVERY_KIND
    assert [type(v) for v in got] == [type(v) for v in EVERY_KIND]
    assert str(got[EVERY_KIND.index(1.5e300) - 2]) == "-0.0"


def test_put_get_call_forms_and_argument_errors():
    for q in (shm.Queue(), shm.JoinableQueue()):
        q.put(1)
        q.put(2, False)
        q.put(obj=3, block=True, timeout=1)
        q.put(4, timeout=1)
        assert [q.get(), q.get(False), q.get(block=True, timeout=1), q.get(timeout=1)] == [1, 2, 3, 4]
        with pytest.raises(TypeError):
            q.put()
        with pytest.raises(TypeError):
            q.put(1, True, None, 4)
        with pytest.raises(TypeError):
            q.get(nope=1)
        with pytest.raises(queue.Empty):
            q.get(False)
        q.close()
        with pytest.raises(ValueError):
            q.put(1)
        with pytest.raises(ValueError):
            q.get()
    s = shm.SimpleQueue()
    s.put((1, "a"))
    assert s.get() == (1, "a")
    with pytest.raises(TypeError):
        s.put(1, False)
    with pytest.raises(TypeError):
        s.get(False)


def test_subclass_of_queue_uses_the_same_put_and_get():
    class Mine(shm.Queue):
        pass

    q = Mine()
    q.put(("sub", 1))
    assert q.get() == ("sub", 1)
    assert isinstance(q, shm.Queue)

