"""memorystore.cachelib.MemoryStoreCache: the cachelib BaseCache contract, and Flask-Session on top."""

from __future__ import annotations

import datetime as dt
import math
import pickle
import threading
from typing import Any

import pytest

cachelib = pytest.importorskip("cachelib")
MemoryStoreCache = pytest.importorskip("memorystore.cachelib").MemoryStoreCache


@pytest.fixture
def cache(store_cls: type, fake_timer: Any) -> MemoryStoreCache:
    return MemoryStoreCache(300, store=store_cls(timer=fake_timer, serializer=None))


def test_is_a_cachelib_cache(cache: MemoryStoreCache) -> None:
    assert isinstance(cache, cachelib.BaseCache)


def test_get_set_and_miss(cache: MemoryStoreCache) -> None:
    assert cache.get("missing") is None
    assert cache.set("k", {"a": [1, 2]}) is True
    assert cache.get("k") == {"a": [1, 2]}
    assert cache.set("k", "replaced") is True
    assert cache.get("k") == "replaced"


def test_set_accepts_keyword_arguments_as_flask_session_calls_it(cache: MemoryStoreCache) -> None:
    assert cache.set(key="session:x", value={"n": 1}, timeout=60) is True
    assert cache.get("session:x") == {"n": 1}


def test_default_timeout(cache: MemoryStoreCache, fake_timer: Any) -> None:
    cache.set("k", 1)
    fake_timer.advance(299)
    assert cache.has("k")
    fake_timer.advance(1)
    assert not cache.has("k")
    assert cache.get("k") is None


def test_timeout_zero_never_expires(cache: MemoryStoreCache, fake_timer: Any) -> None:
    cache.set("forever", 1, timeout=0)
    fake_timer.advance(10**9)
    assert cache.get("forever") == 1


def test_default_timeout_zero_never_expires(store_cls: type, fake_timer: Any) -> None:
    cache = MemoryStoreCache(0, store=store_cls(timer=fake_timer, serializer=None))
    cache.set("k", 1)
    fake_timer.advance(10**9)
    assert cache.get("k") == 1


def test_negative_timeout_is_already_expired(cache: MemoryStoreCache) -> None:
    cache.set("k", "old")
    assert cache.set("k", "new", timeout=-1) is True
    assert cache.get("k") is None
    assert not cache.has("k")
    assert len(cache.store) == 0


@pytest.mark.parametrize(
    ("timeout", "alive_until"), [(dt.timedelta(seconds=10), 10), (dt.timedelta(milliseconds=200), 1)]
)
def test_timedelta_timeout_rounds_up_to_whole_seconds(
    cache: MemoryStoreCache, fake_timer: Any, timeout: dt.timedelta, alive_until: int
) -> None:
    cache.set("k", 1, timeout=timeout)
    fake_timer.advance(alive_until - 0.001)
    assert cache.has("k")
    fake_timer.advance(0.001)
    assert not cache.has("k")


def test_timedelta_default_timeout(store_cls: type, fake_timer: Any) -> None:
    cache = MemoryStoreCache(dt.timedelta(minutes=1), store=store_cls(timer=fake_timer, serializer=None))
    cache.set("k", 1)
    fake_timer.advance(59)
    assert cache.has("k")
    fake_timer.advance(1)
    assert not cache.has("k")


def test_bad_timeout_type(cache: MemoryStoreCache) -> None:
    with pytest.raises(TypeError):
        cache.set("k", 1, timeout="10")  # type: ignore[arg-type]
    assert not cache.has("k")


def test_add_does_not_overwrite_a_live_key(cache: MemoryStoreCache, fake_timer: Any) -> None:
    assert cache.add("k", "first") is True
    assert cache.add("k", "second") is False
    assert cache.get("k") == "first"
    fake_timer.advance(300)  # expired: add may take the key again
    assert cache.add("k", "third") is True
    assert cache.get("k") == "third"


def test_add_with_negative_timeout(cache: MemoryStoreCache) -> None:
    assert cache.add("absent", 1, timeout=-1) is True
    assert not cache.has("absent")
    cache.set("present", 1)
    assert cache.add("present", 2, timeout=-1) is False
    assert cache.get("present") == 1


