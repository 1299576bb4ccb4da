"""RedisStore: the MemoryStore API over Redis, for sessions shared by several processes or hosts.

``RedisStore(client_or_url, *, prefix="sess:", ttl=None, serializer=json,
dispose=None, near_cache=None)`` has the methods and semantics of
:class:`memorystore.MemoryStore`, with Redis doing the expiry:

* a session lives under the key ``prefix + sid``, written with ``SET ... PX``
  (milliseconds, rounded up); ``math.inf`` writes a plain ``SET`` (no expiry),
  a ttl ``<= 0`` removes the key; the ttl rules are MemoryStore's (the call's
  ``ttl``, else the option, else the session cookie's ``max_age`` /
  ``maxAge``, else one day);
* ``add`` is ``SET NX``; ``touch`` is ``PEXPIRE`` (``PERSIST`` for
  ``math.inf``); ``prune()`` returns 0 because Redis expires keys by itself;
* ``all``/``ids``/``length``/``clear`` walk the keys under ``prefix`` with
  ``SCAN`` (never ``KEYS``), read values with ``MGET`` and delete with
  ``UNLINK`` in batches; keys outside ``prefix`` are never touched;
* ``dispose(sid, session, reason)`` is called for ``"delete"`` (``destroy``,
  ``clear``) and ``"set"`` (an old value overwritten or removed by ``set``)
  only, never for ``"expire"``/``"evict"``: Redis expires and evicts keys
  without telling anyone.  With a ``dispose`` the old values are fetched in
  the same round trip (``SET ... GET``, ``GETDEL``), which needs Redis >= 6.2;
* server errors surface as ``redis`` exceptions.

The near cache
--------------
``near_cache=MemoryStore(max=..., ttl=short)`` keeps recently read sessions in
process memory.  Coherence comes from Redis server-assisted client-side caching
in broadcast mode: one dedicated connection per store runs ``CLIENT TRACKING ON
BCAST PREFIX <prefix>`` (redirected to itself and subscribed to
``__redis__:invalidate`` under RESP2; push messages under RESP3), and a daemon
thread drops the local copy of every key the server reports as modified -- by
any client, in any process or language, including expiry and ``FLUSHDB``.
Writes through this store drop the local copy themselves as well, so a process
always reads its own writes.  The near cache keeps each value as the bytes Redis
sent (its own serializer is not used) and this store decodes them on every hit,
so a hit is a fresh copy and holds whatever this store's serializer can.

A near-cache hit is served only while the listener is connected and has
nothing unread: before each hit the store polls the listener's socket and
checks that no invalidation is being applied.  Redis queues a broadcast
invalidation before the reply to the write that caused it, so once another
process's write has completed (and, on one host, its invalidation has reached
this process's socket) the next read here goes to Redis.  The remaining window
is a write whose invalidation is still in flight on the network while its reply
has already been acted upon elsewhere; the near cache's own ``ttl`` bounds
staleness in that case.  A fill from Redis is discarded when an invalidation
arrived while it was in flight.  Whenever the listener loses its connection
the near cache is emptied and bypassed until the listener has reconnected and
re-enabled tracking.  Requires Redis >= 6 (or Valkey); each store with a near
cache holds one extra connection.  The near cache pays off when reads outnumber
writes: every write or touch of a session (here or elsewhere) drops its copy.
"""

from __future__ import annotations

import json
import math
import os
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

import redis

from ._log import logger
from ._rules import MAX_SID_LENGTH, TtlRule, absent_sid, bad_sid, sid_batch
from ._stats import RedisStats
from .store import MemoryStore

__all__ = ["RedisStore"]

#: Keys per SCAN page hint, per MGET and per UNLINK/GETDEL batch.
BATCH = 1000
#: Largest PX accepted (2**53 ms, about 285 000 years); use ``math.inf`` for "never".
_MAX_PX = 2**53
_INF = math.inf
_INVALIDATE_CHANNEL = "__redis__:invalidate"

