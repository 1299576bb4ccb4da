"""Prometheus metrics for session stores: ``StoreCollector`` (extra ``[prometheus]``).

::

    from prometheus_client import start_http_server
    from memorystore import MemoryStore
    from memorystore.prometheus import StoreCollector

    sessions = MemoryStore(max=100_000, ttl=3600)
    StoreCollector({"sessions": sessions})  # registers with prometheus_client's default registry
    start_http_server(9100)

A custom collector: nothing is counted twice and nothing runs between scrapes;
each scrape reads every store's ``stats()`` (counters the stores keep anyway).
Metrics, each with a ``store`` label (the mapping's key)::

    memorystore_hits_total            reads that found a live session
    memorystore_misses_total          reads that found none (expired ones included)
    memorystore_writes_total          sessions stored (new or overwritten)
    memorystore_evictions_total       live sessions pushed out by the store's max
    memorystore_evicted_unread_total  of those, sessions never read since created:
                                      a flood of one-shot sessions shows here
    memorystore_expirations_total     expired sessions removed
    memorystore_deletions_total       sessions removed on request (destroy, clear)
    memorystore_rejected_total        sessions too large to store
    memorystore_recoveries_total      (a shared-memory store's, when its stats have them)
    memorystore_sessions              live sessions (gauge)
    memorystore_size                  their total length, as max counts it (gauge)
    memorystore_capacity              the store's max (gauge; absent when unbounded)

A store reports what its ``stats()`` has: a ``RedisStore`` counts only its
own calls in this process (hits, misses, writes, deletions) and has no
gauges.  No session id, content or other per-session value ever becomes a
label or a value.  ``prometheus_client`` is imported when a collector is
made, with a clear error if it is not installed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["StoreCollector"]

logger = logging.getLogger("memorystore")

# (stats field, metric name without _total, help)
COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("hits", "memorystore_hits", "Session reads that found a live session."),
    ("misses", "memorystore_misses", "Session reads that found no live session (expired ones included)."),
    ("writes", "memorystore_writes", "Sessions stored (new or overwritten)."),
    ("evictions", "memorystore_evictions", "Live sessions pushed out by the store's bound."),
    (
        "evicted_unread",
        "memorystore_evicted_unread",
        "Evicted sessions that were never read since created (a flood of one-shot sessions).",
    ),
    ("expirations", "memorystore_expirations", "Expired sessions removed."),
    ("deletions", "memorystore_deletions", "Live sessions removed on request."),
    ("rejected", "memorystore_rejected", "Sessions too large to store."),
    ("recoveries", "memorystore_recoveries", "Operations of dead processes finished or undone (shared-memory store)."),
)
GAUGES: tuple[tuple[str, str, str], ...] = (
    ("length", "memorystore_sessions", "Live sessions."),
    ("size", "memorystore_size", "Total length of the live sessions, as the store's bound counts it."),
    ("maxsize", "memorystore_capacity", "The store's bound on that total length."),
)


def _prometheus_client() -> Any:
    try:
        from prometheus_client import core, registry
    except ImportError as exc:
        raise ImportError(
            "memorystore.prometheus needs prometheus_client: pip install 'memorystore[prometheus]' "
            "(or pip install prometheus-client)"
        ) from exc
    return core, registry


class StoreCollector:
    """A Prometheus collector over ``stores`` (a mapping of a label to a store), registered with ``registry``.

    ``registry``: a ``prometheus_client.CollectorRegistry``; ``None`` means
    prometheus_client's default ``REGISTRY``.  Any store with a ``stats()``
    method works (``MemoryStore``, ``RedisStore``, a shared store, an
    ``AsyncMemoryStore``'s store); an ``AsyncMemoryStore`` is read through
    its ``.store``.  Collect several stores with one collector: a second
    collector on the same registry is refused (its metric names are taken).
    A store whose ``stats()`` raises at scrape time is left out of that
    scrape and the error logged.
    """

    def __init__(self, stores: Mapping[str, Any], registry: Any = None) -> None:
        core, registry_module = _prometheus_client()
        if not isinstance(stores, Mapping):
            raise TypeError(f"stores must be a mapping of a label to a store, not {type(stores).__name__}")
        from .aio import AsyncMemoryStore

        checked: dict[str, Any] = {}
        for label, store in stores.items():
            if type(label) is not str or not label:
                raise TypeError(f"store labels must be non-empty str, not {label!r}")
            if isinstance(store, AsyncMemoryStore):
                store = store.store
            if not callable(getattr(store, "stats", None)):
                raise TypeError(f"store {label!r} has no stats() method: {type(store).__name__}")
            checked[label] = store
        self._stores = checked
        self._core = core
        self.registry = registry_module.REGISTRY if registry is None else registry
        self.registry.register(self)

    def describe(self) -> Iterator[Any]:
        """The metric names this collector may produce (so a registry can refuse duplicates)."""
        core = self._core
        for _, name, text in COUNTERS:
            yield core.CounterMetricFamily(name, text, labels=["store"])
        for _, name, text in GAUGES:
            yield core.GaugeMetricFamily(name, text, labels=["store"])

    def collect(self) -> Iterator[Any]:
        """Read every store's stats() now and yield the metric families."""
        core = self._core
        readings = []
        for label, store in self._stores.items():
            try:
                readings.append((label, store.stats()))
            except Exception:
                logger.warning("stats() of store %r failed; left out of this scrape", label, exc_info=True)
        for field, name, text in COUNTERS:
            family = core.CounterMetricFamily(name, text, labels=["store"])
            for label, stats in readings:
                value = getattr(stats, field, None)
                if value is not None:
                    family.add_metric([label], value)
            if family.samples or field != "recoveries":
                yield family
        for field, name, text in GAUGES:
            family = core.GaugeMetricFamily(name, text, labels=["store"])
            for label, stats in readings:
                value = getattr(stats, field, None)
                if value is not None:
                    family.add_metric([label], value)
            yield family

    def __repr__(self) -> str:
        return f"StoreCollector({sorted(self._stores)!r})"
