"""``python -m memorystore bench --threads``: do threads scale?

On a free-threaded CPython (3.13t, 3.14t) threads run Python code in
parallel, so a process with many threads (gunicorn ``gthread``, any threaded
WSGI server) can serve every request from one in-process store.  This
benchmark measures the operations per second that 1 and N threads (default
2) complete together, and their ratio, for:

``LRUCache per thread: get``       each thread its own cache, ``c.get(k)`` hits
``LRUCache per thread: mix``       each thread its own cache, 95% reads (``c[k]``
                                   and ``c.get(k)`` alternately), 5% ``c[k] = v``
``shared LRUCache: mix``           one cache for all threads, the same mix
``shared MemoryStore: mix``        one ``MemoryStore(serializer=None)``, 95%
                                   ``get``, 5% ``set``

Every cache holds 1000 keys (37-character str, as session ids) and every read
hits.  Each thread builds its own key strings and operation list (a request
parses its session id from its own cookie), so the only objects threads share
are the ones the scenario says.  A run is timed from a barrier to the last
thread's end; the best of 3 runs (2 with ``--quick``) is kept.  ``ratio`` is
wall-clock ops/s of N threads over 1 thread: on a busy machine other processes
take cores and lower it.  ``per CPU`` compares ops per CPU second (the threads'
own CPU time): 1.00 means an operation costs the same CPU with N threads as
with one, so no contention; below 1 is what contention (shared cache lines,
spinning on a lock) adds.  On a build with a GIL the ratio is about 1 or below:
there is nothing to scale.
"""

from __future__ import annotations

import os
import random
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

KEYS = 1000
READ_SHARE = 0.95


@dataclass(frozen=True)
class Scenario:
    name: str
    shared: bool  # one object for every thread (built once, by the main thread) or one per thread
    build: Callable[[], Any]  # the cache or store, filled by fill()
    body: str  # the statement run for each (op, k); op 0/1 are reads, 2 is a write


def _cache() -> Any:
    from . import LRUCache

    return LRUCache(2 * KEYS)


def _store() -> Any:
    from .store import MemoryStore

    return MemoryStore(serializer=None, ttl=3600, max=2 * KEYS)


_CACHE_MIX = "if op == 0: c[k]\n    elif op == 1: c.get(k)\n    else: c[k] = v"
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("LRUCache per thread: get", False, _cache, "c.get(k)"),
    Scenario("LRUCache per thread: mix", False, _cache, _CACHE_MIX),
    Scenario("shared LRUCache: mix", True, _cache, _CACHE_MIX),
    Scenario("shared MemoryStore: mix", True, _store, "if op < 2: c.get(k)\n    else: c.set(k, v)"),
)


def _compile(body: str) -> Callable[[Any, list[int], list[str], Any], None]:
    namespace: dict[str, Any] = {}
    # zip reuses its result tuple: the loop allocates nothing a garbage collection would have to
    # scan (a free-threaded build's collector walks the whole heap each time).
    exec(f"def run(c, codes, keys, v):\n  for op, k in zip(codes, keys):\n    {body}\n", namespace)  # noqa: S102
    return namespace["run"]  # type: ignore[no-any-return]


def _keys() -> list[str]:
    """The same 1000 keys in every thread, each thread with its own str objects."""
    rng = random.Random(17)
    return [f"{rng.getrandbits(148):037x}"[:37] for _ in range(KEYS)]


def _ops(keys: list[str], count: int, seed: int) -> tuple[list[int], list[str]]:
    """Operation codes (0, 1: reads, 2: a write) and the key of each."""
    rng = random.Random(seed)
    codes = [2 if rng.random() >= READ_SHARE else i & 1 for i in range(count)]
    return codes, [keys[rng.randrange(KEYS)] for _ in range(count)]


def _fill(target: Any, keys: list[str]) -> None:
    for key in keys:  # LRUCache.set(key, value) and MemoryStore.set(sid, session) alike
        target.set(key, {"sid": key})


