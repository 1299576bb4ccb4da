#!/usr/bin/env bash
# Install uWSGI into a virtual environment for tests/test_servers.py (and the README's uWSGI ini test).
#
# usage: bash tools/uwsgi-for-tests.sh VENV_PYTHON
#
# uWSGI comes from PyPI as an sdist and compiles (about a minute on 2 cores; pip caches
# the wheel it builds, so later runs take seconds).  It needs a C compiler and the
# Python headers of VENV_PYTHON: when they are missing, Debian's gcc / python3-dev are
# installed (apt-get, as root or via sudo).  Never fails: when uWSGI cannot be built it
# prints ONE loud line saying why and exits 77 (a SKIP in tools/test.sh), and the uWSGI tests skip
# (the gunicorn tests still run).

python=${1:?usage: uwsgi-for-tests.sh VENV_PYTHON}
bin=$(dirname "$python")

loud() {
    echo "!!! uwsgi-for-tests: $* -- the uWSGI server tests (tests/test_servers.py) WILL BE SKIPPED !!!" >&2
    exit 77  # tools/test.sh records SKIP, never PASS
}

if [ -x "$bin/uwsgi" ]; then
    echo "uwsgi-for-tests: uWSGI $("$bin/uwsgi" --version) already in $bin"
    exit 0
fi

apt_install() {
    command -v apt-get >/dev/null 2>&1 || loud "$1 is missing and there is no apt-get to install it"
    local sudo=""
    if [ "$(id -u)" != "0" ]; then
        command -v sudo >/dev/null 2>&1 || loud "$1 is missing, not root and no sudo to install it"
        sudo="sudo -n"
    fi
    local log
    log=$(mktemp -t uwsgi-for-tests.XXXXXX)
    if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
        loud "apt-get could not install $* ($(grep -E '^(E|W):' "$log" | tail -n 1))"
    fi
    rm -f "$log"
}

command -v gcc >/dev/null 2>&1 || apt_install "a C compiler" gcc libc6-dev
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$include/Python.h" ] || apt_install "Python.h ($include)" python3-dev

log=$(mktemp -t uwsgi-for-tests.XXXXXX)
if "$python" -m pip install -q "uWSGI>=2.0.22" >"$log" 2>&1 && [ -x "$bin/uwsgi" ]; then
    echo "uwsgi-for-tests: installed uWSGI $("$bin/uwsgi" --version) into $bin"
    rm -f "$log"
    exit 0
fi
loud "pip could not build uWSGI ($(grep -iE 'error' "$log" | tail -n 1); log: $log)"
