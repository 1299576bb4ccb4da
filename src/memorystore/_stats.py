"""The statistics records the cores and stores report (``stats()``)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CacheStats", "SharedCacheStats"]


class CacheStats(NamedTuple):
    """Counters of a cache since creation or ``reset_stats()``, plus its current fill.

    Every read (``get``, ``[]``, ``peek``) is one hit or one miss; ``expired``
    counts the misses that found an expired entry.  ``evicted_unread`` counts
    the evictions of entries never read since they were created: the sign of
    a flood of one-shot sessions.
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


class SharedCacheStats(NamedTuple):
    """``CacheStats`` of a shared-memory segment (host-wide: the counters live in the segment).

    Adds ``stale`` (expired sessions served once by a ``stale=True`` store) and
    ``recoveries`` (times a process found that another one had died inside an
    operation and repaired the segment).  ``maxsize`` is the capacity.
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
    stale: int
    recoveries: int
