"""The MemoryStore contract tests, re-run on SharedMemoryStore (SPEC: "the MemoryStore API").

The test functions of test_store*.py are imported here and collected again, with
``make`` and ``store_cls`` building SharedMemoryStores on fresh segments
(``max`` becomes ``capacity``).  The few tests that need what a shared store
does not offer (``length``, ``serializer=None``, a core class) are skipped,
each with the reason.
"""

from __future__ import annotations

import os
import uuid

import pytest
from test_store import *  # noqa: F403
from test_store_persistence import *  # noqa: F403
from test_store_seed import *  # noqa: F403

pytestmark = pytest.mark.c_extension

from memorystore import SharedMemoryStore  # noqa: E402

# Not applicable to a shared store, with the reason.
NOT_APPLICABLE = {
    "test_core_is_built_from_core_class_and_read_only": "the shared core is ShmCache, not _core_class",
    "test_interpreter_exits_with_running_thread": "runs a MemoryStore of a core module in a subprocess",
    "test_snapshot_survives_a_new_process": "runs a MemoryStore of a core module in a subprocess",
    "test_repr_has_no_sids": "the repr shows capacity, not max (test_shared.py checks it has no sids)",
    "test_constructor_uses_default_options": "a shared store is always bounded (capacity)",
    "test_fork_child_restarts_thread_and_can_use_store": (
        "the child's writes are the parent's too, by design (test_shared.py tests fork)"
    ),
}


def _shared_factory(fake_timer, made, request):
    reason = NOT_APPLICABLE.get(request.node.originalname)
    if reason:
        pytest.skip(reason)

    def factory(**options):
        if "length" in options:
            pytest.skip("a shared store has no length option (capacity counts sessions)")
        if "serializer" in options and options["serializer"] is None:
            pytest.skip("a shared store keeps serialized values (serializer=None is refused)")
        capacity = options.pop("max", None)
        if capacity is None:
            capacity = 512
        options.setdefault("timer", fake_timer)
        name = f"test-contract-{uuid.uuid4().hex}"
        made.append(name)  # names only: some tests check that an unreferenced store is collected
        return SharedMemoryStore(name, capacity=capacity, max_session_bytes=1 << 20, **options)

    return factory


def _unlink(names):
    for name in names:
        try:
            os.unlink(os.path.join("/dev/shm", "memorystore." + name))
        except FileNotFoundError:
            pass


@pytest.fixture
def make(fake_timer, request):
    made = []
    yield _shared_factory(fake_timer, made, request)
    _unlink(made)


@pytest.fixture
def store_cls(fake_timer, request):
    made = []
    yield _shared_factory(fake_timer, made, request)
    _unlink(made)