def test_add_is_atomic_under_threads(cache: MemoryStoreCache) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def contender(n: int) -> None:
        barrier.wait()
        if cache.add("lock", n):
            winners.append(n)

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert cache.get("lock") == winners[0]


def test_delete_and_has(cache: MemoryStoreCache) -> None:
    assert cache.delete("missing") is False
    cache.set("k", None)  # a stored None is still a key
    assert cache.has("k") is True
    assert cache.delete("k") is True
    assert cache.has("k") is False
    assert cache.delete("k") is False


def test_get_many_and_get_dict_with_a_miss(cache: MemoryStoreCache) -> None:
    cache.set("a", 1)
    cache.set("c", 3)
    assert cache.get_many("a", "b", "c") == [1, None, 3]
    assert cache.get_dict("a", "b", "c") == {"a": 1, "b": None, "c": 3}


def test_set_many(cache: MemoryStoreCache, fake_timer: Any) -> None:
    assert sorted(cache.set_many({"a": 1, "b": 2}, timeout=10)) == ["a", "b"]
    assert cache.get_many("a", "b") == [1, 2]
    fake_timer.advance(10)
    assert cache.get_many("a", "b") == [None, None]


def test_delete_many(cache: MemoryStoreCache) -> None:
    cache.set_many({"a": 1, "b": 2, "c": 3})
    # a key that is absent after the attempt counts as deleted (cachelib 0.17)
    assert cache.delete_many("a", "b", "missing") == ["a", "b", "missing"]
    assert cache.get_many("a", "b", "c") == [None, None, 3]


def test_clear(cache: MemoryStoreCache) -> None:
    cache.set_many({"a": 1, "b": 2})
    assert cache.clear() is True
    assert cache.get_many("a", "b") == [None, None]
    assert len(cache.store) == 0


def test_inc_and_dec_from_missing(cache: MemoryStoreCache) -> None:
    assert cache.inc("hits") == 1
    assert cache.inc("hits", 5) == 6
    assert cache.dec("hits", 2) == 4
    assert cache.get("hits") == 4
    assert cache.dec("down") == -1
    assert cache.dec("down", 3) == -4


def test_inc_is_atomic_under_threads(cache: MemoryStoreCache) -> None:
    barrier = threading.Barrier(8)

    def bump() -> None:
        barrier.wait()
        for _ in range(200):
            cache.inc("n")

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("n") == 1600


# The next three hold what cachelib's own TestSimpleCache checks through SimpleCache's private
# `_cache` (tools/peer_suites/expected-failures.txt lists those tests).


def test_threshold_bounds_the_entries(fake_timer: Any) -> None:
    cache = MemoryStoreCache(threshold=5, timer=fake_timer)
    assert cache.set_many({f"k{i}": i for i in range(10)}) == [f"k{i}" for i in range(10)]
    assert len(cache.store) == 5  # exactly the bound: the least recently set went first
    assert cache.get_dict(*(f"k{i}" for i in range(10))) == {
        **{f"k{i}": None for i in range(5)},
        **{f"k{i}": i for i in range(5, 10)},
    }


def test_full_cache_drops_expired_entries_first(fake_timer: Any) -> None:
    keys = [f"k{i}" for i in range(10)]
    cache = MemoryStoreCache(threshold=2 * len(keys) - 1, timer=fake_timer)
    for key in keys:
        assert cache.set(f"{key}-t1", key, timeout=1)
        assert cache.set(f"{key}-t5", key, timeout=5)
    fake_timer.advance(2)
    for key in keys:
        assert cache.set(key, key)
        assert cache.has(f"{key}-t5")  # live entries stay while expired ones can make room
    assert not any(cache.has(f"{key}-t1") for key in keys)
    # The last set found no expired entry left: it evicted the least recently used live one.
    assert [key for key in keys if not cache.has(f"{key}-t5")] == ["k0"]
    assert len(cache.store) == 2 * len(keys) - 1


