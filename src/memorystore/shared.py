"""SharedMemoryStore: one set of sessions for every worker process of a host.

A :class:`~memorystore.MemoryStore` whose core is ``memorystore._shm.ShmCache``,
a segment in ``/dev/shm`` that every process opening the same ``name`` maps.
Everything above the core -- sid rules, ttl rules, serializer, dispose, stale
reads, the prune thread, fork handling, snapshots -- is MemoryStore's own code;
this module only builds the core and adds ``unlink()`` and the host-wide
``stats()``.  Linux only (robust process-shared mutexes); elsewhere, and with
the pure-Python core, constructing one raises ``RuntimeError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from . import _core
from ._stats import SharedStats
from .store import MemoryStore

__all__ = ["SharedMemoryStore"]


class SharedMemoryStore(MemoryStore):
    """Sessions in a named shared-memory segment, shared by every process that opens ``name``.

    The first opener creates the segment (mode ``mode``, 0600 by default: only
    this user), later ones attach to it and must give the same ``capacity``,
    ``max_session_bytes``, ``arena_bytes`` and ``eviction`` (a mismatch, another
    layout version or another owner raises, naming what differs).  The segment
    outlives the processes until :meth:`unlink` or a reboot.

    ``capacity``: most sessions held.  ``max_session_bytes``: the largest
    serialized session (a larger one raises ``ValueError`` on ``set``/``add``
    and changes nothing).  ``arena_bytes``: room for the serialized sessions
    and their sids, in 64-byte blocks (default: 2 KiB per session of
    ``capacity``, at least two of the largest sessions).  A full slot array
    or arena evicts by ``eviction`` (expired sessions first), with dispose
    reason ``"evict"``.  The other options are :class:`MemoryStore`'s; the clock
    is the host's monotonic clock, and ``dispose`` runs in the process whose
    call removed the entry.

    ``serializer`` must produce ``str`` or ``bytes`` (json by default); with
    ``serializer=None`` the sessions must be ``str`` or ``bytes`` already and are
    stored as given (the Django cache backend and session engine hand over such
    encoded values).
    **Pickle only if you trust every process that can write the segment:**
    whoever can write it can then run code in every worker that reads a session.

    A process killed at any instant, even inside an operation, leaves the
    segment usable by the others: the next one to lock it repairs it (counted
    in ``stats().recoveries``), and the session being written reads as its old
    or its new value.  Works created before ``os.fork()`` (gunicorn
    ``--preload``) and opened by name in each worker alike.
    """

    def __init__(
        self,
        name: str,
        *,
        capacity: int,
        max_session_bytes: int = 16384,
        arena_bytes: int | None = None,
        ttl: float | timedelta | Callable[[str, Any], float | timedelta] | None = None,
        check_period: float | timedelta | None = None,
        dispose: Callable[[str, Any, str], Any] | None = None,
        stale: bool = False,
        no_dispose_on_set: bool = False,
        serializer: Any = json,
        eviction: str = "protect",
        mode: int = 0o600,
        timer: Callable[[], float] | None = None,
    ) -> None:
        if not _core.COMPILED:
            raise RuntimeError(
                "SharedMemoryStore needs the compiled core; this memorystore runs the pure-Python "
                "core (MEMORYSTORE_NO_EXTENSIONS is set, or the extension did not build)"
            )
        self._segment_options: dict[str, Any] = {
            "capacity": capacity,
            "max_session_bytes": max_session_bytes,
            "arena_bytes": arena_bytes,
            "eviction": eviction,
            "mode": mode,
        }
        self._name = name
        super().__init__(
            ttl=ttl,
            check_period=check_period,
            dispose=dispose,
            stale=stale,
            no_dispose_on_set=no_dispose_on_set,
            serializer=serializer,
            eviction=eviction,
            timer=timer,
        )

    def _make_core(self, **options: Any) -> Any:
        # MemoryStore's core options (maxsize, ttl, eviction) do not apply: the segment has its own.
        timer = options.get("timer")
        try:
            from ._shm import ShmCache
        except ImportError as exc:  # pragma: no cover - a build without the shared-memory extension
            raise RuntimeError(f"SharedMemoryStore needs the compiled core (memorystore._shm): {exc}") from None
        # Removed values are copied out of the segment only when dispose will see them.
        return ShmCache(self._name, timer=timer, collect=self._dispose is not None, **self._segment_options)

    def _served_stale(self) -> None:
        self._core.count_stale()

    # -- what a shared store adds ------------------------------------------------

    @property
    def name(self) -> str:
        """The segment's name."""
        return self._name

    @property
    def capacity(self) -> int:
        return self._core.capacity  # type: ignore[no-any-return]

    @property
    def created(self) -> bool:
        """Whether this store created the segment (False: it attached to an existing one)."""
        return self._core.created  # type: ignore[no-any-return]

    def unlink(self) -> None:
        """Remove the segment's name: the next opener creates a new one; attached processes keep working."""
        self._core.unlink()

    def stats(self) -> SharedStats:
        """Host-wide counters (they live in the segment) since creation or ``reset_stats()``, plus
        ``stale`` and ``recoveries``; ``maxsize`` is the capacity."""
        return self._core.stats()  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        """Zero the host-wide counters."""
        self._core.reset_stats()

    def __repr__(self) -> str:
        return (
            f"<SharedMemoryStore {self._name!r} len={len(self)} capacity={self.capacity} "
            f"check_period={self._check_period} thread={'on' if self._thread is not None else 'off'}>"
        )
