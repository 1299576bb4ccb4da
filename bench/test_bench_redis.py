"""Round trips to a real Redis: RedisStore (with and without its near cache) against the peers.

Each benchmark times ONE session operation per call (get, or set), so the
numbers are per-operation latencies including the loopback round trip:

* ``redis-py``            ``client.get`` / ``client.set(px=...)`` of the raw bytes: the floor
* ``flask-session``       Flask-Session 0.8's own Redis backend
                          (``RedisSessionInterface._retrieve_session_data`` /
                          ``_upsert_session``, msgspec serializer)
* ``redisstore``          RedisStore, json serializer, no near cache
* ``redisstore-near``     RedisStore with ``near_cache=MemoryStore(ttl=60)``:
                          a repeated read is served locally while coherent

The server: ``MEMORYSTORE_REDIS_URL`` if set, else ``redis-server`` from PATH
on 127.0.0.1 (a free port, no persistence) for this module; skipped, saying
why, when neither is available (``tools/redis-for-tests.sh`` installs one).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from memorystore import MemoryStore  # noqa: E402
from memorystore.redis import RedisStore  # noqa: E402

SESSION = {"user_id": 12345, "name": "ann", "roles": ["reader", "writer"], "csrf": "x" * 43, "cart": [1, 2, 3]}
TTL = 3600


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """MEMORYSTORE_REDIS_URL, or a private redis-server for this module."""
    url = os.environ.get("MEMORYSTORE_REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "no Redis: redis-server is not on PATH and MEMORYSTORE_REDIS_URL is unset (tools/redis-for-tests.sh)"
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="memorystore-bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                if probe.ping():
                    break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("no Redis: redis-server did not start")
                time.sleep(0.01)  # bounded wait for the server to come up
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        probe.close()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = f"bench-{uuid.uuid4().hex[:12]}:"
    yield value
    cleaner = redis.Redis.from_url(redis_url)
    keys = list(cleaner.scan_iter(match=value + "*", count=1000))
    if keys:
        cleaner.delete(*keys)
    cleaner.close()


def _redis_py(url: str, prefix: str) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], None]]:
    client = redis.Redis.from_url(url)
    key = prefix + "s"
    payload = json.dumps(SESSION).encode()
    client.set(key, payload, px=TTL * 1000)
    return (
        lambda: client.get(key),
        lambda: client.set(key, payload, px=TTL * 1000),
        client.close,
    )


def _flask_session(url: str, prefix: str) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], None]]:
    pytest.importorskip("flask_session")
    from flask import Flask
    from flask_session.redis import RedisSession, RedisSessionInterface

    client = redis.Redis.from_url(url)
    interface = RedisSessionInterface(Flask(__name__), client=client, key_prefix=prefix)
    session = RedisSession(dict(SESSION), sid="s")
    store_id = prefix + "s"
    lifetime = timedelta(seconds=TTL)
    interface._upsert_session(lifetime, session, store_id)
    return (
        lambda: interface._retrieve_session_data(store_id),
        lambda: interface._upsert_session(lifetime, session, store_id),
        client.close,
    )


def _redisstore(url: str, prefix: str, near: bool) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], None]]:
    store = RedisStore(url, prefix=prefix, ttl=TTL, near_cache=MemoryStore(ttl=60) if near else None)
    store.set("s", SESSION)
    if near:
        deadline = time.monotonic() + 5
        while not store.near_cache_active and time.monotonic() < deadline:
            time.sleep(0.001)  # bounded: the listener applies the echo of our own write
        store.get("s")  # fills the near cache
    return (lambda: store.get("s"), lambda: store.set("s", SESSION), store.close)


IMPLS: dict[str, Callable[[str, str], tuple[Callable[[], Any], Callable[[], Any], Callable[[], None]]]] = {
    "redis-py": _redis_py,
    "flask-session": _flask_session,
    "redisstore": lambda url, prefix: _redisstore(url, prefix, near=False),
    "redisstore-near": lambda url, prefix: _redisstore(url, prefix, near=True),
}


@pytest.mark.parametrize("peer", list(IMPLS))
def test_get(benchmark: Any, redis_url: str, prefix: str, peer: str) -> None:
    get, _, close = IMPLS[peer](redis_url, prefix)
    benchmark.group = "redis: get one session"
    try:
        result = benchmark(get)
        assert result  # a session came back every time
    finally:
        close()


@pytest.mark.parametrize("peer", list(IMPLS))
def test_set(benchmark: Any, redis_url: str, prefix: str, peer: str) -> None:
    get, set_, close = IMPLS[peer](redis_url, prefix)
    benchmark.group = "redis: set one session"
    try:
        benchmark(set_)
        assert get()
    finally:
        close()


def test_near_cache_read_after_write_elsewhere(benchmark: Any, redis_url: str, prefix: str) -> None:
    """The coherent case: another client writes, then the near-cached store reads (2 round trips)."""
    store = RedisStore(redis_url, prefix=prefix, ttl=TTL, near_cache=MemoryStore(ttl=60))
    writer = redis.Redis.from_url(redis_url)
    key = prefix + "s"
    payloads = [json.dumps({**SESSION, "n": n}).encode() for n in range(2)]
    state = {"n": 0}
    benchmark.group = "redis: write elsewhere, then read"

    def write_then_read() -> Any:
        state["n"] ^= 1
        writer.set(key, payloads[state["n"]], px=TTL * 1000)
        return store.get("s")

    try:
        result = benchmark(write_then_read)
        assert result["n"] == state["n"]  # never a stale copy
    finally:
        writer.close()
        store.close()
