"""starsessions 2.x store: ``MemoryStoreStarStore``.

::

    from starlette.middleware import Middleware
    from starsessions import SessionAutoloadMiddleware, SessionMiddleware
    from memorystore.starsessions import MemoryStoreStarStore

    store = MemoryStoreStarStore(max=10_000, check_period=60)
    middleware = [
        Middleware(SessionMiddleware, store=store, lifetime=3600, cookie_https_only=True),
        Middleware(SessionAutoloadMiddleware),
    ]

starsessions hands its stores ``bytes``; they are stored as they are
(``serializer=None``: bytes are immutable, nothing to copy).  Calls go
through :class:`memorystore.aio.AsyncMemoryStore`, so the event loop never
waits on the store's lock.

* ``lifetime > 0``: the entry lives for the ``ttl`` starsessions gives
  (the remaining lifetime, or the full lifetime when ``rolling``).  A ttl of
  0 or less (a session whose lifetime is over) removes the entry.
* ``lifetime == 0`` (a browser-session cookie): the server side still
  expires, after ``gc_ttl`` seconds without a write (default one day,
  :data:`DEFAULT_GC_TTL`).  starsessions rewrites a non-empty session on every
  request that loads it, so ``gc_ttl`` is an idle timeout.
* starsessions' cookie is not signed, and it would store data under any id a
  client sends.  This store never adopts an id it does not hold: writing
  under an unknown or expired id stores the data under a fresh 256-bit id
  and returns it, and starsessions puts that id in the cookie.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from starsessions.stores.base import SessionStore

from .aio import AsyncMemoryStore

__all__ = ["DEFAULT_GC_TTL", "MemoryStoreStarStore"]

#: Server-side ttl, in seconds, of a browser-session (``lifetime=0``) session.
DEFAULT_GC_TTL = 86400

_MAX_SID = 1024


def _valid_sid(session_id: object) -> bool:
    return type(session_id) is str and 0 < len(session_id) <= _MAX_SID


class MemoryStoreStarStore(SessionStore):
    """A starsessions ``SessionStore`` backed by a memorystore store.

    ``store`` may be a ``MemoryStore``/``RedisStore`` (it must store bytes
    as they are, or with a serializer that handles bytes, such as pickle),
    an :class:`~memorystore.aio.AsyncMemoryStore`, or omitted: then
    ``MemoryStore(serializer=None, **store_options)`` is created.
    """

    def __init__(self, store: Any = None, *, gc_ttl: float | timedelta = DEFAULT_GC_TTL, **store_options: Any) -> None:
        if isinstance(gc_ttl, timedelta):
            gc_ttl = gc_ttl.total_seconds()
        if isinstance(gc_ttl, bool) or not isinstance(gc_ttl, (int, float)):
            raise TypeError("gc_ttl must be a number of seconds or a timedelta")
        if gc_ttl <= 0:
            raise ValueError("gc_ttl must be positive")
        self.gc_ttl = gc_ttl
        if isinstance(store, AsyncMemoryStore):
            if store_options:
                raise TypeError("pass either a store or MemoryStore options, not both")
            self.store = store
        elif store is not None:
            self.store = AsyncMemoryStore(store, **store_options)
        else:
            store_options.setdefault("serializer", None)
            self.store = AsyncMemoryStore(**store_options)

    async def read(self, session_id: str, lifetime: int) -> bytes:
        """The stored bytes, or ``b""`` for an unknown, expired or malformed id."""
        if not _valid_sid(session_id):
            return b""
        data = await self.store.get(session_id)
        return data if isinstance(data, bytes) else b""

    async def write(self, session_id: str, data: bytes, lifetime: int, ttl: int) -> str:
        """Store ``data``; returns the id it is stored under (a new one if ``session_id`` is not live)."""
        seconds = self.gc_ttl if lifetime == 0 else ttl
        known = _valid_sid(session_id) and await self.store.has(session_id)
        if seconds <= 0:  # the session's lifetime is over
            if known:
                await self.store.destroy(session_id)
            return session_id
        if known:
            await self.store.set(session_id, data, ttl=seconds)
            return session_id
        while True:
            new_id = secrets.token_urlsafe(32)
            if await self.store.add(new_id, data, ttl=seconds):
                return new_id

    async def remove(self, session_id: str) -> None:
        """Remove the session (nothing happens for an unknown id)."""
        if _valid_sid(session_id):
            await self.store.destroy(session_id)
