"""``python -m memorystore demo``: one small page that shows the store at work.

The page shows the visitor's own session (when it was created, a live
countdown to its expiry, the data stored for it) and the store (live
sessions, the bound, evictions, expirations, the last prune), with buttons to
add data, reset the session and start a burst of anonymous sessions created
server-side, so that eviction and expiry can be watched.  Other visitors'
sessions appear as counts only, never as ids or contents.

Standard library only: wsgiref's server, one thread per request, and
:class:`memorystore.wsgi.SessionMiddleware`.  Inline CSS, no external
assets; the page works without JavaScript (forms that post and redirect),
and a small inline script adds the live countdown and a refresh from
``state.json`` every second.

``demo --workers N`` (:func:`serve_workers`) serves the same app from N
forked worker processes on one listening socket, with the sessions in a
``SharedMemoryStore``: the page names the worker that answered and every
worker that has served the visitor's session, so one can watch the session
follow the visitor from worker to worker.  The parent builds the store, the
app (its secret included) and the socket once, prints the URL, forks the
workers and starts a new one for any worker that is killed; Ctrl-C (or
SIGTERM) stops every worker and unlinks the segment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import html
import json
import os
import random
import secrets
import signal
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, NamedTuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ._signing import new_session_id

__all__ = [
    "DemoApp",
    "DisposeCounts",
    "StoreCounts",
    "ThreadingWSGIServer",
    "build_app",
    "default_store",
    "make_demo_server",
    "render_page",
    "serve",
    "serve_until_interrupted",
    "serve_workers",
    "stop_on_ctrl_c",
]

#: A visitor's session lives this long after its last change (page views change it: they count).
SESSION_TTL = 300.0
#: The demo store's bound, in sessions: small, so that a few bursts reach it.
STORE_MAX = 500
#: Sessions created by one press of "burst", and their lifetimes (spread, so that they expire gradually).
BURST_SIZE = 200
BURST_TTL = (15.0, 45.0)
#: Seconds between two prunes (the page shows the last one).
PRUNE_PERIOD = 2.0
#: With several workers: the most worker pids a session remembers (restarted workers add new ones).
SERVED_BY_MAX = 16
#: With several workers: seconds the workers get to finish when the demo stops, before SIGKILL.
STOP_GRACE = 5.0
#: With several workers: seconds between a worker's checks that the demo (its parent) is still there.
ORPHAN_CHECK = 0.5
#: What "add data" puts into the session, in turn.
ITEMS = ("apple", "banana", "cherry", "date", "elderberry", "fig", "grape", "honeydew")

StartResponse = Callable[..., Any]


# -- the store's counters ---------------------------------------------------------


class StoreCounts(NamedTuple):
    """The counters the page shows, named as the fields of ``MemoryStore.stats()``."""

    length: int
    maxsize: int | None
    evictions: int
    expirations: int


class DisposeCounts:
    """Evictions and expirations, counted from the store's ``dispose`` callback.

    A stand-in for ``MemoryStore.stats()`` until the store has it: pass an
    instance as ``dispose=`` and read :meth:`stats`, which returns the same
    field names.  Only counts, never ids or contents.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.evictions = 0
        self.expirations = 0

    def __call__(self, sid: str, session: Any, reason: str) -> None:
        with self._lock:
            if reason == "evict":
                self.evictions += 1
            elif reason == "expire":
                self.expirations += 1

    def stats(self, store: Any, maxsize: int | None) -> StoreCounts:
        with self._lock:
            evictions, expirations = self.evictions, self.expirations
        return StoreCounts(len(store), maxsize, evictions, expirations)


def default_store() -> tuple[Any, Callable[[], Any]]:
    """The demo's store, and the callable that reads its counters."""
    from .store import MemoryStore

    counts = DisposeCounts()
    store = MemoryStore(ttl=SESSION_TTL, max=STORE_MAX, dispose=counts)
    # Once MemoryStore has stats(), this line becomes `return store, store.stats`.
    return store, lambda: counts.stats(store, STORE_MAX)


# -- the page ------------------------------------------------------------------------


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


def _epoch(iso: object, default: float) -> float:
    try:
        return dt.datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return default