def test_concurrent_sets_keep_every_value(cache: MemoryStoreCache) -> None:
    expected = {f"thread-{t}-key-{i}": t * 1000 + i for t in range(10) for i in range(50)}
    barrier = threading.Barrier(10)

    def writer(t: int) -> None:
        barrier.wait()
        for i in range(50):
            cache.set(f"thread-{t}-key-{i}", expected[f"thread-{t}-key-{i}"])

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache.store) == len(expected)
    assert cache.get_dict(*expected) == expected


def test_values_are_returned_as_copies(cache: MemoryStoreCache) -> None:
    value = {"items": [1]}
    cache.set("k", value)
    value["items"].append(2)  # the caller's object changes after set...
    first = cache.get("k")
    assert first == {"items": [1]}  # ...the cached one does not
    first["items"].append(3)
    assert cache.get("k") == {"items": [1]}
    assert cache.get("k") is not cache.get("k")


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_default_store_holds_any_picklable_value() -> None:
    cache = MemoryStoreCache()
    value = {"point": Point(1, 2), "when": dt.datetime(2026, 1, 1), "set": {1, 2}, "bytes": b"\x00"}
    cache.set("k", value)
    assert cache.get("k") == value
    assert cache.get("k") is not value
    try:
        stored = cache.set("bad", lambda: None)  # cachelib's serializer answers None (and logs) for some
    except (pickle.PicklingError, AttributeError):  # ...and lets others through, as in SimpleCache
        stored = False
    assert stored is False
    assert not cache.has("bad")


def test_store_options_build_the_default_store(fake_timer: Any) -> None:
    cache = MemoryStoreCache(max=2, timer=fake_timer)
    cache.set_many({"a": 1, "b": 2, "c": 3})
    assert len(cache.store) == 2
    assert cache.get("a") is None  # least recently used went first


def test_a_passed_store_keeps_the_serialized_bytes(store_cls: type) -> None:
    store = store_cls(serializer=None)
    cache = MemoryStoreCache(store=store)
    value = {"a": [1]}
    cache.set("k", value)
    assert isinstance(store.get("k"), bytes) and pickle.loads(store.get("k")) == value
    assert cache.get("k") == value and cache.get("k") is not value  # a copy


# -- cachelib's constructor, and bad arguments refused at construction -----------------------------


def test_constructor_is_cachelibs() -> None:
    """default_timeout first and positional, as every cachelib cache; the rest are keywords."""
    import inspect

    ours = inspect.signature(MemoryStoreCache)
    params = list(ours.parameters.values())
    assert params[0].name == "default_timeout" and params[0].default == 300
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    for name, default in (("store", None), ("threshold", None), ("ignore_delete_many_errors", False)):
        assert ours.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert ours.parameters[name].default == default
    simple = inspect.signature(cachelib.SimpleCache)
    assert {"threshold", "default_timeout", "ignore_delete_many_errors"} <= set(simple.parameters)


def test_cachelib_style_construction(fake_timer: Any) -> None:
    cache = MemoryStoreCache(600, threshold=2, ignore_delete_many_errors=False, timer=fake_timer)
    assert cache.default_timeout == 600 and cache.ignore_delete_many_errors is False
    cache.set_many({"a": 1, "b": 2, "c": 3})
    assert len(cache.store) == 2 and cache.get("a") is None  # threshold is the bound
    fake_timer.advance(599)
    assert cache.get("c") == 3
    fake_timer.advance(1)
    assert cache.get("c") is None  # the positional default_timeout applies
    assert cache.delete_many("b", "c", "never-there") == ["b", "c", "never-there"]
    assert MemoryStoreCache(ignore_delete_many_errors=True).ignore_delete_many_errors is True


