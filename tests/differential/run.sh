#!/usr/bin/env bash
# The differential test against containerd (see README.md here): builds containerd's
# archive.Apply oracle (Go, module from the Go module proxy) and the msbimage driver, then
# checks containerd's TestBreakouts table (both containerd modes, and our EROFS layer images
# against containerd's overlay mode) and a fixed set of random hostile archives (naive mode;
# the first MSB_DIFF_EROFS_SEEDS of them, default 300, in EROFS mode). Exits non-zero on any
# disagreement that is not a documented, kept one.
#
#   bash tests/differential/run.sh [FIRST COUNT]          # default: seeds 0..1500
#   bash tests/differential/run.sh 0 0 --minutes 30       # a long run, by hand
set -euo pipefail
cd "$(dirname "$0")/../.."
first=${1:-0}
count=${2:-1500}
shift $(( $# > 2 ? 2 : $# ))
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "differential: Go is required (https://go.dev/dl)" >&2; exit 1; }
out="$PWD/target/differential"
mkdir -p "$out"
(cd tests/differential/oracle && go build -o "$out/oracle" .)
oracle="$out/oracle"
if [ "$(id -u)" -ne 0 ]; then
  # containerd's Apply chowns and mknods, and overlay mode mounts: the oracle runs as root.
  printf '#!/bin/sh\nexec sudo -n %q "$@"\n' "$out/oracle" > "$out/oracle-sudo"
  chmod +x "$out/oracle-sudo"
  oracle="$out/oracle-sudo"
fi
cargo build -q -p microsandbox-image --example differential
driver=target/debug/examples/differential
start=$SECONDS
# EROFS mode loop-mounts our layer images and stacks them with overlayfs: as root.
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
erofs_count=${MSB_DIFF_EROFS_SEEDS:-300}
"$driver" --oracle "$oracle" --mode naive breakouts | tail -1
"$driver" --oracle "$oracle" --mode overlay breakouts | tail -1
"${as_root[@]}" "$driver" --oracle "$oracle" --mode erofs breakouts | tail -1
if [ "$count" -gt 0 ] || [ $# -gt 0 ]; then
  "$driver" --oracle "$oracle" --mode naive --keep "$out/disagreements" "$@" seeds "$first" "$count" |
    grep -v '^kept seed'
  "${as_root[@]}" "$driver" --oracle "$oracle" --mode erofs --keep "$out/disagreements-erofs" \
    seeds "$first" "$erofs_count" | grep -v '^kept seed'
fi
echo "differential: done in $((SECONDS - start)) s"
