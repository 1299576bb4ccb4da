"""Command line: ``python -m memorystore {demo,info,bench}``.

* ``demo [--port N]``: a per-visitor counter served with sessions on
  127.0.0.1 by the standard library's threaded WSGI server; the first line
  printed is its URL.  Port 0 (the default) picks a free port.
* ``info``: version, which core is in use, the Cython it was built with, Python.
* ``bench [args]``: the comparison benchmark (``memorystore._bench``).
"""

from __future__ import annotations

import argparse
import platform
import secrets
import sys
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["demo_app", "main"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>memorystore demo</title></head>
<body>
<h1>memorystore demo</h1>
<p>You have seen this page <strong id="count">{count}</strong> time{plural}.</p>
<p>Your session lives in this process's memory; the cookie holds only its signed id.
Sessions in the store before this request: {sessions}.</p>
<p><a href="/">Reload</a> &middot; <a href="/reset">Reset my session</a></p>
</body></html>
"""


def demo_app(store: Any) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """The demo WSGI app (to be wrapped in ``SessionMiddleware``): ``/`` counts, ``/reset`` forgets."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = environ["memorystore.session"]
        path = environ.get("PATH_INFO") or "/"
        if path == "/reset":
            session.invalidate()
            start_response("303 See Other", [("Location", "/"), ("Content-Type", "text/plain; charset=utf-8")])
            return [b"session reset\n"]
        if path != "/":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found\n"]
        count = session.get("count", 0) + 1
        session["count"] = count
        body = _PAGE.format(
            count=count,
            plural="" if count == 1 else "s",
            sessions=len(store),  # a count only: never ids or other visitors' data
        ).encode("utf-8")
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return app


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Logs method, path and status to stderr; never cookies or session contents."""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def _demo(port: int) -> int:
    from .store import MemoryStore
    from .wsgi import SessionMiddleware

    store = MemoryStore(ttl=3600, max=10_000, check_period=60)
    app = SessionMiddleware(demo_app(store), store, secrets.token_bytes(32), max_age=3600)
    with make_server("127.0.0.1", port, app, server_class=ThreadingWSGIServer, handler_class=_QuietHandler) as server:
        print(f"http://127.0.0.1:{server.server_port}/", flush=True)
        print("memorystore demo: press Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def _cython_version() -> str:
    try:
        from . import _lru
    except ImportError:
        return "not built"
    return str(getattr(_lru, "CYTHON_VERSION", "unknown"))


def _info() -> int:
    from . import COMPILED, __version__

    print(f"memorystore {__version__}")
    print(f"core: {'compiled' if COMPILED else 'pure'}")
    print(f"cython: {_cython_version()}")
    print(f"python: {platform.python_version()} ({platform.python_implementation()})")
    return 0


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, not {port}")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "bench":
        from . import _bench

        return int(_bench.main(args[1:]) or 0)
    if args and args[0] == "flood":
        from . import _flood

        return int(_flood.main(args[1:]) or 0)

    parser = argparse.ArgumentParser(
        prog="python -m memorystore", description="memorystore: a session demo, build information, a benchmark."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,info,bench,flood}")
    demo = commands.add_parser("demo", help="serve a session demo on 127.0.0.1")
    demo.add_argument("--port", type=_port, default=0, help="port to listen on (0: a free port)")
    commands.add_parser("info", help="version, core and build information")
    commands.add_parser("bench", help="compare against the installed peers (see: bench --help)")
    commands.add_parser("flood", help="the eviction policies under floods of new sessions (see: flood --help)")
    options = parser.parse_args(args)
    if options.command == "demo":
        return _demo(options.port)
    return _info()


if __name__ == "__main__":
    sys.exit(main())
