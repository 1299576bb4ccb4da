"""Django adapters: a ``CACHES`` backend and a ``SESSION_ENGINE``.

Two ways to keep Django sessions in a :class:`~memorystore.MemoryStore`:

1. A cache backend, used through Django's stock cache session engine::

       CACHES = {
           "default": {
               "BACKEND": "memorystore.django.MemoryStoreCache",
               "LOCATION": "sessions",
               "TIMEOUT": 300,
               "OPTIONS": {"MAX_ENTRIES": 10000, "check_period": 60},
           }
       }
       SESSION_ENGINE = "django.contrib.sessions.backends.cache"

2. This module as the session engine::

       SESSION_ENGINE = "memorystore.django"
       MEMORYSTORE_SESSION_OPTIONS = {"max": 10000, "check_period": 60}  # optional

Both keep their data in the memory of one process: with several worker
processes, each has its own sessions (use sticky sessions, or a
``RedisStore``).

Cache backend (:class:`MemoryStoreCache`)
    Django's ``BaseCache`` contract: ``DEFAULT_TIMEOUT`` means ``TIMEOUT``,
    ``None`` never expires, ``0`` or less is expired at once (``set``
    removes the key, ``add`` stores nothing, ``touch`` removes a live key).
    Keys are made by ``make_and_validate_key`` (``KEY_PREFIX``,
    ``VERSION``, ``KEY_FUNCTION``) and must stay within 1024 characters.
    Values are pickled, like ``LocMemCache``: any picklable object, and
    every read returns a fresh copy.  Writes hold a per-store lock, so
    ``incr``/``decr`` are atomic and keep the key's remaining lifetime.
    ``close()`` does nothing: Django calls it after every request, and the
    data must outlive requests.

    One store per ``LOCATION`` and set of store options, shared by all
    threads and by every alias (and every ``override_settings``) naming that
    ``LOCATION`` with the same options; the first backend created for them
    builds the store, from ``OPTIONS``:

    - ``MAX_ENTRIES`` becomes the store's ``max`` (no bound when neither is
      given: unlike ``LocMemCache`` there is no default of 300);
    - ``CULL_FREQUENCY`` is not used: eviction is exact (the store evicts
      entries one by one as each write needs room, expired ones first, then
      as its ``eviction`` option says: ``"protect"`` by default, ``"lru"``
      for plain least-recently-used), never a fraction of the entries at once;
    - every other key is a ``MemoryStore`` option (``max``, ``length``,
      ``check_period``, ``dispose``, ``stale``, ``timer``...), except
      ``ttl`` (use ``TIMEOUT``) and ``serializer`` (values are pickled);
    - or ``"store": <store object or dotted path to one>`` uses that store
      as it is, whatever the ``LOCATION`` (it must keep ``bytes`` values as
      they are: ``serializer=None``).

    Two backends on one ``LOCATION`` whose store options differ (another
    ``MAX_ENTRIES``, ``check_period``...) are never silently merged: each
    set of options gets its own store, so each backend has the bound it was
    configured with, and a WARNING on the ``memorystore`` logger names the
    location and what differs (their entries are not shared, unlike
    ``LocMemCache``, which shares one dict under several bounds).  Options
    that are the backend's own (``TIMEOUT``, ``KEY_PREFIX``, ``VERSION``,
    ``KEY_FUNCTION``, ``CULL_FREQUENCY``) never split a location.

    ``cache.store`` is the store behind the backend (for ``save``/``restore``,
    ``start_interval`` and friends).

Session engine (:class:`SessionStore`, ``SESSION_ENGINE = "memorystore.django"``)
    One process-wide store, built on first use from the setting
    ``MEMORYSTORE_SESSION_OPTIONS`` (a dict of ``MemoryStore`` options;
    ``serializer`` defaults to ``None`` here, ``ttl`` is not allowed: the
    lifetime of each session is ``get_expiry_age()``, i.e.
    ``SESSION_COOKIE_AGE`` or ``set_expiry()``).  :func:`set_session_store`
    replaces it (tests, or a store built by hand such as a ``RedisStore``);
    :func:`get_session_store` returns it.

    The stored value is the string made by ``SessionBase.encode``: the
    session dict serialized with ``SESSION_SERIALIZER``, compressed and
    signed with ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` honoured), as
    Django's database engine stores it.  The store's sids are the session
    keys themselves.  Sessions are created with the store's atomic ``add``;
    a session key the store does not hold is never adopted (the client gets
    a fresh key when the session is saved), and a key longer than a sid may
    be is treated as unknown.  ``clear_expired()`` (``manage.py
    clearsessions``) prunes the store.
"""

