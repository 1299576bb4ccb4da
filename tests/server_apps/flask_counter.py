"""A Flask app on ``MemoryStoreSessionInterface`` for tests/test_servers.py (see counting.py)."""

from __future__ import annotations

import counting
from flask import Flask, jsonify, request, session

from memorystore import MemoryStore, SharedMemoryStore
from memorystore.flask import MemoryStoreSessionInterface

if counting.per_process():
    store = MemoryStore(max=counting.CAPACITY, check_period=60)
else:
    store = SharedMemoryStore(counting.segment(), capacity=counting.CAPACITY, check_period=60)

app = Flask(__name__)
app.secret_key = "memorystore server tests: a long enough secret"
app.session_interface = MemoryStoreSessionInterface(store)


@app.get("/pid")
def pid():  # type: ignore[no-untyped-def]
    return jsonify(counting.pid())


@app.get("/count")
def count():  # type: ignore[no-untyped-def]
    return jsonify(counting.count(session, request.args["client"], int(request.args["seq"]), store))
