"""SharedMemoryStore: the segment, its security, crash safety and several processes (SPEC "One host, many workers").

Crash safety is tested with real SIGKILLs: a forked child stops itself at a
named point inside a critical section (``_shm._set_kill_point``), the test kills
it there and checks, from this process, that the segment is consistent
(``check_invariants``), that every session reads as before (the one being
written as its old or its new value, exactly as the commit point says) and
that the recovery was counted.  The storm test (test_shared_storm.py) kills
at random instants.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import select
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest
from helpers import wait_until

from memorystore import SharedMemoryStore

pytestmark = pytest.mark.c_extension

SHM = "/dev/shm"


@pytest.fixture
def shm_name():
    """A fresh segment name; the segment is unlinked afterwards."""
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        os.unlink(os.path.join(SHM, "memorystore." + name))
    except FileNotFoundError:
        pass


@pytest.fixture
def shm():
    import memorystore._shm as shm

    return shm


def session(i, size=0):
    return {"user": i, "pad": "x" * size}


# -- construction and the segment ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": "a/b"}, ValueError, "name"),
        ({"name": ".."}, ValueError, "name"),
        ({"name": "x" * 201}, ValueError, "name"),
        ({"name": "a b"}, ValueError, "name"),
        ({"name": b"abc"}, TypeError, "name"),
        ({"capacity": 0}, ValueError, "capacity"),
        ({"capacity": -1}, ValueError, "capacity"),
        ({"capacity": 2.0}, TypeError, "capacity"),
        ({"capacity": "10"}, TypeError, "capacity"),
        ({"capacity": True}, TypeError, "capacity"),
        ({"capacity": 1 << 40}, ValueError, "capacity"),
        ({"max_session_bytes": 0}, ValueError, "max_session_bytes"),
        ({"max_session_bytes": 1 << 30}, ValueError, "max_session_bytes"),
        ({"max_session_bytes": None}, TypeError, "max_session_bytes"),
        ({"arena_bytes": 0}, ValueError, "arena_bytes"),
        ({"arena_bytes": 4096}, ValueError, "too small"),
        ({"arena_bytes": "1M"}, TypeError, "arena_bytes"),
        ({"eviction": "fifo"}, ValueError, "eviction"),
        ({"mode": 0o400}, ValueError, "mode"),
        ({"mode": 0o1777}, ValueError, "mode"),
        ({"serializer": json.dumps}, TypeError, "serializer"),
        ({"ttl": -1}, ValueError, "ttl"),
        ({"check_period": -1}, ValueError, "check_period"),
    ],
)
def test_bad_options_raise_at_construction_and_create_nothing(shm_name, options, error, match):
    name = options.pop("name", shm_name)
    args = {"capacity": 10, **options}
    before = set(os.listdir(SHM))
    with pytest.raises(error, match=match):
        SharedMemoryStore(name, **args)
    assert set(os.listdir(SHM)) == before


def test_segment_is_private_and_outlives_the_store(shm_name):
    store = SharedMemoryStore(shm_name, capacity=10)
    path = os.path.join(SHM, "memorystore." + shm_name)
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert store.created
    store.set("a", {"x": 1})
    del store
    again = SharedMemoryStore(shm_name, capacity=10)
    assert not again.created and again.get("a") == {"x": 1}
    assert [n for n in os.listdir(SHM) if shm_name in n] == ["memorystore." + shm_name]  # no temporary left


def test_a_dead_creators_temporary_file_is_removed(shm_name):
    pid = subprocess.Popen([sys.executable, "-c", "pass"])
    pid.wait()
    leftover = os.path.join(SHM, f".memorystore.{shm_name}.{pid.pid}.deadbeef")
    open(leftover, "wb").close()
    mine = os.path.join(SHM, f".memorystore.{shm_name}.{os.getpid()}.cafe")  # a live creator's: kept
    open(mine, "wb").close()
    try:
        SharedMemoryStore(shm_name, capacity=10)
        assert not os.path.exists(leftover) and os.path.exists(mine)
    finally:
        os.unlink(mine)


def test_mode_is_honoured_despite_the_umask(shm_name):
    old = os.umask(0o077)
    try:
        SharedMemoryStore(shm_name, capacity=10, mode=0o660)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(os.path.join(SHM, "memorystore." + shm_name)).st_mode) == 0o660


def test_attach_with_other_parameters_names_what_differs(shm_name):
    SharedMemoryStore(shm_name, capacity=10, max_session_bytes=1000, arena_bytes=1 << 16)
    with pytest.raises(ValueError, match=r"capacity=10 \(given 11\)") as info:
        SharedMemoryStore(shm_name, capacity=11, max_session_bytes=1000, arena_bytes=1 << 16)
    assert "max_session_bytes" not in str(info.value)
    with pytest.raises(ValueError, match=r"max_session_bytes=1000 \(given 2000\)"):
        SharedMemoryStore(shm_name, capacity=10, max_session_bytes=2000, arena_bytes=1 << 16)
    with pytest.raises(ValueError, match=r"arena_bytes=65536 \(given 131072\)"):
        SharedMemoryStore(shm_name, capacity=10, max_session_bytes=1000, arena_bytes=1 << 17)
    with pytest.raises(ValueError, match=r"eviction='protect' \(given 'lru'\)"):
        SharedMemoryStore(shm_name, capacity=10, max_session_bytes=1000, arena_bytes=1 << 16, eviction="lru")
    SharedMemoryStore(shm_name, capacity=10, max_session_bytes=1000, arena_bytes=1 << 16)  # the same: fine


def test_attach_to_another_layout_version_is_refused(shm_name):
    SharedMemoryStore(shm_name, capacity=10)
    path = os.path.join(SHM, "memorystore." + shm_name)
    with open(path, "r+b") as handle:
        handle.seek(8)
        handle.write((99).to_bytes(4, sys.byteorder))
    with pytest.raises(ValueError, match="layout version 99"):
        SharedMemoryStore(shm_name, capacity=10)


def test_attach_to_something_else_is_refused(shm_name):
    path = os.path.join(SHM, "memorystore." + shm_name)
    with open(path, "wb") as handle:
        handle.write(b"not a segment" * 100)
    os.chmod(path, 0o600)
    with pytest.raises(ValueError, match="not a memorystore segment"):
        SharedMemoryStore(shm_name, capacity=10)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the segment to another user")
def test_attach_to_a_segment_of_another_user_is_refused(shm_name):
    SharedMemoryStore(shm_name, capacity=10)
    path = os.path.join(SHM, "memorystore." + shm_name)
    os.chown(path, 4242, 4242)
    with pytest.raises(PermissionError, match="owned by uid 4242"):
        SharedMemoryStore(shm_name, capacity=10)


def test_attach_through_a_symlink_is_refused(shm_name, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    os.symlink(target, os.path.join(SHM, "memorystore." + shm_name))
    with pytest.raises(OSError):
        SharedMemoryStore(shm_name, capacity=10)


def test_unlink_removes_the_name_and_attached_stores_keep_working(shm_name):
    store = SharedMemoryStore(shm_name, capacity=10)
    store.set("a", 1)
    store.unlink()
    store.unlink()  # idempotent
    assert not os.path.exists(os.path.join(SHM, "memorystore." + shm_name))
    assert store.get("a") == 1
    store.set("b", 2)
    fresh = SharedMemoryStore(shm_name, capacity=10)
    assert fresh.created and len(fresh) == 0 and store.get("b") == 2
    store.unlink()  # the name is now another segment's: left alone
    assert os.path.exists(os.path.join(SHM, "memorystore." + shm_name))


def test_racing_creators_end_up_on_one_segment(shm_name):
    script = textwrap.dedent(f"""
        import sys
        from memorystore import SharedMemoryStore
        s = SharedMemoryStore({shm_name!r}, capacity=100)
        s.set("p" + sys.argv[1], 1)
        print(int(s.created))
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE, text=True) for i in range(6)
    ]
    created = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(created) == 1
    store = SharedMemoryStore(shm_name, capacity=100)
    assert sorted(store.ids()) == sorted(f"p{i}" for i in range(6))


