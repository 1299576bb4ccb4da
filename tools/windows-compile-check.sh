#!/usr/bin/env bash
# Windows compile check (issue #12), run by tools/test.sh: no Windows machine is at hand, so the
# C that Cython generates for both extensions (_lru, _shm) is cross-compiled for 64-bit Windows
# with mingw-w64 against CPython's own Windows headers (Include/ and PC/pyconfig.h).
#
#   tools/windows-compile-check.sh [python]
#
# For CPython 3.11, 3.13 and 3.13 free-threaded (Py_GIL_DISABLED), each extension must
#   1. compile (x86_64-w64-mingw32-gcc -c -Wall, an implicit declaration is an error; any error
#      fails, warnings are shown);
#   2. take the branch without a robust mutex (MS_SHM_SUPPORTED is 0 in _shm's Windows build);
#   3. link into a .pyd against a stub import library of the pythonXY.dll symbols it references:
#      every other symbol must resolve in mingw-w64's C runtime and kernel32 (a POSIX-only call
#      such as pthread_*, getpid or clock_gettime left in the Windows branch fails here), and
#      the .pyd must export its PyInit_ function.
# What it does not prove: that the code runs on Windows, that MSVC (which the wheels would be
# built with) compiles it (mingw is GCC, so the non-GCC fallbacks in _shm.pyx and _slots.pxd are
# not compiled here), or that the real pythonXY.dll exports every symbol (the stub has what the
# objects reference; they reference them through __imp_, i.e. as the headers' PyAPI exports).
#
# Tools: Debian's gcc-mingw-w64-x86-64 (installed when missing and we are root), CPython source
# tarballs from Debian's archive (pinned by SHA256, kept in ~/.cache/memorystore/windows-check),
# and Cython at the pin in requirements/cython.txt (the given python's if it has that version,
# else a virtual environment in the same cache).  Where any of them cannot be had, it prints one
# loud SKIPPED line and exits 77 (tools/test.sh records SKIP): it never reports a pass it did not
# run.  Exit 0: every check above passed; 1: a check failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

