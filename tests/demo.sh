#!/usr/bin/env bash
# The main job on a machine without internet: start a loopback docker-registry with the fixture
# images, then pull one with the msbimage CLI (release build) into a throwaway cache.
# Usage: bash tests/demo.sh [extra msbimage pull flags, e.g. --json]
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
cargo build --release -q -p msbimage-testkit --bin msbimage-testkit
cargo build --release -q -p microsandbox-image --features cli --bin msbimage
fifo=$(mktemp -u); mkfifo "$fifo"
target/release/msbimage-testkit serve --push-fixtures --ignore-stdin >"$fifo" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$fifo"' EXIT
read -r line <"$fifo"
host=$(printf '%s' "$line" | sed -E 's/.*"host": ?"([^"]+)".*/\1/')
cache=$(mktemp -d)
echo "registry at $host, cache at $cache"
target/release/msbimage pull "$host/fixtures/standard:gzip" --cache "$cache" "$@"
