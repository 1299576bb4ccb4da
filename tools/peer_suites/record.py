"""A pytest plugin: one outcome per test, written as JSON for ``tools/peer_suites/run.py``.

    python -m pytest -p record ...   (with this directory on PYTHONPATH)
    PEER_SUITES_RESULTS=path.json PEER_SUITES_SUITE=name PEER_SUITES_CORE=compiled|pure

Writes ``{"<suite>": {"Class.test[param]": {"outcome": ..., "detail": ...}}}`` where the
outcome is ``passed``, ``failed``, ``error`` (setup or teardown failed) or ``skipped``.
"""

from __future__ import annotations

import json
import os

_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
_outcomes: dict[str, dict[str, str]] = {}


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """Refuse to run on another core than the one asked for (a build without the extension fails here)."""
    import pytest

    import memorystore

    want = os.environ["PEER_SUITES_CORE"]
    have = "compiled" if memorystore.COMPILED else "pure"
    if want != have:
        raise pytest.UsageError(f"peer suites: asked for the {want} core, memorystore runs on the {have} one")


def _name(nodeid: str) -> str:
    """``file.py::Class::test[param]`` -> ``Class.test[param]``."""
    return ".".join(nodeid.split("::")[1:])


def _detail(report) -> str:  # type: ignore[no-untyped-def]
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:300] if crash.message else ""
    return str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else ""


def pytest_runtest_logreport(report) -> None:  # type: ignore[no-untyped-def]
    if report.passed and report.when != "call":
        outcome = None
    elif report.passed:
        outcome = "passed"
    elif report.skipped:
        outcome = "skipped"
    elif report.when == "call":
        outcome = "failed"
    else:
        outcome = "error"
    if outcome is None:
        return
    name = _name(report.nodeid)
    old = _outcomes.get(name)
    if old is None or _RANK[outcome] > _RANK[old["outcome"]]:
        _outcomes[name] = {"outcome": outcome, "detail": "" if outcome == "passed" else _detail(report)}


def pytest_sessionfinish(session, exitstatus) -> None:  # type: ignore[no-untyped-def]
    with open(os.environ["PEER_SUITES_RESULTS"], "w") as f:
        json.dump({os.environ["PEER_SUITES_SUITE"]: _outcomes}, f, indent=1, sort_keys=True)
