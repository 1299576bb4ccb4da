"""The demo app in process (``memorystore._demo``), on both cores, with a fake clock: no sleeps.

The demo's wall clock and the store's timer are the same fake timer, so a test
moves both at once.  The real server, in a subprocess, is tested in
``test_cli.py``; the page in a real browser in ``test_demo_browser.py``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import webtest

from memorystore._demo import DemoApp, DisposeCounts, build_app

SECRET = b"s" * 32
TTL = 300.0


def demo_client(make: Any, fake_timer: Any, *, bound: int = 500, **options: Any) -> tuple[webtest.TestApp, DemoApp]:
    counts = DisposeCounts()
    store = make(ttl=TTL, max=bound, dispose=counts)
    demo = DemoApp(store, stats=lambda: counts.stats(store, bound), clock=fake_timer, session_ttl=TTL, **options)
    return webtest.TestApp(build_app(store, demo, SECRET, session_ttl=TTL)), demo


def state(client: webtest.TestApp) -> dict[str, Any]:
    response = client.get("/state.json")
    assert response.content_type == "application/json"
    return dict(response.json)


def test_the_countdown_runs_from_the_last_change_and_polling_never_extends_it(make: Any, fake_timer: Any) -> None:
    client, _ = demo_client(make, fake_timer)
    assert state(client)["session"] is None  # no session before the first page view: nothing stored
    client.get("/")
    assert state(client)["session"]["expires_in"] == TTL

    fake_timer.advance(100)
    for _ in range(5):  # the page polls; reads never write or touch the session
        assert state(client)["session"]["expires_in"] == TTL - 100
    fake_timer.advance(150)
    assert state(client)["session"]["expires_in"] == TTL - 250

    client.post("/add").follow()  # a change: the ttl runs again from now
    session = state(client)["session"]
    assert session["expires_in"] == TTL
    assert session["items"] == 1
    assert json.loads(session["data"])["items"] == ["apple"]

    fake_timer.advance(100)
    assert state(client)["session"]["expires_in"] == TTL - 100  # a poll, which must not extend it
    fake_timer.advance(TTL - 100)  # exactly the ttl after the change: expired in the store itself
    after = state(client)
    assert after["session"] is None
    assert after["store"]["expirations"] == 1
    assert after["store"]["live"] == 0


def test_a_burst_evicts_past_the_bound_and_the_prune_expires_the_rest(make: Any, fake_timer: Any) -> None:
    client, demo = demo_client(make, fake_timer, bound=50, burst_size=20, burst_ttl=(10.0, 20.0))
    client.get("/")
    tag = state(client)["session"]["tag"]
    for _ in range(3):
        client.post("/burst").follow()
    store = state(client)["store"]
    assert store["live"] == 50
    assert store["evictions"] == 1 + 3 * 20 - 50
    assert store["expirations"] == 0
    assert store["last_prune_ago"] is None
    assert state(client)["session"]["tag"] == tag  # the session in use was not the one evicted

    fake_timer.advance(20.001)  # every burst session has expired; the visitor's has not
    assert demo.prune() == 49
    store = state(client)["store"]
    assert (store["live"], store["expirations"], store["last_pruned"], store["last_prune_ago"]) == (1, 49, 49, 0)
    fake_timer.advance(5)
    assert state(client)["store"]["last_prune_ago"] == 5
    assert state(client)["session"]["tag"] == tag


def test_reset_starts_a_new_session_and_counts_no_eviction_or_expiry(make: Any, fake_timer: Any) -> None:
    client, _ = demo_client(make, fake_timer)
    client.get("/")
    client.post("/add")
    before = state(client)["session"]
    page = client.post("/reset").follow()
    after = state(client)
    assert after["session"]["tag"] != before["tag"]
    assert (after["session"]["visits"], after["session"]["items"]) == (1, 0)
    assert after["store"]["live"] == 1  # the old session was deleted, not left behind
    assert (after["store"]["evictions"], after["store"]["expirations"]) == (0, 0)  # a deletion is neither
    assert f">{after['session']['tag']}</code>" in page.text


def test_the_page_works_without_javascript(make: Any, fake_timer: Any) -> None:
    """Every value is rendered by the server, and every action is a plain form."""
    client, _ = demo_client(make, fake_timer)
    client.post("/burst")
    page = client.get("/")
    assert page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    text = page.text
    for action in ("add", "reset", "burst"):
        assert f'<form method="post" action="{action}">' in text
    assert '<dd id="visits">1</dd>' in text
    assert '<div class="big" id="live">201</div>' in text  # the burst and this visitor's new session
    assert '<div class="big" id="expires-in" data-seconds="300.0">5:00</div>' in text
    assert "http://" not in text and "https://" not in text  # no external assets


def test_a_form_posted_from_another_site_is_refused(make: Any, fake_timer: Any) -> None:
    client, _ = demo_client(make, fake_timer)
    client.post("/burst", headers={"Origin": "http://elsewhere.example"}, status=403)
    assert state(client)["store"]["live"] == 0
    client.post("/burst", headers={"Origin": "http://localhost:80"}, status=303)  # this page's own origin
    assert state(client)["store"]["live"] == 200


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/nope", 404), ("GET", "/burst", 405), ("POST", "/", 405)]
)
def test_unknown_paths_and_methods(make: Any, fake_timer: Any, method: str, path: str, status: int) -> None:
    client, _ = demo_client(make, fake_timer)
    client.request(path, method=method, status=status)
    assert state(client)["store"]["live"] == 0


def test_dispose_counts_only_evictions_and_expirations() -> None:
    counts = DisposeCounts()
    for reason in ("evict", "evict", "expire", "delete", "set"):
        counts("sid", {}, reason)
    stats = counts.stats([1, 2, 3], 10)
    assert (stats.length, stats.maxsize, stats.evictions, stats.expirations) == (3, 10, 2, 1)


def test_with_several_workers_the_session_names_the_workers_that_served_it(make: Any, fake_timer: Any) -> None:
    """``DemoApp(workers=N)``: each page view records its worker's pid once; the page lists them (the real
    forked workers of ``demo --workers`` are tested in test_demo_workers.py)."""
    client, _ = demo_client(make, fake_timer, workers=3)
    for _ in range(3):
        page = client.get("/")
    me = os.getpid()
    assert state(client)["session"]["served_by"] == [me]
    assert json.loads(state(client)["session"]["data"])["served_by"] == [me]  # it lives in the session itself
    assert state(client)["workers"] == 3
    assert f'<dd id="served-by">{me}</dd>' in page.text
    assert '<span class="badge">workers: <b id="workers">3</b></span>' in page.text

    single, _ = demo_client(make, fake_timer)  # one process: nothing recorded, the row hidden
    page = single.get("/")
    assert state(single)["session"]["served_by"] == []
    assert "served_by" not in json.loads(state(single)["session"]["data"])
    assert '<dd id="served-by" hidden></dd>' in page.text