def test_never_registered_with_the_resource_tracker(shm_name):
    script = textwrap.dedent(f"""
        import multiprocessing.resource_tracker as rt
        from memorystore import SharedMemoryStore
        SharedMemoryStore({shm_name!r}, capacity=10).set("a", 1)
        assert rt._resource_tracker._fd is None, "resource tracker started"
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert SharedMemoryStore(shm_name, capacity=10).get("a") == 1  # the exit unlinked nothing


def test_keys_hash_with_sipHash_and_a_per_segment_seed(shm, shm_name):
    # SipHash-2-4 reference vector (Aumasson & Bernstein): the implementation is right.
    assert shm._siphash(bytes(range(16)), bytes(range(15)), 2, 4) == 0xA129CA6149BE45E5
    a = SharedMemoryStore(shm_name, capacity=10)
    b = SharedMemoryStore(shm_name + "-b", capacity=10)
    try:
        with open(a.core.path, "rb") as fa, open(b.core.path, "rb") as fb:
            seed_a, seed_b = fa.read(64)[32:48], fb.read(64)[32:48]
        assert seed_a != seed_b and seed_a != bytes(16)
    finally:
        b.unlink()


# -- the store --------------------------------------------------------------------------


def test_processes_share_sessions_str_and_bytes(shm_name):
    store = SharedMemoryStore(shm_name, capacity=10)
    raw = SharedMemoryStore(shm_name, capacity=10, serializer=pickle)  # pickle: only when asked
    store.set("s", {"é": [1, 2.5, None]})
    raw.set("p", {"t": (1, 2)})
    assert raw.get("p") == {"t": (1, 2)}
    assert store.get("s") == {"é": [1, 2.5, None]}
    assert json.loads(store.core.get("s")) == {"é": [1, 2.5, None]}


def test_serializer_must_produce_str_or_bytes(shm_name):
    class Weird:
        @staticmethod
        def dumps(obj):
            return [obj]

        @staticmethod
        def loads(data):
            return data

    store = SharedMemoryStore(shm_name, capacity=10, serializer=Weird)
    with pytest.raises(TypeError, match="str or bytes"):
        store.set("a", 1)
    assert len(store) == 0


def test_oversized_session_raises_and_changes_nothing(shm_name):
    store = SharedMemoryStore(shm_name, capacity=10, max_session_bytes=100)
    store.set("a", "x" * 90)  # json: 92 bytes
    with pytest.raises(ValueError, match="max_session_bytes=100"):
        store.set("a", "x" * 99)
    with pytest.raises(ValueError, match="max_session_bytes=100"):
        store.add("b", "é" * 50)  # json escapes it: 302 bytes
    assert store.get("a") == "x" * 90 and "b" not in store
    assert store.stats().rejected == 2
    store.check_invariants()


def test_without_serializer_str_and_bytes_are_stored_as_given(shm_name):
    store = SharedMemoryStore(shm_name, capacity=10, serializer=None)
    store.set("s", "text é")
    store.set("b", b"\x00\xff")
    assert store.get("s") == "text é" and store.get("b") == b"\x00\xff"
    with pytest.raises(TypeError, match="str or bytes"):
        store.set("o", {"an": "object"})
    assert "o" not in store and len(store) == 2


def test_utf8_sids_and_values(shm_name):
    store = SharedMemoryStore(shm_name, capacity=10, serializer=_Utf8Json)
    sid = "sïd-" + "€" * 300  # spans several blocks
    store.set(sid, {"name": "Zoë 🎉"})
    assert store.get(sid) == {"name": "Zoë 🎉"} and store.ids() == [sid]
    assert store.get("\ud800") is None and "\ud800" not in store
    store.set("\ud800", {"lone": "surrogate"})  # any str is a sid, as for MemoryStore
    store.set("\udc80x", 2)
    assert store.get("\ud800") == {"lone": "surrogate"} and store.get("\udc80x") == 2
    assert set(store.ids()) == {sid, "\ud800", "\udc80x"}
    store.check_invariants()


class _Utf8Json:
    @staticmethod
    def dumps(obj):
        return json.dumps(obj, ensure_ascii=False)

    @staticmethod
    def loads(data):
        return json.loads(data)


def test_stats_are_host_wide_and_count_stale(shm_name, fake_timer):
    a = SharedMemoryStore(shm_name, capacity=10, stale=True, ttl=5, timer=fake_timer)
    b = SharedMemoryStore(shm_name, capacity=10, stale=True, ttl=5, timer=fake_timer)
    a.set("x", 1)
    assert b.get("x") == 1 and b.get("y") is None
    fake_timer.advance(5)
    assert a.get("x") == 1 and a.get("x") is None
    stats = b.stats()
    assert (stats.hits, stats.misses, stats.writes, stats.stale, stats.recoveries) == (1, 3, 1, 1, 0)
    assert stats.maxsize == 10 and stats.length == 0
    a.reset_stats()
    assert b.stats().hits == 0


def test_repr_names_the_segment_not_the_sids(shm_name):
    store = SharedMemoryStore(shm_name, capacity=10)
    store.set("secret-sid", 1)
    assert shm_name in repr(store) and "secret-sid" not in repr(store)


def test_full_slots_evict_by_policy_expired_first(shm_name, fake_timer):
    gone = []
    store = SharedMemoryStore(
        shm_name, capacity=4, timer=fake_timer, dispose=lambda sid, s, reason: gone.append((sid, reason))
    )
    store.set("short", 1, ttl=1)
    for sid in ("a", "b", "c"):
        store.set(sid, 1, ttl=100)
    store.get("a")  # protected
    fake_timer.advance(2)
    store.set("d", 1, ttl=100)
    assert gone == [("short", "expire")]
    store.set("e", 1, ttl=100)
    assert gone[-1] == ("b", "evict")  # probation's least recently used, not the read "a"
    assert sorted(store.ids()) == ["a", "c", "d", "e"]
    assert store.stats().evictions == 1
    store.check_invariants()


def test_full_arena_evicts_until_the_new_session_fits(shm_name):
    gone = []
    store = SharedMemoryStore(
        shm_name,
        capacity=1000,
        max_session_bytes=4000,
        arena_bytes=20000,
        dispose=lambda sid, s, reason: gone.append(reason),
    )
    for i in range(40):  # 40 x 15 blocks: more than the arena's 312
        store.set(f"s{i}", "x" * 900)
    assert len(store) < 40 and set(gone) == {"evict"}
    store.set("big", "y" * 3990)
    assert store.get("big") == "y" * 3990
    store.set("big", "z" * 3990)  # an overwrite needs room for both copies until the commit
    assert store.get("big") == "z" * 3990
    store.check_invariants()


def test_churn_of_mixed_sizes_never_refuses_and_keeps_the_arena_full(shm_name):
    # A million writes of 100 B .. max_session_bytes values over 20,000 sids, straight on the core.
    import random

    rng = random.Random(7)
    store = SharedMemoryStore(shm_name, capacity=4096, max_session_bytes=16384, arena_bytes=4 << 20)
    put = store.core.put
    sids = [f"sid-{i:05d}" for i in range(20000)]
    payloads = [b"z" * rng.randint(100, 16384) for _ in range(997)]
    picks = rng.choices(range(20000), k=1_000_000)
    lowest = 1.0
    for i, pick in enumerate(picks):
        put(sids[pick], payloads[i % 997])  # never raises: every value fits
        if i % 20000 == 19999 and store.stats().evictions:  # once full, sample how full
            held, _, blocks = store.core.arena_use()
            lowest = min(lowest, held / (blocks * 64))
    assert lowest > 0.7, lowest
    assert store.stats().writes == 1_000_000
    store.check_invariants()


def test_threads_share_one_store(shm_name):
    store = SharedMemoryStore(shm_name, capacity=2000)
    errors = []

    def work(t):
        try:
            for i in range(2000):
                store.set(f"t{t}-{i % 300}", {"i": i})
                got = store.get(f"t{t}-{i % 300}")
                assert got == {"i": i}, got
                if i % 7 == 0:
                    store.destroy(f"t{t}-{(i + 1) % 300}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    store.check_invariants()


# -- several processes ----------------------------------------------------------------------


def _wait_child(pid, timeout=30.0):
    """The child's exit code; kills it if it does not end in time."""
    ended = wait_until(lambda: os.waitpid(pid, os.WNOHANG) != (0, 0), timeout)
    if not ended:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("child did not finish")
    return 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_created_before_fork_children_share_it_and_restart_their_thread(shm_name, fake_timer):
    # gunicorn --preload: the store is built in the master, the workers are forked.
    store = SharedMemoryStore(shm_name, capacity=100, check_period=0.01, ttl=10, timer=fake_timer)
    store.set("master", 1)
    results = []
    for w in range(2):
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                thread = store._thread
                ok = thread is not None and thread.is_alive() and store.get("master") == 1
                store.set(f"worker{w}", w, ttl=100)
                code = 0 if ok else 2
            finally:
                os.write(wfd, bytes([code]))
                os._exit(code)
        os.close(wfd)
        ready, _, _ = select.select([r], [], [], 30)
        results.append(os.read(r, 1) if ready else b"timeout")
        os.close(r)
        _, status = os.waitpid(pid, 0)
    assert results == [b"\0", b"\0"]
    assert store.get("worker0") == 0 and store.get("worker1") == 1  # the children's writes are here
    fake_timer.advance(10)
    assert wait_until(lambda: store.core.currsize == 2)  # this process's thread pruned "master"


def test_opened_by_name_in_each_worker(shm_name):
    # No preload: every worker process opens the store itself.
    script = textwrap.dedent(f"""
        import sys, time
        from memorystore import SharedMemoryStore
        me, other = sys.argv[1], sys.argv[2]
        s = SharedMemoryStore({shm_name!r}, capacity=100)
        s.set(me, {{"by": me}})
        deadline = time.monotonic() + 30
        while s.get(other) is None:       # wait (bounded) for the other worker's write
            assert time.monotonic() < deadline, "the other worker's session never appeared"
            time.sleep(0.01)
        assert s.get(other) == {{"by": other}}
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, a, b]) for a, b in (("w1", "w2"), ("w2", "w1"))]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    store = SharedMemoryStore(shm_name, capacity=100)
    assert store.all() == {"w1": {"by": "w1"}, "w2": {"by": "w2"}} or store.all() == {
        "w2": {"by": "w2"},
        "w1": {"by": "w1"},
    }


# -- crash safety: a SIGKILL at every named point -------------------------------------------


def _stop_child_at(shm, point, action):
    """Fork a child that runs action() and stops itself at point; return its pid (stopped, inside)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            shm._set_kill_point(point, w)
            action()
            os.write(w, b"e")  # finished without reaching the point
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 30)
    got = os.read(r, 1) if ready else b""
    os.close(r)
    if got != b"k":
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"the child did not stop at {point!r} ({got!r})")
    assert wait_until(lambda: _is_stopped(pid), 10)
    return pid


