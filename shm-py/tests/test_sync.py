import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest

import shm


def test_lock_acquire_release_timeout_and_context_manager():
    lock = shm.Lock()
    assert lock.acquire()
    assert lock.locked()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.2)))
    t.start()
    t.join()
    assert got == [False]
    t = threading.Thread(target=lambda: got.append(lock.acquire(False)))
    t.start()
    t.join()
    assert got == [False, False]
    lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(False, 1.0)


def test_rlock_is_reentrant_and_owned():
    r = shm.RLock()
    with r:
        with r:
            assert r._count() == 2
        got = []
        t = threading.Thread(target=lambda: got.append(r.acquire(timeout=0.1)))
        t.start()
        t.join()
        assert got == [False]
    with pytest.raises(RuntimeError):
        r.release()


def test_semaphores_count_and_bound():
    s = shm.Semaphore(2)
    assert s.acquire() and s.acquire()
    assert not s.acquire(timeout=0.1)
    assert s.get_value() == 0
    s.release(2)
    assert s.get_value() == 2
    b = shm.BoundedSemaphore(1)
    with b:
        pass
    with pytest.raises(ValueError):
        b.release()


def test_event_set_clear_wait():
    e = shm.Event()
    assert not e.is_set()
    assert e.wait(0.05) is False
    threading.Timer(0.1, e.set).start()
    assert e.wait(30) is True
    e.clear()
    assert not e.is_set()


def test_condition_notify_between_threads():
    c = shm.Condition()
    items = []

    def consumer():
        with c:
            c.wait_for(lambda: items, timeout=30)

    t = threading.Thread(target=consumer)
    t.start()
    time.sleep(0.1)
    with c:
        items.append(1)
        c.notify()
    t.join(30)
    assert not t.is_alive()
    with pytest.raises(RuntimeError):
        c.wait(0.01)


def test_barrier_between_threads_and_broken_on_abort():
    b = shm.Barrier(2)
    res = []
    t = threading.Thread(target=lambda: res.append(b.wait(30)))
    t.start()
    res.append(b.wait(30))
    t.join()
    assert sorted(res) == [0, 1]
    assert b.parties == 2
    b.abort()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(1)


HOLDER = r"""
import pickle, sys, time
import shm
lock = pickle.loads(bytes.fromhex(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_kill_9_of_a_holder_then_the_next_acquire_succeeds_and_warns():
    """Dozens of trials: a Python process holding the lock is killed; the next acquire
    returns True at once (within the liveness check), warns and sets `recovered`."""
    lock = shm.Lock()
    handle = pickle.dumps(lock).hex()
    trials = int(os.environ.get("SHM_PY_KILL_TRIALS", "24"))
    for trial in range(trials):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, handle], stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline() == "held\n"
            assert not lock.acquire(False)
        finally:
            p.kill()
            p.wait()
        t = time.monotonic()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert lock.acquire(timeout=30) is True
        assert time.monotonic() - t < 10, f"trial {trial}: recovery took too long"
        assert any(issubclass(x.category, shm.OwnerDiedWarning) for x in w), f"trial {trial}: no warning"
        assert lock.recovered
        lock.release()
        assert not lock.recovered
        # A clean acquire afterwards: no warning.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with lock:
                pass


BLOCKED = r"""
import sys, threading, time
import shm
kind = sys.argv[1]
held = threading.Event()

def hold(lock):
    # A live holder (a holder thread that ends counts as dead: the lock is recovered).
    lock.acquire()
    held.set()
    time.sleep(600)

if kind == "lock":
    obj = shm.Lock()
    threading.Thread(target=hold, args=(obj,), daemon=True).start()
    held.wait()
    block = obj.acquire
elif kind == "event":
    obj = shm.Event()
    block = obj.wait
elif kind == "semaphore":
    obj = shm.Semaphore(0)
    block = obj.acquire
elif kind == "recv":
    a, b = shm.Pipe()
    block = b.recv
elif kind == "value":
    obj = shm.Value("i", 1)
    threading.Thread(target=hold, args=(obj.get_lock(),), daemon=True).start()
    held.wait()
    block = lambda: obj.value
try:
    print("blocking", flush=True)
    block()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
sys.exit(3)
"""


@pytest.mark.parametrize("kind", ["lock", "event", "semaphore", "recv", "value"])
def test_sigint_interrupts_a_blocked_wait(kind):
    p = subprocess.Popen([sys.executable, "-c", BLOCKED, kind], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "blocking\n"
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
    finally:
        p.kill()
    assert out == "interrupted\n"
    assert p.returncode == 0


def test_the_gil_is_released_while_waiting():
    lock = shm.Lock()
    lock.acquire()
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.01)

    t = threading.Thread(target=ticker)
    t.start()
    waiter = threading.Thread(target=lambda: lock.acquire(timeout=0.5))
    waiter.start()
    waiter.join()
    stop.set()
    t.join()
    assert len(ticks) >= 10
    lock.release()


def test_lock_raw_methods_take_every_call_form():
    for lock in (shm.Lock(), shm.RLock()):
        assert lock.acquire() is True
        lock.release()
        assert lock.acquire(True) is True
        lock.release()
        assert lock.acquire(block=True, timeout=1) is True
        lock.release()
        assert lock.acquire(False) is True
        lock.release()
        assert lock.__enter__() is True
        assert lock.__exit__(None, None, None) is None
        with pytest.raises(TypeError):
            lock.acquire(nope=1)
        with pytest.raises(ValueError):
            lock.acquire(False, 1.0)
        with pytest.raises(RuntimeError):
            lock.release()

