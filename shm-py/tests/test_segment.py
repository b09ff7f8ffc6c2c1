import gc
from multiprocessing import resource_tracker
from multiprocessing import shared_memory as cpython

import pytest

import shm


def _untrack(seg):
    # CPython (< 3.13) registers segments it merely attaches to; ours are not its to remove.
    try:
        resource_tracker.unregister(seg._name, "shared_memory")
    except Exception:
        pass


def test_create_open_write_read_close_unlink():
    a = shm.SharedMemory(create=True, size=10)
    assert a.name.startswith("psm_") and a.size == 10
    b = shm.SharedMemory(a.name)
    b.buf[:3] = b"abc"
    assert bytes(a.buf[:3]) == b"abc"
    assert repr(a) == f"SharedMemory('{a.name}', size=10)"
    b.close()
    a.close()
    assert a.buf is None
    a.unlink()
    with pytest.raises(FileNotFoundError):
        shm.SharedMemory(a.name)


def test_errors_are_the_stdlib_ones():
    with pytest.raises(ValueError):
        shm.SharedMemory(create=True, size=0)
    with pytest.raises(ValueError):
        shm.SharedMemory()
    with pytest.raises(FileNotFoundError):
        shm.SharedMemory("psm_no_such_segment_here")
    a = shm.SharedMemory(create=True, size=8)
    try:
        with pytest.raises(FileExistsError):
            shm.SharedMemory(a.name, create=True, size=8)
    finally:
        a.unlink()


def test_a_view_keeps_the_mapping_alive_after_close_and_unlink():
    a = shm.SharedMemory(create=True, size=4096)
    view = a.buf[100:200]
    np = pytest.importorskip("numpy")
    arr = np.ndarray((8,), dtype=np.int64, buffer=a.buf)
    a.close()
    a.unlink()
    del a
    gc.collect()
    view[0] = 7
    arr[1] = 9
    assert view[0] == 7 and arr[1] == 9


def test_cpython_opens_ours_and_we_open_cpythons():
    ours = shm.SharedMemory(create=True, size=64)
    try:
        ours.buf[:5] = b"hello"
        theirs = cpython.SharedMemory(ours.name)
        _untrack(theirs)
        assert bytes(theirs.buf[:5]) == b"hello"
        theirs.buf[5:7] = b"!!"
        theirs.close()
        assert bytes(ours.buf[:7]) == b"hello!!"
    finally:
        ours.close()
        ours.unlink()

    theirs = cpython.SharedMemory(create=True, size=32)
    try:
        theirs.buf[:3] = b"xyz"
        ours = shm.SharedMemory(theirs.name)
        assert ours.size == 32 and bytes(ours.buf[:3]) == b"xyz"
        ours.buf[0] = ord("X")
        ours.close()
        assert bytes(theirs.buf[:3]) == b"Xyz"
    finally:
        theirs.close()
        theirs.unlink()


def test_shareable_list_both_ways_with_cpython():
    ours = shm.ShareableList(["howdy", b"HoWdY", -273.154, 100, None, True, 42])
    try:
        theirs = cpython.ShareableList(name=ours.name)
        _untrack(theirs.shm)
        assert list(theirs) == ["howdy", b"HoWdY", -273.154, 100, None, True, 42]
        theirs[3] = 7
        theirs[0] = "hi"
        theirs.shm.close()
        assert ours[3] == 7 and ours[0] == "hi"
    finally:
        ours.shm.close()
        ours.shm.unlink()

    theirs = cpython.ShareableList([1, 2.5, "abc", b"d", None, False])
    try:
        ours = shm.ShareableList(name=theirs.shm.name)
        assert list(ours) == [1, 2.5, "abc", b"d", None, False]
        ours[0] = -1
        assert theirs[0] == -1
        assert str(ours) == "[-1, 2.5, 'abc', b'd', None, False]"
        with pytest.raises(ValueError):
            ours[2] = "much longer than abc"
        with pytest.raises(IndexError):
            ours[6]
        with pytest.raises(TypeError):
            ours[0] = [1]
        ours.shm.close()
    finally:
        theirs.shm.close()
        theirs.shm.unlink()


def test_shareable_list_sequence_methods():
    sl = shm.ShareableList(range(5))
    try:
        assert sl[-1] == 4 and len(sl) == 5 and sl.index(3) == 3 and sl.count(1) == 1
        assert sum(sl) == 10
        import collections.abc
        assert isinstance(sl, collections.abc.Sequence)
        with pytest.raises(ValueError):
            sl.index(99)
    finally:
        sl.shm.close()
        sl.shm.unlink()