def _is_stopped(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] == "T"


def _kill(pid):
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


OLD = {f"k{i}": {"v": i, "pad": "o" * (40 * i)} for i in range(5)}
NEW = {"v": "new", "pad": "n" * 700}

# point -> (what the child does, what the segment holds afterwards)
SCENARIOS = {
    "read:locked": ("get", OLD),
    "read:promoted": ("get", OLD),
    "new:blocks": ("new", OLD),
    "new:written": ("new", OLD),
    "new:slot": ("new", OLD),
    "new:committed": ("new", {**OLD, "new": NEW}),
    "over:blocks": ("over", OLD),
    "over:written": ("over", OLD),
    "over:committed": ("over", {**OLD, "k1": NEW}),
    "over:freed": ("over", {**OLD, "k1": NEW}),
    "over:recency": ("over", OLD),
    "remove:uncommitted": ("destroy", {k: v for k, v in OLD.items() if k != "k1"}),
    "remove:slot": ("destroy", {k: v for k, v in OLD.items() if k != "k1"}),
    "evict:between": ("evict", {k: v for k, v in OLD.items() if k != "k0"}),
    "touch:deadline": ("touch", OLD),
    "touch:recency": ("touch", OLD),
    "expire:batch": ("prune", {k: v for k, v in OLD.items() if k not in ("k0", "k1")}),
    "clear:records": ("clear", None),
    "clear:reset": ("clear", {}),
}


