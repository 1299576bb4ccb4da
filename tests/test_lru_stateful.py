"""Model-based test of LRUCache (issue #6, core side; issue #14, eviction and counters), for both cores.

A hypothesis ``RuleBasedStateMachine`` drives one cache and a plain model (an
``OrderedDict`` in recency order, a fake clock, per-entry deadline, size and
"read since created" flag, and the stats counters) through random sequences
of set/put/get/peek/touch/pop/delete/clear/expire/advance/pop_expired and
failing calls, under both eviction policies: "lru" evicts the least recently
used entry; "protect" evicts probation's (never read) least recently used
entry while probation holds at least the reserve, else protected's.  After
every step the cache's reads and ``stats()`` must agree with the model and
``check_invariants()`` must pass.

Times are multiples of 0.25 s from 1000.0, so every deadline is exact and
the expiry boundary (live while ``now < t + ttl``) is hit often.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

MISSING: Any = object()

KEYS = st.sampled_from(["a", "b", "c", "d", "e", 1, 2, (3, "t")])
SIZES = st.integers(min_value=0, max_value=4)
# None = the cache default; 0 / negatives remove; inf never expires.
TTLS = st.sampled_from([None, None, 0, -1.0, 0.25, 0.5, 1.0, 2.5, 10.0, math.inf, timedelta(seconds=0.75)])
TOUCH_TTLS = st.sampled_from([None, 0.25, 1.0, 2.5, 10.0, math.inf, timedelta(seconds=1.5)])
STEPS = st.sampled_from([0.0, 0.25, 0.25, 0.5, 0.5, 1.0, 2.5, 10.0])


class Clock:
    """The fake monotonic clock both the cache and the model read."""

    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time


@dataclass
class Held:
    """One entry of the model."""

    value: Any
    deadline: float
    size: int
    read: bool = False  # read (get, [], touch) since created


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


def reserve_for(core: ModuleType, maxsize: int | None) -> int:
    """Probation's reserve under "protect": PROBATION_SHARE of maxsize, at least 1."""
    return 1 if maxsize is None else max(1, int(maxsize * core.PROBATION_SHARE))


def seconds(ttl: Any) -> float:
    return ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)


