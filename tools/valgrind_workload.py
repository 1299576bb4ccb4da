"""A representative workload for the cache core, meant to run under valgrind memcheck.

``tools/valgrind.sh`` runs it under valgrind with ``PYTHONMALLOC=malloc``;
``tests/test_valgrind_script.py`` runs it natively so it cannot rot.  It
touches every structural path of the core: fill, eviction by count and by
size, expiry with a fake timer (``expire``, ``pop_expired``, lazy
invisibility), overwrite, ``ttl <= 0``, ``pop``/``del``, ``clear``,
shrink/grow cycles of the arrays, values whose finalizers re-enter the
cache, keys whose ``__eq__`` raises or re-enters, a few threads, and the
MemoryStore on top with a re-entrant ``dispose``.  It checks the invariants
after every phase and exits 0 when everything behaved.

Usage: ``python tools/valgrind_workload.py [--core memorystore._lru] [--scale N]``
(``--core memorystore._lru_py`` runs the pure twin).  The default scale
keeps it to a minute or two under valgrind.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import sys
import threading
from typing import Any


class Clock:
    """A fake monotonic clock."""

    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time


class Key:
    """A key with a Python-level hash and equality, few distinct hashes (so ``__eq__`` runs)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return self.n % 7

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.n == self.n


class RaisingKey(Key):
    """Compares by raising: every lookup that meets a same-hash key fails."""

    __slots__ = ()
    __hash__ = Key.__hash__

    def __eq__(self, other: object) -> bool:
        raise ArithmeticError("no comparisons")


def phase(name: str) -> None:
    print(f"-- {name}", flush=True)


def consistent(cache: Any) -> None:
    cache.check_invariants()
    items = cache.items()
    assert len(items) == len(cache) == len(cache.keys()) == len(cache.values())
    for key, value in items:
        assert value[0] == getattr(key, "n", key), (key, value)
    if cache.maxsize is not None:
        assert cache.currsize <= cache.maxsize


