"""MemoryStore under threads (issue #6, hazards B1, B2, H7), for both cores.

- A storm of mixed store operations from 8 threads with a 1 µs switch
  interval and a ``dispose`` that yields the GIL: no session ever shows
  another session's data, ``len <= max`` always, the invariants hold and
  every stored value is disposed exactly once.
- Destroy racing touch: ``touch`` never creates an entry, so a destroyed
  session stays destroyed; only a racing ``set`` can bring the sid back, and
  then with the value that ``set`` wrote.

The storm on the bare ``LRUCache`` is in ``test_lru_reentrancy.py``.

The cibuildwheel free-threaded override runs this file with
pytest-run-parallel (each test in 4 threads at once), so the tests build
their own stores and clocks and share no mutable state across calls; the
switch interval is changed under a module lock and restored by the last
user.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

JOIN_TIMEOUT = 60.0

_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextlib.contextmanager
def fast_switching(interval: float = 1e-6) -> Iterator[None]:
    """``sys.setswitchinterval(interval)`` for the block; the last concurrent user restores the old value."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(interval)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


class Clock:
    """A fake monotonic clock one worker moves forward."""

    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time


def run_threads(count: int, target: Callable[[int], None], barrier: threading.Barrier | None = None) -> list[str]:
    """Run ``target(n)`` in ``count`` threads; return the formatted errors (a worker's exception fails the test).

    A failing worker breaks ``barrier``, so its partners stop at once instead of waiting for the timeout.
    """
    errors: list[str] = []

    def guarded(n: int) -> None:
        try:
            target(n)
        except BaseException:  # noqa: BLE001 - reported to the test
            errors.append(traceback.format_exc())
            if barrier is not None:
                barrier.abort()

    threads = [threading.Thread(target=guarded, args=(n,), name=f"storm-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a worker hung (deadlock?)"
    return errors


def test_storm_never_mixes_sessions(store_cls: type) -> None:
    max_sessions = 40
    threads = 8
    ops = 2500
    clock = Clock()
    written: list[tuple[int, int]] = []
    disposed: list[tuple[int, int]] = []
    wrong: list[str] = []

    def dispose(sid: str, session: Any, reason: str) -> None:
        time.sleep(0)  # let another thread in between two disposals
        if session["sid"] != sid or reason not in ("set", "expire", "evict", "delete"):
            wrong.append(f"dispose got the session of {session['sid']!r} for {sid!r} ({reason})")
        disposed.append(session["uid"])

    store = store_cls(max=max_sessions, ttl=5, dispose=dispose, timer=clock)
    start = threading.Barrier(threads, timeout=JOIN_TIMEOUT)

    def check_session(sid: str, session: Any) -> None:
        assert session is None or session["sid"] == sid, (sid, session)

    def worker(n: int) -> None:
        start.wait()
        for i in range(ops):
            sid = f"s{(i * 7 + n * 13) % 100}"
            op = (i * 5 + n) % 11
            uid = (n, i)
            if op in (0, 1):
                written.append(uid)
                store.set(sid, {"sid": sid, "uid": uid})
            elif op in (2, 3):
                check_session(sid, store.get(sid))
            elif op == 4:
                if store.add(sid, {"sid": sid, "uid": uid}):
                    written.append(uid)
            elif op == 5:
                store.touch(sid)
            elif op == 6:
                store.destroy(sid if i % 2 else [sid, f"s{(i + 1) % 100}"])
            elif op == 7:
                ids = store.ids()
                assert len(ids) == len(set(ids)) <= max_sessions, ids
            elif op == 8:
                sessions = store.all()
                assert len(sessions) <= max_sessions
                for key, session in sessions.items():
                    check_session(key, session)
            elif op == 9:
                if n == 0 and i % 40 == 9:
                    clock.time += 1.0
                store.prune()
            else:
                assert len(store) <= max_sessions
                assert (sid in store) in (True, False)

    with fast_switching():
        errors = run_threads(threads, worker, start)
    assert not errors, errors[0]
    assert not wrong, wrong[:3]
    store.check_invariants()
    assert len(store) <= max_sessions
    for sid, session in store.all().items():
        assert session["sid"] == sid
    store.clear()
    store.check_invariants()
    assert len(store) == 0
    # Every value that entered the store left it exactly once (a tuple uid comes back as a list from json).
    counts = Counter(tuple(uid) for uid in disposed)
    assert len(written) == len(set(written))
    assert counts and max(counts.values()) == 1, [uid for uid, c in counts.items() if c > 1][:5]
    assert set(counts) == set(written)


def test_storm_with_length_bound_and_serializer_none(store_cls: type) -> None:
    """Same storm shape with ``serializer=None`` (shared objects) and a ``length`` bound: size and ownership hold."""
    budget = 30
    clock = Clock()
    wrong: list[str] = []

    def dispose(sid: str, session: Any, reason: str) -> None:
        time.sleep(0)
        if session["sid"] != sid:
            wrong.append(f"{session['sid']!r} disposed as {sid!r}")

    store = store_cls(
        max=budget, ttl=3, length=lambda value, sid: value["w"], serializer=None, dispose=dispose, timer=clock
    )
    start = threading.Barrier(8, timeout=JOIN_TIMEOUT)

    def worker(n: int) -> None:
        start.wait()
        for i in range(2000):
            sid = f"s{(i * 3 + n * 5) % 60}"
            op = (i + n) % 5
            if op == 0:
                store.set(sid, {"sid": sid, "w": (i + n) % 4})
            elif op == 1:
                got = store.get(sid)
                assert got is None or got["sid"] == sid
            elif op == 2:
                store.touch(sid, ttl=(i % 3) - 0.5)  # some touches leave the entry expired
            elif op == 3:
                if n == 1 and i % 25 == 3:
                    clock.time += 1.0
                store.prune()
            else:
                store.destroy(sid)
            assert store.core.currsize <= budget

    with fast_switching():
        errors = run_threads(8, worker, start)
    assert not errors, errors[0]
    assert not wrong, wrong[:3]
    store.check_invariants()
    assert store.core.currsize <= budget
    assert sum(session["w"] for session in store.all().values()) <= budget


def test_touch_never_resurrects_a_destroyed_session(store_cls: type) -> None:
    """destroy and touch start together, 1500 rounds: afterwards the session is gone, every time."""
    store = store_cls(ttl=60)
    sid = "victim"
    rounds = 1500
    gate = threading.Barrier(2, timeout=JOIN_TIMEOUT)
    touched = Counter()

    def destroyer(_: int) -> None:
        for _round in range(rounds):
            gate.wait()  # the round's session is stored
            gate.wait()  # go
            store.destroy(sid)
            gate.wait()  # done

    def toucher(_: int) -> None:
        for n in range(rounds):
            store.set(sid, {"sid": sid, "n": n})
            gate.wait()
            gate.wait()
            # touch with a session must not store it either
            touched[store.touch(sid, {"sid": sid, "n": -1}, ttl=600)] += 1
            touched[store.touch(sid)] += 1
            gate.wait()
            assert store.get(sid) is None, n
            assert sid not in store and len(store) == 0
            assert store.touch(sid) is False

    with fast_switching(1e-5):
        errors = run_threads(2, lambda n: (destroyer if n == 0 else toucher)(n), gate)
    assert not errors, errors[0]
    store.check_invariants()
    assert len(store) == 0
    assert touched[True] + touched[False] == 2 * rounds


def test_only_a_set_brings_a_destroyed_session_back(store_cls: type) -> None:
    """destroy, touch and set race: the sid ends up absent or holding exactly what set wrote."""
    store = store_cls(ttl=60)
    sid = "contested"
    rounds = 1000
    gate = threading.Barrier(3, timeout=JOIN_TIMEOUT)
    outcomes = Counter()

    def body(role: int) -> None:
        for n in range(rounds):
            if role == 0:
                store.set(sid, {"sid": sid, "by": "original", "n": n})
            gate.wait()  # stored
            gate.wait()  # go
            if role == 0:
                store.destroy(sid)
            elif role == 1:
                store.touch(sid, {"sid": sid, "by": "touch", "n": n})
            else:
                store.set(sid, {"sid": sid, "by": "set", "n": n})
            gate.wait()  # done
            if role == 0:
                got = store.get(sid)
                # destroy may run before or after set; the original never survives, touch never writes.
                assert got is None or got == {"sid": sid, "by": "set", "n": n}, (n, got)
                outcomes["absent" if got is None else "set"] += 1
                store.destroy(sid)
            gate.wait()  # checked

    with fast_switching(1e-5):
        errors = run_threads(3, body, gate)
    assert not errors, errors[0]
    store.check_invariants()
    assert sum(outcomes.values()) == rounds
