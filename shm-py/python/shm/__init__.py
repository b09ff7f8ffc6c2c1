"""shm: Python's multiprocessing shared-memory toolkit at Rust speed.

The stdlib's names (``SharedMemory``, ``ShareableList``, ``Value``, ``Array``, the locks,
``Queue``, ``Pipe``, ``SharedMemoryManager``) plus ``ShareableDict``/``ShareableVec``/
``Namespace``, shared between Python and Rust processes, surviving ``kill -9``.

A port is an import change::

    from shm import Process, Lock   # was: from multiprocessing import Process, Lock

A lock whose holder died is acquired (never a hang): ``acquire()`` returns True, warns
``shm.OwnerDiedWarning`` (a RuntimeWarning) and sets the lock's ``recovered`` attribute
until the release.
"""

import sys as _sys
import time as _time

from . import _shm
from ._shm import *  # noqa: F401,F403

__version__ = _shm.__version__

# Processes come from the stdlib: every shm object pickles to its handle.
from multiprocessing import Process, Pool, current_process  # noqa: E402,F401


class ConnectionClosedError(OSError, ValueError):
    """A closed Connection was used: an OSError as CPython raises, and a ValueError."""


import atexit as _atexit

# Segments created with track=True and never unlinked are unlinked when this process ends.
_atexit.register(_shm._cleanup)


class Condition:
    """multiprocessing's ``Condition(lock=None)`` across processes: the same algorithm
    (a sleeping count, a woken count and a wait semaphore beside the lock), over shm's
    robust primitives. The default lock is an ``shm.RLock``."""

    def __init__(self, lock=None):
        self._lock = lock if lock is not None else RLock()
        self._sleeping_count = Semaphore(0)
        self._woken_count = Semaphore(0)
        self._wait_semaphore = Semaphore(0)
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __reduce__(self):
        return (_rebuild_condition, (self._lock, self._sleeping_count, self._woken_count, self._wait_semaphore))

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __repr__(self):
        return f"<shm.Condition({self._lock!r})>"

    def wait(self, timeout=None):
        if not self._lock._is_mine():
            raise RuntimeError("cannot wait on un-acquired lock")
        self._sleeping_count.release()
        count = self._lock._count()
        for _ in range(count):
            self._lock.release()
        try:
            return self._wait_semaphore.acquire(True, timeout)
        finally:
            self._woken_count.release()
            for _ in range(count):
                self._lock.acquire()

    def notify(self, n=1):
        if not self._lock._is_mine():
            raise RuntimeError("cannot notify on un-acquired lock")
        # Take account of timeouts since the last notify: subtract woken from sleeping.
        while self._woken_count.acquire(False):
            self._sleeping_count.acquire(False)
        sleepers = 0
        while sleepers < n and self._sleeping_count.acquire(False):
            self._wait_semaphore.release()
            sleepers += 1
        if sleepers:
            for _ in range(sleepers):
                self._woken_count.acquire()
            while self._wait_semaphore.acquire(False):
                pass

    def notify_all(self):
        self.notify(n=_sys.maxsize)

    notifyAll = notify_all

    def wait_for(self, predicate, timeout=None):
        result = predicate()
        if result:
            return result
        if timeout is not None:
            endtime = _time.monotonic() + timeout
        else:
            endtime = None
            waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - _time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


def _rebuild_condition(lock, sleeping, woken, wait):
    c = Condition.__new__(Condition)
    c._lock, c._sleeping_count, c._woken_count, c._wait_semaphore = lock, sleeping, woken, wait
    c.acquire = lock.acquire
    c.release = lock.release
    return c


def _rebuild(kind, *args):
    """Unpickles a handle ``(kind, name, extra...)``: opens the named object."""
    cls = globals().get(kind)
    if cls is None:
        raise TypeError(f"shm handle: expected a kind of shm object, found {kind!r}")
    return cls._from_handle(*args)


import collections.abc as _abc


class RemoteDict(_shm._RemoteDictCore, _abc.MutableMapping):
    """A dict on a Redis server (``SharedMemoryManager(address="redis://...").dict()``):
    a ``collections.abc.MutableMapping`` with ``ShareableDict``'s methods. Every call is
    one round trip; ``setdefault``, ``pop``, ``update_item`` and ``increment`` are atomic
    across clients; ``update`` writes all pairs at once. Pickles to ``(address, key)``."""

    __slots__ = ()

    def update(self, other=(), /, **kwargs):
        if isinstance(other, _abc.Mapping):
            pairs = list(other.items())
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]
        else:
            pairs = [tuple(p) for p in other]
        pairs.extend(kwargs.items())
        if pairs:
            self._extend(pairs)

    def increment(self, key, delta=None, default=None):
        """Atomically adds ``delta`` (1) to the value of ``key`` (``default``, 0, when
        absent) and returns the sum."""
        d = 1 if delta is None else delta
        return self.update_item(key, lambda v: v + d, 0 if default is None else default)

    def popitem(self):
        for k in self.keys():
            try:
                return (k, self.pop(k))
            except KeyError:
                continue
        raise KeyError("popitem(): RemoteDict is empty")

    def __eq__(self, other):
        if isinstance(other, _abc.Mapping):
            return self.copy() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class RemoteList(_shm._RemoteListCore, _abc.MutableSequence):
    """A list on a Redis server (``SharedMemoryManager(address="redis://...").list()``):
    a ``collections.abc.MutableSequence`` with ``ShareableVec``'s methods. ``append``,
    ``pop``, ``extend``, ``clear`` and single-item reads, writes, inserts and deletes are
    atomic; ``sort``, ``reverse`` and slice assignment read, change and write back from
    this client (not atomic). Pickles to ``(address, key)``."""

    __slots__ = ()

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.copy()[index]
        return self._get(index)

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            items = self.copy()
            items[index] = value
            self.clear()
            self.extend(items)
        else:
            self._set(index, value)

    def __delitem__(self, index):
        if isinstance(index, slice):
            items = self.copy()
            del items[index]
            self.clear()
            self.extend(items)
        else:
            self.pop(index)

    def __eq__(self, other):
        if isinstance(other, (list, tuple, _abc.Sequence)) and not isinstance(other, (str, bytes)):
            return self.copy() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __iadd__(self, other):
        self.extend(other)
        return self

    def sort(self, *, key=None, reverse=False):
        items = sorted(self.copy(), key=key, reverse=reverse)
        self.clear()
        self.extend(items)

    def reverse(self):
        items = self.copy()
        items.reverse()
        self.clear()
        self.extend(items)


def _register_abcs():
    """Registers the native types with ``collections.abc`` where they behave as one."""
    import collections.abc as abc

    for name, base in (
        ("ShareableList", abc.Sequence),
        ("ShareableDict", abc.MutableMapping),
        ("ShareableVec", abc.MutableSequence),
    ):
        cls = globals().get(name)
        if cls is not None:
            base.register(cls)


_register_abcs()
