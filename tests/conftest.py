"""Fixtures shared by the whole suite.

Every contract test runs against both cores, as aio-libs' propcache and
multidict do: the ``c`` parameter is marked ``c_extension`` and is deselected
(not skipped) when ``MEMORYSTORE_NO_EXTENSIONS`` is set.  When the variable is
unset, the compiled core must import: a build without it errors loudly here
instead of quietly testing the fallback twice.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import sysconfig
import threading
from types import ModuleType

import pytest

NO_EXTENSIONS = bool(os.environ.get("MEMORYSTORE_NO_EXTENSIONS"))
# Set by tools/test-freethreaded.sh: the run must be free-threaded from first to last test.
REQUIRE_FREE_THREADING = bool(os.environ.get("MEMORYSTORE_REQUIRE_FREE_THREADING"))

CORE_PARAMS = [
    pytest.param("memorystore._lru", id="c", marks=pytest.mark.c_extension),
    pytest.param("memorystore._lru_py", id="py"),
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not NO_EXTENSIONS:
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("c_extension") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def _gil_enabled() -> bool:
    return getattr(sys, "_is_gil_enabled", lambda: True)()


def pytest_sessionstart(session: pytest.Session) -> None:
    """With REQUIRE_FREE_THREADING: import every module of the package first; the GIL must stay off.

    A module (ours or a dependency it imports) that does not declare itself free-threading safe
    makes CPython turn the GIL back on at import, and the run would quietly test a GIL build.
    """
    if not REQUIRE_FREE_THREADING:
        return
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.exit("MEMORYSTORE_REQUIRE_FREE_THREADING is set, but this is not a free-threaded build", returncode=1)
    if os.environ.get("PYTHON_GIL"):
        pytest.exit("PYTHON_GIL is set: it would hide a module that turns the GIL back on", returncode=1)
    import memorystore

    for module in pkgutil.walk_packages(memorystore.__path__, "memorystore."):
        importlib.import_module(module.name)
        if _gil_enabled():
            pytest.exit(f"importing {module.name} turned the GIL back on", returncode=1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_FREE_THREADING and _gil_enabled():
        print("\nthe GIL was turned back on during the run (a test dependency's extension?)", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class FakeTimer:
    """A monotonic clock that only moves when the test says so.

    pytest-run-parallel runs one test body in several threads at once with the
    same fixture values, so one clock shared by them would move by every
    thread's ``advance``.  Hence: the thread that made the timer (pytest's own,
    which also runs the test in a normal run) moves the shared reading, which
    every thread without a clock of its own sees (a prune thread, an executor);
    any other thread that moves it (``advance`` or ``time = ...``) forks a
    private reading from the shared one, and from then on sees only that.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._owner = threading.get_ident()
        self._shared = start
        self._private: dict[int, float] = {}  # thread ident -> that thread's reading

    @property
    def time(self) -> float:
        return self._private.get(threading.get_ident(), self._shared)

    @time.setter
    def time(self, value: float) -> None:
        me = threading.get_ident()
        if me == self._owner:
            self._shared = value
        else:
            self._private[me] = value

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


@pytest.fixture
def fake_timer() -> FakeTimer:
    return FakeTimer()


@pytest.fixture(params=CORE_PARAMS)
def lru_impl(request: pytest.FixtureRequest) -> ModuleType:
    """The core module under test (compiled or pure); fails if it does not import."""
    return importlib.import_module(request.param)


# Stores under test: MemoryStore on each core, and SharedMemoryStore (compiled core only).
STORE_PARAMS = [*CORE_PARAMS, pytest.param("shm", id="shm", marks=pytest.mark.c_extension)]

# Tests of a MemoryStore that do not apply to a SharedMemoryStore, with the reason.
NOT_FOR_SHARED = {
    "test_a_shared_store_adds_recoveries": "subclasses the store to fake recoveries; the real shared store's "
    "are checked by test_counters_and_gauges_per_store[shm]",
    "test_core_is_built_from_core_class_and_read_only": "the shared core is ShmCache, not _core_class",
    "test_interpreter_exits_with_running_thread": "runs a MemoryStore of a core module in a subprocess",
    "test_prune_threads_end_before_interpreter_finalization": "runs a MemoryStore of a core module in a subprocess",
    "test_snapshot_survives_a_new_process": "runs a MemoryStore of a core module in a subprocess",
    "test_repr_has_no_sids": "the repr shows capacity, not max (test_shared.py checks it has no sids)",
    "test_constructor_uses_default_options": "a shared store is always bounded (capacity)",
    "test_a_passed_store_is_used_as_is": "checks identity (serializer=None); a shared store hands out copies",
    "test_fork_child_restarts_thread_and_can_use_store": (
        "the child's writes are the parent's too, by design (test_shared.py tests fork)"
    ),
}


class SharedStoreFactory:
    """Builds SharedMemoryStores on fresh segments for tests written for ``store_cls(**options)``.

    ``max`` becomes ``capacity`` (512 when absent); a test that needs ``length``
    skips; ``serializer=None`` stays (the adapters hand over str or bytes) except for
    the store's own tests, which store other objects that way and skip.
    """

    _core_class = None

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.names: list[str] = []  # names only: some tests check that an unreferenced store is collected
        reason = NOT_FOR_SHARED.get(request.node.originalname)
        if reason:
            pytest.skip(reason)

    def __call__(self, **options):  # type: ignore[no-untyped-def]
        import uuid

        from memorystore import SharedMemoryStore

        if "length" in options:
            pytest.skip("a shared store has no length option (capacity counts sessions)")
        if "serializer" in options and options["serializer"] is None:
            if self.request.module.__name__.startswith("test_store"):
                pytest.skip("a shared store keeps str or bytes: serializer=None stores no other object")
        capacity = options.pop("max", None)
        name = f"test-{os.getpid()}-{uuid.uuid4().hex[:16]}"
        self.names.append(name)
        return SharedMemoryStore(
            name, capacity=512 if capacity is None else capacity, max_session_bytes=1 << 20, **options
        )

    def unlink(self) -> None:
        for name in self.names:
            try:
                os.unlink(os.path.join("/dev/shm", "memorystore." + name))
            except FileNotFoundError:
                pass


@pytest.fixture(params=STORE_PARAMS)
def store_cls(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """MemoryStore bound to the core under test, or a SharedMemoryStore factory."""
    if request.param == "shm":
        factory = SharedStoreFactory(request)
        yield factory
        factory.unlink()
        return
    from memorystore.store import MemoryStore

    module = importlib.import_module(request.param)
    yield type(f"MemoryStore_{module.__name__.rsplit('.', 1)[-1]}", (MemoryStore,), {"_core_class": module.LRUCache})


@pytest.fixture
def make(store_cls: type, fake_timer: FakeTimer):  # type: ignore[no-untyped-def]
    """Build stores on the core under test with the fake clock; close them afterwards."""
    made = []

    def factory(**options):  # type: ignore[no-untyped-def]
        options.setdefault("timer", fake_timer)
        store = store_cls(**options)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()
