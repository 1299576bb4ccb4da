"""Real multi-worker servers for the tests: gunicorn and uWSGI on 127.0.0.1, their workers, and clients.

:class:`Server` starts one server (its master and 4 worker processes) on a
free port, serving one of the apps in ``tests/server_apps`` (see
``counting.py`` there), and stops it.  :class:`Client` is one browser: a
cookie jar and a request counter.  :func:`sequential` and :func:`storm` are
the checks of tests/test_servers.py; they return what they saw, so that a
test can also assert that a check *fails* (the per-process control).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APPS_DIR = Path(__file__).resolve().parent / "server_apps"
WORKERS = 4
#: The app modules, by name: (WSGI module, callable).
APPS = {"flask": ("flask_counter", "app"), "django": ("django_counter", "application")}
#: Errors that mean "the worker holding this connection died": the request is sent again.
CUT_OFF = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, http.client.IncompleteRead)


def server_binary(name: str) -> str | None:
    """The ``gunicorn``/``uwsgi`` executable next to this Python, else on PATH, else None."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def segment_path(name: str) -> Path:
    return Path("/dev/shm") / f"memorystore.{name}"


def new_segment_name(tag: str) -> str:
    return f"test-{tag}-{uuid.uuid4().hex[:12]}"


def remove_segment(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        segment_path(name).unlink()


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc: no dependency)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- servers -----------------------------------------------------------------------


