"""Beaker backend: ``session.type = memorystore``.

Beaker (and ``pyramid_beaker``) find this class through the
``beaker.backends`` entry point declared by the package, so enabling it is a
configuration change only::

    session.type = memorystore
    session.timeout = 1800           # Beaker's idle timeout, also the store ttl
    session.memorystore_max = 10000  # optional: bound the number of sessions

Beaker never deletes an expired session from its backends; this one does.
Each entry gets a ttl: Beaker's own ``timeout`` (Beaker passes
``session.timeout + 120`` to its backend), else ``session.memorystore_ttl``,
else the store's default (one day); a background prune removes expired
entries every ``session.memorystore_check_period`` seconds (default 60;
``0`` turns the thread off).

Options read from ``session.*`` (strings from an ini file are converted):

``memorystore_max``
    ``max`` of the store (number of sessions).
``memorystore_ttl``
    ttl in seconds when Beaker gives none (no ``session.timeout``).
``memorystore_check_period``
    seconds between background prunes; default 60, ``0`` for none.
``memorystore_store``
    a ready store object (``MemoryStore`` or ``RedisStore``), or a
    ``"package.module:attribute"`` string naming one; the other
    ``memorystore_*`` options are then ignored.
``url``
    a ``redis://``, ``rediss://`` or ``unix://`` URL selects a
    ``memorystore.redis.RedisStore`` (keys prefixed ``beaker:``).

One store is created per process for each distinct set of these options and
shared by every request (``MemoryStoreNamespaceManager.stores``).  Values are
stored with ``pickle``, so every read is a private copy.

Beaker also uses namespace managers for its cache (``CacheManager``,
``cache.type = memorystore``); the per-value ``expire`` then becomes the
entry's ttl.
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
import threading
from collections.abc import Hashable
from typing import Any

from beaker.container import NamespaceManager
from beaker.synchronization import NameLock

from .store import MemoryStore

__all__ = ["DEFAULT_CHECK_PERIOD", "MemoryStoreNamespaceManager", "resolve_store"]

#: Seconds between background prunes of a store this module creates.
DEFAULT_CHECK_PERIOD = 60.0

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_MAX_SID = 1024


def _number(name: str, value: Any, kind: type) -> Any:
    """An option from Beaker settings (maybe an ini string) as int/float."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise TypeError(f"session.{name} must be a number, not a bool")
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            raise ValueError(f"session.{name} must be a number, got {value!r}") from None
    return value


def resolve_store(spec: Any) -> Any:
    """A store object, or the object a ``"module:attribute"`` string names."""
    if not isinstance(spec, str):
        return spec
    module_name, sep, attribute = spec.strip().partition(":")
    if not sep:
        module_name, _, attribute = module_name.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"memorystore_store must be 'package.module:attribute', got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


class MemoryStoreNamespaceManager(NamespaceManager):
    """A Beaker ``NamespaceManager`` whose entries live in a memorystore store.

    The key of an entry is ``"<namespace>:<key>"`` (for a session:
    ``"<session id>:session"``); keys too long for the store are replaced by
    their SHA-1.  The store is thread-safe, so the read/write locks are
    no-ops; ``get_creation_lock`` returns a per-key thread lock, as Beaker's
    own memory backend does.
    """

    #: process-wide registry: one store per distinct configuration
    stores: dict[Hashable, Any] = {}
    _stores_lock = threading.Lock()

    def __init__(
        self,
        namespace: str,
        url: str | None = None,
        timeout: int | float | None = None,
        memorystore_store: Any = None,
        memorystore_max: int | str | None = None,
        memorystore_ttl: float | str | None = None,
        memorystore_check_period: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        # Beaker also passes data_dir, digest_filenames, lock_dir, log_file,
        # auto, ...: none of them concern an in-memory store.
        super().__init__(namespace)
        self.timeout = _number("timeout", timeout, float)
        if memorystore_store is not None:
            self.store = resolve_store(memorystore_store)
        else:
            self.store = self._shared_store(
                url,
                _number("memorystore_max", memorystore_max, int),
                _number("memorystore_ttl", memorystore_ttl, float),
                _number("memorystore_check_period", memorystore_check_period, float),
            )

    # -- the store registry -------------------------------------------------

    @classmethod
    def _shared_store(cls, url: str | None, max_: int | None, ttl: float | None, check_period: float | None) -> Any:
        if check_period is None:
            check_period = DEFAULT_CHECK_PERIOD
        key = (url or None, max_, ttl, check_period)
        with cls._stores_lock:
            store = cls.stores.get(key)
            if store is None:
                store = cls.stores[key] = cls._create_store(url, max_, ttl, check_period)
            return store

    @staticmethod
    def _create_store(url: str | None, max_: int | None, ttl: float | None, check_period: float) -> Any:
        if url and url.startswith(_REDIS_SCHEMES):
            from .redis import RedisStore

            return RedisStore(url, prefix="beaker:", ttl=ttl, serializer=pickle)
        if url:
            raise ValueError(f"session.url {url!r} is not a redis URL; the in-memory store takes none")
        return MemoryStore(max=max_, ttl=ttl, check_period=check_period or None, serializer=pickle)

    @classmethod
    def close_stores(cls) -> None:
        """Close and forget every store this class created (tests, shutdown)."""
        with cls._stores_lock:
            stores = list(cls.stores.values())
            cls.stores.clear()
        for store in stores:
            store.close()

    # -- keys ----------------------------------------------------------------

    def _sid(self, key: Any) -> str:
        if isinstance(key, bytes):
            key = key.decode("utf-8")
        sid = f"{self.namespace}:{key}"
        if len(sid) > _MAX_SID:
            digest = hashlib.sha1(str(key).encode("utf-8")).hexdigest()
            sid = f"{self.namespace}:#{digest}"
            if len(sid) > _MAX_SID:
                sid = "#" + hashlib.sha1(sid.encode("utf-8")).hexdigest()
        return sid

    # -- NamespaceManager ------------------------------------------------------

    def get_creation_lock(self, key: Any) -> NameLock:
        return NameLock(identifier=f"memorystore/funclock/{self.namespace}/{key}", reentrant=True)

    def __getitem__(self, key: Any) -> Any:
        sid = self._sid(key)
        value = self.store.get(sid)
        if value is None and sid not in self.store:
            raise KeyError(key)
        return value

    def __contains__(self, key: Any) -> bool:
        return self._sid(key) in self.store

    def has_key(self, key: Any) -> bool:
        return key in self

    def set_value(self, key: Any, value: Any, expiretime: float | None = None) -> None:
        ttl = expiretime if expiretime is not None else self.timeout
        self.store.set(self._sid(key), value, ttl=ttl)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: Any) -> None:
        sid = self._sid(key)
        if sid not in self.store:
            raise KeyError(key)
        self.store.destroy(sid)

    def _own_ids(self) -> list[str]:
        prefix = f"{self.namespace}:"
        return [sid for sid in self.store.ids() if sid.startswith(prefix)]

    def keys(self) -> list[str]:
        """Keys of this namespace (a scan of the whole store: O(len(store)))."""
        start = len(self.namespace) + 1
        return [sid[start:] for sid in self._own_ids()]

    def do_remove(self) -> None:
        self.store.destroy(self._own_ids())
