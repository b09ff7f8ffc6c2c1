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
