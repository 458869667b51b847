#!/bin/sh
# Installs the Debian 12 packages Yard needs to build, test and demo,
# when they are missing and we are root. Idempotent and quiet when all
# are present; as non-root it only reports what is missing.
set -eu
PKGS="build-essential cmake pkg-config clang clang-format libclang-rt-dev
libzmq3-dev libczmq-dev libmsgpack-dev libhiredis-dev zlib1g-dev
libjansson-dev libmicrohttpd-dev libxxhash-dev libcmocka-dev libsodium-dev redis-server valgrind
python3 python3-zmq python3-msgpack python3-pytest python3-prometheus-client curl
wrk"
# Node.js for clients/node: Debian's, unless the machine already has one
# (a newer one from elsewhere must not be replaced).
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing (run as root to install)" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
