"""The storm: 4 processes doing random operations on one SharedMemoryStore, one of
them SIGKILLed every ~50 ms and restarted, for 30 s (MEMORYSTORE_STORM_SECONDS);
the forking and killing is done by tests/shm_storm_driver.py.

Each worker lineage owns its own sids and writes a log: an intent line before
every write and an acknowledgement after it returns.  At the end every sid must
hold its last acknowledged value, or the value of the one write a killed worker
had started and not acknowledged; the segment must pass check_invariants, no
process may have hung (every wait is bounded), and recoveries must have happened.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

from memorystore import SharedMemoryStore

pytestmark = [pytest.mark.c_extension, pytest.mark.slow]

SECONDS = float(os.environ.get("MEMORYSTORE_STORM_SECONDS", "30"))
WORKERS = 4
KEYS = 40
ABSENT = "-"
RECORD = re.compile(r"(?:I (?:set|del|add) \S+ \S+|A \S+(?: [01])?)$")  # a log line's last whole record


def _expected(log_path):
    """sid -> the set of values (tags, or ABSENT) it may hold, from one lineage's log."""
    acked = {}
    pending = {}
    with open(log_path) as handle:
        lines = handle.read().splitlines()
    for line in lines:
        assert "BAD " not in line, line  # anywhere: a BAD record can follow a partial one
        # A SIGKILL can cut a write short where it crosses a page of the log (the kernel stops
        # copying once the signal is pending): the killed process's partial record, with no
        # newline, then prefixes the next process's.  The partial one is dropped: an intent that
        # was not fully written was never carried out, a lost acknowledgement leaves it pending.
        record = RECORD.search(line)
        assert record is not None, line
        parts = record.group(0).split()
        if parts[0] == "I":
            _, op, sid, tag = parts
            pending[sid] = (op, tag)
        elif parts[0] == "A" and parts[1] in pending:
            op, tag = pending.pop(parts[1])
            if op == "set" or op == "del" or (op == "add" and parts[2] == "1"):
                acked[parts[1]] = tag
    allowed = {}
    for k in {s for s in acked} | set(pending):
        before = acked.get(k, ABSENT)
        allowed[k] = {before} | ({pending[k][1]} if k in pending else set())
    return allowed, len(lines)


def test_storm_of_sigkills_loses_no_acknowledged_write(tmp_path):
    name = f"test-storm-{uuid.uuid4().hex[:12]}"
    driver = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shm_storm_driver.py")
    try:
        # the workers are forked from the driver: they inherit the mapping (gunicorn --preload style)
        run = subprocess.run(
            [sys.executable, driver, name, str(tmp_path), str(SECONDS)],
            capture_output=True,
            text=True,
            timeout=SECONDS + 120,
        )
        assert run.returncode == 0, "a worker hung" if run.returncode == 3 else run.stderr
        kills = int(run.stdout)
        store = SharedMemoryStore(name, capacity=1000, arena_bytes=4 << 20)  # opened by name here
        store.check_invariants()  # repairs what the last kills left, then checks
        held = {sid: value["tag"] for sid, value in store.all().items()}
        lines = 0
        for i in range(WORKERS):
            allowed, count = _expected(str(tmp_path / f"lineage{i}.log"))
            lines += count
            for sid, tags in allowed.items():
                assert held.get(sid, ABSENT) in tags, (sid, held.get(sid, ABSENT), tags)
        assert set(held) <= {f"L{i}-{k}" for i in range(WORKERS) for k in range(KEYS)}
        stats = store.stats()
        assert stats.evictions == 0  # nothing was pushed out, so nothing acknowledged may be missing
        assert stats.recoveries >= 1, "no kill landed inside a critical section"
        assert kills >= SECONDS * 10 and lines > 1000  # ~20 a second
        print(f"storm: {kills} kills, {stats.recoveries} recoveries, {lines} log lines")
    finally:
        try:
            os.unlink(os.path.join("/dev/shm", "memorystore." + name))
        except FileNotFoundError:
            pass
