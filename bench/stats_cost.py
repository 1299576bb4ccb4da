"""What counting for ``stats()`` costs the compiled core, per operation.

Usage::

    python bench/stats_cost.py            # builds two cores, callgrind + timing (a few minutes)
    python bench/stats_cost.py --quick    # smaller runs
    python bench/stats_cost.py --json out.json

The compiled core counts through one macro, ``memorystore_count``, which a
build with ``-DMEMORYSTORE_NO_COUNTING`` compiles out.  This script builds the
core twice from this checkout, the same way (same compiler, flags and Cython),
once with and once without counting, each into its own temporary package, and
runs the same fixed workload (PYTHONHASHSEED=0, a fixed op list) on both:

1. under ``valgrind --tool=callgrind``, counting only the instructions run
   inside the core's methods (``--toggle-collect`` on their wrappers), at two
   lengths: the difference of the two counts divided by the difference of the
   lengths is the core's instructions per operation, with the cache's initial
   fill cancelled out.  Exact and repeatable: the figure that may gate a
   regression;
2. natively, best of several timed rounds, alternating between the two
   builds: ns per operation (noisy: the machine is shared; indicative only).

The cost of counting is reported as extra instructions per operation, and in
ns as those instructions at this machine's measured ns per instruction on the
whole timed loop (timed ns per op over callgrind's instructions per op of the
same loop).  The workload is a session mix on a
``LRUCache(10_000, ttl=3600, eviction="protect")``: 50% get (hits and
misses), 20% set (new keys evict), 10% overwrite, 10% peek, 5% pop, 5% touch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "memorystore"

BUILD = """
from Cython.Build import cythonize
from setuptools import Extension, setup

extension = Extension("memorystore._lru", ["memorystore/_lru.pyx"], define_macros={macros!r})
setup(name="stats-cost-variant", script_args=["build_ext", "--inplace"], ext_modules=cythonize([extension], quiet=True))
"""

WORKLOAD = """
import sys, time
from memorystore import _lru
assert _lru.__file__.startswith({package!r}), _lru.__file__
n, rounds = int(sys.argv[1]), int(sys.argv[2])
keys = ["session-%06d" % i for i in range(30_000)]


def run(cache, n):
    # The op mix, drawn from an LCG as it goes: the same ops for both builds, and
    # the timed loop is all that grows with n (so instructions and time match).
    get, peek, pop, touch, put = cache.get, cache.peek, cache.pop, cache.touch, cache.set
    value = {{"user": 1}}
    x = 12345
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        r = x % 100
        if r < 50:
            get(keys[(x >> 7) % 30_000])
        elif r < 80:
            put(keys[(x >> 7) % 15_000], value)
        elif r < 90:
            peek(keys[(x >> 7) % 30_000])
        elif r < 95:
            pop(keys[(x >> 7) % 30_000], None)
        else:
            touch(keys[(x >> 7) % 30_000])


def fresh():
    cache = _lru.LRUCache(10_000, ttl=3600, eviction="protect")
    for key in keys[:10_000]:
        cache[key] = 1
    return cache


best = float("inf")
for _ in range(rounds):
    cache = fresh()
    started = time.perf_counter_ns()
    run(cache, n)
    best = min(best, time.perf_counter_ns() - started)
stats = cache.stats()
print("ns_per_op", best / n, "hits", stats.hits, "writes", stats.writes)
"""


def build(variant: Path, counting: bool) -> Path:
    """A package directory holding this checkout's Python files and a core built with or without counting."""
    package = variant / "memorystore"
    shutil.rmtree(variant, ignore_errors=True)
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("*.so", "*.c", "*.html", "__pycache__", "*.pyd"))
    macros = [] if counting else [("MEMORYSTORE_NO_COUNTING", "1")]
    (variant / "build_variant.py").write_text(BUILD.format(macros=macros))
    subprocess.run(
        [sys.executable, "build_variant.py"], cwd=variant, check=True, capture_output=True, text=True, timeout=900
    )
    return variant


