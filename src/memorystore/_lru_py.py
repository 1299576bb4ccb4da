"""Pure-Python twin of the compiled core (``_lru.pyx``): same API, same behaviour.

Structure::

    _map    dict         _Key(key) -> _Entry; a _Key holds the key's hash, taken
                         once, so a stored key is never hashed again
    _root   _Entry       sentinel of a circular doubly linked list of the
                         entries (``prev``/``next``), least recently used first
    _heap   list         [deadline lower bound, seq, _Entry] as a binary min-heap;
                         only entries with a finite deadline have a current item
                         (``entry.heap_item``); items no longer current are skipped
                         lazily and swept out when they outnumber the entries.

A deadline that moves later (touch, overwrite) keeps its old heap item, whose
key is then a lower bound; ``expire()`` re-files such an item when it reaches
the top.  So ``expire()`` costs O((expired + re-filed) log n), never O(n).

User code (key ``__eq__``/``__hash__``, the timer, ``getsizeof``) runs before
any structure is changed or inside a plain dict lookup, insertion or deletion,
each of which either happens or, when user code raises, changes nothing; a call
that re-enters the cache from there raises ``RuntimeError``.  The recency list
is relinked without any lookup, and room is made before a new value goes in,
so a failure part-way never leaves the cache over its bound.  (An
``OrderedDict`` would not do: its ``__setitem__``/``__delitem__`` look a key up
twice and are left half-done when the second comparison raises.)  Removed
values are returned to the caller and released only after the structures are
consistent again.
"""

from __future__ import annotations

import heapq
import itertools
import math
import numbers
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from datetime import timedelta
from types import GenericAlias
from typing import Any, Generic, TypeVar

__all__ = ["LRUCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_INF = math.inf
_MISSING: Any = object()
_NO_REMOVALS: tuple[Any, ...] = ()

# How many stale heap items are tolerated, beyond one per entry, before a sweep.
_HEAP_SLACK = 64

# How much earlier than now + ttl a deadline is set: none, time.monotonic() is exact (the compiled
# core's coarse clock sets deadlines one tick early: see _lru.pyx).
DEFAULT_CLOCK_SLACK = 0.0


def to_seconds(value: object, what: str = "ttl") -> float:
    """A duration (int, float or timedelta) as float seconds; rejects bool, NaN, non-numbers."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not {type(value).__name__}")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError(f"{what} is too large") from None
    if seconds != seconds:
        raise ValueError(f"{what} must not be NaN")
    return seconds


def check_maxsize(maxsize: object) -> int | None:
    """``None`` or an int >= 1."""
    if maxsize is None:
        return None
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be an int or None, not {type(maxsize).__name__}")
    if maxsize < 1:
        raise ValueError("maxsize must be >= 1 or None")
    return maxsize


def check_size(size: object) -> int:
    """An entry's size: an int >= 0."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0:
        raise ValueError("size must be >= 0")
    return size


def check_default_ttl(ttl: object) -> float | None:
    """The cache-wide ttl: ``None`` (no expiry) or seconds > 0 (``math.inf`` allowed)."""
    if ttl is None:
        return None
    seconds = to_seconds(ttl)
    if seconds <= 0:
        raise ValueError("ttl must be > 0 or None")
    return seconds


def _replaced(entry: _Entry, now: float) -> str:
    # Why a value overwritten by put() left: it was live ("set") or already expired.
    return "set" if entry.deadline > now else "expire"


class _Key:
    """A key and its hash, taken once.

    The index never hashes a stored key again, so an entry can always be found
    by its own _Key (identity comes first in a dict lookup), even when the key's
    hash has changed since: removal never depends on the key behaving.
    """

    __slots__ = ("hash", "key")

    def __init__(self, key: Any) -> None:
        self.hash = hash(key)
        self.key = key

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return self is other or self.key == other.key  # type: ignore[attr-defined,no-any-return]


class _Entry:
    __slots__ = ("deadline", "heap_item", "ikey", "key", "next", "prev", "size", "value")

    def __init__(self, key: Any, value: Any, deadline: float, size: int, ikey: _Key | None = None) -> None:
        self.ikey = ikey
        self.key = key
        self.value = value
        self.deadline = deadline
        self.size = size
        self.heap_item: list[Any] | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


# What a heap item points at once it is no longer current (its entry left the
# cache or got a newer item): a stale item must not keep a removed entry, and
# so its key and value, alive; and clearing it breaks the entry <-> item cycle.
_DEAD = _Entry(None, None, _INF, 0)


def _retire(entry: _Entry) -> None:
    # Detach entry from its heap item, if any.
    item = entry.heap_item
    if item is not None:
        item[2] = _DEAD
        entry.heap_item = None


# Every cache, so that a forked child can give each a fresh lock (another
# thread may have held one at the fork, and that thread does not exist there).
_CACHES: weakref.WeakSet[LRUCache[Any, Any]] = weakref.WeakSet()


def _reinit_locks_in_child() -> None:
    for cache in list(_CACHES):
        cache._lock = threading.RLock()
        cache._busy = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_locks_in_child)


