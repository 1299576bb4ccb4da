"""Command line: ``python -m memorystore {demo,info,bench,flood}``.

* ``demo [--port N] [--workers N]``: the demo page (``memorystore._demo``)
  served on 127.0.0.1 by the standard library's threaded WSGI server; the
  first line printed is its URL.  Port 0 (the default) picks a free port.
  With ``--workers N``, N forked worker processes share the socket and a
  ``SharedMemoryStore``.
* ``info``: version, which core is in use, the Cython it was built with, Python.
* ``bench [args]``: the comparison benchmark (``memorystore._bench``).
* ``flood [args]``: the eviction policies under floods of new sessions
  (``memorystore._flood``).
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: The commands and what each does: the listing of ``--help``.
COMMANDS = {
    "demo": "serve a live demo page on 127.0.0.1 and print its URL",
    "info": "print the version and which core is in use (compiled or pure)",
    "bench": "compare against the installed peers (see: bench --help)",
    "flood": "the eviction policies under floods of new sessions (see: flood --help)",
}

DEMO_DESCRIPTION = """\
Serve a small web page on 127.0.0.1 that shows memorystore at work: your own
session (when it was created, a live countdown to its expiry, the data in it)
and the store (live sessions, the bound, evictions, expirations, the last
prune), with buttons to add data, reset your session and start a burst of
anonymous sessions to watch eviction and expiry happen. Standard library only.
With --workers N, N worker processes serve it from one SharedMemoryStore: the
page names the worker that answered and every worker your session has met.
The first line printed is the page's URL; stop it with Ctrl-C."""


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


def port_number(text: str) -> int:
    """A TCP port for ``--port``: a whole number 0..65535 (0: a free port)."""
    if not (text.isascii() and text.isdigit()):  # int() would also take " 8", "+8" and "8_0"
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 65535, not {text!r}")
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, not {port}")
    return port


def worker_count(text: str) -> int:
    """A number of worker processes for ``--workers``: a whole number 1..64."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 64, not {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<7} {text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="python -m memorystore",
        usage="%(prog)s {" + ",".join(COMMANDS) + "} [options]",
        description="memorystore: server-side sessions in process memory.",
        epilog=f"commands:\n{listing}\n\nRun '%(prog)s COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # The listing above is the commands' help: argparse's own (a "{demo,info,bench}" line) is left out.
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS)
    prog = parser.prog
    demo = commands.add_parser(
        "demo",
        prog=f"{prog} demo",
        help=COMMANDS["demo"],
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--port", type=port_number, default=0, metavar="N", help="port to listen on, 0..65535 (default 0: a free port)"
    )
    demo.add_argument(
        "--workers",
        type=worker_count,
        default=None,
        metavar="N",
        help="serve from N forked worker processes sharing a SharedMemoryStore (default: one process, a MemoryStore)",
    )
    commands.add_parser(
        "info", prog=f"{prog} info", help=COMMANDS["info"], description=COMMANDS["info"].capitalize() + "."
    )
    # "bench" and "flood" are dispatched before parsing (each has its own parser); listed here for the
    # usage and errors.
    commands.add_parser("bench", prog=f"{prog} bench", help=COMMANDS["bench"], add_help=False)
    commands.add_parser("flood", prog=f"{prog} flood", help=COMMANDS["flood"], add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "bench":
        from . import _bench

        return int(_bench.main(args[1:]) or 0)
    if args and args[0] == "flood":
        from . import _flood

        return int(_flood.main(args[1:]) or 0)

    options = _parser().parse_args(args)
    if options.command == "demo":
        from . import _demo

        if options.workers is not None:
            return _demo.serve_workers(options.port, options.workers)
        return _demo.serve(options.port)
    return _info()


if __name__ == "__main__":
    sys.exit(main())
