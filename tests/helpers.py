"""Small helpers shared by test modules (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll a condition (for a background thread); True when it held within the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


class CountingJSON:
    """A json serializer that counts its dumps calls (to see whether a session was rewritten)."""

    def __init__(self) -> None:
        self.dumps_calls = 0

    def dumps(self, obj: Any) -> str:
        self.dumps_calls += 1
        return json.dumps(obj)

    def loads(self, data: str) -> Any:
        return json.loads(data)


def flask_types_app(session_interface: Any) -> Any:
    """A Flask app whose ``/put`` stores every type Flask's own sessions hold and ``/check`` reads them back.

    ``/check`` answers ``same`` only when each value comes back equal and of the same type,
    and the flashed messages come back as ``(category, message)`` tuples.  ``/set`` stores a
    ``set``, which Flask's sessions refuse (``TypeError``).  Used with every store the Flask
    interface accepts (tests/test_flask.py, test_adapters_redis.py, test_readme.py).
    """
    import datetime as dt
    import uuid

    from flask import Flask, flash, get_flashed_messages, session
    from markupsafe import Markup

    expected = {
        "pair": (1, 2),
        "raw": b"\x00\xff",
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),  # Flask keeps whole seconds, in UTC
        "token": uuid.UUID(int=7),
        "markup": Markup("<b>bold</b>"),
        "nested": {"inner": (1, [2, (3,)]), " t": "a key that looks like a tag"},
    }
    app = Flask(__name__)
    app.secret_key = "flask-types-test-secret"
    app.testing = True  # a failed assertion in a view propagates to the test
    app.session_interface = session_interface

    @app.get("/put")
    def put() -> str:
        session.update(expected)
        flash("saved", "info")
        flash("plain")
        return "ok"

    @app.get("/check")
    def check() -> str:
        for key, value in expected.items():
            assert session[key] == value, (key, session[key])
            assert type(session[key]) is type(value), (key, type(session[key]))
        assert type(session["nested"]["inner"]) is tuple and type(session["nested"]["inner"][1][1]) is tuple
        flashes = get_flashed_messages(with_categories=True)
        assert flashes == [("info", "saved"), ("message", "plain")], flashes
        assert all(type(item) is tuple for item in flashes), flashes
        return "same"

    @app.get("/set")
    def set_() -> str:
        session["unsupported"] = {1, 2}
        return "ok"

    return app


def assert_flask_types_survive(session_interface: Any) -> None:
    """Round-trip every Flask session type through ``session_interface`` (see :func:`flask_types_app`)."""
    import pytest

    client = flask_types_app(session_interface).test_client()
    assert client.get("/put").text == "ok"
    assert client.get("/check").text == "same"
    with pytest.raises(TypeError):  # as Flask's own sessions: a set is not session data
        client.get("/set")