@pytest.mark.parametrize("threshold", [None, 0])
def test_threshold_none_or_zero_is_no_bound(threshold: int | None) -> None:
    cache = MemoryStoreCache(threshold=threshold)
    cache.set_many({f"k{i}": i for i in range(1000)})
    assert len(cache.store) == 1000


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda cls: MemoryStoreCache(cls(serializer=None)), TypeError, "store=..."),  # the old positional store
        (lambda cls: MemoryStoreCache("300"), TypeError, "default_timeout"),
        (lambda cls: MemoryStoreCache(True), TypeError, "default_timeout"),
        (lambda cls: MemoryStoreCache(threshold=-1), ValueError, "threshold"),
        (lambda cls: MemoryStoreCache(threshold=10.0), TypeError, "threshold"),
        (lambda cls: MemoryStoreCache(threshold="10"), TypeError, "threshold"),
        (lambda cls: MemoryStoreCache(threshold=10, max=10), TypeError, "not both"),
        (lambda cls: MemoryStoreCache(threshold=0, max=10), TypeError, "not both"),
        (lambda cls: MemoryStoreCache(serializer=None), TypeError, "cache.serializer"),
        (lambda cls: MemoryStoreCache(no_such_option=1), TypeError, "no_such_option"),
        (lambda cls: MemoryStoreCache(store=cls(serializer=None), max=10), TypeError, "default store only"),
        (lambda cls: MemoryStoreCache(store=cls(serializer=None), threshold=10), TypeError, "default store only"),
        (lambda cls: MemoryStoreCache(store=cls()), TypeError, "serializer=None"),  # json cannot hold bytes
        (lambda cls: MemoryStoreCache(store={}), TypeError, "MemoryStore"),
        (lambda cls: MemoryStoreCache(max=0), ValueError, "max"),
    ],
    ids=[
        "positional-store",
        "str-timeout",
        "bool-timeout",
        "negative-threshold",
        "float-threshold",
        "str-threshold",
        "threshold-and-max",
        "threshold-zero-and-max",
        "serializer-option",
        "unknown-option",
        "store-and-option",
        "store-and-threshold",
        "json-store",
        "not-a-store",
        "max-zero",
    ],
)
def test_bad_arguments_fail_at_construction(store_cls: type, make: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make(store_cls)


# -- the serializer: cachelib's protocol, reassignable ------------------------------------------------


def test_default_serializer_is_cachelibs_pickle(cache: MemoryStoreCache) -> None:
    assert isinstance(cache.serializer, cachelib.serializers.SimpleSerializer)
    cache.set("k", {"when": dt.datetime(2026, 1, 1)})
    assert pickle.loads(cache.store.get("k")) == {"when": dt.datetime(2026, 1, 1)}


def test_an_assigned_serializer_is_honoured(cache: MemoryStoreCache) -> None:
    import json

    cache.serializer = cachelib.serializers.JSONSerializer()
    assert cache.set("k", {"a": [1, 2]}) is True
    assert json.loads(cache.store.get("k")) == {"a": [1, 2]}  # the store holds the JSON bytes
    assert cache.get("k") == {"a": [1, 2]}
    assert cache.add("new", [3]) is True and json.loads(cache.store.get("new")) == [3]
    assert cache.set("bad", {1, 2}) is False  # JSONSerializer answers None for a set: nothing stored
    assert not cache.has("bad")


def test_a_custom_serializer_object_is_called_for_every_value(cache: MemoryStoreCache) -> None:
    class Reversing:
        """Any object with cachelib's dumps/loads."""

        def __init__(self) -> None:
            self.calls: list[str] = []

        def dumps(self, value: Any) -> bytes:
            self.calls.append("dumps")
            return str(value).encode()[::-1]

        def loads(self, data: bytes) -> Any:
            self.calls.append("loads")
            return data[::-1].decode()

    cache.serializer = serializer = Reversing()
    cache.set("k", "hello")
    assert cache.store.get("k") == b"olleh"
    assert cache.get("k") == "hello"
    assert cache.inc("n") == 1  # inc goes through it too (get + set)
    assert serializer.calls == ["dumps", "loads", "dumps"]


@pytest.mark.parametrize(
    "key",
    ["", "x" * 1025, "y" * 100_000, "\0starts-with-nul", "é" * 1024, "\ud800lone-surrogate"],
    ids=["empty", "1025", "huge", "nul", "1024-non-ascii", "surrogate"],
)
def test_any_str_key_works(cache: MemoryStoreCache, key: str) -> None:
    assert cache.set(key, "v") is True
    assert cache.get(key) == "v"
    assert cache.has(key)
    assert cache.add(key, "w") is False
    assert cache.inc(key + "#n") == 1
    assert cache.delete(key) is True
    assert not cache.has(key)


def test_long_keys_do_not_collide(cache: MemoryStoreCache) -> None:
    base = "k" * 2000
    cache.set(base + "1", 1)
    cache.set(base + "2", 2)
    cache.set("\0" + "k", 3)
    cache.set("k", 4)
    assert cache.get_many(base + "1", base + "2", "\0k", "k") == [1, 2, 3, 4]
    assert all(0 < len(key) <= 1024 for key in cache.store.ids())


def test_short_keys_are_stored_as_they_are(cache: MemoryStoreCache) -> None:
    cache.set("session:abc", 1)
    assert cache.store.ids() == ["session:abc"]


def test_str_subclass_keys_are_plain_str_in_the_store(cache: MemoryStoreCache) -> None:
    class Key(str):
        pass

    cache.set(Key("k"), 1)
    assert cache.get("k") == 1
    [stored] = cache.store.ids()
    assert type(stored) is str


def test_non_str_keys_are_refused(cache: MemoryStoreCache) -> None:
    for key in (1, b"k", None, ("k",)):
        with pytest.raises(TypeError):
            cache.set(key, 1)  # type: ignore[arg-type]
    assert len(cache.store) == 0


def test_timeouts_map_to_store_ttls(cache: MemoryStoreCache) -> None:
    assert cache._ttl(None) == 300
    assert cache._ttl(0) == math.inf
    assert cache._ttl(-5) is None
    assert cache._ttl(dt.timedelta(seconds=1.5)) == 2


# -- Flask-Session, SESSION_TYPE="cachelib" (research/integrations.md, section 1) --


def flask_session_app(backend: MemoryStoreCache) -> Any:
    flask = pytest.importorskip("flask")
    flask_session = pytest.importorskip("flask_session")
    app = flask.Flask(__name__)
    app.secret_key = "s"
    app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=backend)
    flask_session.Session(app)

    @app.get("/incr")
    def incr() -> str:
        flask.session["n"] = flask.session.get("n", 0) + 1
        return str(flask.session["n"])

    @app.get("/noop")
    def noop() -> str:
        return "ok"

    @app.get("/logout")
    def logout() -> str:
        flask.session.clear()
        return "bye"

    return app


