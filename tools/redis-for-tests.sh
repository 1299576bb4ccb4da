#!/usr/bin/env bash
# Make a redis-server available for tests/test_redis.py and bench/test_bench_redis.py.
#
# usage: bash tools/redis-for-tests.sh
#
# Does nothing when MEMORYSTORE_REDIS_URL is set (the tests use that server) or
# when redis-server is already on PATH.  Otherwise installs Debian's
# redis-server package quietly (apt-get update + install, as root or via sudo).
# Never fails: without a server the Redis tests skip and say why.  The tests
# start their own server (127.0.0.1, a free port, no persistence), so the
# package's system service is not needed and is not started here.

if [ -n "${MEMORYSTORE_REDIS_URL:-}" ]; then
    echo "redis-for-tests: using MEMORYSTORE_REDIS_URL"
    exit 0
fi
if command -v redis-server >/dev/null 2>&1; then
    echo "redis-for-tests: $(redis-server --version | head -n 1)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "redis-for-tests: no apt-get and no redis-server; the Redis tests will skip" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "redis-for-tests: not root and no sudo; the Redis tests will skip" >&2
        exit 0
    fi
fi

log="$(mktemp -t redis-for-tests.XXXXXX)"
if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 \
    && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >>"$log" 2>&1; then
    echo "redis-for-tests: installed $(redis-server --version | head -n 1)"
else
    echo "redis-for-tests: installing redis-server failed; the Redis tests will skip (log: $log)" >&2
    tail -n 5 "$log" >&2 || true
    exit 0
fi
rm -f "$log"
exit 0
