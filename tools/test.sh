#!/usr/bin/env bash
# Install everything the test suite needs and run it; the one test command
# (README, .ci/run).  On a fresh machine it:
#   1. makes redis-server available for the Redis tests, and chromium +
#      chromium-driver for the demo's browser test (Debian's packages; where
#      they cannot be installed, one loud line says which tests will skip),
#   2. builds and installs memorystore with its test extra into .venv (this
#      compiles the Cython core) and runs the suite against the INSTALLED
#      package: both cores side by side, then again with
#      MEMORYSTORE_NO_EXTENSIONS=1 (pure core only, as a pure wheel behaves),
#   3. smoke-runs the benchmark suite once (--benchmark-disable),
#   4. runs the suite on every other CPython that pyenv offers (3.12, 3.13),
#   5. builds the sdist, the compiled and the pure wheel and tests them as a
#      user installs them (tools/check-wheels.sh).
# MEMORYSTORE_TEST_QUICK=1 stops after step 2.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset MEMORYSTORE_NO_EXTENSIONS PYTHONPATH
PYTHON=${PYTHON:-python3}
VENV=${MEMORYSTORE_VENV:-.venv}

step() { printf '\n=== %s\n' "$*"; }

step "redis-server for the Redis tests"
bash tools/redis-for-tests.sh

step "headless chromium for the demo's browser test"
bash tools/browser-for-tests.sh

step "install memorystore[test] into $VENV ($($PYTHON --version))"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q ".[test]"
"$VENV/bin/python" -m memorystore info
"$VENV/bin/python" -c 'import memorystore, sys; sys.exit(0 if memorystore.COMPILED else "the compiled core did not import")'
bash tools/uwsgi-for-tests.sh "$VENV/bin/python"  # uWSGI for tests/test_servers.py (built from its sdist)

step "tests: compiled and pure cores"
"$VENV/bin/python" -m pytest -p no:cacheprovider -q
step "tests: MEMORYSTORE_NO_EXTENSIONS=1 (pure core only)"
MEMORYSTORE_NO_EXTENSIONS=1 "$VENV/bin/python" -m pytest -p no:cacheprovider -q

[ -n "${MEMORYSTORE_TEST_QUICK:-}" ] && exit 0

step "benchmark smoke run (each benchmark once)"
"$VENV/bin/python" -m pip install -q ".[bench]"
"$VENV/bin/python" -m pytest -p no:cacheprovider -q bench --benchmark-disable

for version in 3.12 3.13; do
    other=""
    if command -v pyenv >/dev/null 2>&1; then
        prefix=$(pyenv prefix "$(pyenv versions --bare | grep -E "^${version//./\\.}(\.[0-9]+)?$" | tail -n 1)" 2>/dev/null || true)
        [ -n "$prefix" ] && [ -x "$prefix/bin/python3" ] && other="$prefix/bin/python3"
    fi
    [ -z "$other" ] && command -v "python$version" >/dev/null 2>&1 && other=$(command -v "python$version")
    if [ -z "$other" ]; then
        echo "(no CPython $version here: skipped)"
        continue
    fi
    step "tests on $($other --version)"
    "$other" -m venv "$VENV-$version"
    "$VENV-$version/bin/python" -m pip install -q --upgrade pip
    "$VENV-$version/bin/python" -m pip install -q ".[test]"
    "$VENV-$version/bin/python" -m pytest -p no:cacheprovider -q
done

step "wheels and sdist, tested as installed"
CHECK_WHEELS_PYTEST_ARGS='-q -x' bash tools/check-wheels.sh "$VENV/bin/python"
