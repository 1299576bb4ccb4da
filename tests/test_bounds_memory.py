"""Bounds and memory (issue #6, hazards H3, D4, E2), for both cores.

- A flood of 100 x ``max`` new sessions keeps ``len <= max`` at every step,
  and once the store is full its traced memory stays flat.
- 50k set/get/destroy cycles leave traced memory where it started.
- Reference counts: every success and error path of the core gives back
  exactly the references it took (``sys.getrefcount`` on a release build;
  the debug-build ``sys.gettotalrefcount`` variant needs a debug CPython).

tracemalloc sees the compiled core's arrays too: it allocates with
``PyMem_Malloc`` (test_lru_reentrancy's ``clear`` test checks that).
"""

from __future__ import annotations

import gc
import math
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture
def store_cls(lru_impl: ModuleType) -> type:
    """These tests measure one core's memory: MemoryStore on the core under test (not the shared store)."""
    from memorystore.store import MemoryStore

    return type(
        f"MemoryStore_{lru_impl.__name__.rsplit('.', 1)[-1]}", (MemoryStore,), {"_core_class": lru_impl.LRUCache}
    )


class Clock:
    """A fake monotonic clock."""

    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time


@contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """Start tracemalloc (if it is not running); yield a function giving the traced bytes now."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[0]
    finally:
        if started:
            tracemalloc.stop()


# -- the bound under a flood --------------------------------------------------------------


@pytest.mark.slow
def test_flood_of_new_sessions_keeps_the_bound_and_memory_flat(store_cls: type, lru_impl: ModuleType) -> None:
    max_sessions = 500
    evicted = [0]

    def dispose(sid: str, session: Any, reason: str) -> None:
        assert reason == "evict" and session["sid"] == sid
        evicted[0] += 1

    with traced() as now:
        gc.collect()
        base = now()
        store = store_cls(max=max_sessions, ttl=3600, dispose=dispose, timer=Clock())
        serial = 0

        def fill() -> None:
            nonlocal serial
            for _ in range(max_sessions):
                sid = f"sid-{serial:09d}"  # all the same length: same-sized strings
                store.set(sid, {"sid": sid, "user": serial % 997, "data": "x" * 40})
                serial += 1
                assert len(store) <= max_sessions

        fill()
        gc.collect()
        first = now() - base
        after: list[int] = []  # traced bytes after each further fill
        for _ in range(99):
            fill()
            gc.collect()
            after.append(now() - base)
    assert len(store) == max_sessions
    assert evicted[0] == 99 * max_sessions
    store.check_invariants()
    assert first > max_sessions * 100, f"the first fill traced only {first} bytes"
    # The pure core's expiry heap drops stale items lazily (it is swept when it
    # exceeds twice the live count), so its footprint saw-tooths within a fixed
    # envelope; the envelope is set by the first 10 fills and must then hold.
    envelope = max([first, *after[:9]])
    assert max(after[9:]) < 1.05 * envelope, f"memory left its envelope of {envelope} bytes: {after[9::10]}"
    if lru_impl.__name__ == "memorystore._lru":
        growth = max(after) - first
        assert growth < 0.05 * first, f"memory grew by {growth} bytes after the first fill of {first} bytes"


@pytest.mark.slow
def test_set_get_destroy_cycles_leave_nothing_behind(store_cls: type, lru_impl: ModuleType) -> None:
    clock = Clock()
    store = store_cls(max=64, ttl=60, timer=clock)
    for i in range(32):  # residents, so the cycles run in a non-empty store
        store.set(f"resident-{i}", {"i": i}, ttl=math.inf)

    def cycles(count: int, offset: int) -> None:
        for i in range(offset, offset + count):
            sid = f"cycle-{i}"
            store.set(sid, {"sid": sid, "payload": [i, "y" * (i % 50)]})
            session = store.get(sid)
            assert session is not None and session["sid"] == sid
            store.touch(sid)
            store.destroy(sid)
            if i % 97 == 0:  # expiry paths too: an entry that expires and is pruned
                store.set(sid, {"sid": sid}, ttl=1)
                clock.time += 1
                assert store.prune() == 1

    # The pure core's expiry heap keeps items of removed entries (small lists,
    # no key or value) until it is swept at 2 x live + _HEAP_SLACK items.
    allowance = 4096
    if lru_impl.__name__ == "memorystore._lru_py":
        allowance += (2 * (len(store) + 1) + lru_impl._HEAP_SLACK) * 160
    with traced() as now:
        cycles(2000, 0)  # warm-up: free lists, lazily built tables
        gc.collect()
        base = now()
        left = []
        for chunk in range(10):
            cycles(5000, 2000 + 5000 * chunk)
            gc.collect()
            left.append(now() - base)
    assert len(store) == 32
    store.check_invariants()
    assert max(map(abs, left)) < allowance, f"set/get/destroy cycles left bytes behind, every 5000: {left}"


# -- reference counts on success and error paths --------------------------------------------


class Key:
    """A hashable key object with a constant hash (compares by identity of its tag)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __hash__(self) -> int:
        return 12345

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.tag == self.tag


class RaisingEqKey(Key):
    """Same hash as every ``Key``: a lookup compares, and the comparison raises."""

    __hash__ = Key.__hash__

    def __eq__(self, other: object) -> bool:
        raise ArithmeticError("no comparisons")


def counts(*objects: object) -> tuple[int, ...]:
    return tuple(sys.getrefcount(obj) for obj in objects)