def _fill(store, fake_timer):
    for sid, value in OLD.items():
        store.set(sid, value, ttl=10 if sid in ("k0", "k1") else 100)
    store.get("k4")  # one protected entry


def _act(store, what, fake_timer):
    if what == "get":
        store.get("k2")
    elif what == "new":
        store.set("new", NEW, ttl=100)
    elif what == "over":
        store.set("k1", NEW, ttl=100)
    elif what == "destroy":
        store.destroy("k1")
    elif what == "evict":
        store.set("new", NEW, ttl=100)  # the store is full: k0 (probation's LRU) goes first
    elif what == "touch":
        store.touch("k3", ttl=500)
    elif what == "prune":
        fake_timer.advance(20)
        store.prune()
    elif what == "clear":
        store.clear()


def _check_after_recovery(store, expected, recoveries=1):
    store.check_invariants()  # the first lock after the death repairs the segment
    assert store.stats().recoveries == recoveries
    held = store.all()
    if expected is None:  # killed in the middle of clear: every session is gone or intact
        assert all(OLD[sid] == value for sid, value in held.items())
    else:
        assert held == expected
    # and the segment goes on working
    for i in range(50):
        store.set(f"after{i}", {"i": i, "pad": "a" * (i * 30)})
        assert store.get(f"after{i}") == {"i": i, "pad": "a" * (i * 30)}
    store.check_invariants()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("point", sorted(SCENARIOS))
