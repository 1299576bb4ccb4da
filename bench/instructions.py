"""Instructions per operation, counted by callgrind: memorystore against dict and the peers.

Usage::

    python bench/instructions.py                    # every installed implementation: table
    python bench/instructions.py --json bench/results/instructions.json
    python bench/instructions.py --gate             # the regression gate (tools/instructions-gate.sh)
    python bench/instructions.py --only dict,memorystore-c-ttl --profile DIR --tag main

Why instructions: the machine is shared and noisy, times move by 1.5x between
runs; the number of instructions an operation executes does not.  Counted
under valgrind's callgrind, it is exact and repeatable: the same binary, the
same PYTHONHASHSEED and the same script give the same counts, run after run.
The marker's client requests need valgrind's headers (Debian's valgrind
package) and a C compiler.

Method (issue 16):

- Each implementation runs in its own process under callgrind, with a clean
  environment (``PYTHONHASHSEED=0``: str hashes, and so probe lengths, are
  the same in every run), address-space randomization off (``setarch -R``:
  where the allocator's mappings land changes a few instructions of its
  bookkeeping), and only its own module imported, so what one peer
  allocates cannot change another's counts and the gate, which runs a subset,
  counts exactly what the full run counted.
- Every operation gets a fresh cache of 100,000 entries (200,000 for the
  expiry rows), random 37-char ``str`` keys from a fixed seed, built and then
  collected (``gc.collect()``) so it is long-lived, as in a server.  As in a
  server, the cache holds the only reference to the keys it stores (removing an
  entry frees its key) and lookups pass an equal key, not the stored object
  (the id from a cookie), so no implementation wins by an identity shortcut.
  The stored value is one shared session dict (values are the user's).
- Only the measured loop is counted: callgrind starts with instrumentation and
  collection off (``--instr-atstart=no --collect-atstart=no``) and a tiny C
  helper, compiled here and called through ctypes, switches them on right
  before the loop and off right after it, then dumps the counts under a label
  (callgrind's client requests).
- Loop overhead is subtracted: the same loop over the same keys with an empty
  body is counted the same way, right before; per op = (loop - empty) / ops.
  Each loop first runs on 64 other keys, so the interpreter has specialized it.
- The statements are what a user writes: ``c.get(k)`` (the method lookup is
  part of the cost), ``c[k]``, ``c[k] = v``, ``del c[k]``, ``c.touch(k)``;
  5,000 of them per operation.  ``set new`` stores into a full cache, so every
  store evicts (for ``dict``: ``c[k] = v; del c[oldest]``); its keys are new
  objects, hashed when stored, as a new session id is.
- Expiry rows are one ``purge()`` or ``expire()`` call that removes all 200,000
  entries, divided by 200,000: one lifetime (1000 s), and two lifetimes
  interleaved (every 100th entry 10 s, the others 1000 s), on a fake clock moved
  past both; and for ``expire()`` every entry its own lifetime (200,000
  distinct ones between 1000 and 2000 s, stored in no deadline order: the
  heap's path, as a ``ttl`` function giving each session its own lifetime).
  cachebox has no injectable clock: its TTLCache (one lifetime) is filled,
  then the script sleeps until every entry expired (real time).
  ``expire()`` hands back a (key, value) pair per entry; building and freeing
  them is counted.  One more row holds str values (a session as a json
  ``MemoryStore`` keeps it) instead of the shared dict: a pair of a str and a
  str holds no container, so the collector does not have to traverse it.

Ratios: a memorystore count divided by a peer's count for the same operation;
above 1, memorystore executes more instructions.  Operations ``dict`` does not
have are compared with a ``dict`` operation of similar work (``DICT_UNIT``):
``touch`` with a get hit, removing an expired entry with ``del``.

The gate (``--gate``) counts dict and memorystore only, and compares every
memorystore-to-dict ratio with the committed ``bench/results/instructions.json``:
a ratio more than 5% worse fails, with a table of what moved.  Ratios to dict,
not absolute counts, so that another CPU (glibc picks its string functions per
CPU) or compiler moves both sides alike.  Where valgrind cannot run, or the
reference was counted with another CPython minor version, it says so in one
loud line and does not pass silently.

``--profile DIR`` also writes, for the hot rows of memorystore (get hit, set
new, delete, purge, expire), the hottest lines of the core's Cython source and
the hottest C functions, per operation, from the same dumps
(bench/results/profiles/).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "results", "instructions.json")
SCHEMA = 1

ENTRIES = 100_000  # entries in the cache for the per-op rows
PRUNE_ENTRIES = 200_000  # entries expired at once for the purge/expire rows
LOOP = 5_000  # operations counted per row
WARMUP = 64  # operations run first on other keys (specialization), not counted
SEED = 5
TOLERANCE = 0.05  # the gate fails on a ratio more than this much worse
SHORT_TTL, LONG_TTL = 10.0, 1000.0
TTL = 3600.0  # the default lifetime in the per-op rows: nothing expires while they run

# --------------------------------------------------------------------------- operations

CORE_OPS = ("get_hit", "get_miss", "getitem_hit", "set_new", "overwrite", "delete")
EXPIRY_OPS = (
    "purge_one_ttl",
    "purge_two_ttls",
    "expire_one_ttl",
    "expire_two_ttls",
    "expire_own_ttls",
    "expire_str_values",
)
STORE_OPS = ("store_get", "store_set")
#: the one expiry row of a peer (one lifetime: cachebox.TTLCache has no other), shown in every expiry row
PEER_EXPIRY = "expire_one_ttl"

TITLES = {
    "get_hit": "`c.get(k)` hit",
    "get_miss": "`c.get(k)` miss",
    "getitem_hit": "`c[k]` hit",
    "set_new": "set new at capacity (evicting)",
    "overwrite": "overwrite `c[k] = v`",
    "delete": "delete `del c[k]`",
    "touch": "`c.touch(k)`",
    "purge_one_ttl": "`purge()` per expired entry, one lifetime",
    "purge_two_ttls": "`purge()` per expired entry, two lifetimes",
    "expire_one_ttl": "`expire()` per expired entry, one lifetime",
    "expire_two_ttls": "`expire()` per expired entry, two lifetimes",
    "expire_own_ttls": "`expire()` per expired entry, each its own lifetime",
    "expire_str_values": "`expire()` per expired entry, str values",
    "store_get": "`MemoryStore.get` hit",
    "store_set": "`MemoryStore.set` (overwrite)",
}

#: the dict operation each row is divided by for the "/ dict" ratio (the gate's unit)
DICT_UNIT = {
    "get_hit": "get_hit",
    "get_miss": "get_miss",
    "getitem_hit": "getitem_hit",
    "set_new": "set_new",
    "overwrite": "overwrite",
    "delete": "delete",
    "touch": "get_hit",
    "purge_one_ttl": "delete",
    "purge_two_ttls": "delete",
    "expire_one_ttl": "delete",
    "expire_two_ttls": "delete",
    "expire_own_ttls": "delete",
    "expire_str_values": "delete",
    "store_get": "get_hit",
    "store_set": "overwrite",
}

#: a session as web apps store it (~300 bytes of JSON), as in bench/test_bench_store.py
SESSION: dict[str, Any] = {
    "user_id": 48213977,
    "csrf_token": "pX3v8Jw0kq2cN5yH7rT1bZ9mL4sF6dQ0aE8uV2iO3gY",
    "flash": [["info", "Welcome back, Alice!"], ["warning", "Your password expires in 7 days."]],
    "cookie": {
        "originalMaxAge": 86400000,
        "expires": "2026-11-28T11:04:00.000Z",
        "secure": True,
        "httpOnly": True,
        "path": "/",
        "sameSite": "lax",
    },
}


class FakeTimer:
    """A clock that moves only when told (the expiry rows)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- implementations


