"""``python -m memorystore bench``: memorystore against the installed peers.

This module is also the single source of truth for *what* is measured: the
pytest-benchmark suite under ``bench/`` imports :data:`IMPLEMENTATIONS`,
:data:`OPS`, :class:`KeyPool` and :func:`make_case` from here, so the command
line and the recorded benchmarks time exactly the same loops.

Every implementation is described by a few statements (how it reads, writes
and deletes one key) from which the timing loops are compiled, so each peer
is driven through its own idiomatic, fastest public API (``c[k] = v`` where it
is a mapping, ``set(k, v)`` where it is a cache object).  Peers are imported
lazily, only when a benchmark asks for them: ``import memorystore`` never
imports any of them.

Operations (each timed as an inner loop of ``loop`` operations, ns/op =
round time / loop):

``get_hit``    ``get`` of a present key (random sample of the stored keys)
``get_miss``   ``get`` of a key that was never stored
``set_new``    store a new key into a full cache (each one evicts the LRU entry)
``overwrite``  store a new value under a present key
``delete``     remove a present key (re-inserted, untimed, before the next round)
``mix``        a session workload: 80% get, 10% update, 5% new, 5% destroy, from a
               precomputed op list with a fixed seed; the cache starts 90% full
"""

from __future__ import annotations

import argparse
import base64
import gc
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "IMPLEMENTATIONS",
    "OPS",
    "Case",
    "Impl",
    "KeyPool",
    "available",
    "main",
    "make_case",
    "run_comparison",
]

OPS: tuple[str, ...] = ("get_hit", "get_miss", "set_new", "overwrite", "delete", "mix")
OP_TITLES = {
    "get_hit": "get hit",
    "get_miss": "get miss",
    "set_new": "set new (evict)",
    "overwrite": "overwrite",
    "delete": "delete",
    "mix": "mix 80/10/5/5",
}
KEY_LENGTH = 37
DEFAULT_TTL = 3600.0
MIX_FILL = 0.9
VALUE: Any = {"uid": 1}  # the one value object every implementation stores in the per-op loops


# --------------------------------------------------------------------------- keys


class KeyPool:
    """Random 37-character ``str`` keys from a fixed seed, generated on demand.

    ``pool[i]`` is the same key for every implementation and every run with
    the same seed; ``misses`` are keys guaranteed absent from the pool.
    """

    def __init__(self, seed: int = 5) -> None:
        self._rng = random.Random(seed)
        self._keys: list[str] = []
        self._seen: set[str] = set()
        self.misses = [self._fresh() for _ in range(4096)]

    def _fresh(self) -> str:
        while True:
            key = base64.urlsafe_b64encode(self._rng.randbytes(28)).decode()[:KEY_LENGTH]
            if key not in self._seen:
                self._seen.add(key)
                return key

    def take(self, stop: int) -> list[str]:
        """The first ``stop`` keys of the pool (a list, shared: do not mutate)."""
        keys = self._keys
        while len(keys) < stop:
            keys.append(self._fresh())
        return keys if len(keys) == stop else keys[:stop]

    def __getitem__(self, index: int) -> str:
        return self.take(index + 1)[index]


# --------------------------------------------------------------------------- implementations


@dataclass(frozen=True)
class Impl:
    """One implementation: how to build it and the statements that drive it.

    The statements run inside compiled loops with ``c`` the instance, ``k`` the
    key and ``v`` the value; ``prelude`` binds method names once per loop.
    ``None`` means the operation does not exist for this implementation.
    """

    name: str
    module: str
    factory: Callable[[int], Any]
    get: str | None = "get(k)"
    set: str | None = "c[k] = v"
    delete: str | None = "del c[k]"
    prelude: str = "get = c.get"
    set_new: str | None = None  # statement for set_new when it differs from ``set``
    own: bool = False
    ttl: bool = False
    compiled: bool = False
    kind: str = "peer"  # "floor", "own", "peer"
    small_loop: dict[str, int] = field(default_factory=dict)  # ops with pathological cost: fewer ops per round
    close: Callable[[Any], None] | None = None

    def supports(self, op: str) -> bool:
        if op in ("get_hit", "get_miss"):
            return self.get is not None and (op == "get_hit" or self.set is not None)
        if op == "set_new":
            return (self.set_new or self.set) is not None
        if op == "overwrite":
            return self.set is not None
        if op == "delete":
            return self.delete is not None and self.set is not None
        if op == "mix":
            return None not in (self.get, self.set, self.delete)
        raise ValueError(f"unknown op {op!r}")


