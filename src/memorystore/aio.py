"""An asyncio face for a store: ``AsyncMemoryStore``.

::

    from memorystore.aio import AsyncMemoryStore

    sessions = AsyncMemoryStore(ttl=3600, max=10_000, check_period=60)
    await sessions.set(sid, {"user": 42})
    data = await sessions.get(sid)

Every method is a coroutine with the meaning of the synchronous method of
the same name (``MemoryStore`` or ``RedisStore``), and returns the same
results.  The event loop is never blocked behind another thread:

* a ``MemoryStore`` call runs right in the loop thread when the store's lock
  is free (taken without waiting, so the call finishes in microseconds); when
  another thread holds it (a prune, a ``clear``, a write from a WSGI worker
  thread), the call is run in the loop's default executor instead;
* any other store (``RedisStore``: network I/O) is always called in the
  executor, and so is ``close`` (it may join the prune thread);
* a ``dispose`` callback given to ``AsyncMemoryStore(dispose=...)`` runs in
  the default executor when the store calls it from the loop thread (and
  directly when it is already off the loop, e.g. in the prune thread), so a
  slow callback never stalls the loop.  Its exceptions are logged on the
  ``memorystore`` logger, as the store does.

Several loops in several threads may share one store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .store import MemoryStore

__all__ = ["AsyncMemoryStore", "offload_dispose"]

logger = logging.getLogger("memorystore")

T = TypeVar("T")
_OFFLOADED = "_memorystore_offloaded"
Dispose = Callable[[str, Any, str], Any]


def _log_dispose_failure(future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        logger.warning("dispose callback raised", exc_info=(type(exc), exc, exc.__traceback__))


def offload_dispose(dispose: Dispose) -> Dispose:
    """Wrap ``dispose`` so that, called in an event loop's thread, it runs in that loop's executor."""

    if getattr(dispose, _OFFLOADED, False):
        return dispose

    @functools.wraps(dispose)
    def run_off_loop(sid: str, session: Any, reason: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a loop thread: just call it
            dispose(sid, session, reason)
            return
        loop.run_in_executor(None, dispose, sid, session, reason).add_done_callback(_log_dispose_failure)

    setattr(run_off_loop, _OFFLOADED, True)
    return run_off_loop


class AsyncMemoryStore:
    """Async facade over a ``MemoryStore`` (created from ``**options``) or a given store.

    ``AsyncMemoryStore(**options)`` builds ``MemoryStore(**options)`` with its
    ``dispose`` wrapped by :func:`offload_dispose`.  ``AsyncMemoryStore(store)``
    wraps an existing store (``MemoryStore``, ``RedisStore`` or anything with
    the same methods); a ``MemoryStore``'s dispose callback is wrapped the
    same way (it still runs inline when the store is called outside a loop).
    The wrapped store is ``.store``, for synchronous code in other threads.
    """

    def __init__(self, store: Any = None, **options: Any) -> None:
        if store is not None and options:
            raise TypeError("pass either a store or MemoryStore options, not both")
        if store is None:
            if options.get("dispose") is not None:
                options["dispose"] = offload_dispose(options["dispose"])
            store = MemoryStore(**options)
        elif isinstance(store, MemoryStore) and store._dispose is not None:
            store._dispose = offload_dispose(store._dispose)
        self.store = store
        # Only a MemoryStore is fast enough to call in the loop thread.
        self._inline = isinstance(store, MemoryStore)

    async def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # Looked up per call: a store gets a fresh lock in a forked child.
        lock = self.store._lock if self._inline else None
        if lock is not None and lock.acquire(blocking=False):
            # Held for the call, so no other thread can take it meanwhile; it is
            # re-entrant, so the method takes it again at once.  User code the
            # store runs here (serializer, ttl callable) is the caller's own;
            # dispose is offloaded.
            try:
                return method(*args, **kwargs)
            finally:
                lock.release()
        return await asyncio.to_thread(method, *args, **kwargs)

    async def get(self, sid: str) -> Any:
        """The session stored under ``sid``, or ``None``."""
        return await self._call(self.store.get, sid)

    async def set(self, sid: str, session: Any, ttl: Any = None) -> None:
        """Store ``session`` under ``sid`` (``ttl`` as for the store)."""
        await self._call(self.store.set, sid, session, ttl=ttl)

    async def add(self, sid: str, session: Any, ttl: Any = None) -> bool:
        """Store only if ``sid`` has no live entry; ``True`` when stored."""
        return await self._call(self.store.add, sid, session, ttl=ttl)

    async def destroy(self, sids: str | Iterable[str]) -> None:
        """Remove one sid or an iterable of sids."""
        if not isinstance(sids, str):
            sids = list(sids)  # consume a generator here, not in another thread
        await self._call(self.store.destroy, sids)

    async def touch(self, sid: str, session: Any = None, ttl: Any = None) -> bool:
        """Give ``sid`` a new deadline; ``False`` if it had no live entry."""
        return await self._call(self.store.touch, sid, session, ttl=ttl)

    async def has(self, sid: str) -> bool:
        """``sid in store``: whether a live entry exists (recency unchanged)."""
        return await self._call(self.store.__contains__, sid)

    async def all(self) -> dict[str, Any]:
        """Every live session, by sid."""
        return await self._call(self.store.all)

    async def ids(self) -> list[str]:
        """Live sids, most recently used first."""
        return await self._call(self.store.ids)

    async def length(self) -> int:
        """The number of live entries."""
        return await self._call(self.store.length)

    async def clear(self) -> None:
        """Remove every entry."""
        await self._call(self.store.clear)

    async def prune(self) -> int:
        """Remove expired entries; how many were removed."""
        return await self._call(self.store.prune)

    async def stats(self) -> Any:
        """The store's counters and fill (``MemoryStore.stats()``; a ``RedisStore`` counts its own calls)."""
        return await self._call(self.store.stats)

    async def reset_stats(self) -> None:
        """Zero the store's counters."""
        await self._call(self.store.reset_stats)

    async def close(self) -> None:
        """Close the store (stops its prune thread), in the executor."""
        await asyncio.to_thread(self.store.close)

    async def __aenter__(self) -> AsyncMemoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncMemoryStore({self.store!r})"
