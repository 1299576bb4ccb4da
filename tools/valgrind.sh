#!/usr/bin/env bash
# Run the compiled cache core under valgrind memcheck (issue #6, sanitizer runs).
#
#   tools/valgrind.sh [python] [-- workload args]
#
# Runs tools/valgrind_workload.py (fill, evict, expire with a fake timer,
# overwrite, pop, clear, shrink/grow cycles, re-entrant finalizers, raising
# __eq__, threads, the store with a re-entrant dispose) with PYTHONMALLOC=malloc
# under memcheck, without suppressions, and then looks at every error in the log:
# CPython itself produces known noise (uninitialised reads in the allocator and
# the GC), so the run fails only if an error's stack mentions the core
# (memorystore's _lru module: _lru.pyx, _lru.c or _lru.cpython-*.so) or if
# the workload itself failed.  Errors counted: invalid read/write/free,
# uses of uninitialised values, overlapping copies, and definite leaks.
#
# Environment: PYTHON (default: /work/venv/bin/python, then python3),
# VALGRIND_LOG (default: a temporary file, kept on failure), SCALE (workload
# multiplier, default 10).  Installs Debian's valgrind if it is missing and we
# are root.  Takes a few minutes; not part of the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${1:-${PYTHON:-}}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
if [ -z "$PYTHON" ]; then
    if [ -x /work/venv/bin/python ]; then PYTHON=/work/venv/bin/python; else PYTHON=python3; fi
fi

if ! command -v valgrind >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "valgrind is missing: installing Debian's package" >&2
        apt-get install -y -q valgrind >&2 || { apt-get update -q >&2 && apt-get install -y -q valgrind >&2; }
    else
        echo "valgrind is not installed (apt-get install valgrind)" >&2
        exit 2
    fi
fi

if ! "$PYTHON" -c 'import memorystore._lru' 2>/dev/null; then
    echo "the compiled core (memorystore._lru) does not import with $PYTHON: build it first (pip install -e .)" >&2
    exit 2
fi

LOG=${VALGRIND_LOG:-$(mktemp -t memorystore-valgrind.XXXXXX.log)}
echo "valgrind $(valgrind --version | sed 's/^valgrind-//') on $("$PYTHON" --version 2>&1), log: $LOG"

set +e
PYTHONMALLOC=malloc valgrind \
    --tool=memcheck \
    --error-exitcode=99 \
    --num-callers=40 \
    --track-origins=no \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --log-file="$LOG" \
    "$PYTHON" -X faulthandler tools/valgrind_workload.py --scale "${SCALE:-10}" "$@" >"$LOG.out"
rc=$?
cat "$LOG.out"
set -e

# Split the log into error blocks (an error header up to the next blank "==pid==" line),
# keep those whose stack mentions the core, and count them by kind.
summary=$("$PYTHON" - "$LOG" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
lines = [re.sub(r"^==\d+== ?", "", line) for line in text.splitlines()]
blocks, block = [], []
for line in lines:
    if line.strip():
        block.append(line)
    elif block:
        blocks.append(block)
        block = []
if block:
    blocks.append(block)
kinds = {
    "invalid read": re.compile(r"^Invalid read"),
    "invalid write": re.compile(r"^Invalid write"),
    "invalid free": re.compile(r"^(Invalid free|Mismatched free)"),
    "uninitialised": re.compile(r"uninitialised"),
    "overlap": re.compile(r"^Source and destination overlap"),
    "definite leak": re.compile(r"definitely lost in loss record"),
}
core_frame = re.compile(r"(_lru\.pyx|_lru\.c:|_lru\.cpython|memorystore/_lru|__pyx_\w*_lru)")
total = {k: 0 for k in kinds}
core = {k: 0 for k in kinds}
for block in blocks:
    for kind, pattern in kinds.items():
        if pattern.search(block[0]):
            total[kind] += 1
            if any(core_frame.search(line) for line in block):
                core[kind] += 1
                print("\n".join(["CORE ERROR:"] + block), file=sys.stderr)
            break
match = re.search(r"ERROR SUMMARY: (\d+) errors from (\d+) contexts", text)
print("valgrind error summary:", match.group(0) if match else "(none found)")
print("all errors by kind:     ", ", ".join(f"{k} {v}" for k, v in total.items()))
print("errors in the core:     ", ", ".join(f"{k} {v}" for k, v in core.items()))
print("CORE_ERRORS=%d" % sum(core.values()))
EOF
)
echo "$summary" | grep -v '^CORE_ERRORS='
core_errors=$(echo "$summary" | sed -n 's/^CORE_ERRORS=//p')

# valgrind's rc is 99 when it saw any error (CPython's noise included), else the workload's.
if ! grep -q "^workload ok" "$LOG.out" || { [ $rc -ne 0 ] && [ $rc -ne 99 ]; }; then
    echo "FAIL: the workload did not finish cleanly under valgrind (rc=$rc, log: $LOG)" >&2
    exit 1
fi
if [ "${core_errors:-1}" != 0 ]; then
    echo "FAIL: valgrind found $core_errors error(s) in the core's frames (log: $LOG)" >&2
    exit 1
fi
echo "OK: no memcheck errors in the core (rc=$rc; 99 = errors outside the core only)"
rm -f "$LOG.out"
[ -z "${VALGRIND_LOG:-}" ] && rm -f "$LOG"
exit 0