def _import(module: str) -> Any:
    import importlib

    return importlib.import_module(module)


def _core(module: str, ttl: float | None) -> Callable[[int], Any]:
    def build(capacity: int) -> Any:
        return _import(module).LRUCache(maxsize=capacity, ttl=ttl)

    return build


def _store(capacity: int) -> Any:
    from memorystore import MemoryStore

    return MemoryStore(ttl=DEFAULT_TTL, max=capacity, serializer=None)


def _dict(capacity: int) -> dict[Any, Any]:
    return {}


def _lru_cache(capacity: int) -> Any:
    import functools

    return functools.lru_cache(maxsize=capacity)(len)


def _lru_dict(capacity: int) -> Any:
    return _import("lru").LRU(capacity)


def _cachebox(cls: str) -> Callable[[int], Any]:
    def build(capacity: int) -> Any:
        cachebox = _import("cachebox")
        if cls == "TTLCache":
            return cachebox.TTLCache(capacity, DEFAULT_TTL)
        return getattr(cachebox, cls)(capacity)

    return build


def _ttu(_key: Any, _value: Any, now: float) -> float:
    return now + DEFAULT_TTL


def _cachetools(cls: str) -> Callable[[int], Any]:
    def build(capacity: int) -> Any:
        cachetools = _import("cachetools")
        if cls == "TTLCache":
            return cachetools.TTLCache(capacity, DEFAULT_TTL)
        if cls == "TLRUCache":
            return cachetools.TLRUCache(capacity, _ttu)
        return cachetools.LRUCache(capacity)

    return build


def _cachelib(capacity: int) -> Any:
    return _import("cachelib").SimpleCache(threshold=capacity, default_timeout=int(DEFAULT_TTL))


_django_serial = iter(range(1, 1 << 62))


