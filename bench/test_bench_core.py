"""Per-operation benchmarks: memorystore's cores and store against the peers.

One function per operation, parametrized over every implementation in
``memorystore._bench.IMPLEMENTATIONS`` that has the operation (plain dict and
functools.lru_cache are the floors).  Each round is an inner loop of 1000
operations on a cache filled to capacity with the same random 37-char keys;
``extra_info["ns_per_op"]`` holds the per-op time.  pytest-benchmark groups
the results by operation.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import LOOP, impl_params, require, run_case

from memorystore._bench import Impl, KeyPool, make_case


def _bench(benchmark: Any, impl: Impl, op: str, capacity: int, key_pool: KeyPool) -> None:
    require(impl)
    case = make_case(impl, op, capacity=capacity, loop=LOOP, pool=key_pool)
    run_case(benchmark, case)


@pytest.mark.parametrize("impl", impl_params(lambda impl: impl.supports("get_hit")))
def test_get_hit(benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(benchmark, impl, "get_hit", capacity, key_pool)


@pytest.mark.parametrize("impl", impl_params(lambda impl: impl.supports("get_miss")))
def test_get_miss(benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(benchmark, impl, "get_miss", capacity, key_pool)


@pytest.mark.parametrize("impl", impl_params(lambda impl: impl.supports("set_new")))
def test_set_new_evicting(benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(benchmark, impl, "set_new", capacity, key_pool)


@pytest.mark.parametrize("impl", impl_params(lambda impl: impl.supports("overwrite")))
def test_overwrite(benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(benchmark, impl, "overwrite", capacity, key_pool)


@pytest.mark.parametrize("impl", impl_params(lambda impl: impl.supports("delete")))
def test_delete(benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(benchmark, impl, "delete", capacity, key_pool)


@pytest.mark.parametrize("impl", impl_params(lambda impl: impl.supports("mix")))
def test_session_mix(benchmark: Any, impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    _bench(benchmark, impl, "mix", capacity, key_pool)
