"""Smoke run of bench/shared.py (SharedMemoryStore against redis-py and diskcache): tiny sizes, every part once.

The real run is ``python bench/shared.py`` (results in bench/results/shared.md);
here only that it runs end to end and prints every table.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.c_extension


def test_shared_benchmark_runs_end_to_end(tmp_path):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shared.py")
    out = tmp_path / "shared.md"
    args = ["--ops", "200", "--procs", "1,2", "--seconds", "0.2", "--trials", "1", "--paced-ops", "20"]
    args += ["--population", "200"]
    run = subprocess.run(
        [sys.executable, script, *args, "--rate", "500", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    for heading in ("## 1. One process", "## 2a.", "## 2b.", "## 3. Aggregate", "## Targets"):
        assert heading in text
    assert "| 2 | SharedMemoryStore |" in text
    throughput = text.split("## 3. Aggregate")[1].split("## Targets")[0]
    assert "| (MemoryStore, per process) | " in throughput  # the machine's own 2-process scaling
    assert "| SharedMemoryStore | " in throughput
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("memorystore.bench-")]  # unlinked
