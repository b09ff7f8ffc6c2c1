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

from . import _shm
from ._shm import *  # noqa: F401,F403

__version__ = _shm.__version__

# Processes come from the stdlib: every shm object pickles to its handle.
from multiprocessing import Process, Pool, current_process  # noqa: E402,F401


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
