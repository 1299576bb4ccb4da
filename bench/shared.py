"""SharedMemoryStore against its peers on one host, every store in one run (issue #12).

    python bench/shared.py [--ops N] [--procs 1,2,4,8] [--out bench/results/shared.md]

Every store handles the same ~1 KiB session with the same serializer (json):

* ``MemoryStore``          per process (single-process baseline only)
* ``SharedMemoryStore``    one segment in /dev/shm, opened by name in each worker
* ``redis-py``             a local redis-server over a unix socket, ``get``/``set(ex=)``
                           of the json text (started here; skipped when redis-server is missing)
* ``diskcache``            ``diskcache.Cache`` in a temporary directory (skipped when not installed)

Parts:

1. single process: get and set per operation, SharedMemoryStore vs MemoryStore
   (median of batches);
2. 1, 2, 4, 8 worker processes (forked, started together) doing the session mix
   80% get / 10% update / 5% new / 5% destroy over 5,000 prepopulated sessions;
   every operation is timed (perf_counter_ns): p50, p99 and max per operation kind;
3. aggregate get throughput: 1 and 2 processes doing only gets for a fixed time
   (alternating trials, medians), with the gets per CPU-second of the workers.

Part 2 runs twice: flat out (each worker issues its next operation as soon as
the last returns: CPU-bound workers, so on a 2-core machine the scheduler's
time slices dominate every max) and paced (each worker issues ``--rate``
operations a second, as a worker serving requests does).

Time-outs bound every wait.  Results are printed as Markdown (and written to
``--out``).  The machine is shared and noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

# A typical ~1 KiB web session: auth keys, tokens, a few preferences, a small cart, a flash.
SESSION = {
    "_auth_user_id": "123456",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "9f" * 32,
    "csrf_token": "c" * 43,
    "oauth_access_token": "eyJhbGciOiJSUzI1NiJ9." + "a" * 420 + ".sig" + "s" * 40,
    "locale": "en_GB",
    "tz": "Europe/Berlin",
    "theme": "dark",
    "cart": [{"sku": "SKU-00017", "qty": 2}, {"sku": "SKU-00342", "qty": 1}, {"sku": "SKU-10001", "qty": 5}],
    "_flashes": [["message", "Welcome back, Ann!"]],
    "last_seen": "2026-12-03T16:49:09Z",
}
TTL = 3600
POPULATION = 5000
KINDS = ("get", "update", "new", "destroy")
REFERENCE = "(MemoryStore, per process)"


# -- the stores: each a factory returning (get, set, destroy, close) ---------------------


class Redis:
    """A private redis-server on a unix socket for the run."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not on PATH (tools/redis-for-tests.sh installs it)")
        self.dir = tempfile.mkdtemp(prefix="memorystore-bench-shared-")
        self.socket = os.path.join(self.dir, "redis.sock")
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", self.socket, "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(unix_socket_path=self.socket).ping()
                break
            except (redis.exceptions.ConnectionError, FileNotFoundError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.01)  # bounded wait for the server to come up

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def open_memorystore(population: list[str] | None) -> tuple[Callable, Callable, Callable, Callable]:
    """A per-process MemoryStore, filled with the population (the reference: nothing shared)."""
    from memorystore import MemoryStore

    store = MemoryStore(ttl=TTL)
    for sid in population or ():
        store.set(sid, SESSION)
    return store.get, store.set, store.destroy, store.close


def open_shared(name: str) -> tuple[Callable, Callable, Callable, Callable]:
    from memorystore import SharedMemoryStore

    store = SharedMemoryStore(name, capacity=POPULATION * 4, ttl=TTL)
    return store.get, store.set, store.destroy, store.close


def open_redis(socket_path: str) -> tuple[Callable, Callable, Callable, Callable]:
    import redis

    client = redis.Redis(unix_socket_path=socket_path)
    dumps, loads = json.dumps, json.loads

    def get(sid: str) -> Any:
        raw = client.get(sid)
        return None if raw is None else loads(raw)

    def set_(sid: str, session: Any) -> None:
        client.set(sid, dumps(session), ex=TTL)

    return get, set_, client.delete, client.close


def open_diskcache(directory: str) -> tuple[Callable, Callable, Callable, Callable]:
    import diskcache

    cache = diskcache.Cache(directory)
    dumps, loads = json.dumps, json.loads

    def get(sid: str) -> Any:
        raw = cache.get(sid)
        return None if raw is None else loads(raw)

    def set_(sid: str, session: Any) -> None:
        cache.set(sid, dumps(session), expire=TTL)

    return get, set_, cache.delete, cache.close


# -- measurements -------------------------------------------------------------------------


