"""Property tests: ShareableDict against dict, ShareableVec against list, Queue against
queue.Queue, with a second handle (opened by name or unpickled) reading along."""

import pickle
import queue

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import shm
from _leaks import no_leaks  # noqa: F401 (autouse fixture)

# Keys of one kind per family so that 1 == 1.0 == True (one dict key, three shm keys)
# never meets the model.
KEYS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=8))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too (pickled)
    st.floats(allow_nan=False),
    st.text(max_size=16),
    st.binary(max_size=16),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=4),
    ),
    max_leaves=12,
)
SETTINGS = settings(
    max_examples=25, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class DictMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.d = shm.ShareableDict()
        self.peer = shm.ShareableDict(name=self.d.name)
        self.model = {}

    @rule(k=KEYS, v=VALUES)
    def set(self, k, v):
        self.d[k] = v
        self.model[k] = v

    @rule(k=KEYS)
    def delete(self, k):
        if k in self.model:
            del self.peer[k]
            del self.model[k]
        else:
            try:
                del self.d[k]
                raise AssertionError("deleted a missing key")
            except KeyError:
                pass

    @rule(k=KEYS, v=VALUES)
    def setdefault(self, k, v):
        assert self.peer.setdefault(k, v) == self.model.setdefault(k, v)

    @rule(k=KEYS)
    def pop(self, k):
        assert self.d.pop(k, "missing") == self.model.pop(k, "missing")

    @rule(items=st.dictionaries(KEYS, VALUES, max_size=5))
    def update(self, items):
        self.d.update(items)
        self.model.update(items)

    @rule(k=KEYS, n=st.integers(-1000, 1000))
    def increment(self, k, n):
        if isinstance(self.model.get(k, 0), int) and not isinstance(self.model.get(k, 0), bool):
            self.model[k] = self.model.get(k, 0) + n
            assert self.peer.increment(k, n) == self.model[k]

    @rule()
    def clear_sometimes(self):
        if len(self.model) > 20:
            self.d.clear()
            self.model.clear()

    @invariant()
    def same(self):
        assert len(self.peer) == len(self.model)
        assert self.peer == self.model
        for k, v in self.model.items():
            assert self.d[k] == v and k in self.d

    def teardown(self):
        self.d.unlink()


class VecMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.v = shm.ShareableVec()
        self.peer = pickle.loads(pickle.dumps(self.v))
        self.model = []

    @rule(x=VALUES)
    def append(self, x):
        self.v.append(x)
        self.model.append(x)

    @rule(xs=st.lists(VALUES, max_size=4))
    def extend(self, xs):
        self.peer.extend(xs)
        self.model.extend(xs)

    @rule(i=st.integers(-6, 6), x=VALUES)
    def insert(self, i, x):
        self.v.insert(i, x)
        self.model.insert(i, x)

    @rule(i=st.integers(-6, 6))
    def pop(self, i):
        if -len(self.model) <= i < len(self.model):
            assert self.v.pop(i) == self.model.pop(i)

    @rule(i=st.integers(-6, 6), x=VALUES)
    def setitem(self, i, x):
        if -len(self.model) <= i < len(self.model):
            self.peer[i] = x
            self.model[i] = x

    @rule(a=st.integers(-6, 6), b=st.integers(-6, 6), xs=st.lists(SCALARS, max_size=3))
    def slice_assign(self, a, b, xs):
        self.v[a:b] = xs
        self.model[a:b] = xs

    @rule(a=st.integers(-6, 6), b=st.integers(-6, 6), step=st.sampled_from([None, 2, -1]))
    def slice_del(self, a, b, step):
        del self.v[a:b:step]
        del self.model[a:b:step]

    @rule()
    def reverse(self):
        self.v.reverse()
        self.model.reverse()

    @invariant()
    def same(self):
        assert list(self.peer) == self.model and len(self.v) == len(self.model)

    def teardown(self):
        self.v.unlink()


class QueueMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.q = shm.Queue(maxsize=4)
        self.peer = pickle.loads(pickle.dumps(self.q))
        self.model = queue.Queue(maxsize=4)

    @rule(x=VALUES)
    def put(self, x):
        try:
            self.model.put_nowait(x)
        except queue.Full:
            try:
                self.q.put_nowait(x)
                raise AssertionError("put into a full queue")
            except queue.Full:
                return
        self.q.put_nowait(x)

    @rule()
    def get(self):
        try:
            want = self.model.get_nowait()
        except queue.Empty:
            try:
                self.peer.get_nowait()
                raise AssertionError("got from an empty queue")
            except queue.Empty:
                return
        assert self.peer.get_nowait() == want

    @invariant()
    def sizes(self):
        assert self.q.qsize() == self.model.qsize()
        assert self.q.empty() == self.model.empty() and self.q.full() == self.model.full()

    def teardown(self):
        self.q.unlink()


TestDict = DictMachine.TestCase
TestDict.settings = SETTINGS
TestVec = VecMachine.TestCase
TestVec.settings = SETTINGS
TestQueue = QueueMachine.TestCase
TestQueue.settings = SETTINGS
