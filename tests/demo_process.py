"""Start the real ``python -m memorystore demo`` in a subprocess, with a chosen SIGINT disposition."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any


def first_line(stream: IO[str], timeout: float = 30.0) -> str:
    """The first line of a pipe; ``TimeoutError`` after ``timeout`` seconds (no hang if the server never starts)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"no output within {timeout} s") from None


@contextmanager
def demo_process(
    *args: str, sigint: Any = signal.SIG_DFL, stderr: Path | None = None, own_group: bool = False
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The demo serving on a free port, and its URL (its first line of output).

    ``sigint`` is the SIGINT disposition the demo inherits (``SIG_IGN`` as in a
    background job, or ``SIG_DFL``), set in the child before ``exec``, so the
    result does not depend on the disposition of the process running the tests.
    ``own_group``: the demo leads a process group of its own (its forked workers
    join it), as a shell's foreground job does, so that a test can send the
    group a Ctrl-C; at the end the demo gets SIGTERM (it stops its workers and
    unlinks its segment), then whatever is left of the group is SIGKILLed.
    """

    def set_sigint() -> None:
        signal.signal(signal.SIGINT, sigint)

    log = open(stderr, "w") if stderr is not None else None  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "memorystore", "demo", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=log if log is not None else subprocess.DEVNULL,
        text=True,
        preexec_fn=set_sigint if sys.platform != "win32" else None,
        start_new_session=own_group,
    )
    try:
        assert process.stdout is not None
        url = first_line(process.stdout).strip()
        yield process, url
    finally:
        if own_group:  # the demo stops its workers on SIGTERM; whatever is left of the group is SIGKILLed
            if process.poll() is None:
                process.terminate()
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
        if log is not None:
            log.close()