def configure_django() -> None:
    """Minimal in-process Django settings, enough for a cache backend."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            USE_TZ=True, CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        )


def _django(capacity: int) -> Any:
    configure_django()
    from django.core.cache.backends.locmem import LocMemCache

    # MAX_ENTRIES is checked before every write (overwrites included) and
    # CULL_FREQUENCY = entries culled per 1/n: capacity + 1 makes it hold the
    # same sessions as the others and evict exactly one LRU entry when full.
    options = {"MAX_ENTRIES": capacity + 1, "CULL_FREQUENCY": capacity + 1}
    return LocMemCache(f"memorystore-bench-{next(_django_serial)}", {"TIMEOUT": DEFAULT_TTL, "OPTIONS": options})


def _django_close(cache: Any) -> None:
    from django.core.cache.backends import locmem

    cache.clear()
    for registry in (locmem._caches, locmem._expire_info, locmem._locks):
        for name, value in list(registry.items()):
            if value is cache._cache or value is cache._expire_info or value is cache._lock:
                del registry[name]


_CACHE_METHODS = "get = c.get; set_ = c.set; delete = c.delete"

IMPLEMENTATIONS: tuple[Impl, ...] = (
    Impl("dict", "builtins", _dict, set_new="c[k] = v; del c[d]", kind="floor"),
    Impl(
        "lru_cache",
        "functools",
        _lru_cache,
        get="c(k)",
        set=None,
        delete=None,
        prelude="",
        set_new="c(k)",
        kind="floor",
    ),
    Impl("memorystore-c", "memorystore._lru", _core("memorystore._lru", None), own=True, compiled=True, kind="own"),
    Impl(
        "memorystore-c-ttl",
        "memorystore._lru",
        _core("memorystore._lru", DEFAULT_TTL),
        own=True,
        compiled=True,
        ttl=True,
        kind="own",
    ),
    Impl("memorystore-py", "memorystore._lru_py", _core("memorystore._lru_py", None), own=True, kind="own"),
    Impl(
        "memorystore-py-ttl",
        "memorystore._lru_py",
        _core("memorystore._lru_py", DEFAULT_TTL),
        own=True,
        ttl=True,
        kind="own",
    ),
    Impl(
        "MemoryStore",
        "memorystore.store",
        _store,
        set="set_(k, v)",
        delete="destroy(k)",
        prelude="get = c.get; set_ = c.set; destroy = c.destroy",
        own=True,
        ttl=True,
        kind="own",
    ),
    Impl("lru-dict", "lru", _lru_dict),
    Impl("cachebox.LRUCache", "cachebox", _cachebox("LRUCache")),
    Impl("cachebox.TTLCache", "cachebox", _cachebox("TTLCache"), ttl=True, small_loop={"delete": 100}),
    Impl(
        "cachebox.VTTLCache",
        "cachebox",
        _cachebox("VTTLCache"),
        set=f"insert(k, v, {DEFAULT_TTL!r})",
        prelude="get = c.get; insert = c.insert",
        ttl=True,
    ),
    Impl("cachetools.LRUCache", "cachetools", _cachetools("LRUCache")),
    Impl("cachetools.TTLCache", "cachetools", _cachetools("TTLCache"), ttl=True),
    Impl("cachetools.TLRUCache", "cachetools", _cachetools("TLRUCache"), ttl=True),
    Impl(
        "cachelib.SimpleCache",
        "cachelib",
        _cachelib,
        set="set_(k, v)",
        delete="delete(k)",
        prelude=_CACHE_METHODS,
        ttl=True,
        small_loop={"set_new": 5},
    ),
    Impl(
        "django.LocMemCache",
        "django",
        _django,
        set="set_(k, v)",
        delete="delete(k)",
        prelude=_CACHE_METHODS,
        ttl=True,
        close=_django_close,
    ),
)

IMPLEMENTATIONS_BY_NAME = {impl.name: impl for impl in IMPLEMENTATIONS}


def available(impl: Impl) -> bool:
    """True when the implementation's module imports (peers are optional)."""
    try:
        _import(impl.module)
    except ImportError:
        return False
    return True


def reference_for(impl: Impl) -> str:
    """The memorystore variant a peer is compared with (TTL peers: the TTL core)."""
    return "memorystore-c-ttl" if impl.ttl else "memorystore-c"


# --------------------------------------------------------------------------- compiled loops


def _compile(name: str, params: str, prelude: str, head: str, body: str) -> Callable[..., None]:
    lines = [f"def {name}({params}):"]
    lines += [f"    {part.strip()}" for part in prelude.split(";") if part.strip()]
    lines.append(f"    {head}")
    lines += [f"        {part.strip()}" for part in body.split(";") if part.strip()]
    lines.append("    return None")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines) + "\n", f"<memorystore bench {name}>", "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]


def _hit_counter(impl: Impl) -> Callable[[Any, Sequence[str]], int]:
    """``count(c, keys)``: how many keys ``get`` finds (used to check a case, never timed)."""
    assert impl.get is not None
    lines = [
        "def count(c, keys):",
        *[f"    {part.strip()}" for part in impl.prelude.split(";") if part.strip()],
        "    n = 0",
        "    for k in keys:",
        f"        if ({impl.get}) is not None:",
        "            n += 1",
        "    return n",
    ]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines) + "\n", "<memorystore bench count>", "exec"), namespace)
    return namespace["count"]  # type: ignore[no-any-return]


