"""memorystore.flask.MemoryStoreSessionInterface with the real Flask test client."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
from typing import Any

import pytest
from helpers import CountingJSON, assert_flask_types_survive

from memorystore._signing import new_session_id

flask = pytest.importorskip("flask")
itsdangerous = pytest.importorskip("itsdangerous")
msflask = pytest.importorskip("memorystore.flask")

Flask = flask.Flask
session = flask.session
MemoryStoreSession = msflask.MemoryStoreSession
MemoryStoreSessionInterface = msflask.MemoryStoreSessionInterface


def make_app(store: Any, *, key_prefix: str = "", **config: Any) -> Flask:
    app = Flask(__name__)
    app.secret_key = "test-secret"
    app.config.update(config)
    app.session_interface = MemoryStoreSessionInterface(store, key_prefix=key_prefix)

    @app.get("/incr")
    def incr() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    @app.get("/read")
    def read() -> str:
        return str(session.get("n", 0))

    @app.get("/noop")
    def noop() -> str:
        return "ok"

    @app.get("/clear")
    def clear() -> str:
        session.clear()
        return "cleared"

    @app.get("/permanent")
    def permanent() -> str:
        session.permanent = True
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    @app.get("/login")
    def login() -> str:
        app.session_interface.regenerate(session)
        session["user"] = "alice"
        return "logged in"

    return app


def sid_of(client: Any, name: str = "session") -> str:
    cookie = client.get_cookie(name)
    assert cookie is not None, "no session cookie"
    sid, dot, tag = cookie.value.rpartition(".")
    assert dot and sid and tag
    return sid


def stored(store: Any, sid: str) -> Any:
    """The session data a store holds under ``sid``: the interface keeps Flask's tagged-JSON text."""
    text = store.get(sid)
    assert isinstance(text, str), text
    return flask.sessions.session_json_serializer.loads(text)


def set_cookie_headers(response: Any) -> list[str]:
    return response.headers.getlist("Set-Cookie")


@pytest.fixture
def store(store_cls: type, fake_timer: Any) -> Any:
    return store_cls(timer=fake_timer)


def test_counter_is_kept_on_the_server(store: Any) -> None:
    client = make_app(store).test_client()
    assert client.get("/incr").text == "1"
    assert client.get("/incr").text == "2"
    assert client.get("/incr").text == "3"
    sid = sid_of(client)
    assert store.ids() == [sid]
    assert stored(store, sid) == {"n": 3}
    # The cookie holds the signed id only (256 random bits), never the data.
    assert len(sid) == 43
    assert client.get_cookie("session").value.count(".") == 1


def test_untouched_session_stores_nothing_and_sets_no_cookie(store: Any) -> None:
    client = make_app(store).test_client()
    for _ in range(5):
        response = client.get("/noop")
        assert set_cookie_headers(response) == []
    assert client.get("/read").text == "0"
    assert len(store) == 0
    assert client.get_cookie("session") is None


def test_reading_the_session_adds_vary_cookie(store: Any) -> None:
    client = make_app(store).test_client()
    response = client.get("/read")
    assert "Cookie" in response.headers.get("Vary", "")
    assert set_cookie_headers(response) == []


def test_permanent_flag_alone_is_not_stored(store: Any) -> None:
    app = make_app(store)

    @app.before_request
    def make_permanent() -> None:
        session.permanent = True

    client = app.test_client()
    for _ in range(3):
        assert set_cookie_headers(client.get("/noop")) == []
    assert len(store) == 0
    assert client.get("/incr").text == "1"
    assert stored(store, sid_of(client)) == {"_permanent": True, "n": 1}


def test_cookie_is_signed_and_a_tampered_cookie_gives_a_new_session(store: Any) -> None:
    app = make_app(store)
    client = app.test_client()
    client.get("/incr")
    client.get("/incr")
    value = client.get_cookie("session").value
    sid, _, tag = value.rpartition(".")
    signer = itsdangerous.Signer(
        "test-secret", salt=MemoryStoreSessionInterface.salt, key_derivation="hmac", digest_method=hashlib.sha256
    )
    assert signer.unsign(value).decode() == sid

    control = app.test_client()
    control.set_cookie("session", value)  # the genuine cookie, sent the same way, works
    assert control.get("/read").text == "2"
    attacker = app.test_client()
    flipped = tag[:10] + ("A" if tag[10] != "A" else "B") + tag[11:]
    for forged in (f"{sid}.{flipped}", sid, f"{sid}.", f"{sid[:-1]}x.{tag}"):
        attacker.set_cookie("session", forged)
        response = attacker.get("/incr")
        assert response.status_code == 200
        assert response.text == "1"
        assert sid_of(attacker) != sid
    assert stored(store, sid) == {"n": 2}  # the victim's session is untouched
    assert client.get("/incr").text == "3"


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "..", "x" * 4000, "é.ü", "\x7f", "a.b.c", "%00", "  spaced  "],
    ids=["empty", "dot", "dots", "huge", "non-ascii", "del", "many-dots", "pct", "spaces"],
)
def test_garbage_cookie_never_breaks_a_request(store: Any, garbage: str) -> None:
    client = make_app(store).test_client()
    client.set_cookie("session", garbage)
    response = client.get("/incr")
    assert response.status_code == 200
    assert response.text == "1"


