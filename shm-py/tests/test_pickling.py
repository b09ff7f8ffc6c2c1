"""Every object pickles to its handle and works through multiprocessing.Process(args=...)
and Pool under fork, spawn and forkserver."""

import multiprocessing as mp
import pickle

import pytest

import shm
from conftest import START_METHODS


def _bump_value(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def _set_array(a, i, x):
    a[i] = x


def _write_segment(seg):
    seg.buf[:5] = b"howdy"
    seg.close()


def _write_list(sl):
    sl[0] = 99
    sl[1] = "xy"


def _try_lock(lock, out):
    out.value = 1 if lock.acquire(timeout=0.2) else 2


def _take_lock_and_set(lock, ev):
    with lock:
        ev.set()


def _send(conn):
    conn.send({"k": [1, 2.5, "x"]})
    conn.send_bytes(b"raw")
    conn.close()


def _sem_release(sem):
    sem.release()


def _rlock_twice(r, out):
    with r:
        with r:
            out.value = 7


def _condition_notify(c, flag):
    with c:
        flag.value = 1
        c.notify_all()


def _barrier(b, out):
    out[b.wait(timeout=30)] = 1


def _pool_add(args):
    v, n = args
    with v.get_lock():
        v.value += n
    return n


@pytest.fixture(params=START_METHODS)
def ctx(request):
    return mp.get_context(request.param)


def _run(ctx, target, *args):
    p = ctx.Process(target=target, args=args)
    p.start()
    p.join(60)
    assert p.exitcode == 0


def test_value_incremented_under_its_lock_by_four_processes(ctx):
    v = shm.Value("i", 0)
    ps = [ctx.Process(target=_bump_value, args=(v, 200)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert v.value == 800


def test_array_set_in_a_child(ctx):
    a = shm.Array("d", 3)
    _run(ctx, _set_array, a, 1, 2.5)
    assert a[:] == [0.0, 2.5, 0.0]


def test_shared_memory_written_in_a_child(ctx):
    seg = shm.SharedMemory(create=True, size=8)
    try:
        _run(ctx, _write_segment, seg)
        assert bytes(seg.buf[:5]) == b"howdy"
    finally:
        seg.close()
        seg.unlink()


def test_shareable_list_written_in_a_child(ctx):
    sl = shm.ShareableList([1, "ab", 3.0])
    try:
        _run(ctx, _write_list, sl)
        assert list(sl) == [99, "xy", 3.0]
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_a_held_lock_is_held_for_a_child_and_free_after_release(ctx):
    lock = shm.Lock()
    out = shm.Value("i", 0)
    with lock:
        _run(ctx, _try_lock, lock, out)
        assert out.value == 2
    _run(ctx, _try_lock, lock, out)
    assert out.value == 1


def test_event_set_by_a_child_under_its_lock(ctx):
    lock, ev = shm.Lock(), shm.Event()
    _run(ctx, _take_lock_and_set, lock, ev)
    assert ev.wait(10)
    assert not lock.locked()


def test_pipe_end_sent_to_a_child(ctx):
    a, b = shm.Pipe()
    _run(ctx, _send, b)
    assert a.recv() == {"k": [1, 2.5, "x"]}
    assert a.recv_bytes() == b"raw"


def test_semaphore_and_rlock_in_a_child(ctx):
    sem = shm.Semaphore(0)
    _run(ctx, _sem_release, sem)
    assert sem.acquire(timeout=5)
    r, out = shm.RLock(), shm.Value("i", 0)
    _run(ctx, _rlock_twice, r, out)
    assert out.value == 7


def test_condition_notified_by_a_child(ctx):
    c, flag = shm.Condition(), shm.Value("i", 0, lock=False)
    p = ctx.Process(target=_condition_notify, args=(c, flag))
    with c:
        p.start()
        assert c.wait_for(lambda: flag.value == 1, timeout=30)
    p.join(60)
    assert p.exitcode == 0


def test_barrier_across_processes(ctx):
    b, out = shm.Barrier(3), shm.Array("i", 3)
    ps = [ctx.Process(target=_barrier, args=(b, out)) for _ in range(2)]
    for p in ps:
        p.start()
    out[b.wait(timeout=30)] = 1
    for p in ps:
        p.join(60)
    assert out[:] == [1, 1, 1]


def test_pool_map_with_a_value(ctx):
    v = shm.Value("q", 0)
    with ctx.Pool(2) as pool:
        assert sorted(pool.map(_pool_add, [(v, n) for n in range(1, 11)])) == list(range(1, 11))
    assert v.value == 55


def test_every_object_pickles_to_its_handle():
    objs = [
        shm.Lock(), shm.RLock(), shm.Semaphore(2), shm.BoundedSemaphore(1), shm.Event(),
        shm.Barrier(2), shm.Value("i", 5), shm.Array("b", [1, 2]), shm.Condition(),
    ]
    for o in objs:
        data = pickle.dumps(o)
        assert len(data) < 400, (o, len(data))
        c = pickle.loads(data)
        assert type(c) is type(o)
        if hasattr(o, "name"):
            assert c.name == o.name
    assert pickle.loads(pickle.dumps(objs[6])).value == 5
