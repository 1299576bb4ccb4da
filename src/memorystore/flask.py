"""Flask sessions kept on the server, in a MemoryStore (or anything shaped like one).

::

    from flask import Flask
    from memorystore import MemoryStore
    from memorystore.flask import MemoryStoreSessionInterface

    app = Flask(__name__)
    app.secret_key = "a long random secret"
    app.session_interface = MemoryStoreSessionInterface(MemoryStore(max=100_000))

The cookie carries only a signed, random session id (itsdangerous,
HMAC-SHA256, keyed by ``app.secret_key`` with ``SECRET_KEY_FALLBACKS`` still
accepted); the data stays in the store.  Behaviour, request by request:

* A request whose session is never written stores nothing and sets no
  cookie (an anonymous visitor costs nothing).  A session holding only
  ``_permanent`` counts as empty.
* A missing, tampered, foreign or unknown cookie gives a fresh empty session
  with a new id: an id the server did not issue, or no longer holds, is
  never adopted.
* A modified session is written with ``store.set`` and a server-side ttl of
  ``PERMANENT_SESSION_LIFETIME``, permanent or not (a browser-session cookie
  must not leave the data in memory forever).
* What is stored is the session encoded with Flask's own tagged JSON (the
  interface's ``serializer``, ``flask.sessions.session_json_serializer``): a
  ``str``, which any store keeps whatever its own serializer (json, pickle,
  ``None``...).  So a session holds exactly what Flask's cookie sessions hold
  (``datetime``, ``tuple``, ``bytes``, ``Markup``, ``UUID``; flashed messages
  come back as ``(category, message)`` tuples) with a ``MemoryStore``, a
  ``RedisStore`` or any other store, and refuses what they refuse
  (``TypeError`` for a ``set``).
* An unmodified session is kept alive with ``store.touch`` when
  ``SESSION_REFRESH_EACH_REQUEST`` is true (the default), without rewriting
  it; the cookie is re-sent for permanent sessions, as Flask does.
* ``session.clear()`` (or emptying it) deletes the entry and the cookie.
* ``interface.regenerate(session)`` moves the data to a new id and deletes
  the old entry at once: call it at login to prevent session fixation.
* Every ``SESSION_COOKIE_*`` setting is honoured, and ``Vary: Cookie`` is
  added whenever the session was used.

Only top-level changes are detected (``session["cart"].append(x)`` is not);
set ``session.modified = True`` after changing a nested value, as with
Flask's own sessions.  Concurrent requests of one session are last-write-wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask.sessions import SessionInterface, SessionMixin, session_json_serializer
from itsdangerous import BadData, Signer
from werkzeug.datastructures import CallbackDict

from ._log import logger
from ._signing import is_session_id, new_session_id

if TYPE_CHECKING:
    from flask import Flask, Request, Response

__all__ = ["MemoryStoreSession", "MemoryStoreSessionInterface"]

_MAX_SID_LENGTH = 1024  # the store's limit on a key
_ID_LENGTH = 43  # len(new_session_id())


class MemoryStoreSession(CallbackDict[str, Any], SessionMixin):
    """A Flask session whose data lives in a store under ``key_prefix + sid``.

    ``sid`` is the session id, ``new`` is true until the session has been
    found in the store, ``modified`` turns true on any top-level change.
    """

    modified = False

    def __init__(
        self,
        initial: Mapping[str, Any] | None = None,
        *,
        sid: str,
        new: bool = True,
        had_cookie: bool = False,
    ) -> None:
        def on_update(self: MemoryStoreSession) -> None:
            self.modified = True
            self.accessed = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.new = new
        self.modified = False
        self.accessed = False
        # Whether the request carried a session cookie (stale or not), so an
        # emptied new session knows whether there is a cookie to delete.
        self.had_cookie = had_cookie

    # Flask >= 3.1.3 marks ``accessed`` in the request context; earlier 3.1
    # releases rely on the session class, as SecureCookieSession did.
    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().setdefault(key, default)


def _is_empty(session: dict[str, Any]) -> bool:
    """No data worth storing: nothing, or only Flask's ``_permanent`` flag."""
    size = dict.__len__(session)
    return size == 0 or (size == 1 and dict.__contains__(session, "_permanent"))


