"""Run the peers' own test suites against memorystore's adapters (``bash tools/peer-suites.sh``).

    python tools/peer_suites/run.py [--cores compiled,pure] [--suites cachelib,django] [--sdists DIR] [-v]

For each peer installed in this interpreter, the sdist of exactly that version is
downloaded from the package index (``pip download --no-binary :all: --no-deps``;
kept in ``--sdists``, default ``~/.cache/memorystore/peer-sdists``, so a re-run
works offline), its tests are unpacked into a temporary directory, and run in a
fresh interpreter per core against the adapters:

- ``cachelib``: ``cachelib_suite.py`` (cachelib's SimpleCache tests and common
  test classes on ``memorystore.cachelib.MemoryStoreCache``), under pytest;
- ``django-cache`` and ``django-sessions``: ``django_suites.py`` (Django's
  ``LocMemCacheTests`` and session tests on ``memorystore.django``).

Every outcome is compared with ``expected-failures.txt`` beside this file: a test
listed there must fail with the message listed for it, every other test must
pass (or be skipped by the peer itself).  The run ends with a table (ran, passed,
expected failures, skipped per suite and core) and exits

- 1 on any unexpected failure, unexpected pass, listed test that did not run,
  or suite that crashed;
- 77 (SKIP) when nothing failed but a suite could not run here (its sdist
  could not be downloaded, or its peer is not installed): said in one loud
  line, and never counted as a pass;
- 0 when every suite ran and matched the list.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED_FILE = HERE / "expected-failures.txt"
SKIP_EXIT = 77
ALL_CORES = ("compiled", "pure")


@dataclass
class Peer:
    """A peer whose sdist's tests are run: the distribution, what to unpack, the suites it feeds."""

    dist: str
    members: tuple[str, ...]  # paths under the sdist's top directory to unpack
    suites: tuple[str, ...]


PEERS = {
    "cachelib": Peer("cachelib", ("tests/",), ("cachelib",)),
    "django": Peer("Django", ("tests/cache/", "tests/sessions_tests/"), ("django-cache", "django-sessions")),
}


def loud(message: str) -> None:
    print(f"peer-suites: !!! {message}", flush=True)


# -- the expected failures ---------------------------------------------------------------


@dataclass
class Expected:
    suite: str
    test: str
    message: str  # the failure's detail must contain this
    why: str
    line: int
    seen: bool = False  # a test of a suite that ran maps to it


def read_expected(path: Path = EXPECTED_FILE) -> dict[tuple[str, str], Expected]:
    """``suite | test | the failure contains | why`` lines; ``#`` comments and blank lines ignored."""
    entries: dict[tuple[str, str], Expected] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split(" | ")]
        if len(parts) != 4 or not all(parts):
            raise SystemExit(f"{path}:{number}: expected 'suite | test | failure contains | why', got {raw!r}")
        suite, test, message, why = parts
        if (suite, test) in entries:
            raise SystemExit(f"{path}:{number}: {suite} {test} is listed twice")
        entries[suite, test] = Expected(suite, test, message, why, number)
    return entries


def expectation(entries: dict[tuple[str, str], Expected], suite: str, test: str) -> Expected | None:
    """The entry for ``test``; an entry without ``[param]`` covers every parametrization."""
    entry = entries.get((suite, test))
    if entry is None and test.endswith("]"):
        entry = entries.get((suite, test[: test.index("[")]))
    return entry


# -- the sdists ----------------------------------------------------------------------------


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_sdist(directory: Path, dist: str, version: str) -> Path | None:
    wanted = f"{_normalized(dist)}-{version}.tar.gz"
    for path in directory.glob("*.tar.gz") if directory.is_dir() else ():
        if _normalized(path.name[: -len(f"-{version}.tar.gz")]) + f"-{version}.tar.gz" == wanted:
            return path
    return None


def download_sdist(directory: Path, dist: str, version: str) -> tuple[Path | None, str]:
    """The sdist of ``dist==version`` (from ``directory``, else the package index) or why not."""
    found = find_sdist(directory, dist, version)
    if found is not None:
        return found, f"{found.name} (already downloaded)"
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
            "--timeout", "30", "--retries", "1", "--dest", tmp, f"{dist}=={version}",
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return None, "pip download did not finish in 10 minutes"
        fetched = find_sdist(Path(tmp), dist, version)
        if done.returncode != 0 or fetched is None:
            lines = [line for line in (done.stderr + done.stdout).splitlines() if "is ignored" not in line]
            return None, f"pip download {dist}=={version} failed: {lines[-1].strip() if lines else 'no sdist'}"
        target = directory / fetched.name
        os.replace(fetched, target)
    return target, f"{target.name} (downloaded)"


