"""MemoryStore: sessions in process memory with a TTL each, an optional bound and cheap pruning.

The store adds session semantics on top of the core (:class:`memorystore.LRUCache`):
session-id validation, the ttl rules, serialization, ``dispose`` with a
reason, ``stale`` reads, a background prune thread, snapshots, and one lock.

Order of work in every mutating call: validate the arguments, compute the
ttl, serialize and measure the value (all user code, run with no lock held),
then run the core operation(s) -- one atomic core call needs no store lock,
several take the lock around the core calls only -- and finally call
``dispose`` for whatever left the store.  So a failing serializer or ttl
callable leaves the store untouched, and ``dispose`` may call the store.

Snapshots (``dump``/``load``/``save``/``restore``) carry stored values, i.e.
what the serializer produced; they are deserialized only by ``get``, as
usual, so restoring a file never runs ``pickle.loads`` on it by itself.
"""

from __future__ import annotations

import atexit
import base64
import json
import math
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeGuard

from . import _core
from ._log import logger
from ._policy import check_eviction
from ._rules import DEFAULT_TTL, MAX_SID_LENGTH, TtlRule, absent_sid, bad_sid, sid_batch, to_seconds
from ._stats import StoreStats

__all__ = ["MemoryStore", "MAX_SID_LENGTH", "DEFAULT_TTL", "SNAPSHOT_VERSION"]

#: Version of the ``save``/``restore`` file format.
SNAPSHOT_VERSION = 1
#: Seconds between two warnings, per store, about entries too large to be stored.
TOO_LARGE_LOG_INTERVAL = 60.0

_MISSING: Any = object()
_INF = math.inf


def _check_period(value: object) -> float | None:
    """``None``/0 (no thread) or a positive finite number of seconds."""
    if value is None:
        return None
    seconds = to_seconds(value, "check_period")
    if seconds == 0:
        return None
    if seconds < 0 or seconds == _INF or seconds > threading.TIMEOUT_MAX:
        raise ValueError("check_period must be a positive, finite number of seconds, or None/0")
    return seconds


# -- the prune thread ---------------------------------------------------------


def _prune_loop(store_ref: weakref.ReferenceType[MemoryStore], stop: threading.Event, period: float) -> None:
    """Body of the prune thread: holds only a weak reference to its store."""
    while not stop.wait(period):
        store = store_ref()
        if store is None:
            return
        try:
            store.prune()
        except BaseException:  # noqa: BLE001 - the thread must survive anything
            logger.warning("periodic prune failed", exc_info=True)
        del store
    logger.debug("prune thread stopped")


# Stores alive in this process, so that a forked child can fix them up.
_STORES: weakref.WeakSet[MemoryStore] = weakref.WeakSet()
_FORK_HELD: list[MemoryStore] = []


def _before_fork() -> None:
    # Hold every store's lock across fork(), so the child never inherits a core mid-update.
    for store in list(_STORES):
        store._lock.acquire()
        _FORK_HELD.append(store)


def _after_fork_in_parent() -> None:
    while _FORK_HELD:
        _FORK_HELD.pop()._lock.release()


def _after_fork_in_child() -> None:
    held, _FORK_HELD[:] = list(_FORK_HELD), []
    del held
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def _joinable(thread: threading.Thread | None) -> TypeGuard[threading.Thread]:
    """Whether ``thread`` is a started prune thread other than the caller (which cannot join itself)."""
    return thread is not None and thread is not threading.current_thread() and thread.ident is not None


# How long the interpreter's exit waits for a prune thread that is inside a prune (a slow dispose).
_EXIT_JOIN_SECONDS = 5.0


def _stop_prune_threads_at_exit() -> None:
    # A prune thread is a daemon, so that a forgotten store never keeps a process alive; but a
    # daemon thread still running once the interpreter finalizes can deadlock it: the free-threaded
    # 3.13 build hangs for good when such a thread starts a collection then (CPython gh-137433; it
    # hung our exit test in CI).  atexit callbacks run before finalization begins, so every prune
    # thread is told to stop here and given a bounded time to finish the prune it is in.
    threads = []
    for store in list(_STORES):
        thread, stop = store._thread, store._stop
        if stop is not None:
            stop.set()
        if _joinable(thread):
            threads.append(thread)
    deadline = time.monotonic() + _EXIT_JOIN_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


