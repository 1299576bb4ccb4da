"""The Beaker backend, through Beaker's SessionMiddleware and pyramid_beaker (WebTest)."""

from __future__ import annotations

import importlib.metadata
import pickle

import pytest

beaker = pytest.importorskip("beaker")
webtest = pytest.importorskip("webtest")

from beaker.cache import CacheManager, clsmap  # noqa: E402
from beaker.middleware import SessionMiddleware  # noqa: E402

from memorystore.beaker import DEFAULT_CHECK_PERIOD, MemoryStoreNamespaceManager, resolve_store  # noqa: E402

SECRET = "beaker-test-secret-" + "x" * 32


@pytest.fixture(autouse=True)
def _fresh_registry():
    MemoryStoreNamespaceManager.close_stores()
    yield
    MemoryStoreNamespaceManager.close_stores()


@pytest.fixture
def store(store_cls, fake_timer):
    return store_cls(serializer=pickle, timer=fake_timer)


def counter_app(environ, start_response):
    """/incr counts in the session; /peek reads it without saving; /logout deletes it."""
    session = environ["beaker.session"]
    path = environ["PATH_INFO"]
    if path == "/incr":
        session["n"] = session.get("n", 0) + 1
        session.save()
    elif path == "/logout":
        session.invalidate()
        session.save()
    body = str(session.get("n", 0)).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def make_app(**options):
    config = {"session.type": "memorystore", "session.secret": SECRET, **options}
    return webtest.TestApp(SessionMiddleware(counter_app, config))


def session_ids(store):
    return [sid for sid in store.ids() if sid.endswith(":session")]


def test_entry_point_registers_the_backend():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="beaker.backends")}
    assert names.get("memorystore") == "memorystore.beaker:MemoryStoreNamespaceManager"
    assert clsmap["memorystore"] is MemoryStoreNamespaceManager


def test_counter_persists_in_the_store(store):
    app = make_app(**{"session.memorystore_store": store})
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    assert app.get("/peek").text == "2"
    [sid] = session_ids(store)
    stored = store.get(sid)
    assert isinstance(stored, str)  # Beaker stores base64 text of its pickled dict
    # a second browser has its own session
    other = make_app(**{"session.memorystore_store": store})
    assert other.get("/incr").text == "1"
    assert len(session_ids(store)) == 2


def test_untouched_session_is_never_stored(store):
    app = make_app(**{"session.memorystore_store": store})
    response = app.get("/peek")
    assert response.text == "0"
    assert "Set-Cookie" not in response.headers
    assert store.length() == 0


def test_beaker_timeout_is_the_store_ttl(store, fake_timer):
    app = make_app(**{"session.memorystore_store": store, "session.timeout": 60})
    app.get("/incr")
    [sid] = session_ids(store)
    # Beaker hands its backend session.timeout + 120 seconds
    fake_timer.advance(60 + 120 - 1)
    assert sid in store
    fake_timer.advance(1)
    assert sid not in store
    assert store.prune() == 1  # reclaimed without anyone reading it
    assert store.length() == 0


def test_each_access_slides_the_ttl(store, fake_timer):
    app = make_app(**{"session.memorystore_store": store, "session.timeout": 60})
    app.get("/incr")
    [sid] = session_ids(store)
    for _ in range(5):
        fake_timer.advance(150)
        assert app.get("/peek").text == "1"  # Beaker re-saves _accessed_time
    assert sid in store


def test_forged_signature_is_not_loaded(store):
    app = make_app(**{"session.memorystore_store": store})
    app.get("/incr")
    app.get("/incr")
    [sid] = session_ids(store)
    intruder = make_app(**{"session.memorystore_store": store})
    intruder.set_cookie("beaker.session.id", "0" * 40 + sid.split(":")[0])
    assert intruder.get("/peek").text == "0"


def test_string_settings_build_one_shared_store():
    settings = {
        "session.memorystore_max": "2",
        "session.memorystore_ttl": "30",
        "session.memorystore_check_period": "0",
    }
    browsers = [make_app(**settings) for _ in range(3)]
    for browser in browsers:
        browser.get("/incr")
    [store] = MemoryStoreNamespaceManager.stores.values()
    assert store.length() == 2  # max=2: the first browser's session was evicted
    assert browsers[0].get("/peek").text == "0"
    assert browsers[2].get("/peek").text == "1"


def test_registry_keys_on_the_options():
    a = MemoryStoreNamespaceManager("a", memorystore_max="10", memorystore_check_period="0")
    b = MemoryStoreNamespaceManager("b", memorystore_max=10, memorystore_check_period=0)
    c = MemoryStoreNamespaceManager("c", memorystore_max=11, memorystore_check_period=0)
    assert a.store is b.store
    assert c.store is not a.store
    assert (None, None, None, DEFAULT_CHECK_PERIOD) not in MemoryStoreNamespaceManager.stores
    MemoryStoreNamespaceManager("d")
    assert (None, None, None, DEFAULT_CHECK_PERIOD) in MemoryStoreNamespaceManager.stores


def test_bad_option_is_rejected():
    with pytest.raises(ValueError):
        MemoryStoreNamespaceManager("a", memorystore_max="lots")
    with pytest.raises(ValueError):
        MemoryStoreNamespaceManager("a", url="memcached://localhost")