@dataclass(frozen=True)
class Subject:
    """One implementation: how to build it, and the statements of its operations.

    ``ops`` maps an operation to its statement over ``c`` (the cache), ``k``
    (the key), ``v`` (the value) and, for ``set_new``, ``d`` (the oldest key).
    ``expiry`` builds a cache for the expiry rows: ``(entries, timer, lifetimes)
    -> filled cache`` (lifetimes "one", "two" or "own"), ``None`` where there is no expiry.
    """

    name: str
    module: str
    build: Callable[[int], Any]
    ops: dict[str, str]
    own: bool = False
    expiry: Callable[..., Any] | None = None  # (entries, timer, lifetimes[, value]) -> a filled cache
    small_loop: int = LOOP  # fewer operations for a row with a pathological cost
    small_ops: tuple[str, ...] = ()
    shared: bool = False  # one filled cache for every row (rows that change nothing but recency and values)
    cost: int = 1  # relative run time, to start the longest runs first

    def all_ops(self) -> tuple[str, ...]:
        ops = tuple(self.ops)
        if self.expiry is not None:
            ops += EXPIRY_OPS if self.own else (PEER_EXPIRY,)
        return ops


MAPPING_OPS = {
    "get_hit": "c.get(k)",
    "get_miss": "c.get(k)",
    "getitem_hit": "c[k]",
    "set_new": "c[k] = v",
    "overwrite": "c[k] = v",
    "delete": "del c[k]",
}


# Exit status of a gate that could not measure here (automake's "skipped"; tools/test.sh records SKIP).
SKIPPED = 77


def _core(ttl: float | None) -> Callable[[int], Any]:
    def build(entries: int) -> Any:
        from memorystore._lru import LRUCache

        return LRUCache(maxsize=entries, ttl=ttl)

    return build


def _core_expiry(entries: int, timer: FakeTimer, lifetimes: str, value: Any = None) -> Any:
    from memorystore._lru import LRUCache

    cache = LRUCache(maxsize=entries, ttl=LONG_TTL, timer=timer)
    _fill_lifetimes(cache.set, entries, lifetimes, value)
    return cache


_KEYS: list[str] = []


def _keys(count: int) -> list[str]:
    """The first ``count`` keys of one fixed-seed pool (made once a process: making them is slow)."""
    if len(_KEYS) < count:
        from memorystore._bench import KeyPool

        _KEYS[:] = KeyPool(SEED).take(max(count, PRUNE_ENTRIES, ENTRIES + WARMUP + LOOP))
    return _KEYS[:count]


def _owned(keys: list[str]) -> list[str]:
    """Equal copies of ``keys`` for a cache to store: once the caller drops the list, the cache holds the
    only reference to each, as a server's cache does to a session id (the request that made it is gone)."""
    return [key.encode().decode() for key in keys]


def _fill_lifetimes(set_: Callable[..., Any], entries: int, lifetimes: str, value: Any = None) -> None:
    value = SESSION if value is None else value
    for i, key in enumerate(_owned(_keys(entries))):
        # a str value is copied per entry, as each session's json is its own string
        own_value = value.encode().decode() if isinstance(value, str) else value
        if lifetimes == "own":  # i -> i * 7919 mod entries is a permutation: distinct lifetimes, in no order
            ttl = LONG_TTL * (1 + (i * 7919 % entries) / entries)
        else:
            ttl = SHORT_TTL if lifetimes == "two" and i % 100 == 0 else LONG_TTL
        set_(key, own_value, ttl)


