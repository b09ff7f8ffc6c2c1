import ctypes
import threading

import pytest

import shm


@pytest.mark.parametrize(
    "code,v",
    [("b", -5), ("B", 200), ("h", -300), ("H", 60000), ("i", -(2**31)), ("I", 2**32 - 1),
     ("l", -(2**63)), ("L", 2**64 - 1), ("q", 2**63 - 1), ("Q", 5), ("f", 1.5), ("d", 10.78),
     ("c", b"x"), ("?", True)],
)
def test_value_round_trips_every_typecode(code, v):
    val = shm.Value(code, v)
    assert val.value == v
    assert shm.Value(code).value in (0, 0.0, b"\x00", False)


def test_value_accepts_ctypes_types_and_rejects_bad_input():
    assert shm.Value(ctypes.c_double, 2.5).value == 2.5
    with pytest.raises(TypeError):
        shm.Value("z", 1)
    with pytest.raises(OverflowError):
        shm.Value("b", 1000)
    with pytest.raises(TypeError):
        shm.Value("i", "x")


def test_value_lock_is_an_rlock_and_value_works_under_it():
    v = shm.Value("i", 0)
    with v.get_lock():
        v.value += 1
        with v:
            v.value += 1
    assert v.value == 2
    raw = shm.Value("i", 3, lock=False)
    with pytest.raises(AttributeError):
        raw.get_lock()
    lock = shm.RLock()
    given = shm.Value("i", 0, lock=lock)
    assert given.get_lock() is lock
    given.value = 4
    assert given.value == 4


def test_value_increments_from_threads_lose_nothing():
    v = shm.Value("q", 0)

    def work():
        for _ in range(2000):
            with v.get_lock():
                v.value += 1

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert v.value == 8000


def test_array_indexing_slicing_and_errors():
    a = shm.Array("i", [1, 2, 3, 4, 5])
    assert len(a) == 5 and a[0] == 1 and a[-1] == 5
    assert a[1:4] == [2, 3, 4] and a[::2] == [1, 3, 5] and a[:] == [1, 2, 3, 4, 5]
    a[1:3] = [20, 30]
    a[-1] = 50
    assert a[:] == [1, 20, 30, 4, 50]
    assert list(a) == [1, 20, 30, 4, 50]
    with pytest.raises(IndexError):
        a[5]
    with pytest.raises(ValueError):
        a[0:2] = [1]
    z = shm.Array("d", 3)
    assert z[:] == [0.0, 0.0, 0.0]
    c = shm.Array("c", b"hi\x00\x00")
    assert c.value == b"hi" and c[:] == b"hi\x00\x00"


def test_array_numpy_view_is_zero_copy():
    np = pytest.importorskip("numpy")
    a = shm.Array("d", [1.0, 2.0, 3.0])
    n = np.asarray(a)
    assert n.dtype == np.float64 and n.shape == (3,)
    n[1] = 20.0
    assert a[1] == 20.0
    a[2] = 30.0
    assert a.to_numpy()[2] == 30.0
    del a
    n[0] = 5.0  # the view keeps the mapping alive
    assert n.tolist() == [5.0, 20.0, 30.0]
    m = memoryview(shm.Array("i", [7, 8]).buf)
    assert m.format == "i" and m.tolist() == [7, 8]
