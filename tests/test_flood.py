"""The flood benchmark (``python -m memorystore flood``, ``memorystore._flood``), on small stores.

The figures must tell the policies apart the way issue 14 requires of
"protect" (no established or recently used session lost to a 10 x capacity
flood, no fewer sessions found than LRU without a flood), and the command
line must print the table, the sweep and the plot.  Sizes are small so the
whole file runs in seconds; the README's figures come from capacity 10,000.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memorystore import _flood, _policy

SMALL = _flood.Workload(capacity=400)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_fast_10x_flood(store_cls: type, seed: int) -> None:
    lru = _flood.simulate("lru", 10, 60.0, SMALL, seed, store_class=store_cls)
    protect = _flood.simulate("protect", 10, 60.0, SMALL, seed, store_class=store_cls)
    assert lru.counted["E"] == protect.counted["E"] == 120  # 0.3 x capacity, all established
    assert protect.E == 1.0 and protect.R in (1.0, None)
    assert lru.E is not None and lru.E < 0.2
    assert protect.found > lru.found
    # LRU pushed out every used session (the users' among them); protect only the unused ones, but
    # for the few used ones it evicts when probation is below its reserve (before the flood, too).
    read_evicted = {r.policy: r.stats["evictions"] - r.stats["evicted_unread"] for r in (lru, protect)}
    assert read_evicted["lru"] - read_evicted["protect"] >= 120
    assert protect.stats["evicted_unread"] >= 4000 - 400


def test_no_flood_finds_every_session_under_both_policies(store_cls: type) -> None:
    for policy in ("lru", "protect"):
        control = _flood.simulate(policy, 0, 1800.0, SMALL, 3, store_class=store_cls)
        assert control.found == 1.0 and control.E == 1.0, policy
        assert control.N == 1.0 and control.counted["N"] > 20  # visitors arriving meanwhile keep their session
        assert control.N_model == 1.0


def test_a_slow_crawler(store_cls: type) -> None:
    protect = _flood.simulate("protect", 3, 1800.0, SMALL, 1, store_class=store_cls)
    assert protect.E == 1.0
    assert protect.N is not None and protect.counted["N"] > 20
    # The flood cycles through probation: at least the reserve, 1200 sessions in 1800 s, 20 s gaps.
    reserve = _policy.probation_reserve(SMALL.capacity)
    assert 1 - math.exp(-reserve / (1200 / 1800 * 20)) <= protect.N_model < 1
    assert abs(protect.N - protect.N_model) < 0.25


def test_the_n_model_follows_the_flood_rate() -> None:
    fast = _flood.simulate("lru", 10, 60.0, SMALL, 1)
    slower = _flood.simulate("lru", 1, 60.0, SMALL, 1)
    assert fast.N_model < slower.N_model < 1.0


def test_probation_share_is_restored() -> None:
    before = _policy.PROBATION_SHARE
    with _flood.probation_share(0.5):
        assert _policy.PROBATION_SHARE == 0.5
        assert _policy.probation_reserve(100) == 50
    assert _policy.PROBATION_SHARE == before


def test_the_command_line_prints_the_table(tmp_path: Path) -> None:
    figures = tmp_path / "flood.json"
    run = subprocess.run(
        [sys.executable, "-m", "memorystore", "flood", "--capacity", "200", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and not line.startswith("| flood")]
    assert len(rows) == 2 * len(_flood.MULTIPLES)
    ten_fast = next(row for row in rows if row.startswith("| fast | 10 |")).split("|")
    assert ten_fast[4].strip() == "100%"  # E under protect
    assert '"policy": "protect"' in figures.read_text()
    assert "capacity 200" in run.stderr


def test_the_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "flood.png"
    results = _flood.run(_flood.Workload(capacity=100), multiples=(0, 1))
    _flood.plot(results, str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    assert _flood.main(["--capacity", "200", "--sweep", "0.05,0.3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\| lru \| - \|", out, re.M)
    assert re.search(r"^\| protect \| 0\.05 \|", out, re.M) and re.search(r"^\| protect \| 0\.3 \|", out, re.M)


@pytest.mark.parametrize("argv", [["--capacity", "5"], ["--capacity", "x"]])
def test_bad_capacity_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _flood.main(argv)
    assert exit_info.value.code == 2
    assert "capacity" in capsys.readouterr().err


def test_bad_users_share(capsys: pytest.CaptureFixture[str]) -> None:
    assert _flood.main(["--users", "1.5"]) == 2
    assert "--users" in capsys.readouterr().err
