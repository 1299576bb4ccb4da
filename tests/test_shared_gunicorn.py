"""SharedMemoryStore under real gunicorn workers: created before the fork (--preload) and opened in each worker.

One client's session is counted across requests that different worker
processes serve: every worker sees the same sessions.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = [pytest.mark.c_extension, pytest.mark.slow]

GUNICORN = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port: int, cookie: str | None) -> tuple[str, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        set_cookie = response.getheader("Set-Cookie")
        return body, set_cookie.split(";", 1)[0] if set_cookie else None
    finally:
        connection.close()


@pytest.mark.skipif(not os.path.exists(GUNICORN), reason="gunicorn is not installed (pip install gunicorn)")
@pytest.mark.parametrize("preload", [True, False], ids=["preload", "open-in-each-worker"])
def test_gunicorn_workers_share_sessions(preload, tmp_path):
    name = f"test-gunicorn-{uuid.uuid4().hex[:12]}"
    port = _free_port()
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    args = [GUNICORN, "-w", "3", "-b", f"127.0.0.1:{port}", "--chdir", tests_dir, "shm_gunicorn_app:application"]
    if preload:
        args.insert(1, "--preload")
    env = {**os.environ, "MEMORYSTORE_TEST_SHM": name}
    log = open(tmp_path / "gunicorn.log", "wb")
    server = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded wait for the server to answer
            try:
                body, cookie = _request(port, None)
                break
            except (ConnectionRefusedError, OSError):
                assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.05)
        assert cookie and body.split()[1] == "1"
        pids = {body.split()[0]}
        expected = 1
        while len(pids) < 3 and expected < 500:  # new connections until every worker has served one
            expected += 1
            body, _ = _request(port, cookie)
            pid, seen, thread_alive = body.split()
            assert int(seen) == expected, f"worker {pid} saw count {seen}, expected {expected}"
            assert thread_alive == "1"  # each worker runs its own prune thread (restarted after the fork)
            pids.add(pid)
        assert len(pids) == 3, f"only workers {pids} answered in {expected} requests"
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        try:
            os.unlink(os.path.join("/dev/shm", "memorystore." + name))
        except FileNotFoundError:
            pass
