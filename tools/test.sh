#!/usr/bin/env bash
# The one test command (README, .ci/run): installs everything the suite needs and runs it.
#
#   bash tools/test.sh                          the whole check
#   MEMORYSTORE_TEST_QUICK=1 bash tools/test.sh  steps 1-3 only
#
# How long: see the README ("Development") for the last measured run; each step prints its
# time, and a summary ends the run.  A first run on a new machine also downloads the
# dependencies and builds a free-threaded CPython (minutes; cached afterwards).
#
# Steps:
#   1. redis-server for the Redis tests (Debian's package, tools/redis-for-tests.sh), and
#      chromium + chromium-driver for the demo's browser test (Debian's packages; where they
#      cannot be installed, one loud line says the browser test will skip);
#   2. a virtual environment of its own with memorystore[test] installed from a snapshot of
#      this tree (compiles the Cython core; the tree itself gets no build/ or .so);
#   3. the suite against that INSTALLED package: both cores side by side, every test; then
#      again with MEMORYSTORE_NO_EXTENSIONS=1 (pure core only, as a pure wheel behaves);
#   4. the benchmark suite once (--benchmark-disable: each benchmark runs once, nothing timed);
#      the peers' own test suites against the adapters (tools/peer-suites.sh: cachelib's and
#      Django's, from their sdists, kept in ~/.cache/memorystore/peer-sdists); the
#      instruction-count gate (tools/instructions-gate.sh: callgrind, exact counts against
#      bench/results/instructions.json); the Windows compile check (tools/windows-compile-check.sh:
#      both extensions cross-compiled and linked with mingw-w64 against CPython's Windows headers);
#   5. the suite on every other CPython pyenv offers (3.12, 3.13), each in its own environment;
#   6. the sdist, the compiled and the pure wheel, built and tested as a user installs them
#      (tools/check-wheels.sh), ending with one PASS/FAIL line;
#   7. a free-threaded CPython, built once (tools/freethreaded-python.sh) and cached outside
#      the checkout: the suite with the GIL asserted off, the thread tests under
#      pytest-run-parallel (tools/test-freethreaded.sh).
# The long multi-process and stress tests (marker "slow") run in step 3's first run only.
# A step that cannot run here (no valgrind, no sdist download, no free-threaded build) says so
# in one loud line and is a SKIP in the summary, never a PASS.
#
# Its virtual environments live in .test-envs/ (never the .venv the README's demo command
# makes) and are removed at the end, with every other file the run made, unless
# MEMORYSTORE_KEEP=1 (then a re-run reuses them and is faster; MEMORYSTORE_TEST_ENVS=DIR
# puts them elsewhere).  The pip cache is pip's own (~/.cache/pip).
#
# The run does not depend on the signal dispositions it inherits: a background job of a
# script starts with SIGINT and SIGQUIT ignored, which bash cannot undo, so the script
# re-executes itself once with their default dispositions before doing anything else.
set -uo pipefail

PYTHON=${PYTHON:-python3}
if [ -z "${MEMORYSTORE_TEST_SIGNALS_RESET:-}" ]; then
    export MEMORYSTORE_TEST_SIGNALS_RESET=1
    exec "$PYTHON" -c '
import os, signal, sys
for name in ("SIGINT", "SIGQUIT"):
    signal.signal(getattr(signal, name), signal.SIG_DFL)
os.execvp("bash", ["bash", *sys.argv[1:]])
' "${BASH_SOURCE[0]}" "$@"
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset MEMORYSTORE_NO_EXTENSIONS PYTHONPATH
ENVS=${MEMORYSTORE_TEST_ENVS:-$ROOT/.test-envs}
VENV="$ENVS/py-main"
START=$SECONDS
RESULTS=()
FAILED=0
CURRENT=""  # the step running now: if the run ends inside it, it did not pass