# Bumped in a forked child, so each store notices it must restart its listener there.
_fork_generation = 0
_LISTENERS: weakref.WeakSet[_Listener] = weakref.WeakSet()
_STORES: weakref.WeakSet[RedisStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1
    for listener in list(_LISTENERS):
        listener._forget_after_fork()
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _text(value: Any) -> str | None:
    """A push-message field as str (fields are bytes unless decode_responses is on)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogatepass")
    return value if isinstance(value, str) else None


def _glob_escape(text: str) -> str:
    """``text`` with SCAN MATCH glob characters escaped."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has data (or EOF/an error) to read right now; True when unsure."""
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _new_connection(pool: Any) -> Any:
    """A connection configured like the pool's but outside it (never counted, never released)."""
    cls = getattr(pool, "connection_class", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if cls is not None and isinstance(kwargs, dict):
        try:
            return cls(**kwargs)
        except Exception:  # noqa: BLE001 - an unusual pool: let it make one
            logger.debug("near cache: building a listener connection failed; asking the pool", exc_info=True)
    return pool.make_connection()


class _Listener:
    """One tracking connection and the daemon thread that applies its invalidations.

    Holds only a weak reference to its store: a store that is no longer
    referenced is collected and the thread ends.  States seen by readers:
    ``healthy`` (connected, tracking on, subscribed) and ``busy`` (reading or
    applying messages).  ``quiet()`` is True only when healthy, not busy and
    nothing unread waits on the socket.
    """

    def __init__(self, store: RedisStore, pool: Any, prefix: bytes) -> None:
        self._store_ref = weakref.ref(store)
        self._pool = pool
        self._prefix = prefix
        self._prefix_len = len(prefix)
        self._stop = threading.Event()
        self._conn: Any = None
        self._sock: socket.socket | None = None
        self.healthy = False
        self.busy = False
        self._thread: threading.Thread | None = None
        _LISTENERS.add(self)

    # -- for readers -------------------------------------------------------------

    def quiet(self) -> bool:
        """True when a near-cache hit is coherent: healthy, nothing unread, not applying."""
        sock = self._sock
        if sock is None or not self.healthy:
            return False
        # Order matters: the thread sets busy before it reads, and clears it only after the
        # socket and its parser buffer are drained and applied.
        if _readable(sock):
            return False
        return self.healthy and not self.busy

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Connect once in the caller's thread (errors are logged), then run the thread."""
        try:
            self._connect()
        except Exception as exc:  # noqa: BLE001 - the thread retries
            # One line (a server that is down is not a bug to trace); the traceback is at DEBUG.
            logger.warning(
                "near cache: cannot reach Redis (%s.%s: %s); near cache bypassed, retrying in the background",
                type(exc).__module__,
                type(exc).__qualname__,
                str(exc).replace("\n", " "),
            )
            logger.debug("near cache: listener connection failure", exc_info=True)
            self._drop_connection()
        thread = threading.Thread(target=self._run, name="memorystore-redis-invalidate", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop the thread (idempotent); wakes it by shutting its socket down."""
        self._stop.set()
        self.healthy = False
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join(5.0)

    def _forget_after_fork(self) -> None:
        """In a forked child: the thread is gone and the socket is the parent's; never touch it."""
        self.healthy = False
        self.busy = False
        self._conn = None
        self._sock = None
        self._thread = None
        self._stop.set()

    # -- the connection ----------------------------------------------------------------

    def _connect(self) -> None:
        conn = _new_connection(self._pool)
        self._conn = conn
        conn.connect()
        resp3 = str(getattr(conn, "protocol", 2) or 2) == "3"
        if resp3:
            # Invalidations arrive as "invalidate" push messages on this connection.
            parser = conn._parser
            parser.set_invalidation_push_handler(lambda message: message)
            parser.set_pubsub_push_handler(lambda message: message)
            conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self._prefix)
            conn.read_response()
        else:
            # RESP2: redirect the invalidations to ourselves and subscribe to them.
            conn.send_command("CLIENT", "ID")
            client_id = conn.read_response()
            conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", self._prefix)
            conn.read_response()
            conn.send_command("SUBSCRIBE", _INVALIDATE_CHANNEL)
            conn.read_response()
        self._sock = conn._sock
        store = self._store_ref()
        if store is not None:
            store._near_flush()  # anything cached before this point may have missed invalidations
        self.healthy = True
        logger.debug("near cache: invalidation listener connected (%s)", "RESP3" if resp3 else "RESP2")

    def _drop_connection(self) -> None:
        self.healthy = False
        conn, self._conn, self._sock = self._conn, None, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # noqa: BLE001 - already broken
                pass

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            if self._conn is None:
                try:
                    self._connect()
                    backoff = 0.05
                except Exception:  # noqa: BLE001
                    logger.debug("near cache: listener reconnect failed", exc_info=True)
                    self._drop_connection()
            if self._conn is not None:
                try:
                    self._pump()
                except Exception:  # noqa: BLE001 - server gone, socket shut down, protocol error
                    if not self._stop.is_set():
                        logger.warning("near cache: invalidation listener lost its connection; near cache bypassed")
                self._drop_connection()
                store = self._store_ref()
                if store is not None:
                    store._near_flush()
                del store
            if self._store_ref() is None or self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, 1.0)
        self._drop_connection()
        logger.debug("near cache: invalidation listener stopped")

    def _pump(self) -> None:
        """Read and apply invalidation messages until the connection fails or stop is asked."""
        conn, sock = self._conn, self._sock
        assert sock is not None
        while not self._stop.is_set():
            if not self._wait(sock, 1.0):
                if self._store_ref() is None:
                    self._stop.set()
                continue
            self.busy = True
            try:
                while True:
                    message = conn.read_response(push_request=True)
                    self._apply(message)
                    if not conn.can_read(0):
                        break
            except BaseException:
                self.healthy = False  # before busy is cleared, so no reader slips in between
                raise
            finally:
                self.busy = False

    @staticmethod
    def _wait(sock: socket.socket, timeout: float) -> bool:
        """Block until ``sock`` is readable (without consuming anything) or ``timeout`` passes."""
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
                return bool(poller.poll(timeout * 1000))
            return bool(select.select([sock], [], [], timeout)[0])
        except (OSError, ValueError):
            return True  # let the read report the error

    def _apply(self, message: Any) -> None:
        if not isinstance(message, list) or not message:
            return
        kind = _text(message[0])
        if kind == "message" and len(message) >= 3:
            keys = message[2]
        elif kind == "invalidate" and len(message) >= 2:
            keys = message[1]
        else:
            return  # subscribe confirmations and the like
        store = self._store_ref()
        if store is None:
            self._stop.set()
            return
        if keys is None:  # FLUSHDB / FLUSHALL
            store._near_flush()
            return
        if not isinstance(keys, list):
            keys = [keys]
        sids = []
        plen = self._prefix_len
        for key in keys:
            if isinstance(key, str):
                key = key.encode("utf-8", "surrogatepass")
            if isinstance(key, bytes) and key.startswith(self._prefix):
                try:
                    sid = key[plen:].decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    continue
                if 0 < len(sid) <= MAX_SID_LENGTH:
                    sids.append(sid)
        store._near_drop(sids)


class RedisStore:
    """Sessions in Redis, with MemoryStore's methods and semantics (see the module docstring).

    ``client_or_url``: a redis-py client (or a compatible one such as
    valkey-py's) or a ``redis://``/``rediss://``/``unix://`` URL; a client made
    from a URL is closed by :meth:`close`, a client passed in is left to its
    owner.  ``prefix``: key prefix (a str).  ``ttl``: as MemoryStore's.
    ``serializer``: ``dumps``/``loads`` (default :mod:`json`); ``None`` stores
    the values as given (str/bytes) and ``get`` returns what Redis returns.
    ``dispose(sid, session, reason)``: reasons ``"delete"`` and ``"set"``
    only.  ``near_cache``: a :class:`~memorystore.MemoryStore` used as a
    coherent local cache of reads (its ``ttl`` bounds how long a copy is kept,
    its ``max``/``length`` bound what it keeps).  It keeps the values as Redis
    sent them and this store decodes them on each hit, so its own serializer
    is not used; it must have no ``dispose`` and no ``stale``.
    """

    def __init__(
        self,
        client_or_url: Any,
        *,
        prefix: str = "sess:",
        ttl: float | timedelta | Callable[[str, Any], float | timedelta] | None = None,
        serializer: Any = json,
        dispose: Callable[[str, Any, str], Any] | None = None,
        near_cache: Any = None,
    ) -> None:
        if type(prefix) is not str:
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        self._ttl_rule = TtlRule(ttl)
        if self._ttl_rule.const is not None:
            _px(self._ttl_rule.const)  # too large -> ValueError now rather than on every write (inf is fine)
        if serializer is not None and not (
            callable(getattr(serializer, "dumps", None)) and callable(getattr(serializer, "loads", None))
        ):
            raise TypeError("serializer must have dumps() and loads(), or be None")
        if dispose is not None and not callable(dispose):
            raise TypeError("dispose must be callable or None")
        if near_cache is not None:
            if not isinstance(near_cache, MemoryStore):
                raise TypeError(f"near_cache must be a MemoryStore or None, not {type(near_cache).__name__}")
            if near_cache._dispose is not None:
                raise ValueError(
                    "a near cache takes no dispose: its entries are copies that leave whenever Redis "
                    "changes; give dispose to the RedisStore"
                )
            if near_cache._stale:
                raise ValueError("a near cache cannot serve stale reads (stale=True): it must agree with Redis")

        if isinstance(client_or_url, str):
            self._client = redis.Redis.from_url(client_or_url)
            self._owns_client = True
        elif callable(getattr(client_or_url, "execute_command", None)) and callable(
            getattr(client_or_url, "pipeline", None)
        ):
            self._client = client_or_url
            self._owns_client = False
        else:
            raise TypeError(
                f"client_or_url must be a redis client or a redis:// URL, not {type(client_or_url).__name__}"
            )

        self._prefix = prefix
        self._prefix_b = prefix.encode("utf-8", "surrogatepass")
        self._match = _glob_escape(prefix) + "*"
        self._serializer = serializer
        self._dumps = None if serializer is None else serializer.dumps
        self._loads = None if serializer is None else serializer.loads
        self._dispose = dispose
        self._near = near_cache
        self._near_ttl_for = getattr(near_cache, "_ttl_for", None)
        # Near-cache coherence: every invalidation bumps _gen under _near_lock, and a fill is
        # stored only if _gen did not move while its read was in flight.
        self._near_lock = threading.RLock()
        self._gen = 0
        self._listener: _Listener | None = None
        self._listener_fork = _fork_generation
        self._listener_lock = threading.Lock()
        self._closed = False
        self._counts = dict.fromkeys(RedisStats._fields, 0)  # this process's own calls: stats()
        self._counts_lock = threading.Lock()
        _STORES.add(self)
        if near_cache is not None:
            self._start_listener()
        logger.debug("redis store created: near_cache=%s dispose=%s", near_cache is not None, dispose is not None)

    # -- properties ---------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The redis client in use."""
        return self._client

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    @property
    def near_cache(self) -> Any:
        """The near cache (a MemoryStore) or None."""
        return self._near

    @property
    def near_cache_active(self) -> bool:
        """True while near-cache hits can be served (listener connected, nothing pending)."""
        listener = self._listener
        return (
            listener is not None and self._listener_fork == _fork_generation and not self._closed and listener.quiet()
        )

    # -- helpers ---------------------------------------------------------------------------

    def _key(self, sid: str) -> bytes:
        return self._prefix_b + sid.encode("utf-8", "surrogatepass")

    def _sid(self, key: Any) -> str | None:
        """The sid of a key under the prefix, or None for a key this store could not have written."""
        if isinstance(key, str):
            key = key.encode("utf-8", "surrogatepass")
        if not isinstance(key, bytes) or not key.startswith(self._prefix_b):
            return None
        try:
            sid = key[len(self._prefix_b) :].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return None
        return sid if 0 < len(sid) <= MAX_SID_LENGTH else None

    def _ttl_for(self, sid: str, session: Any, ttl: Any) -> float:
        """The lifetime for this write: the call's ttl, else the option, else the cookie rule."""
        return self._ttl_rule.for_write(sid, session, ttl)

    def _decode(self, raw: Any) -> Any:
        return raw if self._loads is None else self._loads(raw)

    def _notify(self, removed: Iterable[tuple[str, Any, str]]) -> None:
        """Call dispose for each (sid, raw stored value, reason); exceptions are logged."""
        dispose = self._dispose
        if dispose is None:
            return
        for sid, raw, reason in removed:
            try:
                dispose(sid, self._decode(raw), reason)
            except Exception:
                logger.warning("dispose raised for an entry leaving with reason %r", reason, exc_info=True)

    def _scan(self) -> Iterator[list[bytes | str]]:
        """Keys under the prefix in batches of up to BATCH, each key once (SCAN, never KEYS)."""
        seen: set[Any] = set()
        batch: list[Any] = []
        for key in self._client.scan_iter(match=self._match, count=BATCH):
            if key in seen:
                continue
            seen.add(key)
            batch.append(key)
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- near cache ----------------------------------------------------------------------------

    def _start_listener(self) -> None:
        listener = _Listener(self, self._client.connection_pool, self._prefix_b)
        self._listener = listener
        self._listener_fork = _fork_generation
        weakref.finalize(self, listener.stop, False)
        listener.start()

    def _ensure_listener(self) -> _Listener | None:
        """The listener of this process (restarted lazily in a forked child)."""
        if self._listener_fork != _fork_generation and not self._closed:
            with self._listener_lock:
                if self._listener_fork != _fork_generation:
                    self._near_flush()
                    self._start_listener()
        return self._listener

    def _near_flush(self) -> None:
        near = self._near
        if near is None:
            return
        with self._near_lock:
            self._gen += 1
            near.clear()

    def _near_drop(self, sids: list[str]) -> None:
        near = self._near
        if near is None:
            return
        with self._near_lock:
            self._gen += 1
            if sids:
                near.destroy(sids)

    def _near_fill(self, sid: str, raw: Any, session: Any, gen: int, remaining: float) -> None:
        """Keep the bytes of a session just read from Redis, unless an invalidation came meanwhile.

        The near cache holds ``raw`` exactly as Redis sent it, and each hit decodes
        it with this store's serializer: a fresh copy, whatever either serializer is.
        ``session`` (decoded) is only for a ttl callable of the near cache.
        """
        near = self._near
        assert near is not None
        seconds = remaining
        if self._near_ttl_for is not None:
            try:
                seconds = min(seconds, self._near_ttl_for(sid, session, None))
            except Exception:  # noqa: BLE001 - a failing ttl callable of the near cache: do not cache
                return
        if seconds <= 0:
            return
        with self._near_lock:
            listener = self._listener
            if self._gen != gen or listener is None or not listener.healthy or self._closed:
                return
            try:
                near._put_stored(sid, raw, seconds)
            except Exception:  # noqa: BLE001 - a failing length() of the near cache: do not cache
                logger.debug("near cache: keeping a copy failed", exc_info=True)

    def _after_fork(self) -> None:
        """In a forked child: fresh locks and an empty near cache (the listener restarts lazily)."""
        self._near_lock = threading.RLock()
        self._counts_lock = threading.Lock()
        self._listener_lock = threading.Lock()
        near = self._near
        if near is not None:
            self._gen += 1
            try:
                near.clear()
            except Exception:  # noqa: BLE001
                logger.warning("near cache: clear after fork failed", exc_info=True)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, sid: str) -> Any:
        """The session under ``sid`` (a fresh copy), or ``None`` (also for a ``str`` no session can have)."""
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            absent_sid(sid)
            return None  # not a read of the store: not counted (as in MemoryStore)
        session = self._get(sid)
        self._count("misses" if session is None else "hits")
        return session

    def _get(self, sid: str) -> Any:
        """get() of a valid sid, uncounted."""
        near = self._near
        if near is None or self._closed:
            raw = self._client.get(self._key(sid))
            return None if raw is None else self._decode(raw)
        listener = self._ensure_listener()
        if listener is not None and listener.quiet():
            cached = near._get_stored(sid)
            if cached is not None:
                return self._decode(cached)
        gen = self._gen
        started = time.monotonic()
        key = self._key(sid)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.get(key)
            pipe.pttl(key)
            raw, pttl = pipe.execute()
        except BaseException:
            self._near_drop([sid])
            raise
        if raw is None:
            return None
        session = self._decode(raw)
        if pttl == -1:
            remaining = _INF
        elif pttl is not None and pttl > 0:
            remaining = pttl / 1000.0 - (time.monotonic() - started)
        else:
            remaining = 0.0
        if remaining > 0:
            self._near_fill(sid, raw, session, gen, remaining)
        return session

    def __contains__(self, sid: object) -> bool:
        """Whether a live entry exists under ``sid`` (``EXISTS``)."""
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            absent_sid(sid)
            return False
        return bool(self._client.exists(self._key(sid)))

    def all(self) -> dict[str, Any]:
        """Every live session under the prefix, ``{sid: session}`` (SCAN, then MGET per batch)."""
        result: dict[str, Any] = {}
        for keys in self._scan():
            values = self._client.mget(keys)
            for key, raw in zip(keys, values):
                if raw is None:
                    continue  # expired or deleted since the SCAN
                sid = self._sid(key)
                if sid is not None:
                    result[sid] = self._decode(raw)
        return result

    def ids(self) -> list[str]:
        """Live session ids under the prefix, in no particular order."""
        return [sid for keys in self._scan() for sid in map(self._sid, keys) if sid is not None]

    def length(self) -> int:
        """How many sessions live under the prefix (a SCAN: O(keys in the database))."""
        return len(self.ids())

    def __len__(self) -> int:
        return self.length()

    # -- writes ----------------------------------------------------------------------------------

    def set(self, sid: str, session: Any, ttl: float | timedelta | None = None) -> None:
        """Store ``session`` under ``sid`` (``SET ... PX``; ``math.inf``: no expiry; ``<= 0``: removes).

        If the ttl callable or the serializer raises, nothing is sent.  An old
        value overwritten or removed is disposed with reason ``"set"``.
        """
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            bad_sid(sid)
        seconds = self._ttl_for(sid, session, ttl)
        value = session if self._dumps is None else self._dumps(session)
        key = self._key(sid)
        want_old = self._dispose is not None
        old = None
        try:
            if seconds <= 0:
                if want_old:
                    old = self._client.execute_command("GETDEL", key)
                else:
                    self._client.unlink(key)
            else:
                px = _px(seconds)  # None: no expiry (a plain SET also drops an old ttl)
                if want_old:
                    old = self._client.set(key, value, px=px, get=True)
                else:
                    self._client.set(key, value, px=px)
                self._count("writes")
        finally:
            self._near_drop([sid])
        if want_old and old is not None:
            self._notify(((sid, old, "set"),))

    def add(self, sid: str, session: Any, ttl: float | timedelta | None = None) -> bool:
        """Store ``session`` only if no live entry exists under ``sid`` (``SET NX``); return whether it did.

        As with MemoryStore, a ttl ``<= 0`` stores nothing and returns True
        when no entry existed.
        """
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            bad_sid(sid)
        seconds = self._ttl_for(sid, session, ttl)
        value = session if self._dumps is None else self._dumps(session)
        key = self._key(sid)
        if seconds <= 0:
            return not self._client.exists(key)
        px = _px(seconds)
        try:
            stored = bool(self._client.set(key, value, px=px, nx=True))
        finally:
            self._near_drop([sid])
        if stored:
            self._count("writes")
        return stored

    def destroy(self, sids: str | Iterable[str]) -> None:
        """Remove one session, or each of an iterable of sids (all validated first; ``UNLINK``).

        Dispose reason ``"delete"``; unknown sids are ignored.
        """
        batch = sid_batch(sids)
        if not batch:
            return
        removed: list[tuple[str, Any, str]] = []
        try:
            for start in range(0, len(batch), BATCH):
                chunk = batch[start : start + BATCH]
                keys = [self._key(sid) for sid in chunk]
                if self._dispose is None:
                    self._count("deletions", self._client.unlink(*keys) or 0)
                    continue
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.execute_command("GETDEL", key)
                for sid, old in zip(chunk, pipe.execute()):
                    if old is not None:
                        removed.append((sid, old, "delete"))
                        self._count("deletions")
        finally:
            self._near_drop(batch)
        if removed:
            self._notify(removed)

    def touch(self, sid: str, session: Any = None, ttl: float | timedelta | None = None) -> bool:
        """Give a live entry a new deadline (``PEXPIRE``; ``PERSIST`` for ``math.inf``).

        The lifetime follows MemoryStore's rules (``ttl``, else the rules
        applied to ``session``, else one day).  Returns False when no entry
        exists (a ``str`` no session can have included).  A lifetime ``<= 0``
        makes Redis remove the entry (no dispose).
        """
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            absent_sid(sid)
            return False
        seconds = self._ttl_for(sid, session, ttl)
        key = self._key(sid)
        try:
            if seconds == _INF:
                pipe = self._client.pipeline(transaction=True)
                pipe.exists(key)
                pipe.persist(key)
                exists, _ = pipe.execute()
                return bool(exists)
            px = 0 if seconds <= 0 else _px(seconds)
            return bool(self._client.pexpire(key, px or 0))
        finally:
            self._near_drop([sid])

    def clear(self) -> None:
        """Remove every session under the prefix (SCAN + UNLINK per batch); others keys are untouched."""
        removed: list[tuple[str, Any, str]] = []
        count = 0
        try:
            for keys in self._scan():
                if self._dispose is None:
                    count += self._client.unlink(*keys) or 0
                    continue
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.execute_command("GETDEL", key)
                for key, old in zip(keys, pipe.execute()):
                    sid = self._sid(key)
                    if old is not None and sid is not None:
                        removed.append((sid, old, "delete"))
                count += len(keys)
        finally:
            self._near_flush()
        logger.debug("cleared %d keys", count)
        if removed:
            self._notify(removed)

    def prune(self) -> int:
        """Redis expires keys by itself: nothing to do, returns 0."""
        return 0

    # -- statistics ---------------------------------------------------------------------------------

    def stats(self) -> RedisStats:
        """What this store counted of its own calls in this process, since creation or :meth:`reset_stats`.

        ``hits``/``misses``: ``get`` calls that found a session or not (near
        cache hits included; a sid no session can have is not counted, as in
        ``MemoryStore``); ``writes``: sessions stored by ``set``/``add``;
        ``deletions``: sessions ``destroy`` removed.  Counted client-side, so
        other processes' calls, Redis's own expiry and eviction, and the
        number of sessions are not in it (``length()`` is a SCAN; the
        server's ``INFO stats`` has its figures).
        """
        with self._counts_lock:
            return RedisStats(**self._counts)

    def reset_stats(self) -> None:
        """Zero the counters."""
        with self._counts_lock:
            self._counts = dict.fromkeys(RedisStats._fields, 0)

    def _count(self, name: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[name] += n

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the near-cache listener and empty the near cache; close the client if made from a URL.

        Idempotent.  The store stays usable afterwards, without its near cache
        (a client made from a URL reconnects on demand).
        """
        self._closed = True
        listener = self._listener
        if listener is not None:
            listener.stop()
        self._near_flush()
        if self._owns_client:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001
                logger.debug("closing the redis client failed", exc_info=True)

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} prefix={self._prefix!r} near_cache={'on' if self._near is not None else 'off'}>"

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError(f"cannot pickle or copy {type(self).__name__}")


def _px(seconds: float) -> int | None:
    """A positive lifetime in whole milliseconds, rounded up; None for math.inf; ValueError if too large."""
    if seconds == _INF:
        return None
    ms = math.ceil(seconds * 1000.0)
    if ms > _MAX_PX:
        raise ValueError("ttl is too large for Redis (use math.inf for sessions that never expire)")
    return max(1, ms)
