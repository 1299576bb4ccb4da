"""MemoryStoreStarStore through starsessions' middleware on a Starlette app (TestClient)."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("starsessions")
pytest.importorskip("httpx")

from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from starsessions import SessionAutoloadMiddleware, SessionMiddleware, regenerate_session_id  # noqa: E402

from memorystore.aio import AsyncMemoryStore  # noqa: E402
from memorystore.starsessions import DEFAULT_GC_TTL, MemoryStoreStarStore  # noqa: E402


async def incr(request):
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse(request.session["n"])


async def peek(request):
    return JSONResponse(request.session.get("n", 0))


async def logout(request):
    request.session.clear()
    return JSONResponse("bye")


async def login(request):
    regenerate_session_id(request)
    request.session["user"] = "alice"
    return JSONResponse("hi")


def make_client(star_store, **middleware_options):
    app = Starlette(
        routes=[Route(f"/{view.__name__}", view) for view in (incr, peek, logout, login)],
        middleware=[
            Middleware(SessionMiddleware, store=star_store, **middleware_options),
            Middleware(SessionAutoloadMiddleware),
        ],
    )
    return TestClient(app, base_url="https://testserver")


@pytest.fixture
def store(store_cls, fake_timer):
    return store_cls(serializer=None, timer=fake_timer)


def test_counter_persists_as_bytes(store):
    with make_client(MemoryStoreStarStore(store)) as client:
        assert client.get("/incr").json() == 1
        assert client.get("/incr").json() == 2
        assert client.get("/peek").json() == 2
        [sid] = store.ids()
        assert client.cookies["session"] == sid
        stored = store.get(sid)
        assert isinstance(stored, bytes)
        assert json.loads(stored)["n"] == 2
        with make_client(MemoryStoreStarStore(store)) as other:
            assert other.get("/incr").json() == 1
        assert store.length() == 2


def test_untouched_session_is_not_stored(store):
    with make_client(MemoryStoreStarStore(store)) as client:
        response = client.get("/peek")
        assert response.json() == 0
        assert "set-cookie" not in response.headers
        assert store.length() == 0


def test_browser_session_gets_the_default_gc_ttl(store, fake_timer):
    assert DEFAULT_GC_TTL == 86400
    with make_client(MemoryStoreStarStore(store)) as client:  # lifetime=0
        response = client.get("/incr")
        assert "max-age" not in response.headers["set-cookie"].lower()
        [sid] = store.ids()
        fake_timer.advance(DEFAULT_GC_TTL - 1)
        assert client.get("/incr").json() == 2  # each write restarts the idle clock
        fake_timer.advance(DEFAULT_GC_TTL - 1)
        assert sid in store
        fake_timer.advance(1)
        assert sid not in store
        assert client.get("/peek").json() == 0


def test_gc_ttl_is_configurable(store, fake_timer):
    with make_client(MemoryStoreStarStore(store, gc_ttl=100)) as client:
        client.get("/incr")
        [sid] = store.ids()
        fake_timer.advance(99)
        assert sid in store
        fake_timer.advance(1)
        assert sid not in store


def test_lifetime_is_the_store_ttl(store, fake_timer):
    with make_client(MemoryStoreStarStore(store), lifetime=3600, rolling=True) as client:
        response = client.get("/incr")
        assert "max-age=3600" in response.headers["set-cookie"].lower()
        [sid] = store.ids()
        fake_timer.advance(3599)
        assert sid in store
        fake_timer.advance(1)
        assert sid not in store


def test_unknown_cookie_is_not_adopted(store):
    with make_client(MemoryStoreStarStore(store)) as client:
        client.get("/incr")
        [victim] = store.ids()
    with make_client(MemoryStoreStarStore(store)) as attacker:
        attacker.cookies.set("session", "attacker-chosen-id", domain="testserver.local")
        assert attacker.get("/incr").json() == 1
        issued = attacker.cookies["session"]
        assert issued != "attacker-chosen-id"
        assert "attacker-chosen-id" not in store
        assert len(issued) >= 43 and issued in store
        assert json.loads(store.get(victim))["n"] == 1


def test_regenerated_id_is_issued_by_the_store(store):
    with make_client(MemoryStoreStarStore(store)) as client:
        client.get("/incr")
        [before] = store.ids()
        client.get("/login")
        after = client.cookies["session"]
        assert after != before and after in store
        assert json.loads(store.get(after))["user"] == "alice"


def test_emptied_session_is_removed(store):
    with make_client(MemoryStoreStarStore(store)) as client:
        client.get("/incr")
        response = client.get("/logout")
        assert "1970" in response.headers["set-cookie"]
        assert store.length() == 0


def test_store_contract_directly(store, fake_timer):
    star = MemoryStoreStarStore(store)

    async def main():
        assert await star.read("nobody", lifetime=0) == b""
        assert await star.read("", lifetime=0) == b""
        assert await star.read("x" * 2000, lifetime=0) == b""
        sid = await star.write("client-made", b"one", lifetime=60, ttl=60)
        assert sid != "client-made"
        assert await star.read(sid, lifetime=60) == b"one"
        assert await star.write(sid, b"two", lifetime=60, ttl=30) == sid
        assert await star.read(sid, lifetime=60) == b"two"
        fake_timer.advance(30)
        assert await star.read(sid, lifetime=60) == b""
        sid = await star.write("x", b"three", lifetime=60, ttl=60)
        # a session whose lifetime is over (non-rolling, ttl <= 0) is removed
        assert await star.write(sid, b"four", lifetime=60, ttl=0) == sid
        assert await star.read(sid, lifetime=60) == b""
        sid = await star.write("y", b"five", lifetime=0, ttl=0)
        await star.remove(sid)
        await star.remove("unknown")
        await star.remove("")
        assert await star.read(sid, lifetime=0) == b""

    asyncio.run(main())
    assert store.length() == 0


def test_default_store_keeps_the_bytes_object():
    star = MemoryStoreStarStore(max=2)
    data = b"payload"

    async def main():
        sid = await star.write("new", data, lifetime=0, ttl=0)
        return sid, await star.read(sid, lifetime=0)

    sid, read_back = asyncio.run(main())
    assert read_back is data  # serializer=None: bytes stored as they are
    assert star.store.store.get(sid) is data


def test_accepts_an_async_facade_and_validates_options(store):
    facade = AsyncMemoryStore(store)
    assert MemoryStoreStarStore(facade).store is facade
    with pytest.raises(TypeError):
        MemoryStoreStarStore(facade, max=3)
    with pytest.raises(ValueError):
        MemoryStoreStarStore(gc_ttl=0)
    with pytest.raises(TypeError):
        MemoryStoreStarStore(gc_ttl="1 day")