def test_unknown_but_validly_signed_id_is_not_adopted(store: Any) -> None:
    app = make_app(store)
    signer = app.session_interface.get_signer(app)
    chosen = new_session_id()  # an id the server never issued (or no longer holds)
    client = app.test_client()
    client.set_cookie("session", signer.sign(chosen).decode())
    assert client.get("/incr").text == "1"
    assert sid_of(client) != chosen
    assert chosen not in store
    assert len(store) == 1


def test_clear_removes_the_entry_and_the_cookie(store: Any) -> None:
    client = make_app(store).test_client()
    client.get("/incr")
    sid = sid_of(client)
    assert sid in store
    response = client.get("/clear")
    assert sid not in store
    assert len(store) == 0
    [header] = set_cookie_headers(response)
    assert header.startswith("session=;")
    assert "Max-Age=0" in header or "1970" in header
    assert "Cookie" in response.headers.get("Vary", "")
    assert client.get_cookie("session") is None
    assert client.get("/read").text == "0"


def test_permanent_session_lifetime_is_the_server_ttl(store: Any, fake_timer: Any) -> None:
    client = make_app(store, PERMANENT_SESSION_LIFETIME=100, SESSION_REFRESH_EACH_REQUEST=False).test_client()
    response = client.get("/permanent")
    assert "Expires=" in set_cookie_headers(response)[0]
    sid = sid_of(client)
    fake_timer.advance(99)
    assert sid in store
    fake_timer.advance(1)
    assert sid not in store
    assert client.get("/read").text == "0"


def test_non_permanent_sessions_get_the_lifetime_on_the_server_too(store: Any, fake_timer: Any) -> None:
    client = make_app(store, PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=5)).test_client()
    response = client.get("/incr")
    assert "Expires=" not in set_cookie_headers(response)[0]  # a browser-session cookie
    sid = sid_of(client)
    fake_timer.advance(299)
    assert sid in store
    fake_timer.advance(1)
    assert sid not in store


@pytest.mark.parametrize("permanent", [False, True])
def test_refresh_each_request_touches_without_rewriting(store_cls: type, fake_timer: Any, permanent: bool) -> None:
    serializer = CountingJSON()
    store = store_cls(timer=fake_timer, serializer=serializer)
    client = make_app(store, PERMANENT_SESSION_LIFETIME=100).test_client()
    client.get("/permanent" if permanent else "/incr")
    sid = sid_of(client)
    assert serializer.dumps_calls == 1
    for _ in range(3):
        fake_timer.advance(60)
        response = client.get("/read")
        assert response.text == "1"
        # Flask re-sends the cookie of a permanent session on each request.
        assert bool(set_cookie_headers(response)) is permanent
    assert serializer.dumps_calls == 1  # never rewritten...
    assert sid in store  # ...yet alive 180 s after the write: each read slid the ttl
    fake_timer.advance(100)
    assert sid not in store


def test_without_refresh_each_request_an_unmodified_session_is_not_extended(store: Any, fake_timer: Any) -> None:
    client = make_app(store, PERMANENT_SESSION_LIFETIME=100, SESSION_REFRESH_EACH_REQUEST=False).test_client()
    client.get("/permanent")
    sid = sid_of(client)
    fake_timer.advance(60)
    response = client.get("/read")
    assert response.text == "1"
    assert set_cookie_headers(response) == []
    fake_timer.advance(40)
    assert sid not in store


def test_touch_does_not_resurrect_a_session_destroyed_meanwhile(store: Any) -> None:
    client = make_app(store).test_client()
    client.get("/incr")
    sid = sid_of(client)
    store.destroy(sid)  # e.g. logged out from another device
    assert client.get("/read").text == "0"
    assert sid not in store
    assert len(store) == 0


