import os
import subprocess
import sys
import textwrap

import pytest


def run_script(src, timeout=120, env=None, cwd=None):
    """Runs `src` in a fresh interpreter (this one, with this sys.path), returns stdout."""
    e = dict(os.environ)
    # Unbuffered output splits print()'s text and newline into two writes that
    # interleave between processes; the examples' printed lines must stay whole.
    e.pop("PYTHONUNBUFFERED", None)
    e["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if env:
        e.update(env)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(src)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
        cwd=cwd,
    )
    assert out.returncode == 0, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    return out.stdout


@pytest.fixture
def script():
    return run_script


START_METHODS = ["fork", "spawn", "forkserver"]