def measure(scenario: Scenario, threads: int, ops_per_thread: int) -> tuple[float, float]:
    """One run: (operations per second of wall time, per second of CPU time) of ``threads`` threads together."""
    run = _compile(scenario.body)
    shared = None
    if scenario.shared:
        shared = scenario.build()
        _fill(shared, _keys())
    barrier = threading.Barrier(threads + 1)
    spans: list[tuple[float, float, float]] = []  # start, end, CPU seconds of each thread
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            keys = _keys()
            target = shared
            if target is None:
                target = scenario.build()
                _fill(target, keys)
            codes, op_keys = _ops(keys, ops_per_thread, seed=index)
            value = {"sid": f"written by thread {index}"}
            barrier.wait()
            start, cpu = time.perf_counter(), time.thread_time()
            run(target, codes, op_keys, value)
            spans.append((start, time.perf_counter(), time.thread_time() - cpu))
        except BaseException as exc:  # noqa: BLE001 - reported by measure()
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=worker, args=(i,), name=f"bench-{i}") for i in range(threads)]
    for thread in workers:
        thread.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    for thread in workers:
        thread.join()
    if errors:
        raise errors[0]
    elapsed = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    cpu = sum(cpu for _, _, cpu in spans)
    return threads * ops_per_thread / elapsed, threads * ops_per_thread / cpu


def gil_state() -> str:
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "GIL build"
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    return "free-threaded build, GIL " + ("ON (re-enabled)" if gil_enabled else "off")


@dataclass(frozen=True)
class Scaling:
    name: str
    one: float  # ops/s, 1 thread (wall clock)
    many: float  # ops/s, `threads` threads together
    cpu_one: float  # ops per CPU second, 1 thread
    cpu_many: float  # ops per CPU second (all threads' CPU time), `threads` threads


def run_scaling(
    threads: int = 2, ops_per_thread: int = 1_000_000, repeat: int = 3, scenarios: Sequence[Scenario] = SCENARIOS
) -> list[Scaling]:
    """1 vs ``threads`` threads for each scenario, the best of ``repeat`` runs of each."""
    results = []
    for scenario in scenarios:
        one = many = cpu_one = cpu_many = 0.0
        for _ in range(repeat):  # interleaved, so a burst of load hits both sides alike
            wall, cpu = measure(scenario, 1, ops_per_thread)
            one, cpu_one = max(one, wall), max(cpu_one, cpu)
            wall, cpu = measure(scenario, threads, ops_per_thread)
            many, cpu_many = max(many, wall), max(cpu_many, cpu)
        results.append(Scaling(scenario.name, one, many, cpu_one, cpu_many))
    return results


def format_scaling(results: Sequence[Scaling], threads: int) -> str:
    """The table; "per CPU" is the ratio of ops per CPU second, what contention costs whatever else runs."""
    rows = [("scenario", "1 thread", f"{threads} threads", "ratio", "per CPU")]
    rows += [
        (
            r.name,
            f"{r.one / 1e6:.2f}M/s",
            f"{r.many / 1e6:.2f}M/s",
            f"{r.many / r.one:.2f}x",
            f"{r.cpu_many / r.cpu_one:.2f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(threads: int = 2, ops_per_thread: int = 1_000_000, repeat: int = 3) -> int:
    from . import COMPILED

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"memorystore bench --threads: Python {sys.version.split()[0]} ({gil_state()}), "
        f"core {'compiled' if COMPILED else 'pure'}, {os.cpu_count()} CPUs, "
        f"{ops_per_thread} ops per thread, best of {repeat}, load average {load:.2f} at start",
        flush=True,
    )
    results = run_scaling(threads, ops_per_thread, repeat)
    print(format_scaling(results, threads))
    print(
        f"ratio: ops/s of {threads} threads / 1 thread (wall clock; other processes' load lowers it).  "
        f"per CPU: ops per CPU second, {threads} threads / 1: below 1 is what contention costs each operation."
    )
    return 0