def test_cookie_settings_are_honoured(store: Any) -> None:
    app = make_app(
        store,
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_DOMAIN="example.test",
        SESSION_COOKIE_PATH="/app",
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PARTITIONED=True,
    )
    client = app.test_client()
    response = client.get("/incr", base_url="https://example.test/")
    [header] = set_cookie_headers(response)
    attributes = [part.strip() for part in header.split(";")]
    assert attributes[0].startswith("sid=")
    assert "Domain=example.test" in attributes
    assert "Path=/app" in attributes
    assert "Secure" in attributes
    assert "SameSite=Strict" in attributes
    assert "Partitioned" in attributes
    assert "HttpOnly" not in attributes
    assert "Cookie" in response.headers["Vary"]

    # Deleting the cookie uses the same attributes, or browsers would keep it.
    sid = attributes[0].partition("=")[2].rpartition(".")[0]
    assert sid in store
    client.set_cookie("sid", attributes[0].partition("=")[2], domain="example.test", path="/")
    response = client.get("/clear", base_url="https://example.test/")
    [header] = set_cookie_headers(response)
    deleted = [part.strip() for part in header.split(";")]
    assert deleted[0] == "sid="
    for expected in ("Domain=example.test", "Path=/app", "Secure", "SameSite=Strict", "Partitioned"):
        assert expected in deleted
    assert sid not in store


def test_default_cookie_flags(store: Any) -> None:
    client = make_app(store, SESSION_COOKIE_SAMESITE="Lax").test_client()
    [header] = set_cookie_headers(client.get("/incr"))
    attributes = [part.strip() for part in header.split(";")]
    assert "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes
    assert "Path=/" in attributes
    assert "Secure" not in attributes


def test_secret_key_rotation_with_fallbacks(store: Any) -> None:
    app = make_app(store)
    app.secret_key = "old-secret"
    client = app.test_client()
    client.get("/incr")
    old_cookie = client.get_cookie("session").value

    app.secret_key = "new-secret"
    app.config["SECRET_KEY_FALLBACKS"] = ["old-secret"]
    assert client.get("/incr").text == "2"  # still recognised
    new_cookie = client.get_cookie("session").value
    assert new_cookie != old_cookie  # re-signed with the current key
    assert new_cookie.rpartition(".")[0] == old_cookie.rpartition(".")[0]

    app.config["SECRET_KEY_FALLBACKS"] = []
    assert client.get("/incr").text == "3"  # the new signature verifies alone
    client.set_cookie("session", old_cookie)
    assert client.get("/incr").text == "1"  # the retired key no longer does


def test_session_transaction(store: Any) -> None:
    client = make_app(store).test_client()
    with client.session_transaction() as sess:
        assert isinstance(sess, MemoryStoreSession)
        sess["n"] = 41
    assert client.get("/incr").text == "42"
    with client.session_transaction() as sess:
        assert sess["n"] == 42
        assert not sess.new
    assert len(store) == 1


def test_regenerate_gives_a_new_id_keeps_data_and_drops_the_old_id(store: Any) -> None:
    app = make_app(store)
    client = app.test_client()
    client.get("/incr")
    client.get("/incr")
    old_sid = sid_of(client)
    old_cookie = client.get_cookie("session").value

    client.get("/login")
    new_sid = sid_of(client)
    assert new_sid != old_sid
    assert old_sid not in store
    assert stored(store, new_sid) == {"n": 2, "user": "alice"}
    assert client.get("/incr").text == "3"

    # The pre-login (possibly planted) cookie is worthless now.
    fixated = app.test_client()
    fixated.set_cookie("session", old_cookie)
    assert fixated.get("/read").text == "0"
    assert old_sid not in store


def test_regenerate_of_a_new_session(store: Any) -> None:
    client = make_app(store).test_client()
    client.get("/login")
    assert stored(store, sid_of(client)) == {"user": "alice"}
    assert len(store) == 1


def test_regenerate_rejects_a_foreign_session(store: Any) -> None:
    interface = MemoryStoreSessionInterface(store)
    with pytest.raises(TypeError):
        interface.regenerate({"not": "a session"})  # type: ignore[arg-type]


def test_key_prefix(store: Any) -> None:
    client = make_app(store, key_prefix="app1:").test_client()
    client.get("/incr")
    sid = sid_of(client)
    assert store.ids() == ["app1:" + sid]
    assert client.get("/incr").text == "2"
    client.get("/clear")
    assert len(store) == 0


def test_two_apps_share_a_store_through_prefixes(store: Any) -> None:
    one = make_app(store, key_prefix="one:").test_client()
    two = make_app(store, key_prefix="two:").test_client()
    one.get("/incr")
    # The other app's (validly signed: same secret) id finds nothing under its prefix.
    two.set_cookie("session", one.get_cookie("session").value)
    assert two.get("/read").text == "0"


