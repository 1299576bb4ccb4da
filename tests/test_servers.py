"""SharedMemoryStore under real multi-worker servers: gunicorn and uWSGI, 4 workers, on 127.0.0.1.

Every combination of server mode and app runs: gunicorn with ``--preload``
(the store is created in the master and inherited by the forked workers) and
without (each worker opens the segment by name), uWSGI without and with
``lazy-apps`` (the same two cases); a Flask app on
``MemoryStoreSessionInterface(SharedMemoryStore(...))`` and a Django app on
``SESSION_ENGINE = "memorystore.django"`` with
``MEMORYSTORE_SESSION_OPTIONS = {"segment": ...}`` (tests/server_apps).  For
each one:

- one client's sequential requests, each on a new connection (200, and more,
  up to 2000, until 3 workers have answered), are served by at least 3
  different workers and see one session (its counter never skips or repeats),
  and every worker runs the store's prune thread;
- 8 concurrent clients while one worker is SIGKILLed every 2 s and the master
  restarts it: every request is answered within 2 s (a request whose worker
  died with it is sent again, and the app applies each request once), no
  session is lost or mixed with another, each client's counter equals its
  acknowledged requests, and the segment passes ``check_invariants()``;
- stopping the whole server (master included) and starting it again keeps the
  sessions; with the documented shutdown hook (gunicorn ``on_exit`` calling
  ``store.unlink()``, uWSGI ``hook-as-user-atexit = unlink:<segment>``) the
  segment is gone after the stop.

The storm runs for the full 20 s once per server mode (gunicorn with and
without ``--preload``, uWSGI with and without ``lazy-apps``: each server at
least twice), alternating the app; the other four combinations run a 6 s storm
(3 kills), to keep the suite's time reasonable.

The control: the same apps on a per-process ``MemoryStore`` fail the "one
session across workers" check in the same run, so the check can tell.

The README's "Deploying with several workers" files (``myapp.py``,
``gunicorn.conf.py``, ``uwsgi.ini``) run as written, only their port and
segment name changed: one visitor's session follows it across the workers,
and the shutdown hook removes the segment.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serverlib
from serverlib import WORKERS, Server, segment_path

pytestmark = [pytest.mark.c_extension, pytest.mark.slow, pytest.mark.servers]

MODES = {"gunicorn": ("preload", "no-preload"), "uwsgi": ("no-lazy-apps", "lazy-apps")}
CONFIGS = [(server, mode, app) for server, modes in MODES.items() for mode in modes for app in ("flask", "django")]
#: The combinations whose storm runs the full 20 s: one per server mode, alternating the app.
FULL_STORM = {
    ("gunicorn", "preload", "flask"),
    ("gunicorn", "no-preload", "django"),
    ("uwsgi", "no-lazy-apps", "django"),
    ("uwsgi", "lazy-apps", "flask"),
}
FULL_STORM_SECONDS = 20.0
SHORT_STORM_SECONDS = 6.0
KILL_EVERY = 2.0
ANSWER_WITHIN = 2.0
CLIENTS = 8


def _skip_reason(server: str) -> str | None:
    if serverlib.server_binary(server) is None:
        hint = "bash tools/uwsgi-for-tests.sh" if server == "uwsgi" else "pip install gunicorn (the test extra)"
        return f"{server} is not installed ({hint})"
    return None


def _param(server: str, mode: str, app: str) -> object:
    reason = _skip_reason(server)
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    return pytest.param((server, mode, app), id=f"{server}-{mode}-{app}", marks=marks)


@pytest.fixture(scope="module", params=[_param(*config) for config in CONFIGS])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of one combination on its own segment, kept for the tests of that combination."""
    server_name, mode, app = request.param
    name = serverlib.new_segment_name(f"{server_name[:4]}-{app}")
    server = Server(server_name, mode, app, name, tmp_path_factory.mktemp(f"{server_name}-{mode}-{app}"))
    try:
        server.start()
        yield server
    finally:
        server.close()
        serverlib.remove_segment(name)


def _ensure_running(server: Server) -> Server:
    if server.process is None:  # a test run on its own after the restart test of its combination
        server.unlink_on_exit = False
        server.start()
    return server.wait_ready()  # every worker up, the ones a storm restarted included