def run_workload(variant: Path, n: int, rounds: int, valgrind: str = "") -> tuple[float, int | None]:
    """(ns per op, instructions under callgrind or None); valgrind "core": inside the core only, "all": everything."""
    code = textwrap.dedent(WORKLOAD.format(package=str(variant)))
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(variant), "MEMORYSTORE_NO_EXTENSIONS": ""}
    command = [sys.executable, "-c", code, str(n), str(rounds)]
    if valgrind:
        # "core": only inside the core's methods (their Python-facing wrappers and all they
        # call): no interpreter start-up, no loop overhead in the count.
        toggle = ["--toggle-collect=__pyx_pw_11memorystore_4_lru_*"] if valgrind == "core" else []
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *toggle, *command]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"workload failed:\n{proc.stdout}\n{proc.stderr}")
    ns = float(re.search(r"ns_per_op (\S+)", proc.stdout).group(1))  # type: ignore[union-attr]
    instructions = None
    if valgrind:
        match = re.search(r"Collected : (\d+)", proc.stderr)
        if match is None:
            raise RuntimeError(f"no instruction count in callgrind's output:\n{proc.stderr}")
        instructions = int(match.group(1))
    return ns, instructions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--builds", metavar="DIR", help="build into DIR and keep the builds (reused if there)")
    parser.add_argument("--no-valgrind", action="store_true", help="timing only")
    options = parser.parse_args(argv)
    short, long_ = (20_000, 60_000) if options.quick else (100_000, 300_000)
    timed, rounds = (200_000, 3) if options.quick else (1_000_000, 7)
    have_valgrind = shutil.which("valgrind") is not None and not options.no_valgrind
    if not have_valgrind and not options.no_valgrind:
        print("valgrind is not installed: NO INSTRUCTION COUNTS, timing only (apt-get install valgrind)")
    figures: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as cleanup:
        if options.builds:
            tmp = options.builds
        else:
            tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="memorystore-stats-cost-"))
        variants = {}
        for name, counting in (("counting", True), ("no counting", False)):
            where = Path(tmp) / name.replace(" ", "-")
            if not any(where.glob("memorystore/_lru*.so")):
                print(f"building the core {'with' if counting else 'without'} counting ...", flush=True)
                build(where, counting)
            variants[name] = where
            figures[name] = {"ns_per_op": math.inf}
        # Timed rounds alternate between the builds, so a change in the machine's load hits both.
        for _ in range(rounds):
            for name, variant in variants.items():
                ns, _ = run_workload(variant, timed, 1)
                figures[name]["ns_per_op"] = min(figures[name]["ns_per_op"], ns)
        for name, variant in variants.items():
            counting = name == "counting"
            if have_valgrind:
                for scope in ("core", "all") if counting else ("core",):
                    _, ir_short = run_workload(variant, short, 1, valgrind=scope)
                    _, ir_long = run_workload(variant, long_, 1, valgrind=scope)
                    assert ir_short is not None and ir_long is not None
                    key = "instructions_per_op" if scope == "core" else "loop_instructions_per_op"
                    figures[name][key] = (ir_long - ir_short) / (long_ - short)
            print(f"  {name}: " + ", ".join(f"{key} {value:.2f}" for key, value in figures[name].items()), flush=True)
    with_counting, without = figures["counting"], figures["no counting"]
    print()
    print(
        f"timed (best of {rounds} alternating rounds of {timed} ops; noisy): "
        f"{with_counting['ns_per_op']:.1f} ns/op with counting, "
        f"{without['ns_per_op']:.1f} without: {with_counting['ns_per_op'] - without['ns_per_op']:+.2f} ns/op"
    )
    if have_valgrind:
        extra = with_counting["instructions_per_op"] - without["instructions_per_op"]
        # The timed loop and the "all" count cover the same work: their ratio is this machine's
        # ns per instruction on it.
        ns_per_instruction = with_counting["ns_per_op"] / with_counting["loop_instructions_per_op"]
        figures["cost"] = {"instructions_per_op": extra, "ns_per_op": extra * ns_per_instruction}
        print(
            f"callgrind, inside the core: {with_counting['instructions_per_op']:.1f} instructions/op "
            "with counting, "
            f"{without['instructions_per_op']:.1f} without: {extra:+.2f} instructions/op"
        )
        print(
            f"counting costs {extra:.2f} instructions/op = {extra * ns_per_instruction:.2f} ns/op "
            f"(at this workload's {ns_per_instruction:.3f} ns/instruction); budget 5 ns/op"
        )
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
