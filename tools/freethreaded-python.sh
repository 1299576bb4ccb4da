#!/usr/bin/env bash
# Build a free-threaded CPython (./configure --disable-gil) into PREFIX, once.
#
#   usage: tools/freethreaded-python.sh PREFIX [SERIES...]
#          e.g. tools/freethreaded-python.sh /var/tmp/memorystore-ft/python3t
#
# On success PREFIX/bin/python3 is a free-threaded interpreter whose GIL is off, and its path is
# the one line printed on stdout (progress goes to stderr).  Exit status 0 only then.
#
# Idempotent: when PREFIX already holds such an interpreter it exits at once.  Otherwise it reuses
# whatever an earlier run left in the work directory (chroot, tarball, configured build tree), so
# an interrupted build resumes.  Two runs at once serialize on a lock in the work directory.
#
# Where the source comes from: Debian (bookworm here) ships no free-threaded python and only
# PyPI and Debian's archive are reachable.  Debian's source package of CPython carries the
# upstream tarball (pythonX.Y_X.Y.Z.orig.tar.xz), so we look it up with apt inside a throw-away
# minimal trixie chroot (newer suites are never added to this machine's own apt sources),
# download it with apt-helper (SHA256 checked against the signed index) and build it on the host
# against the host's -dev libraries.
#
# SERIES: CPython series to try, newest first (default 3.14 3.13).  The first version whose
# tarball downloads wins; on the mirror reachable here that was 3.13.15 (the 3.14 ones 404).
#
# Environment:
#   FT_WORKDIR  chroot, tarballs, build trees (default /var/tmp/memorystore-ft/work)
#   FT_MIRROR   Debian mirror (default: the first Debian URI of this machine's apt sources)
#   FT_JOBS     make -j (default nproc)
#   FT_NICE     niceness of configure/make (default 10: the cores are shared)
#   FT_CONFIGURE_EXTRA  extra ./configure arguments
#
# Cost on this 2-core machine: debootstrap 30-60 s, configure + make + install 2-3 min idle
# (up to ~10 min when the cores are busy).  Disk: ~0.5 GB chroot + ~0.5 GB build tree + ~0.45 GB
# PREFIX.  A plain -O3 build (no PGO/LTO), like pyenv's default.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 PREFIX [SERIES...]" >&2; exit 2; }
PREFIX=$(realpath -m "$1"); shift
if [ $# -ge 1 ]; then SERIES=("$@"); else SERIES=(3.14 3.13); fi
WORK=${FT_WORKDIR:-/var/tmp/memorystore-ft/work}
CHROOT=$WORK/trixie-chroot
JOBS=${FT_JOBS:-$(nproc)}
NICE=(nice -n "${FT_NICE:-10}")
# sid/experimental Release files on a frozen mirror can be past Valid-Until.
APT_OPTIONS=(-o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[freethreaded-python] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# True when PREFIX/bin/python3 is a free-threaded build and its GIL stays off.
is_freethreaded() {
    [ -x "$PREFIX/bin/python3" ] && "$PREFIX/bin/python3" -c '
import sys, sysconfig
sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") and not sys._is_gil_enabled() else 1)' 2>/dev/null
}

done_here() {
    log "$PREFIX: $("$PREFIX/bin/python3" -VV | head -1), GIL off"
    echo "$PREFIX/bin/python3"
    exit 0
}

debian_mirror() {
    local uri=${FT_MIRROR:-}
    [ -n "$uri" ] || uri=$(grep -hs -E '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources | awk '{print $2; exit}' || true)
    [ -n "$uri" ] || uri=$(grep -hs -E '^deb +(\[[^]]*\] +)?https?://[^ ]*/debian/? ' /etc/apt/sources.list \
                           | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1; exit}' || true)
    [ -n "$uri" ] || die "no Debian mirror found in the apt sources: set FT_MIRROR"
    echo "${uri%/}"
}

install_build_dependencies() {
    local p missing=()
    for p in build-essential pkg-config libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev \
             libsqlite3-dev libreadline-dev uuid-dev libncurses-dev libgdbm-dev libexpat1-dev debootstrap; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "apt-get install ${missing[*]}"
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
}

# A minimal trixie chroot whose apt sees the source indexes of trixie, sid and experimental.
prepare_chroot() {
    local mirror=$1
    if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
        log "debootstrap --variant=minbase trixie $CHROOT"
        rm -rf "$CHROOT"
        debootstrap --variant=minbase trixie "$CHROOT" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    fi
    cp /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
    cat >"$CHROOT/etc/apt/sources.list" <<SOURCES
deb $mirror trixie main
deb-src $mirror trixie main
deb-src $mirror trixie-updates main
deb-src ${mirror%/debian}/debian-security trixie-security main
deb-src $mirror trixie-backports main
deb-src $mirror sid main
deb-src $mirror experimental main
SOURCES
    rm -f "$CHROOT/etc/apt/sources.list.d/"*.list "$CHROOT/etc/apt/sources.list.d/"*.sources
    log "apt-get update inside the chroot"
    chroot "$CHROOT" apt-get "${APT_OPTIONS[@]}" update -q >"$WORK/apt-update.log" 2>&1 \
        || { tail "$WORK/apt-update.log" >&2; die "apt-get update in the chroot failed"; }
}

# "version directory sha256 file" of each upstream tarball of SERIES, newest first within a series.
tarball_candidates() {
    local series
    for series in "${SERIES[@]}"; do
        chroot "$CHROOT" apt-cache showsrc "python$series" 2>/dev/null | awk '
            function flush() { if (file != "") print ver, dir, sha, file; ver = dir = sha = file = "" }
            /^$/ { flush(); insha = 0; next }
            /^Version: / { ver = $2 }
            /^Directory: / { dir = $2 }
            /^Checksums-Sha256:/ { insha = 1; next }
            insha && /^ / { if ($3 ~ /\.orig\.tar\.(xz|gz)$/) { sha = $1; file = $3 }; next }
            { insha = 0 }
            END { flush() }' | sort -u | sort -k1,1 -V -r
    done
}

# Path of the first tarball already cached or downloadable, on stdout.
fetch_tarball() {
    local mirror=$1 ver dir sha file
    while read -r ver dir sha file; do
        [ -n "$file" ] || continue
        if [ -s "$WORK/src/$file" ] && echo "$sha  $WORK/src/$file" | sha256sum -c --status; then
            log "using cached $file ($ver)"; echo "$WORK/src/$file"; return
        fi
        log "trying $file ($ver)"
        if chroot "$CHROOT" /usr/lib/apt/apt-helper "${APT_OPTIONS[@]}" download-file \
                "$mirror/$dir/$file" "/tmp/$file" "SHA256:$sha" >"$WORK/download.log" 2>&1; then
            mv "$CHROOT/tmp/$file" "$WORK/src/$file"; echo "$WORK/src/$file"; return
        fi
        log "  not downloadable: $(grep -m1 -E 'E:|Err' "$WORK/download.log" || tail -1 "$WORK/download.log")"
    done < <(tarball_candidates)
    die "no CPython source tarball could be downloaded for series ${SERIES[*]}"
}

build_and_install() {
    local tarball=$1 topdir build want
    topdir=$(tar -tf "$tarball" | sed -n '1s,/.*,,p')   # sed reads it all: no SIGPIPE under pipefail
    build=$WORK/build/$topdir-t
    if [ ! -f "$build/configure" ]; then
        rm -rf "$build" "$WORK/build/tmp.$$"; mkdir -p "$WORK/build/tmp.$$"
        tar -xf "$tarball" -C "$WORK/build/tmp.$$"
        mv "$WORK/build/tmp.$$/$topdir" "$build"; rmdir "$WORK/build/tmp.$$"
    fi
    cd "$build"
    want="--disable-gil --prefix=$PREFIX --with-ensurepip=install ${FT_CONFIGURE_EXTRA:-}"
    if [ ! -f Makefile ] || [ "$(cat ft-configured 2>/dev/null)" != "$want" ]; then
        log "./configure $want"
        # shellcheck disable=SC2086
        "${NICE[@]}" ./configure $want >ft-configure.log 2>&1 || { tail -30 ft-configure.log >&2; die "configure failed"; }
        echo "$want" >ft-configured
    fi
    log "make -j$JOBS (log: $build/ft-make.log)"
    "${NICE[@]}" make -j"$JOBS" >ft-make.log 2>&1 || { tail -40 ft-make.log >&2; die "make failed"; }
    grep -E "^The necessary bits|^Failed to build" -A3 ft-make.log >&2 || true
    log "make install"
    "${NICE[@]}" make install >ft-install.log 2>&1 || { tail -40 ft-install.log >&2; die "make install failed"; }
    [ -e "$PREFIX/bin/python3" ] \
        || ln -s "$(cd "$PREFIX/bin" && ls | grep -m1 -E '^python3\.[0-9]+t$')" "$PREFIX/bin/python3"
}

is_freethreaded && done_here
mkdir -p "$WORK/src"
exec 9>"$WORK/lock"
flock 9                                  # another run may be building it right now
is_freethreaded && done_here

mirror=$(debian_mirror)
log "prefix $PREFIX, series ${SERIES[*]}, mirror $mirror, work dir $WORK"
install_build_dependencies
prepare_chroot "$mirror"
tarball=$(fetch_tarball "$mirror")
build_and_install "$tarball"
is_freethreaded || die "installed, but $PREFIX/bin/python3 is not a free-threaded build with the GIL off"
done_here
