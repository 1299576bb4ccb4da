"""The Flask app that tests/test_gthread.py serves with gunicorn's ``gthread`` worker.

One ``MemoryStore`` holds every session of the worker's threads.  Bodies are JSON so the
clients can check what the server saw.
"""

from __future__ import annotations

import sys
import sysconfig

from flask import Flask, jsonify, request, session

import memorystore
from memorystore.flask import MemoryStoreSessionInterface

store = memorystore.MemoryStore(ttl=600)
app = Flask(__name__)
app.secret_key = "gthread-test-secret"
app.session_interface = MemoryStoreSessionInterface(store)


@app.get("/incr")
def incr():  # type: ignore[no-untyped-def]
    """Count this session's requests; the first one names the client that owns the session."""
    session.setdefault("client", request.args["client"])
    session["n"] = session.get("n", 0) + 1
    return jsonify(client=session["client"], n=session["n"])


@app.get("/read")
def read():  # type: ignore[no-untyped-def]
    """The session as it is, unchanged."""
    return jsonify(client=session.get("client"), n=session.get("n", 0))


@app.get("/info")
def info():  # type: ignore[no-untyped-def]
    return jsonify(
        free_threaded=bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        gil_enabled=getattr(sys, "_is_gil_enabled", lambda: True)(),
        compiled=memorystore.COMPILED,
        sessions=len(store),
    )
