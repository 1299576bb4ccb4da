"""MemoryStore contract tests (SPEC "The store" and "Precise rules"), on both cores."""

from __future__ import annotations

import copy
import gc
import json
import logging
import math
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections import Counter
from datetime import timedelta

import pytest
from helpers import wait_until

from memorystore import _log
from memorystore.store import DEFAULT_TTL, MAX_SID_LENGTH


class Recorder:
    """A dispose callback that records (sid, session, reason)."""

    def __init__(self):
        self.calls = []

    def __call__(self, sid, session, reason):
        self.calls.append((sid, session, reason))

    @property
    def reasons(self):
        return [reason for _, _, reason in self.calls]


# -- construction ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": -1}, ValueError),
        ({"ttl": 0}, ValueError),
        ({"ttl": float("nan")}, ValueError),
        ({"ttl": 10**400}, ValueError),
        ({"ttl": True}, TypeError),
        ({"ttl": "60"}, TypeError),
        ({"ttl": timedelta(seconds=-5)}, ValueError),
        ({"max": 0}, ValueError),
        ({"max": -3}, ValueError),
        ({"max": 2.5}, TypeError),
        ({"max": 10.0}, TypeError),
        ({"max": 1e6}, TypeError),
        ({"max": True}, TypeError),
        ({"max": "10"}, TypeError),
        ({"check_period": -1}, ValueError),
        ({"check_period": float("nan")}, ValueError),
        ({"check_period": math.inf}, ValueError),
        ({"check_period": True}, TypeError),
        ({"check_period": "10"}, TypeError),
        ({"length": 3}, TypeError),
        ({"dispose": "nope"}, TypeError),
        ({"serializer": object()}, TypeError),
        ({"serializer": "json"}, TypeError),
        ({"timer": 5}, TypeError),
    ],
)
def test_bad_options_raise_at_construction(store_cls, options, error):
    with pytest.raises(error):
        store_cls(**options)


@pytest.mark.parametrize("bound", [True, False, 0, -1, 1.5, 2.0, 10.0, 1e6, "3", b"3"], ids=repr)
def test_a_bad_bound_is_the_same_error_in_the_store_and_its_core(store_cls, lru_impl, bound):
    """One rule for max and maxsize: an int >= 1 or None (TypeError for any other type, floats included)."""
    with pytest.raises((TypeError, ValueError)) as core_error:
        lru_impl.LRUCache(bound)
    with pytest.raises((TypeError, ValueError)) as store_error:
        store_cls(max=bound)
    assert type(store_error.value) is type(core_error.value)
    if type(store_cls).__name__ == "SharedStoreFactory":  # max is capacity there, and never None
        assert str(store_error.value).startswith("capacity must be")
        return
    assert "an int >= 1 or None" in str(store_error.value)
    if isinstance(bound, float):
        assert "1e6" in str(store_error.value)  # says how to write it


def test_options_are_keyword_only(store_cls):
    with pytest.raises(TypeError):
        store_cls(60)


def test_good_options_construct(make):
    store = make(ttl=timedelta(minutes=5), max=10, length=lambda v, sid: 1, check_period=0, stale=True)
    assert store.check_period is None
    store.set("a", {})
    assert store.core.remaining("a") == 300.0


def test_core_is_built_from_core_class_and_read_only(store_cls, fake_timer):
    store = store_cls(max=7, timer=fake_timer)
    assert type(store.core) is store_cls._core_class
    assert store.core.maxsize == 7
    assert store.core.ttl is None
    with pytest.raises(AttributeError):
        store.core = None


# -- session ids ------------------------------------------------------------------


class StrSub(str):
    pass


NON_STR_SIDS = [None, b"abc", 123, ("a",), StrSub("abc")]
# A str no session can have: writes refuse it, reads answer "absent" (a bad cookie must not crash a request).
UNUSABLE_SIDS = ["", "x" * (MAX_SID_LENGTH + 1)]

WRITES = pytest.mark.parametrize(
    "call", [lambda s, sid: s.set(sid, {}), lambda s, sid: s.add(sid, {})], ids=["set", "add"]
)
READS = pytest.mark.parametrize(
    ("call", "absent"),
    [
        (lambda s, sid: s.get(sid), None),
        (lambda s, sid: s.touch(sid), False),
        (lambda s, sid: s.touch(sid, ttl=-1), False),
        (lambda s, sid: sid in s, False),
        (lambda s, sid: s.destroy(sid), None),
        (lambda s, sid: s.destroy([sid]), None),
        (lambda s, sid: s.destroy(iter([sid])), None),
    ],
    ids=["get", "touch", "touch-expired", "contains", "destroy", "destroy-list", "destroy-iter"],
)


def _store_with_one(make):
    store = make()
    store.set("keep", {"v": 1})
    return store


def _unchanged(store):
    assert store.ids() == ["keep"]
    assert store.get("keep") == {"v": 1}


@pytest.mark.parametrize("sid", NON_STR_SIDS, ids=repr)
@pytest.mark.parametrize(
    "call",
    [
        lambda s, sid: s.get(sid),
        lambda s, sid: s.set(sid, {}),
        lambda s, sid: s.add(sid, {}),
        lambda s, sid: s.touch(sid),
        lambda s, sid: sid in s,
        lambda s, sid: s.destroy([sid] if type(sid) is tuple else sid),  # a tuple is a batch of sids
        lambda s, sid: s.destroy([sid]),
    ],
    ids=["get", "set", "add", "touch", "contains", "destroy", "destroy-list"],
)
def test_non_str_sid_is_a_type_error_everywhere_and_store_unchanged(make, call, sid):
    store = _store_with_one(make)
    with pytest.raises(TypeError):
        call(store, sid)
    _unchanged(store)


