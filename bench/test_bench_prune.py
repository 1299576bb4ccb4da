"""Prune benchmarks: removing k expired entries out of n costs O(k), not O(n).

For n in 10k, 100k, 1M and k in 0, 1%, 50% of n, each round builds a cache
(untimed) holding k "old" entries that have expired and n - k "young" ones
that have not, then times ONE call of the implementation's own prune:

``memorystore-*``      ``LRUCache.expire()`` (fake timer)
``MemoryStore``        ``MemoryStore.prune()`` (fake timer)
``cachetools.*``       ``TTLCache.expire()`` / ``TLRUCache.expire()`` (``timer=``, fake)
``cachebox.*``         ``TTLCache.expire()`` / ``VTTLCache.expire()``: cachebox takes no
                       timer, so the build waits in real time (a bounded sleep)
                       until the old entries are past their deadline while the
                       young ones are not
``cachelib.SimpleCache`` ``_remove_expired(now)``, the expiry half of ``_prune``
                       (the other half evicts by threshold), with a "now" past
                       the old entries' deadline: SimpleCache reads ``time()``
                       itself and keeps whole-second deadlines

The build is "two phase" for everyone, as TTL caches with one global ttl
need: old entries are inserted, the clock moves half a ttl, the young ones
are inserted, the clock moves past the old deadline.  Every round checks that
exactly k entries were removed and n - k remain.

``extra_info``: ``ns_per_op`` = ns per prune call, ``ns_per_expired`` = ns per
removed entry (k > 0).  The 1M cases are marked ``slow`` and skipped in the
smoke run (``--benchmark-disable``) unless ``MEMORYSTORE_BENCH_1M=1``.

Targets (issue #5): per expired entry <= cachebox.TTLCache; 1M with nothing
expired < 10 us.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from memorystore._bench import KeyPool

TTL = 100.0


class FakeTimer:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


@dataclass
class Built:
    """A cache with k expired of n entries, and how to prune it and count what it holds."""

    cache: Any
    prune: Callable[[], Any]
    held: Callable[[], int]  # entries held, expired ones included
    removed: Callable[[Any, int], int]  # (prune's result, held before) -> entries removed
    collected: bool = False  # the build already ran gc.collect() (real-time builds, inside their window)


def _fill(cache: Any, keys: list[str], value: Any) -> None:
    for key in keys:
        cache[key] = value


def _by_len(result: Any, before: int) -> int:
    return len(result)


def _two_phase_fake(
    make: Callable[[FakeTimer], Any], held: Callable[[Any], int]
) -> Callable[[list[str], list[str]], Built]:
    """old at t, young at t + ttl/2, prune at t + ttl + 1 (fake clock)."""

    def build(old: list[str], young: list[str]) -> Built:
        timer = FakeTimer()
        cache = make(timer)
        _fill(cache, old, 1)
        timer.advance(TTL / 2)
        _fill(cache, young, 2)
        timer.advance(TTL / 2 + 1)
        return Built(cache, cache.expire, lambda: held(cache), _by_len)

    return build


def _memorystore_core(module: str) -> Callable[[list[str], list[str]], Built]:
    def make(timer: FakeTimer) -> Any:
        return __import__(module, fromlist=["LRUCache"]).LRUCache(ttl=TTL, timer=timer)

    return _two_phase_fake(make, lambda cache: cache.currsize)


def _memorystore_core_purge(module: str) -> Callable[[list[str], list[str]], Built]:
    """The same build, pruned with purge(): nothing handed back, as the peers' expire()."""
    build_expire = _memorystore_core(module)

    def build(old: list[str], young: list[str]) -> Built:
        built = build_expire(old, young)
        return Built(built.cache, built.cache.purge, built.held, lambda result, before: result)

    return build


def _memorystore_store(old: list[str], young: list[str]) -> Built:
    from memorystore import MemoryStore

    timer = FakeTimer()
    store = MemoryStore(ttl=TTL, serializer=None, timer=timer)
    for sid in old:
        store.set(sid, 1)
    timer.advance(TTL / 2)
    for sid in young:
        store.set(sid, 2)
    timer.advance(TTL / 2 + 1)
    return Built(store, store.prune, lambda: store.core.currsize, lambda result, before: result)


def _cachetools(cls: str) -> Callable[[list[str], list[str]], Built]:
    def make(timer: FakeTimer) -> Any:
        import cachetools

        if cls == "TTLCache":
            return cachetools.TTLCache(float("inf"), TTL, timer=timer)
        return cachetools.TLRUCache(float("inf"), lambda _k, _v, now: now + TTL, timer=timer)

    # len() and currsize expire first in cachetools' TTL caches: count the raw storage
    return _two_phase_fake(make, lambda cache: len(cache._Cache__data))


