"""tools/valgrind_workload.py runs (natively, without valgrind) and exits 0, for both cores.

The valgrind run itself (tools/valgrind.sh) takes minutes and is not part of
the suite; this keeps its workload from rotting.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

WORKLOAD = Path(__file__).resolve().parent.parent / "tools" / "valgrind_workload.py"
SCRIPT = WORKLOAD.with_name("valgrind.sh")


@pytest.mark.skipif(not WORKLOAD.exists(), reason="tools/ is not shipped with this copy of the tests")
def test_valgrind_workload_runs(lru_impl: ModuleType) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-X", "dev", str(WORKLOAD), "--core", lru_impl.__name__],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Fatal Python error" not in proc.stderr
    assert proc.stdout.rstrip().endswith("workload ok"), proc.stdout
    assert f"core: {lru_impl.__name__} " in proc.stdout


@pytest.mark.skipif(not SCRIPT.exists(), reason="tools/ is not shipped with this copy of the tests")
def test_valgrind_script_is_valid_bash() -> None:
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
