"""The statistics records the cores and stores report (``stats()``)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CacheStats", "SharedStats"]


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