@pytest.mark.parametrize("sid", UNUSABLE_SIDS, ids=["empty", "too-long"])
@WRITES
def test_writes_refuse_a_str_no_session_can_have(make, call, sid):
    store = _store_with_one(make)
    with pytest.raises(ValueError):
        call(store, sid)
    _unchanged(store)


@pytest.mark.parametrize("sid", UNUSABLE_SIDS, ids=["empty", "too-long"])
@READS
def test_reads_of_a_str_no_session_can_have_answer_absent(make, call, absent, sid):
    store = _store_with_one(make)
    assert call(store, sid) is absent
    _unchanged(store)


def test_destroy_batch_skips_unusable_strs_and_checks_types_first(make):
    store = make()
    for sid in ("a", "b", "c"):
        store.set(sid, 1)
    store.destroy(["a", "", "x" * (MAX_SID_LENGTH + 1), "b"])
    assert store.ids() == ["c"]
    with pytest.raises(TypeError):
        store.destroy(["c", "", b"bytes"])
    assert store.ids() == ["c"]  # nothing removed: the type error came first


def test_destroy_non_iterable_is_type_error(make):
    with pytest.raises(TypeError):
        make().destroy(42)


def test_bad_sid_error_does_not_echo_sid(make):
    secret = "s3cr3t-session-id" * 70
    with pytest.raises(ValueError) as info:
        make().set(secret, 1)
    assert "s3cr3t" not in str(info.value)


def test_longest_sid_accepted(make):
    store = make()
    sid = "x" * MAX_SID_LENGTH
    store.set(sid, 1)
    assert store.get(sid) == 1
    assert sid in store


def test_destroy_iterable_validates_all_before_removing_any(make):
    rec = Recorder()
    store = make(dispose=rec)
    store.set("a", 1)
    store.set("b", 2)
    with pytest.raises(TypeError):
        store.destroy(["a", 7, "b"])
    assert sorted(store.ids()) == ["a", "b"]
    assert rec.calls == []
    store.destroy(iter(["a", "", "b", "missing"]))
    assert store.ids() == []
    assert sorted(rec.calls) == [("a", 1, "delete"), ("b", 2, "delete")]


# -- ttl rules ------------------------------------------------------------------


def test_default_ttl_is_one_day(make, fake_timer):
    store = make()
    store.set("a", {"x": 1})
    assert store.core.remaining("a") == DEFAULT_TTL == 86400
    fake_timer.advance(86400 - 0.001)
    assert store.get("a") == {"x": 1}
    fake_timer.advance(0.001)
    assert store.get("a") is None


def test_expiry_is_exact(make, fake_timer):
    store = make(ttl=10)
    store.set("a", 1)
    fake_timer.advance(9.999)
    assert "a" in store and len(store) == 1
    fake_timer.advance(0.001)  # timer() == t + d: expired
    assert "a" not in store
    assert len(store) == 0 and store.ids() == [] and store.all() == {}
    assert store.touch("a") is False
    assert store.get("a") is None


def test_ttl_number_and_timedelta(make):
    assert make(ttl=30).set("a", {}) is None
    store = make(ttl=30)
    store.set("a", {})
    assert store.core.remaining("a") == 30
    store2 = make(ttl=timedelta(minutes=2))
    store2.set("a", {})
    assert store2.core.remaining("a") == 120


def test_ttl_option_overrides_cookie(make):
    store = make(ttl=30)
    store.set("a", {"cookie": {"max_age": 1000}})
    assert store.core.remaining("a") == 30


def test_cookie_max_age_seconds(make):
    store = make()
    store.set("a", {"cookie": {"max_age": 120}})
    assert store.core.remaining("a") == 120


def test_cookie_max_age_timedelta(make):
    store = make(serializer=pickle)
    store.set("a", {"cookie": {"max_age": timedelta(seconds=90)}})
    assert store.core.remaining("a") == 90


def test_cookie_maxage_milliseconds(make):
    store = make()
    store.set("a", {"cookie": {"maxAge": 60000}})
    assert store.core.remaining("a") == 60


def test_cookie_max_age_wins_over_maxage(make):
    store = make()
    store.set("a", {"cookie": {"max_age": 5, "maxAge": 60000}})
    assert store.core.remaining("a") == 5


@pytest.mark.parametrize(
    "session",
    [
        {"cookie": {"max_age": None}},
        {"cookie": {"max_age": "5"}},
        {"cookie": {"maxAge": "5000"}},
        {"cookie": {"max_age": True}},
        {"cookie": {"max_age": float("nan")}},
        {"cookie": {"expires": "2030-01-01"}},
        {"cookie": "max_age=5"},
        {"cookie": None},
        {},
        [1, 2],
        "text",
        None,
    ],
)
def test_unusable_cookie_gives_default(make, session):
    store = make()
    store.set("a", session)
    assert store.core.remaining("a") == DEFAULT_TTL


def test_cookie_max_age_from_mapping_subclass(make):
    from collections import OrderedDict

    store = make()
    store.set("a", OrderedDict(cookie=OrderedDict(max_age=7)))
    assert store.core.remaining("a") == 7