def unpack(sdist: Path, members: tuple[str, ...], into: Path) -> Path:
    """Unpack the ``members`` prefixes of ``sdist`` under ``into``; returns the sdist's top directory."""
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        chosen = [m for m in tar.getmembers() if any(m.name.startswith(f"{top}/{prefix}") for prefix in members)]
        if not chosen:
            raise RuntimeError(f"{sdist.name} has no {', '.join(members)}")
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: refuse links and paths out of `into`
            tar.extractall(into, members=chosen, filter="data")
        else:
            tar.extractall(into, members=chosen)
    return into / top


# -- running ------------------------------------------------------------------------------


@dataclass
class Run:
    """One peer on one core: a subprocess writing a JSON file of outcomes."""

    peer: str
    core: str
    process: subprocess.Popen[bytes]
    results: Path
    log: Path
    started: float
    took: float = 0.0


def core_env(core: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MEMORYSTORE_NO_EXTENSIONS", "PYTHONPATH")}
    if core == "pure":
        env["MEMORYSTORE_NO_EXTENSIONS"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_cachelib(top: Path, core: str, work: Path) -> Run:
    tests = top / "tests"
    shutil.copyfile(HERE / "cachelib_suite.py", tests / "test_memorystore_cache.py")
    # An ini of our own: the tests dir is the rootdir, and no project's pytest settings apply.
    (tests / "pytest.ini").write_text("[pytest]\naddopts =\n")
    if subprocess.run([sys.executable, "-c", "import xprocess"], capture_output=True).returncode != 0:
        # cachelib's conftest imports pytest-xprocess for its Redis/Memcached/Valkey server
        # fixtures; the tests run here never request them.  Any use fails loudly.
        (tests / "xprocess.py").write_text(
            "class ProcessStarter:\n"
            "    def __init__(self, *args, **kwargs):\n"
            "        raise RuntimeError('pytest-xprocess is not installed: no server fixtures here')\n"
        )
    results, log = work / f"cachelib-{core}.json", work / f"cachelib-{core}.log"
    env = core_env(core)
    env.update(
        PYTHONPATH=str(HERE),  # the recording plugin
        PEER_SUITES_RESULTS=str(results),
        PEER_SUITES_SUITE="cachelib",
        PEER_SUITES_CORE=core,
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "record",
        "-W", "default", "test_memorystore_cache.py",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=tests, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Run("cachelib", core, process, results, log, time.monotonic())


def start_django(top: Path, core: str, work: Path) -> Run:
    results, log = work / f"django-{core}.json", work / f"django-{core}.log"
    command = [sys.executable, str(HERE / "django_suites.py"), str(top / "tests"), str(results)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=work, env=core_env(core), stdout=out, stderr=subprocess.STDOUT)
    return Run("django", core, process, results, log, time.monotonic())


STARTERS = {"cachelib": start_cachelib, "django": start_django}


# -- comparing ----------------------------------------------------------------------------


@dataclass
class Tally:
    ran: int = 0
    passed: int = 0
    xfailed: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | FAIL | SKIP
    note: str = ""


def compare(suite: str, core: str, outcomes: dict, entries: dict[tuple[str, str], Expected]) -> Tally:
    tally = Tally()
    for test, result in sorted(outcomes.items()):
        outcome, detail = result["outcome"], result.get("detail", "")
        entry = expectation(entries, suite, test)
        if entry is not None:
            entry.seen = True
        if outcome == "skipped":
            tally.skipped += 1
            if entry is not None:
                tally.problems.append(f"listed as an expected failure but skipped: {test} ({detail})")
            continue
        tally.ran += 1
        if outcome == "passed":
            if entry is None:
                tally.passed += 1
            else:
                tally.problems.append(f"UNEXPECTED PASS {test} (listed at line {entry.line}: {entry.why})")
        elif entry is None:
            tally.problems.append(f"UNEXPECTED {outcome.upper()} {test}: {detail}")
        elif entry.message not in detail:
            tally.problems.append(
                f"FAILED OTHERWISE {test}: {detail!r} does not contain {entry.message!r} (line {entry.line})"
            )
        else:
            tally.xfailed += 1
    return tally


def stale_entries(entries: dict[tuple[str, str], Expected], ran_suites: set[str]) -> list[Expected]:
    """Entries of a suite that ran which matched none of its tests (the test was renamed or removed)."""
    return [entry for entry in entries.values() if entry.suite in ran_suites and not entry.seen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", default=",".join(ALL_CORES), help="compiled,pure (default: both)")
    parser.add_argument("--suites", default=",".join(PEERS), help="peers to run: cachelib,django (default: both)")
    parser.add_argument(
        "--sdists",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memorystore" / "peer-sdists",
        help="where downloaded sdists are kept (default: %(default)s)",
    )
    parser.add_argument("--expected", type=Path, default=EXPECTED_FILE, help="the expected failures (%(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every suite's output")
    args = parser.parse_args(argv)
    cores = [c for c in args.cores.split(",") if c]
    peers = [p for p in args.suites.split(",") if p]
    for name in cores:
        if name not in ALL_CORES:
            parser.error(f"unknown core {name!r} (compiled, pure)")
    for name in peers:
        if name not in PEERS:
            parser.error(f"unknown suite {name!r} ({', '.join(PEERS)})")

    entries = read_expected(args.expected)
    started = time.monotonic()
    tallies: dict[tuple[str, str], Tally] = {}
    failed = skipped = False

    has_compiled = [sys.executable, "-c", "import memorystore, sys; sys.exit(0 if memorystore.COMPILED else 1)"]
    if "compiled" in cores and subprocess.run(has_compiled, env=core_env("compiled")).returncode != 0:
        loud("the compiled core does not import in this interpreter (a pure install?): its runs are SKIPPED")
        for peer in peers:
            for suite in PEERS[peer].suites:
                tallies[suite, "compiled"] = Tally(status="SKIP", note="compiled core not built")
        cores.remove("compiled")
        skipped = True

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="memorystore-peers-") as tmp:
        work = Path(tmp)
        for peer_name in peers:
            peer = PEERS[peer_name]
            try:
                version = importlib.metadata.version(peer.dist)
            except importlib.metadata.PackageNotFoundError:
                version = None
            if version is None:
                sdist, how = None, f"{peer.dist} is not installed in {sys.executable}"
            else:
                sdist, how = download_sdist(args.sdists, peer.dist, version)
            if sdist is None:
                loud(f"{peer_name} SKIPPED: {how}")
                for suite in peer.suites:
                    for core in cores:
                        tallies[suite, core] = Tally(status="SKIP", note="no sdist" if version else "not installed")
                skipped = True
                continue
            print(f"peer-suites: {peer_name}: {how}", flush=True)
            for core in cores:
                top = unpack(sdist, peer.members, work / f"{peer_name}-{core}")
                runs.append(STARTERS[peer_name](top, core, work))

        for run in runs:
            run.process.wait()
            run.took = time.monotonic() - run.started
            output = run.log.read_text(errors="replace")
            suites = PEERS[run.peer].suites
            if run.results.exists():
                data = json.loads(run.results.read_text())
            else:
                data = {}
            # pytest exits 1 when tests failed (expected ones included); anything else is a crash
            crashed = not run.results.exists() or run.process.returncode not in (
                (0, 1) if run.peer == "cachelib" else (0,)
            )
            if args.verbose or crashed:
                print(f"--- {run.peer} ({run.core} core) output:\n{output.rstrip()}\n---", flush=True)
            for suite in suites:
                if crashed or suite not in data:
                    tally = Tally(status="FAIL", note=f"the suite crashed (exit {run.process.returncode})")
                    failed = True
                else:
                    tally = compare(suite, run.core, data[suite], entries)
                    if tally.problems:
                        tally.status = "FAIL"
                        failed = True
                    if tally.ran == 0:
                        tally.status, tally.note = "FAIL", "no test ran"
                        failed = True
                tally.note = tally.note or f"{run.took:.0f}s"
                tallies[suite, run.core] = tally

    for entry in stale_entries(entries, {suite for (suite, _), tally in tallies.items() if tally.ran}):
        print(f"peer-suites: STALE entry (line {entry.line}): {entry.suite} {entry.test} is not a test that ran")
        failed = True

    print()
    print(f"{'suite':<16} {'core':<9} {'ran':>5} {'passed':>7} {'xfail':>6} {'skipped':>8}  result")
    for (suite, core), tally in sorted(tallies.items()):
        status = "FAIL" if tally.problems else tally.status
        print(
            f"{suite:<16} {core:<9} {tally.ran:>5} {tally.passed:>7} {tally.xfailed:>6} {tally.skipped:>8}"
            f"  {status} ({tally.note})"
        )
        for problem in tally.problems:
            print(f"    {problem}")
    took = time.monotonic() - started
    print(f"\npeer-suites: expected failures listed in {args.expected}")
    if failed:
        print(f"peer-suites: FAILED ({took:.0f}s)")
        return 1
    if skipped:
        loud(f"SKIPPED: some suites could not run here (see above); nothing was counted as passed ({took:.0f}s)")
        return SKIP_EXIT
    print(f"peer-suites: PASSED ({took:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
