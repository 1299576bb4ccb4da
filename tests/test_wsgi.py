"""memorystore.wsgi.SessionMiddleware: WebTest for behaviour, a real threaded wsgiref server end to end."""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import json
import threading
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from helpers import CountingJSON

from memorystore._signing import CookieSigner, new_session_id
from memorystore.wsgi import Session, SessionMiddleware

webtest = pytest.importorskip("webtest")

SECRET = "wsgi-test-secret"


def demo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    session: Session = environ["memorystore.session"]
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path == "/incr":
        session["n"] = session.get("n", 0) + 1
        body = str(session["n"])
    elif path == "/read":
        body = str(session.get("n", 0))
    elif path == "/noop":
        body = "ok"
    elif path == "/logout":
        session.invalidate()
        body = "bye"
    elif path == "/logout-then-flash":
        session.invalidate()
        session["flash"] = "logged out"
        body = "bye"
    elif path == "/login":
        session.regenerate()
        session["user"] = "alice"
        body = "hi"
    elif path == "/clear":
        session.clear()
        body = "cleared"
    elif path == "/vary":
        headers.append(("Vary", environ.get("QUERY_STRING") or "Accept-Encoding"))
        body = str(session.get("n", 0))
    elif path == "/stream":

        def stream() -> Iterator[bytes]:
            yield b"a"
            session["late"] = True  # after start_response: lost (documented)
            yield b"b"

        start_response("200 OK", headers)
        return stream()
    elif path == "/error":
        session["n"] = session.get("n", 0) + 1
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            import sys

            start_response("200 OK", headers)
            start_response("500 Internal Server Error", headers, sys.exc_info())
        return [b"error"]
    else:
        start_response("404 Not Found", headers)
        return [b"not found"]
    start_response("200 OK", headers)
    return [body.encode()]


@pytest.fixture
def store(store_cls: type, fake_timer: Any) -> Any:
    return store_cls(timer=fake_timer)


def make(store: Any, **options: Any) -> Any:
    return webtest.TestApp(SessionMiddleware(demo, store, options.pop("secret", SECRET), **options))


def cookie_header(response: Any) -> str:
    [header] = response.headers.getall("Set-Cookie")
    return header


def attributes(header: str) -> list[str]:
    return [part.strip() for part in header.split(";")]


def sid_of(app: Any, name: str = "session") -> str:
    value = app.cookies[name]
    sid, dot, tag = value.rpartition(".")
    assert dot and len(sid) == 43 and tag
    return sid


# -- basic behaviour -----------------------------------------------------------


def test_counter(store: Any) -> None:
    app = make(store)
    response = app.get("/incr")
    assert response.text == "1"
    parts = attributes(cookie_header(response))
    assert parts[0].startswith("session=")
    assert "HttpOnly" in parts and "SameSite=Lax" in parts and "Path=/" in parts
    assert not any(p.startswith(("Max-Age", "Expires")) for p in parts)  # max_age=None: browser session
    assert response.headers["Vary"] == "Cookie"
    assert app.get("/incr").text == "2"
    assert app.get("/incr").text == "3"
    assert store.ids() == [sid_of(app)]
    assert store.get(sid_of(app)) == {"n": 3}


def test_nothing_stored_and_no_cookie_until_modified(store: Any) -> None:
    app = make(store)
    for _ in range(5):
        response = app.get("/noop")
        assert response.headers.getall("Set-Cookie") == []
        assert "Vary" not in response.headers  # the app never looked at the session
    response = app.get("/read")
    assert response.text == "0"
    assert response.headers.getall("Set-Cookie") == []
    assert response.headers["Vary"] == "Cookie"  # it looked: caches must key on the cookie
    assert len(store) == 0


def test_cleared_session_is_deleted_with_its_cookie(store: Any) -> None:
    app = make(store)
    app.get("/incr")
    sid = sid_of(app)
    response = app.get("/clear")
    parts = attributes(cookie_header(response))
    assert parts[0] == "session="
    assert "Max-Age=0" in parts
    assert sid not in store
    assert "session" not in app.cookies
    assert app.get("/read").text == "0"


