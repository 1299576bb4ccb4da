"""The one view the server test apps serve: a client's request counter in its session.

``GET /count?client=C&seq=N``: request number N of client C.  The session
remembers its client and the last request number it applied, so a request
that is sent again (its first attempt went to a worker that was killed before
answering) is answered without counting twice: a client that sees
``count == N`` for every N has one session that never skips or repeats.
Every answer names the worker's pid and whether its prune thread runs;
``GET /pid`` only names the pid (the servers' readiness probe).

The store is chosen by the environment: ``MEMORYSTORE_TEST_STORE=memory`` a
per-process ``MemoryStore`` (the control that must fail to share), otherwise a
``SharedMemoryStore`` on the segment ``MEMORYSTORE_TEST_SEGMENT``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

#: The sessions one test server holds at most (a few clients per test).
CAPACITY = 1000


def per_process() -> bool:
    """Whether this app runs on a per-process MemoryStore (the control), not a shared one."""
    return os.environ.get("MEMORYSTORE_TEST_STORE") == "memory"


def segment() -> str:
    return os.environ["MEMORYSTORE_TEST_SEGMENT"]


def pid() -> dict[str, Any]:
    """``GET /pid``: which worker answers (the session is not touched: nothing is stored)."""
    return {"pid": os.getpid()}


def count(session: MutableMapping[str, Any], client: str, seq: int, store: Any) -> dict[str, Any]:
    """Apply request ``seq`` of ``client`` to ``session`` (once) and describe the result."""
    if "client" not in session:
        session["client"] = client
    if session.get("seq") != seq:
        session["count"] = session.get("count", 0) + 1
        session["seq"] = seq
    return {
        "pid": os.getpid(),
        "client": session["client"],
        "count": session["count"],
        "seq": session["seq"],
        "prune_thread": prune_thread_runs(store),
    }


def prune_thread_runs(store: Any) -> bool:
    """Whether the store's prune thread runs in *this* process.

    After a fork that skipped Python's at-fork handlers (uWSGI without
    ``py-call-uwsgi-fork-hooks``), the parent's thread object still says it is
    alive: the kernel's list of this process's threads tells the truth.
    """
    thread = getattr(store, "_thread", None)
    if thread is None or not thread.is_alive():
        return False
    return str(thread.native_id) in os.listdir(f"/proc/{os.getpid()}/task")