class LRUMachine(RuleBasedStateMachine):
    """LRUCache against an OrderedDict model (least- to most-recently used)."""

    def __init__(self, core: ModuleType) -> None:
        super().__init__()
        self.core = core
        self.clock = Clock()
        self.model: OrderedDict[Any, Held] = OrderedDict()
        self.serial = count()
        self.cache: Any = None
        self.maxsize: int | None = None
        self.default_ttl: float | None = None
        self.eviction = "lru"
        self.counts = dict.fromkeys(COUNTERS, 0)

    # -- model helpers ----------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.time

    def live(self, key: Any) -> Held | None:
        held = self.model.get(key)
        return held if held is not None and held.deadline > self.now else None

    def lifetime(self, ttl: Any) -> float:
        if ttl is None:
            return math.inf if self.default_ttl is None else self.default_ttl
        return seconds(ttl)

    def new_value(self, size: int) -> tuple[int, int]:
        # Values are (serial, size): unique, and getsizeof reads the size.
        return (next(self.serial), size)

    def model_put(self, key: Any, value: Any, ttl: Any, size: int) -> list[tuple[Any, Any, str]]:
        """What put() does, in its order: the old value, then room (expired first, then victims)."""
        now = self.now
        deadline = now + self.lifetime(ttl)
        removed: list[tuple[Any, Any, str]] = []
        counts = self.counts
        old = self.model.get(key)
        if old is not None and old.deadline <= now:  # an expired old value leaves as such
            del self.model[key]
            counts["expirations"] += 1
            removed.append((key, old.value, "expire"))
            old = None
        if deadline <= now or (self.maxsize is not None and size > self.maxsize):
            if old is not None:
                del self.model[key]
                counts["deletions"] += 1
                removed.append((key, old.value, "set"))
            if deadline > now:  # too large: not stored, handed back last
                counts["rejected"] += 1
                removed.append((key, value, "reject"))
            return removed
        counts["writes"] += 1
        if old is not None:  # an overwrite keeps the entry's read flag
            removed.append((key, old.value, "set"))
            old.value, old.deadline, old.size = value, deadline, size
            self.model.move_to_end(key)
            self.make_room(removed, keep=key, extra=0)
        else:
            self.make_room(removed, keep=None, extra=size)
            self.model[key] = Held(value, deadline, size)
        return removed

    def make_room(self, removed: list[tuple[Any, Any, str]], keep: Any, extra: int) -> None:
        if self.maxsize is None or self.total() + extra <= self.maxsize:
            return
        for k, held in list(self.model.items()):
            if held.deadline <= self.now:
                del self.model[k]
                self.counts["expirations"] += 1
                removed.append((k, held.value, "expire"))
        while self.total() + extra > self.maxsize:
            victim = self.victim(keep)
            if victim is None:
                break
            held = self.model.pop(victim)
            self.counts["evictions"] += 1
            self.counts["evicted_unread"] += not held.read
            removed.append((victim, held.value, "evict"))

    def victim(self, keep: Any) -> Any:
        """The key the policy evicts next, never ``keep``; None if there is none."""
        others = [k for k in self.model if k != keep]  # least recently used first
        if self.eviction == "lru":
            return others[0] if others else None
        probation = [k for k in others if not self.model[k].read]
        protected = [k for k in others if self.model[k].read]
        probation_size = sum(h.size for h in self.model.values() if not h.read)
        if probation and (not protected or probation_size >= reserve_for(self.core, self.maxsize)):
            return probation[0]
        return protected[0] if protected else None

    def read(self, key: Any, counted: bool, use: bool) -> Held | None:
        """A read of key in the model: hit/miss counters when ``counted``; recency and the read flag when ``use``."""
        held = self.model.get(key)
        live = held if held is not None and held.deadline > self.now else None
        if counted:
            if live is not None:
                self.counts["hits"] += 1
            else:
                self.counts["misses"] += 1
                self.counts["expired"] += held is not None
        if live is not None and use:
            live.read = True
            self.model.move_to_end(key)
        return live

    def total(self) -> int:
        return sum(held.size for held in self.model.values())

    def check_expired(self, got: list[tuple[Any, Any]], expected: dict[Any, Held]) -> None:
        """``got`` is exactly the expected entries, earliest deadline first."""
        assert sorted(map(repr, got)) == sorted(repr((k, h.value)) for k, h in expected.items())
        deadlines = [expected[k].deadline for k, _ in got]
        assert deadlines == sorted(deadlines), f"expire() not earliest deadline first: {got}"

    def check_removed(self, got: Any, expected: list[tuple[Any, Any, str]], key: Any, before: dict[Any, Held]) -> None:
        """put()'s result: same triples per reason; evictions LRU first; room-making expiry earliest deadline first."""
        got = list(got)
        for triple in got:
            assert isinstance(triple, tuple) and len(triple) == 3, got
            assert triple[2] in ("set", "expire", "evict", "reject"), got
        assert all(t[2] != "reject" for t in got[:-1]), f"reject is not the last triple: {got}"
        for reason in ("set", "evict", "reject"):
            assert [t for t in got if t[2] == reason] == [t for t in expected if t[2] == reason], (
                reason,
                got,
                expected,
            )
        got_expired = [t for t in got if t[2] == "expire"]
        want_expired = [t for t in expected if t[2] == "expire"]
        assert sorted(map(repr, got_expired)) == sorted(map(repr, want_expired)), (got, expected)
        room = [before[k].deadline for k, _, _ in got_expired if k != key]
        assert room == sorted(room), f"room-making expiry not earliest deadline first: {got}"

    # -- rules ----------------------------------------------------------------------

    @initialize(
        maxsize=st.sampled_from([None, 1, 2, 3, 5, 8, 20]),
        ttl=st.sampled_from([None, 0.5, 1.0, 2.5, math.inf]),
        eviction=st.sampled_from(["lru", "protect"]),
    )
    def create(self, maxsize: int | None, ttl: float | None, eviction: str) -> None:
        self.maxsize = maxsize
        self.default_ttl = ttl
        self.eviction = eviction
        self.cache = self.core.LRUCache(
            maxsize, ttl=ttl, getsizeof=lambda value: value[1], timer=self.clock, eviction=eviction
        )

    @rule(key=KEYS, ttl=TTLS, size=SIZES)
    def set(self, key: Any, ttl: Any, size: int) -> None:
        value = self.new_value(size)
        self.model_put(key, value, ttl, size)
        assert self.cache.set(key, value, ttl=ttl) is None

    @rule(key=KEYS, size=SIZES)
    def setitem(self, key: Any, size: int) -> None:
        value = self.new_value(size)
        self.model_put(key, value, None, size)
        self.cache[key] = value

    @rule(key=KEYS, ttl=TTLS, size=SIZES, explicit=st.booleans())
    def put(self, key: Any, ttl: Any, size: int, explicit: bool) -> None:
        # With an explicit size, getsizeof is bypassed: the value's own size field lies.
        value = (next(self.serial), 99) if explicit else self.new_value(size)
        before = dict(self.model)
        expected = self.model_put(key, value, ttl, size)
        got = self.cache.put(key, value, ttl=ttl, size=size) if explicit else self.cache.put(key, value, ttl=ttl)
        self.check_removed(got, expected, key, before)
        assert all(v is not value for _, v, reason in got if reason != "reject")

    @rule(key=KEYS, subscript=st.booleans())
    def get(self, key: Any, subscript: bool) -> None:
        held = self.read(key, counted=True, use=True)
        if subscript:
            try:
                got = self.cache[key]
            except KeyError:
                got = MISSING
        else:
            got = self.cache.get(key, MISSING)
        assert got == (MISSING if held is None else held.value)

    @rule(key=KEYS)
    def peek(self, key: Any) -> None:
        held = self.read(key, counted=True, use=False)
        assert self.cache.peek(key, MISSING) == (MISSING if held is None else held.value)
        assert (key in self.cache) == (held is not None)

    @rule(key=KEYS, ttl=TOUCH_TTLS)
    def touch(self, key: Any, ttl: Any) -> None:
        held = self.read(key, counted=False, use=True)
        if held is not None:
            held.deadline = self.now + self.lifetime(ttl)
        assert self.cache.touch(key, ttl=ttl) is (held is not None)

    @rule(key=KEYS)
    def pop(self, key: Any) -> None:
        held = self.live(key)
        if held is not None:
            del self.model[key]
            self.counts["deletions"] += 1
        assert self.cache.pop(key, MISSING) == (MISSING if held is None else held.value)

    @rule(key=KEYS)
    def delete(self, key: Any) -> None:
        held = self.live(key)
        if held is not None:
            del self.model[key]
            self.counts["deletions"] += 1
        try:
            del self.cache[key]
        except KeyError:
            assert held is None
        else:
            assert held is not None

    @rule()
    def clear(self) -> None:
        live = sum(1 for h in self.model.values() if h.deadline > self.now)
        self.counts["deletions"] += live
        self.counts["expirations"] += len(self.model) - live
        self.model.clear()
        self.cache.clear()

    @rule()
    def expire(self) -> None:
        expected = {k: h for k, h in self.model.items() if h.deadline <= self.now}
        for key in expected:
            del self.model[key]
        self.counts["expirations"] += len(expected)
        self.check_expired(self.cache.expire(), expected)

    @rule(step=STEPS)
    def advance(self, step: float) -> None:
        self.clock.time += step

    @rule(key=KEYS)
    def pop_expired(self, key: Any) -> None:
        held = self.model.get(key)
        if held is not None and held.deadline <= self.now:
            del self.model[key]
            self.counts["expirations"] += 1
        else:
            held = None
        assert self.cache.pop_expired(key, MISSING) == (MISSING if held is None else held.value)

    @rule(key=KEYS)
    def remaining(self, key: Any) -> None:
        held = self.live(key)
        assert self.cache.remaining(key) == (None if held is None else held.deadline - self.now)

    @rule(
        key=KEYS,
        bad=st.sampled_from(
            [
                ("ttl", math.nan, ValueError),
                ("ttl", True, TypeError),
                ("ttl", "1", TypeError),
                ("ttl", 10**400, ValueError),
                ("size", -1, ValueError),
                ("size", 1.0, TypeError),
                ("key", None, TypeError),
            ]
        ),
    )
    def failing_call(self, key: Any, bad: tuple[str, Any, type[Exception]]) -> None:
        what, arg, error = bad
        with pytest.raises(error):
            if what == "ttl":
                self.cache.put(key, self.new_value(1), ttl=arg)
            elif what == "size":
                self.cache.put(key, self.new_value(1), size=arg)
            else:
                self.cache.put([key], self.new_value(1))
        if what == "ttl":
            with pytest.raises(error):
                self.cache.touch(key, ttl=arg)

    # -- after every step -------------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        if self.cache is None:
            return
        self.cache.check_invariants()
        live = [(k, h) for k, h in reversed(self.model.items()) if h.deadline > self.now]
        assert self.cache.keys() == [k for k, _ in live]
        assert self.cache.entries() == [(k, h.value, h.deadline - self.now) for k, h in live]
        assert len(self.cache) == len(live)
        assert self.cache.currsize == self.total()
        if self.maxsize is not None:
            assert self.cache.currsize <= self.maxsize
        stats = self.cache.stats()
        assert {name: getattr(stats, name) for name in COUNTERS} == self.counts
        assert (stats.length, stats.size, stats.maxsize) == (len(live), sum(h.size for _, h in live), self.maxsize)

    @rule()
    def reset_stats(self) -> None:
        self.cache.reset_stats()
        self.counts = dict.fromkeys(COUNTERS, 0)


@pytest.mark.slow
def test_lru_cache_against_model(lru_impl: ModuleType) -> None:
    run_state_machine_as_test(
        lambda: LRUMachine(lru_impl),
        settings=settings(
            max_examples=800,
            stateful_step_count=80,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