def run(core: Any, scale: int) -> None:
    LRUCache = core.LRUCache
    n = 400 * scale
    clock = Clock()

    phase("fill and evict by count")
    cache = LRUCache(n, timer=clock)
    for i in range(3 * n):
        removed = cache.put(i, (i, "v"))
        assert len(removed) == (1 if i >= n else 0)
        if i % 3 == 0:
            cache.get(i // 2)
    consistent(cache)

    phase("evict by size")
    sized = LRUCache(10 * n, getsizeof=lambda v: v[1], timer=clock)
    for i in range(2 * n):
        sized.put(i, (i, i % 37))
        if i % 11 == 0:
            sized.put(i, (i, 10 * n + 1))  # oversize: not stored, old entry removed
    consistent(sized)

    phase("expire with a fake timer")
    cache = LRUCache(n, ttl=5, timer=clock)
    for i in range(n):
        cache.set(i, (i, 0), ttl=[1, 2, 5, math.inf][i % 4])
    clock.time += 1.5
    assert all(cache.get(i) is None for i in range(0, n, 4))
    assert len(cache.expire()) == n // 4
    clock.time += 1
    for i in range(1, n, 4):
        assert cache.pop_expired(i) == (i, 0)
    clock.time += 10
    cache.touch(3, ttl=1)
    cache.remaining(3)
    cache.entries()
    consistent(cache)
    assert len(cache) == n // 4  # only the never-expiring entries are left

    phase("overwrite, ttl <= 0, pop, del, clear")
    cache = LRUCache(n, ttl=60, timer=clock)
    for i in range(5 * n):
        cache.set(i % 50, (i % 50, i))
        if i % 7 == 0:
            cache.set(i % 50, (i % 50, i), ttl=0)
        if i % 13 == 0:
            cache.pop(i % 50, None)
        if i % 17 == 0 and (i % 50) in cache:
            del cache[i % 50]
        if i % 997 == 0:
            cache.clear()
    consistent(cache)

    phase("shrink and grow cycles")
    cache = LRUCache(timer=clock)
    for cycle in range(6):
        for i in range(4 * n):
            cache[i] = (i, cycle)
        for i in range(4 * n - 5):
            del cache[i]
        consistent(cache)
        for i in range(2 * n):
            cache.set(i, (i, cycle), ttl=1 + i % 3)
        clock.time += 2
        cache.expire()
        consistent(cache)
        cache.clear()
        cache.set(0, (0, cycle))

    phase("re-entrant finalizers")
    cache = LRUCache(20, ttl=3, timer=clock)
    budget = [5000]

    class Reenter:
        """A value whose finalizer writes to, reads from and sometimes clears the cache."""

        def __init__(self, n: int) -> None:
            self.n = n

        def __getitem__(self, index: int) -> int:
            return self.n

        def __del__(self) -> None:
            if budget[0] <= 0:
                return
            budget[0] -= 1
            cache.set(self.n + 1000, (self.n + 1000, 0))
            cache.get(self.n)
            if self.n % 29 == 0:
                cache.clear()
            if self.n % 31 == 0:
                gc.collect()

    for i in range(10 * scale * 20):
        cache.set(i % 40, Reenter(i % 40))  # overwrite and evict
        if i % 9 == 0:
            cache.pop((i + 3) % 40, None)
        if i % 23 == 0:
            clock.time += 4
            cache.expire()
    budget[0] = 0
    cache.clear()
    consistent(cache)

    phase("keys whose __eq__ raises or re-enters")
    cache = LRUCache(30, timer=clock)
    for i in range(60):
        cache[Key(i)] = (i, 0)
    for i in range(300 * scale):
        bad = RaisingKey(i % 90)
        for call in (
            lambda: cache.get(bad),
            lambda: cache.put(bad, (bad.n, 1)),
            lambda: cache.pop(bad, None),
            lambda: bad in cache,
        ):
            try:
                call()
            except ArithmeticError:
                pass
    consistent(cache)

    class ReKey(Key):
        __slots__ = ()
        __hash__ = Key.__hash__

        def __eq__(self, other: object) -> bool:
            try:
                cache.clear()
            except RuntimeError:
                pass
            return isinstance(other, Key) and other.n == self.n

    for i in range(200 * scale):
        try:
            cache.set(ReKey(i % 40), (i % 40, 2))
            cache.get(ReKey((i + 1) % 40))
        except RuntimeError:
            pass
        cache[Key(i % 40)] = (i % 40, 3)
    consistent(cache)
    for bad_call in (
        lambda: cache.put([1], (1, 0)),
        lambda: cache.put(1, (1, 0), ttl=math.nan),
        lambda: cache.put(1, (1, 0), ttl="1"),
        lambda: cache.put(1, (1, 0), size=-1),
        lambda: cache.put(1, (1, 0), ttl=10**400),
    ):
        try:
            bad_call()
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError("a bad call did not raise")
    consistent(cache)

    phase("threads")
    cache = LRUCache(64, ttl=2, timer=clock)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for i in range(300 * scale):
                k = (seed * 31 + i * 7) % 100
                op = (i + seed) % 6
                if op == 0:
                    cache.set(k, (k, i))
                elif op == 1:
                    v = cache.get(k)
                    assert v is None or v[0] == k
                elif op == 2:
                    cache.pop(k, None)
                elif op == 3:
                    cache.touch(k)
                elif op == 4:
                    for key, value in cache.expire():
                        assert value[0] == key
                else:
                    cache.put(k, (k, i))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    consistent(cache)

    phase("store with a re-entrant dispose")
    from memorystore.store import MemoryStore

    store_cls = type("Store", (MemoryStore,), {"_core_class": LRUCache})
    log: list[str] = []

    def dispose(sid: str, session: Any, reason: str) -> None:
        assert session["sid"] == sid
        log.append(reason)
        if reason == "evict" and len(log) % 5 == 0:
            store.set("re-" + sid, {"sid": "re-" + sid})
        elif reason == "delete" and len(log) % 7 == 0:
            store.clear()

    store = store_cls(max=50, ttl=10, dispose=dispose, timer=clock)
    for i in range(200 * scale):
        sid = f"s{i % 120}"
        store.set(sid, {"sid": sid, "i": i})
        store.get(f"s{(i * 7) % 120}")
        if i % 5 == 0:
            store.destroy(f"s{(i * 3) % 120}")
        if i % 50 == 0:
            clock.time += 11
            store.prune()
        store.check_invariants()
    store.clear()
    store.check_invariants()
    assert len(store) == 0 and log

    del cache, sized, store
    gc.collect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", default="memorystore._lru", help="core module (default: the compiled core)")
    parser.add_argument("--scale", type=int, default=1, help="workload multiplier (default 1)")
    args = parser.parse_args(argv)
    try:
        core = importlib.import_module(args.core)
    except ImportError as exc:
        print(f"cannot import {args.core}: {exc}", file=sys.stderr)
        return 2
    print(f"core: {args.core} ({getattr(core, '__file__', '?')})", flush=True)
    run(core, max(1, args.scale))
    print("workload ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
