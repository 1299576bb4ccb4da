"""Pure-Python twin of the compiled core (``_lru.pyx``): same API, same behaviour.

Structure::

    _map      dict       _Key -> _Entry.  A _Key holds a key and its hash,
                         taken once; a lookup's _Key becomes the stored one
                         when its key is new
    _root     _Entry     sentinel of a circular doubly linked list of every
                         entry (``prev``/``next``), least recently used first:
                         the order iteration shows
    _lists    2 _Entry   under eviction="protect", sentinels of two more such
                         lists (``lprev``/``lnext``): probation (never read
                         since created) and protected (read by get/touch)
    _heap     list       [deadline lower bound, seq, _Entry] as a binary min-heap;
                         only entries with a finite deadline have a current item
                         (``entry.heap_item``); items no longer current are skipped
                         lazily and swept out when they outnumber the entries.

A deadline that moves later (touch, overwrite) keeps its old heap item, whose
key is then a lower bound; ``expire()`` re-files such an item when it reaches
the top.  So ``expire()`` costs O((expired + re-filed) log n), never O(n).

One lookup per operation.  User code (key ``__hash__``/``__eq__``, the timer,
``getsizeof``) runs before any structure changes: hashes, times and sizes are
taken first, then the one dict lookup of the key asked for, which may run
``__eq__`` (identity first, as a dict does) and either answers or raises
having changed nothing.  Every later index step (storing a new key, removing
an entry) compares stored _Keys, which match only themselves, so no user code
runs and a key whose ``__eq__`` lies cannot make the index disagree with the
recency list.  A call that re-enters the cache from user code raises
``RuntimeError``.  Removed values are returned to the caller and released
only after the structures are consistent again.
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

from ._policy import PROBATION_SHARE, check_eviction, probation_reserve
from ._stats import CacheStats

__all__ = ["LRUCache", "PROBATION_SHARE"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_INF = math.inf
_MISSING: Any = object()
_NO_REMOVALS: tuple[Any, ...] = ()

# How many stale heap items are tolerated, beyond one per entry, before a sweep.
_HEAP_SLACK = 64

# The recency lists under eviction="protect".
_PROBATION = 0
_PROTECTED = 1

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


class _Key:
    """A key and its hash, taken once; in the index, or the probe of one lookup.

    The index never hashes a stored key again, so an entry can always be found
    by its own _Key, even when the key's hash has changed since.  A probe
    compares with the stored keys by identity of the key first, then by its
    ``__eq__``.  Two stored keys are never equal (the index holds each key
    once), so a stored _Key, when it is inserted (``stored`` is set first) or
    removed, compares with the others by identity only: no user code runs.
    """

    __slots__ = ("hash", "key", "stored")

    def __init__(self, key: Any) -> None:
        self.hash = hash(key)
        self.key = key
        self.stored = False

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        # self is in the index (a dict compares its stored keys with the one looked up)
        if other.stored:  # type: ignore[attr-defined]
            return self is other
        key = other.key  # type: ignore[attr-defined]
        return key is self.key or self.key == key  # type: ignore[no-any-return]


class _Entry:
    __slots__ = ("deadline", "heap_item", "ikey", "key", "lnext", "lprev", "next", "prev", "read", "size", "value")

    def __init__(self, key: Any, value: Any, deadline: float, size: int, ikey: _Key | None = None) -> None:
        self.ikey = ikey
        self.key = key
        self.value = value
        self.deadline = deadline
        self.size = size
        self.read = False  # read (get/touch) at least once since created
        self.heap_item: list[Any] | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None
        self.lprev: _Entry | None = None
        self.lnext: _Entry | None = None


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


def _new_root() -> _Entry:
    root = _Entry(None, None, _INF, 0)
    root.prev = root.next = root.lprev = root.lnext = root
    return root


class _Counters:
    """The operation counters stats() reports (see CacheStats)."""

    __slots__ = (
        "deletions",
        "evicted_unread",
        "evictions",
        "expirations",
        "expired",
        "hits",
        "misses",
        "rejected",
        "writes",
    )

    def __init__(self) -> None:
        self.hits = self.misses = self.expired = self.writes = 0
        self.evictions = self.evicted_unread = self.expirations = self.deletions = self.rejected = 0


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
    returns monotonic seconds (default ``time.monotonic``); ``eviction`` is
    ``"lru"`` or ``"protect"`` (entries never read since created go first).
    """

    __slots__ = (
        "__weakref__",
        "_busy",
        "_counters",
        "_currsize",
        "_eviction",
        "_getsizeof",
        "_heap",
        "_list_size",
        "_lists",
        "_lock",
        "_map",
        "_maxsize",
        "_protect",
        "_reserve",
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
        eviction: str = "lru",
    ) -> None:
        if getsizeof is not None and not callable(getsizeof):
            raise TypeError("getsizeof must be callable or None")
        if timer is not None and not callable(timer):
            raise TypeError("timer must be callable or None")
        self._maxsize = check_maxsize(maxsize)
        self._ttl = check_default_ttl(ttl)
        self._eviction = check_eviction(eviction)
        self._protect = eviction == "protect"
        self._reserve = probation_reserve(self._maxsize)
        self._getsizeof = getsizeof
        self._timer: Callable[[], float] = timer if timer is not None else time.monotonic
        self._map: dict[_Key, _Entry] = {}
        self._root = _new_root()
        self._lists = (_new_root(), _new_root())
        self._list_size = [0, 0]
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._currsize = 0
        self._counters = _Counters()
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
    def eviction(self) -> str:
        return self._eviction

    @property
    def currsize(self) -> int:
        """Total size of the entries held, expired ones not yet removed included."""
        return self._currsize

    def now(self) -> float:
        """The cache's clock, in seconds."""
        return float(self._timer())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(maxsize={self._maxsize!r}, ttl={self._ttl!r}, "
            f"eviction={self._eviction!r}, currsize={self._currsize})"
        )

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError(f"cannot pickle or copy {type(self).__name__} objects")

    # -- helpers --------------------------------------------------------------

    def _enter(self) -> None:
        # Refuse re-entry from user code running inside an operation.
        if self._busy:
            raise RuntimeError("LRUCache re-entered while an operation was in progress (from a key's __eq__?)")
        self._busy = True

    # Recency: every entry is in the global list (_root); under "protect" it is
    # also in the list of its group (_lists[_PROBATION or _PROTECTED]), whose
    # size is kept for the reserve rule.  A use puts it last in both.

    def _link_mru(self, entry: _Entry) -> None:
        # Link entry in as the most recently used.
        root = self._root
        last = root.prev
        assert last is not None
        entry.prev, entry.next = last, root
        last.next = root.prev = entry
        if self._protect:
            group = _PROTECTED if entry.read else _PROBATION
            root = self._lists[group]
            last = root.lprev
            assert last is not None
            entry.lprev, entry.lnext = last, root
            last.lnext = root.lprev = entry
            self._list_size[group] += entry.size

    def _unlink_recency(self, entry: _Entry) -> None:
        # Take entry out of the recency list(s).
        prev, nxt = entry.prev, entry.next
        assert prev is not None and nxt is not None
        prev.next, nxt.prev = nxt, prev
        entry.prev = entry.next = None
        if self._protect:
            prev, nxt = entry.lprev, entry.lnext
            assert prev is not None and nxt is not None
            prev.lnext, nxt.lprev = nxt, prev
            entry.lprev = entry.lnext = None
            self._list_size[_PROTECTED if entry.read else _PROBATION] -= entry.size

    def _use(self, entry: _Entry, read: bool) -> None:
        # entry is now the most recently used; a read (get/touch) also protects it.
        if entry.next is self._root and (entry.read or not read):
            return  # already last everywhere
        self._unlink_recency(entry)
        if read:
            entry.read = True
        self._link_mru(entry)

    def _walk_back(self) -> Iterator[_Entry]:
        # Entries from most to least recently used.
        root = self._root
        entry = root.prev
        while entry is not root:
            assert entry is not None
            yield entry
            entry = entry.prev

    def _victim(self, keep: _Entry | None) -> _Entry | None:
        # The live entry the policy evicts next (never keep); None when there is none.
        # (keep is the most recently used of its list: it is a list's LRU only when alone there.)
        if not self._protect:
            lru = self._root.next
            return None if lru is self._root or lru is keep else lru
        probation, protected = self._lists
        p = probation.lnext
        if p is probation or p is keep:
            p = None
        q = protected.lnext
        if q is protected or q is keep:
            q = None
        if p is not None and (q is None or self._list_size[_PROBATION] >= self._reserve):
            return p
        return q if q is not None else p

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

    def _find(self, probe: _Key) -> _Entry | None:
        # The operation's one lookup: may run the key's __eq__ (and raise), changing nothing.
        return self._map.get(probe)  # type: ignore[call-overload,no-any-return]

    def _insert(self, ikey: _Key, entry: _Entry) -> None:
        # File a new entry (its key was found absent by this operation's lookup):
        # ikey is stored from now on, so it compares by identity only: no user code.
        ikey.stored = True
        self._map[ikey] = entry
        self._link_mru(entry)
        self._currsize += entry.size

    def _remove(self, entry: _Entry) -> None:
        # Take entry out of every structure; found by identity: no user code.
        del self._map[entry.ikey]  # type: ignore[arg-type]
        self._unlink_recency(entry)
        self._currsize -= entry.size
        _retire(entry)

    def _expire_into(self, now: float, removed: list[tuple[Any, Any, str]]) -> None:
        # Move every entry expired at `now` into `removed`, earliest deadline first.
        heap = self._heap
        counters = self._counters
        while heap and heap[0][0] <= now:
            item = heap[0]
            entry = item[2]
            if entry.heap_item is not item:
                heapq.heappop(heap)
            elif entry.deadline == item[0]:  # an exact key, so the entry is expired
                heapq.heappop(heap)
                self._remove(entry)
                counters.expirations += 1
                removed.append((entry.key, entry.value, "expire"))
            else:  # the deadline moved later: re-file it, expired or not, to keep the order
                refiled = [entry.deadline, next(self._seq), entry]
                entry.heap_item = refiled
                heapq.heapreplace(heap, refiled)

    def _count_expired(self, now: float) -> tuple[int, int]:
        # (how many, their total size) of the entries expired at `now`: a walk
        # over the heap items keyed <= now.
        heap = self._heap
        count = size = 0
        stack = [0] if heap else []
        while stack:
            i = stack.pop()
            item = heap[i]
            if item[0] > now:
                continue
            entry = item[2]
            if entry.heap_item is item and entry.deadline <= now:
                count += 1
                size += entry.size
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heap):
                    stack.append(child)
        return count, size

    def _live(self, probe: _Key, now: float) -> _Entry | None:
        # The live entry under the probe's key, or None.
        entry = self._find(probe)
        if entry is None or entry.deadline <= now:
            return None
        return entry

    def _make_room(self, keep: _Entry | None, now: float, removed: list[tuple[Any, Any, str]], extra: int) -> None:
        # Bring currsize + extra within maxsize: expired entries first, then the
        # eviction policy's victims (never keep).
        maxsize = self._maxsize
        assert maxsize is not None
        heap = self._heap
        if heap and heap[0][0] <= now:
            self._expire_into(now, removed)
        counters = self._counters
        while self._currsize + extra > maxsize:
            victim = self._victim(keep)
            if victim is None:
                break
            self._remove(victim)
            counters.evictions += 1
            if not victim.read:
                counters.evicted_unread += 1
            removed.append((victim.key, victim.value, "evict"))

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
        entries removed (to make room, or the expired previous value);
        ``"evict"``: live entries pushed out by the eviction policy;
        ``"reject"``: the new value itself, not stored because its size exceeds
        maxsize (always the last triple).  With ``only_if_absent``, nothing
        changes and ``None`` is returned when a live entry is held under ``key``
        (an atomic create-if-absent).
        """
        probe = _Key(key)  # hashes the key, and only here
        lifetime = self._lifetime(ttl)
        if size is None:
            size = self._getsizeof(value) if self._getsizeof is not None else 1
        size = check_size(size)
        now = self.now()
        removed: list[tuple[Any, Any, str]] = []
        with self._lock:
            self._enter()
            try:
                old = self._find(probe)
                if only_if_absent and old is not None and old.deadline > now:
                    return None
                counters = self._counters
                maxsize = self._maxsize
                if old is not None and old.deadline <= now:  # the old entry expired: it leaves as such
                    self._remove(old)
                    counters.expirations += 1
                    removed.append((old.key, old.value, "expire"))
                    old = None
                deadline = now + lifetime
                # deadline <= now: ttl <= 0, or so small that now + ttl == now.
                if deadline <= now:
                    if old is not None:
                        self._remove(old)
                        counters.deletions += 1
                        removed.append((old.key, old.value, "set"))
                elif maxsize is not None and size > maxsize:
                    if old is not None:
                        self._remove(old)
                        counters.deletions += 1
                        removed.append((old.key, old.value, "set"))
                    counters.rejected += 1
                    removed.append((key, value, "reject"))
                elif old is not None:
                    removed.append((old.key, old.value, "set"))
                    self._unlink_recency(old)  # relinked with its new size, in its own group
                    self._currsize += size - old.size
                    old.value = value
                    old.size = size
                    self._link_mru(old)
                    self._file_deadline(old, deadline)
                    counters.writes += 1
                    if maxsize is not None and self._currsize > maxsize:
                        self._make_room(old, now, removed, 0)
                else:
                    if maxsize is not None and self._currsize + size > maxsize:
                        self._make_room(None, now, removed, size)
                    entry = _Entry(key, value, deadline, size, probe)
                    self._insert(probe, entry)
                    self._file_deadline(entry, deadline)
                    counters.writes += 1
                return removed or _NO_REMOVALS
            finally:
                self._busy = False

    def pop_expired(self, key: K, default: Any = None) -> Any:
        """If ``key`` is held but expired, remove it and return its value; else ``default``."""
        probe = _Key(key)
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._find(probe)
                if entry is None or entry.deadline > now:
                    return default
                self._remove(entry)
                self._counters.expirations += 1
                return entry.value
            finally:
                self._busy = False

    def remaining(self, key: K) -> float | None:
        """Seconds left for a live key (``math.inf``: never expires); ``None`` if absent or expired."""
        probe = _Key(key)
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._live(probe, now)
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
        probe = _Key(key)
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._find(probe)
                counters = self._counters
                if entry is None or entry.deadline <= now:
                    counters.misses += 1
                    if entry is not None:
                        counters.expired += 1
                    return default
                counters.hits += 1
                self._use(entry, True)
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
        probe = _Key(key)
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._find(probe)
                counters = self._counters
                if entry is None or entry.deadline <= now:
                    counters.misses += 1
                    if entry is not None:
                        counters.expired += 1
                    return default
                counters.hits += 1
                return entry.value
            finally:
                self._busy = False

    def __contains__(self, key: object) -> bool:
        probe = _Key(key)
        now = self.now()
        with self._lock:
            self._enter()
            try:
                return self._live(probe, now) is not None
            finally:
                self._busy = False

    def touch(self, key: K, ttl: float | timedelta | None = None) -> bool:
        """Give a live entry a new deadline and make it most recently used; False if none."""
        probe = _Key(key)
        lifetime = self._lifetime(ttl)
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._live(probe, now)
                if entry is None:
                    return False
                self._use(entry, True)
                self._file_deadline(entry, now + lifetime if lifetime > 0 else now)
                return True
            finally:
                self._busy = False

    def pop(self, key: K, default: Any = _MISSING) -> Any:
        """Remove a live entry and return its value; ``default`` or KeyError if there is none."""
        probe = _Key(key)
        now = self.now()
        with self._lock:
            self._enter()
            try:
                entry = self._live(probe, now)
                if entry is not None:
                    self._remove(entry)
                    self._counters.deletions += 1
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
            return len(self._map) - self._count_expired(now)[0]

    def clear(self) -> None:
        """Remove every entry and give the memory back."""
        now = self.now()
        with self._lock:
            self._enter()
            try:
                expired = self._count_expired(now)[0]
                self._counters.expirations += expired
                self._counters.deletions += len(self._map) - expired
                entries, self._map = self._map, {}
                root, self._root = self._root, _new_root()
                lists, self._lists = self._lists, (_new_root(), _new_root())
                heap, self._heap = self._heap, []
                self._currsize = 0
                self._list_size = [0, 0]
                for item in heap:  # no cycles left: entries go as soon as `entries` does
                    item[2] = _DEAD
                entry = root.next
                while entry is not root:
                    assert entry is not None
                    following = entry.next
                    entry.prev = entry.next = entry.lprev = entry.lnext = None
                    entry = following
                for sentinel in (root, *lists):
                    sentinel.prev = sentinel.next = sentinel.lprev = sentinel.lnext = None
            finally:
                self._busy = False
        del entries, root, lists, heap, entry  # values are released here, with the cache already empty

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

    # -- statistics -----------------------------------------------------------

    def stats(self) -> CacheStats:
        """Counters since creation or reset_stats(), with the live length, size and maxsize."""
        now = self.now()
        with self._lock:
            c = self._counters
            expired, expired_size = self._count_expired(now)
            return CacheStats(
                c.hits,
                c.misses,
                c.expired,
                c.writes,
                c.evictions,
                c.evicted_unread,
                c.expirations,
                c.deletions,
                c.rejected,
                len(self._map) - expired,
                self._currsize - expired_size,
                self._maxsize,
            )

    def reset_stats(self) -> None:
        """Zero the counters."""
        with self._lock:
            self._counters = _Counters()

    # -- for tests ------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise AssertionError if the index, recency lists or expiry heap disagree."""
        with self._lock:
            total = 0
            filed = 0
            index = self._map
            for ikey, entry in index.items():
                assert type(ikey) is _Key and ikey.stored, "the index holds something else than a stored _Key"
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
            indexed = {id(e) for e in index.values()}
            # The recency list: linked both ways, no cycle, exactly the indexed entries.
            listed = self._check_list(self._root, "prev", "next", len(index))
            assert listed == [id(e) for e in self._walk_forward()], "recency list walk differs"
            assert set(listed) == indexed and len(listed) == len(index), "recency list and key index disagree"
            if self._protect:
                order = {ident: n for n, ident in enumerate(listed)}
                grouped: list[int] = []
                for group, root in enumerate(self._lists):
                    members = self._check_list(root, "lprev", "lnext", len(index))
                    size = 0
                    for entry in self._walk_group(root):
                        assert entry.read == (group == _PROTECTED), "an entry is in the wrong group"
                        size += entry.size
                    assert size == self._list_size[group], "a group's size differs from its entries' sizes"
                    positions = [order.get(ident, -1) for ident in members]
                    assert positions == sorted(positions), "a group is out of recency order"
                    grouped += members
                assert sorted(grouped) == sorted(listed), "the groups and the recency list disagree"
            else:
                assert self._list_size == [0, 0] and all(r.lnext is r for r in self._lists), "groups used under lru"
            heap = self._heap
            current = sum(1 for item in heap if item[2].heap_item is item)
            assert current == filed, "heap items and entries disagree"
            for i in range(1, len(heap)):
                assert heap[(i - 1) // 2][0] <= heap[i][0], "heap order broken"
            assert self._maxsize is None or self._currsize <= self._maxsize, "over maxsize"

    def _walk_forward(self) -> Iterator[_Entry]:
        root = self._root
        entry = root.next
        while entry is not root:
            assert entry is not None
            yield entry
            entry = entry.next

    @staticmethod
    def _walk_group(root: _Entry) -> Iterator[_Entry]:
        entry = root.lnext
        while entry is not root:
            assert entry is not None
            yield entry
            entry = entry.lnext

    @staticmethod
    def _check_list(root: _Entry, prev: str, nxt: str, limit: int) -> list[int]:
        # ids of the entries of one circular list, least recently used first; checks its links.
        listed: list[int] = []
        link_prev = root
        link = getattr(root, nxt)
        while link is not root:
            assert link is not None and getattr(link, prev) is link_prev, "recency list links broken"
            listed.append(id(link))
            assert len(listed) <= limit, "recency list longer than the index, or a cycle"
            link_prev, link = link, getattr(link, nxt)
        assert getattr(root, prev) is link_prev, "recency list links broken"
        return listed