class MemoryStoreSessionInterface(SessionInterface):
    """A Flask ``SessionInterface`` backed by a MemoryStore.

    ``store`` is any object with the MemoryStore methods ``get``, ``set``,
    ``touch`` and ``destroy`` (a ``MemoryStore``, a ``RedisStore``...); when it
    is ``None``, a ``MemoryStore(serializer=None)`` is made.  The interface
    encodes each session with :attr:`serializer` (Flask's tagged JSON) and the
    store keeps that text, so sessions hold the same types as Flask's cookie
    sessions (tuples, bytes, datetimes, UUIDs, Markup) whatever the store and
    its serializer.  ``key_prefix`` is put in front of every session id in the
    store, so one store can serve several apps.
    """

    #: Salt of the cookie signature: separates it from other uses of the key.
    salt = "memorystore.flask"
    #: Hash of the cookie signature.
    digest_method = staticmethod(hashlib.sha256)
    session_class = MemoryStoreSession
    pickle_based = False
    #: Encodes a session's dict to the text kept in the store, and back: Flask's tagged JSON.
    serializer: Any = session_json_serializer

    def __init__(self, store: Any = None, *, key_prefix: str = "") -> None:
        if type(key_prefix) is not str:
            raise TypeError(f"key_prefix must be a str, not {type(key_prefix).__name__}")
        if len(key_prefix) + _ID_LENGTH > _MAX_SID_LENGTH:
            raise ValueError(f"key_prefix must be at most {_MAX_SID_LENGTH - _ID_LENGTH} characters")
        if store is None:
            from .store import MemoryStore

            store = MemoryStore(serializer=None)  # it keeps the tagged-JSON text as it is
        self.store = store
        self.key_prefix = key_prefix

    # -- signing ---------------------------------------------------------

    def get_signer(self, app: Flask) -> Signer | None:
        """The cookie signer: ``app.secret_key`` signs, it and ``SECRET_KEY_FALLBACKS`` verify.

        ``None`` when the app has no secret key (Flask then uses a null session
        that refuses writes, as with its own sessions).
        """
        if not app.secret_key:
            return None
        keys: list[str | bytes] = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key]
        return Signer(keys, salt=self.salt, key_derivation="hmac", digest_method=self.digest_method)  # type: ignore[arg-type]

    def _session_id_from_cookie(self, signer: Signer, value: str) -> str | None:
        try:
            sid = signer.unsign(value).decode("ascii")
        except (BadData, UnicodeError):
            return None
        return sid if is_session_id(sid) else None

    # -- SessionInterface ------------------------------------------------

    def open_session(self, app: Flask, request: Request) -> MemoryStoreSession | None:
        signer = self.get_signer(app)
        if signer is None:
            return None
        cookie = request.cookies.get(self.get_cookie_name(app))
        if cookie:
            sid = self._session_id_from_cookie(signer, cookie)
            if sid is not None:
                data = self._decode(self.store.get(self.key_prefix + sid))
                if data is not None:
                    return self.session_class(data, sid=sid, new=False, had_cookie=True)
        return self.session_class(sid=new_session_id(), new=True, had_cookie=bool(cookie))

    def _decode(self, stored: Any) -> dict[str, Any] | None:
        """A session's data from the text the store kept; ``None`` for nothing usable."""
        if not isinstance(stored, (str, bytes)):
            return None
        try:
            data = self.serializer.loads(stored)
        except Exception:  # noqa: BLE001 - damaged data: the visitor gets a fresh session, as with a bad cookie
            logger.warning("flask: a stored session could not be decoded; a new one is started")
            return None
        return data if isinstance(data, dict) else None

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, MemoryStoreSession):  # pragma: no cover - misuse
            raise TypeError("MemoryStoreSessionInterface can only save a MemoryStoreSession")
        if session.accessed:
            response.vary.add("Cookie")
        key = self.key_prefix + session.sid

        if _is_empty(session):
            if not session.new:
                self.store.destroy(key)
            if not session.new or (session.modified and session.had_cookie):
                self._delete_cookie(app, response)
            return

        ttl = app.permanent_session_lifetime.total_seconds()
        if session.modified or session.new:
            self.store.set(key, self.serializer.dumps(dict(session)), ttl=ttl)
            self._set_cookie(app, session, response)
        # Otherwise: sliding expiry without a rewrite.  touch() returns False
        # when the entry went away meanwhile (logout elsewhere, expiry): it is
        # not brought back, and no cookie is sent for it.
        elif (
            app.config["SESSION_REFRESH_EACH_REQUEST"]
            and self.store.touch(key, ttl=ttl)
            and self.should_set_cookie(app, session)
        ):
            self._set_cookie(app, session, response)

    # -- session fixation --------------------------------------------------

    def regenerate(self, session: SessionMixin) -> None:
        """Give ``session`` a new id, keep its data, and delete the old id from the store now.

        Call it when privileges change (login, logout, sudo mode).  The data
        is written under the new id, and the new cookie sent, when the
        request ends.
        """
        if not isinstance(session, MemoryStoreSession):
            raise TypeError("regenerate() needs a session opened by this interface")
        if not session.new:
            self.store.destroy(self.key_prefix + session.sid)
        session.sid = new_session_id()
        session.new = True
        session.modified = True

    # -- cookies ---------------------------------------------------------

    def _cookie_options(self, app: Flask) -> dict[str, Any]:
        return {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "httponly": self.get_cookie_httponly(app),
            "samesite": self.get_cookie_samesite(app),
            "partitioned": self.get_cookie_partitioned(app),
        }

    def _set_cookie(self, app: Flask, session: MemoryStoreSession, response: Response) -> None:
        signer = self.get_signer(app)
        assert signer is not None  # open_session returned a real session
        response.set_cookie(
            self.get_cookie_name(app),
            signer.sign(session.sid).decode("ascii"),
            expires=self.get_expiration_time(app, session),
            **self._cookie_options(app),
        )
        response.vary.add("Cookie")

    def _delete_cookie(self, app: Flask, response: Response) -> None:
        response.delete_cookie(self.get_cookie_name(app), **self._cookie_options(app))
        response.vary.add("Cookie")
