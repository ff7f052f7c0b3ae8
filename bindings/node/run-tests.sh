#!/usr/bin/env bash
# The Node package end to end: builds the test registry and the CLI (debug), installs the
# package's dev dependencies and builds the addon with `npm ci` (the package's install script
# runs the napi CLI; debug profile unless MSBIMAGE_NODE_PROFILE=release, sharing the workspace's
# target/), checks that the committed index.d.ts and index.js are what the build generates, and
# runs the `node --test` suite in test/ against loopback registries.
set -uo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
export MSBIMAGE_NODE_PROFILE=${MSBIMAGE_NODE_PROFILE:-debug}

# npm needs a cache directory; without HOME (some CI shells) keep it under target/.
if [[ -z ${HOME:-} && -z ${npm_config_cache:-} ]]; then
  export npm_config_cache="$CARGO_TARGET_DIR/npm-cache"
fi

command -v node >/dev/null || { echo "node (>= 20) is required" >&2; exit 1; }
echo "== node: cargo build (test registry, CLI)"
(cd "$root" && cargo build --workspace --features microsandbox-image/cli) || exit 1

echo "== node: npm ci (builds the $MSBIMAGE_NODE_PROFILE addon)"
start=$(date +%s)
npm ci --no-audit --no-fund || exit 1
echo "node: npm ci took $(($(date +%s) - start)) s"

status=0
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  echo "== node: generated files match the committed ones"
  if ! git -C "$root" diff --exit-code -- bindings/node/index.d.ts bindings/node/index.js; then
    echo "node: index.d.ts / index.js are stale: run npm run build in bindings/node and commit them" >&2
    status=1
  fi
fi

echo "== node: node --test"
node --test test/*.test.js || status=1
exit $status
