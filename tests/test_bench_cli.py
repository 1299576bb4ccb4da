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


def test_table_ends_with_a_true_legend_and_the_noise_of_this_run(quick_run: tuple[int, str, str]) -> None:
    out = quick_run[1]
    assert _bench.RATIO_LEGEND in out and _bench.NOISE_WARNING in out
    assert re.search(r"^Noise in this run: the rounds of one cell spread by \d+%", out, re.M)
    assert "> 1 means memorystore is faster" not in out  # the old legend, wrong on memorystore's own rows
    rows = _table(out)
    # Each ratio is the row's ns over the reference the legend names (rounding of the printed cells aside).
    for name, reference in (
        ("memorystore-py", "memorystore-c"),
        ("MemoryStore", "memorystore-c-ttl"),
        ("dict", "memorystore-c"),
    ):
        for cell, ref_cell in zip(rows[name], rows[reference]):
            if cell == "-":
                continue
            ratio = float(CELL.match(cell).group(3))  # type: ignore[union-attr]
            assert ratio == pytest.approx(_ns(cell) / _ns(ref_cell), rel=0.05, abs=0.01), (name, cell, ref_cell)
    for reference in ("memorystore-c", "memorystore-c-ttl"):
        assert all("(" not in cell for cell in rows[reference])


def test_summarize_report_carries_the_legend_and_the_measured_noise(tmp_path: pytest.TempPathFactory) -> None:
    """bench/summarize.py on a small pytest-benchmark JSON: same legend, noise from the benchmarks' own stats."""
    import importlib.util
    import io
    import json
    from contextlib import redirect_stdout
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "summarize.py"
    if not path.exists():
        pytest.skip("bench/summarize.py is not in this tree (an installed-package run)")
    spec = importlib.util.spec_from_file_location("summarize", path)
    summarize = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(summarize)  # type: ignore[union-attr]
    timings = {"memorystore-c": 100.0, "memorystore-c-ttl": 120.0, "memorystore-py": 900.0, "MemoryStore": 240.0}
    benchmarks = [
        {
            "extra_info": {"impl": impl, "op": "get_hit", "ns_per_op": ns},
            "stats": {"median": ns * 1000, "iqr": ns * 1000 * (0.5 if impl == "memorystore-py" else 0.1)},
        }
        for impl, ns in timings.items()
    ]
    source = tmp_path / "bench.json"  # type: ignore[operator]
    source.write_text(json.dumps({"benchmarks": benchmarks, "machine_info": {}, "datetime": "now"}))
    report = io.StringIO()
    with redirect_stdout(report):
        assert summarize.main([str(source)]) == 0
    text = report.getvalue()
    assert _bench.RATIO_LEGEND in text and _bench.NOISE_WARNING in text
    assert "spread by 10%" in text and "worst 50% (memorystore-py, get hit)" in text
    assert "| memorystore-py | 900 (9.00x) |" in text  # over memorystore-c
    assert "| MemoryStore | 240 (2.00x) |" in text  # over memorystore-c-ttl