def test_invalidate(store: Any) -> None:
    app = make(store)
    app.get("/incr")
    sid = sid_of(app)
    response = app.get("/logout")
    assert "Max-Age=0" in attributes(cookie_header(response))
    assert len(store) == 0
    assert sid not in store
    assert app.get("/read").text == "0"


def test_writes_after_invalidate_start_a_new_session(store: Any) -> None:
    app = make(store)
    app.get("/incr")
    old_sid = sid_of(app)
    app.get("/logout-then-flash")
    new_sid = sid_of(app)
    assert new_sid != old_sid
    assert old_sid not in store
    assert store.all() == {new_sid: {"flash": "logged out"}}


def test_regenerate_keeps_data_under_a_new_id(store: Any) -> None:
    app = make(store)
    app.get("/incr")
    app.get("/incr")
    old_sid = sid_of(app)
    old_cookie = app.cookies["session"]
    app.get("/login")
    new_sid = sid_of(app)
    assert new_sid != old_sid
    assert old_sid not in store
    assert store.all() == {new_sid: {"n": 2, "user": "alice"}}

    fixated = make(store)
    fixated.set_cookie("session", old_cookie)
    assert fixated.get("/read").text == "0"


def test_max_age_sets_cookie_and_server_ttl(store: Any, fake_timer: Any) -> None:
    app = make(store, max_age=dt.timedelta(hours=1), rolling=False)
    response = app.get("/incr")
    parts = attributes(cookie_header(response))
    assert "Max-Age=3600" in parts
    assert any(p.startswith("Expires=") and p.endswith("GMT") for p in parts)
    sid = sid_of(app)
    fake_timer.advance(3599)
    assert sid in store
    fake_timer.advance(1)
    assert sid not in store
    assert app.get("/read").text == "0"


def test_rolling_touches_without_rewriting(store_cls: type, fake_timer: Any) -> None:
    serializer = CountingJSON()
    store = store_cls(timer=fake_timer, serializer=serializer)
    app = make(store, max_age=100)
    app.get("/incr")
    sid = sid_of(app)
    assert serializer.dumps_calls == 1
    for _ in range(3):
        fake_timer.advance(60)
        response = app.get("/read")
        assert response.text == "1"
        assert "Max-Age=100" in attributes(cookie_header(response))  # the cookie rolls too
    assert serializer.dumps_calls == 1
    assert sid in store  # 180 s after the only write
    fake_timer.advance(100)
    assert sid not in store


def test_rolling_without_max_age_touches_but_sends_no_cookie(store_cls: type, fake_timer: Any) -> None:
    store = store_cls(timer=fake_timer, ttl=100)
    app = make(store)
    app.get("/incr")
    sid = sid_of(app)
    fake_timer.advance(60)
    response = app.get("/read")
    assert response.headers.getall("Set-Cookie") == []
    fake_timer.advance(60)
    assert sid in store  # touched with the store's own ttl


def test_not_rolling_means_no_touch_and_no_cookie(store: Any, fake_timer: Any) -> None:
    app = make(store, max_age=100, rolling=False)
    app.get("/incr")
    sid = sid_of(app)
    fake_timer.advance(60)
    response = app.get("/read")
    assert response.headers.getall("Set-Cookie") == []
    fake_timer.advance(40)
    assert sid not in store


def test_rolling_does_not_resurrect_a_destroyed_session(store: Any) -> None:
    app = make(store, max_age=100)
    app.get("/incr")
    sid = sid_of(app)
    store.destroy(sid)
    response = app.get("/read")
    assert response.text == "0"
    assert response.headers.getall("Set-Cookie") == []
    assert len(store) == 0


# -- ids and signatures --------------------------------------------------------


def test_tampered_cookie_gives_a_new_empty_session(store: Any) -> None:
    app = make(store)
    app.get("/incr")
    app.get("/incr")
    value = app.cookies["session"]
    sid, _, tag = value.rpartition(".")
    flipped = tag[:10] + ("A" if tag[10] != "A" else "B") + tag[11:]
    control = make(store)
    control.set_cookie("session", value)  # the genuine cookie, sent the same way, works
    assert control.get("/read").text == "2"
    for forged in (f"{sid}.{flipped}", sid, f"{sid}.", f"{new_session_id()}.{tag}"):
        attacker = make(store)
        attacker.set_cookie("session", forged)
        response = attacker.get("/incr")
        assert response.status_int == 200
        assert response.text == "1"
        assert sid_of(attacker) != sid
    assert store.get(sid) == {"n": 2}


