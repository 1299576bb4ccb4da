"""What removing expired entries costs when each entry has its own lifetime, beside one lifetime.

Usage::

    python bench/own_lifetimes.py                       # 100k and 1M entries, 1% and 50% expired
    python bench/own_lifetimes.py --n 100000 --rounds 9 --json out.json

The compiled core files the entries of one lifetime in an expiry *lane* (they
arrive in deadline order, each appended in O(1)) and entries whose deadline fits
no lane in a 4-ary heap.  Issue #16 asks that deleting, expiring and purging
cost the same either way.  Each round builds a cache of n entries (untimed): the
first k = share * n with lifetimes of 10-20 s, the others 100-200 s, either all
of one lifetime in each group (15 s and 150 s: two lanes) or each drawn at
random (the heap), or of one lifetime in each group but with the k expiring
entries spread evenly over the cache (every (n/k)-th key: "scattered", the
control that has lanes and scattered memory); the fake clock then moves 50 s
and ONE ``purge()`` or ``expire()`` removes the k expired entries.  The previous round's result is
released and the collector run before the call, so the call's time holds no
deallocation of it.  Reported: ns per removed entry (median of the rounds),
own / one, the ratio the issue asks to be 1, and own / scattered: what is left
once memory order is the same for both.

Keys are 37-char str made in key order (so slot order, memory order and the
one-lifetime deadline order agree, as in a store filled over time); values are
distinct ints.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from typing import Any

from memorystore._lru import LRUCache


class FakeTimer:
    def __init__(self, start: float = 1000.0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time


LAYOUTS = ("one", "scattered", "own")


def one_round(n: int, share: float, layout: str, method: str, seed: int) -> float:
    """ns per removed entry of one purge()/expire() call; layout: one of LAYOUTS."""
    timer = FakeTimer()
    cache = LRUCache(None, timer=timer)
    rng = random.Random(seed)
    expiring = int(n * share)
    every = n // expiring
    own = layout == "own"
    for number in range(n):
        if (number % every == 0 and number // every < expiring) if layout == "scattered" else number < expiring:
            ttl = rng.uniform(10.0, 20.0) if own else 15.0
        else:
            ttl = rng.uniform(100.0, 200.0) if own else 150.0
        cache.set(f"{number:037d}", number, ttl=ttl)
    timer.time += 50.0
    gc.collect()
    call = getattr(cache, method)
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    removed = result if isinstance(result, int) else len(result)
    if removed != expiring:
        raise AssertionError(f"{method}() removed {removed}, expected {expiring}")
    del result
    return seconds / expiring * 1e9


def measure(n: int, share: float, method: str, rounds: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    for seed in range(rounds):  # interleaved, so that a drifting machine slows them alike
        for layout in LAYOUTS:
            times[layout].append(one_round(n, share, layout, method, seed))
            gc.collect()
    cell: dict[str, Any] = {"n": n, "share": share, "method": method}
    for layout in LAYOUTS:
        cell[f"{layout}_ns"] = statistics.median(times[layout])
    cell["ratio"] = cell["own_ns"] / cell["one_ns"]
    cell["ratio_scattered"] = cell["own_ns"] / cell["scattered_ns"]
    return cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="entries (repeatable; default 100000 and 1000000)")
    parser.add_argument("--share", type=float, action="append", help="share expired (default 0.01 and 0.5)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds a cell (default 5)")
    parser.add_argument("--json", metavar="FILE", help="write the cells as JSON")
    args = parser.parse_args(argv)
    sizes = args.n or [100_000, 1_000_000]
    shares = args.share or [0.01, 0.5]
    print(f"CPython {platform.python_version()} on {platform.machine()}; median of {args.rounds} rounds")
    print(f"{'entries':>9} {'expired':>7} {'call':>8} {'one lifetime':>13} {'scattered':>10} {'own lifetimes':>14} "
          f"{'own / one':>9} {'own / scattered':>15}")  # fmt: skip
    cells = []
    for n in sizes:
        for share in shares:
            for method in ("purge", "expire"):
                cell = measure(n, share, method, args.rounds)
                cells.append(cell)
                print(f"{n:>9,} {share:>7.0%} {method + '()':>8} {cell['one_ns']:>10.1f} ns "
                      f"{cell['scattered_ns']:>7.1f} ns {cell['own_ns']:>11.1f} ns {cell['ratio']:>8.2f}x "
                      f"{cell['ratio_scattered']:>14.2f}x", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"python": sys.version, "rounds": args.rounds, "cells": cells}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
