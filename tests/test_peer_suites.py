"""tools/peer_suites/run.py: how the peers' test outcomes are judged against the expected failures.

The peer suites themselves (downloads, minutes) run from tools/test.sh; this keeps the judging
honest: an unexpected failure, an unexpected pass, a failure for another reason than the listed
one, a stale entry and a suite that could not run all fail or skip, never pass.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).resolve().parent.parent / "tools" / "peer_suites" / "run.py"
pytestmark = pytest.mark.skipif(not RUN.exists(), reason="tools/ is not shipped with this copy of the tests")


@pytest.fixture(scope="module")
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peer_suites_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expected.txt"
    path.write_text(text)
    return path


def test_the_expected_failures_file_is_well_formed(run: ModuleType) -> None:
    entries = run.read_expected()
    assert entries, "the list is empty: then it should say why, not vanish"
    suites = {suite for peer in run.PEERS.values() for suite in peer.suites}
    for entry in entries.values():
        assert entry.suite in suites, entry
        assert len(entry.why) > 20, f"line {entry.line}: say why"


def test_bad_lines_are_refused(run: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="expected 'suite"):
        run.read_expected(write(tmp_path, "cachelib | T.test | message\n"))
    with pytest.raises(SystemExit, match="listed twice"):
        run.read_expected(write(tmp_path, "s | T.a | m | why\ns | T.a | m | why again\n"))


def test_outcomes_are_judged_against_the_list(run: ModuleType, tmp_path: Path) -> None:
    entries = run.read_expected(
        write(
            tmp_path,
            "# comment\n\n"
            "s | T.private | no attribute '_cache' | reads a private attribute\n"
            "s | T.now_passes | boom | was broken\n"
            "s | T.other_reason | no attribute '_cache' | reads a private attribute\n"
            "s | T.gone | x | renamed upstream\n"
            "t | T.other_suite | x | not run here\n",
        )
    )
    outcomes = {
        "T.private[a]": {"outcome": "failed", "detail": "AttributeError: no attribute '_cache'"},
        "T.private[b]": {"outcome": "error", "detail": "AttributeError: no attribute '_cache'"},
        "T.now_passes": {"outcome": "passed", "detail": ""},
        "T.other_reason": {"outcome": "failed", "detail": "AssertionError: 1 != 2"},
        "T.fine": {"outcome": "passed", "detail": ""},
        "T.broken": {"outcome": "failed", "detail": "AssertionError: real difference"},
        "T.peer_skip": {"outcome": "skipped", "detail": "needs memcached"},
    }
    tally = run.compare("s", "compiled", outcomes, entries)
    assert (tally.ran, tally.passed, tally.xfailed, tally.skipped) == (6, 1, 2, 1)
    problems = "\n".join(tally.problems)
    assert "UNEXPECTED PASS T.now_passes" in problems
    assert "FAILED OTHERWISE T.other_reason" in problems
    assert "UNEXPECTED FAILED T.broken: AssertionError: real difference" in problems
    assert len(tally.problems) == 3
    stale = run.stale_entries(entries, {"s"})
    assert [entry.test for entry in stale] == ["T.gone"]  # suite t did not run: its entry is not judged


def test_a_suite_without_its_sdist_is_a_loud_skip_never_a_pass(tmp_path: Path) -> None:
    pytest.importorskip("cachelib")  # an sdist is looked for only for an installed peer
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tmp_path))  # nothing to find
    proc = subprocess.run(
        [sys.executable, str(RUN), "--suites", "cachelib", "--cores", "pure", "--sdists", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert "!!! cachelib SKIPPED: pip download cachelib==" in proc.stdout
    assert "PASSED" not in proc.stdout
    assert "cachelib         pure          0       0      0        0  SKIP (no sdist)" in proc.stdout
