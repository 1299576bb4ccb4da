"""Eviction policies (issue 14, SPEC "The core" ``eviction``), on both cores and on MemoryStore.

``"lru"``: the least recently used entry goes.  ``"protect"``: entries read
(get, [], touch) since they were created are protected; probation's least
recently used entry goes first while probation holds at least the reserve
(``PROBATION_SHARE`` of maxsize, at least 1), else protected's.  Expired
entries go first under both.  The state machines (test_lru_stateful.py,
test_store_stateful.py) check the same rules against a model on random
sequences; these tests pin each rule down by name.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from memorystore import _policy


@pytest.fixture
def make(lru_impl: ModuleType, fake_timer: Any) -> Callable[..., Any]:
    def make(maxsize: int | None = None, **options: Any) -> Any:
        options.setdefault("timer", fake_timer)
        options.setdefault("eviction", "protect")
        return lru_impl.LRUCache(maxsize, **options)

    return make


def evicted(removed: Any) -> list[Any]:
    return [key for key, _, reason in removed if reason == "evict"]


# -- the option ------------------------------------------------------------------------------------


def test_lru_is_the_core_default_and_protect_the_store_default(lru_impl: ModuleType, store_cls: type) -> None:
    assert lru_impl.LRUCache(3).eviction == "lru"
    assert lru_impl.LRUCache(3, eviction="protect").eviction == "protect"
    assert "eviction='protect'" in repr(lru_impl.LRUCache(3, eviction="protect"))
    store = store_cls(max=3)
    assert store.eviction == "protect" and store.core.eviction == "protect"
    assert store_cls(max=3, eviction="lru").core.eviction == "lru"


@pytest.mark.parametrize(
    ("eviction", "error"),
    [("LRU", ValueError), ("", ValueError), ("fifo", ValueError), (None, TypeError), (1, TypeError)],
)
def test_bad_eviction_is_refused(lru_impl: ModuleType, store_cls: type, eviction: Any, error: type) -> None:
    with pytest.raises(error, match="eviction"):
        lru_impl.LRUCache(3, eviction=eviction)
    with pytest.raises(error, match="eviction"):
        store_cls(max=3, eviction=eviction)


def test_both_cores_share_the_split(lru_impl: ModuleType) -> None:
    assert lru_impl.PROBATION_SHARE == _policy.PROBATION_SHARE
    assert 0 < _policy.PROBATION_SHARE < 1
    assert _policy.probation_reserve(None) == 1
    assert _policy.probation_reserve(1) == 1
    assert _policy.probation_reserve(1000) == int(1000 * _policy.PROBATION_SHARE)
    assert _policy.probation_reserve(2**70) == int((2**50 - 1) * _policy.PROBATION_SHARE)


# -- "protect" -------------------------------------------------------------------------------------


def test_unread_entries_go_before_read_ones(make: Callable[..., Any]) -> None:
    cache = make(4)
    for key in "abcd":
        cache[key] = key
    cache.get("a")  # a and b are protected, though least recently used
    cache.touch("b")
    assert evicted(cache.put("e", "e")) == ["c"]
    assert evicted(cache.put("f", "f")) == ["d"]
    assert cache.keys() == ["f", "e", "b", "a"]  # iteration stays most recently used first
    cache.check_invariants()


def test_lru_evicts_the_least_recently_used_whatever_was_read(make: Callable[..., Any]) -> None:
    cache = make(4, eviction="lru")
    for key in "abcd":
        cache[key] = key
    cache.get("a")
    cache.touch("b")
    assert evicted(cache.put("e", "e")) == ["c"]
    assert evicted(cache.put("f", "f")) == ["d"]
    assert evicted(cache.put("g", "g")) == ["a"]
    cache.check_invariants()


@pytest.mark.parametrize("read", ["get", "getitem", "touch"])
def test_get_getitem_and_touch_protect(make: Callable[..., Any], read: str) -> None:
    cache = make(2)
    cache["a"] = 1
    cache["b"] = 2
    {"get": cache.get, "getitem": cache.__getitem__, "touch": cache.touch}[read]("a")
    cache["b"] = 3  # b is now the most recently used, but unread
    assert evicted(cache.put("c", 4)) == ["b"]


@pytest.mark.parametrize("look", ["peek", "contains", "iterate", "remaining", "entries"])
def test_looking_does_not_protect(make: Callable[..., Any], look: str) -> None:
    cache = make(2)
    cache["a"] = 1
    cache["b"] = 2
    {
        "peek": cache.peek,
        "contains": cache.__contains__,
        "iterate": lambda key: list(cache),
        "remaining": cache.remaining,
        "entries": lambda key: cache.entries(),
    }[look]("a")
    assert evicted(cache.put("c", 3)) == ["a"]


def test_an_overwrite_keeps_the_status(make: Callable[..., Any]) -> None:
    cache = make(3)
    cache["read"] = 1
    cache.get("read")
    cache["unread"] = 1
    cache["other"] = 1
    cache["read"] = 2  # still protected
    cache["unread"] = 2  # still on probation, now its most recently used
    assert evicted(cache.put("new", 1)) == ["other"]
    assert evicted(cache.put("new2", 1)) == ["unread"]
    assert cache.keys() == ["new2", "new", "read"]


def test_a_value_written_over_an_expired_one_starts_unread(make: Callable[..., Any], fake_timer: Any) -> None:
    cache = make(2)
    cache.set("a", 1, ttl=5)
    cache.get("a")
    fake_timer.advance(5)
    assert list(cache.put("a", 2)) == [("a", 1, "expire")]
    cache["b"] = 1
    cache.get("b")
    assert evicted(cache.put("c", 1)) == ["a"]  # a is a new, unread entry


def test_expired_entries_go_before_any_live_one(make: Callable[..., Any], fake_timer: Any) -> None:
    cache = make(3)
    cache.set("protected-expiring", 1, ttl=5)
    cache.get("protected-expiring")
    cache.set("unread", 1)
    cache.set("unread-too", 1)
    fake_timer.advance(5)
    removed = list(cache.put("new", 1))
    assert removed == [("protected-expiring", 1, "expire")]
    assert cache.keys() == ["new", "unread-too", "unread"]


def test_protected_entries_go_least_recently_used_first_when_probation_is_empty(make: Callable[..., Any]) -> None:
    cache = make(3)
    for key in "abc":
        cache[key] = key
    for key in "bca":
        cache.get(key)
    assert evicted(cache.put("d", "d")) == ["b"]  # probation empty: protected's LRU
    assert evicted(cache.put("e", "e")) == ["d"]  # probation holds the reserve (1): its LRU goes
    cache.check_invariants()


def test_the_reserve_keeps_room_for_new_entries(make: Callable[..., Any], lru_impl: ModuleType) -> None:
    """Full of protected entries: the newest ``reserve`` unread entries stay, so a new one outlives reserve - 1."""
    maxsize = 200
    reserve = max(1, int(maxsize * lru_impl.PROBATION_SHARE))
    assert reserve >= 2
    cache = make(maxsize)
    for n in range(maxsize):
        cache[("user", n)] = n
        cache.get(("user", n))
    # The first `reserve` new entries push out protected entries (probation is below its reserve)...
    for n in range(reserve):
        assert evicted(cache.put(("new", n), n)) == [("user", n)]
    # ...from then on probation holds the reserve, and each new entry pushes out the oldest new one.
    for n in range(reserve, 5 * reserve):
        assert evicted(cache.put(("new", n), n)) == [("new", n - reserve)]
    assert sum(1 for key in cache if key[0] == "user") == maxsize - reserve
    # A new entry read in time is protected; probation is then one short of its reserve, so the
    # next one-shot entry pushes out the least recently used protected entry, and then its own kind.
    cache.get(("new", 5 * reserve - 1))
    assert evicted(cache.put(("new", "next"), 0)) == [("user", reserve)]
    assert evicted(cache.put(("new", "next2"), 0)) == [("new", 4 * reserve)]
    assert ("new", 5 * reserve - 1) in cache
    cache.check_invariants()


def test_the_reserve_counts_sizes(make: Callable[..., Any], lru_impl: ModuleType) -> None:
    maxsize = 100
    reserve = max(1, int(maxsize * lru_impl.PROBATION_SHARE))
    cache = make(maxsize, getsizeof=len)
    cache["protected"] = "x" * (maxsize - reserve)
    cache.get("protected")
    cache["small"] = "x" * (reserve - 1)  # probation below its reserve: a write that needs room takes protected
    assert evicted(cache.put("more", "xx")) == ["protected"]
    cache["filler"] = "x" * (maxsize - reserve - 2)
    cache.get("filler")
    assert evicted(cache.put("one-more", "x" * (reserve - 1))) == ["small"]  # probation holds >= reserve
    cache.check_invariants()


def test_a_flood_of_unread_entries_leaves_read_ones(make: Callable[..., Any]) -> None:
    cache = make(1000)
    for n in range(900):
        cache[("user", n)] = n
        cache.get(("user", n))
    removed = []
    for n in range(10_000):
        removed += cache.put(("bot", n), n)
    assert all(key[0] == "bot" for key, _, _ in removed)
    assert all(("user", n) in cache for n in range(900))
    stats = cache.stats()
    assert stats.evictions == stats.evicted_unread == 10_000 - 100
    cache.check_invariants()


def test_an_overwrite_that_grows_an_entry_never_evicts_it(make: Callable[..., Any]) -> None:
    cache = make(4, getsizeof=len)
    cache["a"] = "x"
    cache["b"] = "x"
    cache.get("b")
    cache["c"] = "x"
    removed = list(cache.put("a", "xxxx"))  # a stays; room is made from the others
    assert ("a", "x", "set") in removed
    assert evicted(removed) == ["c", "b"]
    assert cache.keys() == ["a"]
    cache.check_invariants()


def test_touch_to_zero_protects_but_expires(make: Callable[..., Any]) -> None:
    cache = make(2)
    cache["a"] = 1
    assert cache.touch("a", ttl=0) is True
    assert "a" not in cache
    cache["b"] = 1
    assert list(cache.put("c", 1)) == [("a", 1, "expire")]


# -- on a MemoryStore ----------------------------------------------------------------------------


@pytest.fixture
def store_make(store_cls: type, fake_timer: Any):  # type: ignore[no-untyped-def]
    made = []

    def factory(**options: Any) -> Any:
        options.setdefault("timer", fake_timer)
        store = store_cls(**options)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


@pytest.mark.parametrize("eviction", ["protect", "lru"])
def test_a_flood_of_new_sessions_and_the_users(store_make: Callable[..., Any], eviction: str) -> None:
    disposed: list[tuple[str, str]] = []
    store = store_make(max=100, ttl=3600, eviction=eviction, dispose=lambda sid, s, why: disposed.append((sid, why)))
    users = [f"user-{n}" for n in range(80)]
    for sid in users:
        store.set(sid, {"user": sid})
        assert store.get(sid) == {"user": sid}  # a second request: the session is in use
    for n in range(1000):  # a crawler: one request each, never back
        store.set(f"bot-{n}", {})
    kept = [sid for sid in users if store.get(sid) is not None]
    stats = store.stats()
    if eviction == "protect":
        assert kept == users
        assert all(sid.startswith("bot-") for sid, _ in disposed)
        assert stats.evicted_unread == stats.evictions == 1000 - 20
    else:
        assert kept == []
        assert stats.evictions == 1000 - 20 and stats.evicted_unread == 1000 - 20 - 80
    assert all(why == "evict" for _, why in disposed)
    store.check_invariants()
