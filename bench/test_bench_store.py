"""Store-level benchmarks: a realistic session through each store's serializer.

``MemoryStore`` with ``json`` and with ``pickle`` against the two in-process
session caches people use today, cachelib's ``SimpleCache`` (Flask-Session's
``cachelib`` backend; pickles) and Django's ``LocMemCache`` (pickles).  Each
holds ``capacity`` sessions (random 37-char ids, fixed seed); ``get`` reads a
present session (deserializing it), ``set`` overwrites a present session
(serializing it).  1000 operations per round; ``extra_info["ns_per_op"]``.

Target (issue #5): MemoryStore with pickle >= 3x faster than both peers.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from memorystore._bench import DEFAULT_TTL, IMPLEMENTATIONS_BY_NAME, Impl, KeyPool, make_case

#: ~300 bytes serialized: what a typical web session holds.
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


def _memorystore(serializer: Any) -> Any:
    def build(capacity: int) -> Any:
        from memorystore import MemoryStore

        return MemoryStore(ttl=DEFAULT_TTL, max=capacity, serializer=serializer)

    return build


_STORE_METHODS = "get = c.get; set_ = c.set; destroy = c.destroy"
STORES: tuple[Impl, ...] = (
    *(
        Impl(
            f"MemoryStore-{serializer.__name__}",
            "memorystore.store",
            _memorystore(serializer),
            set="set_(k, v)",
            delete="destroy(k)",
            prelude=_STORE_METHODS,
            own=True,
            ttl=True,
            kind="own",
        )
        for serializer in (json, pickle)
    ),
    IMPLEMENTATIONS_BY_NAME["cachelib.SimpleCache"],
    IMPLEMENTATIONS_BY_NAME["django.LocMemCache"],
)


def store_params() -> list[Any]:
    return [pytest.param(impl, id=impl.name) for impl in STORES]


def test_session_payload_is_realistic() -> None:
    assert 250 <= len(json.dumps(SESSION)) <= 350
    assert 250 <= len(pickle.dumps(SESSION, pickle.HIGHEST_PROTOCOL)) <= 350


@pytest.mark.parametrize("store_impl", store_params())
def test_store_get_session(bench: Any, benchmark: Any, store_impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    bench.require(store_impl)
    case = make_case(store_impl, "get_hit", capacity=capacity, loop=bench.LOOP, pool=key_pool, value=SESSION)
    assert case.cache.get(key_pool[0]) == SESSION  # a real round trip through the serializer
    case.op = "store_get"
    bench.run_case(benchmark, case)


@pytest.mark.parametrize("store_impl", store_params())
def test_store_set_session(bench: Any, benchmark: Any, store_impl: Impl, capacity: int, key_pool: KeyPool) -> None:
    bench.require(store_impl)
    case = make_case(store_impl, "overwrite", capacity=capacity, loop=bench.LOOP, pool=key_pool, value=SESSION)
    case.op = "store_set"
    bench.run_case(benchmark, case)
