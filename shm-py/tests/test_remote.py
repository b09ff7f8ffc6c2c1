"""shm.SharedMemoryManager(address="redis://host:port/namespace"): the manager's objects
on a Redis server (shm-remote), with the local objects' methods and exceptions.

A real ``redis-server`` is started on 127.0.0.1 on a free port for this module (Debian's
package; ``SHM_REDIS_SERVER`` names another binary). When it is missing the tests FAIL:
they never skip."""

import collections.abc as abc
import multiprocessing as mp
import os
import pickle
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

import pytest

import shm
from _leaks import no_leaks  # noqa: F401 (autouse fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 (killed by stop())."""

    def __init__(self, password=None):
        binary = os.environ.get("SHM_REDIS_SERVER") or shutil.which("redis-server")
        if not binary:
            pytest.fail(
                "redis-server not found: install it (apt-get install redis-server) or name "
                "a binary in SHM_REDIS_SERVER; the Redis tests never skip"
            )
        self.dir = tempfile.mkdtemp(prefix="shm-py-redis-")
        self.port = _free_port()
        self.password = password
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if password:
            args += ["--requirepass", password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def url(self, namespace, password=None):
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{namespace}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def address(redis_server):
    """A fresh namespace on the test server."""
    return redis_server.url("t" + uuid.uuid4().hex[:12])


@pytest.fixture(params=["local", "redis"])
def any_address(request, redis_server):
    """The same test body on shared memory (None: a new local manager) and on Redis."""
    if request.param == "local":
        return None
    return redis_server.url("t" + uuid.uuid4().hex[:12])


def _manager(addr):
    return shm.SharedMemoryManager() if addr is None else shm.SharedMemoryManager(address=addr)


# ---------------------------------------------------------------- one program, both places


def test_same_program_runs_on_both(any_address):
    with _manager(any_address) as m:
        d = m.dict("scores")
        d["ann"] = 1
        d.update({"bob": 2}, cy=3)
        assert d.increment("ann") == 2
        assert d.setdefault("dee", 7) == 7
        assert d.update_item("bob", lambda v: v * 10) == 20
        assert sorted(d.items()) == [("ann", 2), ("bob", 20), ("cy", 3), ("dee", 7)]
        assert isinstance(d, abc.MutableMapping)
        with pytest.raises(KeyError):
            d["nobody"]

        log = m.list()
        log.append("a")
        log.extend(["b", "c"])
        assert log[1] == "b" and log[-1] == "c" and len(log) == 3
        assert log.pop() == "c"
        assert list(log) == ["a", "b"]
        assert isinstance(log, abc.MutableSequence)

        ns = m.Namespace(depth=3)
        ns.name = "x"
        assert (ns.depth, ns.name) == (3, "x")

        q = m.Queue()
        q.put((1, "job"))
        assert q.get(timeout=10) == (1, "job")
        with pytest.raises(queue.Empty):
            q.get(timeout=0.05)

        jq = m.JoinableQueue()
        jq.put("task")
        assert jq.get(timeout=10) == "task"
        jq.task_done()
        jq.join()

        lock = m.Lock()
        with lock:
            pass
        assert lock.acquire(timeout=5)
        lock.release()
        rl = m.RLock()
        with rl:
            with rl:
                pass

        ev = m.Event()
        assert not ev.is_set() and ev.wait(0.05) is False
        ev.set()
        assert ev.wait(5) is True

        v = m.Value("q", 5)
        with v.get_lock():
            v.value += 1
        assert v.value == 6

        s = m.Semaphore(2)
        assert s.acquire() and s.acquire(timeout=1)
        assert s.acquire(False) is False
        s.release(2)

        b = m.Barrier(1)
        assert b.wait(timeout=10) == 0
        assert "scores" in m.keys()


def _worker(m, n):
    m.dict("scores").increment("runs")
    m.list("log").append(n)
    m.Namespace("cfg").last = n
    m.Queue(key="jobs").put(("done", n))


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_same_workers_across_processes(any_address, method):
    # fork: the children inherit the parent's connections; they must open their own.
    with _manager(any_address) as m:
        m.dict("scores")["runs"] = 0
        jobs = m.Queue(16, key="jobs")
        ctx = mp.get_context(method)
        ps = [ctx.Process(target=_worker, args=(m, i)) for i in range(3)]
        for p in ps:
            p.start()
        for p in ps:
            p.join(120)
            assert p.exitcode == 0
        assert m.dict("scores")["runs"] == 3
        assert sorted(m.list("log")) == [0, 1, 2]
        assert m.Namespace("cfg").last in (0, 1, 2)
        assert sorted(jobs.get(timeout=10) for _ in range(3)) == [("done", 0), ("done", 1), ("done", 2)]


# ---------------------------------------------------------------- every object over Redis


def test_dict_methods(address):
    with shm.SharedMemoryManager(address=address) as m:
        d = m.dict({"a": 1, 2: [1, 2], (1, "t"): None})
        assert type(d) is shm.RemoteDict
        assert d[2] == [1, 2] and d[(1, "t")] is None and len(d) == 3
        assert "a" in d and "zz" not in d and [1] not in d
        with pytest.raises(TypeError):
            d[[1]] = 2  # unhashable, as for dict
        assert d.get("zz") is None and d.get("zz", 5) == 5
        assert d.pop("a") == 1 and d.pop("a", "gone") == "gone"
        with pytest.raises(KeyError):
            d.pop("a")
        with pytest.raises(KeyError):
            del d["a"]
        d["x"] = {"nested": (1, 2.5, b"b")}
        assert d["x"] == {"nested": (1, 2.5, b"b")}
        assert d.copy() == {2: [1, 2], (1, "t"): None, "x": {"nested": (1, 2.5, b"b")}}
        assert d == d.copy()
        k, v = d.popitem()
        assert k not in d
        assert set(d.keys()) | {k} == {2, (1, "t"), "x"}
        d.clear()
        assert len(d) == 0 and list(d) == [] and d.values() == []
        with pytest.raises(KeyError):
            d.popitem()
        assert d.increment("n", 5) == 5 and d.increment("n") == 6
        with pytest.raises(ZeroDivisionError):
            d.update_item("n", lambda v: 1 / 0)
        assert d["n"] == 6
        # the same dict by key, and by pickle
        assert m.dict(key=d.name)["n"] == 6
        d2 = pickle.loads(pickle.dumps(d))
        assert type(d2) is shm.RemoteDict and d2["n"] == 6


def _bump(d, n):
    for _ in range(n):
        d.increment("c")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_dict_update_item_loses_nothing_across_processes(address, method):
    with shm.SharedMemoryManager(address=address) as m:
        d = m.dict()
        d["c"] = 0  # the parent's connection is in use when the children fork
        ctx = mp.get_context(method)
        ps = [ctx.Process(target=_bump, args=(d, 50)) for _ in range(3)]
        for p in ps:
            p.start()
        _bump(d, 50)
        for p in ps:
            p.join(120)
            assert p.exitcode == 0
        assert d["c"] == 200


def test_list_methods(address):
    with shm.SharedMemoryManager(address=address) as m:
        v = m.list([3, 1, 2])
        assert type(v) is shm.RemoteList
        assert v[0] == 3 and v[-1] == 2 and v[0:2] == [3, 1]
        with pytest.raises(IndexError):
            v[3]
        with pytest.raises(IndexError):
            v[-4]
        v[1] = "one"
        assert v.copy() == [3, "one", 2]
        v.insert(0, "first")
        v.insert(-1, "before-last")
        v.insert(100, "end")
        assert v.copy() == ["first", 3, "one", "before-last", 2, "end"]
        del v[0]
        assert v.pop(0) == 3 and v.pop() == "end"
        v.remove("one")
        assert v.index(2) == 1 and v.count(2) == 1 and 2 in v
        v[0:1] = ["a", "b"]
        assert v == ["a", "b", 2]
        del v[0:2]
        assert v == [2]
        v += [5, 4]
        v.sort()
        assert v == [2, 4, 5]
        v.sort(reverse=True)
        v.reverse()
        assert v == [2, 4, 5]
        assert list(reversed(v)) == [5, 4, 2]
        v.clear()
        with pytest.raises(IndexError):
            v.pop()
        assert len(v) == 0
        w = pickle.loads(pickle.dumps(v))
        w.append(1)
        assert v == [1]


def test_namespace(address):
    with shm.SharedMemoryManager(address=address) as m:
        ns = m.Namespace("cfg", a=1)
        ns.b = [1, "x"]
        assert (ns.a, ns.b) == (1, [1, "x"])
        with pytest.raises(AttributeError):
            ns.missing
        del ns.a
        with pytest.raises(AttributeError):
            ns.a
        with pytest.raises(AttributeError):
            del ns.a
        assert "b" in dir(ns) and "b=[1, 'x']" in repr(ns)
        assert pickle.loads(pickle.dumps(ns)).b == [1, "x"]
        assert m.Namespace("cfg").b == [1, "x"]


def test_value(address):
    import ctypes

    with shm.SharedMemoryManager(address=address) as m:
        v = m.Value("d", 1.5)
        assert v.value == 1.5 and v.typecode == "d"
        v.value = 2.25
        assert pickle.loads(pickle.dumps(v)).value == 2.25
        i = m.Value(ctypes.c_int, 7, key="seven")
        assert i.value == 7 and m.Value("i", 0, key="seven").value == 7
        with pytest.raises(TypeError):
            m.Value("q", 0, key="seven")  # another type under that key
        with pytest.raises(TypeError):
            m.Value("z", 0)
        with i:
            i.value += 1
        assert i.get_obj().value == 8
        b = m.Value("?", True)
        assert b.value is True


def test_queue(address):
    with shm.SharedMemoryManager(address=address) as m:
        q = m.Queue(2)
        assert type(q) is shm.RemoteQueue and q.maxsize == 2
        assert q.empty() and not q.full()
        q.put(1)
        q.put_nowait({"k": (1, None)})
        assert q.full() and q.qsize() == 2
        t0 = time.monotonic()
        with pytest.raises(queue.Full):
            q.put(3, timeout=0.2)
        assert time.monotonic() - t0 < 10
        with pytest.raises(queue.Full):
            q.put(3, block=False)
        assert q.get() == 1 and q.get_nowait() == {"k": (1, None)}
        with pytest.raises(queue.Empty):
            q.get_nowait()
        with pytest.raises(queue.Empty):
            q.get(timeout=0.1)
        u = m.Queue(key="many")
        u.put_many(range(100))
        got = []
        while len(got) < 100:
            got += u.get_many(64, timeout=10)
        assert got == list(range(100))
        with pytest.raises(queue.Empty):
            u.get_many(block=False)
        p = pickle.loads(pickle.dumps(u))
        p.put("x")
        assert u.get(timeout=10) == "x"
        u.close()
        with pytest.raises(ValueError):
            u.put(1)
        with pytest.raises(ValueError):
            u.get()
        u.join_thread()


def test_joinable_queue(address):
    with shm.SharedMemoryManager(address=address) as m:
        q = m.JoinableQueue()
        assert type(q) is shm.RemoteJoinableQueue
        q.put("a")
        q.put("b")
        with pytest.raises(TimeoutError):
            q.join(timeout=0.2)
        assert q.get(timeout=10) == "a"
        q.task_done()
        assert q.get(timeout=10) == "b"
        q.task_done()
        q.join(timeout=10)
        with pytest.raises(ValueError):
            q.task_done()


def _hold(lock, held, go):
    with lock:
        held.set()
        go.wait(60)


def test_locks(address):
    with shm.SharedMemoryManager(address=address) as m:
        lock = m.Lock(key="l")
        assert type(lock) is shm.RemoteLock
        assert lock.acquire() and lock.locked()
        assert lock.acquire(False) is False  # this thread holds it: no deadlock, False
        with pytest.raises(RuntimeError):
            lock.acquire()  # blocking would never end
        lock.release()
        with pytest.raises(RuntimeError):
            lock.release()
        assert not lock.locked() and not lock.recovered
        held, go = m.Event(), m.Event()
        ctx = mp.get_context("spawn")
        p = ctx.Process(target=_hold, args=(lock, held, go))
        p.start()
        try:
            assert held.wait(60)
            t0 = time.monotonic()
            assert lock.acquire(timeout=0.3) is False
            assert 0.2 < time.monotonic() - t0 < 10
            assert m.Lock(key="l").locked()
        finally:
            go.set()
            p.join(60)
        assert p.exitcode == 0
        assert lock.acquire(timeout=10)
        lock.release()
        r = m.RLock()
        assert r.acquire() and r.acquire() and r._count() == 2
        r.release()
        r.release()
        with pytest.raises(RuntimeError):
            r.release()
        assert pickle.loads(pickle.dumps(r)).acquire(timeout=5)


def _set_later(ev):
    time.sleep(0.3)
    ev.set()


def test_event_across_processes(address):
    with shm.SharedMemoryManager(address=address) as m:
        ev = m.Event()
        p = mp.get_context("spawn").Process(target=_set_later, args=(ev,))
        p.start()
        assert ev.wait(60) is True and ev.is_set()
        p.join(60)
        ev.clear()
        assert not ev.is_set() and ev.wait(0.05) is False


def test_semaphores(address):
    with shm.SharedMemoryManager(address=address) as m:
        s = m.Semaphore(1)
        assert type(s) is shm.RemoteSemaphore
        with s:
            assert s.get_value() == 0
            assert s.acquire(timeout=0.1) is False
        assert s.get_value() == 1
        b = m.BoundedSemaphore(1)
        with pytest.raises(ValueError):
            b.release()
        assert pickle.loads(pickle.dumps(b)).acquire(timeout=5)


def _party(b, out):
    out.put(b.wait(60))


def test_barrier_across_processes(address):
    with shm.SharedMemoryManager(address=address) as m:
        b = m.Barrier(3)
        assert b.parties == 3 and not b.broken
        out = m.Queue()
        ctx = mp.get_context("spawn")
        ps = [ctx.Process(target=_party, args=(b, out)) for _ in range(2)]
        for p in ps:
            p.start()
        me = b.wait(60)
        for p in ps:
            p.join(60)
            assert p.exitcode == 0
        assert sorted([me, out.get(timeout=10), out.get(timeout=10)]) == [0, 1, 2]
        lone = m.Barrier(2)
        with pytest.raises(threading.BrokenBarrierError):
            lone.wait(0.3)
        assert lone.broken
        lone.reset()
        assert not lone.broken


# ---------------------------------------------------------------- what Redis cannot offer


def test_raw_shared_memory_objects_refused(address):
    with shm.SharedMemoryManager(address=address) as m:
        for make in (lambda: m.SharedMemory(16), lambda: m.ShareableList([1]), lambda: m.Array("i", 3)):
            with pytest.raises(NotImplementedError, match="Redis address"):
                make()
        with pytest.raises(TypeError):
            m.dict(types=(str, int))


def test_local_manager_refuses_keys_for_locks():
    with shm.SharedMemoryManager() as m:
        with pytest.raises(ValueError):
            m.Lock(key="x")
        with pytest.raises(ValueError):
            m.clear_namespace()


# ---------------------------------------------------------------- addresses and faults


def test_bad_address_is_a_value_error():
    for bad in ("redis://h:notaport/ns", "redis://127.0.0.1:1/bad ns!", "rediss://h:1/ns#insecure"):
        with pytest.raises(ValueError):
            shm.SharedMemoryManager(address=bad)


def test_server_down_is_a_connection_error_within_the_timeout():
    port = _free_port()  # nothing listens there
    t0 = time.monotonic()
    m = shm.SharedMemoryManager(address=f"redis://127.0.0.1:{port}/down")
    with pytest.raises(ConnectionError):
        m.start()
    with pytest.raises(ConnectionError):
        m.dict("x")
    assert time.monotonic() - t0 < 20


def test_server_killed_mid_run_gives_typed_errors():
    server = RedisServer()
    try:
        m = shm.SharedMemoryManager(address=server.url("gone"))
        d = m.dict("d")
        d["a"] = 1
        server.proc.kill()
        server.proc.wait(30)
        t0 = time.monotonic()
        with pytest.raises((ConnectionError, TimeoutError)):
            d["a"]
        with pytest.raises((ConnectionError, TimeoutError)):
            m.Queue(key="q").get(timeout=1)
        assert time.monotonic() - t0 < 30
    finally:
        server.stop()


def test_password_never_shown():
    server = RedisServer(password="s3cret-pw")
    try:
        good = server.url("pw", password="s3cret-pw")
        with shm.SharedMemoryManager(address=good) as m:
            d = m.dict("d")
            d["k"] = 1
            for text in (repr(m), repr(d), repr(m.Lock()), repr(m.Queue())):
                assert "s3cret-pw" not in text and "127.0.0.1" in text, text
            # pickles carry it: a peer needs it
            assert pickle.loads(pickle.dumps(d))["k"] == 1
            assert m.address == good
        bad = server.url("pw", password="wrong-pw")
        with pytest.raises(PermissionError) as e:
            shm.SharedMemoryManager(address=bad).start()
        assert "wrong-pw" not in str(e.value)
        with pytest.raises(ValueError) as e:
            shm.SharedMemoryManager(address="redis://:s3cret-pw@127.0.0.1:notaport/x")
        assert "s3cret-pw" not in str(e.value)
    finally:
        server.stop()


def test_manager_pickles_and_connects_by_address(address):
    with shm.SharedMemoryManager(address=address) as m:
        m.dict("d")["k"] = "v"
        m2 = pickle.loads(pickle.dumps(m))
        assert m2.dict("d")["k"] == "v" and not m2.is_owner
        assert shm.SharedMemoryManager.connect(address).dict("d")["k"] == "v"
        assert "address='redis://127.0.0.1" in repr(m)
        assert shm.Manager(address=address).dict("d")["k"] == "v"
    with pytest.raises(ValueError):
        m.dict("d")  # shut down


def test_clear_namespace(address):
    m = shm.SharedMemoryManager(address=address)
    m.dict("a")["x"] = 1
    m.list("b").append(1)
    assert {"a", "b"} <= set(m.keys())
    assert m.clear_namespace() >= 2
    assert m.keys() == []


def test_blocked_get_is_interrupted_by_ctrl_c(address):
    src = textwrap.dedent(f"""
        import shm, sys, time
        m = shm.SharedMemoryManager(address={address!r})
        q = m.Queue()
        print("ready", flush=True)
        t0 = time.monotonic()
        try:
            q.get()
        except KeyboardInterrupt:
            print("interrupted", round(time.monotonic() - t0), flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert out.startswith("interrupted"), out


# ---------------------------------------------------------------- Rust <-> Python


def test_rust_reads_the_dict_python_wrote(address):
    cargo = shutil.which("cargo")
    assert cargo, "cargo is needed to build the Rust peer (shm-py/examples/remote_peer.rs)"
    subprocess.run([cargo, "build", "-q", "-p", "shm-py", "--example", "remote_peer"],
                   cwd=ROOT, check=True, timeout=900)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    peer = os.path.join(target, "debug", "examples", "remote_peer")
    with shm.SharedMemoryManager(address=address) as m:
        d = m.dict("scores")
        d.update({"ann": 3, "bob": [1, "x"], "cy": None})
        out = subprocess.run([peer, address, "scores"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            'Str("ann") = Int(3)',
            'Str("bob") = List([Int(1), Str("x")])',
            'Str("cy") = None',
        ], out.stdout
        assert d["rust"] == 1
