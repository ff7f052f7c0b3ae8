#!/usr/bin/env bash
# What keeping partials costs: cold `msbimage pull`s of one build with `partialMinSize: 0`
# (every blob's bytes kept in blobs/sha256/<hex>.partial while it downloads) and with
# `partialMinSize: null` (none kept), alternating keep/none (the starting mode rotating each
# round) in one run. Each timed pull goes to a fresh cache after the page cache is dropped:
# on tmpfs (`--fs tmpfs`, the CPU cost) or on the disk under /var/tmp with durable publishing
# (`--fs disk`, the I/O cost too). Prints per image the median wall time and CPU time (user +
# system, less disturbed by other work on the machine) of each mode and the ratios keep/none.
#
#   bash tests/bench/partials.sh [--runs N] [--images many,usr] [--fs tmpfs,disk]
#
# Images are made as in ab.sh: `many` = 30 layers of 1-40 MB directories under /usr, `usr` =
# 4 large layers of /usr.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
RUNS=5
IMAGES=many,usr
FSES=tmpfs,disk
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --fs) FSES=$2; shift 2 ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "partials.sh mounts tmpfs and drops caches: run it as root" >&2; exit 2; }

work=$(mktemp -d /tmp/msb-partials.XXXXXX)
disk=$(mktemp -d /var/tmp/msb-partials.XXXXXX)
cleanup() {
  mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null
  rm -rf "$work" "$disk"
}
trap cleanup EXIT

export CARGO_TARGET_DIR=$root/target/ab
cargo build --release -q -p microsandbox-image --features cli --bin msbimage
cargo build --release -q -p msbimage-testkit --bins
kit=$CARGO_TARGET_DIR/release
echo '{"partialMinSize": 0}' >"$work/keep.json"
echo '{"partialMinSize": null}' >"$work/none.json"

"$kit/msbimage-testkit" serve --ignore-stdin >"$work/serve.json" &
server=$!
for _ in $(seq 100); do [ -s "$work/serve.json" ] && break; sleep 0.1; done
host=$(sed -E 's/.*"host": ?"([^"]+)".*/\1/' "$work/serve.json")

push() {
  "$kit/msbimage-push-tree" --registry "http://$host" --image "partials/$1:gzip" \
    --compression gzip "${@:2}" >/dev/null
}
many_layers() {
  du -s --apparent-size -k /usr/share/* /usr/lib/* /usr/lib/x86_64-linux-gnu/* 2>/dev/null |
    awk '$1 >= 1024 && $1 <= 40960 {print $2}' | sort | while read -r d; do
      [ -d "$d" ] && [ ! -L "$d" ] && echo "$d"
    done | head -30 | while read -r d; do printf '%s\n' --layer "${d#/}=$d"; done
}
IFS=, read -r -a images <<<"$IMAGES"
IFS=, read -r -a fses <<<"$FSES"
for img in "${images[@]}"; do
  case "$img" in
    many) mapfile -t args < <(many_layers); push many "${args[@]}" ;;
    usr) push usr --layer usr/bin=/usr/bin --layer usr/include=/usr/include \
      --layer usr/share/doc=/usr/share/doc --layer usr/share/locale=/usr/share/locale ;;
    *) echo "unknown image $img" >&2; exit 2 ;;
  esac
done

# pull MODE IMAGE FS: wall and CPU seconds of one cold pull into a fresh cache.
pull() {
  local cache
  if [ "$3" = tmpfs ]; then
    mkdir -p "$work/mnt"
    mount -t tmpfs -o size=8g tmpfs "$work/mnt"
    cache=$work/mnt/cache
  else
    cache=$disk/cache
  fi
  sync
  echo 3 >/proc/sys/vm/drop_caches
  /usr/bin/time -f '%e %U %S' -o "$work/time" "$kit/msbimage" pull "$host/partials/$2:gzip" \
    --cache "$cache" --insecure-registry "$host" --config "$work/$1.json" --progress none \
    >/dev/null
  if [ "$3" = tmpfs ]; then umount "$work/mnt"; else rm -rf "$cache"; sync; fi
  # wall seconds, CPU seconds (user + system)
  awk '{print $1, $2 + $3}' "$work/time"
}

# median COLUMN < FILE
median() {
  awk -v c="$1" '{print $c}' | sort -n |
    awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}

echo "| image | cache | wall keep (partialMinSize 0) | wall none (null) | keep/none | CPU keep | CPU none | keep/none | runs |"
echo "|---|---|---|---|---|---|---|---|---|"
for fs in "${fses[@]}"; do
  for img in "${images[@]}"; do
    : >"$work/keep.$img"
    : >"$work/none.$img"
    for r in $(seq "$RUNS"); do
      order=(keep none)
      ((r % 2)) || order=(none keep)
      for m in "${order[@]}"; do pull "$m" "$img" "$fs" >>"$work/$m.$img"; done
    done
    echo "raw $img $fs keep (wall cpu): $(tr '\n' ',' <"$work/keep.$img")" >&2
    echo "raw $img $fs none (wall cpu): $(tr '\n' ',' <"$work/none.$img")" >&2
    kw=$(median 1 <"$work/keep.$img")
    nw=$(median 1 <"$work/none.$img")
    kc=$(median 2 <"$work/keep.$img")
    nc=$(median 2 <"$work/none.$img")
    printf '| %s | %s | %.3f s | %.3f s | %.3f | %.2f s | %.2f s | %.3f | %s |\n' "$img" "$fs" \
      "$kw" "$nw" "$(echo "$kw / $nw" | bc -l)" "$kc" "$nc" "$(echo "$kc / $nc" | bc -l)" "$RUNS"
  done
done