def _store(serializer: str) -> Callable[[int], Any]:
    def build(entries: int) -> Any:
        from memorystore import MemoryStore

        return MemoryStore(ttl=TTL, max=entries, serializer=json if serializer == "json" else None)

    return build


def _lru_dict(entries: int) -> Any:
    import lru

    return lru.LRU(entries)


def _cachebox(cls: str) -> Callable[[int], Any]:
    def build(entries: int) -> Any:
        import cachebox

        return cachebox.TTLCache(entries, TTL) if cls == "TTLCache" else cachebox.LRUCache(entries)

    return build


def _cachebox_expiry(entries: int, timer: FakeTimer, lifetimes: str) -> Any:
    """A cachebox.TTLCache whose entries have all expired, in real time (it takes no clock)."""
    import cachebox

    keys, value = _owned(_keys(entries)), SESSION
    # Time a fill first (valgrind's speed varies), so the real one ends well before any entry expires.
    started = time.monotonic()
    probe = cachebox.TTLCache(entries, 3600.0)
    for key in keys:
        probe[key] = value
    ttl = max(1.0, 3 * (time.monotonic() - started))
    del probe
    gc.collect()
    cache = cachebox.TTLCache(entries, ttl)
    for key in keys:
        cache[key] = value
    if len(cache) != entries:
        raise RuntimeError(f"cachebox.TTLCache: entries expired while filling (ttl {ttl:.1f} s)")
    time.sleep(ttl + 0.2)  # the last entry stored expires ttl from now
    return cache


def _cachetools(cls: str) -> Callable[[int], Any]:
    def build(entries: int) -> Any:
        import cachetools

        return cachetools.TTLCache(entries, TTL) if cls == "TTLCache" else cachetools.LRUCache(entries)

    return build


def _cachetools_expiry(entries: int, timer: FakeTimer, lifetimes: str) -> Any:
    import cachetools

    cache = cachetools.TTLCache(entries, LONG_TTL, timer=timer)
    for key in _owned(_keys(entries)):
        cache[key] = SESSION
    return cache


SUBJECTS: tuple[Subject, ...] = (
    Subject("dict", "builtins", lambda entries: {}, {**MAPPING_OPS, "set_new": "c[k] = v; del c[d]"}),
    Subject(
        "memorystore-c-ttl",
        "memorystore._lru",
        _core(TTL),
        {**MAPPING_OPS, "touch": "c.touch(k)"},
        own=True,
        expiry=_core_expiry,
        cost=4,
    ),
    Subject("memorystore-c", "memorystore._lru", _core(None), {**MAPPING_OPS, "touch": "c.touch(k)"}, own=True),
    Subject(
        "MemoryStore-none",
        "memorystore.store",
        _store("none"),
        {"store_get": "c.get(k)", "store_set": "c.set(k, v)"},
        own=True,
        shared=True,
    ),
    Subject(
        "MemoryStore-json",
        "memorystore.store",
        _store("json"),
        {"store_get": "c.get(k)", "store_set": "c.set(k, v)"},
        own=True,
        shared=True,
        cost=3,
    ),
    Subject("lru-dict", "lru", _lru_dict, dict(MAPPING_OPS)),
    Subject("cachebox.LRUCache", "cachebox", _cachebox("LRUCache"), dict(MAPPING_OPS)),
    Subject(
        "cachebox.TTLCache",
        "cachebox",
        _cachebox("TTLCache"),
        dict(MAPPING_OPS),
        expiry=_cachebox_expiry,
        small_loop=100,  # its delete is O(n): ~200 µs each
        small_ops=("delete",),
        cost=2,
    ),
    Subject("cachetools.LRUCache", "cachetools", _cachetools("LRUCache"), dict(MAPPING_OPS)),
    Subject(
        "cachetools.TTLCache",
        "cachetools",
        _cachetools("TTLCache"),
        dict(MAPPING_OPS),
        expiry=_cachetools_expiry,
        cost=4,
    ),
)
SUBJECTS_BY_NAME = {subject.name: subject for subject in SUBJECTS}
GATED = ("memorystore-c-ttl", "memorystore-c", "MemoryStore-none", "MemoryStore-json")

# --------------------------------------------------------------------------- the marker (child side)

MARKER_C = r"""
/* Switches callgrind's counting on around one measured region (client requests;
   outside valgrind each request is a few no-op instructions). */
#include <string.h>
#include <valgrind/callgrind.h>

static char label[512];

void region_label(const char *text) { strncpy(label, text, sizeof label - 1); }
void region_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void region_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS_AT(label); CALLGRIND_STOP_INSTRUMENTATION; }
"""


def build_marker(directory: str) -> str:
    """Compile the region marker into ``directory``; returns the shared library's path."""
    source = os.path.join(directory, "region_marker.c")
    library = os.path.join(directory, "region_marker.so")
    with open(source, "w") as out:
        out.write(MARKER_C)
    compiler = os.environ.get("CC", "cc")
    done = subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", library, source], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise MarkerError(f"cannot compile the callgrind marker with {compiler}: {done.stderr.strip()[-300:]}")
    return library


class MarkerError(RuntimeError):
    """The marker cannot be built here (no compiler, or no valgrind headers)."""


class Regions:
    """Counts regions: ``measure(label, fn, *args)`` runs ``fn(*args)`` with callgrind counting."""

    def __init__(self, library: str) -> None:
        lib = ctypes.CDLL(library)
        # restype None: a default int result would be read from a stale register
        # and boxed, and its size (small int or not) would change the counts.
        for name in ("region_label", "region_start", "region_stop"):
            getattr(lib, name).restype = None
        lib.region_label.argtypes = [ctypes.c_char_p]
        self._label, self._start, self._stop = lib.region_label, lib.region_start, lib.region_stop
        self.measure("discard", _nothing)  # first-use costs (ctypes, the call paths) land here

    def measure(self, label: str, fn: Callable[..., Any], *args: Any) -> Any:
        gc.collect()
        self._label(label.encode())
        start, stop = self._start, self._stop
        start()
        result = fn(*args)
        stop()
        return result


