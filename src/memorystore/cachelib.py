"""A cachelib cache on a MemoryStore, so Flask-Session (and anything else using cachelib) can use it.

::

    from flask import Flask
    from flask_session import Session
    from memorystore.cachelib import MemoryStoreCache

    app = Flask(__name__)
    app.config.update(
        SESSION_TYPE="cachelib",
        SESSION_CACHELIB=MemoryStoreCache(threshold=100_000, check_period=60),
    )
    Session(app)

``MemoryStoreCache(default_timeout=300, *, store=None, threshold=None,
ignore_delete_many_errors=False, **store_options)`` takes cachelib's own
constructor arguments (``default_timeout`` first, as every cachelib cache);
everything else is a keyword.  Semantics are cachelib's:

* ``timeout``: ``None`` is ``default_timeout``, ``0`` never expires, a
  negative value is already expired (nothing is stored, an old value under
  the key is removed); ints or ``datetime.timedelta`` (rounded up to whole
  seconds, as cachelib does).
* Values go through the cache's ``serializer`` (cachelib's serializer
  protocol: ``dumps(value) -> bytes``, ``loads(bytes) -> value``; by default
  cachelib's own pickle serializer, as ``SimpleCache``), so any picklable
  value works and ``get`` returns a fresh copy.  Assign another one as with
  any cachelib cache (``cache.serializer = JSONSerializer()``).  A value the
  serializer cannot encode (its ``dumps`` returns ``None``) is not stored and
  ``set``/``add`` return ``False``.
* The bound: ``threshold`` (cachelib's name) is the most entries kept, as
  the store's ``max``; ``None`` or ``0`` means no bound.  Eviction is exact
  (least recently used first, expired entries before live ones).
* The store: by default a ``MemoryStore(serializer=None, **store_options)``
  (``check_period``, ``ttl`` callables, ``dispose``... as for MemoryStore)
  that keeps the serialized bytes as they are.  A store you pass
  (``store=``) must keep ``bytes`` as well: ``serializer=None`` (or pickle);
  a json store is refused at construction.
* Keys: any ``str``.  A store key must be 1..1024 characters, so an empty
  key, a key over 1024 characters, or one starting with NUL is kept under
  ``"\\0" + sha256(key)`` instead (no raw key can take that form).
* ``inc``/``dec`` are atomic with respect to each other (one lock per cache).
  Like cachelib's ``BaseCache``, they restart the key's timeout at
  ``default_timeout``.
* ``delete_many`` never fails to delete; ``ignore_delete_many_errors`` is
  kept for cachelib's contract.
* ``clear()`` empties the whole store, including entries put there by
  other users of the same store.

Pickle runs code while loading: the values come only from this process, but
never ``restore()`` this store from a file others can write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from typing import Any

from cachelib import BaseCache
from cachelib.serializers import SimpleSerializer

__all__ = ["MemoryStoreCache"]

_MAX_KEY_LENGTH = 1024
_DIGEST_MARK = "\0"
_BYTES_PROBE = b"\x00\xffmemorystore"


def _keeps_bytes(store: Any) -> bool:
    """Whether ``store`` hands back the bytes it was given (its serializer is None or round-trips bytes)."""
    serializer = getattr(store, "_serializer", None)
    if serializer is None:
        return True
    try:
        return bool(serializer.loads(serializer.dumps(_BYTES_PROBE)) == _BYTES_PROBE)
    except Exception:  # noqa: BLE001 - json and friends: "bytes is not serializable"
        return False


class MemoryStoreCache(BaseCache):
    """A complete ``cachelib.BaseCache`` on a MemoryStore (see the module docstring).

    ``default_timeout``: seconds or ``timedelta`` (cachelib's meaning);
    ``store``: a ``MemoryStore`` (or any object with its methods, e.g. a
    ``RedisStore``) that keeps bytes, else one is made from ``threshold`` and
    ``store_options``; ``ignore_delete_many_errors``: as in cachelib.
    """

    #: cachelib's serializer protocol (``dumps``/``loads``); read on every call, so it may be reassigned.
    serializer: Any = SimpleSerializer()

    def __init__(
        self,
        default_timeout: int | dt.timedelta = 300,
        *,
        store: Any = None,
        threshold: int | None = None,
        ignore_delete_many_errors: bool = False,
        **store_options: Any,
    ) -> None:
        if isinstance(default_timeout, bool) or not isinstance(default_timeout, (int, float, dt.timedelta)):
            hint = ""
            if callable(getattr(default_timeout, "get", None)) and callable(getattr(default_timeout, "set", None)):
                hint = " (a store is passed as store=..., the first positional argument is default_timeout)"
            raise TypeError(
                f"default_timeout must be an int or a datetime.timedelta, not {type(default_timeout).__name__}{hint}"
            )
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)):
            raise TypeError(f"threshold must be an int (0 or None: no bound), not {type(threshold).__name__}")
        if threshold is not None and threshold < 0:
            raise ValueError("threshold must be >= 0 (0 or None: no bound)")
        super().__init__(default_timeout, ignore_delete_many_errors=ignore_delete_many_errors)
        if store is None:
            from .store import MemoryStore

            if "serializer" in store_options:
                raise TypeError(
                    "MemoryStoreCache encodes values with its cachelib serializer (cache.serializer = ...); "
                    "the default store keeps those bytes as they are, so it takes no serializer option"
                )
            if threshold is not None and "max" in store_options:
                raise TypeError("give threshold or max, not both (threshold is cachelib's name for the bound)")
            if threshold:
                store_options["max"] = threshold
            store = MemoryStore(serializer=None, **store_options)
        else:
            if store_options or threshold is not None:
                given = sorted(store_options) + (["threshold"] if threshold is not None else [])
                raise TypeError(f"{given} configure the default store only; configure the store you pass instead")
            if not all(callable(getattr(store, name, None)) for name in ("get", "set", "add", "destroy", "clear")):
                raise TypeError(f"store must be a MemoryStore (or have its methods), not {type(store).__name__}")
            if not _keeps_bytes(store):
                raise TypeError(
                    "the store passed to MemoryStoreCache must keep bytes as they are: give it serializer=None "
                    "(values are encoded by the cache's cachelib serializer)"
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
        data = self.store.get(self._key(key))
        return None if data is None else self.serializer.loads(data)

    def set(self, key: str, value: Any, timeout: int | dt.timedelta | None = None) -> bool:
        store_key = self._key(key)
        ttl = self._ttl(timeout)
        if ttl is None:
            self.store.destroy(store_key)
            return True
        data = self.serializer.dumps(value)
        if data is None:  # cachelib serializers answer None for what they cannot encode (and log it)
            return False
        self.store.set(store_key, data, ttl=ttl)
        return True

    def add(self, key: str, value: Any, timeout: int | dt.timedelta | None = None) -> bool:
        store_key = self._key(key)
        ttl = self._ttl(timeout)
        if ttl is None:
            # An already-expired value is never visible: "added" iff nothing was there.
            return store_key not in self.store
        data = self.serializer.dumps(value)
        if data is None:
            return False
        return bool(self.store.add(store_key, data, ttl=ttl))

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
