"""shm.ShareableDict, ShareableVec and Namespace: the mapping/sequence protocols, typed
dicts, pickling through multiprocessing under every start method, atomic counters
across processes, and errors."""

import collections.abc
import multiprocessing as mp
import os
import pickle

import pytest

import shm

START_METHODS = ["fork", "spawn", "forkserver"]
Point = __import__("collections").namedtuple("Point", "x y")


from _leaks import names as shm_names  # noqa: F401
from _leaks import no_leaks  # noqa: F401 (autouse fixture)


def test_mapping_protocol():
    d = shm.ShareableDict({"key": "initial_value"})
    assert isinstance(d, collections.abc.MutableMapping)
    assert repr(d) == "{'key': 'initial_value'}"
    d["key1"] = "value1"
    d[2] = (1, [2.5, None], {"x": b"y"})
    assert d[2] == (1, [2.5, None], {"x": b"y"})
    assert len(d) == 3 and "key" in d and 3 not in d and [1] not in d
    assert d.get("nope") is None and d.get("nope", 5) == 5
    with pytest.raises(KeyError):
        d["nope"]
    with pytest.raises(KeyError):
        del d["nope"]
    assert d.pop("key1") == "value1" and d.pop("key1", "gone") == "gone"
    assert d.setdefault("k", [1]) == [1] and d.setdefault("k", [2]) == [1]
    d.update({"a": 1}, b=2)
    d.update([("c", 3)])
    assert sorted(d.keys(), key=str) == sorted([2, "key", "k", "a", "b", "c"], key=str)
    assert d == {2: (1, [2.5, None], {"x": b"y"}), "key": "initial_value", "k": [1], "a": 1, "b": 2, "c": 3}
    assert dict(d) == d.copy()
    k, v = d.popitem()
    assert k not in d
    d.clear()
    assert len(d) == 0 and list(d) == [] and d == {}
    with pytest.raises(TypeError):
        d[[1, 2]] = 3  # unhashable, as in dict
    d.shm.close()
    with pytest.raises(ValueError):
        d["key"]
    d.shm.unlink()


def test_keys_keep_their_type():
    d = shm.ShareableDict()
    d[1] = "int"
    d[1.0] = "float"
    d[True] = "bool"
    assert len(d) == 3 and d[1] == "int" and d[1.0] == "float" and d[True] == "bool"


def test_values_of_any_type_round_trip():
    import collections
    import decimal
    import fractions

    d = shm.ShareableDict()
    values = [
        None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64, -(2**100), 1.5, float("inf"),
        "", "héllo", b"", b"\x00\xff", bytearray(b"ab"), (), (1,), [], [1, [2, [3]]],
        {}, {"a": {"b": [1, 2]}}, {1, 2}, frozenset({3}), Point(1, 2), decimal.Decimal("1.1"),
        fractions.Fraction(1, 3), complex(1, 2), range(3),
    ]
    for i, v in enumerate(values):
        d[i] = v
    for i, v in enumerate(values):
        got = d[i]
        assert got == v and type(got) is type(v), (v, got)


def test_deep_nesting_falls_back_to_pickle():
    v = 0
    for _ in range(200):  # over the 128 levels a Rust reader decodes
        v = [v]
    d = shm.ShareableDict()
    d["deep"] = v
    assert d["deep"] == v
    loop = []
    loop.append(loop)
    d["loop"] = loop
    got = d["loop"]
    assert got[0] is got


def test_typed_dict():
    d = shm.ShareableDict(types=(str, int))
    assert d.types == ("str", "i64")
    d["a"] = 1
    with pytest.raises(TypeError, match="expected str, found int"):
        d[1] = 1
    with pytest.raises(TypeError, match="found str"):
        d["b"] = "x"
    with pytest.raises(OverflowError):
        d["b"] = 2**70
    assert d.increment("a", 5) == 6
    again = shm.ShareableDict(name=d.name)
    assert again.types == ("str", "i64") and again["a"] == 6
    with pytest.raises(TypeError, match="expected types"):
        shm.ShareableDict(name=d.name, types=(str, float))
    for k, v in [("u64", "f64"), (bytes, bool), ("i64", bytes), (object, str)]:
        t = shm.ShareableDict(types=(k, v))
        assert shm.ShareableDict(name=t.name).types == t.types
    with pytest.raises(TypeError, match="keys of"):
        shm.ShareableDict(types=(float, int))


def test_open_errors():
    with pytest.raises(FileNotFoundError):
        shm.ShareableDict(name="psm_no_such_dict_here")
    q = shm.Queue()
    with pytest.raises(TypeError, match="expected a ShareableDict"):
        shm.ShareableDict(name=q.name)
    d = shm.ShareableDict()
    with pytest.raises(FileExistsError):
        shm.ShareableDict({"a": 1}, name=d.name)


