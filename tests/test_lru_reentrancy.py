"""Hostile user code, threads and memory, for both cores (issue #6, core side).

Each case runs in its own interpreter (``-X faulthandler``) so that a crash is
a test failure instead of the end of the run: the case fails on a signal, a
timeout or "Fatal Python error", and the child asserts everything else itself.

- keys whose ``__hash__``/``__eq__`` re-enter the cache: RuntimeError is
  acceptable, a crash or a failed ``check_invariants()`` is not;
- values whose ``__del__`` re-enters the cache or runs ``gc.collect()`` on
  every way out (overwrite, evict, expire, clear, pop...): removed values are
  released only after the operation finished, so re-entry must simply work;
- 8 threads of mixed operations with a 1 µs switch interval;
- memory: churn leaves nothing behind, and ``clear()`` gives a 200k-entry
  cache's memory back (tracemalloc sees PyMem allocations, which both cores use).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow

PRELUDE = """
import gc, importlib, math, random, sys, threading
core = importlib.import_module({module!r})
LRUCache = core.LRUCache


class Clock:
    def __init__(self):
        self.time = 1000.0

    def __call__(self):
        return self.time


def consistent(cache):
    # check_invariants(), plus: every value belongs to its key, and the views agree.
    cache.check_invariants()
    items = cache.items()
    assert len(items) == len(cache) == len(cache.keys()), (len(items), len(cache))
    for key, value in items:
        assert value[0] == getattr(key, "n", key), (key, value)
    if cache.maxsize is not None:
        assert cache.currsize <= cache.maxsize
"""


def run_isolated(module: str, body: str, timeout: float = 60) -> str:
    """Run ``body`` in a fresh interpreter with the core ``module`` imported; return its stdout."""
    code = PRELUDE.format(module=module) + textwrap.dedent(body)
    try:
        proc = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout}s (hang or endless loop)\nstderr:\n{exc.stderr!r}")
    assert "Fatal Python error" not in proc.stderr, proc.stderr
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


# -- keys that re-enter the cache ---------------------------------------------------------

KEY_ACTIONS = {
    "get": "cache.get(ReKey(rng.randrange(8)))",
    "set": "cache.set(ReKey(rng.randrange(8)), (None, -1))",
    "clear": "cache.clear()",
    "len": "len(cache)",
    "pop": "cache.pop(rng.randrange(8), None)",
    "contains": "rng.randrange(8) in cache",
    "expire": "cache.expire()",
    "touch": "cache.touch(ReKey(rng.randrange(8)))",
    "items": "cache.items()",
}

KEY_BODY = """
ACTION = {action!r}
rng = random.Random(1234)
clock = Clock()
armed = {{"mode": None, "swallow": False}}
depth = [0]
stats = {{"reentered": 0, "runtime_errors": 0, "ok": 0}}


def reenter():
    # The action, run from a key's __hash__ or __eq__ (never recursively).
    if depth[0]:
        return
    depth[0] += 1
    stats["reentered"] += 1
    try:
        {code}
    except RuntimeError:
        stats["runtime_errors"] += 1
        if not armed["swallow"]:
            raise
    finally:
        depth[0] -= 1


class ReKey:
    # Few hash values, so lookups compare keys with __eq__.
    def __init__(self, n):
        self.n = n

    def __hash__(self):
        if armed["mode"] == "hash" and rng.random() < 0.5:
            reenter()
        return self.n % 3

    def __eq__(self, other):
        if armed["mode"] == "eq" and rng.random() < 0.5:
            reenter()
        return isinstance(other, ReKey) and other.n == self.n

    def __repr__(self):
        return f"ReKey({{self.n}})"


def value_for(key, i):
    return (getattr(key, "n", key), i)


