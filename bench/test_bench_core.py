"""Per-operation benchmarks: memorystore's cores and store against the peers.

One function per operation; ``bench/conftest.py`` parametrizes ``impl`` over
every implementation in ``memorystore._bench.IMPLEMENTATIONS`` that has the
operation (``@pytest.mark.op``); plain dict and functools.lru_cache are the
floors.  Each round is an inner loop of 1000 operations on a cache filled to
capacity with the same random 37-char keys; ``extra_info["ns_per_op"]`` holds
the per-op time.  pytest-benchmark groups the results by operation.  After the
last round every case checks that it did what it claims (hits hit, evictions
evicted, deletes deleted).
"""

from __future__ import annotations

from typing import Any

import pytest

from memorystore._bench import Impl, KeyPool, make_case


def _bench(bench: Any, benchmark: Any, impl: Impl, op: str, capacity: int, key_pool: KeyPool) -> None:
    bench.require(impl)
    case = make_case(impl, op, capacity=capacity, loop=bench.LOOP, pool=key_pool)
    bench.run_case(benchmark, case)


@pytest.mark.op("get_hit")
def test_get_hit(bench: Any, benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(bench, benchmark, impl, "get_hit", capacity, key_pool)


@pytest.mark.op("get_miss")
def test_get_miss(bench: Any, benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(bench, benchmark, impl, "get_miss", capacity, key_pool)


@pytest.mark.op("set_new")
def test_set_new_evicting(bench: Any, benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(bench, benchmark, impl, "set_new", capacity, key_pool)


@pytest.mark.op("overwrite")
def test_overwrite(bench: Any, benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(bench, benchmark, impl, "overwrite", capacity, key_pool)


@pytest.mark.op("delete")
def test_delete(bench: Any, benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(bench, benchmark, impl, "delete", capacity, key_pool)


@pytest.mark.op("mix")
def test_session_mix(bench: Any, benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(bench, benchmark, impl, "mix", capacity, key_pool)
