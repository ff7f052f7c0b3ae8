#!/usr/bin/env bash
# Runs every test of the project (the README's test command calls this through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --features microsandbox-image/cli
bash tests/run-ffi.sh
# msbimage against containerd's archive.Apply: TestBreakouts and a fixed seed set (~1-2 min).
bash tests/differential/run.sh
# The Python package: a fresh venv, pip install, pytest; the abi3 wheel under one more Python
# (PYTHON_EXTRA overrides: "3.9 3.13" runs both, "" none).
PYTHON_EXTRA=${PYTHON_EXTRA-3.9} bash bindings/python/run-tests.sh
# The Node package: npm install of bindings/node, node --test.
bash bindings/node/run-tests.sh