def test_named_creation_and_track():
    name = f"psm_test_named_{os.getpid()}"
    d = shm.ShareableDict(name=name, create=True)
    d["x"] = 1
    assert shm.ShareableDict(name=name)["x"] == 1
    del d
    import gc

    gc.collect()
    with pytest.raises(FileNotFoundError):
        shm.ShareableDict(name=name)  # the creator's object removed the name
    kept = shm.ShareableDict({"y": 2}, track=False)
    name = kept.name
    del kept
    gc.collect()
    again = shm.ShareableDict(name=name)
    assert again["y"] == 2
    again.unlink()


def _child_set(d, i):
    d[f"k{i}"] = i


def _child_count(d, n):
    for _ in range(n):
        d.increment("hits")
        d.update_item("items", lambda xs: xs + [1], [])


@pytest.mark.parametrize("method", START_METHODS)
def test_passes_through_process_under_every_start_method(method):
    ctx = mp.get_context(method)
    d = shm.ShareableDict({"key": "initial_value"})
    v = shm.ShareableVec([1, 2])
    ns = shm.Namespace()
    ps = [ctx.Process(target=_child_set, args=(d, i)) for i in range(3)]
    ps.append(ctx.Process(target=_child_vec_ns, args=(v, ns)))
    for p in ps:
        p.start()
    for p in ps:
        p.join()
        assert p.exitcode == 0
    assert d == {"key": "initial_value", "k0": 0, "k1": 1, "k2": 2}
    assert list(v) == [1, 2, 3] and ns.answer == 42


def _child_vec_ns(v, ns):
    v.append(3)
    ns.answer = 42


def test_pool_map():
    d = shm.ShareableDict()
    with mp.get_context("spawn").Pool(2) as pool:
        pool.starmap(_child_set, [(d, i) for i in range(6)])
    assert sorted(d.values()) == list(range(6))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_counters_lose_nothing_across_processes(method):
    ctx = mp.get_context(method)
    d = shm.ShareableDict()
    n, procs = 200, 4
    ps = [ctx.Process(target=_child_count, args=(d, n)) for _ in range(procs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
        assert p.exitcode == 0
    assert d["hits"] == n * procs
    assert len(d["items"]) == n * procs


def test_update_item_errors_change_nothing():
    d = shm.ShareableDict({"a": 1})

    def boom(_):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        d.update_item("a", boom)
    with pytest.raises(RuntimeError):
        d.update_item("b", boom)
    assert d == {"a": 1}
    assert d.update_item("a", lambda x: x * 10) == 10


def test_vec_protocol():
    v = shm.ShareableVec(range(5))
    assert isinstance(v, collections.abc.MutableSequence)
    assert v == [0, 1, 2, 3, 4] and len(v) == 5 and v[-1] == 4 and v[1:3] == [1, 2]
    v.append(5)
    v.extend([6, 7])
    v += [8]
    v.insert(0, -1)
    assert v.pop() == 8 and v.pop(0) == -1
    v[0] = "zero"
    del v[1]
    v.remove(2)
    assert list(v) == ["zero", 3, 4, 5, 6, 7] and v.index(5) == 3 and v.count(3) == 1
    v[1:3] = ["a", "b", "c"]
    del v[::2]
    assert list(v) == ["a", "c", 6]
    v.reverse()
    assert repr(v) == "[6, 'c', 'a']"
    v2 = shm.ShareableVec([3, 1, 2])
    v2.sort()
    assert v2 == [1, 2, 3]
    v2.sort(key=lambda x: -x)
    assert v2 == [3, 2, 1]
    with pytest.raises(IndexError):
        v2[10]
    with pytest.raises(IndexError):
        v2[10] = 1
    with pytest.raises(ValueError):
        v2.remove(99)
    assert list(reversed(v2)) == [1, 2, 3]
    peer = pickle.loads(pickle.dumps(v2))
    peer.append(0)
    assert v2[-1] == 0
    v2.clear()
    assert len(v2) == 0
    with pytest.raises(IndexError):
        v2.pop()


def test_namespace():
    ns = shm.Namespace(x=1)
    ns.y = [1, 2]
    ns.name = "a name is just an attribute"
    assert ns.x == 1 and ns.y == [1, 2] and ns.name.startswith("a name")
    assert repr(ns) == "Namespace(name='a name is just an attribute', x=1, y=[1, 2])"
    del ns.x
    with pytest.raises(AttributeError):
        ns.x
    with pytest.raises(AttributeError):
        del ns.x
    peer = pickle.loads(pickle.dumps(ns))
    peer.z = 3
    assert ns.z == 3 and "z" in dir(ns)
