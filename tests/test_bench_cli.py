"""``python -m memorystore bench`` (``memorystore._bench.main``): a tiny real run.

The table must have a row per installed implementation with a finite ns/op
for every operation it supports; peers that are not installed are reported,
not timed.  Importing ``memorystore`` must not import any peer.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from memorystore import _bench

# The bench compares against the compiled core: without it (a pure wheel) there is nothing to compare.
pytestmark = pytest.mark.c_extension

ROW = re.compile(r"^(\S+)\s{2,}(.*)$")
CELL = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|ms)?(?: \((\d+\.\d+)x\))?$")
UNIT = {None: 1.0, "ns": 1.0, "us": 1e3, "ms": 1e6}


def _table(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("implementation"))
    rows = {}
    for line in lines[header_at + 2 :]:
        if not line.strip() or line.startswith(("ns/op", "not installed", "plot")):
            break
        name, rest = ROW.match(line).groups()  # type: ignore[union-attr]
        rows[name] = re.split(r"\s{2,}", rest.strip())
    return rows


def _ns(cell: str) -> float:
    match = CELL.match(cell)
    assert match, f"unparsable cell {cell!r}"
    return float(match.group(1)) * UNIT[match.group(2)]


@pytest.fixture(scope="module")
def quick_run() -> tuple[int, str, str]:
    capture = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from memorystore._bench import main; sys.exit(main(sys.argv[1:]))",
            "--quick",
            "--ops",
            "2000",
            "--capacity",
            "4000",
        ],
        capture_output=True,
        timeout=300,
    )
    # bytes, decoded by hand: text mode would turn the progress bar's "\r" into "\n"
    return capture.returncode, capture.stdout.decode(), capture.stderr.decode()


def test_table_has_a_row_per_installed_implementation(quick_run: tuple[int, str, str]) -> None:
    code, out, err = quick_run
    assert code == 0, err
    rows = _table(out)
    installed = [impl for impl in _bench.IMPLEMENTATIONS if _bench.available(impl)]
    assert {impl.name for impl in installed} == set(rows)
    for impl in installed:
        cells = rows[impl.name]
        assert len(cells) == len(_bench.OPS)
        for op, cell in zip(_bench.OPS, cells):
            if impl.supports(op):
                ns = _ns(cell)
                assert math.isfinite(ns) and ns > 0, (impl.name, op, cell)
            else:
                assert cell == "-", (impl.name, op, cell)


def test_memorystore_rows_are_always_there(quick_run: tuple[int, str, str]) -> None:
    rows = _table(quick_run[1])
    assert {"memorystore-c", "memorystore-c-ttl", "memorystore-py", "memorystore-py-ttl", "MemoryStore"} <= set(rows)


def test_peers_show_a_ratio_to_memorystore(quick_run: tuple[int, str, str]) -> None:
    rows = _table(quick_run[1])
    assert "(" not in rows["memorystore-c"][0]  # the reference itself has no ratio
    ratios = [CELL.match(cell).group(3) for cell in rows["dict"] if cell != "-"]  # type: ignore[union-attr]
    assert ratios and all(r is not None and float(r) > 0 for r in ratios)


def test_progress_goes_to_stderr(quick_run: tuple[int, str, str]) -> None:
    _, out, err = quick_run
    assert "\r[" in err and "done" in err
    assert "\r" not in out


def test_missing_peer_is_skipped_not_fatal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = _bench.available
    monkeypatch.setattr(_bench, "available", lambda impl: impl.name != "lru-dict" and real(impl))
    assert _bench.main(["--quick", "--ops", "200", "--capacity", "1000", "--only", "dict,lru-dict,memorystore-c"]) == 0
    out = capsys.readouterr().out
    assert "lru-dict" not in _table(out)
    assert "not installed (skipped): lru-dict" in out


def test_unknown_implementation_is_an_error() -> None:
    with pytest.raises(SystemExit, match="unknown implementation"):
        _bench.main(["--only", "nope"])


def test_plot_writes_a_png(tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "bench.png"  # type: ignore[operator]
    assert (
        _bench.main(
            ["--quick", "--ops", "200", "--capacity", "1000", "--only", "dict,memorystore-c", "--plot", str(target)]
        )
        == 0
    )
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_importing_memorystore_imports_no_peer() -> None:
    code = (
        "import sys, memorystore, memorystore._bench; "
        "peers = {'cachebox', 'cachetools', 'lru', 'cachelib', 'django', 'matplotlib'}; "
        "print(sorted(peers & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