for mode in ("hash", "eq"):
    for swallow in (False, True):
        cache = LRUCache(6, ttl=5, timer=clock)
        for i in range(400):
            armed["mode"] = None
            key = ReKey(rng.randrange(8)) if rng.random() < 0.8 else rng.randrange(8)
            op = rng.randrange(10)
            armed["mode"], armed["swallow"] = mode, swallow
            try:
                if op == 0:
                    cache.set(key, value_for(key, i), ttl=rng.choice([None, 1, 3, 0]))
                elif op == 1:
                    for k, v, reason in cache.put(key, value_for(key, i)):
                        assert v[0] == getattr(k, "n", k) or v == (None, -1), (k, v)
                elif op == 2:
                    v = cache.get(key)
                    assert v is None or v == (None, -1) or v[0] == getattr(key, "n", key), (key, v)
                elif op == 3:
                    cache.pop(key, None)
                elif op == 4:
                    key in cache
                elif op == 5:
                    cache.touch(key, ttl=rng.choice([None, 2]))
                elif op == 6:
                    cache.peek(key)
                elif op == 7:
                    cache.expire()
                elif op == 8:
                    cache.pop_expired(key)
                else:
                    clock.time += rng.choice([0.5, 1, 2])
                stats["ok"] += 1
            except RuntimeError:
                stats["runtime_errors"] += 1
            finally:
                armed["mode"] = None
            cache.check_invariants()
            assert len(cache) <= 6 and cache.currsize <= 6
            for k, v in cache.items():
                assert v == (None, -1) or v[0] == getattr(k, "n", k), (k, v)
        cache.clear()
        cache.check_invariants()
        assert len(cache) == 0
assert stats["reentered"] > 50, stats
print(stats)
"""


@pytest.mark.parametrize("action", sorted(KEY_ACTIONS))
def test_key_reentering_the_cache(lru_impl: ModuleType, action: str) -> None:
    out = run_isolated(lru_impl.__name__, KEY_BODY.format(action=action, code=KEY_ACTIONS[action]))
    assert "reentered" in out


RAISING_EQ_BODY = """
import itertools

calls = [0]
fail_on = set()


class K:
    # Every K collides, so lookups compare keys; __eq__ raises on chosen calls.
    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return 0

    def __eq__(self, other):
        calls[0] += 1
        if calls[0] in fail_on:
            raise ValueError("eq failed")
        return isinstance(other, K) and other.n == self.n

    def __repr__(self):
        return f"K({{self.n}})"


OPS = {{
    "set-new": lambda c: c.set(K(9), (9, 1)),
    "set-old": lambda c: c.set(K(1), (1, 1)),
    "put-evict": lambda c: list(c.put(K(9), (9, 1), size=3)),
    "get": lambda c: c.get(K(2)),
    "pop": lambda c: c.pop(K(2), None),
    "touch": lambda c: c.touch(K(2)),
    "contains": lambda c: K(1) in c,
    "expire": lambda c: c.expire(),
    "ttl0": lambda c: c.set(K(2), (2, 1), ttl=0),
}}
clock = Clock()
patterns = [set(p) for n in (1, 2, 3) for p in itertools.combinations(range(1, 9), n)]
for name, op in OPS.items():
    for pattern in patterns:
        fail_on = set()
        cache = LRUCache(4, ttl=10, timer=clock)
        for n in range(4):
            cache.set(K(n), (n, 0), ttl=5 if n == 3 else None)
        clock.time += 5 if name == "expire" else 0
        calls[0], fail_on = 0, pattern
        try:
            op(cache)
        except ValueError:
            pass
        fail_on = set()
        try:
            consistent(cache)
            # Still fully usable, and every key reachable.
            for key in cache.keys():
                assert cache.get(key)[0] == key.n, key
            cache.set(K(7), (7, 0))
            assert cache[K(7)] == (7, 0)
            consistent(cache)
        except BaseException:
            print("after", name, "with __eq__ raising on calls", sorted(pattern), file=sys.stderr)
            raise
        clock.time = 1000.0
print("eq patterns ok")
"""


def test_key_eq_raising_leaves_a_consistent_cache(lru_impl: ModuleType) -> None:
    """__eq__ raising on any 1-3 of the first 8 comparisons of an operation: an exception, never corruption."""
    out = run_isolated(lru_impl.__name__, RAISING_EQ_BODY.format())
    assert "eq patterns ok" in out


# -- values whose __del__ re-enters the cache -----------------------------------------------

VALUE_ACTIONS = {
    "set": "cache.set(('from-del', self.n % 3), ('from-del', self.n % 3))",
    "get": "cache.get(('from-del', 0)); cache.get(0)",
    "clear": "cache.clear()",
    "gc": "gc.collect()",
    "len-items": "len(cache); cache.items(); cache.expire()",
}

REMOVALS = {
    "overwrite": "cache.set(0, Del(0)); cache.set(0, (0, 1))",
    "overwrite-put": "cache.set(0, Del(0)); list(cache.put(0, (0, 1)))",
    "evict": "cache.set(100, Del(100)); [cache.set(k, (k, 0)) for k in range(1, 6)]",
    "expire": "cache.set(0, Del(0), ttl=1); clock.time += 1; cache.expire()",
    "expired-by-room": "cache.set(0, Del(0), ttl=1); clock.time += 1; [cache.set(k, (k, 0)) for k in range(1, 6)]",
    "clear": "cache.set(0, Del(0)); cache.set(1, Del(1)); cache.clear()",
    "pop": "cache.set(0, Del(0)); cache.pop(0)",
    "del": "cache.set(0, Del(0)); del cache[0]",
    "ttl0": "cache.set(0, Del(0)); cache.set(0, (0, 1), ttl=0)",
    "oversize": "cache.set(0, Del(0)); cache.put(0, (0, 1), size=99)",
    "pop_expired": "cache.set(0, Del(0), ttl=1); clock.time += 1; cache.pop_expired(0)",
}

VALUE_BODY = """
clock = Clock()
cache = LRUCache(4, ttl=50, timer=clock)
errors = []
calls = [0]
cyclic = [False]


