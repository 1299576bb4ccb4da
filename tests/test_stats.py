"""stats() and reset_stats() (issue 14, SPEC "stats()"), on both cores, MemoryStore and the async facade.

Each kind of operation is run on a prepared cache and the counters it moved
are compared with what the SPEC says it counts; every other counter must stay
put.  The state machines check the same counters on random sequences.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from memorystore import SharedMemoryStore
from memorystore._stats import CacheStats, SharedStats, StoreStats

COUNTERS = (
    "hits",
    "misses",
    "expired",
    "writes",
    "evictions",
    "evicted_unread",
    "expirations",
    "deletions",
    "rejected",
)


def counters(stats: Any) -> dict[str, int]:
    return {name: getattr(stats, name) for name in COUNTERS}


def prepared(lru_impl: ModuleType, timer: Any) -> Any:
    """maxsize 4 (sizes by len), holding live "a" (read), "b" (unread), and "old", expired."""
    cache = lru_impl.LRUCache(4, getsizeof=len, timer=timer, eviction="protect")
    cache.set("old", "x", ttl=5)
    cache.set("a", "x")
    cache.set("b", "x")
    cache.get("a")
    timer.advance(5)
    cache.reset_stats()
    return cache


# (operation, the counters it moves); every operation runs on prepared().
OPERATIONS: list[tuple[str, Callable[[Any], Any], dict[str, int]]] = [
    ("get hit", lambda c: c.get("a"), {"hits": 1}),
    ("get absent", lambda c: c.get("zz"), {"misses": 1}),
    ("get expired", lambda c: c.get("old"), {"misses": 1, "expired": 1}),
    ("[] hit", lambda c: c["b"], {"hits": 1}),
    ("[] absent", lambda c: pytest.raises(KeyError, c.__getitem__, "zz"), {"misses": 1}),
    ("peek hit", lambda c: c.peek("b"), {"hits": 1}),
    ("peek expired", lambda c: c.peek("old"), {"misses": 1, "expired": 1}),
    ("in", lambda c: ("a" in c, "old" in c, "zz" in c), {}),
    ("touch", lambda c: (c.touch("b"), c.touch("old"), c.touch("zz")), {}),
    ("remaining/len/iterate", lambda c: (c.remaining("a"), len(c), list(c), c.entries()), {}),
    ("set new", lambda c: c.set("n", "x"), {"writes": 1}),
    ("set over live", lambda c: c.set("a", "y"), {"writes": 1}),
    ("set over expired", lambda c: c.set("old", "y"), {"writes": 1, "expirations": 1}),
    ("set ttl 0 over live", lambda c: c.set("a", "y", ttl=0), {"deletions": 1}),
    ("set ttl 0 over expired", lambda c: c.set("old", "y", ttl=0), {"expirations": 1}),
    ("set ttl 0 over nothing", lambda c: c.set("zz", "y", ttl=0), {}),
    ("too large", lambda c: c.set("zz", "y" * 5), {"rejected": 1}),
    ("too large over live", lambda c: c.set("a", "y" * 5), {"rejected": 1, "deletions": 1}),
    ("add refused", lambda c: c.put("a", "y", only_if_absent=True), {}),
    # the size-3 write needs room: "old" expires first, then unread "b" is evicted
    ("evict unread", lambda c: c.set("n", "xxx"), {"writes": 1, "expirations": 1, "evictions": 1, "evicted_unread": 1}),
    # room for size 4: everything goes, "a" was read
    (
        "evict read too",
        lambda c: c.set("n", "xxxx"),
        {"writes": 1, "expirations": 1, "evictions": 2, "evicted_unread": 1},
    ),
    ("pop live", lambda c: c.pop("a"), {"deletions": 1}),
    ("del live", lambda c: c.__delitem__("b"), {"deletions": 1}),
    ("pop expired or absent", lambda c: (c.pop("old", None), c.pop("zz", None)), {}),
    ("pop_expired", lambda c: (c.pop_expired("old"), c.pop_expired("a")), {"expirations": 1}),
    ("expire", lambda c: c.expire(), {"expirations": 1}),
    ("purge", lambda c: c.purge(), {"expirations": 1}),
    ("clear", lambda c: c.clear(), {"deletions": 2, "expirations": 1}),
]


@pytest.mark.parametrize(("operation", "expected"), [pytest.param(op, exp, id=name) for name, op, exp in OPERATIONS])
def test_counters_after_each_kind_of_operation(
    lru_impl: ModuleType, fake_timer: Any, operation: Callable[[Any], Any], expected: dict[str, int]
) -> None:
    cache = prepared(lru_impl, fake_timer)
    assert counters(cache.stats()) == dict.fromkeys(COUNTERS, 0)
    operation(cache)
    cache.check_invariants()
    assert counters(cache.stats()) == {**dict.fromkeys(COUNTERS, 0), **expected}


def test_stats_is_a_typed_immutable_record(lru_impl: ModuleType, fake_timer: Any) -> None:
    cache = prepared(lru_impl, fake_timer)
    stats = cache.stats()
    assert type(stats) is CacheStats
    assert stats._fields == (*COUNTERS, "length", "size", "maxsize")
    with pytest.raises(AttributeError):
        stats.hits = 5  # type: ignore[misc]
    assert stats == cache.stats()  # reading changes nothing


def test_length_and_size_are_the_live_entries(lru_impl: ModuleType, fake_timer: Any) -> None:
    cache = lru_impl.LRUCache(100, getsizeof=len, timer=fake_timer)
    cache.set("short", "x" * 10, ttl=1)
    cache.set("long", "x" * 7, ttl=100)
    cache.set("forever", "x" * 3)
    assert cache.stats()[-3:] == (3, 20, 100)
    fake_timer.advance(1)
    assert cache.currsize == 20  # the expired entry is still held...
    assert cache.stats()[-3:] == (2, 10, 100)  # ...but stats() reports the live ones
    assert lru_impl.LRUCache().stats().maxsize is None


def test_reset_stats_zeroes_the_counters_only(lru_impl: ModuleType, fake_timer: Any) -> None:
    cache = prepared(lru_impl, fake_timer)
    cache.get("a")
    cache.get("old")
    cache.set("n", "x")
    assert counters(cache.stats()) != dict.fromkeys(COUNTERS, 0)
    cache.reset_stats()
    stats = cache.stats()
    assert counters(stats) == dict.fromkeys(COUNTERS, 0)
    assert (stats.length, stats.size) == (3, 3)
    cache.get("a")
    assert cache.stats().hits == 1


def test_every_entry_in_is_counted_out(lru_impl: ModuleType, fake_timer: Any) -> None:
    """Unique keys, no expiry, no deletion: every write is one entry that is evicted or still held."""
    cache = lru_impl.LRUCache(10, timer=fake_timer, eviction="protect")
    for n in range(5000):
        cache[n] = n
        cache.get(n - n % 7)  # every 7th entry is read again
    stats = cache.stats()
    assert stats.writes == 5000 == stats.evictions + stats.length
    assert stats.hits + stats.misses == 5000
    read_again = sum(1 for n in range(5000) if n % 7 == 0)
    assert stats.evicted_unread == stats.evictions - (read_again - sum(1 for key in cache if key % 7 == 0))


# -- MemoryStore ------------------------------------------------------------------------------------


STORE_COUNTERS = ("hits", "misses", "expired", "stale", *COUNTERS[3:])


def store_counters(stats: Any) -> dict[str, int]:
    return {name: getattr(stats, name) for name in STORE_COUNTERS}


@pytest.mark.parametrize("stale", [False, True])
def test_store_stats(make: Callable[..., Any], fake_timer: Any, stale: bool) -> None:
    disposed: list[str] = []
    store = make(max=3, ttl=10, stale=stale, dispose=lambda sid, s, why: disposed.append(why))
    store.set("a", {"n": 1})
    store.set("b", {"n": 2})
    assert store.get("a") == {"n": 1}
    assert store.get("nope") is None
    store.set("c", {"n": 3}, ttl=1)
    fake_timer.advance(1)
    assert store.get("c") == ({"n": 3} if stale else None)  # expired: a miss, removed
    store.set("d", {}, ttl=20)
    store.set("e", {}, ttl=20)  # evicts b, never read
    store.destroy(["a", "zz"])
    assert "a" not in store
    store.touch("d")
    stats = store.stats()
    # A shared store's stats() adds host-wide recoveries to the same fields.
    assert type(stats) is (SharedStats if isinstance(store, SharedMemoryStore) else StoreStats)
    assert store_counters(stats) == {
        "hits": 1,
        "misses": 2,
        "expired": 1,
        "stale": 1 if stale else 0,
        "writes": 5,
        "evictions": 1,
        "evicted_unread": 1,
        "expirations": 1,
        "deletions": 1,
        "rejected": 0,
    }
    assert (stats.length, stats.size, stats.maxsize) == (2, 2, 3)
    assert disposed == ["expire", "evict", "delete"]
    store.reset_stats()
    assert store_counters(store.stats()) == dict.fromkeys(STORE_COUNTERS, 0)
    assert store.stats().length == 2


def test_store_counts_rejected_sessions(make: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    disposed: list[tuple[str, str]] = []
    store = make(max=20, length=lambda value, sid: len(value), dispose=lambda sid, s, why: disposed.append((sid, why)))
    store.set("small", {"a": 1})
    with caplog.at_level(logging.DEBUG, logger="memorystore"):
        store.set("big", {"data": "x" * 100})
        store.set("small", {"data": "x" * 100})  # the old value goes, the new one is not stored
    stats = store.stats()
    assert (stats.rejected, stats.deletions, stats.writes) == (2, 1, 1)
    assert disposed == [("small", "set")]  # a rejected value never entered: not disposed
    assert store.length() == 0
    assert "xxxx" not in caplog.text and "big" not in caplog.text


def test_a_too_large_write_is_counted_and_logged_once_whichever_path(
    make: Callable[..., Any], fake_timer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """set, add and load each hand the core one value it rejects: one count each, one WARNING a minute."""
    store = make(max=10, length=lambda value, sid: len(value))
    big = {"data": "x" * 20}

    def warnings() -> int:
        return sum("not stored" in r.getMessage() for r in caplog.records if r.name == "memorystore")

    with caplog.at_level(logging.WARNING, logger="memorystore"):
        store.set("a", big)
        assert (store.stats().rejected, warnings()) == (1, 1)
        assert store.add("b", big) is True  # nothing live there: "added", and not kept
        store.set("small", 1)
        assert store.add("small", big) is False  # a live entry: refused before any size rule
        store.load([("c", '"' + "z" * 30 + '"', 100)])
        assert (store.stats().rejected, warnings()) == (3, 1)  # within the minute: counted, not logged again
        fake_timer.advance(60)
        store.set("d", big, ttl=0)  # a removal, not a write: neither counted nor logged
        assert (store.stats().rejected, warnings()) == (3, 1)
        store.set("d", big)
        assert (store.stats().rejected, warnings()) == (4, 2)
    assert store.ids() == ["small"]


def test_reads_of_impossible_sids_are_not_counted(make: Callable[..., Any]) -> None:
    store = make()
    assert store.get("") is None and store.get("x" * 1025) is None
    assert "" not in store
    assert (store.stats().hits, store.stats().misses) == (0, 0)


def test_store_size_counts_the_length_option(make: Callable[..., Any]) -> None:
    store = make(max=1000, length=lambda value, sid: len(value))
    store.set("a", {"k": "v"})
    store.set("b", [1, 2, 3])
    assert store.stats().size == len('{"k": "v"}') + len("[1, 2, 3]")


def test_async_facade_stats(store_cls: type, fake_timer: Any) -> None:
    from memorystore.aio import AsyncMemoryStore

    async def main() -> tuple[Any, Any]:
        async with AsyncMemoryStore(store_cls(timer=fake_timer)) as sessions:
            await sessions.set("a", {"n": 1})
            await sessions.get("a")
            await sessions.get("b")
            before = await sessions.stats()
            await sessions.reset_stats()
            return before, await sessions.stats()

    before, after = asyncio.run(main())
    assert (before.writes, before.hits, before.misses, before.length) == (1, 1, 1, 1)
    assert (after.writes, after.hits, after.misses, after.length) == (0, 0, 0, 1)