from __future__ import annotations

import math
import pickle
import threading
import weakref
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache, InvalidCacheKey
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ._log import logger
from .store import MemoryStore

__all__ = ["MemoryStoreCache", "SessionStore", "get_session_store", "set_session_store"]

#: The longest sid a MemoryStore accepts.
MAX_SID_LENGTH = 1024

# Django's own OPTIONS keys, translated rather than passed to the store.
_MAX_ENTRIES = "MAX_ENTRIES"
_CULL_FREQUENCY = "CULL_FREQUENCY"
_STORE = "store"
# Names the SharedMemoryStore segment to use instead of a per-process MemoryStore.
_SEGMENT = "segment"
# Store options the adapters set themselves.
_FORBIDDEN_CACHE_OPTIONS = {
    "ttl": "the lifetime of cache entries comes from TIMEOUT and each call's timeout",
    "serializer": "the cache backend pickles values itself",
}

# ---------------------------------------------------------------------------
# Stores shared by location, and one write lock per store


_registry_lock = threading.Lock()
# LOCATION -> [(store options, store)]: one store per distinct set of options (see the module doc).
_location_stores: dict[str, list[tuple[dict[str, Any], Any]]] = {}
_write_locks: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


def _write_lock(store: Any) -> threading.RLock:
    """The lock every writer of ``store`` holds, shared by all backend instances."""
    with _registry_lock:
        lock = _write_locks.get(store)
        if lock is None:
            lock = _write_locks[store] = threading.RLock()
        return lock


def _cache_store_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``MemoryStore`` keyword arguments from a cache's ``OPTIONS``."""
    kwargs = {key: value for key, value in options.items() if key not in (_MAX_ENTRIES, _CULL_FREQUENCY)}
    for key, reason in _FORBIDDEN_CACHE_OPTIONS.items():
        if key in kwargs:
            raise ImproperlyConfigured(f"MemoryStoreCache OPTIONS may not contain {key!r}: {reason}")
    if _MAX_ENTRIES in options:
        if "max" in kwargs:
            raise ImproperlyConfigured("MemoryStoreCache OPTIONS: give MAX_ENTRIES or max, not both")
        try:
            kwargs["max"] = int(options[_MAX_ENTRIES])
        except (TypeError, ValueError):
            raise ImproperlyConfigured(
                f"MemoryStoreCache OPTIONS: MAX_ENTRIES must be an int, not {options[_MAX_ENTRIES]!r}"
            ) from None
    kwargs["serializer"] = None
    return kwargs


def _location_store(location: str, options: Mapping[str, Any]) -> Any:
    """The store for ``location``, built from ``options`` by the first caller."""
    if _STORE in options:
        if len(options) > 1:
            others = sorted(set(options) - {_STORE})
            raise ImproperlyConfigured(f"MemoryStoreCache OPTIONS: 'store' cannot be combined with {others}")
        store = options[_STORE]
        return import_string(store) if isinstance(store, str) else store
    kwargs = _cache_store_options(options)
    with _registry_lock:
        built = _location_stores.setdefault(location, [])
        for other, store in built:
            if other == kwargs:
                return store
        store = MemoryStore(**kwargs)
        if built:
            logger.warning(
                "MemoryStoreCache: LOCATION %r already has a store with other OPTIONS (%s); this backend gets a "
                "store of its own with its options, and the two do not share entries",
                location,
                _differences(built[0][0], kwargs),
            )
        built.append((kwargs, store))
        return store