class Del:
    # A value whose finalizer re-enters the cache; in odd rounds it also sits in a
    # reference cycle, so only the garbage collector finalizes it.
    def __init__(self, n):
        self.n = n
        if cyclic[0]:
            self.cycle = self

    def __getitem__(self, i):
        return (self.n, 0)[i]

    def __del__(self):
        calls[0] += 1
        try:
            {code}
        except BaseException as exc:
            errors.append(repr(exc))


for round in range(30):
    cyclic[0] = bool(round % 2)
    {removal}
    gc.collect()
    consistent_items = [(k, v) for k, v in cache.items() if not (isinstance(k, tuple) and k[0] == "from-del")]
    cache.check_invariants()
    for k, v in consistent_items:
        assert v[0] == k, (k, v)
    assert len(cache) <= 4 and cache.currsize <= 4
    cache.clear()
    gc.collect()
    cache.check_invariants()
    assert not errors, errors  # __del__ ran after the operation was over: re-entry works

assert calls[0] >= 30, calls
print("finalizers", calls[0])
"""


@pytest.mark.parametrize("removal", sorted(REMOVALS))
@pytest.mark.parametrize("action", sorted(VALUE_ACTIONS))
def test_value_finalizer_reentering_the_cache(lru_impl: ModuleType, action: str, removal: str) -> None:
    out = run_isolated(lru_impl.__name__, VALUE_BODY.format(code=VALUE_ACTIONS[action], removal=REMOVALS[removal]))
    assert "finalizers" in out


HOSTILE_CASES = {
    "mutate-while-iterating": """
cache = LRUCache(10, ttl=5, timer=Clock())
for round in range(20):
    for i in range(10):
        cache[i] = (i, round)
    try:
        for k in cache:
            cache.pop(k, None)
            cache[k + 100] = (k + 100, round)
    except RuntimeError:
        pass
    consistent(cache)
    it = iter(cache)
    cache.clear()
    list(it)
    for i in range(5):
        cache[i] = (i, round)
    for k in cache.keys():
        cache.clear()
        cache[k] = (k, round)
    consistent(cache)
    for k, v, left in cache.entries():
        cache.pop(k, None)
    consistent(cache)
""",
    "unstable-hash": """
counter = [0]


class Unstable:
    # A different hash on every call: lookups miss, nothing may break.
    def __init__(self, n):
        self.n = n

    def __hash__(self):
        counter[0] += 1
        return counter[0] % 7

    def __eq__(self, other):
        return isinstance(other, Unstable) and other.n == self.n


rng = random.Random(7)
clock = Clock()
cache = LRUCache(6, ttl=3, timer=clock)
keys = [Unstable(n) for n in range(10)]
errors = 0
for i in range(3000):
    key = rng.choice(keys) if rng.random() < 0.7 else rng.randrange(10)
    op = rng.randrange(7)
    try:  # a misbehaving key may get an exception...
        if op == 0:
            cache.set(key, (getattr(key, "n", key), i))
        elif op == 1:
            v = cache.get(key)
            assert v is None or v[0] == getattr(key, "n", key)
        elif op == 2:
            cache.pop(key, None)
        elif op == 3:
            cache.touch(key)
        elif op == 4:
            cache.expire()
        elif op == 5:
            clock.time += 1
        else:
            cache.pop_expired(key)
    except (KeyError, RuntimeError):
        errors += 1
    consistent(cache)  # ...but the cache stays consistent
    cache.entries()
cache.clear()
consistent(cache)
for n in range(6):  # and fully usable once the bad keys are gone
    cache.set(n, (n, 0))
assert cache.keys() == [5, 4, 3, 2, 1, 0]
consistent(cache)
print("errors", errors)
""",
    "eq-result-bool-raises": """
