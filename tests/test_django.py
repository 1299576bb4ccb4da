"""memorystore.django: the CACHES backend and the session engine, on a real in-process Django.

(a) the BaseCache contract of ``MemoryStoreCache``;
(b) Django's stock cache session engine on that backend, through the test ``Client``;
(c) ``SESSION_ENGINE = "memorystore.django"`` through the test ``Client``.

Every store runs on the fake timer of tests/conftest.py, with both cores.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import uuid
import warnings
from dataclasses import dataclass

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        SECRET_KEY="memorystore-tests-not-a-secret-" + "x" * 32,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF="django_app",
        DATABASES={},
        USE_TZ=True,
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    )
    django.setup()

from django.contrib.sessions.backends.base import CreateError, UpdateError  # noqa: E402
from django.core.cache import CacheKeyWarning, InvalidCacheKey, caches  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

import memorystore.django as msdjango  # noqa: E402
from memorystore import MemoryStore  # noqa: E402
from memorystore.django import MemoryStoreCache, SessionStore  # noqa: E402

BACKEND = "memorystore.django.MemoryStoreCache"
SESSION_KEY_LENGTH = 32  # Django's _get_new_session_key


def unique_location() -> str:
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def store(store_cls, fake_timer):
    """A store on the fake timer as the cache backend needs it (bytes kept as they are)."""
    return store_cls(timer=fake_timer, serializer=None)


@pytest.fixture
def make_cache(store):
    """``make_cache(**params)``: a backend on ``store``, built the way Django builds it."""

    def make(**params) -> MemoryStoreCache:
        params.setdefault("OPTIONS", {"store": store})
        return MemoryStoreCache(params.pop("LOCATION", ""), params)

    return make


@pytest.fixture
def cache(make_cache) -> MemoryStoreCache:
    return make_cache(TIMEOUT=300)


@dataclass
class Point:
    x: int
    y: list


# ---------------------------------------------------------------------------
# (a) the BaseCache contract


def test_set_get_and_default(cache):
    assert cache.get("missing") is None
    assert cache.get("missing", "dflt") == "dflt"
    cache.set("k", {"a": [1, 2]})
    assert cache.get("k") == {"a": [1, 2]}


def test_values_are_pickled_copies(cache):
    original = Point(1, [1, 2])
    cache.set("p", original)
    original.y.append(3)
    first = cache.get("p")
    assert first == Point(1, [1, 2])
    first.y.append(99)
    assert cache.get("p") == Point(1, [1, 2])
    cache.set("s", {1, 2, frozenset({3})})
    assert cache.get("s") == {1, 2, frozenset({3})}


def test_stored_none_is_a_hit(cache):
    cache.set("n", None)
    assert cache.get("n", "dflt") is None
    assert cache.has_key("n")
    assert cache.get_many(["n", "other"]) == {"n": None}


def test_unpicklable_value_leaves_previous_entry(cache):
    cache.set("k", "old")
    with pytest.raises(Exception):
        cache.set("k", lambda: None)
    with pytest.raises(Exception):
        cache.add("new", threading.Lock())
    assert cache.get("k") == "old"
    assert not cache.has_key("new")


def test_default_timeout_is_the_configured_timeout(cache, fake_timer):
    cache.set("k", 1)
    assert cache.add("a", 1) is True
    fake_timer.advance(299.9)
    assert cache.get("k") == 1 and cache.get("a") == 1
    fake_timer.advance(0.1)
    assert cache.get("k") is None and cache.get("a") is None


def test_timeout_none_param_means_forever(make_cache, fake_timer):
    cache = make_cache(TIMEOUT=None)
    cache.set("k", 1)
    fake_timer.advance(10**9)
    assert cache.get("k") == 1


def test_explicit_timeouts(cache, fake_timer):
    cache.set("short", 1, timeout=5)
    cache.set("forever", 2, timeout=None)
    cache.set("float", 3, timeout=0.5)
    fake_timer.advance(0.5)
    assert cache.get("float") is None
    fake_timer.advance(4.4)
    assert cache.get("short") == 1
    fake_timer.advance(0.1)
    assert cache.get("short") is None
    fake_timer.advance(10**9)
    assert cache.get("forever") == 2


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
def test_zero_or_negative_timeout_means_expired_at_once(cache, timeout):
    cache.set("k", "old")
    cache.set("k", "new", timeout=timeout)  # removes the old value too
    assert cache.get("k") is None
    assert not cache.has_key("k")

    assert cache.add("a", "ham", timeout) is True  # Django: "added", but not cached
    assert cache.get("a") is None

    cache.set_many({"m1": 1, "m2": 2}, timeout)
    assert cache.get_many(["m1", "m2"]) == {}

    cache.set("t", "x")
    assert cache.touch("t", timeout) is True
    assert cache.get("t") is None
    assert cache.touch("t", timeout) is False

    cache.set("live", 1)
    assert cache.add("live", 2, timeout) is False
    assert cache.get("live") == 1
    assert len(cache.store) == 1


def test_add_only_when_absent_or_expired(cache, fake_timer):
    assert cache.add("k", "first", 10) is True
    assert cache.add("k", "second") is False
    assert cache.get("k") == "first"
    fake_timer.advance(10)
    assert cache.add("k", "third") is True
    assert cache.get("k") == "third"


def test_add_is_atomic_across_threads(cache, fast_thread_switching):
    keys = [f"once-{i}" for i in range(300)]
    wins: dict[int, list[str]] = {n: [] for n in range(4)}
    barrier = threading.Barrier(4)

    def contend(n):
        barrier.wait()
        for key in keys:
            if cache.add(key, n):
                wins[n].append(key)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = sorted(key for n in wins for key in wins[n])
    assert won == sorted(keys)  # every key added exactly once
    assert all(cache.get(key) == n for n in wins for key in wins[n])


def test_touch(cache, fake_timer):
    assert cache.touch("missing") is False
    cache.set("k", 1, timeout=10)
    fake_timer.advance(9)
    assert cache.touch("k", 10) is True
    fake_timer.advance(9)
    assert cache.get("k") == 1
    assert cache.touch("k") is True  # DEFAULT_TIMEOUT: 300 s from now
    fake_timer.advance(299)
    assert cache.get("k") == 1
    assert cache.touch("k", None) is True
    fake_timer.advance(10**9)
    assert cache.get("k") == 1
    cache.set("gone", 1, timeout=1)
    fake_timer.advance(1)
    assert cache.touch("gone") is False


def test_delete_and_has_key(cache):
    cache.set("k", 1)
    assert cache.has_key("k") and "k" in cache
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert not cache.has_key("k") and "k" not in cache


def test_incr_decr(cache):
    with pytest.raises(ValueError):
        cache.incr("missing")
    with pytest.raises(ValueError):
        cache.decr("missing")
    cache.set("n", 1)
    assert cache.incr("n") == 2
    assert cache.incr("n", 10) == 12
    assert cache.decr("n") == 11
    assert cache.decr("n", 20) == -9
    assert cache.get("n") == -9


def test_incr_keeps_remaining_lifetime(cache, fake_timer):
    cache.set("n", 1, timeout=10)
    fake_timer.advance(6)
    assert cache.incr("n") == 2
    fake_timer.advance(3.9)
    assert cache.get("n") == 2
    fake_timer.advance(0.1)
    assert cache.get("n") is None
    with pytest.raises(ValueError):
        cache.incr("n")
    cache.set("forever", 5, timeout=None)
    cache.incr("forever")
    fake_timer.advance(10**9)
    assert cache.get("forever") == 6


def test_lru_order(store_cls, fake_timer):
    # Django's LocMemCacheTests.test_lru_get/set/incr with MAX_ENTRIES=9, whose expectations also
    # carry LocMemCache's CULL_FREQUENCY (it drops three entries when full): here exactly one goes,
    # the least recently used, and get, set and incr all count as a use.
    for use in ("get", "set", "incr"):
        cache = MemoryStoreCache("", {"OPTIONS": {"store": store_cls(timer=fake_timer, serializer=None, max=9)}})
        for key in range(9):
            cache.set(key, key, timeout=None)
        for key in range(6):
            if use == "get":
                assert cache.get(key) == key
            elif use == "set":
                cache.set(key, key, timeout=None)
            else:
                assert cache.incr(key) == key + 1
        cache.set(9, 9, timeout=None)
        used = {key: key + (use == "incr") for key in range(6)}
        assert cache.get_many(range(10)) == {**used, 7: 7, 8: 8, 9: 9}, use  # 6 was the least recent


class LockProbe:
    """A value that, while pickled, records whether another thread can take ``LockProbe.lock``."""

    lock: threading.RLock
    free_while_pickled: list[bool] = []

    def __getstate__(self):
        def try_lock():
            got = LockProbe.lock.acquire(blocking=False)
            if got:
                LockProbe.lock.release()
            LockProbe.free_while_pickled.append(got)

        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join(10)
        return {}


def test_pickling_happens_outside_the_lock(cache, monkeypatch):
    # Django's test_locking_on_pickle calls locked() on the backend's lock, which an RLock has not
    # (before Python 3.14): here another thread tries to take it while each value is pickled.
    monkeypatch.setattr(LockProbe, "lock", cache._lock, raising=False)
    monkeypatch.setattr(LockProbe, "free_while_pickled", [])
    cache.set("set", LockProbe())
    assert cache.add("add", LockProbe()) is True
    cache.set_many({"many": LockProbe()})
    assert LockProbe.free_while_pickled == [True, True, True]


@pytest.fixture
def fast_thread_switching():
    """Switch threads as often as possible, so that a race shows up within a short test."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def test_incr_is_atomic_across_threads(cache, fast_thread_switching):
    cache.set("n", 0, timeout=None)
    barrier = threading.Barrier(4)

    def bump():
        barrier.wait()
        for _ in range(250):
            cache.incr("n")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert cache.get("n") == 1000


