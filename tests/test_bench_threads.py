"""``python -m memorystore bench --threads``: runs, prints one row per scenario with both rates and the ratio."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig

import pytest

from memorystore import _bench_threads


def test_threads_table_has_every_scenario_with_rates_and_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memorystore", "bench", "--threads", "--quick", "--ops", "3000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    header, *table, legend = done.stdout.strip().splitlines()
    build = "free-threaded build, GIL off" if sysconfig.get_config_var("Py_GIL_DISABLED") else "GIL build"
    assert build in header and "3000 ops per thread" in header
    rows = {}
    for line in table[2:]:
        match = re.fullmatch(r"(.+?)\s+([\d.]+)M/s\s+([\d.]+)M/s\s+([\d.]+)x\s+([\d.]+)", line)
        assert match, line
        name, one, two, ratio, per_cpu = match.groups()
        assert float(per_cpu) > 0
        rows[name] = (float(one), float(two), float(ratio))
    assert list(rows) == [scenario.name for scenario in _bench_threads.SCENARIOS]
    assert legend.startswith("ratio: ")
    for one, two, ratio in rows.values():
        assert one > 0 and two > 0
        # The rates are printed to 0.01M/s and the ratio to 0.01: it lies within their rounding.
        assert (two - 0.005) / (one + 0.005) - 0.005 <= ratio <= (two + 0.005) / max(one - 0.005, 1e-9) + 0.005


def test_threads_needs_at_least_two() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memorystore", "bench", "--threads", "1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--threads must be >= 2" in done.stderr


def test_every_scenario_really_runs_its_operations() -> None:
    """A scenario whose body raised (say, a KeyError from a read that missed) fails the measurement."""
    for scenario in _bench_threads.SCENARIOS:
        assert min(_bench_threads.measure(scenario, 2, 500)) > 0
    broken = _bench_threads.Scenario("broken", False, _bench_threads.SCENARIOS[0].build, "c['never stored']")
    with pytest.raises(KeyError):
        _bench_threads.measure(broken, 2, 10)
