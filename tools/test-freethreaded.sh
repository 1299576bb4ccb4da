#!/usr/bin/env bash
# The free-threaded step of the test command (tools/test.sh calls it last; issue #17).
#
#   1. builds, or reuses, a free-threaded CPython (tools/freethreaded-python.sh, cached outside
#      the checkout in MEMORYSTORE_FT_PREFIX, default /var/tmp/memorystore-ft/python3t); when
#      none can be had it says so in one loud line and exits 77 (tools/test.sh: SKIP, never PASS);
#   2. installs memorystore into a venv of it (MEMORYSTORE_FT_VENV, default .venv-ft): the
#      compiled core must build and import;
#   3. installs the test requirements (pyproject's [test] extra, gunicorn included, and pytest-run-parallel)
#      one by one: one that cannot be installed on a free-threaded interpreter (Flask-Session:
#      msgspec has no free-threaded wheel and does not build) is named in a loud line, and the
#      tests that need it skip in this run only;
#   4. runs the whole suite (both cores) with MEMORYSTORE_REQUIRE_FREE_THREADING=1: the conftest
#      imports every module of the package first and fails if the GIL is on then, or at the end;
#   5. runs the thread-safety tests again under pytest-run-parallel (each test in 4 threads).
# Cost on this 2-core machine: see the figures in the README ("Free-threaded CPython").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset MEMORYSTORE_NO_EXTENSIONS PYTHONPATH PYTHON_GIL   # PYTHON_GIL=0 would hide a module that needs the GIL
PREFIX=${MEMORYSTORE_FT_PREFIX:-/var/tmp/memorystore-ft/python3t}
VENV=${MEMORYSTORE_FT_VENV:-.venv-ft}
SRC=${MEMORYSTORE_FT_SRC:-.}   # the tree to install (tools/test.sh hands over its snapshot)
# The thread storms and the core's contract tests (the reentrancy file's other cases each start a
# child interpreter: 8 of them per case under pytest-run-parallel would cost minutes, not coverage).
PARALLEL_TESTS=(tests/test_threads.py tests/test_lru_reentrancy.py::test_threads_mixed_operations tests/test_lru.py)
started=$SECONDS

step() { printf '\n=== %s\n' "$*"; }
loud() { printf '\n!!!!!!!! %s\n' "$*"; }

step "free-threaded CPython in $PREFIX (tools/freethreaded-python.sh)"
if ! python_ft=$(nice -n 10 bash tools/freethreaded-python.sh "$PREFIX"); then
    loud "FREE-THREADED TESTS NOT RUN: no free-threaded CPython could be built here (see the lines above)"
    exit 77
fi

step "install memorystore into $VENV ($("$python_ft" -VV | head -1))"
"$python_ft" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$SRC"
"$VENV/bin/python" -m memorystore info
"$VENV/bin/python" -c 'import memorystore, sys; sys.exit(0 if memorystore.COMPILED else "the compiled core did not import")'

step "test requirements, one by one"
mapfile -t requirements < <("$VENV/bin/python" -c '
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1] + "/pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))' "$SRC")
requirements+=("pytest-run-parallel>=0.10")
not_installed=()
for requirement in "${requirements[@]}"; do
    # The newest release first; else the newest with a wheel for this interpreter (a newer sdist
    # may need a toolchain that cannot be fetched here).
    if "$VENV/bin/python" -m pip install -q "$requirement" >"$VENV/pip.log" 2>&1 \
            || "$VENV/bin/python" -m pip install -q --only-binary=:all: "$requirement" >"$VENV/pip.log" 2>&1; then
        continue
    fi
    not_installed+=("$requirement ($(grep -m1 -E '^ERROR' "$VENV/pip.log" || tail -1 "$VENV/pip.log"))")
done
for requirement in pytest pytest-run-parallel gunicorn; do   # without these the step would test nothing
    "$VENV/bin/python" -m pip show -q "$requirement" >/dev/null 2>&1 \
        || { echo "free-threaded step: $requirement did not install: the step fails" >&2; exit 1; }
done
if [ ${#not_installed[@]} -gt 0 ]; then
    loud "free-threaded run only: not installable on $("$python_ft" --version) here, their tests skip: ${not_installed[*]}"
fi

step "tests on the free-threaded build: compiled and pure cores, the GIL asserted off"
MEMORYSTORE_REQUIRE_FREE_THREADING=1 "$VENV/bin/python" -m pytest -p no:cacheprovider -q

step "thread-safety tests under pytest-run-parallel (4 threads a test)"
MEMORYSTORE_REQUIRE_FREE_THREADING=1 "$VENV/bin/python" -m pytest -p no:cacheprovider -q \
    --parallel-threads=4 --iterations=2 "${PARALLEL_TESTS[@]}"

echo "free-threaded step: $((SECONDS - started)) s"