class LRUCache(Generic[K, V]):
    """A bounded, TTL-aware LRU mapping; expired entries are invisible.

    ``maxsize`` bounds the total size (``getsizeof(value)`` per entry, else 1);
    ``ttl`` is the default lifetime in seconds (``None``: no expiry); ``timer``
    returns monotonic seconds (default ``time.monotonic``).
    """

    __slots__ = (
        "__weakref__",
        "_busy",
        "_currsize",
        "_getsizeof",
        "_heap",
        "_lock",
        "_map",
        "_maxsize",
        "_root",
        "_seq",
        "_timer",
        "_ttl",
    )

    __class_getitem__: Any = classmethod(GenericAlias)

    def __init__(
        self,
        maxsize: int | None = None,
        *,
        ttl: float | timedelta | None = None,
        getsizeof: Callable[[V], int] | None = None,
        timer: Callable[[], float] | None = None,
    ) -> None:
        if getsizeof is not None and not callable(getsizeof):
            raise TypeError("getsizeof must be callable or None")
        if timer is not None and not callable(timer):
            raise TypeError("timer must be callable or None")
        self._maxsize = check_maxsize(maxsize)
        self._ttl = check_default_ttl(ttl)
        self._getsizeof = getsizeof
        self._timer: Callable[[], float] = timer if timer is not None else time.monotonic
        self._map: dict[_Key, _Entry] = {}
        self._root = self._new_root()
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._currsize = 0
        self._lock = threading.RLock()
        _CACHES.add(self)
        self._busy = False

    # -- properties ---------------------------------------------------------

    @property
    def maxsize(self) -> int | None:
        return self._maxsize

    @property
    def ttl(self) -> float | None:
        return self._ttl

    @property
    def currsize(self) -> int:
        """Total size of the entries held, expired ones not yet removed included."""
        return self._currsize

    def now(self) -> float:
        """The cache's clock, in seconds."""
        return float(self._timer())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(maxsize={self._maxsize!r}, ttl={self._ttl!r}, currsize={self._currsize})"

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError(f"cannot pickle or copy {type(self).__name__} objects")

    # -- helpers --------------------------------------------------------------

    def _enter(self) -> None:
        # Refuse re-entry from user code running inside an operation.
        if self._busy:
            raise RuntimeError("LRUCache re-entered while an operation was in progress (from a key's __eq__?)")
        self._busy = True

    @staticmethod
    def _new_root() -> _Entry:
        root = _Entry(None, None, _INF, 0)
        root.prev = root.next = root
        return root

    def _link_last(self, entry: _Entry) -> None:
        # Link entry in as the most recently used.
        root = self._root
        last = root.prev
        assert last is not None
        entry.prev, entry.next = last, root
        last.next = root.prev = entry

    def _detach(self, entry: _Entry) -> None:
        # Take entry out of the recency list.
        prev, nxt = entry.prev, entry.next
        assert prev is not None and nxt is not None
        prev.next, nxt.prev = nxt, prev
        entry.prev = entry.next = None

    def _move_to_end(self, entry: _Entry) -> None:
        if entry.next is not self._root:
            self._detach(entry)
            self._link_last(entry)

    def _walk(self) -> Iterator[_Entry]:
        # Entries from least to most recently used.
        root = self._root
        entry = root.next
        while entry is not root:
            assert entry is not None
            yield entry
            entry = entry.next

    def _walk_back(self) -> Iterator[_Entry]:
        # Entries from most to least recently used.
        root = self._root
        entry = root.prev
        while entry is not root:
            assert entry is not None
            yield entry
            entry = entry.prev

    def _lifetime(self, ttl: object) -> float:
        # The lifetime a set/touch asks for: the default when ttl is None.
        if ttl is None:
            return _INF if self._ttl is None else self._ttl
        return to_seconds(ttl)

    def _file_deadline(self, entry: _Entry, deadline: float) -> None:
        # Give entry a new deadline, keeping the heap key a lower bound of it.
        entry.deadline = deadline
        if deadline == _INF:
            _retire(entry)
            return
        item = entry.heap_item
        if item is None or deadline < item[0]:
            _retire(entry)
            item = [deadline, next(self._seq), entry]
            entry.heap_item = item
            heapq.heappush(self._heap, item)
            if len(self._heap) > 2 * len(self._map) + _HEAP_SLACK:
                self._sweep_heap()

    def _sweep_heap(self) -> None:
        # Drop heap items that no longer belong to an entry.
        self._heap = [item for item in self._heap if item[2].heap_item is item]
        heapq.heapify(self._heap)

    def _unlink(self, entry: _Entry) -> None:
        # Remove entry from the index first: that is the one step that may raise,
        # and a plain dict deletion that raises has changed nothing.
        index = self._map
        found = index.pop(entry.ikey)  # type: ignore[arg-type]
        if found is not entry:  # a key whose __eq__ changed its mind matched another entry
            index[found.ikey] = found  # type: ignore[index]
            raise RuntimeError("a key compared equal to another key it had differed from")
        self._detach(entry)
        self._currsize -= entry.size
        _retire(entry)

    def _expire_into(self, now: float, removed: list[tuple[Any, Any, str]], keep: _Entry | None = None) -> None:
        # Move every entry expired at `now` but `keep` into `removed`, earliest deadline first.
        heap = self._heap
        aside = None
        try:
            while heap and heap[0][0] <= now:
                item = heap[0]
                entry = item[2]
                if entry.heap_item is not item:
                    heapq.heappop(heap)
                elif entry is keep:
                    aside = heapq.heappop(heap)
                elif entry.deadline == item[0]:  # an exact key, so the entry is expired
                    self._unlink(entry)
                    heapq.heappop(heap)
                    removed.append((entry.key, entry.value, "expire"))
                else:  # the deadline moved later: re-file it, expired or not, to keep the order
                    refiled = [entry.deadline, next(self._seq), entry]
                    entry.heap_item = refiled
                    heapq.heapreplace(heap, refiled)
        finally:
            if aside is not None:
                heapq.heappush(heap, aside)

    def _count_expired(self, now: float) -> int:
        # Entries expired at `now`: a walk over the heap items keyed <= now.
        heap = self._heap
        count = 0
        stack = [0] if heap else []
        while stack:
            i = stack.pop()
            item = heap[i]
            if item[0] > now:
                continue
            entry = item[2]
            if entry.heap_item is item and entry.deadline <= now:
                count += 1
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heap):
                    stack.append(child)
        return count

    def _live(self, key: Any, now: float) -> _Entry | None:
        # The live entry under key, or None.
        entry = self._map.get(_Key(key))
        if entry is None or entry.deadline <= now:
            return None
        return entry

    # -- store-facing API -----------------------------------------------------

    def put(
        self,
        key: K,
        value: V,
        ttl: float | timedelta | None = None,
        size: int | None = None,
        only_if_absent: bool = False,
    ) -> Any:
        """Store ``value`` under ``key``; return what left the cache as (key, value, reason) triples.

        reason ``"set"``: the previous value under key (replaced, or removed
        because ttl <= 0 or the entry exceeds maxsize); ``"expire"``: expired
        entries removed to make room; ``"evict"``: live LRU entries pushed out.
        With ``only_if_absent``, nothing changes and ``None`` is returned when a
        live entry is held under ``key`` (an atomic create-if-absent).
        """
        ikey = _Key(key)  # hashes the key, and only here
        lifetime = self._lifetime(ttl)
        if size is None:
            size = self._getsizeof(value) if self._getsizeof is not None else 1
        size = check_size(size)
        now = self.now()
        removed: list[tuple[Any, Any, str]] = []
        with self._lock:
            self._enter()
            try:
                old = self._map.get(ikey)
                if only_if_absent and old is not None and old.deadline > now:
                    return None
                maxsize = self._maxsize
                deadline = now + lifetime
                # deadline <= now: ttl <= 0, or so small that now + ttl == now.
                if deadline <= now or (maxsize is not None and size > maxsize):
                    if old is not None:
                        self._unlink(old)
                        removed.append((old.key, old.value, _replaced(old, now)))
                    return removed or _NO_REMOVALS
                if old is not None:
                    removed.append((old.key, old.value, _replaced(old, now)))
                # Room first: if removing an entry fails (a key's __eq__ raising),
                # the new value is not in and the cache is within its bound.
                if maxsize is not None and self._currsize + size - (0 if old is None else old.size) > maxsize:
                    self._make_room(old, size, now, removed)
                if old is not None:
                    self._currsize += size - old.size
                    old.value = value
                    old.size = size
                    self._move_to_end(old)
                    self._file_deadline(old, deadline)
                else:
                    entry = _Entry(key, value, deadline, size, ikey)
                    if self._map.setdefault(ikey, entry) is not entry:
                        raise RuntimeError("the key compared unequal to every key, then equal to one")
                    self._link_last(entry)
                    self._currsize += size
                    self._file_deadline(entry, deadline)
                return removed or _NO_REMOVALS
            finally:
                self._busy = False

    def _make_room(self, keep: _Entry | None, size: int, now: float, removed: list[tuple[Any, Any, str]]) -> None:
        # Make room for `size` in place of `keep` (None: a new entry): expired
        # entries first, then the least recently used; `keep` stays.
        self._expire_into(now, removed, keep)
        maxsize = self._maxsize
        assert maxsize is not None
        room = maxsize - size + (0 if keep is None else keep.size)
        root = self._root
        while self._currsize > room:
            lru = root.next
            if lru is keep:
                assert keep is not None
                lru = keep.next
            assert lru is not None and lru is not root  # size <= maxsize: keep alone fits
            self._unlink(lru)
            removed.append((lru.key, lru.value, "evict"))

    def pop_expired(self, key: K, default: Any = None) -> Any:
        """If ``key`` is held but expired, remove it and return its value; else ``default``."""
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._map.get(_Key(key))
                if entry is None or entry.deadline > now:
                    return default
                self._unlink(entry)
                return entry.value
            finally:
                self._busy = False

    def remaining(self, key: K) -> float | None:
        """Seconds left for a live key (``math.inf``: never expires); ``None`` if absent or expired."""
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._live(key, now)
                return None if entry is None else entry.deadline - now
            finally:
                self._busy = False

    def entries(self) -> list[tuple[K, V, float]]:
        """Live entries as (key, value, remaining seconds), most recently used first."""
        now = self.now()
        with self._lock:
            return [(e.key, e.value, e.deadline - now) for e in self._walk_back() if e.deadline > now]

    def expire(self) -> list[tuple[K, V]]:
        """Remove every expired entry; return them as (key, value), earliest deadline first."""
        now = self.now()
        removed: list[tuple[Any, Any, str]] = []
        with self._lock:
            self._enter()
            try:
                self._expire_into(now, removed)
            finally:
                self._busy = False
        return [(k, v) for k, v, _ in removed]

    def purge(self) -> int:
        """Remove every expired entry and return how many; unlike expire(), nothing is handed back."""
        now = self.now()
        removed: list[tuple[Any, Any, str]] = []
        with self._lock:
            self._enter()
            try:
                self._expire_into(now, removed)
            finally:
                self._busy = False
        return len(removed)  # the entries are released here, after the operation

    # -- mapping protocol -----------------------------------------------------

    def set(self, key: K, value: V, ttl: float | timedelta | None = None) -> None:
        """Store with a per-entry ttl (None: the default; math.inf: never; <= 0: remove)."""
        self.put(key, value, ttl)

    def __setitem__(self, key: K, value: V) -> None:
        self.put(key, value)

    def get(self, key: K, default: Any = None) -> Any:
        """The live value (now most recently used), else ``default``."""
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._live(key, now)
                if entry is None:
                    return default
                self._move_to_end(entry)
                return entry.value
            finally:
                self._busy = False

    def __getitem__(self, key: K) -> V:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def peek(self, key: K, default: Any = None) -> Any:
        """The live value without changing recency, else ``default``."""
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._live(key, now)
                return default if entry is None else entry.value
            finally:
                self._busy = False

    def __contains__(self, key: object) -> bool:
        now = self.now()
        with self._lock:
            self._enter()
            try:
                return self._live(key, now) is not None
            finally:
                self._busy = False

    def touch(self, key: K, ttl: float | timedelta | None = None) -> bool:
        """Give a live entry a new deadline and make it most recently used; False if none."""
        lifetime = self._lifetime(ttl)
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._live(key, now)
                if entry is None:
                    return False
                self._move_to_end(entry)
                self._file_deadline(entry, now + lifetime if lifetime > 0 else now)
                return True
            finally:
                self._busy = False

    def pop(self, key: K, default: Any = _MISSING) -> Any:
        """Remove a live entry and return its value; ``default`` or KeyError if there is none."""
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._live(key, now)
                if entry is not None:
                    self._unlink(entry)
            finally:
                self._busy = False
        if entry is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return entry.value

    def __delitem__(self, key: K) -> None:
        self.pop(key)

    def __len__(self) -> int:
        now = self.now()
        with self._lock:
            return len(self._map) - self._count_expired(now)

    def clear(self) -> None:
        """Remove every entry and give the memory back."""
        with self._lock:
            self._enter()
            try:
                entries, self._map = self._map, {}
                root, self._root = self._root, self._new_root()
                heap, self._heap = self._heap, []
                self._currsize = 0
                for item in heap:  # no cycles left: entries go as soon as `entries` does
                    item[2] = _DEAD
                entry = root.next
                while entry is not root:
                    assert entry is not None
                    following = entry.next
                    entry.prev = entry.next = None
                    entry = following
                root.prev = root.next = None
            finally:
                self._busy = False
        del entries, root, heap, entry  # values are released here, with the cache already empty

    def keys(self) -> list[K]:
        """Live keys, most recently used first."""
        return [k for k, _, _ in self.entries()]

    def values(self) -> list[V]:
        """Live values, most recently used first."""
        return [v for _, v, _ in self.entries()]

    def items(self) -> list[tuple[K, V]]:
        """Live (key, value) pairs, most recently used first."""
        return [(k, v) for k, v, _ in self.entries()]

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())

    # -- for tests ------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise AssertionError if the index, recency order or expiry heap disagree."""
        with self._lock:
            total = 0
            filed = 0
            index = self._map
            for ikey, entry in index.items():
                assert entry.ikey is ikey and ikey.key is entry.key, "index key differs from entry key"
                assert entry.size >= 0, "negative size"
                total += entry.size
                if entry.deadline == _INF:
                    assert entry.heap_item is None, "never-expiring entry is in the heap"
                else:
                    item = entry.heap_item
                    assert item is not None and item[2] is entry, "entry missing from the heap"
                    assert item[0] <= entry.deadline, "heap key later than the deadline"
                    filed += 1
            assert total == self._currsize, "currsize differs from the sum of sizes"
            # The recency list: linked both ways, no cycle, exactly the indexed entries.
            root = self._root
            listed: set[int] = set()
            link_prev: _Entry = root
            link: _Entry | None = root.next
            while link is not root:
                assert link is not None and link.prev is link_prev, "recency list links broken"
                listed.add(id(link))
                assert len(listed) <= len(index), "recency list longer than the index, or a cycle"
                link_prev, link = link, link.next
            assert root.prev is link_prev, "recency list links broken"
            assert listed == {id(e) for e in index.values()}, "recency list and key index disagree"
            heap = self._heap
            current = sum(1 for item in heap if item[2].heap_item is item)
            assert current == filed, "heap items and entries disagree"
            for i in range(1, len(heap)):
                assert heap[(i - 1) // 2][0] <= heap[i][0], "heap order broken"
            assert self._maxsize is None or self._currsize <= self._maxsize, "over maxsize"
