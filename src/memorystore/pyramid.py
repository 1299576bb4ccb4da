"""Pyramid session factory: server-side sessions in a memorystore store.

::

    from memorystore import MemoryStore
    from memorystore.pyramid import MemoryStoreSessionFactory

    store = MemoryStore(max=10_000, check_period=60)
    config.set_session_factory(MemoryStoreSessionFactory(store, secret=SECRET))

The session is a ``dict`` implementing Pyramid's full ``ISession``
(``invalidate``, ``changed``, ``flash``/``pop_flash``/``peek_flash``,
``new``, ``created``, ``accessed``, and ``new_csrf_token``/``get_csrf_token``
for Pyramid's default ``LegacySessionCSRFStoragePolicy``).

* The cookie carries only a signed random session id (256 bits, HMAC-SHA256);
  the data stays in the store.  An id the server did not issue, or one whose
  entry has expired, is never adopted: the visitor gets a new session and,
  once something is stored, a new id.
* Nothing is stored and no cookie is sent until the session is modified, so
  anonymous traffic costs nothing.  Writes happen in a response callback,
  once per request, only when the session changed.
* ``timeout`` (seconds of inactivity, default 1200) is the store ttl of the
  entry: the store removes idle sessions by itself.  ``timeout=None`` leaves
  the ttl to the store's own rules (one day unless the store says otherwise).
* ``reissue_time`` (Pyramid's meaning): once that many seconds have passed
  since the session was last written, a request that reads it extends its
  ttl with ``store.touch`` (no rewrite of the data, so a read-only request
  never overwrites another request's changes) and re-sends the cookie.
  ``0`` (the default) extends on every access; ``None`` never does.
* Session data must survive the store's serializer (JSON by default, as
  Pyramid 2 requires); use a serializing store so each request works on a
  private copy.
"""

from __future__ import annotations

import binascii
import os
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from pyramid.interfaces import ISession
from zope.interface import implementer

from ._signing import CookieSigner, new_session_id
from .store import MemoryStore

__all__ = ["MemoryStoreSessionFactory"]

_CREATED, _RENEWED, _DATA = "created", "renewed", "data"


