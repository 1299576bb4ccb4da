"""The storm: 4 processes doing random operations on one SharedMemoryStore, one of
them SIGKILLed every ~50 ms and restarted, for 30 s (MEMORYSTORE_STORM_SECONDS).

Each worker lineage owns its own sids and writes a log: an intent line before
every write and an acknowledgement after it returns.  At the end every sid must
hold its last acknowledged value, or the value of the one write a killed worker
had started and not acknowledged; the segment must pass check_invariants, no
process may have hung (every wait is bounded), and recoveries must have happened.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid

import pytest
from helpers import wait_until

from memorystore import SharedMemoryStore

pytestmark = [pytest.mark.c_extension, pytest.mark.slow]

SECONDS = float(os.environ.get("MEMORYSTORE_STORM_SECONDS", "30"))
WORKERS = 4
KEYS = 40
ABSENT = "-"


def _worker(store, lineage, log_path, seed):
    """Random operations on this lineage's sids until killed; every write logged before and after."""
    rng = random.Random(seed)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    mine = [f"L{lineage}-{k}" for k in range(KEYS)]
    seq = 0
    while True:
        sid = rng.choice(mine)
        op = rng.random()
        seq += 1
        tag = f"{seed}.{seq}"
        if op < 0.45:
            value = {"sid": sid, "tag": tag, "pad": "p" * rng.randrange(0, 3000)}
            os.write(fd, f"I set {sid} {tag}\n".encode())
            store.set(sid, value)
            os.write(fd, f"A {sid}\n".encode())
        elif op < 0.55:
            os.write(fd, f"I del {sid} {ABSENT}\n".encode())
            store.destroy(sid)
            os.write(fd, f"A {sid}\n".encode())
        elif op < 0.62:
            value = {"sid": sid, "tag": tag, "pad": ""}
            os.write(fd, f"I add {sid} {tag}\n".encode())
            added = store.add(sid, value)
            os.write(fd, f"A {sid} {int(added)}\n".encode())
        elif op < 0.70:
            store.touch(sid, ttl=3600)
        else:
            got = store.get(sid)
            if got is not None and got.get("sid") != sid:  # another sid's value: corruption
                os.write(fd, f"BAD {sid} {got.get('sid')}\n".encode())


def _spawn(store, lineage, log_path):
    seed = random.randrange(1 << 30)
    pid = os.fork()
    if pid == 0:
        try:
            _worker(store, lineage, log_path, seed)
        finally:
            os._exit(1)
    return pid


def _expected(log_path):
    """sid -> the set of values (tags, or ABSENT) it may hold, from one lineage's log."""
    acked = {}
    pending = {}
    with open(log_path) as handle:
        lines = handle.read().splitlines()
    for line in lines:
        parts = line.split()
        assert parts[0] != "BAD", line
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
    store = SharedMemoryStore(name, capacity=1000, arena_bytes=4 << 20)
    # the children are forked from this process: they inherit the mapping (gunicorn --preload style)
    try:
        logs = [str(tmp_path / f"lineage{i}.log") for i in range(WORKERS)]
        pids = [_spawn(store, i, logs[i]) for i in range(WORKERS)]
        kills = 0
        start = time.monotonic()
        end = start + SECONDS
        rng = random.Random()
        while time.monotonic() < end:
            # a kill every ~50 ms on average (pacing, not synchronisation)
            time.sleep(max(0.0, start + (kills + 1) * 0.05 + rng.uniform(-0.02, 0.02) - time.monotonic()))
            victim = rng.randrange(WORKERS)
            os.kill(pids[victim], signal.SIGKILL)
            os.waitpid(pids[victim], 0)
            kills += 1
            pids[victim] = _spawn(store, victim, logs[victim])
        # the survivors must still be making progress (nobody hangs on a dead holder)
        sizes = [os.path.getsize(p) for p in logs]
        assert wait_until(lambda: all(os.path.getsize(p) > s for p, s in zip(logs, sizes)), 20)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

        store.check_invariants()  # repairs what the last kills left, then checks
        held = {sid: value["tag"] for sid, value in store.all().items()}
        lines = 0
        for log in logs:
            allowed, count = _expected(log)
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
        store.unlink()