def test_flask_session_end_to_end() -> None:
    backend = MemoryStoreCache()
    client = flask_session_app(backend).test_client()
    assert client.get("/noop").headers.getlist("Set-Cookie") == []
    assert backend.store.length() == 0
    assert client.get("/incr").text == "1"
    assert client.get("/incr").text == "2"
    sid = client.get_cookie("session").value
    assert backend.get("session:" + sid) == {"_permanent": True, "n": 2}
    client.get("/logout")
    assert client.get_cookie("session") is None
    assert backend.store.length() == 0


def test_flask_session_keeps_markup_flash_messages() -> None:
    """Pickle (the default store's serializer) keeps Markup, which msgspec/JSON routes lose."""
    flask = pytest.importorskip("flask")
    markupsafe = pytest.importorskip("markupsafe")
    backend = MemoryStoreCache()
    app = flask_session_app(backend)

    @app.get("/flash")
    def flash() -> str:
        flask.flash(markupsafe.Markup("<b>saved</b>"))
        return "flashed"

    @app.get("/show")
    def show() -> str:
        [message] = flask.get_flashed_messages()
        return type(message).__name__

    client = app.test_client()
    client.get("/flash")
    assert client.get("/show").text == "Markup"


def test_flask_session_unknown_sid_is_not_adopted() -> None:
    backend = MemoryStoreCache()
    client = flask_session_app(backend).test_client()
    client.set_cookie("session", "attacker-chosen-id")
    assert client.get("/incr").text == "1"
    assert client.get_cookie("session").value != "attacker-chosen-id"
    assert "session:attacker-chosen-id" not in backend.store
