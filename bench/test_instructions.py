"""The instruction-count tool (bench/instructions.py) and its gate, without valgrind.

The counting itself needs valgrind and runs in tools/test.sh (the gate); here:
the gate's verdicts, the committed reference it reads, the parser of
callgrind's dumps, and every counted loop run natively (outside valgrind the
marker's client requests are no-ops), with the checks that each loop did what
its row claims.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
spec = importlib.util.spec_from_file_location("instructions", HERE / "instructions.py")
assert spec is not None and spec.loader is not None
instructions: Any = importlib.util.module_from_spec(spec)
sys.modules["instructions"] = instructions
spec.loader.exec_module(instructions)


def _reference() -> dict[str, Any]:
    return {
        "ratios_to_dict": {"memorystore-c-ttl": {"get_hit": 2.0, "delete": 1.5}, "MemoryStore-none": {"store_get": 6.0}}
    }


def _now(**moved: float) -> dict[str, Any]:
    now = copy.deepcopy(_reference())
    for op, factor in moved.items():
        for rows in now["ratios_to_dict"].values():
            if op in rows:
                rows[op] *= factor
    return now


def test_gate_passes_within_five_percent() -> None:
    passed, report = instructions.compare(_reference(), _now(get_hit=1.049, delete=0.97))
    assert passed, report
    assert report.count(" ok") == 3


def test_gate_fails_on_a_ratio_more_than_five_percent_worse_and_says_which() -> None:
    passed, report = instructions.compare(_reference(), _now(get_hit=1.06))
    assert not passed
    (worse,) = [line for line in report.splitlines() if "WORSE" in line]
    assert "memorystore-c-ttl" in worse and "`c.get(k)` hit" in worse and "+6.0%" in worse


def test_gate_reports_a_better_ratio_without_failing() -> None:
    passed, report = instructions.compare(_reference(), _now(store_get=0.8))
    assert passed
    assert "better" in report and "-20.0%" in report


def test_gate_fails_when_a_row_was_not_counted() -> None:
    now = _now()
    del now["ratios_to_dict"]["memorystore-c-ttl"]["delete"]
    passed, report = instructions.compare(_reference(), now)
    assert not passed and "MISSING" in report


def test_committed_reference_covers_every_gated_row() -> None:
    with open(instructions.REFERENCE) as source:
        reference = json.load(source)
    assert reference["schema"] == instructions.SCHEMA
    assert reference["versions"]["python"].count(".") == 2
    assert reference["errors"] == {}
    for name in instructions.GATED:
        subject = instructions.SUBJECTS_BY_NAME[name]
        assert set(reference["ratios_to_dict"][name]) == set(subject.all_ops()), name
        for op, ratio in reference["ratios_to_dict"][name].items():
            row = reference["counts"][name][op]
            unit = reference["counts"]["dict"][instructions.DICT_UNIT[op]]["per_op"]
            assert ratio == pytest.approx(row["per_op"] / unit, rel=1e-3), (name, op)
            # instructions.count() rounds to one decimal: the same rounding, exactly
            assert row["per_op"] == round((row["total"] - row["empty"]) / row["ops"], 1), (name, op)


def test_read_dump_counts_exclusive_costs_by_function_and_line(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text(
        "# callgrind format\nevents: Ir\n\n"
        "fl=(1) /src/memorystore/_lru.c\n"
        "fn=(2) get\n"
        "10 5\n"
        "+2 7\n"
        "cfl=(1)\ncfn=(3) find\ncalls=1 40\n"
        "12 100\n"  # the call's inclusive cost: not get's own
        "fi=(4) /usr/include/python3.11/object.h\n"
        "500 3\n"
        "fe=(1)\n"
        "* 1\n"
        "fn=(3)\n"
        "40 60\n"
    )
    by_function, by_line = instructions.read_dump(str(dump))
    assert by_function == {"get (_lru.c)": 16, "find (_lru.c)": 60}
    assert by_line == {
        ("/src/memorystore/_lru.c", 10): 5,
        ("/src/memorystore/_lru.c", 12): 7,
        ("/usr/include/python3.11/object.h", 500): 3,
        ("/src/memorystore/_lru.c", 500): 1,
        ("/src/memorystore/_lru.c", 40): 60,
    }


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which(os.environ.get("CC", "cc")) is None or not Path("/usr/include/valgrind/callgrind.h").exists():
        pytest.skip("no C compiler or no valgrind headers (Debian: apt-get install valgrind)")
    return str(instructions.build_marker(str(tmp_path_factory.mktemp("marker"))))


@pytest.mark.c_extension
@pytest.mark.parametrize("name", ["dict", "memorystore-c-ttl", "MemoryStore-none"])
def test_every_counted_loop_runs_and_does_what_its_row_claims(marker: str, name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(HERE / "instructions.py"), "--child", name, "--marker", marker],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads(done.stdout.strip().splitlines()[-1])
    subject = instructions.SUBJECTS_BY_NAME[name]
    assert [row["label"] for row in manifest] == [f"{name}|{op}" for op in subject.all_ops()]
    assert all(row["ops"] > 0 for row in manifest)


def test_same_totals_counts_rows_counted_exactly_as_in_the_reference() -> None:
    reference = {"counts": {"dict": {"get_hit": {"total": 10, "empty": 2}, "delete": {"total": 7, "empty": 1}}}}
    now = {"counts": {"dict": {"get_hit": {"total": 10, "empty": 2}, "delete": {"total": 8, "empty": 1}}}}
    assert instructions.same_totals(reference, now) == (1, 2)
    now["counts"]["memorystore-c"] = {"get_hit": {"total": 1, "empty": 0}}  # not in the reference
    assert instructions.same_totals(reference, now) == (1, 3)