def test_sigkill_inside_a_critical_section(shm, shm_name, fake_timer, point):
    what, expected = SCENARIOS[point]
    capacity = 6 if what == "evict" else 64
    store = SharedMemoryStore(shm_name, capacity=capacity, timer=fake_timer)
    _fill(store, fake_timer)
    if what == "evict":
        store.set("k5", {"v": 5}, ttl=100)
        expected = {**expected, "k5": {"v": 5}}
    if what == "prune":
        fake_timer.advance(20)  # the parent's clock too: k0 and k1 have expired
    pid = _stop_child_at(shm, point, lambda: _act(store, what, fake_timer))
    _kill(pid)
    if what == "touch":
        assert store.core.remaining("k3") == 500  # the deadline was stored: the touch happened
    _check_after_recovery(store, expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("point", ["recover:records", "recover:rebuilt"])
def test_sigkill_inside_recovery_itself(shm, shm_name, fake_timer, point):
    store = SharedMemoryStore(shm_name, capacity=64, timer=fake_timer)
    _fill(store, fake_timer)
    _kill(_stop_child_at(shm, "over:written", lambda: _act(store, "over", fake_timer)))
    _kill(_stop_child_at(shm, point, lambda: store.get("k2")))  # this one dies repairing
    _check_after_recovery(store, OLD)


def test_every_kill_point_is_tested(shm):
    assert set(shm.KILL_POINTS) == set(SCENARIOS) | {"recover:records", "recover:rebuilt"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_stopped_holder_makes_others_time_out_not_hang(shm, shm_name, fake_timer):
    store = SharedMemoryStore(shm_name, capacity=64, timer=fake_timer)
    _fill(store, fake_timer)
    pid = _stop_child_at(shm, "over:written", lambda: _act(store, "over", fake_timer))
    shm._set_lock_timeout(0.3)
    try:
        with pytest.raises(TimeoutError, match=f"pid {pid}"):
            store.get("k2")
    finally:
        shm._set_lock_timeout(10.0)
    os.kill(pid, signal.SIGCONT)  # it finishes its write and exits
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get("k1") == NEW and store.stats().recoveries == 0
    store.check_invariants()


def test_ttl_in_shared_store_is_exact(shm_name, fake_timer):
    store = SharedMemoryStore(shm_name, capacity=8, timer=fake_timer)
    store.set("a", 1, ttl=10)
    store.set("b", 1, ttl=math.inf)
    fake_timer.advance(9.999)
    assert "a" in store
    fake_timer.advance(0.001)
    assert "a" not in store and "b" in store and store.prune() == 1


def test_readme_section_runs_as_written():
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    if not os.path.exists(readme):
        pytest.skip("README.md is not beside the tests (an installed-package run)")
    with open(readme, encoding="utf-8") as handle:
        section = handle.read().split("## One host, many workers")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks
    try:
        for block in blocks:
            subprocess.run([sys.executable, "-c", block], check=True, timeout=60)
    finally:
        for leftover in os.listdir(SHM):
            if leftover.startswith("memorystore.readme-"):
                os.unlink(os.path.join(SHM, leftover))
