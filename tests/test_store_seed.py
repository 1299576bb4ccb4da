"""The npm memorystore test suite (1.6.7's 18 tests + 1.6.8's 3), translated.

Milliseconds become seconds, sleeps become a fake clock, callbacks become
return values.  Where the port deliberately differs from the seed (SPEC), the
test says so and asserts the port's behaviour: `length()` counts live
sessions only, `max=0` is rejected instead of meaning "unbounded", and a
session with only `cookie.expires` gets the one-day default as in the seed.

The seed evicts the least recently used session (lru-cache): every store here
is made with ``eviction="lru"``, the option that keeps the seed's behaviour
exactly (the port's default, ``"protect"``, is tested in test_eviction.py).
"""

from __future__ import annotations

import base64
import json

import pytest
from helpers import wait_until

from memorystore.store import DEFAULT_TTL


@pytest.fixture
def make(make):
    """The suite's store factory, with the seed's eviction order."""

    def seed_make(**options):
        options.setdefault("eviction", "lru")
        return make(**options)

    return seed_make


def expires_in_ten_minutes():
    return {"cookie": {"expires": "2999-01-01T00:10:00.000Z"}}


# 1
def test_constructor_uses_default_options(make):
    store = make()
    assert store.core is not None
    assert store.core.maxsize is None  # max: Infinity
    assert store.check_period is None
    assert store._thread is None


# 2
def test_should_set_options(make):
    store = make(max=10, check_period=10, ttl=36, dispose=None, stale=True)
    assert store.core.maxsize == 10
    assert store.check_period == 10
    assert store._thread is not None
    store.set("a", {})
    assert store.core.remaining("a") == 36
    assert store._stale is True


# 3
def test_no_interval_by_default(make):
    assert make()._thread is None


# 4
def test_should_only_contain_10_items(make):
    store = make(max=10)
    for i in range(15):
        store.set(str(i), expires_in_ten_minutes())
    assert store.length() == 10


# 5
def test_should_delete_the_first_item(make):
    store = make(max=10)
    for i in range(15):
        store.set(str(i), expires_in_ten_minutes())
    store.destroy("14")
    assert store.length() == 9


# (lru-cache's order, which the seed inherits: the least recently used goes, read or not)
def test_max_evicts_the_least_recently_used_session(make):
    store = make(max=2)
    assert store.eviction == "lru"
    store.set("a", {})
    assert store.get("a") == {}
    store.set("b", {})
    store.set("c", {})  # a was read, but b was used more recently: a goes
    assert store.ids() == ["c", "b"]
    store.get("b")
    store.set("d", {})
    assert store.ids() == ["d", "b"]


# 6
def test_should_delete_the_last_item(make):
    store = make(max=10)
    for i in range(10):
        store.set(str(i), expires_in_ten_minutes())
    store.destroy("0")
    store.destroy("1")
    assert store.length() == 8
    for i in range(10, 12):
        store.set(str(i), expires_in_ten_minutes())
    assert store.length() == 10


# 7
def test_should_set_and_get_a_sample_entry(make):
    store = make()
    store.set("hello", {"cookie": {}, "sample": True})
    assert store.get("hello")["sample"] is True


# 8
def test_should_set_ttl_from_cookie_max_age(make, fake_timer):
    store = make()
    store.set("hello", {"cookie": {"maxAge": 400}, "sample": True})  # express data: milliseconds
    assert store.get("hello")["sample"] is True
    fake_timer.advance(0.5)
    assert store.get("hello") is None


def test_should_set_ttl_from_cookie_max_age_seconds(make, fake_timer):
    store = make()
    store.set("hello", {"cookie": {"max_age": 0.4}, "sample": True})  # the Python spelling: seconds
    assert store.get("hello")["sample"] is True
    fake_timer.advance(0.5)
    assert store.get("hello") is None


# 9  (the seed returned undefined for get(''); the port answers None, as for any sid no session has: SPEC)
def test_should_not_get_empty_entry(make):
    assert make().get("") is None


# 10
def test_should_not_get_a_deleted_entry(make):
    store = make()
    store.set("foo", {"cookie": {}})
    assert store.get("foo")
    store.destroy("foo")
    assert store.get("foo") is None