def check_refcounts(core: ModuleType, key: Any, value: Any) -> None:
    """Every operation takes and gives back exactly the references it should."""
    clock = Clock()
    cache = core.LRUCache(maxsize=3, timer=clock)
    other_value = object()
    absent = counts(key, value)

    def same(state: tuple[int, ...], what: str) -> None:
        got = counts(key, value)
        assert got == state, f"{what}: refcounts (key, value) {got}, expected {state}"

    # put / read paths
    assert not cache.put(key, value)
    held = counts(key, value)
    assert held[1] > absent[1]
    cache.get(key)
    same(held, "get")
    cache[key]
    same(held, "getitem")
    cache.peek(key)
    same(held, "peek")
    assert key in cache
    same(held, "contains")
    assert cache.touch(key, ttl=10) is True
    same(held, "touch")
    cache.remaining(key)
    same(held, "remaining")
    cache.entries(), cache.items(), cache.keys(), cache.values(), list(cache)
    same(held, "views")
    assert cache.pop(key) is value
    same(absent, "pop")

    # expire / pop_expired
    cache.put(key, value, ttl=1)
    clock.time += 1
    assert cache.get(key) is None
    same(held, "get of an expired entry (still held)")
    assert cache.expire() == [(key, value)]
    same(absent, "expire")
    cache.set(key, value, ttl=1)
    clock.time += 1
    assert cache.pop_expired(key) is value
    same(absent, "pop_expired")

    # evict, overwrite, ttl <= 0, clear, del
    cache.set(key, value)
    removed = [cache.put(("k", i), i) for i in range(3)]
    assert any(r for r in removed)
    del removed
    same(absent, "evict")
    cache.set(key, value)
    cache.set(key, other_value)
    same((held[0], absent[1]), "overwrite")
    cache.clear()
    same(absent, "clear after overwrite")
    cache.set(key, value)
    cache.set(key, value, ttl=0)
    same(absent, "set with ttl 0")
    cache.set(key, value)
    cache.clear()
    same(absent, "clear")
    cache[key] = value
    del cache[key]
    same(absent, "del")

    # failing calls leave the counts alone (stored and not stored)
    failing: list[tuple[str, Callable[[], Any], type[BaseException]]] = [
        ("unhashable key", lambda: cache.put([key], value), TypeError),
        ("unhashable key get", lambda: cache.get([key]), TypeError),
        ("NaN ttl", lambda: cache.put(key, value, ttl=math.nan), ValueError),
        ("str ttl", lambda: cache.set(key, value, ttl="10"), TypeError),
        ("bool ttl", lambda: cache.put(key, value, ttl=True), TypeError),
        ("huge ttl", lambda: cache.put(key, value, ttl=10**400), ValueError),
        ("negative size", lambda: cache.put(key, value, size=-1), ValueError),
        ("float size", lambda: cache.put(key, value, size=1.5), TypeError),
        ("touch NaN ttl", lambda: cache.touch(key, ttl=math.nan), ValueError),
        ("pop absent", lambda: cache.pop(("absent",)), KeyError),
        ("getitem absent", lambda: cache[("absent",)], KeyError),
    ]
    for stored in (False, True):
        if stored:
            cache.set(key, value)
        state = counts(key, value)
        for what, call, error in failing:
            for _ in range(3):
                try:
                    call()
                except error:
                    pass
                else:
                    pytest.fail(f"{what}: no {error.__name__}")
            same(state, f"{what} (stored={stored})")
    cache.clear()
    same(absent, "clear after failures")

    # a key whose __eq__ raises, against a stored key of the same hash
    if isinstance(key, Key):
        cache.set(key, value)
        state = counts(key, value)
        bad = RaisingEqKey("bad")
        bad_state = sys.getrefcount(bad)
        for call in (
            lambda: cache.get(bad),
            lambda: cache.put(bad, value),
            lambda: cache.pop(bad, None),
            lambda: cache.touch(bad),
            lambda: bad in cache,
        ):
            try:
                call()
            except ArithmeticError:
                pass
            else:
                pytest.fail("the raising __eq__ was never called")
            same(state, "raising __eq__")
            assert sys.getrefcount(bad) == bad_state
        cache.check_invariants()
        cache.clear()
        same(absent, "clear after raising __eq__")
    cache.check_invariants()


@pytest.mark.parametrize("key_kind", ["str", "object"])
def test_refcounts_return_to_baseline(lru_impl: ModuleType, key_kind: str) -> None:
    key: Any = "".join(["ses", "sion-key"]) if key_kind == "str" else Key("session-key")  # not interned
    value = object()
    check_refcounts(lru_impl, key, value)
    gc.collect()
    check_refcounts(lru_impl, key, value)  # twice: no first-call-only caching hides a leak


def test_refcount_check_can_fail(lru_impl: ModuleType) -> None:
    """The check notices a leaked reference (a cache subclass that keeps every value it is given)."""
    kept: list[Any] = []

    class Leaky:
        """The real cache, except that ``pop`` keeps what it returns."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._cache = lru_impl.LRUCache(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cache, name)

        def __contains__(self, key: Any) -> bool:
            return key in self._cache

        def __getitem__(self, key: Any) -> Any:
            return self._cache[key]

        def __setitem__(self, key: Any, value: Any) -> None:
            self._cache[key] = value

        def __delitem__(self, key: Any) -> None:
            del self._cache[key]

        def __iter__(self) -> Iterator[Any]:
            return iter(self._cache)

        def pop(self, key: Any, *default: Any) -> Any:
            result = self._cache.pop(key, *default)
            kept.append(result)
            return result

    fake_core = type(sys)("fake_core")
    fake_core.LRUCache = Leaky  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match="pop"):
        check_refcounts(fake_core, "".join(["k", "ey"]), object())