def _nothing(*args: Any) -> None:
    return None


# --------------------------------------------------------------------------- child: one implementation


def _loop(statement: str, header: str = "for k in keys:") -> Callable[..., Any]:
    """``run(c, keys, v[, drop])``: the statement once per key (``pass`` for the empty loop)."""
    params = "c, keys, v, drop" if "zip" in header else "c, keys, v"
    body = "\n".join(f"        {part.strip()}" for part in statement.split(";"))
    source = f"def run({params}):\n    {header}\n{body}\n    return None\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<instructions {statement}>", "exec"), namespace)
    return namespace["run"]  # type: ignore[no-any-return]


def _fill(cache: Any, subject: Subject, keys: list[str], value: Any) -> None:
    if subject.name.startswith("MemoryStore"):
        set_ = cache.set
        for key in keys:
            set_(key, value)
    else:
        for key in keys:
            cache[key] = value


def _present(cache: Any, key: str) -> bool:
    return cache.get(key) is not None


def filled(subject: Subject, keys: list[str]) -> Any:
    """A new cache holding the first ENTRIES keys (equal copies), collected: long-lived, as in a server."""
    cache = subject.build(ENTRIES)
    _fill(cache, subject, _owned(keys[:ENTRIES]), SESSION)
    gc.collect()
    return cache


def count_op(regions: Regions, subject: Subject, op: str, keys: list[str], cache: Any = None) -> dict[str, Any]:
    """Count one row: a filled cache (a new one unless given), the empty loop, then the loop of ``op``."""
    loop = subject.small_loop if op in subject.small_ops else LOOP
    rng = random.Random(SEED * 7919 + sorted(TITLES).index(op))
    value: Any = SESSION
    other: Any = dict(SESSION)  # what an overwrite stores: an equal session, another object
    if cache is None:
        cache = filled(subject, keys)
    stored = keys[:ENTRIES]  # the lookups' keys: equal to what the cache stores, other objects
    statement = subject.ops[op]
    drop: list[str] = []
    if op == "set_new":
        chosen = _owned(keys[ENTRIES : ENTRIES + WARMUP + loop])
        drop = stored[: WARMUP + loop]  # the oldest entries, in the order a full LRU evicts them
        header = "for k, d in zip(keys, drop):"
    elif op == "get_miss":
        chosen = keys[ENTRIES : ENTRIES + WARMUP + loop]
        header = "for k in keys:"
    else:
        chosen = rng.sample(stored, WARMUP + loop)
        header = "for k in keys:"
    run, empty = _loop(statement, header), _loop("pass", header)
    warm, measured = chosen[:WARMUP], chosen[WARMUP:]
    warm_drop, measured_drop = drop[:WARMUP], drop[WARMUP:]
    if op in ("overwrite", "store_set"):
        value = other
    args_warm = (cache, warm, value, warm_drop) if drop else (cache, warm, value)
    args = (cache, measured, value, measured_drop) if drop else (cache, measured, value)
    empty(*args_warm)
    run(*args_warm)
    label = f"{subject.name}|{op}"
    regions.measure(label + "|empty", empty, *args)
    regions.measure(label + "|op", run, *args)
    _check(cache, subject, op, measured, measured_drop)
    return {"label": label, "ops": loop}


def _check(cache: Any, subject: Subject, op: str, keys: list[str], drop: list[str]) -> None:
    """The loop did what its row claims (hits hit, evictions evicted, deletes deleted)."""
    present = sum(_present(cache, key) for key in keys)
    expected = 0 if op in ("get_miss", "delete") else len(keys)
    if present != expected:
        raise AssertionError(f"{subject.name} {op}: {present} of {len(keys)} keys present, expected {expected}")
    if op == "set_new" and any(_present(cache, key) for key in drop):
        raise AssertionError(f"{subject.name} set_new: the oldest entries were not evicted")


def count_expiry(regions: Regions, subject: Subject, op: str) -> dict[str, Any]:
    """Count one expiry row: one purge()/expire() call removing PRUNE_ENTRIES expired entries."""
    assert subject.expiry is not None
    timer = FakeTimer()
    if op == "expire_str_values":  # memorystore's own row (peers count PEER_EXPIRY only)
        cache = subject.expiry(PRUNE_ENTRIES, timer, "one", json.dumps(SESSION))
    else:
        cache = subject.expiry(PRUNE_ENTRIES, timer, op.split("_")[1])  # "one", "two" or "own"
    gc.collect()
    timer.now += 2 * LONG_TTL + 1  # past every lifetime
    run = _purge if op.startswith("purge") else _expire
    label = f"{subject.name}|{op}"
    regions.measure(label + "|empty", _nothing, cache)
    removed = regions.measure(label + "|op", run, cache)
    left = len(cache)
    if left or removed not in (PRUNE_ENTRIES, None):
        raise AssertionError(f"{subject.name} {op}: removed {removed}, {left} entries left")
    return {"label": label, "ops": PRUNE_ENTRIES}


def _purge(cache: Any) -> Any:
    return cache.purge()


def _expire(cache: Any) -> Any:
    expired = cache.expire()  # a list of pairs (memorystore, cachetools) or None (cachebox)
    return None if expired is None else len(expired)


