"""Model-based test of MemoryStore (issue #6, store side), for both cores.

A hypothesis ``RuleBasedStateMachine`` drives one store and a plain model:
``sid -> Held(session, deadline, size)`` in an ``OrderedDict`` kept in
recency order (least- to most-recently used), the ``max`` bound and a fake
clock.  Rules: set / add / get / touch / destroy / clear / prune / advance
time / set with a failing serializer (store unchanged) / set with ttl <= 0,
all with a recording ``dispose``; the store's options (``max``, a ``length``
bound, the ttl option or the cookie max-age rule, ``stale``,
``no_dispose_on_set``, ``eviction``) are drawn per run.  After every step the store's
non-mutating reads (``ids()`` order, ``all()``, ``len``, ``in``) and ``stats()``
must agree with the model, the dispose log must be exactly what the model
predicts, and ``store.check_invariants()`` must pass.  Under "protect" the
model evicts sessions never read since written first (least recently used
first), protected ones only while probation holds less than its reserve.

Times are multiples of 0.25 s from 1000.0, so deadlines are exact and the
expiry boundary (live while ``now < t + ttl``) is hit often.
"""

from __future__ import annotations

import json
import math
import sys
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

pytestmark = pytest.mark.slow

SIDS = st.sampled_from(["s0", "s1", "s2", "s3", "s4", "s5"])
WEIGHTS = st.integers(min_value=0, max_value=3)
# Per-call ttl: None = the option; positive, inf or timedelta; <= 0 has its own rule.
CALL_TTLS = st.sampled_from([None, None, 0.25, 0.5, 1.0, 2.5, 10.0, math.inf, timedelta(seconds=0.75)])
NONPOSITIVE_TTLS = st.sampled_from([0, 0.0, -1, -0.25, timedelta(0), timedelta(seconds=-3)])
STEPS = st.sampled_from([0.0, 0.25, 0.25, 0.5, 0.5, 1.0, 2.5])
# A session's own cookie max age (seconds; None = no cookie): used when the store has no ttl option.
MAX_AGES = st.sampled_from([None, None, 0, 0.5, 1.0, 2.5])
DEFAULT_TTL = 86400.0


class Clock:
    """The fake monotonic clock both the store and the model read."""

    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time


class Boom(Exception):
    """Raised by the failing serializer."""


class FailingJSON:
    """json, except that ``dumps`` raises for a session marked ``{"boom": True}``."""

    @staticmethod
    def dumps(obj: Any) -> str:
        if isinstance(obj, dict) and obj.get("boom"):
            raise Boom("cannot serialize this session")
        return json.dumps(obj)

    @staticmethod
    def loads(data: str) -> Any:
        return json.loads(data)


@dataclass
class Held:
    """One entry of the model."""

    session: dict[str, Any]
    deadline: float
    size: int
    read: bool = False  # read (get, touch) since written as a new entry


COUNTERS = (
    "hits",
    "misses",
    "expired",
    "stale",
    "writes",
    "evictions",
    "evicted_unread",
    "expirations",
    "deletions",
    "rejected",
)


def seconds(ttl: Any) -> float:
    return ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)


def weight_of(stored: str, sid: str) -> int:
    """The ``length`` option of the weighted variant: the session's own "w" field."""
    return int(json.loads(stored)["w"])


