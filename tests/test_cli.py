"""``python -m memorystore``: demo (a real server in a subprocess), info, bench delegation."""

from __future__ import annotations

import http.cookiejar
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import memorystore
from memorystore.__main__ import main

COUNT_RE = re.compile(r'<strong id="count">(\d+)</strong>')


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memorystore", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
    )


def first_line(stream: Any, timeout: float = 30.0) -> str:
    """The first line of a pipe, or fail after ``timeout`` seconds (no hang if the server never starts)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no output within {timeout} s")


@pytest.fixture
def demo_server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "memorystore", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = first_line(process.stdout).strip()
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def visit(opener: urllib.request.OpenerDirector, url: str) -> int:
    with opener.open(url, timeout=10) as response:
        assert response.status == 200
        match = COUNT_RE.search(response.read().decode("utf-8"))
    assert match, "no counter on the page"
    return int(match.group(1))


def test_demo_prints_its_url_first_and_counts_per_visitor(demo_server: tuple[subprocess.Popen[str], str]) -> None:
    _, url = demo_server
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), url
    assert int(url.rsplit(":", 1)[1].rstrip("/")) > 0  # port 0 became a real port

    alice = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    bob = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    assert [visit(alice, url) for _ in range(3)] == [1, 2, 3]
    assert visit(bob, url) == 1  # a separate visitor has a separate session
    assert visit(alice, url) == 4
    assert visit(alice, url + "reset") == 1  # reset redirects to a fresh counter
    assert visit(alice, url) == 2
    assert visit(bob, url) == 2


def test_demo_without_cookies_stays_at_one(demo_server: tuple[subprocess.Popen[str], str]) -> None:
    _, url = demo_server
    cookieless = urllib.request.build_opener()
    assert [visit(cookieless, url) for _ in range(3)] == [1, 1, 1]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_demo_stops_cleanly_on_ctrl_c(demo_server: tuple[subprocess.Popen[str], str]) -> None:
    process, url = demo_server
    opener = urllib.request.build_opener()
    assert visit(opener, url) == 1  # serving
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0


def test_demo_rejects_a_bad_port() -> None:
    result = run_cli("demo", "--port", "70000")
    assert result.returncode == 2
    assert "port" in result.stderr


def test_info() -> None:
    result = run_cli("info")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"memorystore {memorystore.__version__}"
    assert lines[1] == f"core: {'compiled' if memorystore.COMPILED else 'pure'}"
    assert lines[2].startswith("cython: ")
    assert lines[3].startswith(f"python: {sys.version_info.major}.{sys.version_info.minor}.")


def test_info_reports_the_pure_core_when_extensions_are_off() -> None:
    env = dict(os.environ, MEMORYSTORE_NO_EXTENSIONS="1")
    result = run_cli("info", env=env)
    assert result.returncode == 0
    assert "core: pure" in result.stdout.splitlines()


def test_bench_is_delegated_with_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import memorystore._bench

    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 3

    monkeypatch.setattr(memorystore._bench, "main", fake_main)
    assert main(["bench", "--quick", "--ops", "10"]) == 3
    assert seen == [["--quick", "--ops", "10"]]


def test_bench_runs_from_the_command_line() -> None:
    result = run_cli("bench", "--help")
    assert result.returncode == 0
    assert "usage" in result.stdout.lower()


def test_no_command_is_an_error() -> None:
    result = run_cli()
    assert result.returncode == 2