def test_cookie_max_age_zero_removes(make):
    rec = Recorder()
    store = make(dispose=rec)
    store.set("a", {"v": 1})
    store.set("a", {"cookie": {"max_age": 0}})
    assert "a" not in store
    assert rec.calls == [("a", {"v": 1}, "set")]


def test_ttl_callable_gets_sid_and_session(make):
    seen = []

    def ttl(sid, session):
        seen.append((sid, session))
        return session["minutes"] * 60

    store = make(ttl=ttl)
    store.set("a", {"minutes": 3})
    assert seen == [("a", {"minutes": 3})]
    assert store.core.remaining("a") == 180


def test_ttl_callable_may_return_timedelta(make):
    store = make(ttl=lambda sid, s: timedelta(seconds=42))
    store.set("a", {})
    assert store.core.remaining("a") == 42


@pytest.mark.parametrize(
    ("result", "error"),
    [("60", TypeError), (None, TypeError), (True, TypeError), (float("nan"), ValueError), (10**400, ValueError)],
)
def test_ttl_callable_bad_value_leaves_old_entry_exactly(make, fake_timer, result, error):
    answers = {"old": 100}

    def ttl(sid, session):
        return answers.get(session, result)

    store = make(ttl=ttl)
    store.set("a", "old")
    store.set("b", "old")  # a is now least recently used
    fake_timer.advance(10)
    with pytest.raises(error):
        store.set("a", "new")
    assert store.ids() == ["b", "a"]
    assert store.core.remaining("a") == 90
    assert store.get("a") == "old"
    store.check_invariants()


def test_ttl_callable_raising_leaves_old_entry(make):
    def ttl(sid, session):
        if session == "boom":
            raise RuntimeError("ttl failed")
        return 50

    rec = Recorder()
    store = make(ttl=ttl, dispose=rec)
    store.set("a", "old")
    with pytest.raises(RuntimeError):
        store.set("a", "boom")
    with pytest.raises(RuntimeError):
        store.add("z", "boom")
    assert store.get("a") == "old" and "z" not in store
    assert rec.calls == []


def test_per_call_ttl_overrides_option(make, fake_timer):
    store = make(ttl=10)
    store.set("a", 1, ttl=100)
    store.set("b", 1, ttl=timedelta(seconds=5))
    assert store.core.remaining("a") == 100
    assert store.core.remaining("b") == 5


@pytest.mark.parametrize(("ttl", "error"), [("5", TypeError), (True, TypeError), (float("nan"), ValueError)])
def test_per_call_bad_ttl_raises_and_keeps_old(make, ttl, error):
    store = make()
    store.set("a", 1)
    with pytest.raises(error):
        store.set("a", 2, ttl=ttl)
    with pytest.raises(error):
        store.touch("a", ttl=ttl)
    assert store.get("a") == 1


def test_infinite_ttl_never_expires(make, fake_timer):
    store = make(ttl=math.inf)
    store.set("a", 1)
    store.set("b", 2, ttl=math.inf)
    fake_timer.advance(1e12)
    assert store.get("a") == 1 and store.get("b") == 2
    assert store.core.remaining("a") == math.inf


@pytest.mark.parametrize("ttl", [0, -1, timedelta(0)])
def test_set_with_nonpositive_ttl_removes(make, ttl):
    rec = Recorder()
    store = make(dispose=rec)
    store.set("a", {"v": 1})
    store.set("a", {"v": 2}, ttl=ttl)
    assert "a" not in store and len(store) == 0
    assert rec.calls == [("a", {"v": 1}, "set")]
    store.set("b", 1, ttl=ttl)  # nothing there: nothing stored, nothing disposed
    assert "b" not in store and len(rec.calls) == 1


# -- serializer ---------------------------------------------------------------------


def test_json_default_returns_fresh_copies(make):
    store = make()
    session = {"user": "ann", "items": [1, 2]}
    store.set("a", session)
    session["items"].append(3)  # later changes to the caller's object don't reach the store
    first, second = store.get("a"), store.get("a")
    assert first == second == {"user": "ann", "items": [1, 2]}
    assert first is not second
    assert isinstance(store.core.peek("a"), str)
    assert json.loads(store.core.peek("a")) == first


def test_pickle_serializer(make):
    store = make(serializer=pickle)
    store.set("a", {"when": timedelta(seconds=3), "t": (1, 2)})
    assert isinstance(store.core.peek("a"), bytes)
    assert store.get("a") == {"when": timedelta(seconds=3), "t": (1, 2)}


def test_serializer_none_stores_the_object(make):
    store = make(serializer=None)
    session = {"a": 1}
    store.set("s", session)
    assert store.get("s") is session
    assert store.all()["s"] is session


@pytest.mark.parametrize("stale", [False, True])
def test_serializer_none_stores_none_as_a_session(make, fake_timer, stale):
    """get() answers a miss with None internally: a stored None must still be told apart."""
    disposed = []
    store = make(serializer=None, ttl=10, stale=stale, dispose=lambda sid, session, reason: disposed.append(reason))
    store.set("s", None)
    assert store.get("s") is None
    assert "s" in store and store.ids() == ["s"] and disposed == []
    fake_timer.advance(10)
    assert store.get("s") is None  # expired: removed and disposed once (stale: served once, as None)
    assert "s" not in store and store.ids() == [] and disposed == ["expire"]
    assert store.get("s") is None and disposed == ["expire"]


