"""shm.SharedMemoryManager / shm.Manager: objects by key, pickling into processes,
attachers, shutdown removing everything."""

import multiprocessing as mp
import pickle

import pytest

import shm
from _leaks import names as shm_names
from _leaks import no_leaks  # noqa: F401 (autouse fixture)


def _worker(m, n):
    scores = m.dict("scores")
    scores.increment("runs")
    m.list("log").append(n)
    m.Namespace("cfg").last = n
    m.Queue(key="jobs").put(("done", n))


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_objects_by_key_across_processes(method):
    with shm.SharedMemoryManager() as m:
        assert m.is_owner
        m.dict("scores")["runs"] = 0
        m.Queue(16, key="jobs")
        ctx = mp.get_context(method)
        ps = [ctx.Process(target=_worker, args=(m, i)) for i in range(3)]
        for p in ps:
            p.start()
        for p in ps:
            p.join(60)
            assert p.exitcode == 0
        assert m.dict("scores")["runs"] == 3
        assert sorted(m.list("log")) == [0, 1, 2]
        assert m.Namespace("cfg").last in (0, 1, 2)
        assert sorted(m.Queue(key="jobs").get_many(10)) == [("done", i) for i in range(3)]
        assert {"scores", "log", "cfg", "jobs"} <= set(m.keys())
        name = m.name
    # Everything under the manager's prefix is gone.
    assert not [n for n in shm_names() if name in n]


def test_factories():
    m = shm.SharedMemoryManager()
    m.start()
    d = m.dict({"a": 1})
    assert d == {"a": 1}
    t = m.dict("typed", types=(str, int))
    t["x"] = 5
    assert shm.ShareableDict(name=t.name).types == ("str", "i64")
    with pytest.raises(TypeError):
        m.dict("typed", types=(str, float))
    assert list(m.list([1, 2])) == [1, 2]
    ns = m.Namespace(x=1)
    assert ns.x == 1
    q = m.Queue(2)
    q.put(1)
    assert q.get() == 1
    seg = m.SharedMemory(16)
    seg.buf[0] = 7
    sl = m.ShareableList(["howdy", 1])
    assert sl[0] == "howdy"
    lock = m.Lock()
    with lock:
        pass
    peer = pickle.loads(pickle.dumps(m))
    assert peer.name == m.name and not peer.is_owner
    assert peer.dict("typed")["x"] == 5
    peer.shutdown()  # an attacher removes nothing
    assert d == {"a": 1}
    seg.close()
    name = m.name
    m.shutdown()
    with pytest.raises(ValueError):
        m.dict()
    assert not [n for n in shm_names() if name in n]


def test_manager_function_and_repr():
    m = shm.Manager()
    assert "shm.SharedMemoryManager name=" in repr(m)
    m.shutdown()
    assert "not running" in repr(shm.SharedMemoryManager())