PYTHON=${1:-${PYTHON:-python3}}
CACHE=${MEMORYSTORE_WINDOWS_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memorystore/windows-check}
MIRROR=${MEMORYSTORE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CC=x86_64-w64-mingw32-gcc
# CPython sources: Debian's orig tarballs (the upstream release), SHA256 from Debian's signed indexes
# (bookworm's python3.11_3.11.2-6+deb12u6.dsc, trixie's Sources for 3.13.15).
TARBALLS=(
    "3.11.2 pool/main/p/python3.11/python3.11_3.11.2.orig.tar.gz 2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"
    "3.13.15 pool/main/p/python3.13/python3.13_3.13.15.orig.tar.xz 1e66a7945a48390ee4c2a4268a0e4185884059a13c4aab6d148aa208deea4a76"
)

skip() {
    echo "!!! WINDOWS COMPILE CHECK SKIPPED: $* !!!"
    exit 77
}
fail() {
    echo "windows-compile-check: FAILED: $*" >&2
    exit 1
}

# -- the tools ---------------------------------------------------------------------------------
for tool in "$CC" x86_64-w64-mingw32-dlltool x86_64-w64-mingw32-nm x86_64-w64-mingw32-objdump; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "$tool is missing: installing Debian's gcc-mingw-w64-x86-64" >&2
            export DEBIAN_FRONTEND=noninteractive
            apt-get install -y -q gcc-mingw-w64-x86-64 >&2 \
                || { apt-get update -q >&2 && apt-get install -y -q gcc-mingw-w64-x86-64 >&2; } || true
        fi
        command -v "$tool" >/dev/null 2>&1 \
            || skip "$tool is not installed and could not be (apt-get install gcc-mingw-w64-x86-64)"
    fi
done

mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/windows-compile-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

pin=$(grep -E '^[Cc]ython==' requirements/cython.txt | head -n 1)
[ -n "$pin" ] || fail "no cython== line in requirements/cython.txt"
cython_python=$PYTHON
if ! "$cython_python" -c "import Cython, sys; sys.exit(Cython.__version__ != '${pin#*==}')" 2>/dev/null; then
    cython_python=$CACHE/cython-venv/bin/python
    if ! "$cython_python" -c "import Cython, sys; sys.exit(Cython.__version__ != '${pin#*==}')" 2>/dev/null; then
        rm -rf "$CACHE/cython-venv"
        { "$PYTHON" -m venv "$CACHE/cython-venv" && "$cython_python" -m pip install -q "$pin"; } >&2 \
            || skip "could not install $pin (pip install $pin)"
    fi
fi

# -- the generated C, from this tree (nothing is written into it) ------------------------------
for ext in _lru _shm; do
    "$cython_python" -m cython -3 -I src "src/memorystore/$ext.pyx" -o "$WORK/$ext.c" \
        || fail "cython could not translate src/memorystore/$ext.pyx"
done
echo "generated _lru.c and _shm.c with $("$cython_python" -m cython --version 2>&1)"

# -- CPython's Windows headers ------------------------------------------------------------------
for entry in "${TARBALLS[@]}"; do
    read -r version path sha <<<"$entry"
    file=$CACHE/${path##*/}
    if ! echo "$sha  $file" | sha256sum -c --status 2>/dev/null; then
        rm -f "$file"
        curl -fsSL --retry 2 -o "$file.part" "$MIRROR/$path" \
            || skip "could not download CPython $version's source from $MIRROR/$path"
        echo "$sha  $file.part" | sha256sum -c --status || fail "$MIRROR/$path: SHA256 mismatch"
        mv "$file.part" "$file"
    fi
    mkdir -p "$WORK/$version/PC"
    tar -xf "$file" -C "$WORK/$version" --strip-components=1 --wildcards '*/Include/*' '*/PC/pyconfig.h*'
    # 3.13 ships PC/pyconfig.h.in, which the MSVC build copies with Py_GIL_DISABLED set or not.
    [ -f "$WORK/$version/PC/pyconfig.h" ] || cp "$WORK/$version/PC/pyconfig.h.in" "$WORK/$version/PC/pyconfig.h"
done

# -- compile, check the branch, link -------------------------------------------------------------
# MS_WIN64: PC/pyconfig.h sets it for MSVC only before it sizes pointers (mingw gets SIZEOF_VOID_P 4
# and Cython's size check fails without it); "=" defines it empty, as pyconfig.h's own #define.
CFLAGS=(-O0 -Wall -Werror=implicit-function-declaration -DMS_WIN64=)
# name  version  extra flags  pythonXY.dll
CONFIGS=(
    "3.11 3.11.2 - python311.dll"
    "3.13 3.13.15 - python313.dll"
    "3.13t 3.13.15 -DPy_GIL_DISABLED=1 python313t.dll"
)
failed=0
for config in "${CONFIGS[@]}"; do
    read -r name version extra dll <<<"$config"
    flags=("${CFLAGS[@]}" -I"$WORK/$version/PC" -I"$WORK/$version/Include")
    [ "$extra" = - ] || flags+=("$extra")
    out=$WORK/build-$name
    mkdir -p "$out"
    for ext in _lru _shm; do
        what="CPython $name, $ext"
        if ! "$CC" -c "${flags[@]}" "$WORK/$ext.c" -o "$out/$ext.o" 2>"$out/$ext.log"; then
            cat "$out/$ext.log" >&2
            echo "FAIL  $what: does not compile for Windows"
            failed=1
            continue
        fi
        warnings=$(grep -c 'warning:' "$out/$ext.log" || true)
        [ "$warnings" -eq 0 ] || cat "$out/$ext.log"
        if [ "$ext" = _shm ]; then
            "$CC" -E -dM "${flags[@]}" "$WORK/$ext.c" | grep -x '#define MS_SHM_SUPPORTED 0' >/dev/null || {
                echo "FAIL  $what: the Windows build does not take the branch without a robust mutex"
                failed=1
                continue
            }
        fi
        { echo "LIBRARY $dll"; echo "EXPORTS"
          x86_64-w64-mingw32-nm -u "$out/$ext.o" | awk '$1 == "U" { sub(/^__imp_/, "", $2); print $2 }' \
              | grep -E '^_?Py' | sort -u; } >"$out/$ext.def"
        x86_64-w64-mingw32-dlltool -d "$out/$ext.def" -l "$out/lib$ext-python.a"
        if ! "$CC" -shared -o "$out/$ext.pyd" "$out/$ext.o" "$out/lib$ext-python.a" 2>"$out/$ext.link.log"; then
            cat "$out/$ext.link.log" >&2
            echo "FAIL  $what: does not link as a Windows DLL (a symbol that is neither Python's nor the CRT's?)"
            failed=1
            continue
        fi
        x86_64-w64-mingw32-nm -g "$out/$ext.pyd" | grep " T PyInit_$ext\$" >/dev/null \
            || { echo "FAIL  $what: the .pyd does not export PyInit_$ext"; failed=1; continue; }
        imports=$(x86_64-w64-mingw32-objdump -p "$out/$ext.pyd" | awk '/DLL Name:/ { print $3 }' | sort | paste -sd, -)
        echo "ok    $what: compiles ($warnings warnings), links ($imports)$([ "$ext" = _shm ] && echo ', MS_SHM_SUPPORTED 0')"
    done
done
[ "$failed" -eq 0 ] || fail "see the FAIL lines above"
echo "windows-compile-check: PASSED ($("$CC" --version | head -n 1))"