class StoreMachine(RuleBasedStateMachine):
    """MemoryStore against an OrderedDict model."""

    def __init__(self, store_cls: type) -> None:
        super().__init__()
        self.store_cls = store_cls
        self.clock = Clock()
        self.model: OrderedDict[str, Held] = OrderedDict()
        self.serial = count()
        self.store: Any = None
        self.max: int | None = None
        self.ttl: float | None = 1.0
        self.weighted = False
        self.stale = False
        self.dispose_on_set = True
        self.disposed: list[tuple[str, int, str]] = []
        self.expected: list[tuple[str, int, str]] = []
        self.eviction = "protect"
        self.counts = dict.fromkeys(COUNTERS, 0)

    # -- model helpers ----------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.time

    def live(self, sid: str) -> Held | None:
        held = self.model.get(sid)
        return held if held is not None and held.deadline > self.now else None

    def session(self, sid: str, weight: int, max_age: float | None = None) -> dict[str, Any]:
        # Each session names its own sid and a unique serial.
        session: dict[str, Any] = {"sid": sid, "n": next(self.serial), "w": weight}
        if max_age is not None:
            session["cookie"] = {"max_age": max_age}
        return session

    def size(self, session: dict[str, Any]) -> int:
        return session["w"] if self.weighted else 1

    def total(self) -> int:
        return sum(held.size for held in self.model.values())

    def dispose(self, sid: str, session: Any, reason: str) -> None:
        assert isinstance(session, dict) and session["sid"] == sid, (sid, session)
        self.disposed.append((sid, session["n"], reason))

    def expect(self, sid: str, held: Held, reason: str) -> None:
        if reason == "set" and not self.dispose_on_set:
            return
        self.expected.append((sid, held.session["n"], reason))

    def model_put(self, sid: str, session: dict[str, Any], lifetime: float) -> None:
        """What ``set`` does: drop an expired old entry, store unless ttl <= 0 or oversize, then make room."""
        now = self.now
        counts = self.counts
        old = self.model.get(sid)
        if old is not None and old.deadline <= now:
            del self.model[sid]
            counts["expirations"] += 1
            self.expect(sid, old, "expire")
            old = None
        size = self.size(session)
        if lifetime <= 0 or (self.max is not None and size > self.max):
            if old is not None:
                del self.model[sid]
                counts["deletions"] += 1
                self.expect(sid, old, "set")
            if lifetime > 0:
                counts["rejected"] += 1
            return
        counts["writes"] += 1
        if old is not None:  # an overwrite: disposed as "set", the entry stays read or unread
            self.expect(sid, old, "set")
            old.session, old.deadline, old.size = session, now + lifetime, size
            self.model.move_to_end(sid)
            self.make_room(keep=sid, extra=0)
        else:
            self.make_room(keep=None, extra=size)
            self.model[sid] = Held(session, now + lifetime, size)

    def make_room(self, keep: str | None, extra: int) -> None:
        if self.max is None or self.total() + extra <= self.max:
            return
        for other, held in list(self.model.items()):
            if held.deadline <= self.now:
                del self.model[other]
                self.counts["expirations"] += 1
                self.expect(other, held, "expire")
        while self.total() + extra > self.max:
            victim = self.victim(keep)
            if victim is None:
                break
            held = self.model.pop(victim)
            self.counts["evictions"] += 1
            self.counts["evicted_unread"] += not held.read
            self.expect(victim, held, "evict")

    def victim(self, keep: str | None) -> str | None:
        """The sid the policy evicts next (never ``keep``), or None."""
        others = [sid for sid in self.model if sid != keep]  # least recently used first
        if self.eviction == "lru":
            return others[0] if others else None
        probation = [sid for sid in others if not self.model[sid].read]
        protected = [sid for sid in others if self.model[sid].read]
        probation_size = sum(h.size for h in self.model.values() if not h.read)
        reserve = max(1, int(self.max * self.probation_share)) if self.max is not None else 1
        if probation and (not protected or probation_size >= reserve):
            return probation[0]
        return protected[0] if protected else None

    def lifetime(self, ttl: Any, session: dict[str, Any] | None = None) -> float:
        """The ttl rules: the call's ttl, else the option, else the session's cookie max age, else one day."""
        if ttl is not None:
            return seconds(ttl)
        if self.ttl is not None:
            return self.ttl
        if session is not None and "cookie" in session:
            return float(session["cookie"]["max_age"])
        return DEFAULT_TTL

    # -- rules ----------------------------------------------------------------------

    @initialize(
        max=st.sampled_from([None, 1, 2, 3, 5, 20]),
        ttl=st.sampled_from([0.5, 1.0, 2.5, 5.0, timedelta(seconds=1.25), None]),
        weighted=st.booleans(),
        stale=st.booleans(),
        no_dispose_on_set=st.booleans(),
        eviction=st.sampled_from(["lru", "protect"]),
    )
    def create(
        self,
        max: int | None,
        ttl: Any,
        weighted: bool,
        stale: bool,
        no_dispose_on_set: bool,  # noqa: A002
        eviction: str,
    ) -> None:
        self.eviction = eviction
        self.dispose_on_set = not no_dispose_on_set
        self.max = max
        self.ttl = None if ttl is None else seconds(ttl)
        self.weighted = weighted
        self.stale = stale
        self.store = self.store_cls(
            ttl=ttl,
            max=max,
            length=weight_of if weighted else None,
            dispose=self.dispose,
            stale=stale,
            no_dispose_on_set=no_dispose_on_set,
            serializer=FailingJSON(),
            timer=self.clock,
            eviction=eviction,
        )
        self.probation_share = sys.modules[type(self.store.core).__module__].PROBATION_SHARE

    @rule(sid=SIDS, ttl=CALL_TTLS, weight=WEIGHTS, max_age=MAX_AGES)
    def set(self, sid: str, ttl: Any, weight: int, max_age: float | None) -> None:
        session = self.session(sid, weight, max_age)
        self.model_put(sid, session, self.lifetime(ttl, session))
        assert self.store.set(sid, session, ttl=ttl) is None

    @rule(sid=SIDS, ttl=NONPOSITIVE_TTLS, weight=WEIGHTS)
    def set_nonpositive_ttl(self, sid: str, ttl: Any, weight: int) -> None:
        # Removes the old entry (reason "set" if it was live) and stores nothing.
        self.model_put(sid, self.session(sid, weight), seconds(ttl))
        self.store.set(sid, self.session(sid, weight), ttl=ttl)
        assert sid not in self.store

    @rule(sid=SIDS, ttl=CALL_TTLS, weight=WEIGHTS)
    def set_failing_serializer(self, sid: str, ttl: Any, weight: int) -> None:
        session = self.session(sid, weight)
        session["boom"] = True
        with pytest.raises(Boom):
            self.store.set(sid, session, ttl=ttl)
        with pytest.raises(Boom):
            self.store.add(sid, session, ttl=ttl)
        # The model is unchanged, so the invariant checks that the store is too.

    @rule(sid=SIDS, ttl=CALL_TTLS, weight=WEIGHTS, max_age=MAX_AGES)
    def add(self, sid: str, ttl: Any, weight: int, max_age: float | None) -> None:
        session = self.session(sid, weight, max_age)
        absent = self.live(sid) is None
        if absent:
            self.model_put(sid, session, self.lifetime(ttl, session))
        assert self.store.add(sid, session, ttl=ttl) is absent

    @rule(sid=SIDS)
    def get(self, sid: str) -> None:
        held = self.model.get(sid)
        if held is None:
            self.counts["misses"] += 1
            want = None
        elif held.deadline > self.now:
            self.counts["hits"] += 1
            held.read = True
            self.model.move_to_end(sid)
            want = held.session
        else:  # found expired: removed and disposed; returned once when stale
            self.counts["misses"] += 1
            self.counts["expired"] += 1
            self.counts["expirations"] += 1
            self.counts["stale"] += self.stale
            del self.model[sid]
            self.expect(sid, held, "expire")
            want = held.session if self.stale else None
        got = self.store.get(sid)
        assert got == want
        if got is not None:
            assert got["sid"] == sid

    @rule(sid=SIDS, ttl=CALL_TTLS, max_age=MAX_AGES, with_session=st.booleans())
    def touch(self, sid: str, ttl: Any, max_age: float | None, with_session: bool) -> None:
        # The ttl rules apply to the session passed in (if any); the stored value is not replaced.
        session = self.session(sid, 0, max_age) if with_session else None
        held = self.live(sid)
        if held is not None:
            held.deadline = self.now + self.lifetime(ttl, session)
            held.read = True
            self.model.move_to_end(sid)
        assert self.store.touch(sid, session, ttl=ttl) is (held is not None)

    @rule(sid=SIDS)
    def touch_nonpositive(self, sid: str) -> None:
        # A live entry is left expired (disposed as "expire" when next found).
        held = self.live(sid)
        if held is not None:
            held.deadline = self.now
            held.read = True
            self.model.move_to_end(sid)
        assert self.store.touch(sid, ttl=0) is (held is not None)
        assert sid not in self.store

    @rule(sids=st.lists(SIDS, max_size=3), single=st.booleans())
    def destroy(self, sids: list[str], single: bool) -> None:
        if single:
            sids = sids[:1] or ["s0"]
        for sid in sids:
            held = self.model.pop(sid, None)
            if held is not None:
                live = held.deadline > self.now
                self.counts["deletions" if live else "expirations"] += 1
                self.expect(sid, held, "delete" if live else "expire")
        self.store.destroy(sids[0] if single else sids)

    @rule()
    def clear(self) -> None:
        for sid, held in self.model.items():
            live = held.deadline > self.now
            self.counts["deletions" if live else "expirations"] += 1
            self.expect(sid, held, "delete" if live else "expire")
        self.model.clear()
        self.store.clear()
        assert len(self.store) == 0

    @rule()
    def prune(self) -> None:
        expired = [(sid, held) for sid, held in self.model.items() if held.deadline <= self.now]
        for sid, held in expired:
            del self.model[sid]
            self.expect(sid, held, "expire")
        self.counts["expirations"] += len(expired)
        assert self.store.prune() == len(expired)

    @rule(step=STEPS)
    def advance(self, step: float) -> None:
        self.clock.time += step

    # -- after every step -------------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        store = self.store
        if store is None:
            return
        store.check_invariants()
        live = [(sid, held) for sid, held in reversed(self.model.items()) if held.deadline > self.now]
        assert store.ids() == [sid for sid, _ in live]
        assert store.all() == {sid: held.session for sid, held in live}
        assert list(store.all()) == [sid for sid, _ in live]
        assert len(store) == store.length() == len(live)
        for sid in ("s0", "s1", "s2", "s3", "s4", "s5"):
            assert (sid in store) == (self.live(sid) is not None)
        if self.max is not None:
            assert self.total() <= self.max
            assert store.core.currsize <= self.max
        assert store.core.currsize == self.total()
        stats = store.stats()
        assert {name: getattr(stats, name) for name in COUNTERS} == self.counts
        assert stats.length == len(live)
        assert stats.size == sum(held.size for _, held in live)
        assert stats.maxsize == self.max
        # The same removals with the same reasons; order within one operation may differ.
        assert sorted(self.disposed) == sorted(self.expected), (self.disposed, self.expected)
        self.disposed.clear()
        self.expected.clear()

    @rule()
    def reset_stats(self) -> None:
        self.store.reset_stats()
        self.counts = dict.fromkeys(COUNTERS, 0)

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()


def test_store_against_model(store_cls: type) -> None:
    run_state_machine_as_test(
        lambda: StoreMachine(store_cls),
        settings=settings(
            max_examples=500,
            stateful_step_count=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