def test_custom_serializer_object(make):
    class Upper:
        def dumps(self, obj):
            return json.dumps(obj).upper()

        def loads(self, data):
            return json.loads(data.lower())

    store = make(serializer=Upper())
    store.set("a", {"k": "v"})
    assert store.core.peek("a") == '{"K": "V"}'
    assert store.get("a") == {"k": "v"}


def test_failing_dumps_propagates_and_store_unchanged(make, fake_timer):
    rec = Recorder()
    store = make(dispose=rec, ttl=100, max=2)
    store.set("a", {"v": 1})
    store.set("b", {"v": 2})
    fake_timer.advance(5)
    with pytest.raises(TypeError):
        store.set("a", {"bad": object()})
    with pytest.raises(TypeError):
        store.set("c", {"bad": object()})  # would have evicted
    assert store.ids() == ["b", "a"]
    assert store.core.remaining("a") == 95
    assert store.get("a") == {"v": 1}
    assert rec.calls == []
    store.check_invariants()


def test_failing_loads_on_get_propagates(make):
    class BadLoads:
        dumps = staticmethod(json.dumps)

        @staticmethod
        def loads(data):
            raise ValueError("cannot decode")

    store = make(serializer=BadLoads())
    store.set("a", {})
    with pytest.raises(ValueError):
        store.get("a")
    assert "a" in store


# -- dispose ---------------------------------------------------------------------


def test_dispose_reason_set_on_overwrite(make):
    rec = Recorder()
    store = make(dispose=rec)
    store.set("a", {"v": 1})
    assert rec.calls == []
    store.set("a", {"v": 2})
    assert rec.calls == [("a", {"v": 1}, "set")]


def test_no_dispose_on_set(make):
    rec = Recorder()
    store = make(dispose=rec, no_dispose_on_set=True, max=1)
    store.set("a", {"v": 1})
    store.set("a", {"v": 2})
    assert rec.calls == []
    store.set("b", 1)
    store.destroy("b")
    assert rec.calls == [("a", {"v": 2}, "evict"), ("b", 1, "delete")]


def test_dispose_reason_evict_lru_first(make):
    rec = Recorder()
    store = make(dispose=rec, max=2)
    store.set("a", 1)
    store.set("b", 2)
    store.get("a")  # b is now least recently used
    store.set("c", 3)
    assert rec.calls == [("b", 2, "evict")]
    assert store.ids() == ["c", "a"]


def test_expired_evicted_before_live(make, fake_timer):
    rec = Recorder()
    store = make(dispose=rec, max=2)
    store.set("old", 1, ttl=100)
    store.set("short", 2, ttl=1)
    store.get("short")
    fake_timer.advance(2)
    store.set("new", 3)
    assert rec.calls == [("short", 2, "expire")]
    assert store.ids() == ["new", "old"]


def test_dispose_reason_expire_on_get_and_prune(make, fake_timer):
    rec = Recorder()
    store = make(dispose=rec, ttl=10)
    store.set("a", {"v": "a"})
    store.set("b", {"v": "b"})
    fake_timer.advance(10)
    assert store.get("a") is None
    assert rec.calls == [("a", {"v": "a"}, "expire")]
    assert store.prune() == 1
    assert rec.calls[1] == ("b", {"v": "b"}, "expire")
    assert store.prune() == 0


def test_dispose_reason_expire_when_overwriting_expired(make, fake_timer):
    rec = Recorder()
    store = make(dispose=rec, ttl=10, no_dispose_on_set=True)
    store.set("a", 1)
    fake_timer.advance(11)
    store.set("a", 2)
    assert rec.calls == [("a", 1, "expire")]


def test_dispose_reason_delete_on_destroy_and_expire_for_expired(make, fake_timer):
    rec = Recorder()
    store = make(dispose=rec)
    store.set("a", 1, ttl=5)
    store.set("b", 2, ttl=50)
    fake_timer.advance(6)
    store.destroy(["a", "b", "nope"])
    assert rec.calls == [("a", 1, "expire"), ("b", 2, "delete")]
    store.destroy("b")
    assert len(rec.calls) == 2


def test_clear_disposes_live_as_delete_and_expired_as_expire(make, fake_timer):
    rec = Recorder()
    store = make(dispose=rec)
    store.set("a", 1, ttl=5)
    store.set("b", 2, ttl=50)
    store.set("c", 3, ttl=math.inf)
    fake_timer.advance(6)
    store.clear()
    assert sorted(rec.calls) == [("a", 1, "expire"), ("b", 2, "delete"), ("c", 3, "delete")]
    assert len(store) == 0 and store.core.currsize == 0
    store.check_invariants()


def test_clear_without_dispose(make):
    store = make()
    for i in range(5):
        store.set(f"s{i}", i)
    store.clear()
    assert len(store) == 0 and store.ids() == [] and store.core.currsize == 0


def test_oversize_entry_not_stored_old_removed_with_set(make):
    rec = Recorder()
    store = make(dispose=rec, max=15, length=lambda value, sid: len(value))
    store.set("a", "x" * 4)  # json adds quotes: length 6
    store.set("b", "y" * 4)
    store.set("a", "z" * 14)  # length 16 > 15
    assert "a" not in store and "b" in store
    assert rec.calls == [("a", "xxxx", "set")]
    store.set("c", "q" * 20)  # never stored, nothing evicted, nothing raised
    assert store.ids() == ["b"] and len(rec.calls) == 1


