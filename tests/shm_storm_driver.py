"""The storm's driver (tests/test_shared_storm.py runs it as a script): a small process, so forking is cheap.

    python shm_storm_driver.py NAME LOG_DIR SECONDS

Creates the segment NAME, forks WORKERS workers that inherit it, and kills one
of them every ~50 ms (SIGKILL) and forks its replacement, for SECONDS; then
checks that the survivors still make progress (nobody hangs on a dead holder),
kills them all and prints the number of kills.  Exit status 3: a hang.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

from memorystore import SharedMemoryStore

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


def main() -> int:
    name, log_dir, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = SharedMemoryStore(name, capacity=1000, arena_bytes=4 << 20)
    logs = [os.path.join(log_dir, f"lineage{i}.log") for i in range(WORKERS)]
    pids = [_spawn(store, i, logs[i]) for i in range(WORKERS)]
    kills = 0
    rng = random.Random()
    start = time.monotonic()
    while time.monotonic() < start + seconds:
        # a kill every ~50 ms on average (pacing, not synchronisation)
        time.sleep(max(0.0, start + (kills + 1) * 0.05 + rng.uniform(-0.02, 0.02) - time.monotonic()))
        victim = rng.randrange(WORKERS)
        os.kill(pids[victim], signal.SIGKILL)
        os.waitpid(pids[victim], 0)
        kills += 1
        pids[victim] = _spawn(store, victim, logs[victim])
    # the survivors must still be making progress (nobody hangs on a dead holder)
    sizes = [os.path.getsize(p) for p in logs]
    deadline = time.monotonic() + 20
    while not all(os.path.getsize(p) > size for p, size in zip(logs, sizes)):
        if time.monotonic() > deadline:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            return 3
        time.sleep(0.01)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    print(kills)
    return 0


if __name__ == "__main__":
    sys.exit(main())