def _differences(first: Mapping[str, Any], second: Mapping[str, Any]) -> str:
    """What differs between two sets of store options, for the warning (names and values; never data)."""
    names = {"max": "MAX_ENTRIES/max"}
    parts = []
    for key in sorted(set(first) | set(second)):
        a, b = first.get(key, "unset"), second.get(key, "unset")
        if a != b:
            parts.append(f"{names.get(key, key)}: {a!r} vs {b!r}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------
# The cache backend


class MemoryStoreCache(BaseCache):
    """A Django cache backend on a :class:`~memorystore.MemoryStore` (see the module docstring)."""

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._store = _location_store(location or "", params.get("OPTIONS") or {})
        self._lock = _write_lock(self._store)

    @property
    def store(self) -> Any:
        """The store holding this cache's entries (shared by every backend on the same ``LOCATION``)."""
        return self._store

    # -- helpers -----------------------------------------------------------

    def _sid(self, key: Any, version: int | None) -> str:
        """The store sid for a user key: Django's full key, checked against the sid rules."""
        sid = self.make_and_validate_key(key, version=version)
        if isinstance(sid, str) and type(sid) is not str:
            sid = str.__str__(sid)  # an exact str: a subclass could run code inside lookups
        if isinstance(sid, str) and len(sid) > MAX_SID_LENGTH:
            raise InvalidCacheKey(f"Cache key is longer than {MAX_SID_LENGTH} characters: {sid[:60]!r}...")
        return sid

    def _ttl(self, timeout: Any) -> float:
        """Django's timeout as store seconds: ``math.inf`` for never, ``<= 0`` for expired."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return math.inf
        if isinstance(timeout, timedelta):
            return timeout.total_seconds()
        return timeout

    def _dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.pickle_protocol)

    def _remaining(self, sid: str) -> float | None:
        """Seconds ``sid`` has left (``math.inf`` for never); ``None`` when it is not live."""
        core = getattr(self._store, "core", None)
        if core is None:
            raise NotImplementedError(
                f"incr()/decr() need the remaining lifetime of a key, which {type(self._store).__name__} does not expose"
            )
        return core.remaining(sid)

    # -- the BaseCache contract ---------------------------------------------

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        sid = self._sid(key, version)
        data = self._dumps(value)
        ttl = self._ttl(timeout)
        with self._lock:
            if ttl <= 0:  # "added", and expired at once: nothing to store
                return sid not in self._store
            return bool(self._store.add(sid, data, ttl=ttl))

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        data = self._store.get(self._sid(key, version))
        if data is None:
            return default
        return pickle.loads(data)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        sid = self._sid(key, version)
        data = self._dumps(value)
        ttl = self._ttl(timeout)
        with self._lock:
            if ttl <= 0:
                self._store.destroy(sid)
            else:
                self._store.set(sid, data, ttl=ttl)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        sid = self._sid(key, version)
        ttl = self._ttl(timeout)
        with self._lock:
            if ttl > 0:
                return bool(self._store.touch(sid, ttl=ttl))
            if sid not in self._store:
                return False
            self._store.destroy(sid)
            return True

    def delete(self, key: Any, version: int | None = None) -> bool:
        sid = self._sid(key, version)
        with self._lock:
            existed = sid in self._store
            self._store.destroy(sid)
        return existed

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._sid(key, version) in self._store

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        sid = self._sid(key, version)
        with self._lock:
            data = self._store.get(sid)
            remaining = self._remaining(sid) if data is not None else None
            if data is None or remaining is None:
                raise ValueError(f"Key '{sid}' not found")
            value = pickle.loads(data) + delta
            self._store.set(sid, self._dumps(value), ttl=remaining)
        return value

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        found = {}
        for key in keys:
            data = self._store.get(self._sid(key, version))
            if data is not None:
                found[key] = pickle.loads(data)
        return found

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        sids = [self._sid(key, version) for key in keys]
        if sids:
            with self._lock:
                self._store.destroy(sids)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()

    def close(self, **kwargs: Any) -> None:
        """Nothing to release: Django calls this after every request, and entries must outlive it."""


# ---------------------------------------------------------------------------
# The session engine


_session_store: Any = None
_session_store_lock = threading.Lock()
# Held by session writers that check-then-set, so that a save cannot resurrect a
# session deleted (e.g. by a logout in another thread) after the check.
_session_write_lock = threading.RLock()


def _build_session_store() -> Any:
    options = dict(getattr(settings, "MEMORYSTORE_SESSION_OPTIONS", None) or {})
    if "ttl" in options:
        raise ImproperlyConfigured(
            "MEMORYSTORE_SESSION_OPTIONS may not contain 'ttl': a session lives for "
            "SESSION_COOKIE_AGE seconds or what set_expiry() says"
        )
    options.setdefault("serializer", None)
    return _new_store(options, "MEMORYSTORE_SESSION_OPTIONS")


def _new_store(options: dict[str, Any], where: str) -> Any:
    """A ``MemoryStore`` from ``options``, or with ``"segment": NAME`` a ``SharedMemoryStore`` on that segment."""
    if _SEGMENT not in options:
        return MemoryStore(**options)
    from .shared import SharedMemoryStore

    options = dict(options)
    name = options.pop(_SEGMENT)
    try:
        return SharedMemoryStore(name, **options)
    except TypeError as exc:  # an option a shared store does not take, or no capacity
        raise ImproperlyConfigured(f"{where} with 'segment' are SharedMemoryStore options: {exc}") from None


def get_session_store() -> Any:
    """The process-wide store of ``SESSION_ENGINE = "memorystore.django"``, built on first use."""
    global _session_store
    store = _session_store
    if store is None:
        with _session_store_lock:
            if _session_store is None:
                _session_store = _build_session_store()
            store = _session_store
    return store


def set_session_store(store: Any) -> Any:
    """Make ``store`` the session engine's store and return the previous one (or ``None``).

    ``None`` forgets the current store: the next session access builds a new one from
    ``MEMORYSTORE_SESSION_OPTIONS``.  The previous store is neither cleared nor closed.
    The store holds the strings made by ``SessionBase.encode``; any serializer that
    round-trips a ``str`` works (``None``, the default here, stores them as they are).
    """
    global _session_store
    with _session_store_lock:
        previous, _session_store = _session_store, store
    return previous


class SessionStore(SessionBase):
    """Django session engine backed by :func:`get_session_store` (see the module docstring)."""

    #: Prepended to session keys to make the store's sids.
    key_prefix = ""

    @property
    def store(self) -> Any:
        return get_session_store()

    def _sid(self, session_key: Any) -> str | None:
        """The sid for ``session_key``, or ``None`` when no stored session can have it."""
        if not isinstance(session_key, str) or not session_key:
            return None
        sid = str.__str__(self.key_prefix + session_key)
        return sid if len(sid) <= MAX_SID_LENGTH else None

    def load(self) -> dict[str, Any]:
        sid = self._sid(self._session_key)  # type: ignore[has-type]  # SessionBase leaves it untyped
        data = self.store.get(sid) if sid is not None else None
        if data is None:
            self._session_key = None  # never adopt a key the store does not hold
            return {}
        return self.decode(data)

    def exists(self, session_key: Any) -> bool:
        sid = self._sid(session_key)
        return sid is not None and sid in self.store

    def create(self) -> None:
        for _ in range(10000):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key.")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        sid = self._sid(self.session_key)
        data = self.encode(self._get_session(no_load=must_create))  # may load, and drop an unknown key
        ttl = self.get_expiry_age()
        store = self.store
        if must_create:
            if ttl > 0 and not store.add(sid, data, ttl=ttl):
                raise CreateError
            return
        with _session_write_lock:
            if sid is None or sid not in store:
                raise UpdateError
            if ttl > 0:
                store.set(sid, data, ttl=ttl)
            else:  # set_expiry() in the past
                store.destroy(sid)

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        sid = self._sid(session_key)
        if sid is not None:
            with _session_write_lock:
                self.store.destroy(sid)

    @classmethod
    def clear_expired(cls) -> int:
        """Remove the expired sessions (``manage.py clearsessions``); returns how many."""
        return get_session_store().prune()
