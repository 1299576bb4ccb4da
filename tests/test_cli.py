"""``python -m memorystore``: demo (a real server in a subprocess), info, bench delegation."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from demo_process import demo_process

import memorystore
from memorystore.__main__ import main

VISITS_RE = re.compile(r'<dd id="visits">(\d+)</dd>')
TAG_RE = re.compile(r'<code id="session-tag"[^>]*>([0-9a-f]{8})</code>')


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memorystore", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def demo_server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    with demo_process() as (process, url):
        yield process, url


def with_cookies() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar)), jar


def page(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None) -> str:
    """GET ``url`` (POST when ``data`` is given; a redirect is followed by a GET) and return the page."""
    with opener.open(urllib.request.Request(url, data=data), timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode("utf-8"))


def visits(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None) -> int:
    match = VISITS_RE.search(page(opener, url, data))
    assert match, "no visit counter on the page"
    return int(match.group(1))


def test_demo_prints_its_url_first_and_counts_per_visitor(demo_server: tuple[subprocess.Popen[str], str]) -> None:
    _, url = demo_server
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), url
    assert int(url.rsplit(":", 1)[1].rstrip("/")) > 0  # port 0 became a real port

    alice, _ = with_cookies()
    bob, _ = with_cookies()
    assert [visits(alice, url) for _ in range(3)] == [1, 2, 3]
    assert visits(bob, url) == 1  # a separate visitor has a separate session
    assert visits(alice, url) == 4
    assert visits(alice, url + "reset", data=b"") == 1  # reset redirects to a fresh session
    assert visits(alice, url) == 2
    assert visits(bob, url) == 2


def test_demo_without_cookies_stays_at_one(demo_server: tuple[subprocess.Popen[str], str]) -> None:
    _, url = demo_server
    cookieless = urllib.request.build_opener()
    assert [visits(cookieless, url) for _ in range(3)] == [1, 1, 1]


def test_demo_actions_are_posts(demo_server: tuple[subprocess.Popen[str], str]) -> None:
    _, url = demo_server
    alice, _ = with_cookies()
    for action in ("add", "reset", "burst"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            alice.open(url + action, timeout=10)  # a GET: a link or a prefetch must change nothing
        assert refused.value.code == 405
        assert refused.value.headers["Allow"] == "POST"
        refused.value.close()
    state = json.loads(page(alice, url + "state.json"))
    assert state["store"]["live"] == 0  # the GETs above stored nothing


def test_demo_shows_other_visitors_as_counts_only(demo_server: tuple[subprocess.Popen[str], str]) -> None:
    """Never another visitor's id or data; the visitor's own id stays in the cookie too."""
    _, url = demo_server
    alice, alice_jar = with_cookies()
    bob, bob_jar = with_cookies()
    page(bob, url)
    assert "&quot;apple&quot;" in page(bob, url + "add", data=b"")  # bob's data, on bob's page
    alice_page = page(alice, url)
    alice_state = page(alice, url + "state.json")
    bob_sid = next(iter(bob_jar)).value.split(".")[0]
    alice_sid = next(iter(alice_jar)).value.split(".")[0]
    assert len(bob_sid) >= 43 and len(alice_sid) >= 43  # 256-bit ids
    for seen in (alice_page, alice_state):
        assert bob_sid not in seen and alice_sid not in seen
        assert "&quot;apple&quot;" not in seen and '\\"apple\\"' not in seen
    assert json.loads(alice_state)["store"]["live"] == 2  # bob is a count
    assert TAG_RE.search(alice_page) and TAG_RE.search(page(bob, url))
    assert TAG_RE.search(alice_page).group(1) != TAG_RE.search(page(bob, url)).group(1)  # type: ignore[union-attr]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "inherited", [signal.SIG_IGN, signal.SIG_DFL], ids=["sigint-ignored-as-in-a-background-job", "sigint-default"]
)
def test_demo_stops_cleanly_on_ctrl_c(inherited: signal.Handlers) -> None:
    """Ctrl-C stops the demo whatever SIGINT disposition it inherited (set in the child: not ours)."""
    with demo_process(sigint=inherited) as (process, url):
        assert visits(urllib.request.build_opener(), url) == 1  # serving
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("70000", "must be from 0 to 65535, not 70000"),
        ("-1", "must be a whole number from 0 to 65535, not '-1'"),
        ("abc", "must be a whole number from 0 to 65535, not 'abc'"),
        (" 8", "must be a whole number from 0 to 65535, not ' 8'"),
    ],
)
def test_demo_rejects_a_bad_port(port: str, message: str) -> None:
    result = run_cli("demo", "--port", port)
    assert result.returncode == 2
    assert f"argument --port: {message}" in result.stderr
    assert "_port" not in result.stderr and "port_number" not in result.stderr
    assert result.stdout == ""  # no URL: nothing was served


def test_demo_help_describes_the_demo() -> None:
    result = run_cli("demo", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m memorystore demo [-h] [--port N]")
    description = " ".join(result.stdout.split())
    assert "Serve a small web page on 127.0.0.1 that shows memorystore at work" in description
    assert "stop it with Ctrl-C" in description
    assert "--port N" in result.stdout


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    listing = result.stdout.split("commands:\n", 1)[1]
    names = [line.split()[0] for line in listing.splitlines() if line.startswith("  ")]
    assert names == ["demo", "info", "bench"]
    assert "serve a live demo page" in listing
    assert "{demo,info,bench}" not in listing  # argparse's own choices line is not repeated


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