def test_get_set_delete_many(cache):
    assert cache.set_many({"a": 1, "b": [2]}) == []
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": [2]}
    cache.delete_many(["a", "c"])
    assert cache.get_many(["a", "b", "c"]) == {"b": [2]}
    cache.delete_many([])
    assert cache.get("b") == [2]


def test_get_or_set(cache, fake_timer):
    assert cache.get_or_set("k", lambda: "computed", 5) == "computed"
    assert cache.get_or_set("k", "other") == "computed"
    fake_timer.advance(5)
    assert cache.get_or_set("k", "other") == "other"


def test_clear(cache):
    cache.set_many({"a": 1, "b": 2})
    cache.clear()
    assert cache.get_many(["a", "b"]) == {}
    assert len(cache.store) == 0


def test_versions(make_cache):
    cache = make_cache(VERSION=2)
    cache.set("k", "v2")
    cache.set("k", "v3", version=3)
    assert cache.get("k") == "v2"
    assert cache.get("k", version=3) == "v3"
    assert cache.get("k", version=1) is None
    assert sorted(cache.store.ids()) == [":2:k", ":3:k"]
    assert cache.incr_version("k") == 3  # moves v2 to version 3, overwriting
    assert cache.get("k") is None
    assert cache.get("k", version=3) == "v2"
    assert cache.decr_version("k", version=3) == 2
    assert cache.get("k") == "v2"