def test_unknown_validly_signed_id_is_not_adopted(store: Any) -> None:
    chosen = new_session_id()
    app = make(store)
    app.set_cookie("session", CookieSigner(SECRET, salt=SessionMiddleware.salt).sign(chosen))
    assert app.get("/incr").text == "1"
    assert sid_of(app) != chosen
    assert chosen not in store


@pytest.mark.parametrize("garbage", ["", ".", "a.b.c", "x" * 3000, "%ff", '"quoted"'])
def test_garbage_cookies(store: Any, garbage: str) -> None:
    middleware = SessionMiddleware(demo, store, SECRET)
    app = webtest.TestApp(middleware)
    response = app.get("/incr", headers={"Cookie": f"other=1; session={garbage}; x=y"})
    assert response.text == "1"


def test_stale_cookie_is_removed_when_an_empty_session_is_written(store: Any) -> None:
    app = make(store)
    app.set_cookie("session", "stale.value")
    response = app.get("/clear")  # nothing to clear, but the bad cookie should go
    assert response.headers.getall("Set-Cookie") == []  # clear() of an empty dict changes nothing
    response = app.get("/logout")
    assert "Max-Age=0" in attributes(cookie_header(response))


def test_cookie_among_others(store: Any) -> None:
    app = make(store)
    app.get("/incr")
    value = app.cookies["session"]
    other = webtest.TestApp(SessionMiddleware(demo, store, SECRET))
    response = other.get("/incr", headers={"Cookie": f"a=1; session={value}; b=2"})
    assert response.text == "2"


def test_secret_rotation(store: Any) -> None:
    old = make(store, secret="old")
    old.get("/incr")
    cookie = old.cookies["session"]

    rotated = make(store, secret=["new", "old"])
    rotated.set_cookie("session", cookie)
    assert rotated.get("/incr").text == "2"
    resigned = rotated.cookies["session"]
    assert resigned != cookie and resigned.rpartition(".")[0] == cookie.rpartition(".")[0]

    retired = make(store, secret="new")
    retired.set_cookie("session", cookie)
    assert retired.get("/read").text == "0"
    retired.set_cookie("session", resigned)
    assert retired.get("/read").text == "2"


# -- headers -------------------------------------------------------------------


def test_cookie_options(store: Any) -> None:
    app = make(
        store,
        cookie_name="sid",
        path="/app",
        domain="example.test",
        secure=True,
        httponly=False,
        samesite="strict",
        max_age=60,
    )
    parts = attributes(cookie_header(app.get("/incr")))
    assert parts[0].startswith("sid=")
    for expected in ("Path=/app", "Domain=example.test", "Secure", "SameSite=Strict", "Max-Age=60"):
        assert expected in parts
    assert "HttpOnly" not in parts


def test_samesite_none_requires_secure(store: Any) -> None:
    with pytest.raises(ValueError):
        SessionMiddleware(demo, store, SECRET, samesite="None")
    parts = attributes(cookie_header(make(store, samesite="None", secure=True).get("/incr")))
    assert "SameSite=None" in parts and "Secure" in parts
    parts = attributes(cookie_header(make(store, samesite=None).get("/incr")))
    assert not any(p.startswith("SameSite") for p in parts)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"cookie_name": "bad name"}, ValueError),
        ({"cookie_name": ""}, ValueError),
        ({"samesite": "sideways"}, ValueError),
        ({"max_age": 0}, ValueError),
        ({"max_age": -5}, ValueError),
        ({"max_age": "60"}, TypeError),
        ({"max_age": True}, TypeError),
        ({"path": "/a;b"}, ValueError),
        ({"domain": "a\r\nb"}, ValueError),
        ({"secret": ""}, ValueError),
        ({"secret": []}, ValueError),
        ({"secret": 123}, TypeError),
    ],
)
def test_bad_options(store: Any, options: dict[str, Any], error: type) -> None:
    options = dict(options)
    secret = options.pop("secret", SECRET)
    with pytest.raises(error):
        SessionMiddleware(demo, store, secret, **options)


