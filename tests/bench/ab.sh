#!/usr/bin/env bash
# A/B: cold `msbimage pull` of two builds of msbimage (two git revisions) on the same images,
# alternating A B A B … (the starting build rotating each round) in one run, so a change can
# be checked for a regression on a machine that is not idle. Each timed pull goes to a fresh
# tmpfs cache after the page cache is dropped. Prints per image the median wall time and the
# median CPU time (user + system of the msbimage process, less sensitive to other load) of
# each build, and the ratios B/A.
#
#   bash tests/bench/ab.sh BEFORE_REV [AFTER_REV (default: the working tree)] [--runs N] \
#        [--images many,usr] [--output directory|erofs-layers|...]
#
# Images are made from this machine's files by msbimage-push-tree: `many` = 30 layers of
# 1-40 MB directories under /usr (as in run.sh), `usr` = 4 large layers of /usr.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
RUNS=5
IMAGES=many,usr
OUTPUT=directory
revs=()
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --output) OUTPUT=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) revs+=("$1"); shift ;;
  esac
done
((${#revs[@]} >= 1)) || { sed -n '2,13p' "$0" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "ab.sh mounts tmpfs and drops caches: run it as root" >&2; exit 2; }

work=$(mktemp -d /tmp/msb-ab.XXXXXX)
cleanup() {
  for m in "$work"/mnt-*; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null
  for w in "$work"/src-*; do [ -d "$w" ] && git worktree remove --force "$w" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

# build NAME REV: a release msbimage of REV (the working tree for "."), copied to $work/NAME.
# Both builds share one target directory, so dependencies compile once.
build() {
  local name=$1 rev=$2 src=$root
  if [ "$rev" != . ]; then
    src=$work/src-$name
    git worktree add -q --detach "$src" "$rev"
  fi
  (cd "$src" && CARGO_TARGET_DIR=$root/target/ab cargo build --release -q \
    -p microsandbox-image --features cli --bin msbimage)
  cp "$root/target/ab/release/msbimage" "$work/$name"
}
build A "${revs[0]}"
build B "${revs[1]:-.}"
cargo build --release -q -p msbimage-testkit --bins
kit=$root/target/release

"$kit/msbimage-testkit" serve --ignore-stdin >"$work/serve.json" &
server=$!
for _ in $(seq 100); do [ -s "$work/serve.json" ] && break; sleep 0.1; done
host=$(sed -E 's/.*"host": ?"([^"]+)".*/\1/' "$work/serve.json")

push() {
  "$kit/msbimage-push-tree" --registry "http://$host" --image "ab/$1:gzip" --compression gzip \
    "${@:2}" >/dev/null
}
many_layers() {
  du -s --apparent-size -k /usr/share/* /usr/lib/* /usr/lib/x86_64-linux-gnu/* 2>/dev/null |
    awk '$1 >= 1024 && $1 <= 40960 {print $2}' | sort | while read -r d; do
      [ -d "$d" ] && [ ! -L "$d" ] && echo "$d"
    done | head -30 | while read -r d; do printf '%s\n' --layer "${d#/}=$d"; done
}
IFS=, read -r -a images <<<"$IMAGES"
for img in "${images[@]}"; do
  case "$img" in
    many) mapfile -t args < <(many_layers); push many "${args[@]}" ;;
    usr) push usr --layer usr/bin=/usr/bin --layer usr/include=/usr/include \
      --layer usr/share/doc=/usr/share/doc --layer usr/share/locale=/usr/share/locale ;;
    *) echo "unknown image $img" >&2; exit 2 ;;
  esac
done

# pull BUILD IMAGE: "wall cpu" seconds of one cold pull into a fresh tmpfs.
pull() {
  local m=$work/mnt-$1
  mkdir -p "$m"
  mountpoint -q "$m" && umount "$m"
  mount -t tmpfs -o size=8g tmpfs "$m"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  local TIMEFORMAT='%R %U %S' t
  t=$({ time "$work/$1" pull "$host/ab/$2:gzip" --cache "$m/cache" --insecure-registry "$host" \
    --progress none --output "$OUTPUT" >/dev/null; } 2>&1)
  umount "$m"
  echo "$t" | awk '{printf "%s %.3f\n", $1, $2 + $3}'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "| image | wall A (${revs[0]}) | wall B (${revs[1]:-working tree}) | B/A | CPU A | CPU B | B/A | runs |"
echo "|---|---|---|---|---|---|---|---|"
for img in "${images[@]}"; do
  : >"$work/A.$img"
  : >"$work/B.$img"
  for r in $(seq "$RUNS"); do
    order=(A B)
    ((r % 2)) || order=(B A)
    for b in "${order[@]}"; do pull "$b" "$img" >>"$work/$b.$img"; done
  done
  a=$(cut -d' ' -f1 "$work/A.$img" | median)
  b=$(cut -d' ' -f1 "$work/B.$img" | median)
  ca=$(cut -d' ' -f2 "$work/A.$img" | median)
  cb=$(cut -d' ' -f2 "$work/B.$img" | median)
  printf '| %s | %.3f s | %.3f s | %.3f | %.2f s | %.2f s | %.3f | %s |\n' "$img" "$a" "$b" \
    "$(echo "$b / $a" | bc -l)" "$ca" "$cb" "$(echo "$cb / $ca" | bc -l)" "$RUNS"
done