def child(name: str, library: str) -> list[dict[str, Any]]:
    """In this process (under callgrind): count every operation of one implementation."""
    subject = SUBJECTS_BY_NAME[name]
    __import__(subject.module)
    regions = Regions(library)
    keys = _keys(ENTRIES + WARMUP + LOOP)
    shared = filled(subject, keys) if subject.shared else None
    rows = []
    for op in subject.all_ops():
        if op in EXPIRY_OPS:
            rows.append(count_expiry(regions, subject, op))
        else:
            rows.append(count_op(regions, subject, op, keys, shared))
        gc.collect()
    return rows


# --------------------------------------------------------------------------- parent: run and read callgrind

DUMP_LABEL = re.compile(r"^desc: Trigger: Client Request: (.*)$", re.M)
DUMP_TOTAL = re.compile(r"^totals: (\d+)$", re.M)


class CannotMeasure(RuntimeError):
    """valgrind (or the marker) cannot run here: the caller says so loudly and skips."""


def valgrind_problem(python: str) -> str | None:
    """Why callgrind cannot count ``python`` here, or None when it can."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian: apt-get install valgrind)"
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null", python, "-c", "pass"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"valgrind cannot run {python}: " + " ".join(done.stderr.strip().splitlines()[-2:])
    return None


def child_env() -> dict[str, str]:
    # Nothing inherited but PATH: the counts depend on the environment (sizes of what is allocated).
    return {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"}


def run_subject(python: str, name: str, library: str, directory: str, profile: bool = False) -> dict[str, Any]:
    """Run one implementation under callgrind; ``{op: {per_op, total, empty, ops}}``."""
    out_dir = os.path.join(directory, name)
    os.makedirs(out_dir, exist_ok=True)
    # Without address-space randomization (where setarch can turn it off): where the allocator's
    # mappings land decides a few instructions of its bookkeeping.
    no_aslr = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    command = [
        *no_aslr,
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--collect-atstart=no",
        f"--callgrind-out-file={out_dir}/callgrind.out.%p",
        f"--dump-line={'yes' if profile else 'no'}",
        "--dump-instr=no",
        "--compress-strings=no",
        "--compress-pos=no",
        python,
        os.path.abspath(__file__),
        "--child",
        name,
        "--marker",
        library,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=child_env(), check=False)
    if done.returncode != 0:
        tail = "\n".join([line for line in done.stderr.splitlines() if not line.startswith("==")][-15:])
        raise RuntimeError(f"{name}: the counting run failed (exit {done.returncode}):\n{tail}")
    manifest = json.loads(done.stdout.strip().splitlines()[-1])
    totals: dict[str, int] = {}
    files: dict[str, str] = {}
    for entry in os.listdir(out_dir):
        path = os.path.join(out_dir, entry)
        with open(path, errors="replace") as dump:
            head = dump.read()
        label = DUMP_LABEL.search(head)
        total = DUMP_TOTAL.search(head)
        if label and total:
            # "totals" is the region's own count ("summary" is not, once instrumentation is toggled)
            totals[label.group(1)] = int(total.group(1))
            files[label.group(1)] = path
    rows = {}
    for row in manifest:
        label = row["label"]
        op = label.split("|")[1]
        total, empty = totals[label + "|op"], totals[label + "|empty"]
        rows[op] = {
            "per_op": round((total - empty) / row["ops"], 1),
            "total": total,
            "empty": empty,
            "ops": row["ops"],
        }
        if profile:
            rows[op]["dump"] = files[label + "|op"]
    return rows


def installed(subject: Subject, python: str) -> bool:
    if subject.module == "builtins":
        return True
    done = subprocess.run([python, "-c", f"import {subject.module}"], capture_output=True, check=False)
    return done.returncode == 0


def versions(python: str) -> dict[str, str]:
    code = (
        "import json, platform, sys\n"
        "from importlib import metadata\n"
        "out = {'python': platform.python_version(), 'implementation': platform.python_implementation()}\n"
        "for name in ('memorystore', 'cachebox', 'lru-dict', 'cachetools'):\n"
        "    try: out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError: pass\n"
        "try:\n"
        "    from memorystore._lru import CYTHON_VERSION; out['cython'] = CYTHON_VERSION\n"
        "except ImportError: pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    found: dict[str, str] = json.loads(done.stdout)
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=False)
    found["valgrind"] = valgrind.stdout.strip()
    found["machine"] = f"{platform.machine()} {_cpu()}"
    return found


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def measure(
    python: str,
    names: Sequence[str],
    jobs: int = 2,
    profile_dir: str | None = None,
    tag: str = "core",
    log: Any = sys.stderr,
) -> dict[str, Any]:
    """Count ``names`` (each in its own callgrind process); the results as written to the JSON."""
    problem = valgrind_problem(python)
    if problem:
        raise CannotMeasure(problem)
    directory = tempfile.mkdtemp(prefix="memorystore-instructions-")
    try:
        try:
            library = build_marker(directory)
        except MarkerError as error:
            raise CannotMeasure(str(error)) from None
        started = time.monotonic()
        counts: dict[str, Any] = {}
        errors: dict[str, str] = {}

        def one(name: str) -> None:
            begun = time.monotonic()
            try:
                counts[name] = run_subject(python, name, library, directory, profile=profile_dir is not None)
            except RuntimeError as error:
                errors[name] = str(error)
                log.write(f"  {name}: FAILED\n{error}\n")
                return
            log.write(f"  counted {name} in {time.monotonic() - begun:.0f} s ({time.monotonic() - started:.0f} s)\n")

        longest_first = sorted(names, key=lambda name: -SUBJECTS_BY_NAME[name].cost)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, longest_first))
        if profile_dir is not None:
            write_profiles(counts, profile_dir, tag)
        for rows in counts.values():
            for row in rows.values():
                row.pop("dump", None)
        return {
            "schema": SCHEMA,
            "date": time.strftime("%Y-%m-%d"),
            "versions": versions(python),
            "entries": ENTRIES,
            "prune_entries": PRUNE_ENTRIES,
            "loop": LOOP,
            "seconds": round(time.monotonic() - started),
            "counts": {name: counts[name] for name in names if name in counts},
            "ratios_to_dict": ratios_to_dict(counts),
            "errors": errors,
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def ratios_to_dict(counts: dict[str, Any]) -> dict[str, dict[str, float]]:
    """memorystore count / dict count (of the op's DICT_UNIT), per implementation and op."""
    floor = counts.get("dict", {})
    out: dict[str, dict[str, float]] = {}
    for name in GATED:
        for op, row in counts.get(name, {}).items():
            unit = floor.get(DICT_UNIT[op], {}).get("per_op")
            if unit:
                out.setdefault(name, {})[op] = round(row["per_op"] / unit, 4)
    return out


# --------------------------------------------------------------------------- profiles


PROFILE_OPS = (
    "get_hit",
    "getitem_hit",
    "set_new",
    "delete",
    "purge_one_ttl",
    "purge_two_ttls",
    "expire_two_ttls",
    "expire_own_ttls",
    "expire_str_values",
)
CYTHON_SOURCE = re.compile(r'^\s*/\* "([^"]+\.(?:pyx|pxd))":(\d+)$')


def read_dump(path: str) -> tuple[dict[str, int], dict[tuple[str, int], int]]:
    """Exclusive costs of one callgrind dump: by function, and by (source file, line).

    The dump's format: ``fl=``/``fi=``/``fe=`` name the source file of the cost
    lines that follow (``fi``/``fe``: code inlined from another file), ``fn=``
    the function, ``calls=`` announces a line holding a call's inclusive cost
    (skipped here), and a cost line is ``<line> <instructions>``, the line
    absolute or relative (``+n``, ``-n``, ``*``).  Names may be compressed to
    ``(id)`` after their first use.
    """
    names: dict[str, dict[str, str]] = {"file": {}, "fn": {}}
    by_function: dict[str, int] = {}
    by_line: dict[tuple[str, int], int] = {}
    function_file = source_file = function = "?"
    position = 0
    skip_call_cost = False

    def name(kind: str, text: str) -> str:
        match = re.match(r"^\((\d+)\)(?: (.*))?$", text)
        if not match:
            return text
        if match.group(2) is not None:
            names[kind][match.group(1)] = match.group(2)
        return names[kind].get(match.group(1), text)

    with open(path, errors="replace") as dump:
        for raw in dump:
            line = raw.rstrip("\n")
            if not line:
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                pos, _, rest = line.partition(" ")
                if pos == "*":
                    pass
                elif pos[0] in "+-":
                    position += int(pos)
                else:
                    position = int(pos)
                if skip_call_cost:
                    skip_call_cost = False
                    continue
                cost = int(rest.split()[0]) if rest else 0
                key = f"{function} ({os.path.basename(function_file)})"
                by_function[key] = by_function.get(key, 0) + cost
                by_line[(source_file, position)] = by_line.get((source_file, position), 0) + cost
            elif line.startswith("fl="):
                function_file = source_file = name("file", line[3:])
            elif line.startswith(("fi=", "fe=")):
                source_file = name("file", line[3:])
            elif line.startswith("fn="):
                function = name("fn", line[3:])
                source_file = function_file
            elif line.startswith(("cfi=", "cfl=")):
                name("file", line[4:])
            elif line.startswith("cfn="):
                name("fn", line[4:])
            elif line.startswith("calls="):
                skip_call_cost = True
    return by_function, by_line


# a C function's definition (not a prototype): "static ... name(" (indented in extern blocks), or at column 0
C_FUNCTION = re.compile(r"^(?:\s*static\b|[A-Za-z_])[\w \t\*]*?\b(\w+)\s*\([^;]*$")


def cython_lines(c_file: str) -> list[tuple[str, int | str] | None]:
    """For each line of a Cython-generated C file: the .pyx/.pxd line it was generated from, or,
    outside any Cython statement (argument parsing, helpers), ("C", the enclosing C function)."""
    out: list[tuple[str, int | str] | None] = [None]  # line numbers start at 1
    current: tuple[str, int | str] | None = None
    function = "?"
    with open(c_file, errors="replace") as source:
        for line in source:
            match = CYTHON_SOURCE.match(line)
            if match:
                current = (match.group(1), int(match.group(2)))
            elif line.startswith("}"):
                current = None  # the end of a C function: what follows is no Cython statement
            elif (signature := C_FUNCTION.match(line)) and not line.startswith(("return", "else", "if")):
                function, current = signature.group(1), None
            out.append(current if current is not None else ("C", function))
    return out


def hot_source_lines(by_line: dict[tuple[str, int], int], top: int) -> list[tuple[int, str, str]]:
    """The hottest lines of the core's Cython sources: (instructions, "file:line", source text)."""
    per_source: dict[tuple[str, int | str], int] = {}
    maps: dict[str, list[tuple[str, int | str] | None]] = {}
    for (path, line), cost in by_line.items():
        if not re.search(r"memorystore/_\w+\.c$", path) or not os.path.exists(path):
            continue
        if path not in maps:
            maps[path] = cython_lines(path)
        origin = maps[path][line] if 0 < line < len(maps[path]) else ("C", "?")
        per_source[origin] = per_source.get(origin, 0) + cost  # type: ignore[index]
    texts: dict[str, list[str]] = {}
    out = []
    for (source, line), cost in sorted(per_source.items(), key=lambda item: -item[1])[:top]:
        if source == "C":
            out.append((cost, "C", f"{line} (generated C outside any Cython statement)"))
            continue
        text = ""
        if source.endswith((".pyx", ".pxd")):
            path = os.path.join(os.path.dirname(next(iter(maps))), os.path.basename(source))
            if path not in texts:
                texts[path] = open(path, errors="replace").read().splitlines() if os.path.exists(path) else []
            if 0 < line <= len(texts[path]):
                text = texts[path][line - 1].strip()
        out.append((cost, f"{os.path.basename(source)}:{line}", text))
    return out


def write_profiles(counts: dict[str, Any], directory: str, tag: str, top: int = 20) -> None:
    """For each profiled row: the hottest core source lines and C functions, per operation."""
    os.makedirs(directory, exist_ok=True)
    for name, rows in counts.items():
        for op, row in rows.items():
            if op not in PROFILE_OPS or "dump" not in row or not SUBJECTS_BY_NAME[name].own:
                continue
            ops = row["ops"]
            by_function, by_line = read_dump(row["dump"])
            total = sum(by_function.values())
            lines = [
                f"# {tag}: {name}, {TITLES[op]}: {row['per_op']} instructions per operation",
                f"# the measured loop: {row['total']:,} instructions over {ops:,} operations, of which the empty loop",
                f"# (interpreter, loop overhead) counted {row['empty']:,}; figures below are per operation, loop included",
                "# made by: python bench/instructions.py --only NAME --profile DIR --tag TAG",
                "",
                "## hottest lines of the core's Cython source (exclusive; code inlined from CPython headers is counted under those)",
                "",
            ]
            for cost, where, text in hot_source_lines(by_line, top):
                lines.append(f"{cost / ops:8.1f} {100 * cost / total:5.1f}%  {where:18} {text}")
            lines += ["", "## hottest functions (exclusive: in the function itself, inlined code included)", ""]
            ranked = sorted(by_function.items(), key=lambda item: -item[1])[:top]
            for function, cost in ranked:
                lines.append(f"{cost / ops:8.1f} {100 * cost / total:5.1f}%  {function}")
            path = os.path.join(directory, f"{tag}-{name}-{op}.txt")
            with open(path, "w") as out:
                out.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- tables


def _fmt(count: float | None) -> str:
    if count is None:
        return "—"
    return f"{count:,.0f}" if count >= 100 else f"{count:.1f}"


def table(results: dict[str, Any], markdown: bool = False) -> str:
    """Rows: operations; cells: instructions per operation, and for a peer (memorystore TTL on / the peer)."""
    counts = results["counts"]
    columns = [
        name
        for name in (
            "memorystore-c-ttl",
            "memorystore-c",
            "dict",
            "lru-dict",
            "cachebox.LRUCache",
            "cachebox.TTLCache",
            "cachetools.LRUCache",
            "cachetools.TTLCache",
        )
        if name in counts
    ]
    header = ["operation", *columns]
    rows: list[list[str]] = []
    ops = [*CORE_OPS, "touch", *EXPIRY_OPS]
    for op in ops:
        mine = counts.get("memorystore-c-ttl", {}).get(op, {}).get("per_op")
        if mine is None and op not in counts.get("memorystore-c", {}):
            continue
        row = [TITLES[op]]
        for name in columns:
            by_op = counts[name]
            peer_op = DICT_UNIT[op] if name == "dict" else op
            if op in EXPIRY_OPS and not SUBJECTS_BY_NAME[name].own:
                peer_op = PEER_EXPIRY
            count = by_op.get(peer_op, {}).get("per_op")
            cell = _fmt(count)
            if count and mine and name not in ("memorystore-c-ttl", "memorystore-c"):
                cell += f" ({mine / count:.2f}x)" if mine / count >= 0.01 else " (<0.01x)"
                if name == "dict" and peer_op != op:
                    cell += f" [{peer_op}]"
            row.append(cell)
        rows.append(row)
    for store in ("MemoryStore-none", "MemoryStore-json"):
        for op in STORE_OPS:
            count = counts.get(store, {}).get(op, {}).get("per_op")
            if count is None:
                continue
            serializer = store.split("-")[1]
            row = [f"{TITLES[op]}, serializer={'None' if serializer == 'none' else 'json'}"]
            for name in columns:
                if name == "memorystore-c-ttl":
                    row.append(_fmt(count))
                elif name == "dict":
                    unit = counts["dict"].get(DICT_UNIT[op], {}).get("per_op")
                    row.append(f"{_fmt(unit)} ({count / unit:.2f}x) [{DICT_UNIT[op]}]" if unit else "—")
                else:
                    row.append("")
            rows.append(row)
    legend = (
        "instructions per operation (callgrind, loop overhead subtracted); (Nx) = memorystore with TTL on divided by "
        "that implementation: above 1, memorystore executes more instructions; [op]: the dict operation a row "
        "without a dict equivalent is compared with; MemoryStore rows sit in the memorystore column; a peer's "
        "expiry cells are its expire() with one lifetime (cachebox.TTLCache hands nothing back, cachetools pairs)."
    )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(out) + "\n\n" + legend
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines) + "\n" + legend