@dataclass
class Server:
    """One gunicorn or uWSGI server (master + ``WORKERS`` workers) on 127.0.0.1.

    ``mode``: gunicorn ``"preload"`` or ``"no-preload"``; uWSGI ``"lazy-apps"``
    or ``"no-lazy-apps"``.  ``store``: ``"shared"`` (the segment ``segment``) or
    ``"memory"`` (per-process, the control).  ``unlink_on_exit``: the documented
    shutdown hook removes the segment (gunicorn ``on_exit``, uWSGI
    ``hook-as-user-atexit = unlink:...``).
    """

    server: str
    mode: str
    app: str
    segment: str
    workdir: Path
    store: str = "shared"
    unlink_on_exit: bool = False
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    started: int = 0

    @property
    def name(self) -> str:
        return f"{self.server}-{self.mode}-{self.app}"

    def _command(self) -> list[str]:
        module, attribute = APPS[self.app]
        binary = server_binary(self.server)
        assert binary is not None, f"{self.server} is not installed"
        self.started += 1
        config = self.workdir / f"{self.server}-{self.started}"
        if self.server == "gunicorn":
            hook = ""
            if self.unlink_on_exit:  # the documented hook: the master removes the segment when it stops
                hook = f"\n\ndef on_exit(server):\n    import {module}\n    {module}.store.unlink()\n"
            config = config.with_suffix(".conf.py")
            config.write_text(
                f"bind = '127.0.0.1:{self.port}'\nworkers = {WORKERS}\npreload_app = {self.mode == 'preload'}\n"
                f"chdir = {str(APPS_DIR)!r}\nwsgi_app = '{module}:{attribute}'\ngraceful_timeout = 5\n"
                f"loglevel = 'warning'\n{hook}"
            )
            return [binary, "-c", str(config)]
        assert self.server == "uwsgi", self.server
        lines = [
            "[uwsgi]",
            f"http-socket = 127.0.0.1:{self.port}",
            f"chdir = {APPS_DIR}",
            f"module = {module}:{attribute}",
            f"virtualenv = {sys.prefix}",
            "master = true",
            f"processes = {WORKERS}",
            "enable-threads = true",
            "py-call-uwsgi-fork-hooks = true",
            f"lazy-apps = {str(self.mode == 'lazy-apps').lower()}",
            "die-on-term = true",
            "need-app = true",
            "disable-logging = true",
        ]
        if self.unlink_on_exit:
            lines.append(f"hook-as-user-atexit = unlink:{segment_path(self.segment)}")
        config = config.with_suffix(".ini")
        config.write_text("\n".join(lines) + "\n")
        return [binary, "--ini", str(config)]

    def start(self, timeout: float = 60.0) -> Server:
        """Start the server and return once each of its workers has answered a request."""
        assert self.process is None
        self.port = self.port or free_port()
        env = {
            **os.environ,
            "MEMORYSTORE_TEST_STORE": self.store,
            "MEMORYSTORE_TEST_SEGMENT": self.segment,
            "PYTHONPATH": str(APPS_DIR),
        }
        self.log_path = self.workdir / f"{self.name}-{self.started + 1}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child holds it; closed right after Popen
        try:
            self.process = subprocess.Popen(
                self._command(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> Server:
        """Return once each of the server's workers has answered a request (lazy workers load the app after
        the fork: a worker still loading may miss a stop signal, and serves nothing yet)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            workers = set(self.workers())
            answered = self._probe()
            if answered is None:
                time.sleep(0.05)
            elif answered in workers:
                seen = (seen & workers) | {answered}
                if len(seen) == WORKERS == len(workers):
                    return self
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {len(seen)} of {WORKERS} workers answered within {timeout} s:\n"
                                     f"{self.log()}")  # fmt: skip

    def _probe(self) -> int | None:
        """The pid of the worker that answers ``GET /pid`` (the session is not touched), or None."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/pid", headers={"Connection": "close"})
            response = connection.getresponse()
            return int(json.loads(response.read())["pid"]) if response.status == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    @property
    def master(self) -> int:
        assert self.process is not None
        return self.process.pid

    def workers(self) -> list[int]:
        return children_of(self.master)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the whole server (SIGTERM to the master) and wait until every one of its processes is gone."""
        if self.process is None:
            return
        process, self.process = self.process, None
        workers = children_of(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all(process)
            raise AssertionError(f"{self.name} did not stop within {timeout} s on SIGTERM") from None
        deadline = time.monotonic() + timeout
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, f"{self.name}: workers outlived their master"
            time.sleep(0.02)

    @staticmethod
    def kill_all(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the server's whole process group (clean-up after a failure)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def close(self) -> None:
        """Stop the server, whatever state a test left it in (never leaves a process behind)."""
        if self.process is None:
            return
        process = self.process
        try:
            self.stop()
        except AssertionError:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


# -- clients -----------------------------------------------------------------------


@dataclass
class Answer:
    pid: int
    client: str
    count: int
    seq: int
    prune_thread: bool
    seconds: float  # from the first attempt to the answer
    attempts: int


@dataclass
class Client:
    """One browser: its cookies, and the number of its last request."""

    port: int
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    cookies: dict[str, str] = field(default_factory=dict)
    seq: int = 0

    def send(self, seq: int, timeout: float) -> Answer:
        """Request ``seq``, sent again when the worker holding it dies, answered within ``timeout`` seconds."""
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise TimeoutError(f"client {self.name}: request {seq} not answered within {timeout} s")
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=left)
            try:
                headers = {"Connection": "close"}
                if self.cookies:
                    headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
                connection.request("GET", f"/count?client={self.name}&seq={seq}", headers=headers)
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    raise AssertionError(f"client {self.name}: HTTP {response.status}: {body[:500]!r}")
                for header in response.msg.get_all("Set-Cookie") or ():
                    name, _, value = header.split(";", 1)[0].partition("=")
                    self.cookies[name.strip()] = value.strip()
                data = json.loads(body)
                return Answer(seconds=time.monotonic() - started, attempts=attempts, **data)
            except CUT_OFF:
                continue  # the worker died with our request: send it again (the app applies it once)
            except TimeoutError:
                raise TimeoutError(f"client {self.name}: request {seq} not answered within {timeout} s") from None
            finally:
                connection.close()

    def next(self, timeout: float = 10.0) -> Answer:
        self.seq += 1
        return self.send(self.seq, timeout)

    def check(self, answer: Answer) -> str | None:
        """What is wrong with the answer to this client's last request (None: it is right)."""
        if answer.client != self.name:
            return f"client {self.name} got the session of client {answer.client} (request {self.seq})"
        if answer.count != self.seq:
            return f"client {self.name}: request {self.seq} counted {answer.count} (worker {answer.pid})"
        return None


@dataclass
class Sequential:
    pids: set[int]
    problems: list[str]
    prune_threads: bool  # every answer came from a worker whose prune thread runs


def sequential(port: int, requests: int = 200, *, workers: int = 1, limit: int = 2000) -> Sequential:
    """One client's sequential requests (a new connection each): who served, what went wrong.

    It sends ``requests`` requests, then goes on (up to ``limit`` in all) until ``workers`` different workers
    have answered: which worker accepts a new connection is the kernel's choice, and on a busy 2-core machine
    it can favour two of four workers for hundreds of connections in a row (wait_ready's probe meets them all).
    """
    client = Client(port)
    pids: set[int] = set()
    problems: list[str] = []
    threads = True
    sent = 0
    while sent < requests or (len(pids) < workers and sent < limit):
        answer = client.next()
        sent += 1
        pids.add(answer.pid)
        threads = threads and answer.prune_thread
        problem = client.check(answer)
        if problem:
            problems.append(problem)
    return Sequential(pids, problems, threads)


@dataclass
class Storm:
    kills: list[int]  # the pids killed
    acknowledged: dict[str, int]  # client -> requests answered
    final: dict[str, int]  # client -> its counter read back at the end
    slowest: float  # the longest a request took to be answered (first attempt to answer)
    resent: int  # requests sent again because their worker died
    pids: set[int]  # the workers that answered
    problems: list[str]


def storm(server: Server, *, clients: int = 8, seconds: float = 20.0, kill_every: float = 2.0,
          answer_within: float = 2.0) -> Storm:  # fmt: skip
    """``clients`` concurrent clients for ``seconds`` while one worker is SIGKILLed every ``kill_every`` s."""
    stop = threading.Event()
    lock = threading.Lock()
    problems: list[str] = []
    pids: set[int] = set()
    slowest = [0.0]
    resent = [0]
    acknowledged: dict[str, int] = {}
    everyone = [Client(server.port) for _ in range(clients)]

    def run(client: Client) -> None:
        acked = 0
        try:
            while not stop.is_set():
                answer = client.next(timeout=answer_within)
                acked += 1
                with lock:
                    pids.add(answer.pid)
                    slowest[0] = max(slowest[0], answer.seconds)
                    resent[0] += answer.attempts - 1
                problem = client.check(answer)
                if problem:
                    with lock:
                        problems.append(problem)
                    return
        except Exception as exc:  # noqa: BLE001 - reported, then the test fails on it
            with lock:
                problems.append(f"client {client.name}: {type(exc).__name__}: {exc}")
        finally:
            with lock:
                acknowledged[client.name] = acked

    threads = [threading.Thread(target=run, args=(client,)) for client in everyone]
    for thread in threads:
        thread.start()
    kills: list[int] = []
    chooser = random.Random(0)
    started = time.monotonic()
    try:
        while True:
            next_kill = started + (len(kills) + 1) * kill_every
            if next_kill > started + seconds:
                break
            time.sleep(max(0.0, next_kill - time.monotonic()))
            candidates = server.workers()
            if candidates:
                victim = chooser.choice(candidates)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                kills.append(victim)
        time.sleep(max(0.0, started + seconds - time.monotonic()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    final = {}
    for client in everyone:  # read each counter back: request `seq` again (answered, not counted twice)
        if client.seq:
            final[client.name] = client.send(client.seq, timeout=10).count
    return Storm(kills, acknowledged, final, slowest[0], resent[0], pids, problems)


def check_segment(name: str, capacity: int = 1000) -> Any:
    """Attach to a server's segment from the test process, check its invariants, return its host-wide stats()."""
    from memorystore import SharedMemoryStore

    store = SharedMemoryStore(name, capacity=capacity)
    try:
        assert not store.created, f"segment {name} did not exist"
        store.check_invariants()
        return store.stats()
    finally:
        store.close()
