#!/usr/bin/env bash
# Cold and warm `msbimage pull` of a multi-layer image from a loopback docker-registry, against
# `skopeo copy docker://… oci:…` + `umoci unpack --rootless` of the same image, alternating
# A B A B … in one run. Every timed run writes to a fresh tmpfs (so file creation speed on the
# main disk, which degrades after large deletions, does not skew either side) after dropping
# the page cache. Prints a Markdown table.
#
#   RUNS=5 bash tests/bench/compare-pull.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
bash .ci/setup
cargo build --release -q -p msbimage-testkit --bins
cargo build --release -q -p microsandbox-image --features cli --bin msbimage
bin=$PWD/target/release

work=$(mktemp -d /tmp/msb-compare.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/msbimage-testkit" serve --ignore-stdin >"$work/serve.json" &
server=$!
for _ in $(seq 100); do [ -s "$work/serve.json" ] && break; sleep 0.1; done
host=$(sed -E 's/.*"host": ?"([^"]+)".*/\1/' "$work/serve.json")
base="http://$host"

# A realistic multi-layer image from this machine's own files.
"$bin/msbimage-push-tree" --registry "$base" --image bench/usr:gzip --compression gzip \
  --layer usr/lib/x86_64-linux-gnu=/usr/lib/x86_64-linux-gnu \
  --layer usr/bin=/usr/bin \
  --layer usr/include=/usr/include,usr/share/doc=/usr/share/doc \
  --layer usr/share/locale=/usr/share/locale >"$work/image.json"
ref="$host/bench/usr:gzip"
echo "image: $(cat "$work/image.json")" >&2

fresh() {
  mountpoint -q "$mnt" && umount "$mnt"
  mount -t tmpfs -o size=8g tmpfs "$mnt"
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}
now() { date +%s.%N; }
declare -a A B W
for i in $(seq "$RUNS"); do
  fresh
  t0=$(now); "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none >/dev/null; t1=$(now)
  A+=("$(echo "$t1 - $t0" | bc)")
  t0=$(now); "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none >/dev/null; t1=$(now)
  W+=("$(echo "$t1 - $t0" | bc)")
  fresh
  t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$mnt/oci:img" >/dev/null
  umoci unpack --rootless --image "$mnt/oci:img" "$mnt/bundle" >/dev/null 2>&1
  t1=$(now)
  B+=("$(echo "$t1 - $t0" | bc)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ma=$(median "${A[@]}"); mb=$(median "${B[@]}"); mw=$(median "${W[@]}")
echo "| pull of $ref ($RUNS runs each, alternating) | median s | runs (s) |"
echo "|---|---|---|"
echo "| msbimage pull, cold | $ma | ${A[*]} |"
echo "| skopeo copy + umoci unpack --rootless | $mb | ${B[*]} |"
echo "| msbimage pull, warm (IfMissing, CLI process) | $mw | ${W[*]} |"
echo "| ratio skopeo+umoci / msbimage cold | $(echo "scale=2; $mb / $ma" | bc) | |"
