"""End-to-end benchmark: one Flask endpoint under gunicorn, on six session stores, at 1, 2 and 4 workers.

    python bench/e2e.py                       # the full run (~6 minutes), writes bench/results/e2e.md and .png
    python bench/e2e.py --workers 2 --seconds 0.5 --rounds 1 --out /tmp/e2e.md --plot /tmp/e2e.png  # a smoke run

What is measured: requests per second and the p50/p99 latency of ``GET /``
(bench/e2e_app.py), which loads the visitor's ~1 KiB session, counts the
request in it and stores it again, served by gunicorn (sync workers,
``--preload``) on 127.0.0.1 with 1, 2 and 4 workers, for:

- Flask's default signed-cookie sessions (the session travels in the cookie);
- Flask-Session on cachelib's ``FileSystemCache``;
- Flask-Session on ``diskcache.FanoutCache`` (a cachelib-style shim: Flask-Session has no diskcache type);
- Flask-Session on Redis (redis-py; a redis-server on 127.0.0.1 over TCP, started here with the test suite's
  ``RedisServer`` from tests/test_redis.py);
- ``SharedMemoryStore`` (memorystore's Flask interface);
- a per-process ``MemoryStore`` (memorystore's Flask interface): not shared between the workers, so not a
  choice for several workers, but the floor -- a shared store costs what it costs above it.

The load generator is wrk (Debian's package ``wrk``: ``apt-get install wrk``) with one thread and
``--connections`` (8) connections, each request carrying one of ``--sessions`` (64) seeded session
cookies in turn (bench/e2e.lua).  Where wrk is missing, a small Python client (threads over
``http.client``, one connection each) takes its place, and the results say so: it is slower than wrk and
shares the 2 cores with the server, so its figures are lower.

This machine's load drifts over minutes (other jobs share it), so for each worker count the servers of
every store run at once, idle but for their turn, and ``--rounds`` (7) rounds give each store
``--seconds`` (2) of load in turn, the order alternating: a round takes seconds.  Reported: the median
over the rounds of req/s, p50 and p99, and the median of the per-round ratios to the floor.  Bounded:
per worker count, the servers' start (~2 s each), ``--warmup`` (1 s) per store, then the rounds.

Sessions are made before the load, in gunicorn's master (``--preload``), so every request is a hit, also
on the per-process floor (each worker starts with the same copy).  A request whose session is missing
gets a 409 and counts as an error; a run with errors says so at the top of its results.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STORES = {
    "cookie": "Flask signed cookie",
    "cachelib-fs": "Flask-Session + cachelib FileSystemCache",
    "diskcache": "Flask-Session + diskcache FanoutCache",
    "redis": "Flask-Session + Redis (TCP)",
    "shared": "**memorystore SharedMemoryStore**",
    "memory": "memorystore MemoryStore, per process (floor)",
}
SHARED_PEERS = ("cachelib-fs", "diskcache", "redis")  # the other stores that share sessions between workers
FLOOR = "memory"


@dataclass
class Cell:
    store: str
    workers: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    ratio: float | None = None  # to the floor: the median of the per-round ratios
    spread: tuple[float, float] = (0.0, 0.0)  # the lowest and highest req/s of the rounds

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# -- the server ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.append(int(entry))
    return found


def http_get(port: int, cookie: str) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Cookie": cookie})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@contextlib.contextmanager
def gunicorn(store: str, workers: int, env: dict[str, str], workdir: Path) -> Iterator[tuple[int, Path]]:
    """gunicorn serving bench/e2e_app.py on ``store`` with ``workers`` workers; yields (port, cookies file)."""
    binary = Path(sys.executable).with_name("gunicorn")
    if not binary.exists():
        raise SystemExit("gunicorn is not installed beside this Python (pip install '.[bench]')")
    port = free_port()
    cookies = workdir / f"cookies-{store}-{workers}.txt"
    log = workdir / f"gunicorn-{store}-{workers}.log"
    env = {**os.environ, **env, "E2E_STORE": store, "E2E_COOKIES": str(cookies), "PYTHONPATH": str(HERE)}
    command = [str(binary), "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--preload",
               "--chdir", str(HERE), "--worker-class", "sync", "--log-level", "warning", "--graceful-timeout", "5",
               "e2e_app:app"]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # the sessions are made, every worker is up, and one of them answers with a session
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn ({store}) exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if cookies.exists() and len(children_of(process.pid)) == workers:
                first = cookies.read_text().splitlines()[0]
                with contextlib.suppress(OSError):
                    status = http_get(port, first)
                    if status != 200:
                        raise RuntimeError(f"{store}: a seeded session got HTTP {status}")
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn ({store}) not ready within 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield port, cookies
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


# -- the load -----------------------------------------------------------------------------------------------------


def wrk_load(port: int, cookies: Path, seconds: float, connections: int) -> tuple[int, float, float, float, int]:
    """wrk for ``seconds``: (requests, seconds, p50 ms, p99 ms, errors)."""
    wrk = shutil.which("wrk")
    assert wrk is not None
    duration = max(1, round(seconds))  # wrk takes whole seconds
    run = subprocess.run(
        [wrk, "--threads", "1", "--connections", str(connections), "--duration", f"{duration}s", "--timeout", "5s",
         "--script", str(HERE / "e2e.lua"), f"http://127.0.0.1:{port}/", "--", str(cookies)],
        capture_output=True, text=True, timeout=duration + 60, check=False,
    )  # fmt: skip
    line = next((line for line in run.stdout.splitlines() if line.startswith("E2E ")), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({run.returncode}): {run.stdout[-2000:]} {run.stderr[-2000:]}")
    data = json.loads(line[4:])
    errors = sum(data[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1e3, data["p99_us"] / 1e3, errors


def python_load(port: int, cookies: Path, seconds: float, connections: int) -> tuple[int, float, float, float, int]:
    """The fallback client: ``connections`` threads, one ``http.client`` connection each, for ``seconds``."""
    import http.client

    jar = cookies.read_text().split()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        mine: list[float] = []
        failed = 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        turn = offset
        while time.monotonic() < stop:
            turn = (turn + 1) % len(jar)
            started = time.perf_counter()
            try:
                connection.request("GET", "/", headers={"Cookie": jar[turn]})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failed += 1
                    continue
                mine.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
        connection.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i * 7,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if not latencies:
        return 0, elapsed, 0.0, 0.0, errors[0]
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3
    return len(latencies), elapsed, p50, p99, errors[0]


# -- one run ------------------------------------------------------------------------------------------------------


def redis_server() -> Any:
    """The test suite's throwaway redis-server on 127.0.0.1 (tests/test_redis.py), started; None without one."""
    if shutil.which("redis-server") is None:
        return None
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from test_redis import _start_server
    finally:
        sys.path.pop(0)
    return _start_server()


