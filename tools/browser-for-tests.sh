#!/usr/bin/env bash
# Make a headless browser available for tests/test_demo_browser.py: Debian's
# chromium and chromium-driver (selenium itself comes from the test extra).
#
# usage: bash tools/browser-for-tests.sh
#
# Does nothing when chromium and chromedriver are already on PATH.  Otherwise
# installs the two Debian packages quietly (apt-get update + install, as root
# or via sudo).  Never fails: when they cannot be installed it prints ONE loud
# line saying that the browser test will be skipped and why (the test itself
# then skips with the same reason).

have_browser() {
    command -v chromedriver >/dev/null 2>&1 \
        && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
}

loud() {
    echo "!!! browser-for-tests: $* -- the demo's browser test (tests/test_demo_browser.py) WILL BE SKIPPED !!!" >&2
    exit 0
}

if have_browser; then
    echo "browser-for-tests: $(chromium --version 2>/dev/null || chromium-browser --version 2>/dev/null | head -n 1)"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || loud "no chromium/chromedriver and no apt-get to install them"

SUDO=""
if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || loud "no chromium/chromedriver, not root and no sudo to install them"
    SUDO="sudo -n"
fi

log="$(mktemp -t browser-for-tests.XXXXXX)"
if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 \
    && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >>"$log" 2>&1 \
    && have_browser; then
    echo "browser-for-tests: installed $(chromium --version 2>/dev/null | head -n 1)"
    rm -f "$log"
    exit 0
fi
reason="$(grep -E '^(E|W):' "$log" | tail -n 1)"
loud "apt-get could not install chromium + chromium-driver (${reason:-see $log})"