class Bad:
    def __bool__(self):
        raise ValueError("no truth")


class K:
    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return 1

    def __eq__(self, other):
        return Bad()


cache = LRUCache(4, ttl=5, timer=Clock())
cache[K(0)] = (0, 0)
for i in range(1, 50):
    for op in (lambda: cache.set(K(i), (i, 0)), lambda: cache.get(K(i)), lambda: cache.pop(K(i), None),
               lambda: K(i) in cache, lambda: cache.touch(K(i)), lambda: cache.put(K(i), (i, 1), size=4)):
        try:
            op()
        except ValueError:
            pass
        consistent(cache)
    cache[f"s{i}"] = (f"s{i}", 0)
    consistent(cache)
""",
    "timer-reenters": """
rng = random.Random(3)
depth = [0]
stats = {"reentered": 0}


class ReClock(Clock):
    def __call__(self):
        if not depth[0] and rng.random() < 0.3:
            depth[0] += 1
            stats["reentered"] += 1
            try:
                rng.choice([lambda: cache.get(1), lambda: cache.set(rng.randrange(8), (None, -1)), cache.clear,
                            lambda: len(cache), cache.expire, lambda: cache.pop(rng.randrange(8), None)])()
            except RuntimeError:
                pass
            finally:
                depth[0] -= 1
        return self.time


clock = ReClock()
cache = LRUCache(5, ttl=2, timer=clock)
for i in range(3000):
    key = rng.randrange(8)
    op = rng.randrange(8)
    try:
        if op == 0:
            cache.set(key, (key, i), ttl=rng.choice([None, 1, 0]))
        elif op == 1:
            list(cache.put(key, (key, i), size=rng.choice([1, 2])))
        elif op == 2:
            cache.get(key)
        elif op == 3:
            cache.touch(key)
        elif op == 4:
            cache.expire()
        elif op == 5:
            cache.pop(key, None)
        elif op == 6:
            cache.pop_expired(key)
            cache.entries()
        else:
            clock.time += 0.5
    except RuntimeError:
        pass
    depth[0] += 1
    try:
        cache.check_invariants()
        for k, v in cache.items():
            assert v == (None, -1) or v[0] == k, (k, v)
        assert cache.currsize <= 5
    finally:
        depth[0] -= 1
assert stats["reentered"] > 100, stats
""",
    "getsizeof-reenters": """
rng = random.Random(5)
depth = [0]


def getsizeof(value):
    if not depth[0] and rng.random() < 0.5:
        depth[0] += 1
        try:
            rng.choice([cache.clear, lambda: cache.set(rng.randrange(8), (None, -1)), lambda: cache.pop(rng.randrange(8), None),
                        cache.expire, lambda: cache.get(rng.randrange(8))])()
        except RuntimeError:
            pass
        finally:
            depth[0] -= 1
    return rng.choice([0, 1, 2, 3])


clock = Clock()
cache = LRUCache(6, ttl=2, getsizeof=getsizeof, timer=clock)
for i in range(3000):
    key = rng.randrange(8)
    try:
        if rng.random() < 0.7:
            cache.set(key, (key, i))
        else:
            list(cache.put(key, (key, i)))
    except RuntimeError:
        pass
    if i % 10 == 0:
        clock.time += 0.5
    cache.check_invariants()
    for k, v in cache.items():
        assert v == (None, -1) or v[0] == k, (k, v)
    assert cache.currsize <= 6
""",
    "gc-cycles-and-finalizers": """
import weakref
survivors = []
log = []


class Value:
    def __init__(self, cache, n, resurrect):
        self.cache = cache  # the cycle: cache -> value -> cache
        self.n = n
        self.resurrect = resurrect

    def __getitem__(self, i):
        return (self.n, 0)[i]

    def __del__(self):
        try:
            self.cache.get(self.n)
            self.cache.set(("del", self.n), ("del", self.n))
            len(self.cache)
            self.cache.expire()
            if self.resurrect:
                survivors.append(self.cache)
            log.append("ok")
        except RuntimeError as exc:
            log.append(repr(exc))


refs = []
for round in range(60):
    clock = Clock()
    cache = LRUCache(8, ttl=3, timer=clock)
    for n in range(6):
        value = Value(cache, n, resurrect=(round % 3 == 0 and n == 2))
        cache.set(n, value, ttl=1 + n % 3)
        refs.append(weakref.ref(value))
    clock.time += round % 4
    del value, cache
    gc.collect()
    for cache in survivors:
        try:
            cache.check_invariants()
            cache.set("after", ("after", 0))
            cache.items()
            cache.clear()
        except RuntimeError:
            pass
    survivors.clear()
    gc.collect()
