"""``python -m memorystore demo --workers N``: real forked workers on one socket and one SharedMemoryStore.

The demo runs in a subprocess (tests/demo_process.py) and is driven over
HTTP, one new connection per request (``urllib``), so that the workers take
turns: a visitor's counter goes 1, 2, 3 ... whichever worker answers, the page
names the worker that answered and every worker the session has met, and the
store's counts are host-wide.  A worker killed with SIGKILL is replaced and
the session survives; Ctrl-C to the process group or SIGTERM to the demo
stops every worker and removes the segment.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import pytest
from demo_process import demo_process
from serverlib import alive, children_of, segment_path

pytestmark = pytest.mark.slow

WORKERS = 3
PID_RE = re.compile(r'<b id="pid">(\d+)</b>')
VISITS_RE = re.compile(r'<dd id="visits">(\d+)</dd>')
SERVED_BY_RE = re.compile(r'<dd id="served-by">([\d · ]*)</dd>')
TAG_RE = re.compile(r'<code id="session-tag"[^>]*>([0-9a-f]{8})</code>')
LIVE_RE = re.compile(r'<div class="big" id="live">(\d+)</div>')
SEGMENT_RE = re.compile(r"shared-memory segment '([\w.-]+)'")


@dataclass
class Page:
    """What the demo's page shows."""

    pid: int  # the worker that answered
    visits: int
    served_by: list[int]  # every worker that has served this session, in order
    tag: str  # the session's fingerprint
    live: int  # sessions in the store (host-wide)


def shown(regex: re.Pattern[str], text: str) -> str:
    match = regex.search(text)
    assert match, f"the page has no {regex.pattern}"
    return match.group(1)


class Visitor:
    """A browser without keep-alive: a cookie jar, and a new connection for each request."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def visit(self) -> Page:
        """View the page (one visit) and return what it shows."""
        with self.opener.open(self.url, timeout=10) as response:
            assert response.status == 200
            text = response.read().decode("utf-8")
        return Page(
            pid=int(shown(PID_RE, text)),
            visits=int(shown(VISITS_RE, text)),
            served_by=[int(pid) for pid in shown(SERVED_BY_RE, text).split(" · ")],
            tag=shown(TAG_RE, text),
            live=int(shown(LIVE_RE, text)),
        )


def segment_of(stderr: Path) -> str:
    """The segment's name, from the demo's second line (on stderr, right after the URL on stdout)."""
    deadline = time.monotonic() + 10
    while not (match := SEGMENT_RE.search(stderr.read_text())):
        assert time.monotonic() < deadline, f"no segment named on stderr: {stderr.read_text()!r}"
        time.sleep(0.02)
    return match.group(1)


def wait_for_workers(pid: int, count: int, without: AbstractSet[int] = frozenset()) -> set[int]:
    deadline = time.monotonic() + 15
    while True:
        workers = set(children_of(pid))
        if len(workers) == count and not workers & without:
            return workers
        assert time.monotonic() < deadline, f"workers {workers}, expected {count} without {without}"
        time.sleep(0.02)


@pytest.mark.c_extension
def test_the_session_follows_its_visitor_across_the_workers(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr"
    with demo_process("--workers", str(WORKERS), stderr=stderr, own_group=True) as (process, url):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)  # the first line is still the URL
        segment = segment_path(segment_of(stderr))
        workers = wait_for_workers(process.pid, WORKERS)
        alice = Visitor(url)
        pids: list[int] = []  # in the order they first served alice
        for number in range(1, 201):
            page = alice.visit()
            assert page.visits == number, f"visit {number} counted {page.visits} (worker {page.pid})"
            assert page.pid in workers
            if page.pid not in pids:
                pids.append(page.pid)
            assert page.served_by == pids  # the page names every worker that served this session
            if number >= 30 and len(pids) >= 2:
                break
        assert len(pids) >= 2, f"{number} visits were all served by worker {pids}"
        first_tag = page.tag
        assert all(alice.visit().tag == first_tag for _ in range(5))  # one session, whoever answers
        bob = Visitor(url)
        assert bob.visit().visits == 1  # another visitor, another session
        assert {alice.visit().live for _ in range(6)} == {2}  # every worker counts the same two sessions
    assert not segment.exists()  # stopped (SIGTERM) at the end: it unlinked its segment


@pytest.mark.c_extension
def test_a_killed_worker_is_replaced_and_the_session_survives(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr"
    with demo_process("--workers", str(WORKERS), stderr=stderr, own_group=True) as (process, url):
        workers = wait_for_workers(process.pid, WORKERS)
        alice = Visitor(url)
        for number in range(1, 4):
            assert alice.visit().visits == number
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for_workers(process.pid, WORKERS, without={victim})
        assert len(replaced - workers) == 1
        for number in range(4, 20):
            page = alice.visit()
            assert page.visits == number and page.pid in replaced
        assert f"worker {victim} was killed (SIGKILL); starting another" in stderr.read_text()
        assert segment_path(segment_of(stderr)).exists()


@pytest.mark.c_extension
@pytest.mark.parametrize("how", ["ctrl-c to the process group", "SIGTERM to the demo"])
def test_stopping_stops_every_worker_and_removes_the_segment(how: str, tmp_path: Path) -> None:
    stderr = tmp_path / "stderr"
    with demo_process("--workers", str(WORKERS), stderr=stderr, own_group=True) as (process, url):
        workers = wait_for_workers(process.pid, WORKERS)
        assert Visitor(url).visit().visits == 1
        segment = segment_path(segment_of(stderr))
        assert segment.exists()
        if how == "SIGTERM to the demo":
            process.send_signal(signal.SIGTERM)
        else:  # what a terminal's Ctrl-C does: SIGINT to every process of the foreground group
            os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=15) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "a worker outlived the demo"
            time.sleep(0.02)
        assert not segment.exists(), "the demo did not unlink its segment"
        assert stderr.read_text().rstrip().endswith("memorystore demo: stopped")


@pytest.mark.c_extension
def test_workers_whose_demo_was_killed_stop_and_remove_the_segment(tmp_path: Path) -> None:
    """SIGKILL leaves the demo no chance to stop its workers: they notice, unlink the segment and exit."""
    stderr = tmp_path / "stderr"
    with demo_process("--workers", str(WORKERS), stderr=stderr, own_group=True) as (process, url):
        workers = wait_for_workers(process.pid, WORKERS)
        assert Visitor(url).visit().visits == 1
        segment = segment_path(segment_of(stderr))
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) or segment.exists():
            assert time.monotonic() < deadline, "orphaned workers kept running, or left the segment behind"
            time.sleep(0.05)


def test_without_the_compiled_core_it_says_why() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memorystore", "demo", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MEMORYSTORE_NO_EXTENSIONS": "1"},
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--workers needs a SharedMemoryStore" in result.stderr and "pure-Python core" in result.stderr


@pytest.mark.parametrize("workers", ["0", "65", "two", "-1", " 2"])
def test_a_bad_worker_count_is_refused(workers: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memorystore", "demo", "--workers", workers],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "argument --workers: must be a whole number from 1 to 64" in result.stderr
