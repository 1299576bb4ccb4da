"""SharedMemoryStore under real multi-worker servers: gunicorn and uWSGI, 4 workers, on 127.0.0.1.

Every combination of server mode and app runs: gunicorn with ``--preload``
(the store is created in the master and inherited by the forked workers) and
without (each worker opens the segment by name), uWSGI without and with
``lazy-apps`` (the same two cases); a Flask app on
``MemoryStoreSessionInterface(SharedMemoryStore(...))`` and a Django app on
``SESSION_ENGINE = "memorystore.django"`` with
``MEMORYSTORE_SESSION_OPTIONS = {"segment": ...}`` (tests/server_apps).  For
each one:

- one client's 200 sequential requests, each on a new connection, are served by
  at least 3 different workers and see one session (its counter never skips or
  repeats), and every worker runs the store's prune thread;
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
"""

from __future__ import annotations

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
    seen = serverlib.sequential(server.port, 200)
    assert not seen.problems, seen.problems[:5]
    assert len(seen.pids) >= 3, f"200 sequential requests reached only workers {seen.pids}"
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
        seen = serverlib.sequential(server.port, 200)
    finally:
        server.close()
    assert not segment_path(name).exists()  # it never touched shared memory
    assert len(seen.pids) >= 2, "the control needs requests on several workers"
    assert seen.problems, "a per-process store passed the one-session check: the check cannot tell"
    assert any("counted 1 " in problem for problem in seen.problems), seen.problems[:5]