def _mix_loop(impl: Impl) -> Callable[..., None]:
    assert impl.get and impl.set and impl.delete
    lines = [
        "def mix(c, ops, v):",
        *[f"    {part.strip()}" for part in impl.prelude.split(";") if part.strip()],
        "    for code, k in ops:",
        "        if code == 0:",
        f"            {impl.get}",
        "        elif code == 3:",
        f"            {impl.delete}",
        "        else:",
        f"            {impl.set}",
        "    return None",
    ]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines) + "\n", "<memorystore bench mix>", "exec"), namespace)
    return namespace["mix"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One (implementation, operation) ready to be timed.

    ``setup()`` prepares the next round (untimed) and returns ``(args, kwargs)``
    for ``run`` — the shape ``benchmark.pedantic(setup=...)`` expects;
    ``run(*args)`` performs ``loop`` operations.
    """

    impl: Impl
    op: str
    capacity: int
    loop: int
    cache: Any
    run: Callable[..., None]
    setup: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]

    check: Callable[[], None] = lambda: None

    def close(self) -> None:
        if self.impl.close is not None:
            self.impl.close(self.cache)
        self.cache = None


class _MixStream:
    """An endless, valid session op stream: (code, key) with 0 get, 1 update, 2 new, 3 destroy."""

    def __init__(self, pool: KeyPool, live: list[str], first_new: int, capacity: int, seed: int) -> None:
        self._pool = pool
        self._live = list(live)
        self._index = {key: i for i, key in enumerate(self._live)}
        self._next_new = first_new
        self._capacity = capacity
        self._rng = random.Random(seed)
        self.destroyed: list[str] = []

    def live_sample(self, count: int) -> list[str]:
        return self._live[-count:]

    def _remove(self, key: str) -> None:
        i = self._index.pop(key)
        last = self._live.pop()
        if last != key:
            self._live[i] = last
            self._index[last] = i

    def take(self, count: int) -> list[tuple[int, str]]:
        rng, live, ops = self._rng, self._live, []
        for _ in range(count):
            r = rng.random()
            code = 0 if r < 0.80 else 1 if r < 0.90 else 2 if r < 0.95 else 3
            if code == 2 and len(live) >= self._capacity:
                code = 3
            if code == 3 and len(live) <= 1:
                code = 2
            if code == 2:
                key = self._pool[self._next_new]
                self._next_new += 1
                self._index[key] = len(live)
                live.append(key)
            else:
                key = live[rng.randrange(len(live))]
                if code == 3:
                    self._remove(key)
                    self.destroyed.append(key)
            ops.append((code, key))
        return ops


def make_case(
    impl: Impl,
    op: str,
    *,
    capacity: int,
    loop: int = 1000,
    pool: KeyPool | None = None,
    seed: int = 5,
    value: Any = VALUE,
) -> Case:
    """Build ``impl``, fill it with ``value`` under ``capacity`` keys, and return the timed loop for ``op``.

    Raises ``ImportError`` when the implementation is not installed and
    ``ValueError`` when it has no such operation.
    """
    if not impl.supports(op):
        raise ValueError(f"{impl.name} has no {op!r}")
    loop = min(loop, impl.small_loop.get(op, loop))
    if loop < 1 or capacity < 2 * loop:
        raise ValueError("need capacity >= 2 * loop >= 2")
    pool = pool or KeyPool(seed)
    rng = random.Random(seed * 7919 + OPS.index(op))
    cache = impl.factory(capacity)
    set_stmt = (impl.set_new or impl.set) if op == "set_new" else impl.set
    fill = _compile("fill", "c, keys, v, drop", impl.prelude, "for k in keys:", impl.set or impl.set_new or "")
    stream_len = capacity + 2 * loop
    keys = pool.take(max(stream_len, capacity))
    fill_count = int(capacity * MIX_FILL) if op == "mix" else capacity
    fill(cache, keys[:fill_count], value, ())
    stored = keys[:fill_count]
    gc.collect()  # the filled cache is long-lived: into the oldest generation, untimed
    no_args: dict[str, Any] = {}

    if op in ("get_hit", "get_miss"):
        run = _compile("get_loop", "c, keys, v", impl.prelude, "for k in keys:", impl.get or "")
        misses = pool.misses[:loop]

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            chosen = rng.sample(stored, loop) if op == "get_hit" else misses
            return (cache, chosen, value), no_args

    elif op == "overwrite":
        run = _compile("overwrite_loop", "c, keys, v", impl.prelude, "for k in keys:", impl.set or "")

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (cache, rng.sample(stored, loop), value), no_args

    elif op == "set_new":
        # The cache holds the last `capacity` keys of a cyclic stream over
        # `stream_len` > capacity + loop keys: the next `loop` keys are absent
        # and each insert evicts the oldest, which is `drop` (for the floor).
        run = _compile("set_new_loop", "c, keys, v, drop", impl.prelude, "for k, d in zip(keys, drop):", set_stmt or "")
        position = [capacity]

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            start = position[0]
            new = [keys[(start + i) % stream_len] for i in range(loop)]
            drop = [keys[(start - capacity + i) % stream_len] for i in range(loop)]
            position[0] = start + loop
            return (cache, new, value, drop), no_args

    elif op == "delete":
        run = _compile("delete_loop", "c, keys, v", impl.prelude, "for k in keys:", impl.delete or "")
        deleted: list[list[str]] = [[]]

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            fill(cache, deleted[0], value, ())
            deleted[0] = rng.sample(stored, loop)
            return (cache, deleted[0], value), no_args

    elif op == "mix":
        run = _mix_loop(impl)
        stream = _MixStream(pool, stored, stream_len, capacity, seed)

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (cache, stream.take(loop), value), no_args

    else:  # pragma: no cover - guarded by supports()
        raise ValueError(op)

    last: list[tuple[Any, ...]] = []

    def remembering_setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = setup()
        last[:] = [args]
        return args, kwargs

    def check() -> None:
        """After the last round: the workload did what it claims (hits hit, evictions evicted...)."""
        if not last or impl.set is None:  # lru_cache: a "get" of a missing key inserts it
            return
        count = _hit_counter(impl)
        args = last[0]
        if op in ("get_hit", "overwrite"):
            assert count(cache, args[1]) == len(args[1]), f"{impl.name} {op}: keys missing"
        elif op in ("get_miss", "delete"):
            assert count(cache, args[1]) == 0, f"{impl.name} {op}: keys present"
        elif op == "set_new":
            assert count(cache, args[1]) == len(args[1]), f"{impl.name} set_new: new keys missing"
            # cachelib and Django hold capacity + 1 entries: the newest dropped key may survive
            assert count(cache, args[3]) <= 1, f"{impl.name} set_new: did not evict"
        elif op == "mix":
            sample = stream.live_sample(100)
            assert count(cache, sample) == len(sample), f"{impl.name} mix: live sessions missing"
            gone = stream.destroyed[-100:]
            assert count(cache, gone) == 0, f"{impl.name} mix: destroyed sessions present"

    return Case(impl, op, capacity, loop, cache, run, remembering_setup, check)


# --------------------------------------------------------------------------- timing loop (CLI)


@dataclass
class Result:
    impl: str
    op: str
    ns_per_op: float
    loop: int
    rounds: int


def _time_round(case: Case) -> float:
    """ns per op of one timed round of ``case`` (its setup untimed)."""
    args, _ = case.setup()
    start = time.perf_counter_ns()
    case.run(*args)
    return (time.perf_counter_ns() - start) / case.loop


def _median_and_spread(samples: Sequence[float]) -> tuple[float, float]:
    """The median of the rounds, and their spread: the interquartile range divided by the median,
    how much this one cell moved while it was being measured."""
    median = statistics.median(samples)
    quartiles = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [median, median, median]
    return median, (quartiles[2] - quartiles[0]) / median if median else 0.0


class Progress:
    """A one-line ``\\r`` progress bar on a text stream (stderr)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 28) -> None:
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = stream if stream is not None else sys.stderr
        self._last_len = 0

    def step(self, label: str) -> None:
        filled = self.width * self.done // self.total
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {label}"
        pad = max(0, self._last_len - len(line))
        self.stream.write(line + " " * pad)
        self.stream.flush()
        self._last_len = len(line)
        self.done += 1

    def finish(self) -> None:
        self.done = self.total
        self.step("done")
        self.stream.write("\n")
        self.stream.flush()


