"""The statistics records the cores and stores report (``stats()``)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CacheStats", "RedisStats", "SharedStats", "StoreStats"]


class CacheStats(NamedTuple):
    """Counters of a cache since creation or ``reset_stats()``, plus its current fill.

    Every read (``get``, ``[]``, ``peek``) is one hit or one miss; ``expired``
    counts the misses that found an expired entry.  ``writes``: values stored
    (new or overwritten).  ``evictions``: live entries pushed out by the
    bound; ``evicted_unread``: of those, entries never read since they were
    created, the sign of a flood of one-shot sessions.  ``expirations``:
    expired entries removed (by ``expire``/``purge``, to make room, or found
    by a write or ``pop_expired``).  ``deletions``: live entries removed on
    request (``pop``, ``del``, ``clear``, a write with ttl <= 0, a too-large
    write over an old value).  ``rejected``: values too large to store.
    ``in``, ``touch`` and iteration count nothing.  ``length``: live entries;
    ``size``: their total size; ``maxsize``: the bound.
    """

    hits: int
    misses: int
    expired: int
    writes: int
    evictions: int
    evicted_unread: int
    expirations: int
    deletions: int
    rejected: int
    length: int
    size: int
    maxsize: int | None


class StoreStats(NamedTuple):
    """A ``MemoryStore``'s counters since creation or ``reset_stats()``, plus its current fill.

    The core's counters (see :class:`CacheStats`; a store's ``get`` is one
    read) and ``stale``: expired sessions that ``get`` served one last time
    (``stale=True``).  ``length`` is the number of live sessions, ``size``
    their total length (as ``max`` counts it), ``maxsize`` the ``max``
    option.  A flood of one-shot sessions shows as ``evicted_unread``
    growing with ``evictions``.
    """

    hits: int
    misses: int
    expired: int
    stale: int
    writes: int
    evictions: int
    evicted_unread: int
    expirations: int
    deletions: int
    rejected: int
    length: int
    size: int
    maxsize: int | None


class SharedStats(NamedTuple):
    """A ``SharedMemoryStore``'s counters: host-wide, they live in the segment.

    The fields of a ``MemoryStore``'s ``stats()`` (the core's counters and
    ``stale``, expired sessions served once by ``get`` with ``stale=True``),
    plus ``recoveries``: times a process found that another one had died
    inside an operation and repaired the segment.  ``maxsize`` is the capacity.
    """

    hits: int
    misses: int
    expired: int
    stale: int
    writes: int
    evictions: int
    evicted_unread: int
    expirations: int
    deletions: int
    rejected: int
    length: int
    size: int
    maxsize: int | None
    recoveries: int


class RedisStats(NamedTuple):
    """What a ``RedisStore`` can count by itself: this process's own calls, since creation or ``reset_stats()``.

    ``hits``/``misses``: ``get`` calls that found a session or not;
    ``writes``: sessions stored by ``set``/``add``; ``deletions``: sessions
    removed by ``destroy``.  Redis itself evicts and expires keys, and other
    processes use the same keys: see the server's ``INFO stats`` for those.
    """

    hits: int
    misses: int
    writes: int
    deletions: int
