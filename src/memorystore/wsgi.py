"""Server-side sessions for any WSGI application, standard library only.

::

    from memorystore import MemoryStore
    from memorystore.wsgi import SessionMiddleware

    def app(environ, start_response):
        session = environ["memorystore.session"]
        session["visits"] = session.get("visits", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"visit {session['visits']}".encode()]

    app = SessionMiddleware(app, MemoryStore(max=100_000), secret="a long random secret",
                            max_age=3600, secure=True)

The session at ``environ["memorystore.session"]`` is a :class:`Session`,
a ``dict`` with:

* ``modified``: true once a top-level change happened; set it yourself
  after changing a nested value (``session["cart"].append(x)``).
* ``regenerate()``: new id, same data, old id deleted from the store (call
  it at login: session fixation).
* ``invalidate()``: drop the data and the id (logout).  Writing to it
  afterwards starts a fresh session under a new id.

Rules, per request:

* Nothing is stored and no cookie is set until the session is modified;
  an empty session is never stored.
* The cookie carries ``id.HMAC-SHA256(id)``; ``secret`` may be a list for
  rotation (the first signs, all verify).  A missing, tampered or unknown
  id gives a fresh empty session under a new id: a client-chosen id is
  never adopted.
* A modified session is written with ``store.set(sid, dict(session),
  ttl=max_age)`` (``max_age=None``: the store's own ttl, and a
  browser-session cookie).
* ``rolling=True``: an unmodified session gets ``store.touch`` (sliding
  expiry without a rewrite) and, when ``max_age`` is set, a fresh cookie.
* The session is saved when the application calls ``start_response``:
  changes made while a streamed body is being produced are lost (as with
  Beaker).  Concurrent requests of one session are last-write-wins.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from email.utils import formatdate
from typing import Any, Self

from ._signing import CookieSigner, is_session_id, new_session_id

__all__ = ["Session", "SessionMiddleware"]

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a cookie name
_ATTRIBUTE_RE = re.compile(r"[\x21-\x3a\x3c-\x7e]*")  # printable ASCII without ';'
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Session(dict[str, Any]):
    """A session: a ``dict`` that knows whether it changed, with ``regenerate()`` and ``invalidate()``."""

    def __init__(self, data: Mapping[str, Any] | None = None, *, sid: str, new: bool = True, had_cookie: bool = False):
        super().__init__(data or ())
        self.sid = sid
        self.new = new
        self.modified = False
        self.accessed = False
        self.had_cookie = had_cookie
        self.invalidated = False
        self._retired_ids: list[str] = []

    # -- change tracking ---------------------------------------------------

    def _changed(self) -> None:
        self.modified = True
        self.accessed = True

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]
        super().__ior__(other)
        self._changed()
        return self

    def clear(self) -> None:
        if dict.__len__(self):
            self._changed()
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        if dict.__contains__(self, key):
            self._changed()
        self.accessed = True
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._changed()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        if not dict.__contains__(self, key):
            self._changed()
        self.accessed = True
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    # -- read tracking (for ``Vary: Cookie``) --------------------------------

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return super().__iter__()

    def __len__(self) -> int:
        self.accessed = True
        return super().__len__()

    def keys(self):  # type: ignore[no-untyped-def]
        self.accessed = True
        return super().keys()

    def values(self):  # type: ignore[no-untyped-def]
        self.accessed = True
        return super().values()

    def items(self):  # type: ignore[no-untyped-def]
        self.accessed = True
        return super().items()

    def copy(self) -> dict[str, Any]:
        self.accessed = True
        return dict(self)

    # -- identity ------------------------------------------------------------

    def regenerate(self) -> None:
        """New id, same data; the old id is deleted from the store when the response starts."""
        self.accessed = True
        if not self.new:
            self._retired_ids.append(self.sid)
        self.sid = new_session_id()
        self.new = True
        self.modified = True

    def invalidate(self) -> None:
        """Drop the data and the id: the entry and the cookie are deleted when the response starts.

        Writing to the session afterwards starts a new session under a new id.
        """
        self.accessed = True
        if not self.new:
            self._retired_ids.append(self.sid)
        dict.clear(self)
        self.sid = new_session_id()
        self.new = True
        self.modified = False
        self.invalidated = True


def _seconds(value: float | dt.timedelta | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be seconds (int/float) or a timedelta, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive finite number of seconds, not {value!r}")
    return float(value)


def _attribute(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ATTRIBUTE_RE.fullmatch(value):
        raise ValueError(f"{what} must be printable ASCII without ';', got {value!r}")
    return value


class SessionMiddleware:
    """WSGI middleware that puts a server-side :class:`Session` at ``environ["memorystore.session"]``.

    ``store`` is a ``MemoryStore`` (or any object with its ``get``, ``set``,
    ``touch`` and ``destroy``, e.g. a ``RedisStore``); ``None`` makes a
    default ``MemoryStore()``.  ``secret`` is a str/bytes secret, or a list
    of them (first signs, all verify).  ``max_age`` (seconds or timedelta) is
    both the cookie's ``Max-Age`` and the server-side ttl; ``None`` gives a
    browser-session cookie and the store's own ttl.
    """

    environ_key = "memorystore.session"
    salt = "memorystore.wsgi"

    def __init__(
        self,
        app: WSGIApp,
        store: Any,
        secret: str | bytes | Iterable[str | bytes],
        *,
        cookie_name: str = "session",
        max_age: float | dt.timedelta | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = True,
        samesite: str | None = "Lax",
        rolling: bool = True,
    ) -> None:
        if not isinstance(cookie_name, str) or not _TOKEN_RE.fullmatch(cookie_name):
            raise ValueError(f"cookie_name must be a cookie token, got {cookie_name!r}")
        if samesite is not None:
            normalized = str(samesite).capitalize()
            if normalized not in ("Strict", "Lax", "None"):
                raise ValueError(f"samesite must be 'Strict', 'Lax', 'None' or None, got {samesite!r}")
            if normalized == "None" and not secure:
                raise ValueError("samesite='None' needs secure=True (browsers drop the cookie otherwise)")
            samesite = normalized
        if store is None:
            from .store import MemoryStore

            store = MemoryStore()
        self.app = app
        self.store = store
        self.cookie_name = cookie_name
        self.max_age = _seconds(max_age, "max_age")
        self.path = _attribute(path, "path") or "/"
        self.domain = _attribute(domain, "domain")
        self.secure = bool(secure)
        self.httponly = bool(httponly)
        self.samesite = samesite
        self.rolling = bool(rolling)
        self._signer = CookieSigner(secret, salt=self.salt)

    # -- request -------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session = self.open_session(environ)
        environ[self.environ_key] = session
        session_headers: list[tuple[str, str]] | None = None

        def session_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal session_headers
            if session_headers is None:  # save once, even if called again with exc_info
                session_headers = self.save_session(session)
            return start_response(status, _merge_headers(headers, session_headers), exc_info)

        return self.app(environ, session_start_response)

    def _cookie_value(self, environ: Mapping[str, Any]) -> str | None:
        header: str | None = environ.get("HTTP_COOKIE")
        if not header:
            return None
        for part in header.split(";"):
            name, sep, value = part.partition("=")
            if sep and name.strip() == self.cookie_name:
                value = value.strip()
                # RFC 6265 allows a cookie-value wrapped in double quotes.
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value
        return None

    def open_session(self, environ: Mapping[str, Any]) -> Session:
        """The request's session: the stored one if the cookie is valid and known, else a new empty one."""
        cookie = self._cookie_value(environ)
        if cookie is not None:
            sid = self._signer.unsign(cookie)
            if sid is not None and is_session_id(sid):
                data = self.store.get(sid)
                if isinstance(data, dict):
                    return Session(data, sid=sid, new=False, had_cookie=True)
        return Session(sid=new_session_id(), new=True, had_cookie=cookie is not None)

    # -- response ------------------------------------------------------------

    def save_session(self, session: Session) -> list[tuple[str, str]]:
        """Write, touch or delete the session; return the headers to add to the response."""
        headers: list[tuple[str, str]] = []
        for retired in session._retired_ids:
            self.store.destroy(retired)
        session._retired_ids.clear()

        if not dict.__len__(session):
            if not session.new:
                self.store.destroy(session.sid)
            if session.had_cookie and (not session.new or session.modified or session.invalidated):
                headers.append(("Set-Cookie", self._expired_cookie()))
        elif session.modified or session.new:
            self.store.set(session.sid, dict(session), ttl=self.max_age)
            headers.append(("Set-Cookie", self._cookie(session.sid)))
        # Otherwise, when rolling: sliding expiry without a rewrite.  touch()
        # returns False when the entry went away meanwhile: not brought back.
        elif self.rolling and self.store.touch(session.sid, ttl=self.max_age) and self.max_age is not None:
            headers.append(("Set-Cookie", self._cookie(session.sid)))

        if headers or session.accessed:
            headers.append(("Vary", "Cookie"))
        return headers

    def _attributes(self) -> list[str]:
        parts = [f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        if self.samesite:
            parts.append(f"SameSite={self.samesite}")
        return parts

    def _cookie(self, sid: str) -> str:
        parts = [f"{self.cookie_name}={self._signer.sign(sid)}"]
        if self.max_age is not None:
            seconds = math.ceil(self.max_age)
            parts.append(f"Max-Age={seconds}")
            parts.append("Expires=" + formatdate(time.time() + seconds, usegmt=True))
        return "; ".join(parts + self._attributes())

    def _expired_cookie(self) -> str:
        return "; ".join([f"{self.cookie_name}=", "Max-Age=0", f"Expires={_EPOCH}", *self._attributes()])


def _merge_headers(headers: list[tuple[str, str]], extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The app's headers plus ours; ``Vary: Cookie`` only if no ``Vary`` already covers it."""
    if not extra:
        return headers
    merged = list(headers)
    vary = [value for name, value in merged if name.lower() == "vary"]
    covered = any(token.strip().lower() in ("cookie", "*") for value in vary for token in value.split(","))
    for name, value in extra:
        if name == "Vary" and covered:
            continue
        merged.append((name, value))
    return merged