def single_process(opener: Callable, arg: Any, ops: int) -> dict[str, float]:
    """Median ns per get and per set over batches of 1,000, one process."""
    get, set_, _, close = opener(arg)
    sids = [secrets.token_urlsafe(32) for _ in range(min(1000, POPULATION))]
    for sid in sids:
        set_(sid, SESSION)
    out = {}
    for kind in ("get", "set"):
        per_batch = []
        for _ in range(max(3, ops // len(sids))):
            start = time.perf_counter_ns()
            if kind == "get":
                for sid in sids:
                    get(sid)
            else:
                for sid in sids:
                    set_(sid, SESSION)
            per_batch.append((time.perf_counter_ns() - start) / len(sids))
        out[kind] = statistics.median(per_batch)
    close()
    return out


def _worker_mix(
    opener: Callable, arg: Any, population: list[str], ops: int, seed: int, go: int, out_path: str, rate: float
) -> None:
    """ops operations of the mix, flat out (rate 0) or one every 1/rate seconds (a request-driven worker)."""
    get, set_, destroy, close = opener(arg)
    rng = random.Random(seed)
    mine: list[str] = []
    times = {kind: array.array("q") for kind in KINDS}
    choices = rng.choices(range(100), k=ops)
    os.read(go, 1)  # every worker starts together
    clock = time.perf_counter_ns
    start = time.perf_counter() + rng.random() / rate if rate else 0.0
    for i, roll in enumerate(choices):
        if rate:
            pause = start + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # waiting for the next request
        if roll < 80:
            sid = population[rng.randrange(len(population))]
            t = clock()
            get(sid)
            times["get"].append(clock() - t)
        elif roll < 90:
            sid = population[rng.randrange(len(population))]
            t = clock()
            set_(sid, SESSION)
            times["update"].append(clock() - t)
        elif roll < 95:
            sid = f"new-{seed}-{i}"
            t = clock()
            set_(sid, SESSION)
            times["new"].append(clock() - t)
            mine.append(sid)
        else:
            sid = mine.pop() if mine else population[rng.randrange(len(population))]
            t = clock()
            destroy(sid)
            times["destroy"].append(clock() - t)
    close()
    with open(out_path, "wb") as handle:
        for kind in KINDS:
            data = times[kind]
            handle.write(len(data).to_bytes(8, "little"))
            data.tofile(handle)


def _worker_gets(opener: Callable, arg: Any, population: list[str], seconds: float, go: int, out_path: str) -> None:
    get, _, _, close = opener(arg)
    rng = random.Random(os.getpid())
    sids = [population[rng.randrange(len(population))] for _ in range(4096)]
    os.read(go, 1)
    count = 0
    cpu = time.process_time()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for sid in sids[:256]:
            get(sid)
        count += 256
        sids.append(sids.pop(0))
    cpu = time.process_time() - cpu
    close()
    with open(out_path, "w") as handle:
        handle.write(f"{count} {cpu}")


def _fork_all(n: int, target: Callable[..., None], args_for: Callable[[int, int, str], tuple]) -> list[str]:
    """Fork n workers, start them together, wait (bounded) for all; their output files."""
    tmp = tempfile.mkdtemp(prefix="memorystore-bench-")
    outs = [os.path.join(tmp, f"w{i}") for i in range(n)]
    r, w = os.pipe()
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(w)
                target(*args_for(i, r, outs[i]))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(r)
    time.sleep(0.2)  # let every worker open its store before the start signal
    os.write(w, b"g" * n)
    os.close(w)
    deadline = time.monotonic() + 600
    for pid in pids:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if os.waitstatus_to_exitcode(status) != 0:
                    raise RuntimeError(f"a benchmark worker failed ({status})")
                break
            if time.monotonic() > deadline:
                for other in pids:
                    os.kill(other, signal.SIGKILL)
                raise RuntimeError("benchmark workers did not finish in time")
            time.sleep(0.01)
    return outs


def _read_times(path: str) -> dict[str, array.array]:
    out = {}
    with open(path, "rb") as handle:
        for kind in KINDS:
            n = int.from_bytes(handle.read(8), "little")
            data = array.array("q")
            data.fromfile(handle, n)
            out[kind] = data
    return out


def percentiles(values: list[int]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if not ordered:
        return (float("nan"),) * 3
    return (
        ordered[len(ordered) // 2] / 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000,
        ordered[-1] / 1000,
    )


def populate(opener: Callable, arg: Any) -> list[str]:
    get, set_, _, close = opener(arg)
    rng = random.Random(1)
    population = [f"{rng.getrandbits(192):048x}" for _ in range(POPULATION)]
    for sid in population:
        set_(sid, SESSION)
    close()
    return population


def prepare(opener: Callable, arg: Any) -> tuple[list[str], Any]:
    """The population, and the argument each worker opens its store with.

    A shared store is filled here once; the per-process MemoryStore (the reference, nothing
    shared) gets the population itself, and each worker fills its own store with it.
    """
    if opener is open_memorystore:
        population = populate(open_memorystore, None)
        return population, population
    return populate(opener, arg), arg


def main(argv: list[str] | None = None) -> int:
    global POPULATION
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20000, help="operations per worker in the mix")
    parser.add_argument("--procs", default="1,2,4,8", help="process counts")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput run")
    parser.add_argument("--population", type=int, default=POPULATION, help="prepopulated sessions")
    parser.add_argument("--trials", type=int, default=5, help="alternating 1/2-process throughput trials")
    parser.add_argument("--rate", type=float, default=200.0, help="operations a second per paced worker")
    parser.add_argument("--paced-ops", type=int, default=2000, help="operations per paced worker")
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    POPULATION = args.population
    procs = [int(p) for p in args.procs.split(",")]
    import memorystore

    if not memorystore.COMPILED:
        print("bench/shared.py needs the compiled core (SharedMemoryStore)", file=sys.stderr)
        return 2

    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    shm_name = f"bench-{uuid.uuid4().hex[:10]}"
    cache_dir = tempfile.mkdtemp(prefix="memorystore-bench-diskcache-")
    peers: dict[str, tuple[Callable, Any]] = {"SharedMemoryStore": (open_shared, shm_name)}
    server = None
    skipped = []
    try:
        server = Redis()
        peers["redis-py (unix socket)"] = (open_redis, server.socket)
    except (RuntimeError, ImportError) as exc:
        skipped.append(f"redis-py: {exc}")
    try:
        import diskcache  # noqa: F401

        peers["diskcache.Cache"] = (open_diskcache, cache_dir)
    except ImportError:
        skipped.append("diskcache: not installed (pip install diskcache)")

    try:
        emit("# SharedMemoryStore against its peers (one run)")
        emit()
        emit(
            f"- date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, {platform.system()} {platform.release()}; {platform.python_implementation()} "
            f"{platform.python_version()}"
        )
        emit(
            f"- session: {len(json.dumps(SESSION))} bytes of json; serializer json for every store; "
            f"{POPULATION} prepopulated sessions; {args.ops} operations per worker"
        )
        for note in skipped:
            emit(f"- SKIPPED {note}")
        emit()
        emit("## 1. One process: ns per operation (median of batches)")
        emit()
        emit("| store | get | set | get vs MemoryStore | set vs MemoryStore |")
        emit("|---|---|---|---|---|")
        base = single_process(open_memorystore, None, args.ops)
        emit(f"| MemoryStore | {base['get']:.0f} | {base['set']:.0f} | 1.00x | 1.00x |")
        single: dict[str, dict[str, float]] = {}
        for label, (opener, arg) in peers.items():
            got = single[label] = single_process(opener, arg, args.ops)
            emit(
                f"| {label} | {got['get']:.0f} | {got['set']:.0f} | {got['get'] / base['get']:.2f}x | "
                f"{got['set'] / base['set']:.2f}x |"
            )
        emit()
        summaries: dict[str, dict[tuple[int, str], dict[str, tuple[float, float, float]]]] = {}
        for part, (title, rate, ops) in enumerate(
            [
                ("flat out: each worker issues its next operation as soon as the last returns", 0.0, args.ops),
                (
                    f"paced: each worker issues {args.rate:g} operations a second (a request-driven worker)",
                    args.rate,
                    args.paced_ops,
                ),
            ]
        ):
            emit(f"## 2{'ab'[part]}. The session mix (80% get, 10% update, 5% new, 5% destroy), {title}")
            emit()
            emit(
                f"µs per operation, p50 / p99 / max; {ops} operations per worker. {REFERENCE} shares nothing: "
                "the same Python work with no shared store, i.e. what the machine's scheduler alone gives."
            )
            emit()
            emit("| procs | store | get | update | new | destroy |")
            emit("|---|---|---|---|---|---|")
            summary: dict[tuple[int, str], dict[str, tuple[float, float, float]]] = {}
            for n in procs:
                for label, (opener, arg) in [(REFERENCE, (open_memorystore, None)), *peers.items()]:
                    population, arg = prepare(opener, arg)
                    outs = _fork_all(
                        n,
                        _worker_mix,
                        lambda i, go, out, opener=opener, arg=arg, population=population, ops=ops, rate=rate: (
                            opener,
                            arg,
                            population,
                            ops,
                            1000 + i,
                            go,
                            out,
                            rate,
                        ),
                    )
                    merged: dict[str, list[int]] = {kind: [] for kind in KINDS}
                    for out in outs:
                        for kind, data in _read_times(out).items():
                            merged[kind].extend(data)
                    row = {kind: percentiles(merged[kind]) for kind in KINDS}
                    summary[(n, label)] = row
                    cells = " | ".join("{:.1f} / {:.1f} / {:.0f}".format(*row[kind]) for kind in KINDS)
                    emit(f"| {n} | {label} | {cells} |")
            summaries[title.split(":")[0]] = summary
            emit()
        emit(
            f"## 3. Aggregate get throughput (gets per second, all processes; median of {args.trials} "
            f"alternating trials of {args.seconds:g} s)"
        )
        emit()
        emit(
            "Gets per CPU-second of the workers too: when it stays flat from 1 to 2 processes, nothing "
            "serializes the reads, and a wall-clock ratio below 2x is CPU the machine did not give. "
            f"{REFERENCE} shares nothing: its 2-process figures are what this machine gives two workers."
        )
        emit()
        emit("| store | 1 process | 2 processes | 2 vs 1 | per CPU-second, 1 / 2 processes | worker CPU, 1 / 2 |")
        emit("|---|---|---|---|---|---|")
        scaling: dict[str, float] = {}
        for label, (opener, arg) in [(REFERENCE, (open_memorystore, None)), *peers.items()]:
            population, arg = prepare(opener, arg)
            trials: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
            for _ in range(args.trials):  # 1 and 2 processes alternate: both see the same machine load
                for n in (1, 2):
                    outs = _fork_all(
                        n,
                        _worker_gets,
                        lambda i, go, out, opener=opener, arg=arg, population=population: (
                            opener,
                            arg,
                            population,
                            args.seconds,
                            go,
                            out,
                        ),
                    )
                    counts = [open(out).read().split() for out in outs]
                    total = sum(int(c) for c, _ in counts)
                    cpu = sum(float(t) for _, t in counts)
                    trials[n].append((total / args.seconds, total / cpu if cpu else float("nan"), cpu / args.seconds))
            rates = [statistics.median(t[0] for t in trials[n]) for n in (1, 2)]
            per_cpu = [statistics.median(t[1] for t in trials[n]) for n in (1, 2)]
            cpus = [statistics.median(t[2] for t in trials[n]) for n in (1, 2)]
            scaling[label] = rates[1] / rates[0]
            emit(
                f"| {label} | {rates[0]:,.0f} | {rates[1]:,.0f} | {rates[1] / rates[0]:.2f}x | "
                f"{per_cpu[0]:,.0f} / {per_cpu[1]:,.0f} | {cpus[0]:.2f} / {cpus[1]:.2f} cores |"
            )
        emit()
        emit("## Targets (issue #12)")
        emit()
        emit("| target | measured | verdict |")
        emit("|---|---|---|")
        shared = single["SharedMemoryStore"]  # part 1's figures: measured beside MemoryStore's
        ratio = scaling["SharedMemoryStore"]
        emit(
            f"| 2-process aggregate get throughput >= 1.6x one process | {ratio:.2f}x | "
            f"{'met' if ratio >= 1.6 else 'MISSED'} |"
        )
        for kind in ("get", "set"):
            ratio = shared[kind] / base[kind]
            emit(
                f"| single-process {kind} within 2x of MemoryStore | {ratio:.2f}x | "
                f"{'met' if ratio <= 2 else 'MISSED'} |"
            )
        for mode, summary in summaries.items():
            for n in procs:
                mine = summary[(n, "SharedMemoryStore")]
                misses = 0
                for label, factor in (("redis-py (unix socket)", 10), ("diskcache.Cache", 3)):
                    if (n, label) not in summary:
                        continue
                    theirs = summary[(n, label)]
                    ratio = theirs["get"][0] / mine["get"][0]
                    emit(
                        f"| {mode}, {n} procs: p50 get >= {factor}x faster than {label} | {ratio:.1f}x | "
                        f"{'met' if ratio >= factor else 'MISSED'} |"
                    )
                    for kind in KINDS:
                        for idx, what in ((1, "p99"), (2, "max")):
                            if not mine[kind][idx] < theirs[kind][idx]:
                                misses += 1
                                emit(
                                    f"| {mode}, {n} procs: {what} {kind} below {label} | {mine[kind][idx]:.1f} vs "
                                    f"{theirs[kind][idx]:.1f} µs | MISSED |"
                                )
                emit(
                    f"| {mode}, {n} procs: p99 and max of every operation below both peers | "
                    f"{misses} misses (listed above) | {'met' if not misses else 'MISSED'} |"
                )
    finally:
        from memorystore import SharedMemoryStore

        SharedMemoryStore(shm_name, capacity=POPULATION * 4).unlink()
        if server is not None:
            server.close()
        shutil.rmtree(cache_dir, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
