"""Smoke run of bench/e2e.py (one Flask endpoint under real gunicorn workers, six session stores): tiny and short.

The real run is ``python bench/e2e.py`` (results in bench/results/e2e.md and
e2e.png); here only that every store serves every request from its seeded
session (no errors), the report and the plot are written, and nothing is
left behind in /dev/shm.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.c_extension  # SharedMemoryStore
SCRIPT = Path(__file__).resolve().parent / "e2e.py"

pytest.importorskip("flask_session", reason="the bench extra: pip install '.[bench]'")
pytest.importorskip("diskcache", reason="the bench extra: pip install '.[bench]'")
if not (Path(sys.executable).parent / "gunicorn").exists():
    pytest.skip("gunicorn is not installed beside this Python (the bench extra)", allow_module_level=True)


def run(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "e2e.md"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--warmup", "0", "--out", str(out),
         "--plot", str(tmp_path / "e2e.png")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "e2e.png").stat().st_size > 10_000
    assert not [name for name in os.listdir("/dev/shm") if name.startswith("memorystore.bench-e2e-")]
    return out.read_text()


def rows(text: str) -> dict[tuple[str, str], list[str]]:
    """The results table: (workers, store) -> [req/s, rounds' range, vs floor, p50, p99, errors]."""
    found = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0].isdigit():
            found[(cells[0], cells[1])] = cells[2:]
    return found


def test_every_store_serves_every_request_from_its_session(tmp_path: Path) -> None:
    text = run(tmp_path, "--workers", "2", "--seconds", "0.3", "--rounds", "2", "--client", "python")
    table = rows(text)
    stores = ["Flask signed cookie", "Flask-Session + cachelib FileSystemCache", "Flask-Session + diskcache FanoutCache",
              "**memorystore SharedMemoryStore**", "memorystore MemoryStore, per process (floor)"]  # fmt: skip
    if shutil.which("redis-server"):
        stores.append("Flask-Session + Redis (TCP)")
    for store in stores:
        rps, _, vs_floor, p50, p99, errors = table[("2", store)]
        assert float(rps.replace(",", "")) > 0 and float(p50) > 0 and float(p99) >= float(p50), (store, table)
        assert errors == "0", (store, table)
    assert table[("2", "memorystore MemoryStore, per process (floor)")][2] == "1.00"
    assert "Python fallback client" in text
    assert re.search(r"- 2 worker\(s\): SharedMemoryStore [\d,]+ req/s", text)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_generates_the_load(tmp_path: Path) -> None:
    text = run(
        tmp_path, "--workers", "1", "--seconds", "1", "--rounds", "1", "--stores", "shared,memory", "--client", "wrk"
    )
    table = rows(text)
    assert set(table) == {
        ("1", "**memorystore SharedMemoryStore**"),
        ("1", "memorystore MemoryStore, per process (floor)"),
    }
    assert all(cells[5] == "0" and float(cells[0].replace(",", "")) > 0 for cells in table.values()), table
    assert "load: wrk, 1 thread, 8 connections" in text