def test_reads_are_copies():
    ns = MemoryStoreNamespaceManager("ns", memorystore_check_period=0)
    ns["k"] = {"items": [1]}
    got = ns["k"]
    got["items"].append(2)
    assert ns["k"] == {"items": [1]}


def test_namespace_manager_mapping_contract(store, fake_timer):
    ns = MemoryStoreNamespaceManager("ns1", memorystore_store=store, timeout=10)
    other = MemoryStoreNamespaceManager("ns2", memorystore_store=store)
    with pytest.raises(KeyError):
        ns["missing"]
    assert "missing" not in ns and not ns.has_key("missing")
    ns["a"] = 1
    ns.set_value("b", None, expiretime=5)
    other["a"] = 2
    assert ns["a"] == 1 and ns["b"] is None and other["a"] == 2
    assert sorted(ns.keys()) == ["a", "b"]
    fake_timer.advance(5)
    with pytest.raises(KeyError):
        ns["b"]  # the per-value expiretime is the ttl
    fake_timer.advance(5)
    assert "a" not in ns  # the manager's timeout is the default ttl
    assert other["a"] == 2
    ns["a"] = 1
    del ns["a"]
    with pytest.raises(KeyError):
        del ns["a"]
    ns["x"] = ns["y"] = 1
    ns.remove()
    assert ns.keys() == [] and other["a"] == 2
    assert ns.acquire_write_lock() and ns.get_creation_lock("x").acquire()


def test_long_keys_are_hashed(store):
    ns = MemoryStoreNamespaceManager("ns", memorystore_store=store)
    key = "k" * 5000
    ns[key] = "v"
    assert ns[key] == "v"
    assert all(len(sid) <= 1024 for sid in store.ids())


def test_kwargs_beaker_passes_to_the_manager():
    seen = []

    class Spy(MemoryStoreNamespaceManager):
        def __init__(self, namespace, **kwargs):
            seen.append(kwargs)
            super().__init__(namespace, **kwargs)

    config = {
        "session.type": "memorystore",
        "session.namespace_class": Spy,
        "session.timeout": 300,
        "session.memorystore_max": "5",
        "session.memorystore_check_period": "0",
    }
    webtest.TestApp(SessionMiddleware(counter_app, config)).get("/incr")
    assert seen
    assert seen[0]["timeout"] == 300 + 120
    assert seen[0]["memorystore_max"] == "5"
    assert "data_dir" in seen[0]


def test_beaker_cache_type_memorystore(store, fake_timer):
    calls = []

    def create():
        calls.append(1)
        return {"value": len(calls)}

    cache = CacheManager(type="memorystore", memorystore_store=store).get_cache("things", expire=10)
    assert cache.get("k", createfunc=create) == {"value": 1}
    assert cache.get("k", createfunc=create) == {"value": 1}
    fake_timer.advance(10)
    assert cache.get("k", createfunc=create) == {"value": 2}
    assert len(calls) == 2


def test_pyramid_beaker_settings():
    pyramid_config = pytest.importorskip("pyramid.config")
    pytest.importorskip("pyramid_beaker")
    from pyramid.response import Response

    def incr(request):
        request.session["n"] = request.session.get("n", 0) + 1
        return Response(str(request.session["n"]))

    def flash(request):
        request.session.flash("saved")
        return Response("ok")

    def messages(request):
        return Response(",".join(request.session.pop_flash()))

    def peek(request):
        return Response(str(request.session.get("n", 0)))

    settings = {
        "session.type": "memorystore",
        "session.secret": SECRET,
        "session.timeout": "600",
        "session.memorystore_max": "100",
        "session.memorystore_check_period": "0",
    }
    with pyramid_config.Configurator(settings=settings) as config:
        config.include("pyramid_beaker")
        for name, view in [("incr", incr), ("flash", flash), ("messages", messages), ("peek", peek)]:
            config.add_route(name, "/" + name)
            config.add_view(view, route_name=name)
        app = webtest.TestApp(config.make_wsgi_app())

    assert app.get("/peek").text == "0"
    assert not MemoryStoreNamespaceManager.stores or all(
        s.length() == 0 for s in MemoryStoreNamespaceManager.stores.values()
    )
    assert app.get("/incr").text == "1"
    assert app.get("/incr").text == "2"
    app.get("/flash")
    assert app.get("/messages").text == "saved"
    assert app.get("/messages").text == ""
    [store] = MemoryStoreNamespaceManager.stores.values()
    assert store.length() == 1
    [(_, _, _, check_period)] = MemoryStoreNamespaceManager.stores.keys()
    assert check_period == 0


def test_store_named_by_a_settings_string(monkeypatch, store):
    import types

    module = types.ModuleType("memorystore_test_stores")
    module.sessions = types.SimpleNamespace(store=store)
    monkeypatch.setitem(__import__("sys").modules, "memorystore_test_stores", module)
    assert resolve_store("memorystore_test_stores:sessions.store") is store
    assert resolve_store("memorystore_test_stores.sessions") is module.sessions
    with pytest.raises(ValueError):
        resolve_store("nodots")
    app = make_app(**{"session.memorystore_store": "memorystore_test_stores:sessions.store"})
    app.get("/incr")
    assert len(session_ids(store)) == 1
