"""The Flask app that bench/e2e.py serves with gunicorn: one endpoint on one of six session stores.

``GET /`` reads the visitor's ~1 KiB session, counts the request in it and
writes it back (``session["n"] += 1``: the whole session is loaded and stored
again); it answers 409 when the session is missing, so that a store that loses
sessions shows up as errors instead of as fast requests.  ``GET /login`` makes
a new session (only the seeding below uses it).

The store is chosen by ``E2E_STORE``:

``cookie``       Flask's own signed-cookie sessions (the session travels in the cookie)
``cachelib-fs``  Flask-Session on cachelib's ``FileSystemCache`` (``E2E_DIR``)
``diskcache``    Flask-Session on ``diskcache.FanoutCache`` (``E2E_DIR``) through a cachelib-style shim
``redis``        Flask-Session on redis-py, a redis-server on 127.0.0.1 (``E2E_REDIS_URL``)
``shared``       ``MemoryStoreSessionInterface(SharedMemoryStore(E2E_SEGMENT))``
``memory``       ``MemoryStoreSessionInterface(MemoryStore())``: per process, not shared (the floor)

gunicorn runs it with ``--preload``: this module is imported once, in the
master, which makes ``E2E_SESSIONS`` sessions through Flask's test client and
writes their cookies to ``E2E_COOKIES`` (one ``Cookie:`` header value a line)
before forking the workers.  The per-process ``MemoryStore`` is thus the same
in every worker at the start (each worker then updates its own copy): every
request of the run is a hit, as with the shared stores.
"""

from __future__ import annotations

import os
import random
import string
from typing import Any

from flask import Flask, session

STORE = os.environ.get("E2E_STORE", "memory")
#: The session's payload: ~1 KiB of text, the same for every session and every run.
PAYLOAD = "".join(random.Random(1).choices(string.ascii_letters + string.digits, k=960))
TTL = 3600


class DiskcacheForFlaskSession:
    """``diskcache.FanoutCache`` with the cachelib calls Flask-Session makes (``get``, ``set(timeout=)``,
    ``delete``), opened afresh in each process (an SQLite connection must not cross a fork)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._cache: Any = None
        self._pid = 0

    def _open(self) -> Any:
        if self._pid != os.getpid():
            import diskcache

            self._cache = diskcache.FanoutCache(self.directory, shards=8, timeout=1)
            self._pid = os.getpid()
        return self._cache

    def get(self, key: str) -> Any:
        return self._open().get(key)

    def set(self, key: str, value: Any, timeout: float | None = None) -> bool:
        return bool(self._open().set(key, value, expire=timeout or None))

    def delete(self, key: str) -> bool:
        return bool(self._open().delete(key))

    def close(self) -> None:
        if self._cache is not None and self._pid == os.getpid():
            self._cache.close()
        self._pid = 0


def make_app(store: str) -> tuple[Flask, Any]:
    """The app on ``store``, and the object to close before the fork (or None)."""
    app = Flask(__name__)
    app.secret_key = "bench e2e: a long enough secret for every store"
    to_close: Any = None
    if store == "cookie":
        pass  # Flask's SecureCookieSessionInterface
    elif store in ("cachelib-fs", "diskcache", "redis"):
        from flask_session import Session

        app.config["SESSION_PERMANENT"] = True
        app.config["PERMANENT_SESSION_LIFETIME"] = TTL
        if store == "cachelib-fs":
            from cachelib import FileSystemCache

            app.config["SESSION_TYPE"] = "cachelib"
            app.config["SESSION_CACHELIB"] = FileSystemCache(os.environ["E2E_DIR"], threshold=0, default_timeout=TTL)
        elif store == "diskcache":
            to_close = DiskcacheForFlaskSession(os.environ["E2E_DIR"])
            app.config["SESSION_TYPE"] = "cachelib"
            app.config["SESSION_CACHELIB"] = to_close
        else:
            import redis

            app.config["SESSION_TYPE"] = "redis"
            app.config["SESSION_REDIS"] = redis.Redis.from_url(os.environ["E2E_REDIS_URL"])
        Session(app)
    elif store in ("shared", "memory"):
        from memorystore import MemoryStore, SharedMemoryStore
        from memorystore.flask import MemoryStoreSessionInterface

        if store == "shared":
            backend: Any = SharedMemoryStore(os.environ["E2E_SEGMENT"], capacity=10_000, ttl=TTL)
        else:
            backend = MemoryStore(ttl=TTL, max=10_000)
        app.session_interface = MemoryStoreSessionInterface(backend)
    else:
        raise ValueError(f"E2E_STORE: unknown store {store!r}")

    @app.get("/login")
    def login() -> str:
        session.permanent = True
        session["user"] = {"id": random.randrange(1 << 30), "name": "bench", "roles": ["reader", "writer"]}
        session["payload"] = PAYLOAD
        session["n"] = 0
        return "ok"

    @app.get("/")
    def visit() -> tuple[str, int]:
        if session.get("payload") != PAYLOAD:
            return "no session\n", 409
        session["n"] = session.get("n", 0) + 1
        return f"{session['n']}\n", 200

    return app, to_close


def seed(app: Flask, count: int, path: str) -> None:
    """Make ``count`` sessions through the test client and write their cookies to ``path``."""
    lines = []
    for _ in range(count):
        client = app.test_client()
        assert client.get("/login").status_code == 200
        cookie = client.get_cookie("session")
        assert cookie is not None, "no session cookie"
        assert client.get("/").status_code == 200, "a new session did not read back"
        lines.append(f"session={cookie.value}")
    with open(path, "w", encoding="ascii") as handle:
        handle.write("\n".join(lines) + "\n")


app, _to_close = make_app(STORE)
if os.environ.get("E2E_COOKIES"):
    seed(app, int(os.environ.get("E2E_SESSIONS", "64")), os.environ["E2E_COOKIES"])
if _to_close is not None:
    _to_close.close()  # the workers open their own
