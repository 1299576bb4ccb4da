"""The dispose re-entrancy matrix (issue #6, hazard A1), for both cores.

``dispose`` is called after the store is consistent and outside its lock, so
it may call the store.  Each case pairs one dispose reason (how the entry
left: expired via ``prune`` or via ``get``, evicted by ``max``, deleted by
``destroy`` or ``clear``, overwritten by ``set``) with one store call made
from inside ``dispose`` (set/add/touch/get/destroy on the same sid or another
one, clear, prune).  Each case runs in a fresh interpreter with a timeout, so
a crash or a deadlock is a test failure instead of the end of the run; the
child fails on its own assertions, the parent on a signal, a timeout or
"Fatal Python error".

The child asserts, after every round and from inside ``dispose`` as well:
``check_invariants()`` passes, ``len <= max``, every session read back
carries its own sid.  At the end (with the re-entry disarmed) it clears the
store and asserts that every value ever stored was disposed exactly once.
"""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow

CHILD = r"""
import importlib, itertools, sys
from collections import Counter

module, ACTION, REASON = sys.argv[1:4]
core = importlib.import_module(module)
from memorystore.store import MemoryStore

Store = type("Store", (MemoryStore,), {"_core_class": core.LRUCache})
MAX = 3


class Clock:
    def __init__(self):
        self.time = 1000.0

    def __call__(self):
        return self.time


clock = Clock()
serial = itertools.count()
written = Counter()    # uid -> times stored
disposed = Counter()   # uid -> times disposed
reasons = Counter()
fired = Counter()
state = {"armed": True, "depth": 0}


def check():
    store.check_invariants()
    assert len(store) <= MAX, len(store)
    assert store.core.currsize <= MAX
    for sid, session in store.all().items():
        assert session["sid"] == sid, (sid, session)


def write(sid, ttl=None):
    session = {"sid": sid, "uid": next(serial)}
    written[session["uid"]] += 1
    store.set(sid, session, ttl=ttl)


def try_add(sid):
    session = {"sid": sid, "uid": next(serial)}
    written[session["uid"]] += 1
    if not store.add(sid, session):
        written[session["uid"]] -= 1  # not stored: never to be disposed
        del written[session["uid"]]


def some_other(sid):
    ids = [other for other in store.ids() if other != sid]
    return ids[-1] if ids else "nobody"


def read(sid):
    got = store.get(sid)
    assert got is None or got["sid"] == sid, (sid, got)


ACTIONS = {
    "set_same": lambda sid: write(sid),
    "set_other": lambda sid: write("new%d" % next(serial)),
    "add_same": lambda sid: try_add(sid),
    "add_other": lambda sid: try_add("new%d" % next(serial)),
    "touch_same": lambda sid: store.touch(sid),
    "touch_other": lambda sid: store.touch(some_other(sid)),
    "get_same": read,
    "get_other": lambda sid: read(some_other(sid)),
    "destroy_same": lambda sid: store.destroy(sid),
    "destroy_other": lambda sid: store.destroy([some_other(sid), sid]),
    "clear": lambda sid: store.clear(),
    "prune": lambda sid: store.prune(),
}


def dispose(sid, session, reason):
    assert session["sid"] == sid, (sid, session)
    disposed[session["uid"]] += 1
    reasons[reason] += 1
    if state["armed"] and reason == REASON.split("_")[0] and state["depth"] == 0:
        state["depth"] += 1
        try:
            ACTIONS[ACTION](sid)
            fired[reason] += 1
        finally:
            state["depth"] -= 1
    check()


store = Store(max=MAX, ttl=5, dispose=dispose, timer=clock)

for rnd in range(25):
    keys = ["r%d-%d" % (rnd, i) for i in range(3)]
    if REASON == "expire_prune":
        for key in keys:
            write(key, ttl=1)
        clock.time += 2
        store.prune()
    elif REASON == "expire_get":
        for key in keys:
            write(key, ttl=1)
        clock.time += 2
        for key in keys:
            assert store.get(key) is None
    elif REASON == "evict":
        for i in range(2 * MAX):
            write("r%d-e%d" % (rnd, i))
    elif REASON == "delete_destroy":
        for key in keys:
            write(key)
        store.destroy(keys[0])
        store.destroy(keys[1:])
    elif REASON == "delete_clear":
        for key in keys:
            write(key)
        store.clear()
    elif REASON == "set_overwrite":
        write("same")
        write("same")
        write(keys[0])
        write(keys[0])
    else:
        raise SystemExit("unknown reason " + REASON)
    check()
    if rnd % 5 == 4:
        clock.time += 1

state["armed"] = False
store.clear()
check()
assert len(store) == 0 and store.ids() == []
assert fired, ("the re-entry never ran", reasons)
assert reasons[REASON.split("_")[0]] >= 25, reasons
assert set(disposed) == set(written), (sorted(set(written) - set(disposed))[:5], sorted(set(disposed) - set(written))[:5])
assert max(disposed.values()) == 1, [u for u, n in disposed.items() if n > 1][:5]
assert max(written.values()) == 1
# The store still works normally afterwards.
write("after")
assert store.get("after")["sid"] == "after"
print("ok", sum(disposed.values()), dict(reasons), dict(fired))
"""

REASONS = ["expire_prune", "expire_get", "evict", "delete_destroy", "delete_clear", "set_overwrite"]
ACTIONS = [
    "set_same",
    "set_other",
    "add_same",
    "add_other",
    "touch_same",
    "touch_other",
    "get_same",
    "get_other",
    "destroy_same",
    "destroy_other",
    "clear",
    "prune",
]


def run_case(module: str, action: str, reason: str, timeout: float = 30) -> str:
    """Run one matrix case in a fresh interpreter; fail on crash, hang or assertion."""
    try:
        proc = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-X", "dev", "-c", CHILD, module, action, reason],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout}s (deadlock or endless re-entry)\nstderr:\n{exc.stderr!r}")
    assert "Fatal Python error" not in proc.stderr, proc.stderr
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.startswith("ok "), proc.stdout
    return proc.stdout


@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize("action", ACTIONS)
def test_dispose_reentering_the_store(lru_impl: ModuleType, action: str, reason: str) -> None:
    run_case(lru_impl.__name__, action, reason)


def test_child_fails_when_a_value_is_disposed_twice(lru_impl: ModuleType) -> None:
    """The harness can fail: a dispose that double-counts must be caught by the child."""
    broken = CHILD.replace('disposed[session["uid"]] += 1', 'disposed[session["uid"]] += 2')
    assert broken != CHILD
    proc = subprocess.run(
        [sys.executable, "-c", broken, lru_impl.__name__, "prune", "evict"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1 and "AssertionError" in proc.stderr