def _too_large_records(caplog):
    return [r for r in caplog.records if r.name == "memorystore" and "not stored" in r.getMessage()]


def test_oversize_entry_is_logged_once_a_minute_with_length_and_bound_only(make, fake_timer, caplog):
    store = make(max=15, length=lambda value, sid: len(value))
    sid, secret = "sid-never-logged-0123", "hunter2-" * 3
    with caplog.at_level(logging.WARNING, logger="memorystore"):
        store.set("fits", "x")
        assert _too_large_records(caplog) == []  # nothing to say while entries fit
        store.set(sid, secret)  # json adds quotes: length 26 > 15
        [record] = _too_large_records(caplog)
        assert record.levelno == logging.WARNING
        message = record.getMessage()
        assert "26" in message and "max=15" in message
        assert sid not in message and "hunter2" not in message and "fits" not in message
        for _ in range(5):  # within the minute: no more lines, and still nothing stored
            fake_timer.advance(11.0)
            store.set(sid, secret)
            assert store.add("other", secret) is True  # nothing live there: "added", and dropped
        assert len(_too_large_records(caplog)) == 1
        fake_timer.advance(5.0)  # 60 s after the first line
        store.load([("loaded", '"' + "z" * 30 + '"', 100)])
        assert len(_too_large_records(caplog)) == 2
        assert "32" in _too_large_records(caplog)[1].getMessage()
    assert store.ids() == ["fits"]


def test_oversize_warning_is_per_store(make, caplog):
    one = make(max=3, length=lambda value, sid: len(value))
    two = make(max=3, length=lambda value, sid: len(value))
    with caplog.at_level(logging.WARNING, logger="memorystore"):
        one.set("a", "long value")
        one.set("a", "long value")
        two.set("a", "long value")
    assert len(_too_large_records(caplog)) == 2


def test_length_bounds_total(make):
    rec = Recorder()
    store = make(dispose=rec, max=20, length=lambda value, sid: len(value))
    for i in range(5):
        store.set(f"s{i}", "x" * 4)  # 6 chars each with quotes
    assert store.ids() == ["s4", "s3", "s2"]
    assert store.core.currsize == 18
    assert [c[2] for c in rec.calls] == ["evict", "evict"]


def test_length_receives_stored_value_and_sid(make):
    seen = []

    def length(value, sid):
        seen.append((value, sid))
        return 1

    store = make(length=length, max=5)
    store.set("a", {"k": 1})
    assert seen == [('{"k": 1}', "a")]


@pytest.mark.parametrize(("result", "error"), [(-1, ValueError), ("3", TypeError), (1.5, TypeError), (True, TypeError)])
def test_bad_length_result_raises_and_store_unchanged(make, result, error):
    store = make(max=5, length=lambda v, sid: 1 if v == "1" else result)
    store.set("a", 1)
    with pytest.raises(error):
        store.set("a", 2)
    assert store.get("a") == 1


def test_dispose_exception_logged_with_traceback_and_swallowed(make, caplog):
    def dispose(sid, session, reason):
        raise RuntimeError("dispose exploded")

    store = make(dispose=dispose)
    sid = "secret-sid-1234567890"
    store.set(sid, {"password": "hunter2"})
    with caplog.at_level(logging.WARNING, logger="memorystore"):
        store.set(sid, {"password": "hunter3"})
        store.destroy(sid)
    assert "a" not in store and sid not in store
    records = [r for r in caplog.records if r.name == "memorystore"]
    assert len(records) == 2
    for record in records:
        assert record.levelno >= logging.WARNING
        assert record.exc_info is not None and record.exc_info[0] is RuntimeError
        assert sid not in record.getMessage()
        assert "hunter" not in record.getMessage()


def test_dispose_runs_outside_the_lock_and_may_reenter(make):
    store = None
    log = []

    def dispose(sid, session, reason):
        assert not store._lock._is_owned()
        log.append((sid, reason))
        if reason == "evict":
            store.set("re-" + sid, session)  # re-enter: this may evict again
        store.check_invariants()

    store = make(dispose=dispose, max=2)
    for i in range(6):
        store.set(f"s{i}", i)
    assert len(store) == 2
    store.get("s5")
    store.destroy(store.ids())
    store.clear()
    assert len(store) == 0
    assert ("s0", "evict") in log
    store.check_invariants()


def test_dispose_called_from_other_thread_does_not_deadlock(make):
    # dispose waits for another thread that uses the store: would deadlock if dispose ran under the lock.
    store = None

    def dispose(sid, session, reason):
        t = threading.Thread(target=lambda: store.set("other", 1))
        t.start()
        t.join(5)
        assert not t.is_alive()

    store = make(dispose=dispose)
    store.set("a", 1)
    store.destroy("a")
    assert "other" in store


# -- stale ------------------------------------------------------------------------


def test_stale_returns_expired_once(make, fake_timer):
    rec = Recorder()
    store = make(stale=True, ttl=10, dispose=rec)
    store.set("a", {"v": 1})
    fake_timer.advance(10)
    assert "a" not in store  # expired is invisible to everything but get
    assert store.get("a") == {"v": 1}
    assert rec.calls == [("a", {"v": 1}, "expire")]
    assert store.get("a") is None
    assert len(rec.calls) == 1


