"""The native Pyramid session factory, on a real Pyramid app through WebTest."""

from __future__ import annotations

import pytest

pyramid_config = pytest.importorskip("pyramid.config")
webtest = pytest.importorskip("webtest")

from pyramid.csrf import get_csrf_token, new_csrf_token  # noqa: E402
from pyramid.interfaces import ISession  # noqa: E402
from pyramid.response import Response  # noqa: E402
from zope.interface.verify import verifyObject  # noqa: E402

from memorystore._signing import CookieSigner, new_session_id  # noqa: E402
from memorystore.pyramid import MemoryStoreSessionFactory  # noqa: E402

SECRET = "pyramid-test-secret-" + "y" * 44


class WallClock:
    """A settable epoch clock for created/accessed/renewed."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(store_cls, fake_timer):
    return store_cls(timer=fake_timer)


@pytest.fixture
def wall():
    return WallClock()


def build_app(store, wall, **factory_options):
    seen = {}

    def incr(request):
        request.session["n"] = request.session.get("n", 0) + 1
        return Response(str(request.session["n"]))

    def peek(request):
        seen["session"] = request.session
        return Response(str(request.session.get("n", 0)))

    def nothing(request):
        return Response("no session here")

    def flash(request):
        request.session.flash(request.params.get("msg", "hello"), queue=request.params.get("q", ""))
        request.session.flash("once", allow_duplicate=False)
        return Response("ok")

    def peek_flash(request):
        return Response(",".join(request.session.peek_flash()))

    def pop_flash(request):
        return Response(",".join(request.session.pop_flash()))

    def csrf(request):
        return Response(get_csrf_token(request))

    def new_csrf(request):
        return Response(new_csrf_token(request))

    def post(request):
        return Response("posted")

    def logout(request):
        request.session.invalidate()
        return Response("bye")

    def relogin(request):
        request.session.invalidate()
        request.session["user"] = "alice"
        return Response("hi")

    def empty(request):
        request.session.clear()
        return Response("emptied")

    def mutate(request):
        request.session.setdefault("items", [])
        return Response("ok")

    def append(request):
        request.session["items"].append(len(request.session["items"]))
        if request.params.get("changed"):
            request.session.changed()
        return Response(str(request.session["items"]))

    views = {
        "incr": incr,
        "peek": peek,
        "nothing": nothing,
        "flash": flash,
        "peek_flash": peek_flash,
        "pop_flash": pop_flash,
        "csrf": csrf,
        "new_csrf": new_csrf,
        "logout": logout,
        "relogin": relogin,
        "empty": empty,
        "mutate": mutate,
        "append": append,
    }
    factory = MemoryStoreSessionFactory(store, secret=SECRET, clock=wall, **factory_options)
    with pyramid_config.Configurator(session_factory=factory) as config:
        for name, view in views.items():
            config.add_route(name, "/" + name)
            config.add_view(view, route_name=name)
        config.add_route("post", "/post")
        config.add_view(post, route_name="post", request_method="POST", require_csrf=True)
        app = webtest.TestApp(config.make_wsgi_app())
    app.seen = seen
    return app


def cookie_value(app):
    return app.cookies.get("session")


def test_session_provides_isession(store, wall):
    app = build_app(store, wall)
    app.get("/incr")
    app.get("/peek")
    session = app.seen["session"]
    assert verifyObject(ISession, session)
    assert session.new is False
    assert session.created == wall.now
    assert isinstance(session, dict)


def test_counter_persists_and_cookie_is_signed(store, wall):
    app = build_app(store, wall)
    response = app.get("/incr")
    assert response.text == "1"
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert app.get("/incr").text == "2"
    assert app.get("/peek").text == "2"
    [sid] = store.ids()
    assert cookie_value(app).split(".")[0].strip('"') == sid
    assert store.get(sid)["data"] == {"n": 2}
    other = build_app(store, wall)
    assert other.get("/incr").text == "1"
    assert store.length() == 2


def test_untouched_or_read_only_session_stores_nothing(store, wall):
    app = build_app(store, wall)
    response = app.get("/nothing")
    assert "Set-Cookie" not in response.headers
    response = app.get("/peek")
    assert response.text == "0"
    assert "Set-Cookie" not in response.headers
    assert app.seen["session"].new is True
    assert store.length() == 0


def test_forged_or_unknown_cookie_is_not_adopted(store, wall):
    app = build_app(store, wall)
    app.get("/incr")
    [sid] = store.ids()
    # an unsigned id, an id with a bad signature, and a well-signed id the store does not hold
    unknown = CookieSigner(SECRET, salt="memorystore.pyramid.session").sign(new_session_id())
    for forged in [sid, sid + ".AAAA", unknown]:
        intruder = build_app(store, wall)
        intruder.set_cookie("session", forged)
        assert intruder.get("/peek").text == "0"
        assert intruder.get("/incr").text == "1"
        assert cookie_value(intruder) != forged
        assert store.get(sid)["data"] == {"n": 1}  # the victim's session is untouched
    # a valid signature on an id that expired and was removed is not adopted either
    stale = cookie_value(app)
    store.destroy(sid)
    app.set_cookie("session", stale)
    assert app.get("/incr").text == "1"
    assert sid not in store.ids() and store.length() == 4


def test_flash_queues(store, wall):
    app = build_app(store, wall)
    app.get("/flash", {"msg": "a"})
    app.get("/flash", {"msg": "b"})
    app.get("/flash", {"msg": "other", "q": "errors"})
    assert app.get("/peek_flash").text == "a,once,b"
    assert app.get("/peek_flash").text == "a,once,b"
    assert app.get("/pop_flash").text == "a,once,b"
    assert app.get("/pop_flash").text == ""
    [sid] = store.ids()
    assert store.get(sid)["data"] == {"_f_errors": ["other"]}


def test_csrf_through_pyramids_default_policy(store, wall):
    app = build_app(store, wall)
    token = app.get("/csrf").text
    assert len(token) == 40
    assert app.get("/csrf").text == token
    assert app.post("/post", {"csrf_token": token}).text == "posted"
    app.post("/post", {"csrf_token": "wrong"}, status=400)
    app.post("/post", headers={"X-CSRF-Token": token}, status=200)
    fresh = app.get("/new_csrf").text
    assert fresh != token
    app.post("/post", {"csrf_token": token}, status=400)


def test_invalidate_removes_the_entry_and_the_cookie(store, wall):
    app = build_app(store, wall)
    app.get("/incr")
    [sid] = store.ids()
    response = app.get("/logout")
    assert store.length() == 0
    assert "session=;" in response.headers["Set-Cookie"] or "Max-Age=0" in response.headers["Set-Cookie"]
    assert cookie_value(app) in (None, "")
    assert app.get("/peek").text == "0"


def test_invalidate_then_write_gets_a_new_id(store, wall):
    app = build_app(store, wall)
    app.get("/incr")
    [old] = store.ids()
    app.get("/relogin")
    [new] = store.ids()
    assert new != old
    assert store.get(new)["data"] == {"user": "alice"}


def test_emptied_session_is_removed(store, wall):
    app = build_app(store, wall)
    app.get("/incr")
    response = app.get("/empty")
    assert store.length() == 0
    assert "Set-Cookie" in response.headers
    assert cookie_value(app) in (None, "")


def test_nested_mutation_needs_changed(store, wall):
    app = build_app(store, wall)
    app.get("/mutate")
    assert app.get("/append").text == "[0]"
    assert app.get("/append").text == "[0]"  # not saved: the store handed back a copy
    assert app.get("/append", {"changed": "1"}).text == "[0]"
    assert app.get("/append").text == "[0, 1]"


def test_timeout_is_the_store_ttl(store, wall, fake_timer):
    app = build_app(store, wall, timeout=300, reissue_time=None)
    app.get("/incr")
    [sid] = store.ids()
    fake_timer.advance(299)
    assert app.get("/peek").text == "1"  # reissue_time=None: reading does not extend
    fake_timer.advance(1)
    assert sid not in store
    assert app.get("/peek").text == "0"
    assert app.get("/incr").text == "1"
    assert store.ids() != [sid]


def test_access_extends_after_reissue_time(store, wall, fake_timer):
    app = build_app(store, wall, timeout=300, reissue_time=60, max_age=3600)
    app.get("/incr")
    [sid] = store.ids()
    fake_timer.advance(200)
    wall.now += 30
    response = app.get("/peek")
    assert "Set-Cookie" not in response.headers  # within reissue_time: nothing to do
    fake_timer.advance(50)  # 250 s since the write
    wall.now += 40  # 70 s since the write: renew
    response = app.get("/peek")
    assert "Max-Age=3600" in response.headers["Set-Cookie"]
    fake_timer.advance(299)  # 549 s since the write, 299 since the touch
    assert sid in store
    assert app.get("/peek").text == "1"


def test_default_reissue_extends_every_access(store, wall, fake_timer):
    app = build_app(store, wall, timeout=100)
    app.get("/incr")
    for _ in range(5):
        fake_timer.advance(90)
        assert app.get("/peek").text == "1"
    fake_timer.advance(100)
    assert app.get("/peek").text == "0"


def test_cookie_options(store, wall):
    app = build_app(
        store,
        wall,
        cookie_name="sess",
        max_age=120,
        path="/",
        domain="example.com",
        secure=True,
        httponly=False,
        samesite="Strict",
    )
    header = app.get("/incr", extra_environ={"HTTP_HOST": "example.com"}).headers["Set-Cookie"]
    assert header.startswith("sess=")
    assert "Max-Age=120" in header and "Domain=example.com" in header
    assert "secure" in header.lower() and "HttpOnly" not in header and "SameSite=Strict" in header


def test_secret_rotation(store, wall):
    old = build_app(store, wall)
    old.get("/incr")
    signed = cookie_value(old)
    factory = MemoryStoreSessionFactory(store, secret=["new-secret-" + "z" * 40, SECRET])
    with pyramid_config.Configurator(session_factory=factory) as config:
        config.add_route("peek", "/peek")
        config.add_view(lambda request: Response(str(request.session.get("n", 0))), route_name="peek")
        rotated = webtest.TestApp(config.make_wsgi_app())
    rotated.set_cookie("session", signed)
    assert rotated.get("/peek").text == "1"


def test_bad_options_are_rejected(store):
    with pytest.raises(TypeError):
        MemoryStoreSessionFactory(store, secret=SECRET, timeout="1200")
    with pytest.raises(ValueError):
        MemoryStoreSessionFactory(store, secret=SECRET, max_age=-1)
    with pytest.raises(ValueError):
        MemoryStoreSessionFactory(store, secret="")