# --------------------------------------------------------------------------- the gate


def compare(reference: dict[str, Any], now: dict[str, Any], tolerance: float = TOLERANCE) -> tuple[bool, str]:
    """(passed, table) for the memorystore-to-dict ratios of ``now`` against ``reference``."""
    old, new = reference["ratios_to_dict"], now["ratios_to_dict"]
    lines = [f"{'implementation':18} {'operation':46} {'committed':>9} {'now':>9} {'change':>8}  verdict", "-" * 105]
    passed = True
    for name in GATED:
        for op, ratio in old.get(name, {}).items():
            current = new.get(name, {}).get(op)
            if current is None:
                verdict, change = "MISSING (not counted)", ""
                passed = False
            else:
                moved = current / ratio - 1
                change = f"{100 * moved:+.1f}%"
                if moved > tolerance:
                    verdict = f"WORSE by more than {100 * tolerance:.0f}%"
                    passed = False
                elif moved < -tolerance:
                    verdict = "better (re-record the reference to keep it)"
                else:
                    verdict = "ok"
            shown = "—" if current is None else f"{current:.3f}"
            lines.append(f"{name:18} {TITLES[op]:46} {ratio:9.3f} {shown:>9} {change:>8}  {verdict}")
    return passed, "\n".join(lines)