def test_not_stale_by_default(make, fake_timer):
    store = make(ttl=10)
    store.set("a", 1)
    fake_timer.advance(10)
    assert store.get("a") is None


# -- add ----------------------------------------------------------------------------


def test_add_only_when_absent(make, fake_timer):
    rec = Recorder()
    store = make(dispose=rec, ttl=10)
    assert store.add("a", {"v": 1}) is True
    assert store.add("a", {"v": 2}) is False
    assert store.get("a") == {"v": 1}
    fake_timer.advance(10)
    assert store.add("a", {"v": 3}, ttl=30) is True
    assert store.get("a") == {"v": 3}
    assert store.core.remaining("a") == 30
    assert rec.calls == [("a", {"v": 1}, "expire")]


def test_add_does_not_change_recency_when_present(make):
    store = make()
    store.set("a", 1)
    store.set("b", 2)
    assert store.add("a", 9) is False
    assert store.ids() == ["b", "a"]


def test_add_is_atomic_under_threads(make):
    store = make()
    wins = Counter()
    barrier = threading.Barrier(8)

    def worker(n):
        barrier.wait()
        for i in range(200):
            if store.add(f"k{i}", n):
                wins[i] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 200 and set(wins.values()) == {1}


# -- touch ----------------------------------------------------------------------------


def test_touch_renews_and_promotes_without_serializing_or_disposing(make, fake_timer):
    calls = Counter()

    class Counting:
        def dumps(self, obj):
            calls["dumps"] += 1
            return json.dumps(obj)

        def loads(self, data):
            calls["loads"] += 1
            return json.loads(data)

    rec = Recorder()
    store = make(serializer=Counting(), dispose=rec, ttl=10)
    store.set("a", {"v": 1})
    store.set("b", {"v": 2})
    fake_timer.advance(8)
    assert store.touch("a") is True
    assert store.ids() == ["a", "b"]
    assert store.core.remaining("a") == 10
    fake_timer.advance(5)
    assert "b" not in store and store.get("a") == {"v": 1}
    assert calls == Counter(dumps=2, loads=1)
    assert rec.calls == []


def test_touch_with_session_cookie_and_ttl(make):
    store = make()
    store.set("a", {"data": 1, "cookie": {"max_age": 50}})
    assert store.touch("a", {"cookie": {"max_age": 500}}) is True
    assert store.core.remaining("a") == 500
    assert store.get("a") == {"data": 1, "cookie": {"max_age": 50}}  # the value is not replaced
    assert store.touch("a", {"cookie": {"maxAge": 7000}}) is True
    assert store.core.remaining("a") == 7
    assert store.touch("a", {"cookie": {"max_age": 500}}, ttl=20) is True
    assert store.core.remaining("a") == 20
    assert store.touch("a") is True
    assert store.core.remaining("a") == DEFAULT_TTL


def test_touch_uses_ttl_callable(make):
    store = make(ttl=lambda sid, session: 77 if session is None else 33)
    store.set("a", {})
    store.touch("a")
    assert store.core.remaining("a") == 77
    store.touch("a", {})
    assert store.core.remaining("a") == 33


def test_touch_missing_or_expired_changes_nothing(make, fake_timer):
    rec = Recorder()
    store = make(ttl=10, dispose=rec)
    assert store.touch("nope", {}) is False
    store.set("a", 1)
    fake_timer.advance(10)
    assert store.touch("a") is False
    assert len(store) == 0 and rec.calls == []
    assert store.get("a") is None  # still found expired, not resurrected


def test_touch_nonpositive_ttl_leaves_entry_expired(make):
    rec = Recorder()
    store = make(dispose=rec)
    store.set("a", 1)
    assert store.touch("a", ttl=0) is True
    assert "a" not in store and rec.calls == []
    assert store.prune() == 1
    assert rec.calls == [("a", 1, "expire")]


# -- reads never change recency -----------------------------------------------------------


def test_all_ids_length_contains_keep_recency_and_skip_expired(make, fake_timer):
    store = make()
    store.set("a", {"n": "a"}, ttl=100)
    store.set("b", {"n": "b"}, ttl=5)
    store.set("c", {"n": "c"}, ttl=100)
    store.get("a")
    assert store.ids() == ["a", "c", "b"]
    assert list(store.all()) == ["a", "c", "b"]
    fake_timer.advance(5)
    assert store.all() == {"a": {"n": "a"}, "c": {"n": "c"}}
    assert store.ids() == ["a", "c"]
    assert store.length() == len(store) == 2
    assert "c" in store and "b" not in store


def test_reads_do_not_change_eviction_order(make):
    store = make(max=3)
    for sid in ["a", "b", "c"]:
        store.set(sid, 1)
    store.ids(), store.all(), len(store), "a" in store, store.length(), store.dump(), store.prune()
    store.set("d", 1)
    assert store.ids() == ["d", "c", "b"]


def test_prune_keeps_recency(make, fake_timer):
    store = make(max=3)
    store.set("a", 1, ttl=100)
    store.set("x", 1, ttl=1)
    store.set("b", 1, ttl=100)
    store.get("a")
    fake_timer.advance(1)
    assert store.prune() == 1
    assert store.ids() == ["a", "b"]
    store.set("c", 1)
    store.set("d", 1)  # evicts b, the least recently used (the seed evicted the hottest)
    assert store.ids() == ["d", "c", "a"]


