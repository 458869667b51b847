#!/bin/sh
# Installs the Node library's npm dependencies (clients/node) from its
# committed lock file with `npm ci`, when they are missing or the lock file
# changed since the last install. Needs node >= 20 and npm (install-deps.sh
# installs Debian's when the machine has none).
set -eu
cd "$(dirname "$0")/../clients/node"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node-deps: node and npm are needed for clients/node (run make deps as root)" >&2
    exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "node-deps: clients/node needs node >= 20, this is $(node --version)" >&2
    exit 1
fi
stamp=node_modules/.yard-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "node-deps: npm ci in clients/node"
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