finish() {
    local rc=$?
    if [ -n "$CURRENT" ]; then
        RESULTS+=("FAIL  $(printf '%4ds' $((SECONDS - CURRENT_START)))  $CURRENT (interrupted)")
        FAILED=1
    fi
    [ "$FAILED" -ne 0 ] && rc=1
    printf '\n=== summary (%dm%02ds)\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60))
    printf '%s\n' "${RESULTS[@]}"
    if [ -n "${MEMORYSTORE_KEEP:-}" ]; then
        echo "test.sh: environments kept in $ENVS (MEMORYSTORE_KEEP=1)"
    else
        rm -rf "$ENVS"
    fi
    if [ "$rc" -eq 0 ]; then
        echo "test.sh: PASSED"
    else
        echo "test.sh: FAILED"
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# step NAME COMMAND...: run one step, time it, and record PASS or FAIL (the run goes on).
# A command that exits 77 (automake's convention) could not run here and has said so in a
# loud line: the step is recorded as SKIP, neither a pass nor a failure.
step() {
    local name=$1 started=$SECONDS rc=0
    shift
    printf '\n=== %s\n' "$name"
    CURRENT=$name CURRENT_START=$started
    "$@" || rc=$?
    CURRENT=""
    local took=$((SECONDS - started))
    if [ "$rc" -eq 0 ]; then
        RESULTS+=("PASS  $(printf '%4ds' "$took")  $name")
    elif [ "$rc" -eq 77 ]; then
        RESULTS+=("SKIP  $(printf '%4ds' "$took")  $name (could not run here: see its loud line)")
    else
        RESULTS+=("FAIL  $(printf '%4ds' "$took")  $name (exit $rc)")
        FAILED=1
    fi
    return "$rc"
}

skip() {
    RESULTS+=("SKIP         $1")
    printf '\n=== %s: SKIPPED\n' "$1"
}

# snapshot: the files git would hand to a fresh clone (tracked + new, minus ignored), in $ENVS/src,
# so installs build there and never write into the working tree.
snapshot() {
    rm -rf "$ENVS/src"
    mkdir -p "$ENVS/src"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard \
            | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
            | tar --null -T - -cf - | tar -xf - -C "$ENVS/src"
    else
        tar --exclude=./.test-envs -cf - . | tar -xf - -C "$ENVS/src"
    fi
}

# install_into VENV PYTHON: (re)make VENV if it does not work, then install memorystore[test].
install_into() {
    local venv=$1 python=$2
    if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$venv"
        "$python" -m venv "$venv" || return
        "$venv/bin/python" -m pip install -q --upgrade pip || return
    fi
    # pip always rebuilds and reinstalls a project given as a directory: a re-run picks up every change.
    "$venv/bin/python" -m pip install -q "$ENVS/src[test]"
}

# suite PYTHON [PYTEST ARGS...]
suite() {
    local python=$1
    shift
    "$python" -m pytest -p no:cacheprovider -q "$@"
}

# The long multi-process, stress and soak tests (marker "slow": real servers, SIGKILL storms,
# state machines) run once, in the main suite; the later runs of the same tests on another
# interpreter, core or packaging skip them (they test the same code, not the packaging).
NOT_SLOW=(-m "not slow")

pure_suite() {
    MEMORYSTORE_NO_EXTENSIONS=1 "$1" -m pytest -p no:cacheprovider -q "${NOT_SLOW[@]}"
}

main_install() {
    snapshot || return
    install_into "$VENV" "$PYTHON" || return
    "$VENV/bin/python" -m memorystore info \
        && "$VENV/bin/python" -c 'import memorystore, sys; sys.exit(0 if memorystore.COMPILED else "the compiled core did not import")'
}

bench_smoke() {
    "$VENV/bin/python" -m pip install -q "$ENVS/src[bench]" \
        && "$VENV/bin/python" -m pytest -p no:cacheprovider -q bench --benchmark-disable
}

other_python() {
    local version=$1 found=""
    if command -v pyenv >/dev/null 2>&1; then
        local prefix
        prefix=$(pyenv prefix "$(pyenv versions --bare | grep -E "^${version//./\\.}(\.[0-9]+)?$" | tail -n 1)" 2>/dev/null || true)
        [ -n "$prefix" ] && [ -x "$prefix/bin/python3" ] && found="$prefix/bin/python3"
    fi
    [ -z "$found" ] && command -v "python$version" >/dev/null 2>&1 && found=$(command -v "python$version")
    echo "$found"
}

wheels() {
    local keep=""
    [ -n "${MEMORYSTORE_KEEP:-}" ] && keep=1
    CHECK_WHEELS_KEEP=$keep CHECK_WHEELS_PYTEST_ARGS='-q -x -m "not slow"' bash tools/check-wheels.sh "$VENV/bin/python"
}

mkdir -p "$ENVS"
step "redis-server for the Redis tests" bash tools/redis-for-tests.sh
step "headless chromium for the demo's browser test" bash tools/browser-for-tests.sh
if ! step "install memorystore[test] into $VENV ($($PYTHON --version 2>&1))" main_install; then
    echo "test.sh: the install failed; nothing else can run" >&2
    exit 1
fi
# uWSGI for the server tests, built from its sdist; where it cannot be, one loud line and exit 77.
step "uWSGI for the server tests (tools/uwsgi-for-tests.sh)" bash tools/uwsgi-for-tests.sh "$VENV/bin/python"
step "tests: compiled and pure cores ($VENV)" suite "$VENV/bin/python"
step "tests: MEMORYSTORE_NO_EXTENSIONS=1 (pure core only; not slow)" pure_suite "$VENV/bin/python"

if [ -n "${MEMORYSTORE_TEST_QUICK:-}" ]; then
    skip "benchmark smoke run, other CPythons, wheels (MEMORYSTORE_TEST_QUICK=1)"
    exit 0
fi

step "benchmark smoke run (each benchmark once)" bench_smoke
step "peer suites: cachelib's and Django's own tests on the adapters, both cores" bash tools/peer-suites.sh "$VENV/bin/python"
# Instruction counts (callgrind, exact) against bench/results/instructions.json: > 5% worse fails.
step "instruction-count gate (callgrind)" bash tools/instructions-gate.sh "$VENV/bin/python"
# Both extensions cross-compiled for Windows (issue #12); without mingw-w64 or the CPython sources
# it prints one loud line and exits 77.
step "Windows compile check: mingw-w64 against CPython's Windows headers (tools/windows-compile-check.sh)" \
    bash tools/windows-compile-check.sh "$VENV/bin/python"

for version in 3.12 3.13; do
    other=$(other_python "$version")
    if [ -z "$other" ]; then
        skip "tests on CPython $version (not installed here)"
        continue
    fi
    if step "install memorystore[test] for $($other --version 2>&1)" install_into "$ENVS/py$version" "$other"; then
        step "tests on $($other --version 2>&1) (not slow)" suite "$ENVS/py$version/bin/python" "${NOT_SLOW[@]}"
    fi
done

if step "wheels and sdist, tested as installed (tools/check-wheels.sh)" wheels; then
    RESULTS+=("wheel checks: PASS")
else
    RESULTS+=("wheel checks: FAIL")
fi

# Free-threaded CPython (issue #17); without an interpreter it prints one loud line and exits 77.
freethreaded() {
    MEMORYSTORE_FT_VENV="$ENVS/py-ft" MEMORYSTORE_FT_SRC="$ENVS/src" bash tools/test-freethreaded.sh
}
step "free-threaded CPython: the suite with the GIL off (tools/test-freethreaded.sh)" freethreaded