# -- the prune thread -----------------------------------------------------------------


def test_no_thread_by_default(make):
    store = make()
    assert store._thread is None
    assert store.check_period is None


def test_thread_prunes_expired_entries(make, fake_timer):
    rec = Recorder()
    store = make(check_period=0.01, ttl=10, dispose=rec)
    assert store._thread is not None and store._thread.daemon
    for i in range(5):
        store.set(f"s{i}", i)
    store.set("keep", 1, ttl=100)
    fake_timer.advance(10)
    assert wait_until(lambda: len(rec.calls) == 5)
    assert store.ids() == ["keep"]
    assert set(rec.reasons) == {"expire"}
    assert store.core.currsize == 1


def test_thread_survives_dispose_raising(make, fake_timer, caplog):
    count = Counter()

    def dispose(sid, session, reason):
        count[reason] += 1
        raise RuntimeError("boom")

    store = make(check_period=0.01, ttl=10, dispose=dispose)
    with caplog.at_level(logging.WARNING, logger="memorystore"):
        store.set("a", 1)
        fake_timer.advance(10)
        assert wait_until(lambda: count["expire"] == 1)
        store.set("b", 1)
        fake_timer.advance(10)
        assert wait_until(lambda: count["expire"] == 2)
    assert store._thread.is_alive()


def test_start_stop_interval(make, fake_timer):
    store = make(ttl=10)
    with pytest.raises(ValueError):
        store.start_interval()
    with pytest.raises(ValueError):
        store.start_interval(0)
    with pytest.raises(ValueError):
        store.start_interval(-1)
    store.start_interval(timedelta(milliseconds=10))
    thread = store._thread
    assert store.check_period == 0.01 and thread.is_alive()
    started = time.monotonic()
    store.stop_interval()
    assert time.monotonic() - started < 2
    assert not thread.is_alive() and store._thread is None
    store.stop_interval()  # idempotent
    store.set("a", 1)
    fake_timer.advance(10)
    time.sleep(0.05)  # nothing would prune now
    assert store.core.currsize == 1
    store.start_interval()  # restarts with the remembered period
    assert wait_until(lambda: store.core.currsize == 0)


def test_restart_replaces_thread(make):
    store = make(check_period=60)
    first = store._thread
    store.start_interval(30)
    assert not first.is_alive() and store._thread is not first and store.check_period == 30


def test_close_is_idempotent_and_joins_promptly(make):
    store = make(check_period=3600)
    thread = store._thread
    started = time.monotonic()
    store.close()
    store.close()
    assert time.monotonic() - started < 2
    assert not thread.is_alive()
    store.set("a", 1)  # still usable
    assert store.get("a") == 1


def test_context_manager_closes(store_cls, fake_timer):
    with store_cls(check_period=3600, timer=fake_timer) as store:
        thread = store._thread
        assert thread.is_alive()
        store.set("a", 1)
    assert not thread.is_alive()


def test_thread_holds_only_a_weak_reference(store_cls, fake_timer):
    store = store_cls(check_period=3600, timer=fake_timer)
    thread = store._thread
    ref = weakref.ref(store)
    del store
    gc.collect()
    assert ref() is None
    thread.join(5)
    assert not thread.is_alive()


def test_store_with_cycle_through_dispose_is_collected(store_cls, fake_timer):
    holder = []
    store = store_cls(check_period=3600, timer=fake_timer, dispose=lambda sid, session, reason: holder)
    holder.append(store)  # a cycle: store -> dispose -> holder -> store
    store.set("a", {"self": "ref"})
    thread = store._thread
    ref = weakref.ref(store)
    del store, holder
    gc.collect()
    assert ref() is None
    thread.join(5)
    assert not thread.is_alive()


def test_dispose_may_stop_interval_from_the_thread(make, fake_timer):
    store = None

    def dispose(sid, session, reason):
        store.stop_interval()

    store = make(check_period=0.01, ttl=1, dispose=dispose)
    thread = store._thread
    store.set("a", 1)
    fake_timer.advance(1)
    assert wait_until(lambda: not thread.is_alive())
    assert store._thread is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_restarts_thread_and_can_use_store(make, fake_timer):
    store = make(check_period=0.01, ttl=10)
    for i in range(20):
        store.set(f"s{i}", i)
    store.set("keep", 1, ttl=100)
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            thread = store._thread
            ok = thread is not None and thread.is_alive()
            store.set("child", 1, ttl=100)
            ok = ok and store.get("child") == 1
            fake_timer.advance(10)
            ok = ok and wait_until(lambda: store.core.currsize == 2)  # pruned without a get
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(store) == 21 and "child" not in store  # the parent is unaffected


