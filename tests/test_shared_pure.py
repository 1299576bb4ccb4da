"""SharedMemoryStore with the pure-Python core: a clear RuntimeError at construction (both runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import memorystore

SCRIPT = textwrap.dedent("""
    import os, memorystore
    assert not memorystore.COMPILED
    try:
        memorystore.SharedMemoryStore("never-created", capacity=10)
    except RuntimeError as exc:
        assert "needs the compiled core" in str(exc), exc
    else:
        raise AssertionError("no RuntimeError")
    assert not os.path.exists("/dev/shm/memorystore.never-created")
""")


@pytest.mark.skipif(memorystore.COMPILED, reason="this run has the compiled core (the subprocess test covers it)")
def test_pure_core_refuses_to_build_a_shared_store():
    with pytest.raises(RuntimeError, match="needs the compiled core"):
        memorystore.SharedMemoryStore("never-created", capacity=10)
    assert not os.path.exists("/dev/shm/memorystore.never-created")


def test_pure_core_refuses_in_a_fresh_interpreter():
    env = {**os.environ, "MEMORYSTORE_NO_EXTENSIONS": "1"}
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env=env, timeout=60)
