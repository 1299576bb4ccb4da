#!/usr/bin/env bash
# The instruction-count regression gate (issue 16), run by tools/test.sh.
#
#   tools/instructions-gate.sh [python]
#
# Counts, under valgrind's callgrind, the instructions each operation of the
# compiled core and of MemoryStore executes, and those of dict, and compares
# every memorystore-to-dict ratio with the committed bench/results/instructions.json
# (bench/instructions.py --gate): a ratio more than 5% worse fails, with a table of
# what moved.  Counts are exact: the same binary and PYTHONHASHSEED give the same
# numbers on every run, so there is no noise to allow for.  About 2 minutes on a
# 2-core machine (two callgrind processes at a time).
#
# valgrind comes from Debian's package, installed here when missing and we are root
# (it also brings callgrind.h, which the marker that switches counting on and off is
# compiled against).  Where it cannot be installed or cannot run, the gate prints one
# loud SKIPPED line and exits 77 (tools/test.sh records SKIP): it never reports a pass it did not run.
#
# After an intended change of the counts (a faster core, a new peer version), record
# the reference again and commit it:
#   python bench/instructions.py --json bench/results/instructions.json
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${1:-${PYTHON:-python3}}

if ! command -v valgrind >/dev/null 2>&1 || [ ! -f /usr/include/valgrind/callgrind.h ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "valgrind (or its callgrind.h) is missing: installing Debian's package" >&2
        apt-get install -y -q valgrind >&2 || { apt-get update -q >&2 && apt-get install -y -q valgrind >&2; } || true
    fi
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "!!! INSTRUCTION-COUNT GATE SKIPPED: valgrind is not installed and could not be (apt-get install valgrind) !!!"
    exit 77
fi

exec "$PYTHON" bench/instructions.py --gate