def run_comparison(
    impls: Sequence[Impl],
    ops: Sequence[str] = OPS,
    *,
    capacity: int,
    total_ops: int,
    loop: int = 1000,
    progress: Progress | None = None,
    spreads: dict[str, dict[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """``{impl name: {op: ns/op}}`` for every supported (impl, op).

    The implementations' rounds of one operation are interleaved: every implementation is built
    and filled first, then each round times each of them once, in an order that rotates from
    round to round. A machine whose speed drifts (a shared VM) then slows every implementation
    alike, and the ratios of one run hold even when its absolute times move.

    ``spreads``, when given, receives ``{impl name: {op: interquartile range / median}}`` of the rounds.
    """
    pool = KeyPool()
    loop = max(1, min(loop, total_ops, capacity // 2))
    results: dict[str, dict[str, float]] = {impl.name: {} for impl in impls}
    for op in ops:
        cases: list[Case] = []
        try:
            for impl in impls:
                if impl.supports(op):
                    if progress is not None:
                        progress.step(f"{OP_TITLES[op]}: {impl.name}")
                    cases.append(make_case(impl, op, capacity=capacity, loop=loop, pool=pool))
            if not cases:
                continue
            # an implementation with a smaller loop for this op (a pathological cost) times 3 rounds
            rounds = [max(3, total_ops // max(case.loop, 1)) if case.loop == loop else 3 for case in cases]
            samples: list[list[float]] = [[] for _ in cases]
            for round_number in range(1 + max(rounds)):  # round 0 warms every implementation up, untimed
                for k in range(len(cases)):
                    i = (round_number + k) % len(cases)
                    if round_number > rounds[i]:
                        continue
                    ns = _time_round(cases[i])
                    if round_number > 0:
                        samples[i].append(ns)
            for case, timed in zip(cases, samples):
                results[case.impl.name][op], spread = _median_and_spread(timed)
                if spreads is not None:
                    spreads.setdefault(case.impl.name, {})[op] = spread
                case.check()
        finally:
            for case in cases:
                case.close()
            gc.collect()
    return results


# --------------------------------------------------------------------------- output


def _fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.1f}ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.1f}us"
    return f"{ns:.0f}"


#: What the bracketed ratios of a table mean (the terminal table and bench/summarize.py's report).
RATIO_LEGEND = (
    "(Nx) = this row's ns / its reference row's ns. The reference is memorystore-c, or memorystore-c-ttl for "
    "rows with a TTL (MemoryStore included); reference rows have no ratio. For a peer, above 1.00 means "
    "memorystore's core is faster; for memorystore's own rows (the pure core, MemoryStore) it is what they cost "
    "next to the compiled core, and above 1.00 means the compiled core is faster."
)
#: How far to trust one table (both reports).
NOISE_WARNING = (
    "Noise: timings on a shared or busy machine move by up to ~1.5x between runs (more on a laptop that "
    "throttles). Compare the ratios within one run, never cells across runs, and repeat a run before drawing "
    "a conclusion from a difference under ~1.3x."
)


def noise_summary(spreads: dict[str, dict[str, float]]) -> str:
    """One line: how much the rounds of one cell varied in this run (median and worst cell)."""
    cells = [(spread, name, op) for name, by_op in spreads.items() for op, spread in by_op.items()]
    if not cells:
        return "Noise in this run: not measured."
    cells.sort()
    worst, name, op = cells[-1]
    median = cells[len(cells) // 2][0]
    return (
        f"Noise in this run: the rounds of one cell spread by {median:.0%} (interquartile range / median, "
        f"median over the cells); worst {worst:.0%} ({name}, {OP_TITLES.get(op, op)})."
    )


def format_table(
    results: dict[str, dict[str, float]], ops: Sequence[str] = OPS, spreads: dict[str, dict[str, float]] | None = None
) -> str:
    """Rows: implementations; columns: ns/op and, in brackets, the ratio to the row's reference.

    See :data:`RATIO_LEGEND`; the table ends with the legend and the noise
    warning (with this run's measured spread when ``spreads`` is given).
    """
    headers = ["implementation", *[OP_TITLES[op] for op in ops]]
    rows = []
    for name, by_op in results.items():
        impl = IMPLEMENTATIONS_BY_NAME.get(name)
        ref_name = reference_for(impl) if impl is not None else "memorystore-c"
        if ref_name not in results:  # no compiled core: compare with the pure twin
            ref_name = ref_name.replace("-c", "-py", 1)
        reference = results.get(ref_name, {})
        row = [name]
        for op in ops:
            ns = by_op.get(op)
            if ns is None:
                row.append("-")
                continue
            ref = reference.get(op)
            ratio = f" ({ns / ref:.2f}x)" if ref and name != ref_name else ""
            row.append(_fmt_ns(ns) + ratio)
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(headers), line(["-" * w for w in widths]), *[line(r) for r in rows]]
    out.append("ns/op: the median of the timed rounds, the implementations' rounds interleaved. " + RATIO_LEGEND)
    out.append(NOISE_WARNING)
    if spreads is not None:
        out.append(noise_summary(spreads))
    return "\n".join(out)


def plot(results: dict[str, dict[str, float]], path: str, ops: Sequence[str] = OPS) -> None:
    """A grouped bar chart (log scale ns/op), one group per operation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(ops)), 5))
    for i, name in enumerate(names):
        xs = [j + i * width for j, op in enumerate(ops) if op in results[name]]
        ys = [results[name][op] for op in ops if op in results[name]]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ops))], [OP_TITLES[op] for op in ops])
    ax.set_yscale("log")
    ax.set_ylabel("ns per operation (log)")
    ax.set_title("memorystore vs peers (lower is better)")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m memorystore bench",
        description="Time memorystore's core against the installed peers (ns per operation).",
    )
    parser.add_argument("--quick", action="store_true", help="small cache (10k) and few ops: under a minute")
    parser.add_argument("--ops", type=int, default=None, metavar="N", help="operations timed per (implementation, op)")
    parser.add_argument(
        "--capacity", type=int, default=None, metavar="N", help="cache capacity (default 100000, quick 10000)"
    )
    parser.add_argument("--plot", metavar="FILE.png", help="write a grouped bar chart (needs matplotlib)")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated implementation names (default: all installed)")
    parser.add_argument("--list", action="store_true", help="list the implementations and whether they are installed")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="?",
        const=2,
        default=None,
        metavar="N",
        help="instead: ops/s of 1 vs N threads (default 2) on per-thread and shared caches and stores",
    )
    return parser


def _selected(only: str | None) -> Iterator[Impl]:
    wanted = None if only is None else {name.strip() for name in only.split(",") if name.strip()}
    if wanted is not None and (unknown := wanted - set(IMPLEMENTATIONS_BY_NAME)):
        raise SystemExit(f"unknown implementation(s): {', '.join(sorted(unknown))}")
    for impl in IMPLEMENTATIONS:
        if wanted is None or impl.name in wanted:
            yield impl


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m memorystore bench``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.threads is not None:
        from . import _bench_threads

        if args.threads < 2:
            print("--threads must be >= 2", file=sys.stderr)
            return 2
        ops = args.ops or (200_000 if args.quick else 1_000_000)
        return _bench_threads.main(args.threads, ops, repeat=2 if args.quick else 3)
    if args.list:
        for impl in IMPLEMENTATIONS:
            print(f"{impl.name:24} {'installed' if available(impl) else 'not installed'}")
        return 0
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib: pip install matplotlib", file=sys.stderr)
            return 2
    capacity = args.capacity or (10_000 if args.quick else 100_000)
    total_ops = args.ops or (20_000 if args.quick else 200_000)
    if capacity < 2 or total_ops < 1:
        print("--capacity must be >= 2 and --ops >= 1", file=sys.stderr)
        return 2
    impls = [impl for impl in _selected(args.only) if available(impl)]
    missing = [impl.name for impl in _selected(args.only) if impl not in impls]
    steps = sum(impl.supports(op) for impl in impls for op in OPS)
    progress = Progress(steps)
    spreads: dict[str, dict[str, float]] = {}
    results = run_comparison(impls, capacity=capacity, total_ops=total_ops, progress=progress, spreads=spreads)
    progress.finish()
    from . import COMPILED

    print(
        f"memorystore bench: capacity {capacity}, {total_ops} ops per cell, core {'compiled' if COMPILED else 'pure'}, Python {sys.version.split()[0]}"
    )
    print(format_table(results, spreads=spreads))
    if missing:
        print(f"not installed (skipped): {', '.join(missing)}")
    if args.plot:
        plot(results, args.plot)
        print(f"plot written to {args.plot}")
    bad = [f"{name} {op}" for name, by_op in results.items() for op, ns in by_op.items() if not math.isfinite(ns)]
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
