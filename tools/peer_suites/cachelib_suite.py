"""cachelib's own cache tests, pointed at ``memorystore.cachelib.MemoryStoreCache``.

``tools/peer_suites/run.py`` copies this file into the ``tests/`` directory of
cachelib's sdist (the version installed here) as ``test_memorystore_cache.py``
and runs pytest on it there, so the imports below are cachelib's test modules.

``TestMemoryStoreCache`` is cachelib's ``TestSimpleCache`` (the in-memory peer:
``CommonTests``, ``HasTests``, ``ClearTests``, ``SerializerTests`` and
SimpleCache's own tests) plus ``DeleteManyWithPrefixTests``, run as cachelib
runs them: once with the cache's default serializer and once with a subclass
that assigns another one (cachelib's ``CustomCache`` pattern).
"""

import pytest

# cachelib's test classes live in plain modules: rewrite their asserts too, for readable failures.
pytest.register_assert_rewrite("common", "has", "clear", "serializer", "delete_many_with_prefix", "test_simple_cache")

import test_simple_cache as simple  # noqa: E402
from delete_many_with_prefix import DeleteManyWithPrefixTests  # noqa: E402

from memorystore.cachelib import MemoryStoreCache  # noqa: E402


class CustomMemoryStoreCache(MemoryStoreCache):
    """A subclass with a non-default serializer, as cachelib's CustomCache."""

    serializer = simple.SillySerializer()


@pytest.fixture(autouse=True, params=[MemoryStoreCache, CustomMemoryStoreCache])
def cache_factory(request):
    def _factory(self, *args, **kwargs):
        return request.param(*args, **kwargs)

    request.cls.cache_factory = _factory


class TestMemoryStoreCache(simple.TestSimpleCache, DeleteManyWithPrefixTests):
    """cachelib's tests for SimpleCache, on MemoryStoreCache."""