def _run_isolated(script, env=None, timeout=20):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def test_interpreter_exits_with_running_thread(store_cls):
    core_module = store_cls._core_class.__module__
    result = _run_isolated(
        f"""
        import importlib, itertools
        from memorystore.store import MemoryStore
        core = importlib.import_module({core_module!r}).LRUCache
        class S(MemoryStore):
            _core_class = core
        clock = itertools.count()
        store = S(check_period=0.001, ttl=5, dispose=lambda *a: None, timer=lambda: float(next(clock)))
        for i in range(1000):
            store.set(f"s{{i}}", {{"i": i}})
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""


def test_prune_threads_end_before_interpreter_finalization(store_cls):
    # A daemon thread still running at finalization can hang a free-threaded 3.13 interpreter for
    # good (CPython gh-137433), so the store ends its threads from atexit.  atexit runs its
    # callbacks last registered first: this check, registered before memorystore is imported,
    # runs after the store's own callback.
    core_module = store_cls._core_class.__module__
    result = _run_isolated(
        f"""
        import atexit, threading

        def prune_threads():
            return sum(t.name == "memorystore-prune" and t.is_alive() for t in threading.enumerate())

        atexit.register(lambda: print("alive at exit", prune_threads()))
        import importlib
        from memorystore.store import MemoryStore
        core = importlib.import_module({core_module!r}).LRUCache
        class S(MemoryStore):
            _core_class = core
        stores = [S(check_period=0.001, ttl=5) for _ in range(3)]
        print("running", prune_threads())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["running 3", "alive at exit 0"]


# -- logging ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "on"),
    [
        ("memorystore", True),
        ("express:*,memorystore", True),
        ("foo memorystore", True),
        ("*", True),
        ("memory*", True),
        ("*,-memorystore", False),
        ("memorystorex", False),
        ("express", False),
        ("", False),
        (None, False),
    ],
)
def test_debug_env_selection(spec, on):
    assert _log.debug_selected(spec) is on


def test_configure_from_env_adds_one_stderr_handler():
    logger = logging.getLogger("memorystore")
    before_handlers, before_level = list(logger.handlers), logger.level
    try:
        assert _log.configure_from_env({"DEBUG": "other"}) is False
        assert logger.handlers == before_handlers
        assert _log.configure_from_env({"DEBUG": "memorystore"}) is True
        assert _log.configure_from_env({"DEBUG": "*"}) is True
        added = [h for h in logger.handlers if h not in before_handlers]
        assert len(added) == 1 and added[0].stream is sys.stderr
        assert logger.level == logging.DEBUG
    finally:
        logger.handlers[:] = before_handlers
        logger.setLevel(before_level)


def test_debug_env_prints_to_stderr_without_sids_or_contents():
    result = _run_isolated(
        """
        from memorystore import MemoryStore
        s = MemoryStore(check_period=60, ttl=1, dispose=lambda *a: None)
        s.set("sid-SECRET-123", {"password": "hunter2"})
        s.get("sid-SECRET-123"); s.touch("sid-SECRET-123"); s.prune(); s.clear(); s.close()
        """,
        env={"DEBUG": "memorystore"},
    )
    assert result.returncode == 0, result.stderr
    assert "memorystore DEBUG" in result.stderr
    assert "SECRET" not in result.stderr and "hunter2" not in result.stderr
    quiet = _run_isolated("from memorystore import MemoryStore; MemoryStore().clear()", env={"DEBUG": ""})
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_debug_logs_have_no_sids_or_contents(make, fake_timer, caplog):
    sid, secret = "sid-abcdef-0123456789", "top-secret-payload"
    with caplog.at_level(logging.DEBUG, logger="memorystore"):
        store = make(ttl=1, max=2, check_period=60, dispose=lambda *a: None)
        store.set(sid, {"s": secret})
        store.get(sid)
        store.touch(sid)
        fake_timer.advance(1)
        store.prune()
        store.set(sid, {"s": secret})
        store.load(store.dump())
        store.clear()
        store.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records  # something was logged
    assert sid not in text and secret not in text


# -- misc -----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", [copy.copy, copy.deepcopy, pickle.dumps])
def test_store_cannot_be_copied_or_pickled(make, op):
    store = make()
    store.set("a", 1)
    with pytest.raises(TypeError):
        op(store)


def test_check_invariants_delegates(make, monkeypatch):
    store = make()
    store.set("a", 1)
    store.check_invariants()
    calls = []
    monkeypatch.setattr(store, "_core", type("C", (), {"check_invariants": lambda self: calls.append(1)})())
    store.check_invariants()
    assert calls == [1]


def test_repr_has_no_sids(make):
    store = make(max=5)
    store.set("sid-in-repr-test", 1)
    text = repr(store)
    assert "sid-in-repr-test" not in text and "len=1" in text and "max=5" in text


def test_mixed_thread_storm_keeps_invariants_and_disposes_once(make, fake_timer):
    disposed = Counter()
    lock = threading.Lock()

    def dispose(sid, session, reason):
        with lock:
            disposed[session["uid"]] += 1

    store = make(max=50, ttl=5, dispose=dispose)
    written = []
    barrier = threading.Barrier(6)
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    def worker(n):
        barrier.wait()
        for i in range(400):
            sid = f"k{(i * 7 + n) % 120}"
            op = (i + n) % 6
            if op == 0:
                uid = f"{n}-{i}"
                written.append(uid)
                store.set(sid, {"uid": uid})
            elif op == 1:
                store.get(sid)
            elif op == 2:
                store.touch(sid)
            elif op == 3:
                store.destroy(sid)
            elif op == 4:
                uid = f"{n}-{i}"
                if store.add(sid, {"uid": uid}):
                    written.append(uid)
            elif n == 0 and i % 50 == 0:
                fake_timer.advance(1)
                store.prune()

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old_switch)
    store.check_invariants()
    assert len(store) <= 50
    remaining = {session["uid"] for session in store.all().values()}
    store.clear()
    store.check_invariants()
    assert max(disposed.values()) == 1  # nothing disposed twice
    assert set(disposed) == set(written)
    assert remaining <= set(written)
