"""memorystore.prometheus.StoreCollector with the real prometheus_client (scrapes parsed with its parser).

Mounted in a real Flask app and a real Django app (their test clients), over
stores of both cores; plus the error when prometheus_client is missing.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from memorystore._stats import StoreStats  # noqa: E402
from memorystore.prometheus import COUNTERS, GAUGES, StoreCollector  # noqa: E402

SECRET_SID = "sid-that-must-never-show-up-0123456789"
SECRET_CONTENT = "content-that-must-never-show-up"


def scrape(registry: Any) -> tuple[dict[tuple[str, str], float], dict[str, str], str]:
    """{(sample name, store label): value}, {family name: type}, the raw text of one scrape."""
    text = generate_latest(registry).decode()
    samples: dict[tuple[str, str], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("memorystore_"):
            continue  # the default registry's process and platform metrics
        types[family.name] = family.type
        for sample in family.samples:
            assert set(sample.labels) == {"store"}, sample  # the one label, never anything else
            samples[(sample.name, sample.labels["store"])] = sample.value
    return samples, types, text


def test_counters_and_gauges_per_store(make: Any, fake_timer: Any) -> None:
    bounded = make(max=3, ttl=10)
    unbounded = make(ttl=10)
    registry = CollectorRegistry()
    collector = StoreCollector({"main": bounded, "other": unbounded}, registry=registry)
    assert collector.registry is registry
    bounded.set(SECRET_SID, {"secret": SECRET_CONTENT})
    for n in range(4):
        bounded.set(f"s{n}", {})  # the first push-outs: s0 and the secret one, never read
    bounded.get("s3")
    bounded.get("gone")
    bounded.set("big", {"x": 1}, ttl=1)
    fake_timer.advance(1)
    bounded.get("big")  # expired: a miss, removed
    bounded.destroy("s2")
    unbounded.set("u", {})
    samples, types, text = scrape(registry)
    stats = bounded.stats()
    assert stats.evictions >= 2 and stats.expirations == 1 and stats.deletions == 1
    for field, name, _ in COUNTERS:
        if field == "recoveries" and not hasattr(stats, "recoveries"):
            assert name not in types  # only a shared store's stats() has recoveries
            continue
        assert types[name] == "counter"
        assert samples[(name + "_total", "main")] == getattr(stats, field), name
        assert samples[(name + "_total", "other")] == getattr(unbounded.stats(), field), name
    assert samples[("memorystore_sessions", "main")] == stats.length == len(bounded)
    assert samples[("memorystore_size", "main")] == stats.size
    assert samples[("memorystore_capacity", "main")] == 3
    if unbounded.stats().maxsize is None:  # a shared store is always bounded (capacity)
        assert ("memorystore_capacity", "other") not in samples  # unbounded: no capacity
    assert samples[("memorystore_sessions", "other")] == 1
    assert {types[name] for _, name, _ in GAUGES} == {"gauge"}
    assert SECRET_SID not in text and SECRET_CONTENT not in text


def test_each_scrape_reads_the_stores_anew(make: Any) -> None:
    store = make(max=10)
    registry = CollectorRegistry()
    StoreCollector({"s": store}, registry=registry)
    assert scrape(registry)[0][("memorystore_writes_total", "s")] == 0
    store.set("a", {})
    store.set("b", {})
    assert scrape(registry)[0][("memorystore_writes_total", "s")] == 2
    assert scrape(registry)[0][("memorystore_sessions", "s")] == 2
    store.reset_stats()
    assert scrape(registry)[0][("memorystore_writes_total", "s")] == 0


def test_default_registry_and_duplicates(make: Any) -> None:
    store = make()
    collector = StoreCollector({"default-registry-test": store})
    try:
        assert collector.registry is prometheus_client.REGISTRY
        assert ("memorystore_writes_total", "default-registry-test") in scrape(prometheus_client.REGISTRY)[0]
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            StoreCollector({"again": store})  # one collector per registry: give it every store
    finally:
        prometheus_client.REGISTRY.unregister(collector)


def test_a_shared_store_adds_recoveries(make: Any, store_cls: type) -> None:
    """A store whose stats() carries ``recoveries`` (as SharedMemoryStore's does) gets that counter too."""

    class WithRecoveries(store_cls):  # type: ignore[valid-type,misc]
        def stats(self) -> Any:
            base = super().stats()
            return type("SharedStats", (), {**base._asdict(), "recoveries": 7})()

    registry = CollectorRegistry()
    StoreCollector({"shared": WithRecoveries(max=5), "plain": make()}, registry=registry)
    samples, types, _ = scrape(registry)
    assert types["memorystore_recoveries"] == "counter"
    assert samples[("memorystore_recoveries_total", "shared")] == 7
    assert ("memorystore_recoveries_total", "plain") not in samples


def test_a_failing_store_is_left_out(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def stats(self) -> StoreStats:
            raise OSError("segment gone")

    registry = CollectorRegistry()
    StoreCollector({"ok": make(), "broken": Broken()}, registry=registry)
    with caplog.at_level(logging.WARNING, logger="memorystore"):
        samples, _, _ = scrape(registry)
    assert ("memorystore_writes_total", "ok") in samples
    assert not any(label == "broken" for _, label in samples)
    assert "'broken'" in caplog.text and "segment gone" in caplog.text


def test_async_facade_is_read_through_its_store(make: Any) -> None:
    from memorystore.aio import AsyncMemoryStore

    store = make()
    store.set("a", {})
    registry = CollectorRegistry()
    StoreCollector({"async": AsyncMemoryStore(store)}, registry=registry)
    assert scrape(registry)[0][("memorystore_writes_total", "async")] == 1


@pytest.mark.parametrize(
    ("stores", "error"),
    [
        ([("a", None)], "mapping"),
        ({"": None}, "labels"),
        ({1: None}, "labels"),
        ({"a": object()}, "no stats"),
    ],
)
def test_bad_stores(stores: Any, error: str) -> None:
    with pytest.raises(TypeError, match=error):
        StoreCollector(stores, registry=CollectorRegistry())


def test_missing_prometheus_client_is_a_clear_error() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client"] = None  # as if it were not installed
        import memorystore.prometheus as prom  # importing the module needs nothing
        from memorystore import MemoryStore
        try:
            prom.StoreCollector({"s": MemoryStore()})
        except ImportError as exc:
            print("ImportError:", exc)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ImportError: memorystore.prometheus needs prometheus_client" in run.stdout
    assert "pip install 'memorystore[prometheus]'" in run.stdout


# -- mounted in web apps ------------------------------------------------------------------------------


def test_flask_app_exposes_the_metrics(store_cls: type, fake_timer: Any) -> None:
    flask = pytest.importorskip("flask")
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from memorystore.flask import MemoryStoreSessionInterface

    store = store_cls(max=100, timer=fake_timer)
    registry = CollectorRegistry()
    StoreCollector({"flask": store}, registry=registry)
    app = flask.Flask(__name__)
    app.secret_key = "test-secret"
    app.session_interface = MemoryStoreSessionInterface(store)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": prometheus_client.make_wsgi_app(registry)})

    @app.get("/incr")
    def incr() -> str:
        flask.session["n"] = flask.session.get("n", 0) + 1
        flask.session["secret"] = SECRET_CONTENT
        return str(flask.session["n"])

    visitors = [app.test_client() for _ in range(3)]
    for client in visitors:
        for _ in range(2):
            assert client.get("/incr").status_code == 200
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    samples = {(s.name, s.labels["store"]): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    stats = store.stats()
    assert samples[("memorystore_sessions", "flask")] == 3 == stats.length
    assert samples[("memorystore_hits_total", "flask")] == stats.hits >= 3  # each visitor's second request
    assert samples[("memorystore_writes_total", "flask")] == stats.writes >= 3
    assert samples[("memorystore_capacity", "flask")] == 100
    assert SECRET_CONTENT not in text
    for sid in store.ids():
        assert sid not in text


def test_django_app_exposes_the_metrics(store_cls: type, fake_timer: Any) -> None:
    pytest.importorskip("test_django", reason="needs the Django settings of tests/test_django.py")
    import django_metrics_app
    from django.test import Client, override_settings

    import memorystore.django as msdjango

    store = store_cls(max=50, timer=fake_timer, serializer=None)
    registry = CollectorRegistry()
    StoreCollector({"django": store}, registry=registry)
    django_metrics_app.REGISTRY = registry
    previous = msdjango.set_session_store(store)
    try:
        with override_settings(SESSION_ENGINE="memorystore.django", ROOT_URLCONF="django_metrics_app"):
            visitors = [Client() for _ in range(4)]
            for client in visitors:
                assert client.get("/incr").content == b"1"
                assert client.get("/incr").content == b"2"
            response = Client().get("/metrics")
    finally:
        msdjango.set_session_store(previous)
        django_metrics_app.REGISTRY = None
    assert response.status_code == 200
    text = response.content.decode()
    samples = {(s.name, s.labels["store"]): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    stats = store.stats()
    assert samples[("memorystore_sessions", "django")] == 4 == stats.length
    assert samples[("memorystore_hits_total", "django")] == stats.hits >= 4
    assert samples[("memorystore_capacity", "django")] == 50
    for sid in store.ids():
        assert sid not in text