# 11
def test_should_not_get_an_expired_entry(make, fake_timer):
    store = make()
    store.set("hello", {"cookie": {"maxAge": 200}, "sample": True})
    fake_timer.advance(0.3)
    assert store.get("hello") is None


# 12
def test_should_enable_automatic_prune_for_expired_entries(make, fake_timer):
    store = make(check_period=0.01)
    store.set("foo", {"cookie": {"maxAge": 150}})
    store.set("bar", {"cookie": {"maxAge": 150}})
    assert store.core.currsize == 2
    fake_timer.advance(0.5)
    assert wait_until(lambda: store.core.currsize == 0)
    assert store.length() == 0


# 13  (the seed still counted 2 expired sessions; the port's length() is live-only,
#      but without the thread they are still held: currsize 2)
def test_automatic_check_for_expired_entries_should_be_disabled(make, fake_timer):
    store = make()
    store.set("foo", {"cookie": {"maxAge": 150}})
    store.set("bar", {"cookie": {"maxAge": 150}})
    fake_timer.advance(0.5)
    assert store._thread is None
    assert store.core.currsize == 2
    assert store.length() == 0


# 14
def test_should_touch_a_given_entry(make, fake_timer):
    store = make()
    store.set("hei", {"cookie": {"maxAge": 50}})
    assert store.touch("hei", {"cookie": {"maxAge": 300}}) is True
    fake_timer.advance(0.2)
    assert store.get("hei")


# 15
def test_should_fetch_all_entries_ids(make):
    store = make()
    for i in range(10):
        store.set(f"sess{i}", {"cookie": {"maxAge": 1000}})
    assert store.ids() == [f"sess{i}" for i in reversed(range(10))]


# 16
def test_should_fetch_all_entries_values(make):
    store = make()
    for i in range(10):
        store.set(f"sess-{i}", {"cookie": {"maxAge": 1000}, "i": i})
    result = store.all()
    assert isinstance(result, dict) and len(result) == 10
    for sid, session in result.items():
        assert str(session["i"]) == sid.split("-")[1]


# 17
def test_should_count_all_entries_in_the_store(make):
    store = make()
    for i in range(10):
        store.set(f"sess{i}", {"cookie": {"maxAge": 1000}})
    assert store.length() == 10 == len(store)


# 18
def test_should_delete_all_entries_from_the_store(make):
    store = make()
    for i in range(10):
        store.set(f"sess{i}", {"cookie": {"maxAge": 1000}})
    assert store.length() == 10
    store.clear()
    assert store.length() == 0


# 19  (1.6.8 kept max=0 as 0, which lru-cache treated as unbounded; the port rejects it: SPEC)
def test_falsy_numeric_max_is_rejected(store_cls):
    with pytest.raises(ValueError):
        store_cls(max=0)


# 20
def test_should_not_persist_sessions_that_fail_to_serialize(make):
    store = make()
    session = {"cookie": {}}
    session["self"] = session
    with pytest.raises(ValueError):  # json: "Circular reference detected"
        store.set("circular", session)
    assert store.get("circular") is None
    assert store.length() == 0


def test_failed_serialize_keeps_the_previous_session(make):
    store = make()
    store.set("sid", {"cookie": {}, "v": 1})
    session = {"cookie": {}}
    session["self"] = session
    with pytest.raises(ValueError):
        store.set("sid", session)
    assert store.get("sid") == {"cookie": {}, "v": 1}


# 21
def test_should_allow_custom_serializers(make):
    class Base64Json:
        @staticmethod
        def dumps(obj):
            return base64.b64encode(json.dumps(obj).encode()).decode()

        @staticmethod
        def loads(data):
            return json.loads(base64.b64decode(data))

    store = make(serializer=Base64Json)
    store.set("hello", {"cookie": {}, "sample": True})
    assert store.core.peek("hello") == Base64Json.dumps({"cookie": {}, "sample": True})
    assert store.get("hello")["sample"] is True


def test_cookie_expires_only_gets_one_day(make):
    store = make()
    store.set("a", expires_in_ten_minutes())
    assert store.core.remaining("a") == DEFAULT_TTL
