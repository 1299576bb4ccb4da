"""A cachelib cache on a MemoryStore, so Flask-Session (and anything else using cachelib) can use it.

::

    from flask import Flask
    from flask_session import Session
    from memorystore.cachelib import MemoryStoreCache

    app = Flask(__name__)
    app.config.update(
        SESSION_TYPE="cachelib",
        SESSION_CACHELIB=MemoryStoreCache(max=100_000),
    )
    Session(app)

Semantics are cachelib's:

* ``timeout``: ``None`` is ``default_timeout``, ``0`` never expires, a
  negative value is already expired (nothing is stored, an old value under
  the key is removed); ints or ``datetime.timedelta`` (rounded up to whole
  seconds, as cachelib does).
* Values: anything picklable.  The default store pickles them, so ``get``
  returns a fresh copy and a mutation of it changes nothing in the cache.
  A store you pass in is used as it is, with its own serializer (its
  ``serializer=None`` means no copies).
* Keys: any ``str``.  A store key must be 1..1024 characters, so an empty
  key, a key over 1024 characters, or one starting with NUL is kept under
  ``"\\0" + sha256(key)`` instead (no raw key can take that form).
* ``inc``/``dec`` are atomic with respect to each other (one lock per cache).
  Like cachelib's ``BaseCache``, they restart the key's timeout at
  ``default_timeout``.
* ``clear()`` empties the whole store, including entries put there by
  other users of the same store.

Pickle runs code while loading: the values come only from this process, but
never ``restore()`` this store from a file others can write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import pickle
import threading
from typing import Any

from cachelib import BaseCache

__all__ = ["MemoryStoreCache"]

_MAX_KEY_LENGTH = 1024
_DIGEST_MARK = "\0"


class MemoryStoreCache(BaseCache):
    """A complete ``cachelib.BaseCache`` on a MemoryStore.

    ``store`` is a ``MemoryStore`` (or any object with its methods, e.g. a
    ``RedisStore``); when ``None``, one is made with ``store_options`` and a
    pickle serializer.  ``store_options`` are only for that default store.
    """

    def __init__(self, store: Any = None, default_timeout: int | dt.timedelta = 300, **store_options: Any) -> None:
        super().__init__(default_timeout=default_timeout)
        if store is None:
            from .store import MemoryStore

            store_options.setdefault("serializer", pickle)
            store = MemoryStore(**store_options)
        elif store_options:
            raise TypeError(
                f"store options {sorted(store_options)} apply only to the default store; "
                "configure the store you pass instead"
            )
        self.store = store
        self._lock = threading.Lock()

    # -- translation -------------------------------------------------------

    @staticmethod
    def _key(key: str) -> str:
        """The store key for a cache key (see the module docstring)."""
        if type(key) is not str:
            if not isinstance(key, str):
                raise TypeError(f"cache keys must be str, not {type(key).__name__}")
            key = str.__str__(key)  # a plain str copy: no user code in store lookups
        if 0 < len(key) <= _MAX_KEY_LENGTH and not key.startswith(_DIGEST_MARK):
            return key
        return _DIGEST_MARK + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def _ttl(self, timeout: int | dt.timedelta | None) -> float | None:
        """Store ttl for a cachelib timeout: ``math.inf`` for 0, ``None`` for already expired."""
        seconds = self._normalize_timeout(timeout)
        if seconds == 0:
            return math.inf
        if seconds < 0:
            return None
        return seconds

    # -- BaseCache -----------------------------------------------------------

    def get(self, key: str) -> Any:
        return self.store.get(self._key(key))

    def set(self, key: str, value: Any, timeout: int | dt.timedelta | None = None) -> bool:
        store_key = self._key(key)
        ttl = self._ttl(timeout)
        if ttl is None:
            self.store.destroy(store_key)
        else:
            self.store.set(store_key, value, ttl=ttl)
        return True

    def add(self, key: str, value: Any, timeout: int | dt.timedelta | None = None) -> bool:
        store_key = self._key(key)
        ttl = self._ttl(timeout)
        if ttl is None:
            # An already-expired value is never visible: "added" iff nothing was there.
            return store_key not in self.store
        return bool(self.store.add(store_key, value, ttl=ttl))

    def delete(self, key: str) -> bool:
        store_key = self._key(key)
        with self._lock:
            existed = store_key in self.store
            self.store.destroy(store_key)
        return existed

    def has(self, key: str) -> bool:
        return self._key(key) in self.store

    def clear(self) -> bool:
        self.store.clear()
        return True

    def inc(self, key: str, delta: int = 1) -> int | None:
        with self._lock:
            value = (self.get(key) or 0) + delta
            return value if self.set(key, value) else None

    def dec(self, key: str, delta: int = 1) -> int | None:
        return self.inc(key, -delta)
