"""The Flask, cachelib and WSGI adapters with a RedisStore in place of the MemoryStore (a real redis-server)."""

from __future__ import annotations

import contextlib
import pickle
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import assert_flask_types_survive

from memorystore.wsgi import SessionMiddleware

redis = pytest.importorskip("redis")
flask = pytest.importorskip("flask")
session_json_serializer = flask.sessions.session_json_serializer
webtest = pytest.importorskip("webtest")

# The session-scoped throwaway server of test_redis.py (it skips when there is no Redis).
# TODO(lead): move ``redis_url`` to conftest.py and drop this import.
redis_url = pytest.importorskip("test_redis", reason="needs the redis_url fixture of tests/test_redis.py").redis_url
MemoryStoreCache = pytest.importorskip("memorystore.cachelib").MemoryStoreCache
MemoryStoreSessionInterface = pytest.importorskip("memorystore.flask").MemoryStoreSessionInterface
RedisStore = pytest.importorskip("memorystore.redis").RedisStore


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_store(redis_url: str, raw: Any) -> Iterator[RedisStore]:
    prefix = f"msa-{uuid.uuid4().hex[:12]}:"
    store = RedisStore(redis_url, prefix=prefix)
    yield store
    store.close()
    with contextlib.suppress(Exception):
        keys = list(raw.scan_iter(match=prefix + "*", count=1000))
        if keys:
            raw.delete(*keys)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="json"),
        pytest.param({"serializer": pickle}, id="pickle"),
        pytest.param({"serializer": None}, id="no-serializer"),
        pytest.param({"serializer": pickle, "near_cache": "near"}, id="pickle-near-cache"),
    ],
)
def test_flask_session_types_on_redis(redis_url: str, raw: Any, options: dict[str, Any]) -> None:
    from memorystore import MemoryStore

    if options.get("near_cache") == "near":
        options = {**options, "near_cache": MemoryStore(ttl=30)}
    prefix = f"msa-{uuid.uuid4().hex[:12]}:"
    with RedisStore(redis_url, prefix=prefix, **options) as store:
        try:
            assert_flask_types_survive(MemoryStoreSessionInterface(store))
            assert len(store) == 1
        finally:
            store.clear()


def test_flask_interface_on_redis(redis_store: RedisStore, raw: Any) -> None:
    app = flask.Flask(__name__)
    app.secret_key = "k"
    app.config["PERMANENT_SESSION_LIFETIME"] = 600
    app.session_interface = MemoryStoreSessionInterface(redis_store)

    @app.get("/incr")
    def incr() -> str:
        flask.session["n"] = flask.session.get("n", 0) + 1
        return str(flask.session["n"])

    @app.get("/read")
    def read() -> str:
        return str(flask.session.get("n", 0))

    @app.get("/login")
    def login() -> str:
        app.session_interface.regenerate(flask.session)
        return "ok"

    @app.get("/clear")
    def clear() -> str:
        flask.session.clear()
        return "ok"

    client = app.test_client()
    assert client.get("/read").text == "0"
    assert len(redis_store) == 0  # an untouched session writes nothing to Redis either
    assert client.get("/incr").text == "1"
    assert client.get("/incr").text == "2"
    sid = client.get_cookie("session").value.rpartition(".")[0]
    key = redis_store.prefix + sid
    assert 0 < raw.pttl(key) <= 600_000

    raw.pexpire(key, 5_000)
    assert client.get("/read").text == "2"
    assert raw.pttl(key) > 5_000  # SESSION_REFRESH_EACH_REQUEST: touched back to the lifetime

    client.get("/login")
    new_sid = client.get_cookie("session").value.rpartition(".")[0]
    assert new_sid != sid and sid not in redis_store
    assert session_json_serializer.loads(redis_store.get(new_sid)) == {"n": 2}  # Flask's tagged JSON text

    client.get("/clear")
    assert len(redis_store) == 0
    assert client.get_cookie("session") is None


def test_cachelib_on_redis(redis_store: RedisStore, redis_url: str) -> None:
    with pytest.raises(TypeError, match="serializer=None"):
        MemoryStoreCache(store=redis_store)  # json cannot hold the cache's pickled bytes
    store = RedisStore(redis_url, prefix=redis_store.prefix, serializer=None)
    cache = MemoryStoreCache(store=store)
    assert cache.set("k", {"a": (1, 2)}) is True
    assert cache.get("k") == {"a": (1, 2)}
    assert cache.add("k", "other") is False
    assert cache.inc("n") == 1 and cache.inc("n") == 2
    assert cache.set("k", "gone", timeout=-1) is True
    assert not cache.has("k")
    assert cache.delete("n") is True
    store.close()


def test_wsgi_middleware_on_redis(redis_store: RedisStore) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["memorystore.session"]
        if environ["PATH_INFO"] == "/logout":
            session.invalidate()
        else:
            session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(session.get("n", 0)).encode()]

    client = webtest.TestApp(SessionMiddleware(app, redis_store, "secret", max_age=600))
    assert client.get("/").text == "1"
    assert client.get("/").text == "2"
    assert len(redis_store) == 1
    client.get("/logout")
    assert len(redis_store) == 0