atexit.register(_stop_prune_threads_at_exit)


# -- the store ------------------------------------------------------------------


class MemoryStore:
    """A thread-safe session store in process memory (the module docstring and the README say more).

    All durations are seconds (int/float) or ``datetime.timedelta``.
    ``ttl``: lifetime of a session (a number, or ``ttl(sid, session)``); when
    ``None``, the session's ``["cookie"]["max_age"]`` (seconds) or
    ``["cookie"]["maxAge"]`` (milliseconds), else one day.  ``max``: bound on
    the total ``length(stored_value, sid)`` of the entries (default length 1,
    so ``max`` counts sessions).  ``check_period``: seconds between
    background prunes (``None``/0: no thread).  ``dispose(sid, session,
    reason)``: called after an entry left the store, reason ``"expire"``,
    ``"evict"``, ``"delete"`` or ``"set"``.  ``stale``: ``get`` returns an
    expired entry once.  ``serializer``: an object with ``dumps``/``loads``
    (default :mod:`json`); ``None`` stores the objects themselves.
    ``timer``: monotonic clock for the core (tests).  ``eviction``: which
    live session ``max`` pushes out first: ``"protect"`` (default), sessions
    never read since they were created (one-shot visitors, a flood) before
    sessions in use; ``"lru"``, the least recently used (the seed's order).

    Locking: the core makes every single operation atomic, so the
    per-request calls that are one core call (``get``, ``set``, ``add`` --
    the core's create-if-absent --, ``touch``, ``in``) take no store lock; an
    expired entry is handed to exactly one caller, so it is disposed once.
    Multi-step operations (``destroy``, ``clear``, ``prune``, ``load``,
    ``all``/``ids``/``dump``, interval control) hold the store's ``RLock`` around their core calls
    only; user code (ttl callable, serializer, ``length``, ``dispose``) never
    runs under it.  Around ``os.fork()`` every store lock is held, and the
    child gets fresh locks and restarts its prune thread.
    """

    #: The core class; the test-suite fixture swaps it per core.
    _core_class: type = _core.LRUCache

    def __init__(
        self,
        *,
        ttl: float | timedelta | Callable[[str, Any], float | timedelta] | None = None,
        max: int | None = None,  # noqa: A002 - the option's public name
        length: Callable[[Any, str], int] | None = None,
        check_period: float | timedelta | None = None,
        dispose: Callable[[str, Any, str], Any] | None = None,
        stale: bool = False,
        no_dispose_on_set: bool = False,
        serializer: Any = json,
        timer: Callable[[], float] | None = None,
        eviction: str = "protect",
    ) -> None:
        # ttl: a constant, a callable, or None (the cookie rule).
        self._ttl_rule = TtlRule(ttl)
        self._ttl_const = self._ttl_rule.const  # the hot path of set() reads it directly
        if max is not None:
            # The core's rules (TypeError for anything but an int, floats included; ValueError below 1),
            # checked here so the message names the store's option.
            if isinstance(max, bool) or not isinstance(max, int):
                hint = " (write 1_000_000, not 1e6)" if isinstance(max, float) else ""
                raise TypeError(f"max must be an int >= 1 or None, not {type(max).__name__}{hint}")
            if max < 1:
                raise ValueError(f"max must be an int >= 1 or None, not {max}")
        if length is not None and not callable(length):
            raise TypeError("length must be callable or None")
        if dispose is not None and not callable(dispose):
            raise TypeError("dispose must be callable or None")
        if timer is not None and not callable(timer):
            raise TypeError("timer must be callable or None")
        if serializer is not None and not (
            callable(getattr(serializer, "dumps", None)) and callable(getattr(serializer, "loads", None))
        ):
            raise TypeError("serializer must have dumps() and loads(), or be None")
        self._check_period = _check_period(check_period)
        self._eviction = check_eviction(eviction)

        self._max = max
        self._length = length
        self._dispose = dispose
        self._dispose_on_set = not no_dispose_on_set
        self._stale = bool(stale)
        self._serializer = serializer
        self._dumps: Callable[[Any], Any] | None = None if serializer is None else serializer.dumps
        self._loads: Callable[[Any], Any] | None = None if serializer is None else serializer.loads
        self._timer = timer
        # Clock of the too-large warning's rate limit: the core's (so a fake timer drives both).
        self._clock: Callable[[], float] = timer if timer is not None else time.monotonic
        self._too_large_lock = threading.Lock()
        self._too_large_next_log = -_INF

        core = self._make_core(maxsize=max, ttl=None, timer=timer, eviction=eviction)
        self._core = core
        self._stale_served = 0  # expired sessions get() returned one last time (stats().stale)
        # Hot core methods, bound once.
        self._core_get = core.get
        self._core_put = core.put
        self._core_pop = core.pop
        self._core_touch = core.touch
        self._core_contains = core.__contains__
        self._core_pop_expired = core.pop_expired
        self._core_expire = core.expire
        self._core_entries = core.entries

        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        _STORES.add(self)
        logger.debug(
            "store created: max=%s eviction=%s check_period=%s serializer=%s core=%s",
            max,
            eviction,
            self._check_period,
            "none" if serializer is None else getattr(serializer, "__name__", type(serializer).__name__),
            "pure" if type(core).__module__ == "memorystore._lru_py" else "compiled",
        )
        if self._check_period is not None:
            self.start_interval()

    # -- hooks (SharedMemoryStore keeps its core and counters in shared memory) -----

    def _make_core(self, **options: Any) -> Any:
        """Build the core this store runs on from the core's options (called once, by ``__init__``)."""
        return self._core_class(**options)

    def _served_stale(self) -> None:
        """``get`` is serving an expired session once (``stale=True``): ``stats().stale``."""
        with self._lock:
            self._stale_served += 1

    # -- helpers ----------------------------------------------------------------

    def _ttl_for(self, sid: str, session: Any, ttl: Any) -> float:
        """The lifetime for this write: the call's ttl, else the option, else the cookie rule."""
        return self._ttl_rule.for_write(sid, session, ttl)

    def _measure(self, value: Any, sid: str) -> int:
        """The length of one entry, from the ``length`` option, checked."""
        size = self._length(value, sid)  # type: ignore[misc]
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"length() must return an int, not {type(size).__name__}")
        if size < 0:
            raise ValueError("length() must return an int >= 0")
        return size

    def _too_large(self, size: int) -> None:
        """Log an entry the core did not store because its length exceeds ``max``.

        Called once for each ``"reject"`` triple the core hands back, and only
        then: the core counts the same event (``stats().rejected``), so the count
        and the log line come from one decision, whichever write path made it.
        Logged at WARNING with the length and the bound only (never the sid or
        the content), at most once per ``TOO_LARGE_LOG_INTERVAL`` seconds of this
        store's clock.
        """
        now = self._clock()
        if now < self._too_large_next_log or not self._too_large_lock.acquire(blocking=False):
            return
        try:
            if now < self._too_large_next_log:
                return
            self._too_large_next_log = now + TOO_LARGE_LOG_INTERVAL
        finally:
            self._too_large_lock.release()
        logger.warning(
            "an entry of length %d is longer than max=%d: not stored (logged at most once a minute per store)",
            size,
            self._max,
        )

    def _prepare(self, sid: str, session: Any, ttl: Any) -> tuple[Any, float, Any]:
        """Everything a write needs, computed with no lock held: (stored value, seconds, size)."""
        seconds = self._ttl_for(sid, session, ttl)
        value = session if self._dumps is None else self._dumps(session)
        size = None if self._length is None else self._measure(value, sid)
        return value, seconds, size

    def _notify(self, removed: Iterable[tuple[str, Any, str]]) -> None:
        """Call dispose for each removed (sid, stored value, reason); no lock is held here."""
        dispose = self._dispose
        if dispose is None:
            return
        loads = self._loads
        for sid, value, reason in removed:
            if reason == "reject" or (reason == "set" and not self._dispose_on_set):
                continue  # a rejected value never entered the store
            try:
                dispose(sid, value if loads is None else loads(value), reason)
            except Exception:
                logger.warning("dispose raised for an entry leaving with reason %r", reason, exc_info=True)

    # -- reads ------------------------------------------------------------------

    def get(self, sid: str) -> Any:
        """The session under ``sid`` (a fresh copy with a serializer), or ``None``.

        Marks the entry most recently used.  An expired entry found here is
        removed (dispose reason ``"expire"``); with ``stale=True`` it is
        returned this one last time.  A ``str`` no session can have (empty,
        over-long) answers ``None``; a sid that is not exactly ``str`` raises
        ``TypeError``.
        """
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            absent_sid(sid)
            return None
        # One atomic core call on a hit: no store lock needed (see "Locking" in the class doc).
        # None, not _MISSING, answers a miss: on a free-threaded build every reference taken to
        # a shared object writes its count, one cache line for all threads (None is immortal).
        # A live stored None (serializer=None) costs one more core call, which answers _MISSING.
        value = self._core_get(sid)
        if value is None:
            value = self._core_pop_expired(sid, _MISSING)
            if value is _MISSING:
                return None
            self._notify(((sid, value, "expire"),))
            if not self._stale:
                return None
            self._served_stale()
        return value if self._loads is None else self._loads(value)

    def __contains__(self, sid: object) -> bool:
        """Whether a live entry exists under ``sid``; recency is unchanged."""
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            absent_sid(sid)
            return False
        return self._core_contains(sid)

    def all(self) -> dict[str, Any]:
        """Every live session, ``{sid: session}``, most recently used first; recency is unchanged."""
        with self._lock:
            entries = self._core_entries()
        loads = self._loads
        if loads is None:
            return {sid: value for sid, value, _ in entries}
        return {sid: loads(value) for sid, value, _ in entries}

    def ids(self) -> list[str]:
        """Live session ids, most recently used first; recency is unchanged."""
        with self._lock:
            return [sid for sid, _, _ in self._core_entries()]

    def length(self) -> int:
        """How many live sessions the store holds."""
        with self._lock:
            return len(self._core)

    def __len__(self) -> int:
        with self._lock:
            return len(self._core)

    # -- writes -----------------------------------------------------------------

    def set(self, sid: str, session: Any, ttl: float | timedelta | None = None) -> None:
        """Store ``session`` under ``sid`` as the most recently used entry.

        ``ttl`` overrides the ttl option for this call (``math.inf``: never
        expires; ``<= 0``: removes the entry).  If the ttl callable or the
        serializer raises, the exception propagates and the store is unchanged.
        An entry longer than ``max`` is not stored (an old one is removed);
        that is logged at WARNING with its length and ``max`` (never the sid or
        the content), at most once a minute per store.
        """
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            bad_sid(sid)
        if ttl is None and self._ttl_const is not None:
            seconds = self._ttl_const
        else:
            seconds = self._ttl_for(sid, session, ttl)
        value = session if self._dumps is None else self._dumps(session)
        size = None if self._length is None else self._measure(value, sid)
        removed = self._core_put(sid, value, seconds, size)  # one atomic core operation: no store lock
        if size is not None and removed and removed[-1][2] == "reject":  # always the last triple
            self._too_large(size)
        if removed and self._dispose is not None:
            self._notify(removed)

    def add(self, sid: str, session: Any, ttl: float | timedelta | None = None) -> bool:
        """Store ``session`` only if no live entry exists under ``sid``; return whether it did."""
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            bad_sid(sid)
        value, seconds, size = self._prepare(sid, session, ttl)
        removed = self._core_put(sid, value, seconds, size, True)  # atomic create-if-absent in the core
        if removed is None:
            return False
        if size is not None and removed and removed[-1][2] == "reject":  # always the last triple
            self._too_large(size)
        if removed and self._dispose is not None:
            self._notify(removed)
        return True

    def destroy(self, sids: str | Iterable[str]) -> None:
        """Remove one session, or each of an iterable of sids (all are validated first).

        Dispose reason ``"delete"`` (``"expire"`` for an entry that had
        already expired); unknown sids, and ``str`` sids no session can have,
        are ignored.  A sid that is not exactly ``str`` raises ``TypeError``
        before anything is removed.
        """
        if type(sids) is str and 0 < len(sids) <= MAX_SID_LENGTH:
            batch: Iterable[str] = (sids,)  # the usual call (a logout): skip building a checked list
        else:
            batch = sid_batch(sids)
        removed = []
        with self._lock:
            for sid in batch:
                value = self._core_pop(sid, _MISSING)
                if value is not _MISSING:
                    removed.append((sid, value, "delete"))
                else:
                    value = self._core_pop_expired(sid, _MISSING)
                    if value is not _MISSING:
                        removed.append((sid, value, "expire"))
        if removed:
            self._notify(removed)

    def touch(self, sid: str, session: Any = None, ttl: float | timedelta | None = None) -> bool:
        """Give a live entry a new deadline and make it most recently used.

        The lifetime is ``ttl`` if given, else the ttl rules applied to
        ``session`` (with ``session=None`` and no ttl option: one day).  The
        stored value is neither re-serialized nor disposed.  A lifetime
        ``<= 0`` leaves the entry expired (it is disposed as ``"expire"``
        when next found).  Returns ``False``, changing nothing, when there is
        no live entry (a ``str`` no session can have included).
        """
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            absent_sid(sid)
            return False
        seconds = self._ttl_for(sid, session, ttl)
        return self._core_touch(sid, seconds)

    def clear(self) -> None:
        """Remove every entry: dispose reason ``"delete"`` for live ones, ``"expire"`` for expired ones."""
        if self._dispose is None:
            with self._lock:
                self._core.clear()
            logger.debug("cleared the store")
            return
        removed: list[tuple[str, Any, str]] = []
        with self._lock:
            # Entry by entry, each removal atomic: a concurrent get() that pops an entry
            # expiring meanwhile disposes it itself, so nothing is disposed twice.
            removed.extend((sid, value, "expire") for sid, value in self._core_expire())
            for sid, _, _ in self._core_entries():
                value = self._core_pop(sid, _MISSING)
                if value is not _MISSING:
                    removed.append((sid, value, "delete"))
                    continue
                value = self._core_pop_expired(sid, _MISSING)
                if value is not _MISSING:
                    removed.append((sid, value, "expire"))
            removed.extend((sid, value, "expire") for sid, value in self._core_expire())
        logger.debug("cleared %d entries", len(removed))
        self._notify(removed)

    def prune(self) -> int:
        """Remove every expired entry (dispose reason ``"expire"``); return how many.

        Costs O(expired entries); recency order is unchanged.
        """
        if self._dispose is None:  # nothing to hand the entries to: let the core release them
            with self._lock:
                count = self._core.purge()
            if count:
                logger.debug("pruned %d expired entries", count)
            return count  # type: ignore[no-any-return]
        with self._lock:
            expired = self._core_expire()
        if expired:
            logger.debug("pruned %d expired entries", len(expired))
            self._notify((sid, value, "expire") for sid, value in expired)
        return len(expired)

    # -- the prune thread -----------------------------------------------------------

    @property
    def check_period(self) -> float | None:
        """Seconds between background prunes, or ``None``."""
        return self._check_period

    def start_interval(self, check_period: float | timedelta | None = None) -> None:
        """Start (or restart) the background prune thread.

        ``check_period`` replaces the option when given; with neither, raises
        ``ValueError``.
        """
        if check_period is not None:
            period = _check_period(check_period)
            if period is None:
                raise ValueError("start_interval() needs a check_period > 0")
        elif self._check_period is None:
            raise ValueError("start_interval() needs a check_period > 0 (none was configured)")
        else:
            period = self._check_period
        self.stop_interval()
        with self._lock:
            self._check_period = period
            self._start_thread_locked()

    def _start_thread_locked(self) -> None:
        period = self._check_period
        assert period is not None
        if self._stop is not None:  # a concurrent start_interval() won the race: retire its thread
            self._stop.set()
        stop = threading.Event()

        # When the store is collected, the weakref callback wakes the thread so it can exit.
        def wake(_ref: object, stop: threading.Event = stop) -> None:
            stop.set()

        ref = weakref.ref(self, wake)
        thread = threading.Thread(target=_prune_loop, args=(ref, stop, period), name="memorystore-prune", daemon=True)
        self._stop = stop
        self._thread = thread
        thread.start()
        logger.debug("prune thread started: every %s s", period)

    def stop_interval(self) -> None:
        """Stop the background prune thread, if any, and wait for it to end."""
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
        if stop is not None:
            stop.set()
        if _joinable(thread):
            thread.join()

    def close(self) -> None:
        """Stop background work (idempotent); the store stays usable."""
        self.stop_interval()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock, and a fresh prune thread if the parent had one."""
        self._lock = threading.RLock()
        if self._thread is not None:
            self._thread = self._stop = None
            self._start_thread_locked()

    # -- snapshots --------------------------------------------------------------------

    def dump(self) -> list[tuple[str, Any, float]]:
        """Live entries as ``(sid, stored value, remaining seconds)``, least recently used first.

        That order makes ``load`` restore recency.  ``math.inf`` marks an
        entry that never expires.
        """
        with self._lock:
            entries = self._core_entries()
        entries.reverse()
        return entries

    def load(self, entries: Iterable[tuple[str, Any, float | None]]) -> int:
        """Store ``(sid, stored value, remaining seconds)`` entries, in order; return how many.

        Values are taken as already serialized.  Entries with remaining
        ``<= 0`` are skipped (never resurrected); ``None`` or ``math.inf``
        means never expires.  Every entry is validated before any is stored.
        """
        batch = []
        for entry in entries:
            try:
                sid, value, remaining = entry
            except (TypeError, ValueError):
                raise TypeError("load() takes (sid, stored value, remaining seconds) triples") from None
            if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
                bad_sid(sid)
            seconds = _INF if remaining is None else to_seconds(remaining, "remaining")
            if seconds <= 0:
                continue
            size = None if self._length is None else self._measure(value, sid)
            batch.append((sid, value, seconds, size))
        removed: list[tuple[str, Any, str]] = []
        rejected: list[int] = []  # lengths of the entries the core did not store (too long for max)
        with self._lock:
            for sid, value, seconds, size in batch:
                out = self._core_put(sid, value, seconds, size)
                if out:
                    if size is not None and out[-1][2] == "reject":
                        rejected.append(size)
                    removed.extend(out)
        for size in rejected:
            self._too_large(size)
        logger.debug("loaded %d entries", len(batch))
        if removed:
            self._notify(removed)
        return len(batch)

    def save(self, path: str | os.PathLike[str]) -> int:
        """Write a snapshot of the live entries to ``path`` atomically; return how many.

        The file is JSON: ``{"version": 1, "saved_at": <time.time()>,
        "format": ..., "entries": [[sid, value, remaining or null], ...]}``.
        ``format`` is ``"text"`` (str values, e.g. the json serializer),
        ``"base64"`` (bytes values, e.g. pickle) or ``"json"``
        (``serializer=None``: the objects themselves, which must then be
        JSON-compatible, else ``TypeError``).  Written to a temporary file
        (mode 0600) in the same directory, then renamed over ``path``.
        """
        target = Path(path)
        saved_at = time.time()
        entries = self.dump()
        if self._serializer is None:
            fmt = "json"
            rows = [[sid, value, None if rem == _INF else rem] for sid, value, rem in entries]
        elif all(type(value) is str for _, value, _ in entries):
            fmt = "text"
            rows = [[sid, value, None if rem == _INF else rem] for sid, value, rem in entries]
        elif all(isinstance(value, (bytes, bytearray)) for _, value, _ in entries):
            fmt = "base64"
            rows = [
                [sid, base64.b64encode(value).decode("ascii"), None if rem == _INF else rem]
                for sid, value, rem in entries
            ]
        else:
            raise TypeError("save() needs stored values that are all str or all bytes")
        document = {"version": SNAPSHOT_VERSION, "saved_at": saved_at, "format": fmt, "entries": rows}
        try:
            data = json.dumps(document, allow_nan=False, separators=(",", ":"))
        except ValueError as exc:  # a circular or NaN-holding object with serializer=None
            raise TypeError(f"the stored sessions are not JSON-compatible: {exc}") from None
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        logger.debug("saved %d entries", len(rows))
        return len(rows)

    def restore(self, path: str | os.PathLike[str]) -> int:
        """Load a snapshot written by ``save``; return how many entries were stored.

        Each remaining ttl is reduced by the wall-clock time elapsed since the
        snapshot, so entries that would have expired meanwhile stay gone;
        never-expiring entries stay never-expiring.  A missing file raises
        ``FileNotFoundError``; a malformed one ``ValueError``.
        """
        with open(path, encoding="utf-8") as handle:
            try:
                document = json.load(handle)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a memorystore snapshot: {exc}") from None
        if not isinstance(document, dict) or document.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not a memorystore snapshot (version 1)")
        fmt = document.get("format")
        saved_at = document.get("saved_at")
        rows = document.get("entries")
        if fmt not in ("text", "base64", "json") or not isinstance(rows, list):
            raise ValueError("not a memorystore snapshot: bad format or entries")
        if isinstance(saved_at, bool) or not isinstance(saved_at, (int, float)) or saved_at != saved_at:
            raise ValueError("not a memorystore snapshot: bad saved_at")
        if (fmt == "json") != (self._serializer is None):
            raise ValueError(
                f"snapshot format {fmt!r} does not match this store's serializer "
                f"({'None' if self._serializer is None else 'set'})"
            )
        elapsed = max(0.0, time.time() - saved_at)
        entries = []
        for row in rows:
            if not isinstance(row, list) or len(row) != 3:
                raise ValueError("not a memorystore snapshot: bad entry")
            sid, value, remaining = row
            if fmt == "base64":
                if not isinstance(value, str):
                    raise ValueError("not a memorystore snapshot: bad base64 value")
                try:
                    value = base64.b64decode(value.encode("ascii"), validate=True)
                except (ValueError, UnicodeEncodeError):
                    raise ValueError("not a memorystore snapshot: bad base64 value") from None
            elif fmt == "text" and not isinstance(value, str):
                raise ValueError("not a memorystore snapshot: bad text value")
            if remaining is not None:
                if isinstance(remaining, bool) or not isinstance(remaining, (int, float)):
                    raise ValueError("not a memorystore snapshot: bad remaining time")
                remaining = remaining - elapsed
            entries.append((sid, value, remaining))
        count = self.load(entries)
        logger.debug("restored %d of %d entries", count, len(entries))
        return count

    # -- stored values as they are: a RedisStore's near cache ---------------------------
    # The near cache keeps the bytes as Redis sent them and the RedisStore decodes them
    # on each hit, so this store's serializer is not used on these two paths; a near
    # cache has no dispose and no stale reads (RedisStore refuses them).

    def _get_stored(self, sid: str) -> Any:
        """The stored value under ``sid`` as it is (nothing decoded), or ``None``; marks it used."""
        value = self._core_get(sid, _MISSING)
        if value is _MISSING:
            self._core_pop_expired(sid, _MISSING)  # found expired: drop it now
            return None
        return value

    def _put_stored(self, sid: str, value: Any, seconds: float) -> None:
        """Store an already serialized value for ``seconds``; one too long for ``max`` is not kept."""
        size = None if self._length is None else self._measure(value, sid)
        self._core_put(sid, value, seconds, size)

    # -- statistics -------------------------------------------------------------------

    def stats(self) -> StoreStats:
        """Counters since creation or :meth:`reset_stats`, plus the live sessions, their total length and ``max``.

        The core's counters (hits, misses, expired reads, writes, evictions,
        evictions of sessions never read since created, expirations,
        deletions, rejected too-large sessions) and ``stale``: expired
        sessions served once by ``get`` (``stale=True``).  Counting is always
        on; no session id or content is recorded.
        """
        core = self._core.stats()
        return StoreStats(
            hits=core.hits,
            misses=core.misses,
            expired=core.expired,
            stale=self._stale_served,
            writes=core.writes,
            evictions=core.evictions,
            evicted_unread=core.evicted_unread,
            expirations=core.expirations,
            deletions=core.deletions,
            rejected=core.rejected,
            length=core.length,
            size=core.size,
            maxsize=core.maxsize,
        )

    def reset_stats(self) -> None:
        """Zero the counters (the fill figures of :meth:`stats` are current values, not counters)."""
        with self._lock:
            self._core.reset_stats()
            self._stale_served = 0

    # -- misc -----------------------------------------------------------------------

    @property
    def eviction(self) -> str:
        """The eviction policy: ``"protect"`` or ``"lru"``."""
        return self._eviction

    @property
    def core(self) -> Any:
        """The core cache (for tests and adapters); bypassing the store skips its rules."""
        return self._core

    def check_invariants(self) -> None:
        """Raise AssertionError if the core's structures are inconsistent."""
        with self._lock:
            self._core.check_invariants()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} len={len(self)} max={self._max} eviction={self._eviction} "
            f"check_period={self._check_period} thread={'on' if self._thread is not None else 'off'}>"
        )

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError(f"cannot pickle or copy {type(self).__name__}; use dump()/load() or save()/restore()")

    def __copy__(self) -> Any:
        raise TypeError(f"cannot copy {type(self).__name__}; use dump()/load()")

    def __deepcopy__(self, memo: object) -> Any:
        raise TypeError(f"cannot copy {type(self).__name__}; use dump()/load()")
