"""End to end: gunicorn's ``gthread`` worker (1 worker, 8 threads) serving Flask on one MemoryStore.

Eight clients, each in its own thread with its own cookie jar and keep-alive connection, hit
``/incr`` for 10 seconds.  Every response must show the client its own session (the ``client``
name the session was created with) and a counter equal to the requests acknowledged so far;
at the end each session's counter equals its acknowledged requests and the store holds exactly
the eight sessions.  On a free-threaded interpreter (the free-threaded step of the test
command) the worker's 8 threads run in parallel, and the server must report the GIL off.
"""

from __future__ import annotations

import contextlib
import http.client
import http.cookies
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("gunicorn")

pytestmark = pytest.mark.slow

CLIENTS = 8
DURATION = 10.0
TESTS_DIR = Path(__file__).resolve().parent
GUNICORN_ARGS = (
    f"--worker-class gthread --workers 1 --threads {CLIENTS} --bind 127.0.0.1:0 --graceful-timeout 5".split()
)


class Client:
    """One browser: a keep-alive connection and a cookie jar."""

    def __init__(self, port: int, name: str) -> None:
        self.name = name
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def get(self, path: str) -> Any:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        self.connection.request("GET", path, headers=headers)
        response = self.connection.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body[:200])
        for header in response.headers.get_all("Set-Cookie") or ():
            jar = http.cookies.SimpleCookie(header)
            for morsel in jar.values():
                self.cookies[morsel.key] = morsel.value
        return json.loads(body)


def start_gunicorn() -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    env.pop("PYTHON_GIL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *GUNICORN_ARGS, "gthread_app:app"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
        if match:
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=server.stderr.read, daemon=True).start()
            return server, int(match.group(1))
    server.kill()
    server.wait()
    pytest.fail("gunicorn did not start:\n" + "".join(lines))


@pytest.fixture
def gunicorn_port() -> Any:
    server, port = start_gunicorn()
    try:
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_eight_clients_see_only_their_own_sessions_and_exact_counters(gunicorn_port: int) -> None:
    info = Client(gunicorn_port, "probe").get("/info")
    assert info["compiled"] is not bool(os.environ.get("MEMORYSTORE_NO_EXTENSIONS"))
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        assert info["free_threaded"] is True
        assert info["gil_enabled"] is False, "the gthread worker runs with the GIL on"

    acknowledged = [0] * CLIENTS
    errors: list[str] = []
    clients = [Client(gunicorn_port, f"client-{i}") for i in range(CLIENTS)]
    start = threading.Barrier(CLIENTS + 1)
    stop_at = 0.0

    def run(i: int) -> None:
        client = clients[i]
        try:
            start.wait()
            while time.monotonic() < stop_at:
                seen = client.get(f"/incr?client={client.name}")
                if seen != {"client": client.name, "n": acknowledged[i] + 1}:
                    errors.append(f"{client.name} after {acknowledged[i]} requests saw {seen}")
                    return
                acknowledged[i] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(f"{client.name}: {exc!r}")
            start.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    stop_at = time.monotonic() + DURATION
    with contextlib.suppress(threading.BrokenBarrierError):  # a client that failed to start is reported below
        start.wait()
    for thread in threads:
        thread.join(DURATION + 60)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    assert errors == []

    for i, client in enumerate(clients):
        assert client.get("/read") == {"client": client.name, "n": acknowledged[i]}
    assert min(acknowledged) > 0
    assert Client(gunicorn_port, "probe").get("/info")["sessions"] == CLIENTS
    print(f"gthread: {sum(acknowledged)} requests in {DURATION:.0f} s, per client {acknowledged}")
