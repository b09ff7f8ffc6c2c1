"""Leak check for the collection tests: segments this test's processes made must be gone.

/dev/shm is shared with whatever else runs on the machine, so a new name counts as ours
only if its header names this process or a dead one (our children have exited by the
time the check runs; other suites' live processes are left alone)."""

import gc
import os
import time

import pytest

import shm


def names():
    return {n for n in os.listdir("/dev/shm") if n.startswith(("psm_", "shm-rs"))}


def _ours(name):
    c = shm._shm._creator(name)
    if c is None:
        return False  # gone meanwhile, or a headerless segment we cannot attribute
    pid, alive = c
    return pid == os.getpid() or not alive


@pytest.fixture(autouse=True)
def no_leaks():
    before = names()
    yield
    gc.collect()
    deadline = time.monotonic() + 5
    while True:
        left = sorted(n for n in names() - before if _ours(n))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"segments left behind: {left}"