assert len(log) > 100, len(log)
assert all(ref() is None for ref in refs), "a value outlived its cache"
""",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CASES))
def test_hostile_user_code(lru_impl: ModuleType, case: str) -> None:
    """Iteration under mutation, unstable hashes, raising comparisons, re-entrant timer and getsizeof, gc cycles."""
    out = run_isolated(lru_impl.__name__, HOSTILE_CASES[case] + "\nprint('hostile ok')\n")
    assert "hostile ok" in out


# -- threads ----------------------------------------------------------------------------------

THREADS_BODY = """
sys.setswitchinterval(1e-6)
clock = Clock()
cache = LRUCache(50, ttl=2, timer=clock)
N_THREADS, OPS = 8, 4000
failures = []
barrier = threading.Barrier(N_THREADS)


class PyKey:
    # A key with Python-level __hash__/__eq__ (few hash values, so __eq__ runs
    # on most lookups): the interpreter may switch threads inside them.
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return self.n % 5

    def __eq__(self, other):
        return isinstance(other, PyKey) and other.n == self.n


make_key = PyKey if {python_keys!r} else int


def ident(key):
    return getattr(key, "n", key)


def worker(seed):
    rng = random.Random(seed)
    try:
        barrier.wait()
        for i in range(OPS):
            n = rng.randrange(80)
            key = make_key(n)
            op = rng.randrange(16)
            if op < 4:
                cache.set(key, (n, i), ttl=rng.choice([None, 0.5, 1, 5, math.inf]))
            elif op < 7:
                v = cache.get(key)
                assert v is None or v[0] == n, (n, v)
            elif op == 7:
                v = cache.peek(key)
                assert v is None or v[0] == n, (n, v)
            elif op == 8:
                v = cache.pop(key, None)
                assert v is None or v[0] == n, (n, v)
            elif op == 9:
                for k, v, reason in cache.put(key, (n, i), size=rng.choice([1, 2, 5])):
                    assert v[0] == ident(k) and reason in ("set", "expire", "evict"), (k, v, reason)
            elif op == 10:
                cache.touch(key, ttl=rng.choice([None, 1, 3]))
            elif op == 11:
                for k, v in cache.expire():
                    assert v[0] == ident(k), (k, v)
            elif op == 12:
                for k, v in cache.items():
                    assert v[0] == ident(k), (k, v)
                for k, v, left in cache.entries():
                    assert v[0] == ident(k) and left > 0, (k, v, left)
            elif op == 13:
                v = cache.pop_expired(key)
                assert v is None or v[0] == n, (n, v)
                cache.remaining(key)
            elif op == 14:
                clock.time += 0.25
                assert len(cache) <= 50
            else:
                if rng.random() < 0.05:
                    cache.clear()
                else:
                    key in cache
                    list(cache)
    except BaseException as exc:
        import traceback
        failures.append(traceback.format_exc())


threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(N_THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join(50)
assert not any(t.is_alive() for t in threads), "a worker hung"
assert not failures, ("%d of %d workers failed; the first:" % (len(failures), N_THREADS), failures[0])
consistent(cache)
assert len(cache) <= 50
print("threads ok", len(cache), cache.currsize)
"""


@pytest.mark.parametrize("python_keys", [False, True], ids=["int-keys", "python-eq-keys"])
def test_threads_mixed_operations(lru_impl: ModuleType, python_keys: bool) -> None:
    """Single operations are atomic: no thread sees an error, a foreign value or a broken cache.

    With Python-level ``__eq__`` the interpreter switches threads in the middle
    of an operation; the other threads must wait, not get RuntimeError (that is
    for re-entry from the same operation).
    """
    out = run_isolated(lru_impl.__name__, THREADS_BODY.format(python_keys=python_keys))
    assert "threads ok" in out


# -- memory -----------------------------------------------------------------------------------

CHURN_BODY = """
import tracemalloc
clock = Clock()
cache = LRUCache(1000, ttl=100, timer=clock)


def churn(start, stop):
    for i in range(start, stop):
        key = "key-%d" % (i % 5000)
        cache.set(key, (key, i), ttl=50 + i % 13)
        cache.get(key)
        if i % 7 == 0:
            cache.touch(key, ttl=60)
        del cache[key]
        if i % 97 == 0:
            cache.set(i, (i, i), ttl=1)
            clock.time += 0.5
            cache.expire()


churn(0, 20_000)  # warm up caches and free lists
cache.clear()
gc.collect()
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
churn(20_000, 70_000)
cache.clear()
gc.collect()
grown = tracemalloc.get_traced_memory()[0] - base
tracemalloc.stop()
cache.check_invariants()
assert grown < 8 * 1024, f"50k set/get/delete cycles left {grown} bytes behind"
print("churn grew", grown)
"""

FILL_BODY = """
import tracemalloc
clock = Clock()
cache = LRUCache(None, ttl={ttl}, timer=clock)
for i in range(1000):
    cache[i] = i
cache.clear()
gc.collect()
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
for i in range(200_000):
    cache[i * 7919] = i * 31
cache.touch(7919, ttl=5)
full = tracemalloc.get_traced_memory()[0] - base
cache.clear()
gc.collect()
left = tracemalloc.get_traced_memory()[0] - base
tracemalloc.stop()
cache.check_invariants()
assert full > 200_000 * 8, f"the fill only traced {{full}} bytes: tracemalloc does not see the core's memory"
assert left <= 0.05 * full, f"clear() kept {{left}} of {{full}} bytes"
for i in range(10):
    cache[i] = i
cache.check_invariants()
assert len(cache) == 10
print("fill", full, "left", left)
"""


def test_churn_leaves_no_memory_behind(lru_impl: ModuleType) -> None:
    out = run_isolated(lru_impl.__name__, CHURN_BODY)
    assert "churn grew" in out


@pytest.mark.parametrize("ttl", ["None", "300"], ids=["no-ttl", "ttl"])
def test_clear_gives_memory_back(lru_impl: ModuleType, ttl: str) -> None:
    out = run_isolated(lru_impl.__name__, FILL_BODY.format(ttl=ttl))
    assert "fill" in out


# -- memory running out inside expire() ----------------------------------------------------

EXPIRE_NOMEMORY_BODY = """
import _testcapi

interrupted = handed_back_later = 0
for start in range(0, 400, 7):
    clock = Clock()
    cache = LRUCache(None, timer=clock)
    rng = random.Random(start)
    deadlines = {}
    for n in range(300):                    # each its own lifetime: the compiled core's heap
        ttl = rng.uniform(1.0, 100.0)
        cache.set(n, (n,), ttl=ttl)
        deadlines[n] = clock.time + ttl
    clock.time += 1000.0 if start % 2 else 15.0      # all expired (the heap scanned), or a few (its top)
    now = clock.time
    _testcapi.set_nomemory(start, 0)        # the start-th allocation from here on fails, and every later one
    try:
        got = cache.expire()
    except MemoryError:
        got = None
    finally:
        _testcapi.remove_mem_hooks()
    consistent(cache)
    rest = cache.expire()
    due = sorted((deadline, key) for key, deadline in deadlines.items() if deadline <= now)
    if got is None:                         # what was handed back is lost with the error; the rest stays filed
        interrupted += 1
        handed_back_later += bool(rest)
        assert [key for key, _ in rest] == sorted((key for key, _ in rest), key=deadlines.__getitem__), rest
        assert {key for key, _ in rest} <= {key for _, key in due}, rest
    else:
        assert [key for key, _ in got] == [key for _, key in due] and rest == [], (len(got), len(rest))
    assert len(cache) == 300 - len(due) and cache.expire() == [], len(cache)
    assert sorted(cache.keys()) == sorted(key for key, deadline in deadlines.items() if deadline > now)
    consistent(cache)
assert interrupted and handed_back_later, (interrupted, handed_back_later)
print("interrupted", interrupted, "handed back later", handed_back_later)
"""


@pytest.mark.c_extension
@pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="free-threaded CPython 3.13's PyList_New crashes when its item array cannot be allocated (it frees "
    "the list with ob_item unset, Objects/listobject.c), and an allocation failing at each point in turn gets there",
)
def test_memory_error_inside_expire_leaves_the_rest_filed() -> None:
    """The compiled core's expire() interrupted by MemoryError at each allocation in turn: the cache stays
    consistent, and every expired entry it still holds is still filed (a later expire() hands it back).
    Only the compiled core: it allocates at known points; in the pure core any bytecode may."""
    pytest.importorskip("_testcapi", reason="CPython's _testcapi (set_nomemory) is not installed")
    out = run_isolated("memorystore._lru", EXPIRE_NOMEMORY_BODY)
    assert "interrupted" in out
