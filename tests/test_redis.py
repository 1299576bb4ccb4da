"""RedisStore against a real redis-server (see SPEC "Scale-out: memorystore.redis.RedisStore").

The session-scoped ``redis_url`` fixture uses ``MEMORYSTORE_REDIS_URL`` when
set, else starts ``redis-server`` from PATH on 127.0.0.1 (a free port, no
persistence, a temp dir) and stops it at the end; it skips, saying why, only
when neither is possible (``tools/redis-for-tests.sh`` installs one).  Every
test works under its own random key prefix and deletes only that.

Expiry is Redis's own: tests use lifetimes of tens of milliseconds and poll
with a bound instead of sleeping long; all sleeps together stay well under a
second.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import inspect
import json
import logging
import math
import multiprocessing
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

redis = pytest.importorskip("redis")

import memorystore.redis as msredis  # noqa: E402
from memorystore import MemoryStore  # noqa: E402
from memorystore.redis import RedisStore  # noqa: E402

REDIS_BINARY = shutil.which("redis-server")
ENV_URL = os.environ.get("MEMORYSTORE_REDIS_URL")


# -- the server ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throwaway redis-server on 127.0.0.1: no RDB, no AOF, its own temp dir."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or _free_port()
        self.dir = tempfile.mkdtemp(prefix="memorystore-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir,
                "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode} (port {self.port})")
                try:
                    if probe.ping():
                        return
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not answer PING in time")
                time.sleep(0.01)  # bounded wait for the server to come up
        finally:
            probe.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _start_server(port: int | None = None) -> RedisServer:
    assert REDIS_BINARY is not None
    last: Exception | None = None
    for _ in range(3):  # a free port can be taken between the probe and the bind
        server = RedisServer(REDIS_BINARY, port)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            last = exc
            server.cleanup()
    raise RuntimeError(f"could not start redis-server: {last}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if ENV_URL:
        yield ENV_URL
        return
    if REDIS_BINARY is None:
        pytest.skip(
            "no Redis: redis-server is not on PATH and MEMORYSTORE_REDIS_URL is unset (tools/redis-for-tests.sh)"
        )
    try:
        server = _start_server()
    except RuntimeError as exc:
        pytest.skip(f"no Redis: {exc}")
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def private_server() -> Iterator[RedisServer]:
    """A server of this test's own, which it may stop and restart."""
    if REDIS_BINARY is None:
        pytest.skip("needs redis-server on PATH to stop and restart a server")
    server = _start_server()
    try:
        yield server
    finally:
        server.cleanup()


class SpyRedis(redis.Redis):
    """A real client that counts the commands it sends (pipelined ones too) and forbids KEYS."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.calls[str(args[0]).upper()] += 1
        assert str(args[0]).upper() != "KEYS", "KEYS must never be used"
        return super().execute_command(*args, **options)

    def keys(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("KEYS must never be used")

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        calls = self.calls
        buffered = pipe.pipeline_execute_command

        def record(*args: Any, **options: Any) -> Any:
            calls[str(args[0]).upper()] += 1
            assert str(args[0]).upper() != "KEYS", "KEYS must never be used"
            return buffered(*args, **options)

        pipe.pipeline_execute_command = record
        return pipe


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"mst-{uuid.uuid4().hex[:12]}:"
    yield value
    with contextlib.suppress(Exception):
        cleaner = redis.Redis.from_url(redis_url)
        keys = list(cleaner.scan_iter(match=value + "*", count=1000))
        if keys:
            cleaner.delete(*keys)
        cleaner.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[SpyRedis]:
    spy = SpyRedis.from_url(redis_url)
    yield spy
    spy.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    """A plain client, for looking at (and writing behind) the store's back."""
    plain = redis.Redis.from_url(redis_url)
    yield plain
    plain.close()


@pytest.fixture
def stores() -> Iterator[list[RedisStore]]:
    made: list[RedisStore] = []
    yield made
    for store in made:
        store.close()


@pytest.fixture
def make_store(client: SpyRedis, prefix: str, stores: list[RedisStore]) -> Callable[..., RedisStore]:
    def make(**options: Any) -> RedisStore:
        options.setdefault("prefix", prefix)
        store = RedisStore(options.pop("client", client), **options)
        stores.append(store)
        return store

    return make


def wait_until(condition: Callable[[], Any], timeout: float = 3.0, step: float = 0.005) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def settle(store: RedisStore) -> None:
    """Wait until the store's listener has applied every invalidation sent so far.

    Each write here also comes back from Redis as an invalidation (tracking
    cannot tell whose write it was), which may void the fill of a read made
    while it is in flight; tests that count hits wait for it first.
    """
    wait_until(lambda: store.near_cache_active)


# -- get / set and the ttl rules ---------------------------------------------------------------------


def test_set_get_roundtrip_returns_fresh_copies(make_store: Callable[..., RedisStore], raw: Any, prefix: str) -> None:
    store = make_store()
    assert store.get("nobody") is None
    session = {"user": "ann", "cart": [1, 2]}
    store.set("s1", session)
    assert json.loads(raw.get(prefix + "s1")) == session
    first = store.get("s1")
    assert first == session
    first["cart"].append(3)
    assert store.get("s1") == session