def test_key_prefix_isolates_caches_on_one_store(make_cache):
    first = make_cache(KEY_PREFIX="one")
    second = make_cache(KEY_PREFIX="two")
    assert first.store is second.store
    first.set("k", 1)
    second.set("k", 2)
    assert first.get("k") == 1 and second.get("k") == 2
    assert sorted(first.store.ids()) == ["one:1:k", "two:1:k"]
    second.delete("k")
    assert first.get("k") == 1


def test_key_function(make_cache):
    cache = make_cache(KEY_FUNCTION=lambda key, prefix, version: f"custom/{key}")
    cache.set("k", 1)
    assert cache.store.ids() == ["custom/k"]


def test_long_keys(cache):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.set("k" * 300, 1)  # memcached's limit: Django warns, the store copes
    assert any(issubclass(w.category, CacheKeyWarning) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        assert cache.get("k" * 300) == 1
        with pytest.raises(InvalidCacheKey):
            cache.set("k" * 1100, 1)
        with pytest.raises(InvalidCacheKey):
            cache.get("k" * 1100)


def test_close_keeps_everything(cache, fake_timer):
    cache.set("k", 1, timeout=10)
    cache.close()
    cache.close()
    assert cache.get("k") == 1
    cache.set("k2", 2)
    assert cache.get("k2") == 2
    fake_timer.advance(10)
    assert cache.get("k") is None  # expiry still works after close()


def test_async_methods(cache):
    async def run():
        await cache.aset("k", 1)
        assert await cache.aadd("k", 2) is False
        assert await cache.aincr("k") == 2
        return await cache.aget("k")

    assert asyncio.run(run()) == 2


# -- configuration through CACHES ----------------------------------------------


def test_one_store_per_location_shared_by_aliases_and_threads():
    here, other = unique_location(), unique_location()
    with override_settings(
        CACHES={
            "default": {"BACKEND": BACKEND, "LOCATION": here},
            "again": {"BACKEND": BACKEND, "LOCATION": here},
            "other": {"BACKEND": BACKEND, "LOCATION": other},
        }
    ):
        assert isinstance(caches["default"], MemoryStoreCache)
        assert caches["default"].store is caches["again"].store
        assert caches["default"].store is not caches["other"].store
        seen = {}

        def in_thread():
            backend = caches["default"]  # Django gives each thread its own backend instance
            seen["instance"] = backend
            seen["store"] = backend.store
            backend.set("from-thread", 42)

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join(10)
        assert seen["instance"] is not caches["default"]
        assert seen["store"] is caches["default"].store
        assert caches["again"].get("from-thread") == 42
        assert caches["other"].get("from-thread") is None
        caches.close_all()  # what request_finished does
        assert caches["default"].get("from-thread") == 42


def _location_warnings(caplog):
    return [r for r in caplog.records if r.name == "memorystore" and "already has a store" in r.getMessage()]


def test_aliases_on_one_location_with_other_options_each_keep_their_own(caplog):
    """Never silently merged: each alias gets the bound it asked for, and a WARNING says what differs."""
    location = unique_location()
    with (
        caplog.at_level(logging.WARNING, logger="memorystore"),
        override_settings(
            CACHES={
                "big": {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": {"MAX_ENTRIES": 10}},
                "small": {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": {"MAX_ENTRIES": 2}},
                "big-too": {  # same store options: the same store, whatever its own TIMEOUT/KEY_PREFIX/CULL
                    "BACKEND": BACKEND,
                    "LOCATION": location,
                    "TIMEOUT": 5,
                    "KEY_PREFIX": "p",
                    "OPTIONS": {"MAX_ENTRIES": 10, "CULL_FREQUENCY": 2},
                },
            }
        ),
    ):
        big, small, big_too = caches["big"], caches["small"], caches["big-too"]
        assert big.store is big_too.store and small.store is not big.store
        for i in range(6):
            big.set(f"k{i}", i)
            small.set(f"k{i}", i)
        assert len(big.store) == 6 and len(small.store) == 2  # each bound honoured
        assert small.get("k0") is None and big.get("k0") == 0
        [record] = _location_warnings(caplog)
        message = record.getMessage()
        assert location in message and "MAX_ENTRIES/max: 10 vs 2" in message


def test_override_settings_with_other_options_gets_them(caplog):
    """A project's test overriding CACHES on the same LOCATION gets the options it asked for."""
    location = unique_location()
    with override_settings(CACHES={"default": {"BACKEND": BACKEND, "LOCATION": location}}):
        caches["default"].set("before", 1)
        unbounded = caches["default"].store
    with (
        caplog.at_level(logging.WARNING, logger="memorystore"),
        override_settings(
            CACHES={"default": {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": {"MAX_ENTRIES": 3}}}
        ),
    ):
        cache = caches["default"]
        assert cache.store is not unbounded
        cache.set_many({f"k{i}": i for i in range(5)})
        assert len(cache.store) == 3
        assert cache.get("before") is None  # not merged with the first store
        assert len(_location_warnings(caplog)) == 1
    with override_settings(CACHES={"default": {"BACKEND": BACKEND, "LOCATION": location}}):
        assert caches["default"].store is unbounded  # the same options find the same store again
        assert caches["default"].get("before") == 1


def test_store_options_and_max_entries(fake_timer):
    location = unique_location()
    with override_settings(
        CACHES={
            "default": {
                "BACKEND": BACKEND,
                "LOCATION": location,
                "TIMEOUT": 60,
                "OPTIONS": {"MAX_ENTRIES": 2, "CULL_FREQUENCY": 3, "timer": fake_timer},
            }
        }
    ):
        cache = caches["default"]
        assert isinstance(cache.store, MemoryStore)
        cache.set("a", 1)
        cache.set("b", 2)
        assert cache.get("a") == 1  # a is now the most recently used
        cache.set("c", 3)  # evicts b, the least recently used
        assert cache.get_many(["a", "b", "c"]) == {"a": 1, "c": 3}
        fake_timer.advance(60)  # the timer option reached the store
        assert cache.get_many(["a", "c"]) == {}


def test_store_option_by_dotted_path(store):
    msdjango._test_store = store  # type: ignore[attr-defined]
    try:
        cache = MemoryStoreCache("", {"OPTIONS": {"store": "memorystore.django._test_store"}})
        assert cache.store is store
    finally:
        del msdjango._test_store  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": 5},
        {"serializer": None},
        {"MAX_ENTRIES": 5, "max": 5},
        {"MAX_ENTRIES": "lots"},
        {"store": object(), "max": 3},
    ],
)
def test_bad_options(options):
    with pytest.raises(ImproperlyConfigured):
        MemoryStoreCache(unique_location(), {"OPTIONS": options})


def test_unknown_store_option_is_an_error():
    with pytest.raises(TypeError):
        MemoryStoreCache(unique_location(), {"OPTIONS": {"no_such_option": 1}})


def test_importing_memorystore_does_not_import_django():
    code = "import sys, memorystore; assert 'django' not in sys.modules, 'django imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------------
# (b) Django's cache session engine on MemoryStoreCache


@pytest.fixture
def cache_sessions(store):
    """The stock cache engine on a MemoryStoreCache over ``store``; yields the store."""
    with override_settings(
        CACHES={"default": {"BACKEND": BACKEND, "OPTIONS": {"store": store}}},
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        SESSION_COOKIE_AGE=100,
    ):
        yield store


def test_cache_engine_counts_and_logs_out(cache_sessions, fake_timer):
    store = cache_sessions
    client = Client()
    assert client.get("/hello").content == b"hello"
    assert len(store) == 0  # an anonymous visitor costs nothing
    assert client.get("/incr").content == b"1"
    assert client.get("/incr").content == b"2"
    assert client.get("/peek").content == b"2"
    key = client.cookies["sessionid"].value
    assert len(key) == SESSION_KEY_LENGTH
    assert store.ids() == [":1:django.contrib.sessions.cache" + key]

    fake_timer.advance(99)
    assert client.get("/incr").content == b"3"  # saving renews the 100 s lifetime
    fake_timer.advance(99)
    assert client.get("/peek").content == b"3"
    fake_timer.advance(1)
    assert client.get("/peek").content == b"0"

    assert client.get("/incr").content == b"1"
    assert client.cookies["sessionid"].value != key
    client.get("/logout")
    assert client.cookies["sessionid"].value == ""
    assert len(store) == 0


def test_cache_engine_does_not_adopt_forged_key(cache_sessions):
    client = Client()
    forged = "f" * SESSION_KEY_LENGTH
    client.cookies["sessionid"] = forged
    assert client.get("/incr").content == b"1"
    issued = client.cookies["sessionid"].value
    assert issued != forged and len(issued) == SESSION_KEY_LENGTH
    assert all(forged not in sid for sid in cache_sessions.ids())


# ---------------------------------------------------------------------------
# (c) SESSION_ENGINE = "memorystore.django"


@pytest.fixture
def session_store(store_cls, fake_timer):
    """Our engine, on a fresh store with the fake timer; the previous store is put back after."""
    store = store_cls(timer=fake_timer, serializer=None)
    previous = msdjango.set_session_store(store)
    try:
        with override_settings(SESSION_ENGINE="memorystore.django", SESSION_COOKIE_AGE=100):
            yield store
    finally:
        msdjango.set_session_store(previous)


def test_engine_counter_persists(session_store):
    client = Client()
    assert [client.get("/incr").content for _ in range(3)] == [b"1", b"2", b"3"]
    key = client.cookies["sessionid"].value
    assert len(key) == SESSION_KEY_LENGTH
    assert session_store.ids() == [key]
    stored = session_store.get(key)
    assert isinstance(stored, str)  # SessionBase.encode() output
    assert SessionStore().decode(stored) == {"n": 3}


def test_engine_stores_nothing_for_anonymous_or_read_only_requests(session_store):
    client = Client()
    for path in ("/hello", "/peek", "/hello"):
        client.get(path)
    assert len(session_store) == 0
    assert "sessionid" not in client.cookies


def test_engine_does_not_adopt_forged_keys(session_store):
    for forged in ("forged" * 6, "x" * 2000):
        client = Client()
        client.cookies["sessionid"] = forged
        assert client.get("/peek").content == b"0"
        assert client.get("/incr").content == b"1"
        issued = client.cookies["sessionid"].value
        assert issued != forged and len(issued) == SESSION_KEY_LENGTH
        assert forged not in session_store.ids()
        assert issued in session_store.ids()


def test_engine_flush_removes_the_entry(session_store):
    client = Client()
    client.get("/incr")
    key = client.cookies["sessionid"].value
    assert key in session_store
    client.get("/logout")
    assert key not in session_store
    assert client.cookies["sessionid"].value == ""
    assert len(session_store) == 0
    assert client.get("/peek").content == b"0"


def test_engine_cycle_key_drops_the_old_key(session_store):
    client = Client()
    client.get("/incr")
    old = client.cookies["sessionid"].value
    new = client.get("/login").content.decode()
    assert new != old and len(new) == SESSION_KEY_LENGTH
    assert client.cookies["sessionid"].value == new
    assert session_store.ids() == [new]
    assert client.get("/incr").content == b"2"  # data kept under the new key


def test_engine_expiry(session_store, fake_timer):
    client = Client()
    client.get("/incr")
    key = client.cookies["sessionid"].value
    fake_timer.advance(99)
    assert client.get("/incr").content == b"2"  # each save renews SESSION_COOKIE_AGE
    fake_timer.advance(99)
    assert client.get("/peek").content == b"2"
    fake_timer.advance(1)
    assert key not in session_store
    assert client.get("/incr").content == b"1"
    assert client.cookies["sessionid"].value != key


def test_engine_set_expiry(session_store, fake_timer):
    client = Client()
    client.get("/expire/10")
    key = client.cookies["sessionid"].value
    fake_timer.advance(9.5)
    assert key in session_store
    fake_timer.advance(0.5)
    assert key not in session_store


def test_clear_expired_prunes(session_store, fake_timer):
    for _ in range(2):
        Client().get("/incr")
    fake_timer.advance(50)
    Client().get("/expire/1000")
    fake_timer.advance(50)
    assert len(session_store) == 1
    assert SessionStore.clear_expired() == 2
    assert SessionStore.clear_expired() == 0
    Client().get("/incr")
    fake_timer.advance(200)
    call_command("clearsessions")  # manage.py clearsessions uses the engine's clear_expired
    assert SessionStore.clear_expired() == 0
    assert len(session_store) == 1  # the one with set_expiry(1000)


def test_create_retries_on_collision(session_store, monkeypatch):
    taken = SessionStore()
    taken["who"] = "first"
    taken.create()
    taken.save()
    candidates = iter([taken.session_key, "b" * SESSION_KEY_LENGTH])
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: next(candidates))
    fresh = SessionStore()
    fresh.create()
    assert fresh.session_key == "b" * SESSION_KEY_LENGTH
    assert SessionStore(taken.session_key).load() == {"who": "first"}


def test_save_must_create_on_existing_key_raises(session_store):
    existing = SessionStore()
    existing.create()
    again = SessionStore(existing.session_key)
    with pytest.raises(CreateError):
        again.save(must_create=True)


def test_save_after_concurrent_delete_raises_update_error(session_store):
    first = SessionStore()
    first["n"] = 1
    first.save()
    key = first.session_key
    mine, theirs = SessionStore(key), SessionStore(key)
    assert mine["n"] == 1
    theirs.delete()  # e.g. a logout in another thread
    mine["n"] = 2
    with pytest.raises(UpdateError):
        mine.save()
    assert key not in session_store


def test_engine_saves_an_emptied_session(session_store):
    # Django's SessionMiddlewareTests.test_empty_session_saved reads the database engine's model;
    # here: a session emptied of its data, but not flushed, keeps its key and is stored empty.
    s = SessionStore()
    s["foo"] = "bar"
    s.save()
    key = s.session_key
    del s["foo"]
    s.save()
    assert s.session_key == key
    assert SessionStore().decode(session_store.get(key)) == {}
    assert SessionStore(key).load() == {} and s.exists(key)


def test_direct_api_exists_and_delete(session_store):
    s = SessionStore()
    assert not s.exists("missing-key")
    assert not s.exists("")
    assert not s.exists("y" * 5000)
    s["a"] = 1
    s.save()
    assert s.exists(s.session_key)
    s.delete()
    assert not s.exists(s.session_key)
    SessionStore().delete()  # no key: nothing to do


def test_async_session_api(session_store):
    async def run():
        s = SessionStore()
        await s.aset("n", 5)
        await s.asave()
        loaded = SessionStore(s.session_key)
        return await loaded.aget("n"), s.session_key

    value, key = asyncio.run(run())
    assert value == 5 and key in session_store


def test_default_session_store_from_settings():
    previous = msdjango.set_session_store(None)
    try:
        with override_settings(SESSION_ENGINE="memorystore.django", MEMORYSTORE_SESSION_OPTIONS={"max": 2}):
            store = msdjango.get_session_store()
            assert isinstance(store, MemoryStore)
            assert msdjango.get_session_store() is store
            clients = [Client() for _ in range(3)]
            for client in clients:
                assert client.get("/incr").content == b"1"
            assert len(store) == 2  # max reached the store: the oldest session was evicted
            assert clients[0].get("/peek").content == b"0"
            assert clients[2].get("/peek").content == b"1"
        msdjango.set_session_store(None)
        with override_settings(MEMORYSTORE_SESSION_OPTIONS={"ttl": 5}):
            with pytest.raises(ImproperlyConfigured):
                msdjango.get_session_store()
    finally:
        msdjango.set_session_store(previous)