def measure(args: argparse.Namespace) -> tuple[dict[tuple[str, int], Cell], str, list[str]]:
    """Every cell's median over the rounds (``Cell.ratio``: the median of its per-round ratios to the floor)."""
    load = wrk_load if args.client == "wrk" else python_load
    notes: list[str] = []
    stores = list(args.stores)
    redis = None
    if "redis" in stores:
        redis = redis_server()
        if redis is None:
            notes.append("redis-server is not installed: the Redis row is missing (tools/redis-for-tests.sh)")
            print(f"!!! {notes[-1]} !!!", file=sys.stderr)
            stores.remove("redis")
    slices: dict[tuple[str, int], list[Cell]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="memorystore-e2e-") as tmp:
            workdir = Path(tmp)
            for workers in args.workers:
                # Every store's server runs at once (idle but for its turn), so that one round -- each store's
                # slice of load in turn -- takes seconds: the machine's load drifts over minutes.
                with contextlib.ExitStack() as servers:
                    ports = {
                        store: servers.enter_context(serving(store, workers, workdir, redis, args.sessions))
                        for store in stores
                    }
                    if args.warmup > 0:
                        for store in stores:
                            load(*ports[store], args.warmup, args.connections)
                    for number in range(args.rounds):
                        order = stores if number % 2 == 0 else stores[::-1]  # early in one round, late in the next
                        for store in order:
                            requests, seconds, p50, p99, errors = load(*ports[store], args.seconds, args.connections)
                            cell = Cell(store, workers, requests, seconds, p50, p99, errors)
                            slices.setdefault((store, workers), []).append(cell)
                            print(f"{workers} worker(s)  round {number + 1}/{args.rounds}  {store:<12} "
                                  f"{cell.rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms"
                                  f"{f'  ERRORS {errors}' if errors else ''}", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        if redis is not None:
            redis.cleanup()
    return {key: summarize(key, cells, slices) for key, cells in slices.items()}, load.__name__.split("_")[0], notes


def summarize(key: tuple[str, int], cells: list[Cell], slices: dict[tuple[str, int], list[Cell]]) -> Cell:
    """One cell from its rounds: the median req/s, p50 and p99, all errors, the median per-round ratio."""
    floor = slices.get((FLOOR, key[1]), [])
    ratios = [cell.rps / base.rps for cell, base in zip(cells, floor, strict=False) if base.rps]
    return Cell(
        key[0],
        key[1],
        requests=round(statistics.median(c.rps for c in cells) * 1000),
        seconds=1000.0,  # rps = the median rps
        p50_ms=statistics.median(c.p50_ms for c in cells),
        p99_ms=statistics.median(c.p99_ms for c in cells),
        errors=sum(c.errors for c in cells),
        ratio=statistics.median(ratios) if ratios else None,
        spread=(min(c.rps for c in cells), max(c.rps for c in cells)),
    )


@contextlib.contextmanager
def serving(store: str, workers: int, workdir: Path, redis: Any, sessions: int) -> Iterator[tuple[int, Path]]:
    """gunicorn on ``store`` with its own directory, Redis database or segment, removed afterwards."""
    env = {"E2E_SESSIONS": str(sessions)}
    segment = ""
    directory = workdir / f"{store}-{workers}-{uuid.uuid4().hex[:8]}"
    if store in ("cachelib-fs", "diskcache"):
        directory.mkdir()
        env["E2E_DIR"] = str(directory)
    elif store == "redis":
        import redis as redis_py

        with redis_py.Redis.from_url(redis.url) as client:
            client.flushall()
        env["E2E_REDIS_URL"] = redis.url
    elif store == "shared":
        segment = f"bench-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        env["E2E_SEGMENT"] = segment
    try:
        with gunicorn(store, workers, env, workdir) as served:
            yield served
    finally:
        if segment:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/dev/shm/memorystore.{segment}")
        shutil.rmtree(directory, ignore_errors=True)


# -- the report ---------------------------------------------------------------------------------------------------


def versions(client: str) -> str:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    parts = [f"CPython {platform.python_version()}"]
    parts += [f"{dist} {version(dist)}" for dist in ("memorystore", "Flask", "Flask-Session", "cachelib", "diskcache",
                                                      "redis", "gunicorn")]  # fmt: skip
    redis_binary = shutil.which("redis-server")
    if redis_binary:
        out = subprocess.run([redis_binary, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"v=(\S+)", out)
        parts.append(f"redis-server {match.group(1) if match else '?'}")
    if client == "wrk":
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
        parts.append(f"wrk {match.group(1) if match else '?'}")
    return ", ".join(parts)


def cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{os.cpu_count()} x {line.split(':', 1)[1].strip()}"
    return f"{os.cpu_count()} CPUs"


def report(cells: dict[tuple[str, int], Cell], args: argparse.Namespace, client: str, notes: list[str],
           load_before: tuple[float, ...], load_after: tuple[float, ...], elapsed: float) -> str:  # fmt: skip
    stores = [s for s in args.stores if any(key[0] == s for key in cells)]
    if client == "wrk":
        generator = f"wrk, 1 thread, {args.connections} connections"
    else:
        generator = (f"the Python fallback client ({args.connections} threads over http.client; wrk was not found): "
                     "slower than wrk, so the figures are lower than wrk's")  # fmt: skip
    lines = [
        "# End-to-end: one Flask endpoint under gunicorn, six session stores",
        "",
        f"`python bench/e2e.py` on {dt.date.today().isoformat()}, {cpu()} (shared with other jobs: load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after); {versions(client)}.",
        "",
        f"`GET /` loads a ~1 KiB session, counts the request in it and stores it again (bench/e2e_app.py); gunicorn "
        f"sync workers with `--preload` on 127.0.0.1; load: {generator}, each request carrying one of "
        f"{args.sessions} seeded session cookies in turn. The servers of every store run at once (idle but for "
        f"their turn); after {args.warmup:g} s of warm-up each, {args.rounds} rounds give each store "
        f"{args.seconds:g} s of load in turn (alternating the order), so that a round takes seconds while the "
        f"machine's load drifts over minutes. Shown: the median over the rounds of req/s (and the lowest and "
        f"highest round), of p50 and of p99. The load generator shares the {os.cpu_count()} cores with the "
        f"servers. Whole run: {elapsed / 60:.1f} min.",
        "",
        "**vs floor** = the median over the rounds of req/s divided by the per-process `MemoryStore`'s in the "
        "same round at the same worker count (the floor: it does not share sessions between workers, so it is "
        "not a choice for several workers; above 1 is faster than the floor).",
        "",
    ]
    errors = sum(cell.errors for cell in cells.values())
    if errors:
        lines += [f"**{errors} requests failed** (HTTP errors, or socket errors and timeouts): see the errors column.",
                  ""]  # fmt: skip
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    lines += ["| workers | store | req/s | rounds' range | vs floor | p50 ms | p99 ms | errors |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for workers in args.workers:
        for store in stores:
            cell = cells.get((store, workers))
            if cell is None:
                continue
            ratio = "-" if cell.ratio is None else f"{cell.ratio:.2f}"
            low, high = cell.spread
            lines.append(f"| {workers} | {STORES[store]} | {cell.rps:,.0f} | {low:,.0f}-{high:,.0f} | {ratio} "
                         f"| {cell.p50_ms:.2f} | {cell.p99_ms:.2f} | {cell.errors} |")  # fmt: skip
    lines += ["", "## Targets", ""]
    for workers in args.workers:
        shared, floor = cells.get(("shared", workers)), cells.get((FLOOR, workers))
        if shared is None or floor is None:
            continue
        peers = [cells[(p, workers)] for p in SHARED_PEERS if (p, workers) in cells]
        best_peer = max(peers, key=lambda c: c.rps, default=None)
        within = shared.ratio is not None and shared.ratio >= 0.9
        ahead = best_peer is None or shared.rps > best_peer.rps
        peer_text = f"the fastest shared peer ({STORES[best_peer.store]}) {best_peer.rps:,.0f}" if best_peer else "-"
        lines.append(
            f"- {workers} worker(s): SharedMemoryStore {shared.rps:,.0f} req/s, {shared.ratio or 0:.2f} x the "
            f"floor ({'within' if within else 'NOT within'} 10%); {peer_text} ({'ahead' if ahead else 'NOT ahead'})."
        )
    lines += ["", "Full run: `python bench/e2e.py` (pip install '.[bench]'; Debian's `wrk` and `redis-server`)."]
    return "\n".join(lines) + "\n"


def plot(cells: dict[tuple[str, int], Cell], args: argparse.Namespace, path: Path, client: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = [s for s in args.stores if any(key[0] == s for key in cells)]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True)
    width = 0.8 / len(stores)
    for index, store in enumerate(stores):
        xs = [i + (index - (len(stores) - 1) / 2) * width for i in range(len(args.workers))]
        rps = [cells[(store, w)].rps if (store, w) in cells else 0 for w in args.workers]
        p99 = [cells[(store, w)].p99_ms if (store, w) in cells else 0 for w in args.workers]
        label = STORES[store].replace("**", "")
        top.bar(xs, rps, width, label=label)
        bottom.bar(xs, p99, width, label=label)
    top.set_ylabel("requests per second (higher is better)")
    bottom.set_ylabel("p99 latency, ms (lower is better)")
    bottom.set_xticks(range(len(args.workers)), [f"{w} worker{'s' if w > 1 else ''}" for w in args.workers])
    top.set_title(f"Flask + gunicorn, ~1 KiB session read and updated per request ({client})")
    for axis in (top, bottom):
        axis.grid(axis="y", alpha=0.3)
    handles, labels = top.get_legend_handles_labels()
    figure.legend(handles, labels, fontsize=8, loc="lower center", ncol=3, frameon=False)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="gunicorn worker counts (default 1,2,4)")
    parser.add_argument("--stores", default=",".join(STORES), help=f"which stores (default all: {','.join(STORES)})")
    parser.add_argument("--seconds", type=float, default=2.0, help="load per store and round (default 2)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured load per server first (default 1)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; medians are shown (default 7)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--sessions", type=int, default=64, help="sessions the requests take turns on (default 64)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator (auto: wrk if on PATH, else the Python client)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results" / "e2e.md")
    parser.add_argument("--plot", default=str(HERE / "results" / "e2e.png"), help="PNG path ('' for none)")
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    args.stores = [s for s in args.stores.split(",") if s]
    unknown = set(args.stores) - set(STORES)
    if unknown:
        parser.error(f"unknown stores {sorted(unknown)}; choose from {list(STORES)}")
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
        if args.client == "python":
            print("!!! wrk is not on PATH (apt-get install wrk): the Python fallback client generates the load !!!",
                  file=sys.stderr)  # fmt: skip
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk: wrk is not on PATH (apt-get install wrk)")
    if args.client == "wrk" and args.seconds < 1:
        args.seconds = 1.0  # wrk counts whole seconds
    load_before = os.getloadavg()
    started = time.monotonic()
    cells, client, notes = measure(args)
    text = report(cells, args, client, notes, load_before, os.getloadavg(), time.monotonic() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    if args.plot:
        plot(cells, args, Path(args.plot), client)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