def _cachebox(cls: str) -> Callable[[list[str], list[str]], Built]:
    """Real time: cachebox has no timer.  old at t0, young after a gap, prune inside the gap."""

    def build(old: list[str], young: list[str]) -> Built:
        import cachebox

        n = len(old) + len(young)
        gap = max(0.25, n * 1e-6)  # the prune must fit in here: young entries expire a gap after the old
        ttl = 2 * gap + n * 2e-6  # both phases are inserted before the old entries expire
        if cls == "TTLCache":
            cache = cachebox.TTLCache(0, ttl if old else 3600.0)
            insert = cache.insert
        else:
            cache = cachebox.VTTLCache(0)
            insert = lambda key, value: cache.insert(key, value, ttl if old else 3600.0)  # noqa: E731
        start = time.perf_counter()
        for key in old:
            insert(key, 1)
        old_done = time.perf_counter()
        if old:
            time.sleep(gap)
        for key in young:
            insert(key, 2)
        gc.collect()  # here, before the wait, not in the window the prune needs
        if old:
            assert time.perf_counter() < start + ttl, "cachebox build too slow for its ttl"
            time.sleep(max(0.0, old_done + ttl - time.perf_counter()) + 0.002)

        def expire() -> None:
            cache.expire()

        return Built(cache, expire, lambda: len(cache), lambda _result, before: before - len(cache), collected=True)

    return build


def _cachelib(old: list[str], young: list[str]) -> Built:
    import cachelib

    cache = cachelib.SimpleCache(threshold=len(old) + len(young) + 1)
    for key in old:
        cache.set(key, 1, timeout=int(TTL))
    for key in young:
        cache.set(key, 2, timeout=int(100 * TTL))
    now = time.time() + 10 * TTL  # past the old deadlines, before the young ones

    def prune() -> None:
        cache._remove_expired(now)

    return Built(cache, prune, lambda: len(cache._cache), lambda _result, before: before - len(cache._cache))


SUBJECTS: dict[str, tuple[str, Callable[[list[str], list[str]], Built]]] = {
    "memorystore-c-ttl": ("memorystore._lru", _memorystore_core("memorystore._lru")),
    "memorystore-c-ttl-purge": ("memorystore._lru", _memorystore_core_purge("memorystore._lru")),
    "memorystore-py-ttl": ("memorystore._lru_py", _memorystore_core("memorystore._lru_py")),
    "MemoryStore": ("memorystore.store", _memorystore_store),
    "cachebox.TTLCache": ("cachebox", _cachebox("TTLCache")),
    "cachebox.VTTLCache": ("cachebox", _cachebox("VTTLCache")),
    "cachetools.TTLCache": ("cachetools", _cachetools("TTLCache")),
    "cachetools.TLRUCache": ("cachetools", _cachetools("TLRUCache")),
    "cachelib.SimpleCache": ("cachelib", _cachelib),
}
OWN = {"memorystore._lru", "memorystore._lru_py", "memorystore.store"}


def _subject_params() -> list[Any]:
    return [
        pytest.param(name, id=name, marks=[pytest.mark.c_extension] if module == "memorystore._lru" else [])
        for name, (module, _build) in SUBJECTS.items()
    ]


def _size_params() -> list[Any]:
    sizes = []
    for n in (10_000, 100_000, 1_000_000):
        for fraction, label in ((0.0, "0"), (0.01, "1%"), (0.5, "50%")):
            marks = [pytest.mark.slow] if n >= 1_000_000 else []
            sizes.append(pytest.param(n, fraction, id=f"n={n // 1000}k-k={label}", marks=marks))
    return sizes


@pytest.mark.parametrize(("n", "fraction"), _size_params())
@pytest.mark.parametrize("subject", _subject_params())
def test_prune(
    bench: Any, benchmark: Any, subject: str, n: int, fraction: float, key_pool: KeyPool, smoke: bool
) -> None:
    module, build = SUBJECTS[subject]
    if module in OWN:
        __import__(module)
    else:
        pytest.importorskip(module)
    if n >= 1_000_000 and smoke and not os.environ.get("MEMORYSTORE_BENCH_1M"):
        pytest.skip("1M-entry prune: set MEMORYSTORE_BENCH_1M=1 to run it in the smoke run")
    k = int(n * fraction)
    keys = key_pool.take(n)
    old, young = keys[:k], keys[k:n]
    current: list[tuple[Built, int]] = []

    def verify() -> None:
        """The previous round removed exactly k entries and kept the n - k young ones.

        For the real-time (cachebox) builds this also proves the prune ran inside
        the window where the old entries had expired and the young had not.
        """
        if not current:
            return
        built, before = current[0]
        assert before == n, f"{subject}: {before} entries held before the prune, expected {n}"
        assert built.removed(result[0], before) == k, (
            f"{subject}: removed {built.removed(result[0], before)}, expected {k}"
        )
        assert built.held() == n - k, f"{subject}: {built.held()} entries left, expected {n - k}"

    result: list[Any] = [None]

    def run(built: Built) -> None:
        result[0] = built.prune()

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        verify()
        if k == 0 and current:  # nothing expires: prune the same cache again
            return (current[0][0],), {}
        current.clear()
        gc.collect()
        built = build(old, young)
        current.append((built, built.held()))
        # A store lives long: move the new cache into the oldest GC generation now
        # (untimed), or the prune's own allocations trigger young collections
        # that traverse the whole just-built cache and are billed to the prune.
        if not built.collected:
            gc.collect()
        return (built,), {}

    timed_rounds = bench.rounds() if k == 0 else 3
    benchmark.group = f"prune n={n}"
    benchmark.pedantic(run, setup=setup, rounds=timed_rounds, warmup_rounds=bench.WARMUP_ROUNDS if k == 0 else 0)
    verify()
    bench.record(benchmark, 1, impl=subject, op="prune", n=n, expired=k)
    if k and benchmark.stats is not None:
        benchmark.extra_info["ns_per_expired"] = round(benchmark.stats.stats.median * 1e9 / k, 2)