def same_totals(reference: dict[str, Any], now: dict[str, Any]) -> tuple[int, int]:
    """(rows whose raw totals equal the reference's, rows counted now): exactness at a glance."""
    exact = rows = 0
    for name, by_op in now["counts"].items():
        for op, row in by_op.items():
            rows += 1
            old = reference["counts"].get(name, {}).get(op, {})
            exact += (old.get("total"), old.get("empty")) == (row["total"], row["empty"])
    return exact, rows


def gate(python: str, reference_path: str, jobs: int) -> int:
    """The regression gate; exit status 0 (passed or loudly skipped) or 1 (a ratio got worse)."""
    loud = "!!! INSTRUCTION-COUNT GATE SKIPPED:"  # and exit SKIPPED (77): tools/test.sh records SKIP
    if not os.path.exists(reference_path):
        print(
            f"instruction-count gate: FAILED: no reference {reference_path} (python bench/instructions.py --json ...)"
        )
        return 1
    with open(reference_path) as source:
        reference = json.load(source)
    here = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    recorded = reference["versions"]["python"]
    if here.split(".")[:2] != recorded.split(".")[:2]:
        print(
            f"{loud} the reference was counted on CPython {recorded}, this is {here}: ratios not comparable "
            f"(record one: python bench/instructions.py --json {os.path.relpath(reference_path)}) !!!"
        )
        return SKIPPED
    names = ["dict", *[name for name in GATED if name in reference["ratios_to_dict"]]]
    started = time.monotonic()
    try:
        now = measure(python, names, jobs=jobs)
    except CannotMeasure as why:
        print(f"{loud} {why} !!!")
        return SKIPPED
    passed, report = compare(reference, now)
    for name, error in now["errors"].items():
        print(f"{name}: the counting run FAILED:\n{error}")
    print(
        f"instruction-count gate: memorystore / dict ratios against {os.path.relpath(reference_path)} "
        f"(counted {reference['date']}, CPython {recorded}); fails on > {100 * TOLERANCE:.0f}% worse"
    )
    print(report)
    exact, rows = same_totals(reference, now)
    print(
        f"{exact} of {rows} rows counted exactly as in the reference"
        + ("" if exact == rows else " (another binary, CPU or script: the ratios above are what is compared)")
    )
    took = time.monotonic() - started
    print(f"instruction-count gate: {'PASSED' if passed else 'FAILED'} ({took:.0f} s)")
    return 0 if passed else 1


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to count (default: this one)")
    parser.add_argument("--only", help="comma-separated implementation names (default: every installed one)")
    parser.add_argument("--json", metavar="FILE", help="write every count and ratio as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown (for the README)")
    parser.add_argument("--gate", action="store_true", help="compare with the committed reference; exit 1 if worse")
    parser.add_argument("--reference", default=REFERENCE, help="the gate's reference JSON")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind processes at once (default 2)")
    parser.add_argument("--profile", metavar="DIR", help="also write profiles of the hot rows into DIR")
    parser.add_argument("--tag", default="core", help="the profiles' file name prefix (default core)")
    parser.add_argument("--child", metavar="IMPL", help=argparse.SUPPRESS)
    parser.add_argument("--marker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        rows = child(args.child, args.marker)
        print(json.dumps(rows))
        return 0
    if args.gate:
        return gate(args.python, args.reference, args.jobs)
    wanted = None if args.only is None else [name.strip() for name in args.only.split(",") if name.strip()]
    if wanted is not None and (unknown := set(wanted) - set(SUBJECTS_BY_NAME)):
        raise SystemExit(f"unknown implementation(s): {', '.join(sorted(unknown))}")
    names = []
    for subject in SUBJECTS:
        if wanted is not None and subject.name not in wanted:
            continue
        if installed(subject, args.python):
            names.append(subject.name)
        elif subject.own:
            raise SystemExit(f"{subject.name}: {subject.module} does not import with {args.python}")
        else:
            print(f"{subject.name}: not installed, skipped", file=sys.stderr)
    try:
        results = measure(args.python, names, jobs=args.jobs, profile_dir=args.profile, tag=args.tag)
    except CannotMeasure as why:
        print(f"cannot count instructions here: {why}", file=sys.stderr)
        return 2
    v = results["versions"]
    print(
        f"callgrind instruction counts: CPython {v['python']}, memorystore {v.get('memorystore', '?')} "
        f"(Cython {v.get('cython', '?')}), {v['valgrind']}, {v['machine']}; {ENTRIES:,} entries "
        f"({PRUNE_ENTRIES:,} expiring), {LOOP:,} ops a row; {results['seconds']} s"
    )
    print(table(results, markdown=args.markdown))
    for name, error in results["errors"].items():
        print(f"{name}: FAILED: {error.splitlines()[-1]}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
            out.write("\n")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