@pytest.mark.parametrize(
    ("options", "call_ttl", "session", "expected_ms"),
    [
        ({}, 12.3456, {}, 12346),  # PX is milliseconds, rounded up
        ({}, timedelta(minutes=2), {}, 120_000),
        ({"ttl": 30}, None, {}, 30_000),
        ({"ttl": timedelta(seconds=7)}, None, {}, 7_000),
        ({"ttl": lambda sid, s: s["life"]}, None, {"life": 9}, 9_000),
        ({}, None, {"cookie": {"max_age": 40}}, 40_000),
        ({}, None, {"cookie": {"maxAge": 50_000}}, 50_000),
        ({}, None, {"cookie": {"maxAge": "5"}}, 86_400_000),
        ({}, None, {}, 86_400_000),
        ({"ttl": 30}, 5, {}, 5_000),  # the call's ttl wins over the option
    ],
)
def test_set_sends_the_ttl_as_px(
    make_store: Callable[..., RedisStore],
    client: SpyRedis,
    raw: Any,
    prefix: str,
    options: dict[str, Any],
    call_ttl: Any,
    session: Any,
    expected_ms: int,
) -> None:
    store = make_store(**options)
    store.set("s", session, ttl=call_ttl)
    pttl = raw.pttl(prefix + "s")
    assert expected_ms - 200 < pttl <= expected_ms
    assert client.calls["SET"] == 1


def test_set_inf_is_a_plain_set_that_drops_an_old_ttl(
    make_store: Callable[..., RedisStore], raw: Any, prefix: str
) -> None:
    store = make_store()
    store.set("s", {"a": 1}, ttl=10)
    assert raw.pttl(prefix + "s") > 0
    store.set("s", {"a": 2}, ttl=math.inf)
    assert raw.pttl(prefix + "s") == -1
    assert store.get("s") == {"a": 2}
    store_inf = make_store(ttl=math.inf)
    store_inf.set("t", 1)
    assert raw.pttl(prefix + "t") == -1


@pytest.mark.parametrize("ttl", [0, -1, -0.5, timedelta(seconds=-3)])
def test_set_with_ttl_at_or_below_zero_removes(
    make_store: Callable[..., RedisStore], raw: Any, prefix: str, ttl: Any
) -> None:
    store = make_store()
    store.set("s", {"a": 1})
    store.set("s", {"a": 2}, ttl=ttl)
    assert raw.exists(prefix + "s") == 0
    assert store.get("s") is None


def test_failed_set_leaves_the_previous_entry_exactly_as_it_was(
    make_store: Callable[..., RedisStore], client: SpyRedis, raw: Any, prefix: str
) -> None:
    class Boom:
        def dumps(self, obj: Any) -> str:
            if obj == "bad":
                raise ValueError("cannot serialize")
            return json.dumps(obj)

        loads = staticmethod(json.loads)

    def ttl(sid: str, session: Any) -> float:
        if session == "bad ttl":
            raise RuntimeError("ttl callable failed")
        return 100

    store = make_store(serializer=Boom(), ttl=ttl)
    store.set("s", {"a": 1})
    before = raw.pttl(prefix + "s")
    sent = sum(client.calls.values())
    with pytest.raises(ValueError, match="cannot serialize"):
        store.set("s", "bad")
    with pytest.raises(RuntimeError, match="ttl callable failed"):
        store.set("s", "bad ttl")
    assert sum(client.calls.values()) == sent  # nothing reached the server
    assert store.get("s") == {"a": 1}
    assert before - 100 < raw.pttl(prefix + "s") <= before


def test_expiry_is_done_by_redis(make_store: Callable[..., RedisStore], raw: Any, prefix: str) -> None:
    store = make_store()
    store.set("short", {"a": 1}, ttl=0.03)
    store.set("long", {"b": 2}, ttl=60)
    assert store.get("short") == {"a": 1}
    wait_until(lambda: store.get("short") is None, timeout=2.0)
    assert raw.exists(prefix + "short") == 0
    assert store.get("long") == {"b": 2}
    assert store.ids() == ["long"]
    assert store.prune() == 0