def test_one_session_across_workers(running: Server) -> None:
    server = _ensure_running(running)
    seen = serverlib.sequential(server.port, 200, workers=3)
    assert not seen.problems, seen.problems[:5]
    assert len(seen.pids) >= 3, f"up to 2000 sequential requests reached only workers {seen.pids}"
    assert seen.prune_threads, "a worker's prune thread was not running (not restarted after the fork?)"


def test_kill_storm(running: Server) -> None:
    server = _ensure_running(running)
    config = (server.server, server.mode, server.app)
    seconds = FULL_STORM_SECONDS if config in FULL_STORM else SHORT_STORM_SECONDS
    before = set(server.workers())
    result = serverlib.storm(
        server, clients=CLIENTS, seconds=seconds, kill_every=KILL_EVERY, answer_within=ANSWER_WITHIN
    )
    report = (
        f"{server.name}: {len(result.kills)} kills in {seconds:g} s, {sum(result.acknowledged.values())} requests "
        f"answered, {result.resent} sent again, slowest {result.slowest * 1000:.0f} ms"
    )
    print(report)
    assert not result.problems, f"{report}: {result.problems[:5]}"
    assert len(result.kills) == int(seconds // KILL_EVERY), report
    assert result.slowest < ANSWER_WITHIN, report
    assert len(result.acknowledged) == CLIENTS and all(result.acknowledged.values()), report
    assert result.final == result.acknowledged, f"{report}: counters {result.final} != acknowledged"
    # the master restarted every killed worker, and the restarted workers serve
    deadline = time.monotonic() + 30
    while True:
        workers = set(server.workers())
        if len(workers) == WORKERS and not workers & set(result.kills):
            break
        assert time.monotonic() < deadline, f"{report}: workers {workers} after the storm"
        time.sleep(0.05)
    assert workers - before, f"{report}: no restarted worker"
    server.wait_ready()  # each current worker answers, the restarted ones included
    stats = serverlib.check_segment(server.segment)
    print(f"{server.name}: segment recoveries {stats.recoveries}, sessions {stats.length}")


def test_restart_keeps_sessions_and_the_exit_hook_removes_them(running: Server) -> None:
    server = _ensure_running(running)
    clients = [serverlib.Client(server.port) for _ in range(3)]
    for client in clients:
        for _ in range(3):
            assert client.check(client.next()) is None
    server.stop()
    assert segment_path(server.segment).exists(), "the segment did not outlive the server"

    server.unlink_on_exit = True  # the documented hook: the master unlinks the segment when it stops
    server.start()
    for client in clients:  # every session kept its counter through the restart of every process
        answer = client.next()
        assert client.check(answer) is None, client.check(answer)
    server.stop()
    assert not segment_path(server.segment).exists(), "the exit hook did not remove the segment"


@pytest.mark.parametrize(
    "config",
    [_param("gunicorn", "preload", "flask"), _param("gunicorn", "no-preload", "django"),
     _param("uwsgi", "no-lazy-apps", "django"), _param("uwsgi", "lazy-apps", "flask")],
)  # fmt: skip
def test_a_per_process_store_fails_the_check(config: tuple[str, str, str], tmp_path: Path) -> None:
    """The control: the same app on a per-process MemoryStore loses the session between workers."""
    server_name, mode, app = config
    name = serverlib.new_segment_name("unused")
    server = Server(server_name, mode, app, name, tmp_path, store="memory")
    try:
        server.start()
        seen = serverlib.sequential(server.port, 200, workers=2)
    finally:
        server.close()
    assert not segment_path(name).exists()  # it never touched shared memory
    assert len(seen.pids) >= 2, "the control needs requests on several workers"
    assert seen.problems, "a per-process store passed the one-session check: the check cannot tell"
    assert any("counted 1 " in problem for problem in seen.problems), seen.problems[:5]


# -- the README's deployment files, run as written ----------------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"
README_SECTION = "## Deploying with several workers"
#: The README's files: their name (the first line of their block names them) and how each server runs them.
README_FILES = {
    "gunicorn": ("gunicorn.conf.py", ["-c", "gunicorn.conf.py"]),
    "uwsgi": ("uwsgi.ini", ["--ini", "uwsgi.ini"]),
}
README_REQUESTS = 60
README_REQUESTS_LIMIT = 2000


def readme_files() -> dict[str, str]:
    """The section's code blocks, by the file name their first line gives (``# myapp.py: ...``)."""
    if not README.exists():
        pytest.skip("README.md is not beside the tests (a copy of the suite outside the source tree)")
    section = README.read_text(encoding="utf-8").split(f"\n{README_SECTION}\n")[1].split("\n## ")[0]
    files = {}
    for text in re.findall(r"^```\w+\n(.*?)^```$", section, re.S | re.M):
        name = text.splitlines()[0].lstrip("#; ").split(":")[0]
        files[name] = text
    return files


def as_deployed_here(name: str, text: str, segment: str, port: int) -> str:
    """A README file with only its segment name and its port changed (this test's own name, a free port)."""
    changes = {
        "myapp.py": [('SharedMemoryStore("myapp"', f'SharedMemoryStore("{segment}"')],
        "gunicorn.conf.py": [("127.0.0.1:8000", f"127.0.0.1:{port}")],
        "uwsgi.ini": [("127.0.0.1:8000", f"127.0.0.1:{port}"), ("/dev/shm/memorystore.myapp", segment_path(segment))],
    }[name]
    for written, here in changes:
        assert text.count(written) == 1, f"README {name}: {written!r} is not there once"
        text = text.replace(written, str(here))
    return text


def get_visit(port: int, cookie: str | None) -> tuple[int, int, str | None]:
    """``GET /`` of the README's app on a new connection: (visit number, worker pid, the cookie to send next)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/", headers={"Connection": "close", **({"Cookie": cookie} if cookie else {})})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, f"HTTP {response.status}: {body[:300]}"
        set_cookie = response.getheader("Set-Cookie")
    finally:
        connection.close()
    match = re.fullmatch(r"visit (\d+), served by worker (\d+)\n", body)
    assert match, body
    return int(match.group(1)), int(match.group(2)), set_cookie.split(";", 1)[0] if set_cookie else cookie


@pytest.mark.parametrize("server_name", [pytest.param(name, marks=[pytest.mark.skip(reason=_skip_reason(name))]
                                                      if _skip_reason(name) else []) for name in README_FILES])  # fmt: skip
def test_the_readmes_deployment_files_run_as_written(server_name: str, tmp_path: Path) -> None:
    """myapp.py with the README's gunicorn.conf.py / uwsgi.ini: 4 workers share the sessions, and the
    shutdown hook removes the segment."""
    files = readme_files()
    config_name, arguments = README_FILES[server_name]
    assert {"myapp.py", config_name} <= set(files), f"README section {README_SECTION!r} has {sorted(files)}"
    segment, port = serverlib.new_segment_name("readme"), serverlib.free_port()
    for name in ("myapp.py", config_name):
        (tmp_path / name).write_text(as_deployed_here(name, files[name], segment, port), encoding="utf-8")
    binary = serverlib.server_binary(server_name)
    assert binary is not None
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, *arguments], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + 60
        while len(serverlib.children_of(process.pid)) < WORKERS:  # the workers are up, then one answers
            assert process.poll() is None, f"{server_name} exited with {process.returncode}:\n{log_tail()}"
            assert time.monotonic() < deadline, f"{server_name}: no {WORKERS} workers within 60 s:\n{log_tail()}"
            time.sleep(0.05)
        while True:
            try:
                get_visit(port, None)
                break
            except OSError:
                assert time.monotonic() < deadline, f"{server_name}: no answer within 60 s:\n{log_tail()}"
                time.sleep(0.05)

        cookie, pids, number = None, set(), 0
        # one visitor: one session, whichever worker answers; on until two workers have (the kernel picks them)
        while number < README_REQUESTS or (len(pids) < 2 and number < README_REQUESTS_LIMIT):
            number += 1
            visit, pid, cookie = get_visit(port, cookie)
            assert visit == number, f"request {number} was visit {visit} (worker {pid}; workers so far {pids})"
            pids.add(pid)
        assert len(pids) >= 2, f"{number} requests reached only worker(s) {pids}"
        assert segment_path(segment).exists()

        process.send_signal(signal.SIGTERM)  # the master stops: its hook unlinks the segment
        process.wait(30)
        assert not segment_path(segment).exists(), f"the README's hook did not remove the segment:\n{log_tail()}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        serverlib.remove_segment(segment)