@pytest.mark.parametrize(
    ("existing", "expected"), [("Accept-Encoding", ["Accept-Encoding", "Cookie"]), ("Cookie", ["Cookie"]), ("*", ["*"])]
)
def test_vary_is_merged(store: Any, existing: str, expected: list[str]) -> None:
    app = make(store)
    response = app.get("/vary", params=existing)
    assert response.headers.getall("Vary") == expected


def test_mutations_while_streaming_are_lost(store: Any) -> None:
    app = make(store)
    app.get("/incr")
    assert app.get("/stream").text == "ab"
    assert store.get(sid_of(app)) == {"n": 1}


def test_start_response_with_exc_info_saves_once(store_cls: type, fake_timer: Any) -> None:
    serializer = CountingJSON()
    store = store_cls(timer=fake_timer, serializer=serializer)
    app = make(store)
    response = app.get("/error", status=500)
    assert serializer.dumps_calls == 1
    assert response.headers.getall("Set-Cookie")  # the error response still carries the cookie
    assert store.get(sid_of(app)) == {"n": 1}


def test_default_store() -> None:
    middleware = SessionMiddleware(demo, None, SECRET)
    app = webtest.TestApp(middleware)
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    assert len(middleware.store) == 1


# -- the Session object --------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.__setitem__("b", 2),
        lambda s: s.__delitem__("a"),
        lambda s: s.update(b=2),
        lambda s: s.__ior__({"b": 2}),
        lambda s: s.pop("a"),
        lambda s: s.popitem(),
        lambda s: s.setdefault("b", 2),
        lambda s: s.clear(),
    ],
    ids=["setitem", "delitem", "update", "ior", "pop", "popitem", "setdefault", "clear"],
)
def test_session_tracks_top_level_changes(mutate: Any) -> None:
    session = Session({"a": 1}, sid=new_session_id(), new=False)
    assert not session.modified
    mutate(session)
    assert session.modified


@pytest.mark.parametrize(
    "read",
    [
        lambda s: s.get("a"),
        lambda s: s["a"],
        lambda s: "a" in s,
        lambda s: list(s),
        lambda s: len(s),
        lambda s: s.items(),
        lambda s: s.pop("zz", None),
        lambda s: s.setdefault("a", 5),
    ],
    ids=["get", "getitem", "contains", "iter", "len", "items", "pop-missing", "setdefault-present"],
)
def test_session_reads_do_not_count_as_changes(read: Any) -> None:
    session = Session({"a": 1}, sid=new_session_id(), new=False)
    read(session)
    assert not session.modified
    assert session.accessed


def test_session_is_a_dict() -> None:
    session = Session({"a": 1}, sid=new_session_id())
    assert isinstance(session, dict)
    assert session == {"a": 1}
    assert json.loads(json.dumps(session)) == {"a": 1}


# -- end to end: a real threaded server, concurrent clients ------------------------


class _SilentHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def owner_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    session = environ["memorystore.session"]
    me = environ.get("QUERY_STRING", "")
    session.setdefault("owner", me)
    session["n"] = session.get("n", 0) + 1
    body = f"{session['owner']} {session['n']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def test_threaded_server_keeps_concurrent_clients_apart(store_cls: type) -> None:
    from memorystore._demo import ThreadingWSGIServer

    store = store_cls()
    app = SessionMiddleware(owner_app, store, SECRET, max_age=600)
    server = make_server("127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=_SilentHandler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    clients, requests_each = 8, 15
    errors: list[str] = []
    barrier = threading.Barrier(clients)

    def client(name: str) -> None:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        try:
            barrier.wait(timeout=10)
            for i in range(1, requests_each + 1):
                with opener.open(f"{url}?{name}", timeout=10) as response:
                    owner, n = response.read().decode().split()
                if (owner, int(n)) != (name, i):
                    errors.append(f"{name} request {i} saw {owner} {n}")
                    return
        except (OSError, ValueError) as exc:  # pragma: no cover - reported below
            errors.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=client, args=(f"client{k}",)) for k in range(clients)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    sessions = store.all()
    assert len(sessions) == clients
    assert sorted(s["owner"] for s in sessions.values()) == sorted(f"client{k}" for k in range(clients))
    assert all(s["n"] == requests_each for s in sessions.values())