# -- options and argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": "10"}, TypeError),
        ({"ttl": True}, TypeError),
        ({"ttl": 0}, ValueError),
        ({"ttl": -5}, ValueError),
        ({"ttl": math.nan}, ValueError),
        ({"ttl": 1e300}, ValueError),  # beyond what Redis can hold; math.inf means never
        ({"serializer": object()}, TypeError),
        ({"dispose": 42}, TypeError),
        ({"near_cache": {}}, TypeError),
        ({"near_cache": MemoryStore(dispose=print)}, ValueError),  # entries leave it whenever Redis changes
        ({"near_cache": MemoryStore(stale=True)}, ValueError),  # a stale copy disagrees with Redis
        ({"prefix": b"sess:"}, TypeError),
    ],
)
def test_bad_options_raise_at_construction(client: SpyRedis, options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        RedisStore(client, **options)


def test_bad_client_raises_type_error() -> None:
    with pytest.raises(TypeError, match="redis client or a redis:// URL"):
        RedisStore(42)


SID_CASES = [
    pytest.param(42, id="int"),
    pytest.param(b"abc", id="bytes"),
    pytest.param(type("S", (str,), {})("abc"), id="str-subclass"),
]
UNUSABLE_SIDS = [pytest.param("", id="empty"), pytest.param("x" * 1025, id="too-long")]


@pytest.mark.parametrize("sid", SID_CASES)
@pytest.mark.parametrize(
    "call",
    [
        lambda s, sid: s.get(sid),
        lambda s, sid: s.set(sid, {}),
        lambda s, sid: s.add(sid, {}),
        lambda s, sid: s.destroy(sid),
        lambda s, sid: s.destroy(["fine", sid]),
        lambda s, sid: s.touch(sid),
        lambda s, sid: sid in s,
    ],
    ids=["get", "set", "add", "destroy", "destroy-iterable", "touch", "contains"],
)
def test_non_str_sids_are_type_errors_everywhere(
    make_store: Callable[..., RedisStore], client: SpyRedis, sid: Any, call: Callable[..., Any]
) -> None:
    store = make_store()
    store.set("fine", {"kept": True})
    sent = sum(client.calls.values())
    with pytest.raises(TypeError):
        call(store, sid)
    assert sum(client.calls.values()) == sent  # validated before anything was sent
    assert store.get("fine") == {"kept": True}


@pytest.mark.parametrize("sid", UNUSABLE_SIDS)
@pytest.mark.parametrize("call", [lambda s, sid: s.set(sid, {}), lambda s, sid: s.add(sid, {})], ids=["set", "add"])
def test_writes_refuse_a_str_no_session_can_have(
    make_store: Callable[..., RedisStore], client: SpyRedis, sid: str, call: Callable[..., Any]
) -> None:
    store = make_store()
    store.set("fine", {"kept": True})
    sent = sum(client.calls.values())
    with pytest.raises(ValueError):
        call(store, sid)
    assert sum(client.calls.values()) == sent
    assert store.get("fine") == {"kept": True}


@pytest.mark.parametrize("sid", UNUSABLE_SIDS)
@pytest.mark.parametrize(
    ("call", "absent"),
    [
        (lambda s, sid: s.get(sid), None),
        (lambda s, sid: s.touch(sid), False),
        (lambda s, sid: sid in s, False),
        (lambda s, sid: s.destroy(sid), None),
    ],
    ids=["get", "touch", "contains", "destroy"],
)
@pytest.mark.parametrize("near", [False, True], ids=["plain", "near-cache"])
def test_reads_of_a_str_no_session_can_have_answer_absent_without_a_round_trip(
    make_store: Callable[..., RedisStore], client: SpyRedis, sid: str, call: Callable[..., Any], absent: Any, near: bool
) -> None:
    store = make_store(near_cache=MemoryStore(ttl=60) if near else None)
    store.set("fine", {"kept": True})
    sent = sum(client.calls.values())
    assert call(store, sid) is absent
    assert sum(client.calls.values()) == sent  # answered locally: nothing sent
    store.destroy(["fine", sid])  # a batch skips it and removes the rest
    assert store.get("fine") is None


def test_longest_sid_and_non_ascii_sids_work(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    sids = ["x" * 1024, "ünïcødé-☃", "lone-\ud800-surrogate", "with space and * [glob]?"]
    for n, sid in enumerate(sids):
        store.set(sid, n)
    assert [store.get(sid) for sid in sids] == [0, 1, 2, 3]
    assert sorted(store.ids()) == sorted(sids)
    assert store.all() == {sid: n for n, sid in enumerate(sids)}


# -- add / destroy / touch ---------------------------------------------------------------------------------


def test_add_is_atomic_create_if_absent(
    make_store: Callable[..., RedisStore], client: SpyRedis, raw: Any, prefix: str
) -> None:
    store = make_store()
    assert store.add("s", {"v": 1}, ttl=20) is True
    assert client.calls["SET"] == 1
    assert 19_000 < raw.pttl(prefix + "s") <= 20_000
    assert store.add("s", {"v": 2}) is False
    assert store.get("s") == {"v": 1}
    assert store.add("forever", 1, ttl=math.inf) is True
    assert raw.pttl(prefix + "forever") == -1


def test_add_after_expiry_and_with_nonpositive_ttl(
    make_store: Callable[..., RedisStore], raw: Any, prefix: str
) -> None:
    store = make_store()
    assert store.add("s", 1, ttl=0.02) is True
    wait_until(lambda: raw.exists(prefix + "s") == 0, timeout=2.0)
    assert store.add("s", 2) is True
    assert store.get("s") == 2
    # As with MemoryStore: ttl <= 0 stores nothing; True when nothing lived there.
    assert store.add("none", 3, ttl=0) is True
    assert raw.exists(prefix + "none") == 0
    assert store.add("s", 4, ttl=-1) is False


def test_destroy_one_and_many(
    make_store: Callable[..., RedisStore], client: SpyRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(msredis, "BATCH", 3)
    store = make_store()
    for n in range(8):
        store.set(f"s{n}", n)
    store.destroy("s0")
    store.destroy("unknown")  # ignored
    assert store.get("s0") is None
    store.destroy(f"s{n}" for n in range(1, 6))  # a generator, in batches of 3
    assert client.calls["UNLINK"] == 2 + 2
    assert sorted(store.ids()) == ["s6", "s7"]
    store.destroy([])
    with pytest.raises(TypeError, match="iterable of sids"):
        store.destroy(42)  # type: ignore[arg-type]


def test_touch_sets_a_new_deadline(
    make_store: Callable[..., RedisStore], client: SpyRedis, raw: Any, prefix: str
) -> None:
    store = make_store(ttl=10)
    store.set("s", {"cookie": {"max_age": 77}})
    assert store.touch("s", ttl=100) is True
    assert client.calls["PEXPIRE"] == 1
    assert 99_000 < raw.pttl(prefix + "s") <= 100_000
    assert store.touch("s") is True  # the option
    assert 9_000 < raw.pttl(prefix + "s") <= 10_000
    assert store.touch("s", ttl=timedelta(seconds=30)) is True
    assert 29_000 < raw.pttl(prefix + "s") <= 30_000
    assert store.touch("s", ttl=math.inf) is True
    assert client.calls["PERSIST"] == 1
    assert raw.pttl(prefix + "s") == -1
    assert store.get("s") == {"cookie": {"max_age": 77}}  # value untouched
    assert store.touch("missing") is False
    assert store.touch("missing", ttl=math.inf) is False
    assert raw.exists(prefix + "missing") == 0


def test_touch_follows_the_cookie_rule_and_removes_at_zero(
    make_store: Callable[..., RedisStore], raw: Any, prefix: str
) -> None:
    store = make_store()
    store.set("s", {})
    assert store.touch("s", {"cookie": {"maxAge": 45_000}}) is True
    assert 44_000 < raw.pttl(prefix + "s") <= 45_000
    assert store.touch("s") is True  # no session, no option: one day
    assert 86_399_000 < raw.pttl(prefix + "s") <= 86_400_000
    assert store.touch("s", ttl=0) is True
    assert raw.exists(prefix + "s") == 0
    assert store.touch("s", ttl=5) is False


# -- all / ids / length / in / clear, SCAN and the prefix ----------------------------------------------------


def test_listing_uses_scan_and_only_the_prefix(
    make_store: Callable[..., RedisStore], client: SpyRedis, raw: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(msredis, "BATCH", 4)
    store = make_store()
    outside = [prefix[:-1], prefix[:-1] + "x:a", "other:" + prefix + "a"]  # look alike, not under the prefix
    for key in outside:
        raw.set(key, "keep")
    try:
        expected = {f"s{n}": {"n": n} for n in range(10)}
        for sid, session in expected.items():
            store.set(sid, session)
        assert store.all() == expected
        assert client.calls["MGET"] == 3  # batches of 4
        assert sorted(store.ids()) == sorted(expected)
        assert store.length() == len(store) == 10
        assert "s3" in store and "nope" not in store
        store.clear()
        assert store.length() == 0 and store.all() == {} and store.ids() == []
        assert client.calls["UNLINK"] == 3
        assert all(raw.get(key) == b"keep" for key in outside)
        assert client.calls["SCAN"] >= 5
    finally:
        raw.delete(*outside)


def test_prefix_with_glob_characters_is_matched_literally(client: SpyRedis, raw: Any, stores: list[RedisStore]) -> None:
    tag = uuid.uuid4().hex[:8]
    literal = f"mst-{tag}*[x]?\\:"
    store = RedisStore(client, prefix=literal)
    stores.append(store)
    decoy = f"mst-{tag}-decoy[x]-:s"  # matches the prefix read as a glob pattern
    raw.set(decoy, "keep")
    try:
        store.set("s", 1)
        assert store.ids() == ["s"]
        store.clear()
        assert raw.get(decoy) == b"keep"
    finally:
        raw.delete(decoy)
        store.clear()


def test_other_stores_prefixes_are_isolated(make_store: Callable[..., RedisStore], prefix: str) -> None:
    first = make_store()
    second = make_store(prefix=prefix + "second:")
    first.set("a", 1)
    second.set("a", 2)
    assert first.get("a") == 1 and second.get("a") == 2
    second.clear()
    assert first.get("a") == 1
    # the second prefix lives under the first one, so the first sees its key as a sid
    second.set("b", 3)
    assert "second:b" in first.ids()


# -- dispose --------------------------------------------------------------------------------------------------


def test_dispose_reasons_are_set_and_delete(make_store: Callable[..., RedisStore]) -> None:
    seen: list[tuple[str, Any, str]] = []
    store = make_store(dispose=lambda sid, session, reason: seen.append((sid, session, reason)))
    store.set("a", {"v": 1})
    assert seen == []  # nothing was overwritten
    store.set("a", {"v": 2})
    assert seen == [("a", {"v": 1}, "set")]
    store.set("a", {"v": 3}, ttl=0)
    assert seen[-1] == ("a", {"v": 2}, "set")
    store.set("b", 1)
    store.set("c", 2)
    store.set("d", 3, ttl=0.02)
    store.destroy(["b", "zzz"])
    assert seen[-1] == ("b", 1, "delete")
    wait_until(lambda: store.get("d") is None, timeout=2.0)
    store.clear()
    assert seen[-1] == ("c", 2, "delete")
    assert [reason for _, _, reason in seen] == ["set", "set", "delete", "delete"]  # never "expire"


def test_dispose_errors_are_logged_and_dispose_may_call_the_store(
    make_store: Callable[..., RedisStore], caplog: pytest.LogCaptureFixture
) -> None:
    def dispose(sid: str, session: Any, reason: str) -> None:
        store.set("log-" + sid, reason)  # re-enters the store
        raise RuntimeError("dispose failed")

    store = make_store(dispose=dispose)
    store.set("a", 1)
    with caplog.at_level(logging.WARNING, logger="memorystore"):
        store.destroy("a")
    assert store.get("log-a") == "delete"
    assert any(r.levelno >= logging.WARNING and r.exc_info for r in caplog.records)


# -- serializers and clients -----------------------------------------------------------------------------------


def test_pickle_serializer_and_raw_values(make_store: Callable[..., RedisStore]) -> None:
    store = make_store(serializer=pickle)
    store.set("s", {"when": timedelta(seconds=3), "set": {1, 2}})
    assert store.get("s") == {"when": timedelta(seconds=3), "set": {1, 2}}
    passthrough = make_store(serializer=None)
    passthrough.set("b", b"\x00\xffbytes")
    assert passthrough.get("b") == b"\x00\xffbytes"


def test_decode_responses_and_resp3_clients(redis_url: str, prefix: str, stores: list[RedisStore]) -> None:
    for options in ({"decode_responses": True}, {"protocol": 3}):
        client = redis.Redis.from_url(redis_url, **options)
        store = RedisStore(client, prefix=prefix, near_cache=MemoryStore(ttl=60))
        stores.append(store)
        store.set("s", {"v": options})
        assert store.get("s") == {"v": options}
        assert store.ids() == ["s"]
        assert store.all() == {"s": {"v": options}}
        wait_until(lambda: store.near_cache_active)
        assert store.get("s") == {"v": options}
        [(sid, kept, _)] = store.near_cache.dump()
        assert sid == "s" and kept == client.get(prefix + "s")  # as the client returned it (str or bytes)
        client.set(prefix + "s", json.dumps("changed elsewhere"))
        assert store.get("s") == "changed elsewhere"
        store.clear()
        store.close()


def test_close_and_context_manager(redis_url: str, client: SpyRedis, prefix: str) -> None:
    with RedisStore(redis_url, prefix=prefix) as owned:
        owned.set("s", 1)
    assert owned.get("s") == 1  # still usable: a URL client reconnects on demand
    owned.close()
    borrowed = RedisStore(client, prefix=prefix, near_cache=MemoryStore())
    thread = borrowed._listener._thread  # type: ignore[union-attr]
    borrowed.close()
    borrowed.close()  # idempotent
    assert thread is not None and not thread.is_alive()
    assert client.ping()  # a client passed in is left open
    assert borrowed.get("s") == 1  # served by Redis; the near cache is off after close
    assert len(borrowed.near_cache) == 0


def test_signatures_match_memorystore() -> None:
    """Adapters call these on whatever store they get: same names, parameters and defaults."""
    for name in ("get", "set", "add", "destroy", "touch", "all", "ids", "length", "clear", "prune", "close"):
        ours = inspect.signature(getattr(RedisStore, name))
        theirs = inspect.signature(getattr(MemoryStore, name))
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
            (p.name, p.kind, p.default) for p in theirs.parameters.values()
        ], name
    for dunder in ("__len__", "__contains__", "__enter__", "__exit__"):
        assert callable(getattr(RedisStore, dunder))


# -- the near cache ---------------------------------------------------------------------------------------------


def test_near_cache_serves_repeated_reads(make_store: Callable[..., RedisStore], client: SpyRedis) -> None:
    store = make_store(near_cache=MemoryStore(ttl=60))
    assert store.near_cache_active
    store.set("s", {"v": 1})
    settle(store)
    assert store.get("s") == {"v": 1}
    assert store.get("s") == {"v": 1}
    assert store.get("s") == {"v": 1}
    assert client.calls["GET"] == 1  # the other two came from the near cache
    copy = store.get("s")
    copy["v"] = "mutated"
    assert store.get("s") == {"v": 1}  # the near cache hands out copies too
    assert store.get("missing") is None
    assert client.calls["GET"] == 2  # misses are not cached


NEAR_SESSION = {
    "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "cart": [1, 2],
    "seen": (3, 4),
}


@pytest.mark.parametrize(
    ("redis_serializer", "near_serializer", "session"),
    [
        pytest.param(pickle, json, NEAR_SESSION, id="pickle-over-json-near"),  # the reported case
        pytest.param(pickle, None, NEAR_SESSION, id="pickle-over-no-serializer-near"),
        pytest.param(json, pickle, {"cart": [1, 2], "user": "ann"}, id="json-over-pickle-near"),
        pytest.param(None, json, b"\x00raw \xffbytes", id="raw-bytes"),
    ],
)
def test_near_cache_keeps_the_bytes_from_redis_and_decodes_each_hit(
    make_store: Callable[..., RedisStore],
    client: SpyRedis,
    raw: Any,
    prefix: str,
    redis_serializer: Any,
    near_serializer: Any,
    session: Any,
) -> None:
    near = MemoryStore(ttl=60, serializer=near_serializer)
    store = make_store(serializer=redis_serializer, near_cache=near)
    store.set("s", session)
    settle(store)
    assert store.get("s") == session  # from Redis, filling the near cache
    gets = client.calls["GET"]
    hits = [store.get("s") for _ in range(3)]
    assert client.calls["GET"] == gets  # all three from the near cache
    assert hits == [session] * 3
    [(sid, kept, _)] = near.dump()
    assert sid == "s" and kept == raw.get(prefix + "s")  # the very bytes Redis holds
    if isinstance(session, dict):
        assert hits[0] is not hits[1]  # each hit is decoded afresh: a copy
        hits[0]["cart"].append("mutated")
        assert store.get("s") == session
        assert client.calls["GET"] == gets


def test_near_cache_bound_counts_the_bytes_from_redis(make_store: Callable[..., RedisStore], client: SpyRedis) -> None:
    near = MemoryStore(ttl=60, max=40, length=lambda value, sid: len(value))
    store = make_store(serializer=pickle, near_cache=near)
    store.set("small", 1)
    store.set("big", "x" * 100)
    settle(store)
    assert store.get("small") == 1 and store.get("big") == "x" * 100
    assert near.ids() == ["small"]  # the big one is read from Redis every time, never kept locally
    gets = client.calls["GET"]
    assert store.get("big") == "x" * 100 and store.get("small") == 1
    assert client.calls["GET"] == gets + 1


def test_near_cache_sees_writes_through_this_store(make_store: Callable[..., RedisStore], client: SpyRedis) -> None:
    store = make_store(near_cache=MemoryStore(ttl=60))
    store.set("s", 1)
    assert store.get("s") == 1
    for step in range(2, 6):
        store.set("s", step)
        assert store.get("s") == step
    store.get("s")
    store.touch("s", ttl=30)
    assert store.get("s") == 5
    store.destroy("s")
    assert store.get("s") is None
    store.set("t", "x")
    store.get("t")
    store.clear()
    assert store.get("t") is None


def test_near_cache_sees_writes_by_other_clients_at_once(
    make_store: Callable[..., RedisStore], client: SpyRedis, raw: Any, prefix: str
) -> None:
    store = make_store(near_cache=MemoryStore(ttl=60))
    store.set("s", 0)
    for step in range(1, 51):
        raw.set(prefix + "s", json.dumps(step))  # another client, no sleep before the read
        assert store.get("s") == step
        settle(store)
        store.get("s")
        gets = client.calls["GET"]
        assert store.get("s") == step
        assert client.calls["GET"] == gets  # served from the near cache
    raw.delete(prefix + "s")
    assert store.get("s") is None
    store.set("f", 1)
    settle(store)
    store.get("f")
    assert "f" in store.near_cache
    if ENV_URL is None:  # never flush a server we do not own
        # Redis sends the flush invalidation while running FLUSHDB, so it may reach the
        # listener just after the reply reached us: wait for it, boundedly.
        raw.execute_command("FLUSHDB")
        wait_until(lambda: store.get("f") is None)
        # a read may bypass the near cache (listener busy) before the listener empties it
        wait_until(lambda: len(store.near_cache) == 0)


def test_near_cache_copy_never_outlives_the_redis_key(make_store: Callable[..., RedisStore], client: SpyRedis) -> None:
    store = make_store(near_cache=MemoryStore(ttl=60))
    store.set("s", {"v": 1}, ttl=0.05)
    assert store.get("s") == {"v": 1}
    deadline = time.monotonic() + 0.05
    wait_until(lambda: store.get("s") is None, timeout=2.0)
    assert time.monotonic() >= deadline - 0.01


def test_near_cache_ttl_bounds_the_local_copy(make_store: Callable[..., RedisStore], client: SpyRedis) -> None:
    near = MemoryStore(ttl=0.03)
    store = make_store(near_cache=near)
    store.set("s", 1, ttl=60)
    settle(store)
    store.get("s")
    assert "s" in near
    wait_until(lambda: "s" not in near, timeout=2.0)
    assert store.get("s") == 1


def test_fill_is_dropped_when_an_invalidation_arrives_meanwhile(
    make_store: Callable[..., RedisStore], raw: Any, prefix: str
) -> None:
    near = MemoryStore(ttl=60)
    store = make_store(near_cache=near)
    store.set("s", "old")
    settle(store)  # this write's own invalidation must not be mistaken for the racing one
    real_pipeline = store.client.pipeline

    class RacingPipeline:
        """Lets another client write right after the store's read, before the fill."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.pipe = real_pipeline(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.pipe, name)

        def execute(self) -> Any:
            result = self.pipe.execute()
            raw.set(prefix + "s", json.dumps("new"))
            wait_until(lambda: store._gen != gen_before)  # the invalidation has been applied
            return result

    gen_before = store._gen
    store.client.pipeline = RacingPipeline  # type: ignore[method-assign]
    try:
        assert store.get("s") == "old"  # the read raced with the write...
    finally:
        del store.client.pipeline
    assert "s" not in near  # ...so its result was not cached
    assert store.get("s") == "new"


# -- the server going away and coming back -------------------------------------------------------------------------


DOWN_SERVER_CHILD = textwrap.dedent(
    """
    import sys
    import redis
    from memorystore import MemoryStore
    from memorystore.redis import RedisStore

    store = RedisStore(sys.argv[1], near_cache=MemoryStore(ttl=30))
    try:
        store.get("s")
    except redis.exceptions.ConnectionError:
        print("get: redis ConnectionError")
    store.close()
    """
)


def test_a_server_that_is_down_is_one_warning_line_at_construction() -> None:
    """No 30-line traceback for a server that is not there: one line naming the redis error."""
    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-c", DOWN_SERVER_CHILD, url], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "get: redis ConnectionError\n"  # the store still raises redis's own errors
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot reach Redis (redis.exceptions.ConnectionError: " in lines[0]
    assert "Traceback" not in result.stderr


def test_server_restart_raises_redis_errors_and_never_serves_stale_copies(private_server: RedisServer) -> None:
    client = SpyRedis.from_url(private_server.url, socket_timeout=2, socket_connect_timeout=0.5)
    near = MemoryStore(ttl=60)
    store = RedisStore(client, prefix="sess:", near_cache=near)
    try:
        store.set("s", {"v": 1})
        settle(store)
        assert store.get("s") == {"v": 1}
        assert "s" in near
        private_server.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            store.get("s")
        with pytest.raises(redis.exceptions.ConnectionError):
            store.set("s", {"v": 2})
        wait_until(lambda: not store.near_cache_active)
        assert len(near) == 0  # dropped, not left stale
        private_server.start()  # same port, empty data
        assert store.get("s") is None  # never the pre-restart copy
        wait_until(lambda: store.near_cache_active)
        store.set("s", {"v": 3})
        settle(store)
        gets = client.calls["GET"]
        assert store.get("s") == {"v": 3}
        assert store.get("s") == {"v": 3}
        assert client.calls["GET"] == gets + 1  # the near cache works again
        client.set("sess:s", json.dumps({"v": 4}))
        assert store.get("s") == {"v": 4}  # and is invalidated again
    finally:
        store.close()
        client.close()


# -- several processes ----------------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from memorystore import MemoryStore
    from memorystore.redis import RedisStore

    url, prefix = sys.argv[1], sys.argv[2]
    client = redis.Redis.from_url(url)
    reads = [0]
    real_pipeline = client.pipeline

    def pipeline(*args, **kwargs):
        reads[0] += 1
        return real_pipeline(*args, **kwargs)

    client.pipeline = pipeline
    store = RedisStore(client, prefix=prefix, near_cache=MemoryStore(ttl=60))
    print(json.dumps({"near_cache_active": store.near_cache_active}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        before = reads[0]
        if cmd["op"] == "get":
            out = {"value": store.get(cmd["sid"])}
        elif cmd["op"] == "set":
            store.set(cmd["sid"], cmd["value"])
            out = {}
        elif cmd["op"] == "settle":
            while not store.near_cache_active:
                time.sleep(0.001)
            out = {}
        elif cmd["op"] == "destroy":
            store.destroy(cmd["sid"])
            out = {}
        else:
            break
        out["from_server"] = reads[0] > before
        print(json.dumps(out), flush=True)
    store.close()
    """
)


class Child:
    def __init__(self, url: str, prefix: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.hello = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def __call__(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the child process died"
        return json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_two_processes_with_near_caches_see_each_others_writes(
    redis_url: str, make_store: Callable[..., RedisStore], client: SpyRedis, prefix: str
) -> None:
    store = make_store(near_cache=MemoryStore(ttl=60))
    child = Child(redis_url, prefix)
    try:
        assert child.hello == {"near_cache_active": True}
        for n in range(1, 31):
            store.set("s", {"n": n})  # here, then straight to the other process: no wait
            assert child(op="get", sid="s") == {"value": {"n": n}, "from_server": True}
            child(op="settle")
            child(op="get", sid="s")
            assert child(op="get", sid="s") == {"value": {"n": n}, "from_server": False}  # its near cache
            settle(store)
            store.get("s")
            gets = client.calls["GET"]
            assert store.get("s") == {"n": n}
            assert client.calls["GET"] == gets  # this side's near cache
            child(op="set", sid="s", value={"n": -n})  # there, then straight back here: no wait
            assert store.get("s") == {"n": -n}
        child(op="destroy", sid="s")
        assert store.get("s") is None
    finally:
        child.close()


def _forked_child(url: str, prefix: str, queue: Any, store: RedisStore) -> None:
    try:
        first = store.get("s")  # the parent's near-cache copy is gone; read from Redis
        active = store.near_cache_active or bool(wait_until(lambda: store.near_cache_active, timeout=5))
        store.set("s", "from the child")
        queue.put((first, active, store.get("s")))
    except BaseException as exc:  # noqa: BLE001
        queue.put(repr(exc))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_restarts_its_listener(
    redis_url: str, make_store: Callable[..., RedisStore], raw: Any, prefix: str
) -> None:
    store = make_store(near_cache=MemoryStore(ttl=60))
    store.set("s", "from the parent")
    assert store.get("s") == "from the parent"
    raw.set(prefix + "s", json.dumps("changed"))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    proc = context.Process(target=_forked_child, args=(redis_url, prefix, queue, store))
    proc.start()
    try:
        result = queue.get(timeout=20)
    finally:
        proc.join(10)
    assert result == ("changed", True, "from the child")
    assert store.get("s") == "from the child"  # the parent's listener still works
    assert store.near_cache_active


FLASK_CHILD = textwrap.dedent(
    """
    import sys
    from flask import Flask, session
    from werkzeug.serving import make_server
    from memorystore import MemoryStore
    from memorystore.flask import MemoryStoreSessionInterface
    from memorystore.redis import RedisStore

    url, prefix = sys.argv[1], sys.argv[2]
    app = Flask("a")
    app.secret_key = "shared secret for the test"
    app.session_interface = MemoryStoreSessionInterface(
        RedisStore(url, prefix=prefix, near_cache=MemoryStore(ttl=30))
    )

    @app.get("/set/<key>/<value>")
    def set_value(key, value):
        session[key] = value
        return "ok"

    @app.get("/get/<key>")
    def get_value(key):
        return session.get(key, "-")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()
    """
)


def test_two_processes_share_flask_sessions(redis_url: str, prefix: str, stores: list[RedisStore]) -> None:
    pytest.importorskip("flask")
    flask_adapter = pytest.importorskip("memorystore.flask")
    from flask import Flask, session

    child = subprocess.Popen([sys.executable, "-c", FLASK_CHILD, redis_url, prefix], stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())  # type: ignore[union-attr]

        def remote(path: str, cookie: str | None) -> tuple[str, str | None]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers={"Cookie": f"session={cookie}"} if cookie else {})
            response = conn.getresponse()
            body = response.read().decode()
            set_cookie = response.getheader("Set-Cookie")
            conn.close()
            assert response.status == 200, body
            if set_cookie and set_cookie.startswith("session="):
                cookie = set_cookie.split(";", 1)[0].split("=", 1)[1]
            return body, cookie

        store = RedisStore(redis_url, prefix=prefix, near_cache=MemoryStore(ttl=30))
        stores.append(store)
        app = Flask("b")
        app.secret_key = "shared secret for the test"
        app.session_interface = flask_adapter.MemoryStoreSessionInterface(store)

        @app.get("/set/<key>/<value>")
        def set_value(key: str, value: str) -> str:
            session[key] = value
            return "ok"

        @app.get("/get/<key>")
        def get_value(key: str) -> str:
            return session.get(key, "-")

        body, cookie = remote("/set/user/alice", None)
        assert body == "ok" and cookie
        assert remote("/get/user", cookie)[0] == "alice"  # the other process has it cached now

        local = app.test_client()
        local.set_cookie("session", cookie)
        assert local.get("/get/user").text == "alice"
        assert local.get("/set/user/bob").text == "ok"
        assert remote("/get/user", cookie)[0] == "bob"  # the write here is seen there at once
        assert remote("/set/user/carol", cookie)[0] == "ok"
        assert local.get("/get/user").text == "carol"
        assert len(store.ids()) == 1
    finally:
        child.terminate()
        child.wait(10)


# -- adapters take a RedisStore wherever they take a MemoryStore ----------------------------------------------------


def test_cachelib_adapter_over_a_redis_store(make_store: Callable[..., RedisStore], raw: Any, prefix: str) -> None:
    pytest.importorskip("cachelib")
    from memorystore.cachelib import MemoryStoreCache

    cache = MemoryStoreCache(60, store=make_store(serializer=None))
    assert cache.set("k", {"when": timedelta(seconds=1)}) is True
    assert cache.get("k") == {"when": timedelta(seconds=1)}
    assert 59_000 < raw.pttl(prefix + "k") <= 60_000
    assert cache.add("k", 2) is False
    assert cache.has("k") is True
    assert cache.delete("k") is True
    assert cache.get("k") is None
    cache.set("forever", 1, timeout=0)
    assert raw.pttl(prefix + "forever") == -1
    assert cache.clear() is True
    assert raw.exists(prefix + "forever") == 0


def test_wsgi_adapter_over_a_redis_store(make_store: Callable[..., RedisStore], raw: Any, prefix: str) -> None:
    webtest = pytest.importorskip("webtest")
    from memorystore.wsgi import SessionMiddleware

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        session = environ["memorystore.session"]
        if environ["PATH_INFO"] == "/inc":
            session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(session.get("n", 0)).encode()]

    store = make_store(near_cache=MemoryStore(ttl=30))
    browser = webtest.TestApp(SessionMiddleware(app, store, "a secret", max_age=120))
    assert browser.get("/inc").text == "1"
    assert browser.get("/inc").text == "2"
    (sid,) = store.ids()
    assert store.get(sid) == {"n": 2}
    assert 119_000 < raw.pttl(prefix + sid) <= 120_000
    raw.set(prefix + sid, json.dumps({"n": 40}))  # another process's write
    assert browser.get("/inc").text == "41"


def test_aio_adapter_over_a_redis_store(make_store: Callable[..., RedisStore]) -> None:
    import asyncio

    from memorystore.aio import AsyncMemoryStore

    async def scenario() -> tuple[Any, ...]:
        store = AsyncMemoryStore(make_store())
        await store.set("a", {"v": 1}, ttl=30)
        added = await store.add("a", {"v": 2})
        got = await store.get("a")
        touched = await store.touch("a", ttl=60)
        has = await store.has("a")
        n = await store.length()
        await store.destroy(["a"])
        return added, got, touched, has, n, await store.get("a"), await store.prune()

    assert asyncio.run(scenario()) == (False, {"v": 1}, True, True, 1, None, 0)


def test_listener_connection_is_outside_a_bounded_pool(redis_url: str, prefix: str, stores: list[RedisStore]) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, max_connections=1)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore(client, prefix=prefix, near_cache=MemoryStore(ttl=30))
    stores.append(store)
    assert store.near_cache_active
    store.set("s", 1)  # the pool's only connection is still free for commands
    assert store.get("s") == 1
    assert store.touch("s", ttl=5) is True
    client.set(prefix + "s", json.dumps(2))
    assert store.get("s") == 2


# -- stats (issue 14) --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_dispose", [False, True])
def test_stats_count_this_processes_own_calls(make_store: Callable[..., RedisStore], with_dispose: bool) -> None:
    from memorystore._stats import RedisStats

    store = make_store(dispose=(lambda sid, session, reason: None) if with_dispose else None)
    other = make_store()  # another store (as another process would) on the same keys
    assert store.stats() == RedisStats(0, 0, 0, 0)
    store.set("a", {"v": 1})
    store.set("gone", {"v": 1}, ttl=0)  # nothing stored
    assert store.add("b", {"v": 2}) is True
    assert store.add("b", {"v": 3}) is False
    assert store.get("a") == {"v": 1}
    assert store.get("nope") is None
    assert store.get("") is None  # no session can have it: not a read of the store, not counted
    other.set("c", {"v": 3})
    store.destroy(["a", "c", "nope"])
    store.touch("b")
    stats = store.stats()
    assert type(stats) is RedisStats
    assert stats == RedisStats(hits=1, misses=1, writes=2, deletions=2)
    assert other.stats() == RedisStats(hits=0, misses=0, writes=1, deletions=0)
    store.reset_stats()
    assert store.stats() == RedisStats(0, 0, 0, 0)
    assert signature_of(RedisStore.stats) == signature_of(MemoryStore.stats)


def test_stats_count_near_cache_hits(make_store: Callable[..., RedisStore]) -> None:
    store = make_store(near_cache=MemoryStore(ttl=60))
    store.set("a", {"v": 1})
    settle(store)
    for _ in range(3):
        assert store.get("a") == {"v": 1}
    assert (store.stats().hits, store.near_cache.stats().hits) == (3, 2)  # the first read filled it


def signature_of(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]
