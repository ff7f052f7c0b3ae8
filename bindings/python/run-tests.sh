#!/usr/bin/env bash
# The Python package end to end: builds the test registry and the Rust CLI (debug), installs
# bindings/python with pip into a fresh venv (with pytest and mypy) and runs the pytest suite
# against loopback registries. Then builds the release abi3 wheel with maturin and runs the
# suite again from it under other interpreters: PYTHON_EXTRA="3.9 3.13" (pyenv versions; the
# default), "" to skip.
#
#   bash bindings/python/run-tests.sh [pytest args…]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# maturin builds into the workspace's target/, so the core's dependencies compiled for the
# other tests are reused.
export CARGO_TARGET_DIR="$root/target"
export MSB_TESTKIT="$root/target/debug/msbimage-testkit" MSB_CLI="$root/target/debug/msbimage"
python=${PYTHON:-python3}
extra=${PYTHON_EXTRA-3.9 3.13}
out="$root/target/python"
mkdir -p "$out"

echo "== python: cargo build (testkit, CLI)"
cargo build --workspace --features microsandbox-image/cli --bins

# venv DIR PYTHON: a fresh virtual environment with the test tools.
venv() {
  rm -rf "$1"
  "$2" -m venv "$1"
  "$1/bin/pip" install -q --disable-pip-version-check pytest mypy
}

echo "== python: pip install ./bindings/python (fresh venv, $("$python" --version))"
venv "$out/venv" "$python"
start=$(date +%s)
"$out/venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir ./bindings/python
echo "installed in $(($(date +%s) - start)) s"

echo "== python: generated files"
"$out/venv/bin/python" bindings/python/tools/gen_surface.py --check

echo "== python: pytest"
cd "$out" # not the source tree: import the installed package
"$out/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/bindings/python/tests" "$@"
cd "$root"

if [[ -n $extra ]]; then
  echo "== python: the abi3 wheel (maturin build --release)"
  rm -rf "$out/wheels"
  "$out/venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.16,<2"
  start=$(date +%s)
  "$out/venv/bin/maturin" build --release -q -m bindings/python/Cargo.toml -o "$out/wheels"
  wheel=$(ls "$out"/wheels/msbimage-*.whl)
  echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB) in $(($(date +%s) - start)) s"
  for version in $extra; do
    interp=$(ls -d /root/.pyenv/versions/"$version"*/bin/python3 2>/dev/null | head -n1 || true)
    [[ -n $interp ]] || interp=$(command -v "python$version" || true)
    if [[ -z $interp ]]; then
      echo "python $version: not installed" >&2
      exit 1
    fi
    echo "== python: the wheel under $("$interp" --version)"
    venv "$out/venv-$version" "$interp"
    "$out/venv-$version/bin/pip" install -q --disable-pip-version-check "$wheel"
    cd "$out"
    "$out/venv-$version/bin/python" -m pytest -q -p no:cacheprovider "$root/bindings/python/tests" "$@"
    cd "$root"
  done
fi