def _seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or a timedelta, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def MemoryStoreSessionFactory(  # noqa: N802 - Pyramid's naming for factories
    store: Any = None,
    *,
    secret: str | bytes | Iterable[str | bytes],
    cookie_name: str = "session",
    max_age: int | timedelta | None = None,
    path: str = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = True,
    samesite: str | None = "Lax",
    timeout: float | timedelta | None = 1200,
    reissue_time: float | timedelta | None = 0,
    set_on_exception: bool = True,
    salt: str = "memorystore.pyramid.session",
    clock: Callable[[], float] = time.time,
) -> type:
    """Return a Pyramid session factory (a class: ``factory(request) -> session``).

    ``store`` is a ``MemoryStore`` or ``RedisStore`` (a new ``MemoryStore()``
    when omitted).  ``secret`` signs the session-id cookie: one secret, or a
    list whose first item signs and whose every item verifies (rotation).
    The cookie options are Pyramid's; ``httponly`` defaults to ``True``.
    ``clock`` gives the wall-clock epoch seconds of ``created``/``accessed``.
    """
    if store is None:
        store = MemoryStore()
    signer = CookieSigner(secret, salt=salt)
    max_age_seconds = _seconds("max_age", max_age)
    cookie_max_age = None if max_age_seconds is None else int(max_age_seconds)
    ttl = _seconds("timeout", timeout)
    reissue = _seconds("reissue_time", reissue_time)

    @implementer(ISession)
    class MemoryStoreSession(dict):
        """A server-side Pyramid session (a ``dict``; see the module docs)."""

        _store = store

        def __init__(self, request: Any) -> None:
            super().__init__()
            self.request = request
            self._sid: str | None = None  # id of the live entry this session came from
            self._had_cookie = cookie_name in request.cookies
            self._dirty = False
            self._invalidated = False
            self._renew = False
            now = clock()
            self.created = self.accessed = self.renewed = now
            self.new = True
            sid = signer.unsign(request.cookies.get(cookie_name))
            record = store.get(sid) if sid is not None else None
            if isinstance(record, dict) and isinstance(record.get(_DATA), dict):
                self._sid = sid
                self.new = False
                self.created = record.get(_CREATED, now)
                self.renewed = record.get(_RENEWED, now)
                dict.update(self, record[_DATA])
            request.add_response_callback(self._on_response)

        # -- ISession ------------------------------------------------------

        def changed(self) -> None:
            """Mark the session as modified: it is saved at the end of the request."""
            self._dirty = True

        def invalidate(self) -> None:
            """Drop the stored session now; later writes start a new one under a new id."""
            if self._sid is not None:
                store.destroy(self._sid)
            self._sid = None
            self._invalidated = True
            self._dirty = False
            self._renew = False
            dict.clear(self)
            self.created = self.accessed = self.renewed = clock()
            self.new = True

        def _accessed(self) -> None:
            self.accessed = now = clock()
            if reissue is not None and self._sid is not None and now - self.renewed >= reissue:
                self._renew = True

        def _changed(self) -> None:
            self.accessed = clock()
            self._dirty = True

        # non-modifying dict methods
        def get(self, key: Any, default: Any = None) -> Any:
            self._accessed()
            return dict.get(self, key, default)

        def __getitem__(self, key: Any) -> Any:
            self._accessed()
            return dict.__getitem__(self, key)

        def __contains__(self, key: object) -> bool:
            self._accessed()
            return dict.__contains__(self, key)

        def __len__(self) -> int:
            self._accessed()
            return dict.__len__(self)

        def __iter__(self) -> Any:
            self._accessed()
            return dict.__iter__(self)

        def keys(self) -> Any:
            self._accessed()
            return dict.keys(self)

        def values(self) -> Any:
            self._accessed()
            return dict.values(self)

        def items(self) -> Any:
            self._accessed()
            return dict.items(self)

        # modifying dict methods
        def __setitem__(self, key: Any, value: Any) -> None:
            self._changed()
            dict.__setitem__(self, key, value)

        def __delitem__(self, key: Any) -> None:
            self._changed()
            dict.__delitem__(self, key)

        def clear(self) -> None:
            self._changed()
            dict.clear(self)

        def update(self, *args: Any, **kwargs: Any) -> None:
            self._changed()
            dict.update(self, *args, **kwargs)

        def setdefault(self, key: Any, default: Any = None) -> Any:
            self._changed()
            return dict.setdefault(self, key, default)

        def pop(self, key: Any, *default: Any) -> Any:
            self._changed()
            return dict.pop(self, key, *default)

        def popitem(self) -> tuple[Any, Any]:
            self._changed()
            return dict.popitem(self)

        # flash messages
        def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
            """Append ``msg`` to the flash queue ``queue``."""
            self._changed()
            storage = dict.setdefault(self, "_f_" + queue, [])
            if allow_duplicate or msg not in storage:
                storage.append(msg)

        def pop_flash(self, queue: str = "") -> list[Any]:
            """Remove and return the flash queue ``queue``."""
            self._changed()
            return dict.pop(self, "_f_" + queue, [])

        def peek_flash(self, queue: str = "") -> list[Any]:
            """Return the flash queue ``queue`` without removing it."""
            self._accessed()
            return dict.get(self, "_f_" + queue, [])

        # CSRF (Pyramid's LegacySessionCSRFStoragePolicy)
        def new_csrf_token(self) -> str:
            """Store and return a fresh CSRF token."""
            token = binascii.hexlify(os.urandom(20)).decode("ascii")
            self["_csrft_"] = token
            return token

        def get_csrf_token(self) -> str:
            """Return the CSRF token, creating one if the session has none."""
            token = self.get("_csrft_")
            if token is None:
                token = self.new_csrf_token()
            return token

        # -- persistence -----------------------------------------------------

        @property
        def session_id(self) -> str | None:
            """The id of the stored entry (``None`` until the session is saved)."""
            return self._sid

        def _on_response(self, request: Any, response: Any) -> None:
            try:
                if not set_on_exception and getattr(request, "exception", None) is not None:
                    return
                if self._dirty:
                    self._save(response)
                elif self._renew:
                    self._touch(response)
                elif self._invalidated and self._had_cookie:
                    self._delete_cookie(response)
            finally:
                self.request = None  # break the request <-> session cycle

        def _save(self, response: Any) -> None:
            if not dict.__len__(self):
                # emptied: nothing to keep
                if self._sid is not None:
                    store.destroy(self._sid)
                    self._sid = None
                if self._had_cookie:
                    self._delete_cookie(response)
                return
            now = clock()
            record = {_CREATED: self.created, _RENEWED: now, _DATA: dict(dict.items(self))}
            if self._sid is not None:
                store.set(self._sid, record, ttl=ttl)
            else:
                sid = new_session_id()
                while not store.add(sid, record, ttl=ttl):  # pragma: no cover - 256-bit collision
                    sid = new_session_id()
                self._sid = sid
            self.renewed = now
            self._set_cookie(response)

        def _touch(self, response: Any) -> None:
            assert self._sid is not None
            if store.touch(self._sid, ttl=ttl):
                self._set_cookie(response)
            elif self._had_cookie:  # expired during the request
                self._delete_cookie(response)

        def _set_cookie(self, response: Any) -> None:
            assert self._sid is not None
            response.set_cookie(
                cookie_name,
                value=signer.sign(self._sid),
                max_age=cookie_max_age,
                path=path,
                domain=domain,
                secure=secure,
                httponly=httponly,
                samesite=samesite,
            )

        def _delete_cookie(self, response: Any) -> None:
            response.set_cookie(
                cookie_name,
                value=None,
                path=path,
                domain=domain,
                secure=secure,
                httponly=httponly,
                samesite=samesite,
            )

    return MemoryStoreSession
