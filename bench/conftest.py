"""Shared set-up for the pytest-benchmark suite (issue #5).

What is timed lives in ``memorystore._bench`` (the registry of
implementations, the key pool and the compiled loops), so this suite and
``python -m memorystore bench`` measure the same thing.

Every benchmark round runs an inner loop of ``loop`` operations (1000 by
default): per-op time = round time / loop, and each benchmark records it as
``extra_info["ns_per_op"]`` (median round) in the JSON output.

Knobs (environment):

``MEMORYSTORE_BENCH_CAPACITY``  entries per cache (default 100000; 10000 with
                                ``--benchmark-disable``, the smoke run)
``MEMORYSTORE_BENCH_ROUNDS``    timed rounds per benchmark (default 25)
``MEMORYSTORE_BENCH_1M``        ``1`` runs the 1M-entry prune cases in the smoke
                                run too (they always run when benchmarking;
                                they are marked ``slow``: ``-m "not slow"`` drops them)

Peers that are not installed are skipped.  memorystore's own implementations
are never skipped: a missing compiled core is an error, unless
``MEMORYSTORE_NO_EXTENSIONS`` is set, which deselects the compiled variants
(as in the test suite).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memorystore._bench import IMPLEMENTATIONS, Case, Impl, KeyPool

NO_EXTENSIONS = bool(os.environ.get("MEMORYSTORE_NO_EXTENSIONS"))
LOOP = 1000
WARMUP_ROUNDS = 2


def rounds() -> int:
    return int(os.environ.get("MEMORYSTORE_BENCH_ROUNDS", "25"))


def is_smoke(config: pytest.Config) -> bool:
    """True for ``--benchmark-disable``: each benchmark body runs once, untimed."""
    return bool(config.getoption("benchmark_disable", default=False))


def impl_params(predicate: Callable[[Impl], bool] = lambda impl: True) -> list[Any]:
    """pytest params over the registry; compiled variants carry the ``c_extension`` mark."""
    params = []
    for impl in IMPLEMENTATIONS:
        if predicate(impl):
            marks = [pytest.mark.c_extension] if impl.compiled else []
            params.append(pytest.param(impl, id=impl.name, marks=marks))
    return params


def require(impl: Impl) -> None:
    """Import the implementation's module: skip a missing peer, fail on a missing own module."""
    if impl.own:
        __import__(impl.module)
    else:
        pytest.importorskip(impl.module)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not NO_EXTENSIONS:
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("c_extension") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "c_extension: runs against the compiled core")
    config.addinivalue_line(
        "markers", "op(name): parametrize the test's `impl` over every implementation that has this operation"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``impl`` and marked ``@pytest.mark.op(NAME)`` runs for each implementation with NAME."""
    marker = metafunc.definition.get_closest_marker("op")
    if "impl" in metafunc.fixturenames and marker is not None:
        op = marker.args[0]
        metafunc.parametrize("impl", impl_params(lambda impl: impl.supports(op)))


@pytest.fixture(scope="session")
def capacity(pytestconfig: pytest.Config) -> int:
    default = "10000" if is_smoke(pytestconfig) else "100000"
    return int(os.environ.get("MEMORYSTORE_BENCH_CAPACITY", default))


@pytest.fixture(scope="session")
def key_pool() -> KeyPool:
    """The same random 37-char keys (fixed seed) for every implementation."""
    return KeyPool(seed=5)


def record(benchmark: Any, loop: int, **info: Any) -> None:
    """Store ns/op (median round / loop) and the loop size in the JSON output."""
    benchmark.extra_info.update(info)
    benchmark.extra_info["ops_per_round"] = loop
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["ns_per_op"] = round(stats.stats.median * 1e9 / loop, 2)


def run_case(benchmark: Any, case: Case) -> None:
    """Time ``case`` with pytest-benchmark: one untimed ``setup`` per round."""
    benchmark.group = case.op
    try:
        benchmark.pedantic(case.run, setup=case.setup, rounds=rounds(), warmup_rounds=WARMUP_ROUNDS)
        case.check()
        record(benchmark, case.loop, impl=case.impl.name, op=case.op, capacity=case.capacity)
    finally:
        case.close()


@pytest.fixture(scope="session")
def smoke(pytestconfig: pytest.Config) -> bool:
    return is_smoke(pytestconfig)


@pytest.fixture(scope="session")
def bench() -> Any:
    """The helpers a benchmark module needs (test modules never import conftest)."""
    import types

    return types.SimpleNamespace(
        LOOP=LOOP, WARMUP_ROUNDS=WARMUP_ROUNDS, rounds=rounds, require=require, record=record, run_case=run_case
    )


@pytest.fixture(autouse=True)
def _collect_between_benchmarks() -> Iterator[None]:
    """Free the previous benchmark's cache before the next one is built."""
    gc.collect()
    yield
    gc.collect()
