#!/usr/bin/env bash
# The peers' own test suites (cachelib's, Django's cache and session tests) against memorystore's
# adapters, on both cores: see tools/peer_suites/run.py.  The expected failures, each explained,
# are listed in tools/peer_suites/expected-failures.txt.
#
#   bash tools/peer-suites.sh [PYTHON] [--cores compiled,pure] [--suites cachelib,django] [-v]
#
# PYTHON (default python3) must have memorystore[test] installed.  Exits 0 when every suite ran
# and matched the list, 1 on anything unexpected, 77 when a suite could not run here (e.g. its
# sdist could not be downloaded): that is a SKIP, never a pass.
set -uo pipefail
PYTHON=python3
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    PYTHON=$1
    shift
fi
exec "$PYTHON" "$(dirname "${BASH_SOURCE[0]}")/peer_suites/run.py" "$@"
