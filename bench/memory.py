"""Memory per entry of memorystore and its peers, and how much comes back.

Usage::

    python bench/memory.py                      # every installed implementation, 1M entries
    python bench/memory.py --n 100000 --only memorystore-c,lru-dict --json out.json
    python bench/memory.py --no-soak            # skip the churn soak

Each figure comes from a FRESH CHILD PROCESS that does what a plain script
does (nothing one measurement allocates can flatter the next), read twice:
once from RSS (``/proc/self/statm``), once under ``tracemalloc`` (which would
distort RSS if both ran together).  RSS is what a user's process sees, so
nothing helps it: no ``malloc_trim``, and nothing large is made and freed
before the baseline: freeing a block glibc had mapped on its own (> 128 KiB)
raises its mmap threshold to that block's size (up to 32 MiB), and from then
on arrays below it come from the heap, where a freed array stays resident
unless it sits at the top; the same cache gives back 100% or 58% after
``clear()`` depending on that history.
In each child:

1. the keys (random 37-char ``str``, fixed seed, made in one list comprehension)
   and the values (distinct ints) are created first and kept alive, so they are
   part of the baseline: what is measured is the implementation's own cost;
2. ``fill``: n entries stored; bytes/entry = (after - baseline) / n;
3. in one child ``clear()`` then ``gc.collect()``: the share of the growth given
   back; in another (TTL implementations) every entry expires and one prune
   removes them all (memorystore: ``purge()``, what ``MemoryStore.prune()``
   does without a dispose callback; a fake timer where the implementation
   accepts one, real time for cachebox, a "now" in the future for cachelib's
   ``_remove_expired``; Django's LocMemCache has no prune and is n/a).

tracemalloc sees only allocations made through Python's allocators: a Rust
(cachebox) or C++ peer that uses its own allocator shows up in RSS only.
cachelib and Django pickle every value (and Django prefixes every key), so
their figures include those per-entry copies: that is what they cost.

"fresh vs old": one ``expire()`` (and ``purge()``) removing 1% of 200k
entries, timed on a cache filled a moment ago and on one that has lived
through ``gc.collect()``: the (key, value) tuples ``expire()`` hands back
trigger young-generation collections, which traverse a cache that is still
young (its key and value lists included).

The churn soak runs a bounded ``MemoryStore`` (and the bare cores) through 10x
its size in new sessions with expiry (fake clock) and periodic prunes, and
samples RSS and traced memory after every "size" sessions: after the first
fill both should stay flat.

``--json FILE`` writes every figure.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

TTL = 100.0
SEED = 5


# --------------------------------------------------------------------------- measuring


def rss() -> int:
    """Resident set size in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Meter:
    """Reads either RSS or tracemalloc's traced size, after a full collection."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def start(self) -> None:
        if self.mode == "trace":
            tracemalloc.start()

    def __call__(self) -> int:
        gc.collect()
        if self.mode == "trace":
            return tracemalloc.get_traced_memory()[0]
        return rss()


class FakeTimer:
    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


# --------------------------------------------------------------------------- implementations


@dataclass
class Subject:
    """How to build, fill, clear and expire one implementation."""

    name: str
    module: str
    build: Callable[[int, FakeTimer], Any]
    fill: Callable[[Any, list[str], list[Any]], None]
    clear: Callable[[Any], None]
    expire_all: Callable[[Any, FakeTimer], None] | None = None  # None: no expiry/prune (n/a)
    own: bool = False


def _fill_mapping(cache: Any, keys: list[str], values: list[Any]) -> None:
    for key, value in zip(keys, values):
        cache[key] = value


def _fill_set(cache: Any, keys: list[str], values: list[Any]) -> None:
    set_ = cache.set
    for key, value in zip(keys, values):
        set_(key, value)


def _clear(cache: Any) -> None:
    cache.clear()


def _expire_fake(cache: Any, timer: FakeTimer) -> None:
    timer.advance(TTL + 1)
    if hasattr(cache, "purge"):  # memorystore: what MemoryStore.prune() does without a dispose callback
        cache.purge()
    else:
        cache.expire()


def _core(module: str, ttl: float | None) -> Callable[[int, FakeTimer], Any]:
    def build(n: int, timer: FakeTimer) -> Any:
        return __import__(module, fromlist=["LRUCache"]).LRUCache(maxsize=n, ttl=ttl, timer=timer)

    return build


def _store(n: int, timer: FakeTimer) -> Any:
    from memorystore import MemoryStore

    return MemoryStore(ttl=TTL, max=n, serializer=None, timer=timer)


def _store_expire(store: Any, timer: FakeTimer) -> None:
    timer.advance(TTL + 1)
    store.prune()


_REAL_TTL = [3600.0]  # cachebox takes no timer: its entries expire in real time


def _cachebox_build(cls: str) -> Callable[[int, FakeTimer], Any]:
    def build(n: int, timer: FakeTimer) -> Any:
        import cachebox

        _REAL_TTL[0] = 5.0 + n * 1e-5  # long enough to fill (even under tracemalloc) and measure first
        if cls == "LRUCache":
            return cachebox.LRUCache(n)
        if cls == "TTLCache":
            return cachebox.TTLCache(n, _REAL_TTL[0])
        return cachebox.VTTLCache(n)

    return build


def _fill_vttl(cache: Any, keys: list[str], values: list[Any]) -> None:
    insert, ttl = cache.insert, _REAL_TTL[0]
    for key, value in zip(keys, values):
        insert(key, value, ttl)


def _cachebox_expire(cache: Any, timer: FakeTimer) -> None:
    time.sleep(_REAL_TTL[0] + 0.05)  # a bounded real wait: cachebox has no injectable clock
    cache.expire()


def _cachetools_build(cls: str) -> Callable[[int, FakeTimer], Any]:
    def build(n: int, timer: FakeTimer) -> Any:
        import cachetools

        if cls == "LRUCache":
            return cachetools.LRUCache(n)
        if cls == "TTLCache":
            return cachetools.TTLCache(n, TTL, timer=timer)
        return cachetools.TLRUCache(n, lambda _k, _v, now: now + TTL, timer=timer)

    return build


def _cachelib_build(n: int, timer: FakeTimer) -> Any:
    import cachelib

    return cachelib.SimpleCache(threshold=n + 1, default_timeout=int(TTL))


def _cachelib_expire(cache: Any, timer: FakeTimer) -> None:
    cache._remove_expired(time.time() + 10 * TTL)


def _django_build(n: int, timer: FakeTimer) -> Any:
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_TZ=True)
    from django.core.cache.backends.locmem import LocMemCache

    return LocMemCache(
        "memorystore-memory", {"TIMEOUT": TTL, "OPTIONS": {"MAX_ENTRIES": n + 1, "CULL_FREQUENCY": n + 1}}
    )


def _lru_dict_build(n: int, timer: FakeTimer) -> Any:
    import lru

    return lru.LRU(n)


SUBJECTS: tuple[Subject, ...] = (
    Subject("dict", "builtins", lambda n, t: {}, _fill_mapping, _clear),
    Subject("lru_cache", "functools", lambda n, t: None, _fill_mapping, _clear),  # special-cased in the child
    Subject("memorystore-c", "memorystore._lru", _core("memorystore._lru", None), _fill_mapping, _clear, own=True),
    Subject(
        "memorystore-c-ttl",
        "memorystore._lru",
        _core("memorystore._lru", TTL),
        _fill_mapping,
        _clear,
        _expire_fake,
        own=True,
    ),
    Subject(
        "memorystore-py", "memorystore._lru_py", _core("memorystore._lru_py", None), _fill_mapping, _clear, own=True
    ),
    Subject(
        "memorystore-py-ttl",
        "memorystore._lru_py",
        _core("memorystore._lru_py", TTL),
        _fill_mapping,
        _clear,
        _expire_fake,
        own=True,
    ),
    Subject("MemoryStore", "memorystore.store", _store, _fill_set, _clear, _store_expire, own=True),
    Subject("lru-dict", "lru", _lru_dict_build, _fill_mapping, _clear),
    Subject("cachebox.LRUCache", "cachebox", _cachebox_build("LRUCache"), _fill_mapping, _clear),
    Subject("cachebox.TTLCache", "cachebox", _cachebox_build("TTLCache"), _fill_mapping, _clear, _cachebox_expire),
    Subject("cachebox.VTTLCache", "cachebox", _cachebox_build("VTTLCache"), _fill_vttl, _clear, _cachebox_expire),
    Subject("cachetools.LRUCache", "cachetools", _cachetools_build("LRUCache"), _fill_mapping, _clear),
    Subject("cachetools.TTLCache", "cachetools", _cachetools_build("TTLCache"), _fill_mapping, _clear, _expire_fake),
    Subject("cachetools.TLRUCache", "cachetools", _cachetools_build("TLRUCache"), _fill_mapping, _clear, _expire_fake),
    Subject("cachelib.SimpleCache", "cachelib", _cachelib_build, _fill_set, _clear, _cachelib_expire),
    Subject("django.LocMemCache", "django", _django_build, _fill_set, _clear),
)
SUBJECTS_BY_NAME = {subject.name: subject for subject in SUBJECTS}
SOAK_SUBJECTS = ("MemoryStore", "memorystore-c-ttl", "memorystore-py-ttl")


def _held(cache: Any) -> int:
    """Entries held (expired ones included) without triggering an expiry."""
    if hasattr(cache, "core"):  # MemoryStore
        return int(cache.core.currsize)
    if type(cache).__module__.startswith("memorystore"):
        return int(cache.currsize)
    if hasattr(cache, "_Cache__data"):  # cachetools: len() expires first
        return len(cache._Cache__data)
    if hasattr(cache, "_cache"):  # cachelib, Django
        return len(cache._cache)
    return len(cache)


# --------------------------------------------------------------------------- child: one implementation


def plain_keys(n: int, seed: int = SEED) -> list[str]:
    """n random 37-char keys, made the way a plain script makes them: nothing big made and freed.

    Not ``memorystore._bench.KeyPool``: it de-duplicates through a set that is
    freed when the pool goes, and freeing a block that large (32 MiB at 1M keys)
    raises glibc's mmap threshold for the rest of the process, so the arrays a
    cache allocates afterwards come from the heap instead of their own mappings,
    and what ``clear()`` gives back changes completely (memorystore: 58% in a
    plain script, 100% after such a free; lru-dict and cachebox: the reverse).
    Duplicates are not filtered (28 random bytes each): the caller checks the
    cache holds n entries.
    """
    rng = random.Random(seed)
    encode = base64.urlsafe_b64encode
    return [encode(rng.randbytes(28)).decode()[:37] for _ in range(n)]


def measure_entries(name: str, n: int, mode: str, scenario: str = "clear") -> dict[str, Any]:
    """In this (fresh) process: bytes/entry at n entries, then what ``scenario`` gives back.

    ``clear``: ``clear()``; ``prune``: every entry expires, then one prune (a
    separate process, so neither scenario inherits the other's heap).
    """
    subject = SUBJECTS_BY_NAME[name]
    keys = plain_keys(n)
    values = list(range(10**9, 10**9 + n))  # distinct objects, preallocated
    by_key = dict(zip(keys, values)) if name == "lru_cache" else None
    timer = FakeTimer()
    meter = Meter(mode)
    meter.start()

    if name == "lru_cache":
        import functools

        assert by_key is not None
        cache: Any = functools.lru_cache(maxsize=n)(by_key.__getitem__)

        def fill() -> None:
            for key in keys:
                cache(key)

        def clear() -> None:
            cache.cache_clear()
    else:
        cache = subject.build(n, timer)

        def fill() -> None:
            subject.fill(cache, keys, values)

        def clear() -> None:
            subject.clear(cache)

    base = meter()
    started = time.perf_counter()
    fill()
    fill_seconds = time.perf_counter() - started
    filled = meter()
    if name != "lru_cache":
        assert _held(cache) == n, f"{name}: holds {_held(cache)} of {n}"
    result: dict[str, Any] = {
        "impl": name,
        "mode": mode,
        "n": n,
        "bytes_per_entry": (filled - base) / n,
        "fill_seconds": round(fill_seconds, 3),
    }
    if scenario == "clear":
        clear()
        result["given_back_after_clear"] = (filled - meter()) / max(filled - base, 1)
    elif subject.expire_all is not None:
        subject.expire_all(cache, timer)
        assert _held(cache) == 0, f"{name}: {_held(cache)} entries left after expiring all"
        result["given_back_after_prune"] = (filled - meter()) / max(filled - base, 1)
    return result


EXPIRE_AGE_SUBJECTS = ("memorystore-c-ttl", "cachetools.TTLCache")


def expire_by_age(name: str, n: int, rounds: int = 5) -> dict[str, Any]:
    """Time one prune that removes 1% of n entries, on a just-filled cache and on a collected one.

    ``expire()`` hands back a (key, value) tuple per entry; allocating them
    triggers young-generation collections, and those traverse whatever is
    young: a cache filled a moment ago is (its key and value lists included),
    a cache that has lived through a collection is not.  Rounds alternate
    fresh and old; a new cache each time.
    """
    subject = SUBJECTS_BY_NAME[name]
    keys = plain_keys(n)
    values = list(range(10**9, 10**9 + n))
    first = n // 100
    methods = ("expire", "purge") if name.startswith("memorystore") else ("expire",)
    samples: dict[str, list[float]] = {f"{method}_{age}": [] for method in methods for age in ("fresh", "old")}
    for _round in range(rounds):
        for method in methods:
            for age in ("fresh", "old"):
                timer = FakeTimer()
                cache = subject.build(n, timer)
                subject.fill(cache, keys[:first], values[:first])  # these expire first
                timer.advance(TTL / 2)
                subject.fill(cache, keys[first:], values[first:])
                if age == "old":
                    gc.collect()  # as in a server, where the cache has lived through collections
                timer.advance(TTL / 2 + 1)  # the first 1% have expired, the rest have not
                started = time.perf_counter()
                removed = getattr(cache, method)()
                took = time.perf_counter() - started
                count = removed if isinstance(removed, int) else len(removed)
                assert count == first, f"{name}.{method}() removed {count}, expected {first}"
                samples[f"{method}_{age}"].append(took)
                del removed, cache
                gc.collect()
    out: dict[str, Any] = {"impl": name, "n": n, "expired": first, "rounds": rounds}
    for what, seconds in samples.items():
        seconds.sort()
        out[what] = {
            "median_ms": round(1e3 * seconds[len(seconds) // 2], 3),
            "min_ms": round(1e3 * seconds[0], 3),
            "max_ms": round(1e3 * seconds[-1], 3),
            "ns_per_expired": round(1e9 * seconds[len(seconds) // 2] / first, 1),
        }
    return out


def churn_soak(name: str, size: int, mode: str, laps: int = 10) -> dict[str, Any]:
    """A bounded store through ``laps * size`` new sessions with expiry: memory per lap."""
    timer = FakeTimer()
    meter = Meter(mode)
    rng = random.Random(SEED + 1)

    def fresh_keys() -> list[str]:
        # not KeyPool: it remembers every key it made, which would be a leak of our own
        return [base64.urlsafe_b64encode(rng.randbytes(28)).decode()[:37] for _ in range(size)]

    session = {"user_id": 1, "csrf": "x" * 43, "flash": [], "cookie": {"path": "/", "httpOnly": True}}
    step = 1.0
    ttl = 0.8 * size * step  # ~80% of the bound is live; expiry and eviction both happen
    if name == "MemoryStore":
        from memorystore import MemoryStore

        cache: Any = MemoryStore(ttl=ttl, max=size, serializer=json, timer=timer)
        put, prune = cache.set, cache.prune
    else:
        module = __import__(SUBJECTS_BY_NAME[name].module, fromlist=["LRUCache"])
        cache = module.LRUCache(maxsize=size, ttl=ttl, timer=timer)
        put, prune = cache.__setitem__, cache.expire
    value: Any = json.dumps(session) if name != "MemoryStore" else session
    meter.start()
    base = meter()
    samples = []
    for _lap in range(laps):
        keys = fresh_keys()
        for i, key in enumerate(keys):
            timer.advance(step)
            put(key, value)
            if i % (size // 20 or 1) == 0:
                prune()
        del keys
        samples.append(meter() - base)
    # Lap 1 fills the store; from lap 2 on, the store holds sessions from two laps'
    # key lists at once (the previous lap's keys are still live), which is the
    # steady state: from there on memory must not grow.
    steady = samples[1] if laps > 1 else samples[0]
    return {
        "impl": name,
        "mode": mode,
        "size": size,
        "laps": laps,
        "samples": samples,
        "first_fill": samples[0],
        "steady": steady,
        "growth_after_steady": (max(samples[1:] or samples) - steady) / max(steady, 1),
    }


# --------------------------------------------------------------------------- parent


def _child(args: Sequence[str]) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _installed(subject: Subject) -> bool:
    try:
        __import__(subject.module)
    except ImportError:
        return False
    return True


def _pct(value: float | None, measured: dict[str, Any] | None = None) -> str:
    """A share as a percentage; n/a when not applicable or when nothing was seen growing (untraced allocator)."""
    if value is None or (measured is not None and measured.get("bytes_per_entry", 0) < 1):
        return "n/a"
    return f"{100 * value:.0f}%"


def run(
    n: int, only: set[str] | None, soak_size: int, soak: bool, expire_n: int = 200_000, log: Any = sys.stderr
) -> dict[str, Any]:
    results: dict[str, Any] = {"n": n, "python": sys.version.split()[0], "entries": {}, "expire_age": {}, "soak": {}}
    subjects = [s for s in SUBJECTS if (only is None or s.name in only)]
    for subject in subjects:
        if not _installed(subject):
            if subject.own:
                raise SystemExit(f"{subject.name}: {subject.module} does not import")
            log.write(f"{subject.name}: not installed, skipped\n")
            continue
        row = {}
        for mode in ("rss", "trace"):
            log.write(f"\r{subject.name} ({mode})...".ljust(50))
            log.flush()
            row[mode] = _child(["clear", subject.name, str(n), mode])
            if subject.expire_all is not None and "error" not in row[mode]:
                pruned = _child(["prune", subject.name, str(n), mode])
                if "error" in pruned:
                    row[mode] = pruned
                else:
                    row[mode]["given_back_after_prune"] = pruned["given_back_after_prune"]
        results["entries"][subject.name] = row
    for name in EXPIRE_AGE_SUBJECTS:
        if (only is not None and name not in only) or not _installed(SUBJECTS_BY_NAME[name]):
            continue
        log.write(f"\rexpire, fresh vs old: {name}...".ljust(50))
        log.flush()
        results["expire_age"][name] = _child(["expire_age", name, str(expire_n), "time"])
    if soak:
        for name in SOAK_SUBJECTS:
            if only is not None and name not in only:
                continue
            row = {}
            for mode in ("rss", "trace"):
                log.write(f"\rsoak {name} ({mode})...".ljust(50))
                log.flush()
                row[mode] = _child(["soak", name, str(soak_size), mode])
            results["soak"][name] = row
    log.write("\r" + " " * 50 + "\r")
    return results


def format_results(results: dict[str, Any]) -> str:
    lines = [
        f"bytes per entry at {results['n']} entries (keys and values excluded); share of the growth given back",
        "",
    ]
    header = f"{'implementation':22} {'RSS B/entry':>11} {'traced B/entry':>14} {'RSS back: clear':>15} {'traced back: clear':>18} {'RSS back: prune':>15} {'traced back: prune':>18}"
    lines += [header, "-" * len(header)]
    for name, row in results["entries"].items():
        r, t = row.get("rss", {}), row.get("trace", {})
        if "error" in r or "error" in t:
            lines.append(f"{name:22} error: {r.get('error') or t.get('error')}")
            continue
        lines.append(
            f"{name:22} {r['bytes_per_entry']:11.1f} {t['bytes_per_entry']:14.1f} {_pct(r['given_back_after_clear'], r):>15} {_pct(t['given_back_after_clear'], t):>18}"
            f" {_pct(r.get('given_back_after_prune'), r):>15} {_pct(t.get('given_back_after_prune'), t):>18}"
        )
    if results.get("expire_age"):
        lines += [
            "",
            "one prune removing 1% of the entries: a cache filled a moment ago vs one that lived through gc.collect()",
            "",
        ]
        for name, row in results["expire_age"].items():
            if "error" in row:
                lines.append(f"{name:22} error: {row['error']}")
                continue
            for what in ("expire", "purge"):
                fresh, old = row.get(f"{what}_fresh"), row.get(f"{what}_old")
                if fresh is None or old is None:
                    continue
                lines.append(
                    f"{name + '.' + what + '()':30} {row['expired']} of {row['n']}: fresh {fresh['median_ms']:.2f} ms"
                    f" ({fresh['min_ms']:.2f}-{fresh['max_ms']:.2f}), old {old['median_ms']:.2f} ms"
                    f" ({old['min_ms']:.2f}-{old['max_ms']:.2f}); {fresh['ns_per_expired']:.0f} vs"
                    f" {old['ns_per_expired']:.0f} ns per expired entry"
                )
    if results["soak"]:
        lines += [
            "",
            "churn soak: bounded store, 10x its size in new sessions, expiring; memory above baseline per lap (MB)",
            "",
        ]
        for name, row in results["soak"].items():
            for mode in ("rss", "trace"):
                soak = row[mode]
                if "error" in soak:
                    lines.append(f"{name:20} {mode:5} error: {soak['error']}")
                    continue
                laps = " ".join(f"{sample / 1e6:6.1f}" for sample in soak["samples"])
                lines.append(
                    f"{name:20} {mode:5} {laps}   growth after lap 2: {100 * soak['growth_after_steady']:+.1f}%"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1_000_000, help="entries per implementation (default 1M)")
    parser.add_argument("--only", help="comma-separated implementation names")
    parser.add_argument("--soak-size", type=int, default=100_000, help="bound of the churn-soak store (default 100k)")
    parser.add_argument("--no-soak", action="store_true", help="skip the churn soak")
    parser.add_argument(
        "--expire-n", type=int, default=200_000, help="entries of the fresh-vs-old prune timing (default 200k)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "IMPL", "N", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, name, count, mode = args.child
        if kind in ("clear", "prune"):
            measured = measure_entries(name, int(count), mode, kind)
        elif kind == "expire_age":
            measured = expire_by_age(name, int(count))
        else:
            measured = churn_soak(name, int(count), mode)
        print(json.dumps(measured))
        return 0
    only = None if args.only is None else {name.strip() for name in args.only.split(",") if name.strip()}
    results = run(args.n, only, args.soak_size, not args.no_soak, args.expire_n)
    print(format_results(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    failed = [name for name, row in results["entries"].items() if any("error" in m for m in row.values())]
    failed += [name for name, row in results["soak"].items() if any("error" in m for m in row.values())]
    failed += [name for name, row in results["expire_age"].items() if "error" in row]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