def _clock_text(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%S UTC")


def _countdown_text(seconds: float) -> str:
    whole = max(0, int(-(-seconds // 1)))  # ceil: "0:00" only once it has expired
    return f"{whole // 60}:{whole % 60:02d}"


def _session_tag(sid: str) -> str:
    """A short fingerprint of the visitor's own id, to tell sessions apart (the id itself stays in the cookie)."""
    return hashlib.sha256(sid.encode()).hexdigest()[:8]


class DemoApp:
    """The demo's WSGI application, to be wrapped in ``SessionMiddleware`` (see :func:`build_app`).

    ``store`` is the store the middleware uses (bursts are written to it
    directly); ``stats()`` returns an object with ``length``, ``maxsize``,
    ``evictions`` and ``expirations``.  ``clock`` is the wall clock (tests
    pass a fake one, together with the store's ``timer``).  ``workers``: how
    many processes serve the app; with more than one, each page view records
    its worker's pid in the session (``served_by``), and the page lists them.

    Routes: ``GET /`` the page (counts a visit), ``GET /state.json`` the
    page's data (reads the session, never writes it), ``POST /add``,
    ``POST /reset``, ``POST /burst`` (each redirects to ``/``).
    """

    def __init__(
        self,
        store: Any,
        *,
        stats: Callable[[], Any],
        session_ttl: float = SESSION_TTL,
        burst_size: int = BURST_SIZE,
        burst_ttl: tuple[float, float] = BURST_TTL,
        prune_period: float = PRUNE_PERIOD,
        clock: Callable[[], float] = time.time,
        core: str | None = None,
        workers: int = 1,
    ) -> None:
        if core is None:
            from . import COMPILED

            core = "compiled" if COMPILED else "pure"
        self.store = store
        self.stats = stats
        self.session_ttl = float(session_ttl)
        self.burst_size = burst_size
        self.burst_ttl = burst_ttl
        self.prune_period = prune_period
        self.clock = clock
        self.core = core
        self.workers = workers
        self._random = random.Random()
        self._prune_lock = threading.Lock()
        self._last_prune: tuple[float, int] | None = None  # (wall time, entries removed)

    # -- pruning: the demo's own loop, so that the page can say when it last ran --

    def prune(self) -> int:
        """Prune the store now and remember when (and how many expired)."""
        removed = self.store.prune()
        with self._prune_lock:
            self._last_prune = (self.clock(), removed)
        return int(removed)

    def start_pruning(self) -> Callable[[], None]:
        """Prune every ``prune_period`` seconds from a daemon thread; returns the function that stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.prune_period):
                self.prune()

        thread = threading.Thread(target=loop, name="memorystore-demo-prune", daemon=True)
        thread.start()

        def stop_pruning() -> None:
            stop.set()
            thread.join()

        return stop_pruning

    # -- state -----------------------------------------------------------------

    def _session_state(self, session: Any, now: float, stored: bool) -> dict[str, Any] | None:
        """The visitor's own session as the page shows it; ``None`` when it is not in the store."""
        if not stored:
            return None
        updated = _epoch(session.get("updated"), now)
        created = _epoch(session.get("created"), updated)
        items = session.get("items")
        return {
            "tag": _session_tag(session.sid),
            "created": _iso(created),
            "created_text": _clock_text(created),
            "expires_in": round(max(0.0, updated + self.session_ttl - now), 3),
            "visits": session.get("visits", 0),
            "items": len(items) if isinstance(items, list) else 0,
            "served_by": _pids(session.get("served_by")),
            "data": json.dumps(dict(session), indent=2, sort_keys=True),
        }

    def state(self, session: Any, stored: bool) -> dict[str, Any]:
        """Everything the page shows: the visitor's session (``stored``: is it in the store), the store's
        counts, the serving pid."""
        now = self.clock()
        counts = self.stats()
        with self._prune_lock:
            last_prune = self._last_prune
        return {
            "pid": os.getpid(),
            "workers": self.workers,
            "core": self.core,
            "session": self._session_state(session, now, stored),
            "store": {
                "live": counts.length,
                "bound": counts.maxsize,
                "evictions": counts.evictions,
                "expirations": counts.expirations,
                "last_prune_ago": None if last_prune is None else round(max(0.0, now - last_prune[0]), 1),
                "last_pruned": None if last_prune is None else last_prune[1],
            },
            "session_ttl": self.session_ttl,
            "burst_size": self.burst_size,
            "burst_ttl": list(self.burst_ttl),
            "prune_period": self.prune_period,
        }

    # -- WSGI --------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session = environ["memorystore.session"]
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        if method == "POST":
            _drain(environ)
        route = _ROUTES.get(path)
        if route is None:
            return _respond(start_response, "404 Not Found", b"not found\n", "text/plain")
        allowed, handler = route
        if method not in allowed:
            return _respond(
                start_response, "405 Method Not Allowed", b"method not allowed\n", "text/plain", [("Allow", allowed[0])]
            )
        if method == "POST" and not _same_origin(environ):
            return _respond(start_response, "403 Forbidden", b"cross-origin form refused\n", "text/plain")
        if method == "POST":  # an action, then back to the page (post/redirect/get)
            handler(self, session)
            return _respond(start_response, "303 See Other", b"", "text/plain", [("Location", "./")])
        content_type, render = handler(self, session)
        # start_response first: the middleware stores the session then, so the page counts it.
        # (wsgiref sets Content-Length from the one-part body.)
        start_response("200 OK", _headers(content_type))
        return [render()]

    def _page(self, session: Any) -> tuple[str, Callable[[], bytes]]:
        now = self.clock()
        if session.new:
            session["created"] = _iso(now)
            session["visits"] = 0
            session["items"] = []
        session["visits"] = session.get("visits", 0) + 1
        session["updated"] = _iso(now)  # stored when the response starts: its ttl runs from then
        if self.workers > 1:  # the session follows the visitor: each worker that serves it adds its pid
            served_by = _pids(session.get("served_by"))
            if os.getpid() not in served_by:
                session["served_by"] = [*served_by, os.getpid()][-SERVED_BY_MAX:]
        return "text/html", lambda: render_page(self.state(session, stored=True)).encode("utf-8")

    def _state_json(self, session: Any) -> tuple[str, Callable[[], bytes]]:
        # Reads only: an unmodified session is not written back (and rolling=False: not touched either).
        stored = not session.new
        return "application/json", lambda: json.dumps(self.state(session, stored)).encode("utf-8")

    def _add(self, session: Any) -> None:
        items = session.get("items")
        items = list(items) if isinstance(items, list) else []
        items.append(ITEMS[len(items) % len(ITEMS)])
        session["items"] = items
        session["updated"] = _iso(self.clock())
        session.setdefault("created", session["updated"])

    def _reset(self, session: Any) -> None:
        session.invalidate()

    def _burst(self, session: Any) -> None:
        created = _iso(self.clock())
        low, high = self.burst_ttl
        for _ in range(self.burst_size):
            self.store.set(
                new_session_id(), {"anonymous": True, "created": created}, ttl=self._random.uniform(low, high)
            )


_ROUTES: dict[str, tuple[tuple[str, ...], Callable[[DemoApp, Any], Any]]] = {
    "/": (("GET",), DemoApp._page),
    "/state.json": (("GET",), DemoApp._state_json),
    "/add": (("POST",), DemoApp._add),
    "/reset": (("POST",), DemoApp._reset),
    "/burst": (("POST",), DemoApp._burst),
}


def _headers(content_type: str) -> list[tuple[str, str]]:
    return [
        ("Content-Type", f"{content_type}; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ]


def _respond(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(status, [*_headers(content_type), ("Content-Length", str(len(body))), *(extra or ())])
    return [body]


def _drain(environ: dict[str, Any]) -> None:
    """Read (and ignore) a small request body, so the client sees a clean response."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if 0 < length <= 65536:
        environ["wsgi.input"].read(length)


def _same_origin(environ: dict[str, Any]) -> bool:
    """Refuse a form posted from another site (browsers send ``Origin`` with every POST)."""
    origin = environ.get("HTTP_ORIGIN")
    return origin is None or origin == f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"


def _pids(value: object) -> list[int]:
    """The ``served_by`` list of a session (anything else, as a session may hold, reads as none)."""
    return [pid for pid in value if isinstance(pid, int)] if isinstance(value, list) else []


def _number(value: int | None) -> str:
    return "none" if value is None else f"{value:,}"


def render_page(state: dict[str, Any]) -> str:
    """The whole page, rendered server-side (the script only keeps it current)."""
    session = state["session"]
    store = state["store"]
    bound = store["bound"]
    fill = 0.0 if not bound else min(100.0, 100.0 * store["live"] / bound)
    if store["last_prune_ago"] is None:
        last_prune = "not yet"
    else:
        last_prune = f"{store['last_prune_ago']:.0f} s ago · {store['last_pruned']} expired"
    low, high = state["burst_ttl"]
    return _PAGE.substitute(
        pid=state["pid"],
        workers=state["workers"],
        workers_hidden="" if state["workers"] > 1 else " hidden",
        served_by=" · ".join(map(str, session["served_by"])),
        core=html.escape(state["core"]),
        tag=html.escape(session["tag"]),
        expires_in=session["expires_in"],
        expires_in_text=_countdown_text(session["expires_in"]),
        session_minutes=f"{state['session_ttl'] / 60:g}",
        created_iso=html.escape(session["created"]),
        created_text=html.escape(session["created_text"]),
        visits=session["visits"],
        items=session["items"],
        data=html.escape(session["data"]),
        live=_number(store["live"]),
        bound=_number(bound),
        fill=f"{fill:.1f}",
        meter_hidden="" if bound else " hidden",
        evictions=_number(store["evictions"]),
        expirations=_number(store["expirations"]),
        last_prune=html.escape(last_prune),
        prune_period=f"{state['prune_period']:g}",
        burst_size=state["burst_size"],
        burst_ttl=f"{low:g}–{high:g}",
    )


# -- the server ----------------------------------------------------------------------


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Logs method, path and status to stderr (never cookies or session contents); not the page's polling."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.path.startswith("/state.json") and str(code) == "200":
            return
        super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def build_app(store: Any, demo: DemoApp, secret: bytes, session_ttl: float = SESSION_TTL) -> Any:
    """The demo wrapped in its session middleware (``rolling=False``: the page's polling never extends a session)."""
    from .wsgi import SessionMiddleware

    return SessionMiddleware(demo, store, secret, max_age=session_ttl, rolling=False)


def make_demo_server(port: int, app: Any) -> ThreadingWSGIServer:
    """Bind 127.0.0.1:``port`` (0: a free port) and return the server, not yet serving."""
    return make_server(  # type: ignore[return-value]
        "127.0.0.1", port, app, server_class=ThreadingWSGIServer, handler_class=_QuietHandler
    )


def stop_on_ctrl_c() -> None:
    """Make Ctrl-C (SIGINT) raise ``KeyboardInterrupt`` here, whatever this process inherited.

    A job started in the background by a shell inherits SIGINT *ignored*,
    and Python then leaves it ignored: such a demo would never stop on
    Ctrl-C.  Only the main thread may set a handler.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def serve_until_interrupted(server: ThreadingWSGIServer) -> None:
    """Serve until Ctrl-C."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def serve(port: int = 0, *, store: Any = None, stats: Callable[[], Any] | None = None) -> int:
    """Run the demo on 127.0.0.1:``port`` until Ctrl-C; the first line printed is its URL.

    ``store`` (with ``stats``, the callable that reads its counters; default
    ``store.stats``) replaces the demo's own ``MemoryStore``.
    """
    stop_on_ctrl_c()
    try:
        if store is None:
            store, stats = default_store()
        elif stats is None:
            stats = store.stats
        demo = DemoApp(store, stats=stats)
        app = build_app(store, demo, secrets.token_bytes(32))
        with make_demo_server(port, app) as server:
            print(f"http://127.0.0.1:{server.server_port}/", flush=True)
            print("memorystore demo: press Ctrl-C to stop", file=sys.stderr, flush=True)
            stop_pruning = demo.start_pruning()
            try:
                serve_until_interrupted(server)
            finally:
                stop_pruning()
    except KeyboardInterrupt:  # Ctrl-C before the server was up
        pass
    print("memorystore demo: stopped", file=sys.stderr, flush=True)
    return 0


def serve_workers(port: int = 0, workers: int = 2) -> int:
    """Run the demo from ``workers`` forked processes sharing a ``SharedMemoryStore``, until Ctrl-C or SIGTERM.

    The first line printed is the URL.  The store (on a segment named after
    this process), the app and its secret, and the listening socket are made
    once, before the fork: every worker accepts on the same socket and sees
    the same sessions.  A worker that is killed is replaced; one that exits
    by itself stops the demo.  Stopping stops every worker and unlinks the
    segment.  Returns the exit status (2: no shared store here).
    """
    stop_on_ctrl_c()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill PID` stops as cleanly as Ctrl-C
    from .shared import SharedMemoryStore

    try:
        store = SharedMemoryStore(f"demo-{os.getpid()}-{secrets.token_hex(4)}", capacity=STORE_MAX, ttl=SESSION_TTL)
    except RuntimeError as exc:  # the pure core, or not Linux
        print(f"memorystore demo: --workers needs a SharedMemoryStore: {exc}", file=sys.stderr, flush=True)
        return 2
    status = 0
    try:
        demo = DemoApp(store, stats=store.stats, workers=workers)
        app = build_app(store, demo, secrets.token_bytes(32))
        with make_demo_server(port, app) as server:
            print(f"http://127.0.0.1:{server.server_port}/", flush=True)
            print(f"memorystore demo: {workers} workers, sessions in the shared-memory segment {store.name!r}; "
                  "press Ctrl-C to stop", file=sys.stderr, flush=True)  # fmt: skip
            status = _supervise(server, demo, workers)
    except KeyboardInterrupt:  # Ctrl-C before the workers were up
        pass
    finally:
        store.unlink()
        store.close()
    print("memorystore demo: stopped", file=sys.stderr, flush=True)
    return status


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _supervise(server: ThreadingWSGIServer, demo: DemoApp, workers: int) -> int:
    """Fork the workers and keep them running until Ctrl-C/SIGTERM (0) or until one exits by itself (1)."""
    children: dict[int, float] = {}  # pid -> when it started
    parent = os.getpid()

    def spawn() -> None:
        # Ctrl-C/SIGTERM wait until the new worker is on the list: a signal in between would leave it behind.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                _worker(server, demo, parent)  # never returns
            children[pid] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    status = 0
    try:
        for _ in range(workers):
            spawn()
        while True:
            pid, wait_status = os.wait()  # Ctrl-C/SIGTERM interrupts it
            children.pop(pid, None)
            if os.WIFSIGNALED(wait_status):  # killed (kill -9, the OOM killer): a new worker takes its place
                name = signal.Signals(os.WTERMSIG(wait_status)).name
                print(f"memorystore demo: worker {pid} was killed ({name}); starting another",
                      file=sys.stderr, flush=True)  # fmt: skip
                spawn()
            else:
                print(f"memorystore demo: worker {pid} exited with status {os.WEXITSTATUS(wait_status)}; stopping",
                      file=sys.stderr, flush=True)  # fmt: skip
                status = 1
                break
    except KeyboardInterrupt:
        pass
    finally:
        _stop_workers(children)
    return status


def _worker(server: ThreadingWSGIServer, demo: DemoApp, parent: int) -> None:
    """A forked worker: serve until Ctrl-C or SIGTERM, or until its parent is gone, then leave the process
    (never return into the parent's code: ``os._exit``)."""
    status = 0
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the parent around the fork
        _stop_when_orphaned(parent, demo.store)
        stop_pruning = demo.start_pruning()
        serve_until_interrupted(server)
        stop_pruning()
    except KeyboardInterrupt:
        pass
    except BaseException:  # noqa: BLE001 - reported, then the parent sees the status and stops the demo
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def _stop_when_orphaned(parent: int, store: Any) -> None:
    """If the parent dies without stopping this worker (SIGKILL), unlink the segment and stop: a demo leaves
    neither processes nor a segment behind.  (Checked twice a second from a daemon thread.)"""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK)
        store.unlink()  # the parent's job, which it can no longer do (idempotent: every orphan may try)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="memorystore-demo-orphan", daemon=True).start()


def _stop_workers(children: dict[int, float]) -> None:
    """SIGTERM every worker, wait up to ``STOP_GRACE`` seconds for all of them, SIGKILL the rest; reap all."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave workers behind
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while children:
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            del children[pid]
        if children and time.monotonic() > deadline:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = float("inf")  # SIGKILLed: they are gone in a moment
        time.sleep(0.01)


_PAGE = string.Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memorystore demo</title>
<link rel="icon" href="data:,">
<style>
:root {
  color-scheme: light dark;
  --bg: #f4f5f7; --card: #fff; --text: #1d2026; --muted: #687080; --line: #e3e6eb;
  --accent: #4f46e5; --accent-soft: #eef0ff; --warn: #c2410c; --ok: #059669; --well: #f8f9fb;
  --on-accent: #fff;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111318; --card: #1a1d24; --text: #e7e9ee; --muted: #9aa2b1; --line: #2b3039;
    --accent: #8b8ef8; --accent-soft: #262a4d; --warn: #fb923c; --ok: #34d399; --well: #14161c;
    --on-accent: #0f1020;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif;
}
main { max-width: 900px; margin: 0 auto; padding: 36px 20px 40px; }
header { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 8px 16px; }
h1 { font-size: 24px; margin: 0; letter-spacing: -0.02em; }
h1 span { color: var(--muted); font-weight: 400; }
.lede { color: var(--muted); margin: 6px 0 24px; }
.badges { display: flex; flex-wrap: wrap; gap: 8px; }
.badge {
  font-size: 12.5px; padding: 3px 10px; border-radius: 999px; white-space: nowrap;
  background: var(--accent-soft); color: var(--accent);
}
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(320px, 100%), 1fr)); gap: 20px; }
section {
  background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 20px 22px;
  box-shadow: 0 1px 2px rgb(0 0 0 / 4%), 0 4px 16px rgb(0 0 0 / 3%);
  display: flex; flex-direction: column;
}
h2 {
  display: flex; justify-content: space-between; align-items: center; margin: 0 0 12px;
  font-size: 12.5px; font-weight: 600; letter-spacing: .07em; text-transform: uppercase; color: var(--muted);
}
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
h2 code { font-size: 12px; text-transform: none; letter-spacing: 0; color: var(--text); }
.big { font-size: 40px; font-weight: 650; line-height: 1.1; letter-spacing: -0.02em; font-variant-numeric: tabular-nums; }
.sub { color: var(--muted); margin: 2px 0 14px; font-size: 13.5px; }
.expired { color: var(--warn); }
dl { display: grid; grid-template-columns: 1fr auto; gap: 7px 16px; margin: 0 0 16px; }
dt { color: var(--muted); }
dd { margin: 0; text-align: right; font-weight: 550; font-variant-numeric: tabular-nums; }
.meter { height: 8px; border-radius: 999px; background: var(--line); overflow: hidden; margin: 0 0 16px; }
.meter span { display: block; height: 100%; border-radius: inherit; background: var(--accent); transition: width .4s ease; }
pre {
  margin: 0 0 16px; padding: 10px 12px; max-height: 190px; overflow: auto; font-size: 12.5px; line-height: 1.45;
  background: var(--well); border: 1px solid var(--line); border-radius: 10px;
}
.actions { display: flex; flex-wrap: wrap; gap: 10px; margin-top: auto; }
form { margin: 0; }
button {
  font: inherit; font-weight: 550; padding: 8px 15px; border-radius: 9px; cursor: pointer;
  background: var(--card); color: var(--text); border: 1px solid var(--line);
}
button.primary { background: var(--accent); border-color: var(--accent); color: var(--on-accent); }
button:hover { filter: brightness(.95); }
button:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.note { color: var(--muted); font-size: 13px; margin: 0 0 16px; }
.live {
  font-size: 11.5px; letter-spacing: .04em; color: var(--ok); display: inline-flex; align-items: center; gap: 6px;
}
.live::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: currentColor; }
.live:empty { display: none; }
.live.offline { color: var(--warn); }
footer { margin-top: 24px; text-align: center; color: var(--muted); font-size: 13px; }
</style>
</head>
<body>
<main>
<header>
  <h1>memorystore <span>demo</span></h1>
  <div class="badges">
    <span class="badge">served by worker pid <b id="pid">$pid</b></span>
    <span class="badge"$workers_hidden>workers: <b id="workers">$workers</b></span>
    <span class="badge">core: <b id="core">$core</b></span>
  </div>
</header>
<p class="lede">Sessions live in this server's memory, each with a TTL, under a bound.
Your cookie holds only a signed session id.</p>
<div class="grid">
<section id="session" aria-labelledby="session-title">
  <h2><span id="session-title">Your session</span> <code id="session-tag" title="a fingerprint of your session id">$tag</code></h2>
  <div class="big" id="expires-in" data-seconds="$expires_in">$expires_in_text</div>
  <p class="sub" id="expires-note">until it expires: $session_minutes min after its last change</p>
  <dl>
    <dt>Created</dt><dd><time id="created" datetime="$created_iso">$created_text</time></dd>
    <dt>Visits</dt><dd id="visits">$visits</dd>
    <dt>Items</dt><dd id="items">$items</dd>
    <dt$workers_hidden>Served by workers</dt><dd id="served-by"$workers_hidden>$served_by</dd>
  </dl>
  <pre id="session-data" aria-label="what the store holds for your session">$data</pre>
  <div class="actions">
    <form method="post" action="add"><button class="primary" id="add">Add data</button></form>
    <form method="post" action="reset"><button id="reset">Reset session</button></form>
  </div>
</section>
<section id="store" aria-labelledby="store-title">
  <h2><span id="store-title">The store</span> <span class="live" id="refreshed"></span></h2>
  <div class="big" id="live">$live</div>
  <p class="sub">live sessions, bound <b id="bound">$bound</b></p>
  <div class="meter"$meter_hidden><span id="fill" style="width: $fill%"></span></div>
  <dl>
    <dt>Evictions</dt><dd id="evictions">$evictions</dd>
    <dt>Expirations</dt><dd id="expirations">$expirations</dd>
    <dt>Last prune</dt><dd id="last-prune">$last_prune</dd>
  </dl>
  <p class="note">A burst writes $burst_size anonymous sessions that expire after $burst_ttl s. Past the bound
  the least recently used sessions are evicted; expired ones are pruned every $prune_period s.</p>
  <div class="actions">
    <form method="post" action="burst"><button class="primary" id="burst">Start a burst of $burst_size sessions</button></form>
  </div>
</section>
</div>
<footer>Other visitors appear as counts only: never their ids or data.
<noscript>Reload the page to update it.</noscript></footer>
</main>
<script>
(function () {
  "use strict";
  var el = function (id) { return document.getElementById(id); };
  var countdown = el("expires-in");
  var deadline = performance.now() + 1000 * Number(countdown.dataset.seconds);
  var gone = false;
  var number = function (n) { return n === null ? "none" : n.toLocaleString("en-US"); };
  var created = el("created");
  created.textContent = new Date(created.getAttribute("datetime")).toLocaleTimeString();

  function tick() {
    var left = Math.max(0, Math.ceil((deadline - performance.now()) / 1000));
    countdown.dataset.left = left;
    countdown.textContent = gone ? "gone" : Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    countdown.classList.toggle("expired", gone || left === 0);
  }

  function show(state) {
    var store = state.store, session = state.session;
    el("pid").textContent = state.pid;
    el("live").textContent = number(store.live);
    el("bound").textContent = number(store.bound);
    if (store.bound) el("fill").style.width = Math.min(100, 100 * store.live / store.bound) + "%";
    el("evictions").textContent = number(store.evictions);
    el("expirations").textContent = number(store.expirations);
    el("last-prune").textContent = store.last_prune_ago === null ? "not yet"
      : Math.round(store.last_prune_ago) + " s ago \\u00b7 " + store.last_pruned + " expired";
    gone = session === null;
    if (gone) {
      el("expires-note").textContent = "expired, evicted or reset: reload the page for a new session";
      el("session-data").textContent = "(not in the store)";
    } else {
      deadline = performance.now() + 1000 * session.expires_in;
      el("session-tag").textContent = session.tag;
      el("visits").textContent = session.visits;
      el("items").textContent = session.items;
      el("served-by").textContent = session.served_by.join(" \\u00b7 ");
      el("session-data").textContent = session.data;
    }
    el("refreshed").textContent = "live";
    el("refreshed").classList.remove("offline");
    tick();
  }

  function refresh() {
    if (document.hidden) return;
    fetch("state.json", {cache: "no-store", credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(show)
      .catch(function () { el("refreshed").textContent = "offline"; el("refreshed").classList.add("offline"); });
  }

  tick();
  setInterval(tick, 250);
  setInterval(refresh, 1000);
})();
</script>
</body>
</html>
"""
)
