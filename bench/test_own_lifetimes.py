"""Smoke run of bench/own_lifetimes.py (expiry of entries of their own lifetimes beside one lifetime).

The real run is ``python bench/own_lifetimes.py`` (figures in the README's
"Instructions per operation"); here only that every cell runs, removes what it
should (the script checks each call's count) and lands in the JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.c_extension


def test_own_lifetimes_benchmark_runs_every_cell(tmp_path):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "own_lifetimes.py")
    out = tmp_path / "own.json"
    run = subprocess.run(
        [sys.executable, script, "--n", "3000", "--share", "0.01", "--share", "0.5", "--rounds", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    cells = json.loads(out.read_text())["cells"]
    assert [(cell["share"], cell["method"]) for cell in cells] == [
        (0.01, "purge"), (0.01, "expire"), (0.5, "purge"), (0.5, "expire")
    ]  # fmt: skip
    assert all(cell["one_ns"] > 0 and cell["scattered_ns"] > 0 and cell["own_ns"] > 0 for cell in cells)
    assert "own / scattered" in run.stdout