def test_bad_key_prefix() -> None:
    with pytest.raises(TypeError):
        MemoryStoreSessionInterface(key_prefix=b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MemoryStoreSessionInterface(key_prefix="x" * 1000)


def test_no_secret_key_gives_a_null_session(store: Any) -> None:
    app = make_app(store)
    app.secret_key = None
    client = app.test_client()
    assert client.get("/read").text == "0"
    assert client.get("/incr").status_code == 500  # Flask's NullSession refuses writes
    assert len(store) == 0


@pytest.mark.parametrize(
    "make_store",
    [
        pytest.param(lambda cls, timer: None, id="default-store"),
        pytest.param(lambda cls, timer: cls(timer=timer), id="json-store"),
        pytest.param(lambda cls, timer: cls(timer=timer, serializer=pickle), id="pickle-store"),
        pytest.param(lambda cls, timer: cls(timer=timer, serializer=None), id="no-serializer-store"),
        pytest.param(lambda cls, timer: cls(timer=timer, max=100_000, length=lambda v, sid: len(v)), id="byte-bound"),
    ],
)
def test_every_store_keeps_flask_session_types(store_cls: type, fake_timer: Any, make_store: Any) -> None:
    interface = MemoryStoreSessionInterface(make_store(store_cls, fake_timer))
    assert_flask_types_survive(interface)
    assert len(interface.store) == 1  # the refused write changed nothing


def test_readme_form_keeps_flask_session_types() -> None:
    """The README's snippet: a MemoryStore with its default (json) serializer passed in."""
    from memorystore import MemoryStore

    with MemoryStore(max=100_000, check_period=60) as store:
        assert_flask_types_survive(MemoryStoreSessionInterface(store))


def test_a_damaged_stored_session_gives_a_fresh_one(store: Any) -> None:
    client = make_app(store).test_client()
    assert client.get("/incr").text == "1"
    sid = sid_of(client)
    for damaged in ("{not json", '["a list"]', 42):
        store.set(sid, damaged)
        assert client.get("/read").text == "0"  # not adopted; never a 500
        assert client.get("/incr").text == "1"
        assert sid_of(client) != sid  # a new id as well
        sid = sid_of(client)


def test_mutating_a_loaded_session_does_not_change_the_store(store: Any) -> None:
    app = make_app(store)

    @app.get("/nested")
    def nested() -> str:
        session.setdefault("items", [])
        session["items"].append("x")  # nested change: not tracked, not saved
        return str(len(session["items"]))

    client = app.test_client()
    assert client.get("/nested").text == "1"  # "items" was new: the session is saved
    assert client.get("/nested").text == "2"  # a change to the loaded copy only...
    assert client.get("/nested").text == "2"  # ...which the store never saw
    assert stored(store, sid_of(client)) == {"items": ["x"]}


class DictStore:
    """The smallest store-shaped object: the interface needs only get/set/touch/destroy."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.calls: list[str] = []

    def get(self, sid: str) -> Any:
        self.calls.append("get")
        value = self.data.get(sid)
        return None if value is None else json.loads(value)

    def set(self, sid: str, session: Any, ttl: Any = None) -> None:
        self.calls.append("set")
        self.data[sid] = json.dumps(session)

    def touch(self, sid: str, session: Any = None, ttl: Any = None) -> bool:
        self.calls.append("touch")
        return sid in self.data

    def destroy(self, sid: str) -> None:
        self.calls.append("destroy")
        self.data.pop(sid, None)


def test_any_store_shaped_object_works() -> None:
    store = DictStore()
    client = make_app(store).test_client()
    assert client.get("/incr").text == "1"
    assert client.get("/read").text == "1"
    assert client.get("/clear").text == "cleared"
    assert store.data == {}
    assert store.calls == ["set", "get", "touch", "get", "destroy"]


def test_flask_session_cachelib_route_honours_the_lifetime(store_cls: type, fake_timer: Any) -> None:
    flask_session = pytest.importorskip("flask_session")
    cachelib_adapter = pytest.importorskip("memorystore.cachelib")

    backend = cachelib_adapter.MemoryStoreCache(store=store_cls(timer=fake_timer, serializer=None))
    app = Flask(__name__)
    app.secret_key = "k"
    app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=backend, PERMANENT_SESSION_LIFETIME=100)
    flask_session.Session(app)

    @app.get("/incr")
    def incr() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    client = app.test_client()
    assert client.get("/incr").text == "1"
    assert client.get("/incr").text == "2"
    [key] = backend.store.ids()
    assert key == "session:" + client.get_cookie("session").value
    fake_timer.advance(100)
    assert key not in backend.store
    assert client.get("/incr").text == "1"
