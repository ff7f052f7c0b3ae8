#!/usr/bin/env bash
# Pull benchmark: `msbimage pull` against skopeo+umoci, podman (vfs), containerd (ctr, native
# snapshotter) and a curl|tar "floor", on images served by a loopback docker-registry.
#
#   bash tests/bench/run.sh [--runs N] [--images debian,big,many,debian-zstd] [--json]
#                           [--peers msbimage,msbimage-noindex,msbimage-single,skopeo-umoci,podman,ctr,floor,
#                                    msbimage-erofs,msbimage-erofs-dir,skopeo-umoci-mkfs]
#                           [--profiles lan,wan,slow] [--no-results]
#
# Link profiles (default lan): `lan` pulls straight from the registry; `wan` (40 ms RTT,
# 25 MB/s per connection, 200 MB/s for the link) and `slow` (100 ms, 8 MB/s, 40 MB/s) put one
# `msbimage-shaper` (tests/harness/src/shaper: a shaping TCP proxy) between every puller and
# the registry, and check its shaping with curl before the profile's first runs.
#
# What it does (run as root; everything stays on 127.0.0.1):
#   1. installs missing Debian packages and builds the release binaries;
#   2. builds the images once and pushes them to a docker-registry whose storage lives in
#      $MSBIMAGE_BENCH_CACHE (default /var/tmp/msbimage-bench/v$BENCH_VERSION), so later runs
#      reuse them;
#   3. for each image and profile, runs the peers ALTERNATING, the starting one rotating each
#      round (A B C D E, B C D E A, …). Every cold run gets a
#      fresh loop-mounted ext4 (tmpfs if loop mounts fail), created for that run, and the page
#      cache is dropped before it;
#   4. measures wall time, user+sys CPU and peak RSS with GNU time (plus the containerd daemon's
#      CPU and peak RSS from /proc), and the bytes the run left on the fresh file system;
#   5. writes tests/bench/RESULTS.md (unless --no-results) and prints JSON with --json.
#
# EROFS peers (not in the default list): `msbimage-erofs` pulls with `--output erofs-layers`
# (an image per layer, no tree), `msbimage-erofs-dir` with `--output directory,erofs-layers`,
# and `skopeo-umoci-mkfs` does the same job with tools (skopeo copy, umoci unpack as root,
# mkfs.erofs of the tree). With any of them, each image's layer images are also compared in
# size with what mkfs.erofs makes of the same trees (each loop-mounted, read by mkfs.erofs).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BENCH_VERSION=2

RUNS=5
IMAGES=debian,big,many,debian-zstd
PEERS=msbimage,msbimage-noindex,skopeo-umoci,podman,ctr,floor
PROFILES=lan
JSON=0
WRITE_RESULTS=1
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --profiles) PROFILES=$2; shift 2 ;;
    --json) JSON=1; shift ;;
    --no-results) WRITE_RESULTS=0; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (loop mounts, drop_caches, containerd)" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# 1. Packages and binaries.
packages=(docker-registry skopeo umoci podman containerd time bc pigz zstd debootstrap e2fsprogs
  curl jq python3 util-linux procps erofs-utils)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Distribution packages may start system services; this script runs its own instances.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop docker-registry containerd >/dev/null 2>&1 || true
fi
log "building release binaries"
cargo build --release -q -p msbimage-testkit --bins
cargo build --release -q -p microsandbox-image --features cli --bin msbimage
bin=$ROOT/target/release

CACHE=${MSBIMAGE_BENCH_CACHE:-/var/tmp/msbimage-bench/v$BENCH_VERSION}
SCRATCH_DIR=$(dirname "$CACHE")
mkdir -p "$CACHE/registry" "$CACHE/images" "$CACHE/extra"
work=$(mktemp -d /tmp/msbb.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
loopimg=$SCRATCH_DIR/scratch-$$.img
registry_pid=""
ctrd_pid=""
shaper_pids=()
cleanup() {
  set +e
  for sp in "${shaper_pids[@]}"; do kill "$sp" 2>/dev/null && wait "$sp" 2>/dev/null; done
  [ -n "$ctrd_pid" ] && kill "$ctrd_pid" 2>/dev/null && wait "$ctrd_pid" 2>/dev/null
  mountpoint -q "$mnt" && umount "$mnt"
  rm -f "$loopimg"
  unstage
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# 2. Registry (storage in the cache, so pushed images survive between runs) and images.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $CACHE/registry
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: msbimage-bench
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
host=127.0.0.1:$port
base=http://$host
for _ in $(seq 200); do curl -sf "$base/v2/" >/dev/null && break; sleep 0.1; done
curl -sf "$base/v2/" >/dev/null || { cat "$work/registry.log" >&2; exit 1; }

MT='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
manifest() { curl -sf -H "Accept: $MT" "$base/v2/$1/manifests/$2"; }

# Debian bookworm minbase: the same rootfs the test suite uses (tests/harness/src/tree.rs).
debian_rootfs() {
  local d=${MSBIMAGE_DEBOOTSTRAP_DIR:-/var/tmp/msbimage-debootstrap}
  if [ ! -f "$d/bookworm/etc/debian_version" ]; then
    log "debootstrap --variant=minbase bookworm (once)"
    mkdir -p "$d"
    rm -rf "$d/bookworm.partial"
    debootstrap --variant=minbase bookworm "$d/bookworm.partial" >&2
    rm -rf "$d/bookworm.partial/var/cache/apt/archives"
    mv "$d/bookworm.partial" "$d/bookworm"
  fi
  echo "$d/bookworm"
}

# Prints the push-tree arguments for an image, one per line.
image_args() {
  case "$1" in
    debian|debian-zstd)
      local r list="" e
      r=$(debian_rootfs)
      for e in $(ls -A "$r" | sort); do list+="$e=$r/$e,"; done
      mkdir -p "$CACHE/extra/etc/apt/apt.conf.d"
      printf 'layer 2\n' >"$CACHE/extra/etc/msbimage-release"
      printf 'APT::Install-Recommends "0";\n' >"$CACHE/extra/etc/apt/apt.conf.d/99msbimage"
      # Layer 1: the whole rootfs. Layer 2: deletes /usr/share/doc and /etc/motd, adds files.
      printf '%s\n' --compression "$([ "$1" = debian ] && echo gzip || echo zstd)" \
        --layer "$list" --layer "etc=$CACHE/extra/etc" \
        --whiteout usr/share/doc --whiteout etc/motd
      ;;
    big)
      # 4-6 layers of roughly 400-900 MB from this machine's own files; groups whose sources
      # are missing or tiny are skipped. A layer made of several host trees is staged as one
      # tree of bind mounts, so that the tar holds each parent directory once (podman refuses
      # layers with duplicate paths).
      local groups=(
        "usr/lib/x86_64-linux-gnu=/usr/lib/x86_64-linux-gnu"
        "usr=bin:/usr/bin,sbin:/usr/sbin,lib/gcc:/usr/lib/gcc"
        "usr=include:/usr/include,share:/usr/share"
      )
      local t
      for t in /root/.rustup/toolchains/*/lib; do
        [ -d "$t" ] && groups+=("opt/rust/$(basename "$(dirname "$t")")/lib=$t")
      done
      local extra=""
      for t in /usr/lib/llvm-* /usr/lib/python3 /usr/lib/python3.* /root/.cargo/registry; do
        [ -d "$t" ] && extra+="$(basename "$t"):$t,"
      done
      [ -n "$extra" ] && groups+=("opt/extra=$extra")
      printf '%s\n' --compression gzip
      local g n=0 kb dest srcs part stage
      for g in "${groups[@]}"; do
        ((n < 6)) || break
        dest=${g%%=*} srcs=${g#*=}
        kb=0
        for part in ${srcs//,/ }; do kb=$((kb + $(du -s --apparent-size -k "${part#*:}" | cut -f1))); done
        ((kb > 100 * 1024)) || continue
        if [[ "$srcs" == *:* ]]; then
          stage=$work/stage/$n
          for part in ${srcs//,/ }; do
            mkdir -p "$stage/${part%%:*}"
            mount --bind "${part#*:}" "$stage/${part%%:*}"
          done
          srcs=$stage
        fi
        printf '%s\n' --layer "$dest=$srcs"
        n=$((n + 1))
      done
      ;;
    many)
      # 30 layers of small-to-medium directories (1-40 MB each), in name order.
      printf '%s\n' --compression gzip
      du -s --apparent-size -k /usr/share/* /usr/lib/* /usr/lib/x86_64-linux-gnu/* 2>/dev/null |
        awk '$1 >= 1024 && $1 <= 40960 {print $2}' | sort | while read -r d; do
          [ -d "$d" ] && [ ! -L "$d" ] && echo "$d"
        done | head -30 | while read -r d; do printf '%s\n' --layer "${d#/}=$d"; done
      ;;
    *) echo "run.sh: unknown image $1" >&2; exit 2 ;;
  esac
}

unstage() {
  findmnt -rn -o TARGET | { grep "^$work/stage/" || true; } | sort -r | while read -r m; do umount "$m"; done
  rm -rf "$work/stage"
}

ensure_image() {
  local name=$1 repo=bench/$1 tag=v$BENCH_VERSION
  if [ -s "$CACHE/images/$name.json" ] && manifest "$repo" "$tag" >/dev/null; then
    return
  fi
  log "building and pushing image $name (once; cached in $CACHE)"
  local args=()
  mapfile -t args < <(image_args "$name")
  "$bin/msbimage-push-tree" --registry "$base" --image "$repo:$tag" "${args[@]}" >"$CACHE/images/$name.json.tmp"
  unstage
  mv "$CACHE/images/$name.json.tmp" "$CACHE/images/$name.json"
  log "$(cat "$CACHE/images/$name.json")"
}

IFS=, read -r -a image_list <<<"$IMAGES"
IFS=, read -r -a peer_list <<<"$PEERS"
IFS=, read -r -a profile_list <<<"$PROFILES"
for img in "${image_list[@]}"; do ensure_image "$img"; done

# ---------------------------------------------------------------------------------------------
# Link profiles: `lan` is the registry itself; any other gets one shaper in front of it, which
# every peer of that profile uses as its registry host.
declare -A phost shaper_pid
: >"$work/checks.jsonl"
for prof in "${profile_list[@]}"; do
  "$bin/msbimage-shaper" --print-profile "$prof" >"$work/profile-$prof.json" ||
    { echo "run.sh: unknown profile $prof (lan, wan, slow)" >&2; exit 2; }
  if [ "$prof" = lan ]; then
    phost[$prof]=$host
    continue
  fi
  "$bin/msbimage-shaper" --listen 127.0.0.1:0 --upstream "$host" --profile "$prof" \
    >"$work/shaper-$prof.out" 2>"$work/shaper-$prof.log" &
  shaper_pids+=($!)
  shaper_pid[$prof]=$!
  for _ in $(seq 100); do [ -s "$work/shaper-$prof.out" ] && break; sleep 0.1; done
  phost[$prof]=$(head -1 "$work/shaper-$prof.out")
  curl -sf "http://${phost[$prof]}/v2/" >/dev/null ||
    { log "shaper for $prof did not start:"; cat "$work/shaper-$prof.log" >&2; exit 1; }
  log "profile $prof: $(cat "$work/shaper-$prof.log")"
done
jq -s 'map({(.name): .}) | add' "$work"/profile-*.json >"$work/profiles.json"

# expected_s PROFILE.json SIZE N: what the shaper's model predicts for N connections each
# fetching SIZE bytes at once: 2 RTT (connection setup, request), then rounds of one RTT while
# slow start limits the window (10 × 1460 bytes, doubling per round, until rate × RTT), then
# the rest at min(N × per-connection, link). Prints "WITH_SLOW_START WITHOUT" (s, or null).
expected_s() {
  python3 - "$@" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
size, n = int(sys.argv[2]), int(sys.argv[3])
rtt, conn, link = p["rtt_ms"] / 1000, p["conn_bytes_per_s"], p["link_bytes_per_s"]
per_conn = min(r for r in (conn, link, float("inf")) if r)
agg = min(r for r in (n * conn if conn else None, link, float("inf")) if r)
if agg == float("inf"):
    print("null null")
    sys.exit()
plain = 2 * rtt + n * size / agg
t, left, cwnd = 2 * rtt, n * size, 10 * 1460
while p["slow_start"] and rtt > 0 and cwnd < per_conn * rtt:
    sent = min(n * cwnd, agg * rtt)
    if sent >= left:
        break
    left, t, cwnd = left - sent, t + rtt, cwnd * 2
print(f"{t + left / agg:.3f} {plain:.3f}")
PY
}

# The shaping check, once per shaped profile before its first runs: one curl of the image's
# largest blob through the shaper, then N = link/conn + 2 curls of it at once, each against
# expected_s (and against the plain size ÷ rate + 2 RTT). The blob is read once directly
# first, so that it comes from the page cache.
shaping_check() {
  local prof=$1 img=$2 h=${phost[$1]} d size url n t0 t1 single parallel pid pids=() ok=1
  local pj=$work/profile-$1.json e1 e1plain en enplain c0 c1 c2 sp=${shaper_pid[$1]}
  read -r d size < <(manifest "bench/$img" "v$BENCH_VERSION" | jq -r '.layers | max_by(.size) | "\(.digest) \(.size)"')
  curl -sf -o /dev/null "$base/v2/bench/$img/blobs/$d"
  url=http://$h/v2/bench/$img/blobs/$d
  n=$(jq -r 'if .conn_bytes_per_s and .link_bytes_per_s
    then (.link_bytes_per_s / .conn_bytes_per_s | floor) + 2 else 4 end' "$pj")
  read -r e1 e1plain < <(expected_s "$pj" "$size" 1)
  read -r en enplain < <(expected_s "$pj" "$size" "$n")
  c0=$(proc_cpu "$sp")
  t0=$(date +%s.%N)
  curl -sf -o /dev/null "$url" || ok=0
  t1=$(date +%s.%N)
  c1=$(proc_cpu "$sp")
  single=$(printf '%.3f' "$(echo "$t1 - $t0" | bc)")
  t0=$(date +%s.%N)
  for _ in $(seq "$n"); do curl -sf -o /dev/null "$url" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || ok=0; done
  t1=$(date +%s.%N)
  c2=$(proc_cpu "$sp")
  parallel=$(printf '%.3f' "$(echo "$t1 - $t0" | bc)")
  ((ok)) || log "shaping check $prof: a curl failed"
  jq -c --arg img "$img" --arg blob "$d" --argjson size "$size" --argjson n "$n" \
    --argjson single "$single" --argjson parallel "$parallel" --argjson ok "$ok" \
    --argjson e1 "$e1" --argjson e1plain "$e1plain" --argjson en "$en" --argjson enplain "$enplain" \
    --argjson cpu1 "$(echo "$c1 - $c0" | bc | sed 's/^\./0./')" \
    --argjson cpun "$(echo "$c2 - $c1" | bc | sed 's/^\./0./')" '
    {profile: .name, image: $img, blob: $blob, blob_bytes: $size, ok: ($ok == 1),
     rtt_ms, conn_bytes_per_s, link_bytes_per_s, slow_start,
     single_s: $single, single_expected_s: $e1, single_no_slow_start_s: $e1plain,
     parallel_n: $n, parallel_s: $parallel, parallel_expected_s: $en,
     parallel_no_slow_start_s: $enplain, shaper_cpu_single_s: $cpu1, shaper_cpu_parallel_s: $cpun}
    | .single_ratio = (if .single_expected_s then .single_s / .single_expected_s else null end)
    | .parallel_ratio = (if .parallel_expected_s then .parallel_s / .parallel_expected_s else null end)
    ' "$pj" | tee -a "$work/checks.jsonl" | jq -r '
    def r: if . == null then "?" else (. * 100 | round / 100 | tostring) end;
    "shaping check \(.profile): 1 curl of \(.blob_bytes / 1e6 | r) MB: \(.single_s | r) s "
    + "(expected \(.single_expected_s | r) s, ×\(.single_ratio | r)); "
    + "\(.parallel_n) curls at once: \(.parallel_s | r) s "
    + "(expected \(.parallel_expected_s | r) s, ×\(.parallel_ratio | r)); "
    + "shaper CPU \(.shaper_cpu_single_s | r) s and \(.shaper_cpu_parallel_s | r) s"' |
    while read -r line; do log "$line"; done
}

# ---------------------------------------------------------------------------------------------
# 3. Fresh file system per cold run.
FSTYPE=ext4
# shellcheck source=tests/bench/fresh_fs.sh
source tests/bench/fresh_fs.sh
fresh() {
  fresh_fs "$mnt" "$loopimg" "$1" "$FSTYPE"
  if [ "$FRESH_FSTYPE" != "$FSTYPE" ]; then
    log "loop-mounted ext4 failed; falling back to tmpfs"
    FSTYPE=$FRESH_FSTYPE
  fi
  fs_base=$(df -k --output=used "$mnt" | tail -1)
}
fs_used_kb() { sync; echo $(($(df -k --output=used "$mnt" | tail -1) - fs_base)); }

# Per-image scratch size: the copy-per-layer drivers (vfs, native) need far more than the image.
scratch_gb() {
  local tar_bytes avail_gb want
  tar_bytes=$(jq -r .tar_bytes "$CACHE/images/$1.json")
  want=$((tar_bytes * 5 / 1000000000 + 4))
  [ "$1" = many ] && want=$((tar_bytes * 20 / 1000000000 + 4))
  avail_gb=$(($(df -k --output=avail "$SCRATCH_DIR" | tail -1) / 1048576 - 4))
  ((want > avail_gb)) && want=$avail_gb
  echo "$want"
}

TSV=$work/results.tsv
: >"$TSV"
: >"$work/failures.tsv"
cur_img="" cur_peer="" cur_run="" cur_prof=""
# record IMAGE PEER RUN WALL USER SYS RSS_KB BYTES_KB DAEMON_CPU DAEMON_RSS_KB LOAD; the link
# profile ($cur_prof) goes last, as a twelfth column.
record() { printf '%s\t' "$@" "$cur_prof" | sed 's/\t$//' >>"$TSV"; echo >>"$TSV"; }

# timed CMD…: wall clock from date(1), user/sys/peak RSS from GNU time (children included);
# leaves "wall user sys maxrss_kb" in $timed_out.
timed() {
  local errf=$work/cmd.err
  local t0 t1
  t0=$(date +%s.%N)
  if ! /usr/bin/time -f '%U %S %M' -o "$work/time.out" "$@" >/dev/null 2>"$errf"; then
    log "FAILED: $*"; tail -5 "$errf" >&2
    printf '%s\t%s\t%s\t%s\t%s\n' "$cur_img" "$cur_peer" "$cur_run" \
      "$(grep -v '^\s*$' "$errf" | grep -v 'Command exited with non-zero' | tail -1 | cut -c1-300)" \
      "$cur_prof" >>"$work/failures.tsv"
    return 1
  fi
  t1=$(date +%s.%N)
  timed_out="$(printf '%.3f' "$(echo "$t1 - $t0" | bc)") $(tail -1 "$work/time.out")"
}
load1() { cut -d' ' -f1 /proc/loadavg; }
TICK=$(getconf CLK_TCK)
proc_cpu() { awk -v t="$TICK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }

# Extra arguments for every msbimage pull (e.g. MSB_BENCH_ARGS="--range-chunk-size 2M" to try
# other range settings); empty for the recorded runs.
read -r -a msb_args <<<"${MSB_BENCH_ARGS:-}"

run_msbimage() {
  local img=$1 i=$2 ref=$3 gb=$4 l
  fresh "$gb"; l=$(load1)
  timed "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none "${msb_args[@]}" || return 0
  record "$img" msbimage-cold "$i" $timed_out "$(fs_used_kb)" "" "" "$l"
  # Warm: the same image again, already complete in the cache (a new CLI process).
  timed "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none || return 0
  record "$img" msbimage-warm "$i" $timed_out "" "" "" "$l"
}

# The same cold pull without the sidecar index: the difference is the index's cost in a real
# pull (issue 4's "build overhead").
run_msbimage_noindex() {
  local img=$1 i=$2 ref=$3 gb=$4 l
  fresh "$gb"; l=$(load1)
  timed "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none --no-index "${msb_args[@]}" || return 0
  record "$img" msbimage-noindex "$i" $timed_out "$(fs_used_kb)" "" "" "$l"
}

# The same cold pull with one stream per blob (no parallel ranges): what ranges buy.
run_msbimage_single() {
  local img=$1 i=$2 ref=$3 gb=$4 l
  fresh "$gb"; l=$(load1)
  timed "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none --range-connections 1 || return 0
  record "$img" msbimage-single "$i" $timed_out "$(fs_used_kb)" "" "" "$l"
}

# EROFS images per layer instead of (or as well as) the tree: `--output` OUTPUTS, recorded as
# PEER.
run_msbimage_outputs() {
  local img=$1 i=$2 ref=$3 gb=$4 outputs=$5 peer=$6 l
  fresh "$gb"; l=$(load1)
  timed "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none --output "$outputs" \
    "${msb_args[@]}" || return 0
  record "$img" "$peer" "$i" $timed_out "$(fs_used_kb)" "" "" "$l"
}

# The same job as msbimage-erofs with tools: an EROFS image of the image's tree (one flat
# image: umoci unpacks the layers merged; mkfs.erofs uncompressed, as we write).
run_skopeo_umoci_mkfs() {
  local img=$1 i=$2 ref=$3 gb=$4 l
  fresh "$gb"; l=$(load1)
  timed env TMPDIR="$mnt/tmp" sh -c "skopeo copy -q --src-tls-verify=false docker://$ref oci:$mnt/oci:img &&
    umoci unpack --image $mnt/oci:img $mnt/bundle &&
    mkfs.erofs --preserve-mtime $mnt/image.erofs $mnt/bundle/rootfs >/dev/null" || return 0
  record "$img" skopeo-umoci-mkfs "$i" $timed_out "$(fs_used_kb)" "" "" "$l"
}

# Our layer images against mkfs.erofs of the same trees: each image is loop-mounted and
# mkfs.erofs (uncompressed, its defaults) writes an image of the mounted tree. One line per
# image in $work/erofs-size.jsonl: with `--preserve-mtime` (every file's time kept, as ours
# keep them) and with mkfs.erofs's default (erofs-utils 1.5: one build time for every inode
# whose mtime is not kept). Not timed.
measure_erofs_size() {
  local img=$1 ref=$2 gb=$3 f ours=0 theirs=0 plain=0 n=0 m=$work/erofs-mnt
  fresh "$gb"
  if ! "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none --output erofs-layers \
    >/dev/null 2>"$work/erofs-size.err" &&
    ! "$bin/msbimage" pull "$ref" --cache "$mnt/cache" --progress none \
      --output directory,erofs-layers >/dev/null 2>"$work/erofs-size.err"; then
    log "erofs size: pull failed: $(tail -1 "$work/erofs-size.err")"; return 0
  fi
  mkdir -p "$m"
  for f in "$mnt"/cache/layers/sha256/*/layer.erofs; do
    mount -o loop,ro -t erofs "$f" "$m" || { log "erofs size: cannot mount $f"; return 0; }
    if ! mkfs.erofs --preserve-mtime "$mnt/ref.erofs" "$m" >"$work/mkfs.log" 2>&1 ||
      ! mkfs.erofs "$mnt/plain.erofs" "$m" >>"$work/mkfs.log" 2>&1; then
      umount "$m"; log "erofs size: mkfs.erofs failed: $(tail -1 "$work/mkfs.log")"; return 0
    fi
    umount "$m"
    ours=$((ours + $(stat -c %s "$f"))); theirs=$((theirs + $(stat -c %s "$mnt/ref.erofs")))
    plain=$((plain + $(stat -c %s "$mnt/plain.erofs")))
    n=$((n + 1)); rm -f "$mnt/ref.erofs" "$mnt/plain.erofs"
  done
  jq -nc --arg image "$img" --argjson layers "$n" --argjson ours "$ours" --argjson mkfs "$theirs" \
    --argjson plain "$plain" \
    '{image: $image, layers: $layers, ours_bytes: $ours, mkfs_bytes: $mkfs, mkfs_default_bytes: $plain}' \
    >>"$work/erofs-size.jsonl"
}

run_skopeo_umoci() {
  local img=$1 i=$2 ref=$3 gb=$4 l
  fresh "$gb"; l=$(load1)
  timed env TMPDIR="$mnt/tmp" sh -c "skopeo copy -q --src-tls-verify=false docker://$ref oci:$mnt/oci:img &&
    umoci unpack --rootless --image $mnt/oci:img $mnt/bundle" || return 0
  record "$img" skopeo-umoci "$i" $timed_out "$(fs_used_kb)" "" "" "$l"
}

run_podman() {
  local img=$1 i=$2 ref=$3 gb=$4 l
  fresh "$gb"; l=$(load1)
  mkdir -p "$mnt/podman"
  printf '[storage]\ndriver = "vfs"\nrunroot = "%s"\ngraphroot = "%s"\n' \
    "$mnt/podman/run" "$mnt/podman/root" >"$mnt/podman/storage.conf"
  timed env TMPDIR="$mnt/tmp" CONTAINERS_STORAGE_CONF="$mnt/podman/storage.conf" podman \
    --root "$mnt/podman/root" --runroot "$mnt/podman/run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend none \
    pull -q --tls-verify=false "$ref" || return 0
  record "$img" podman-vfs "$i" $timed_out "$(fs_used_kb)" "" "" "$l"
}

start_containerd() {
  local d=$mnt/ctrd
  mkdir -p "$d/root" "$d/state"
  cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$d/c.sock"
[ttrpc]
  address = "$d/t.sock"
[debug]
  address = ""
[metrics]
  address = ""
EOF
  TMPDIR="$mnt/tmp" containerd --config "$d/config.toml" >"$work/containerd.log" 2>&1 &
  ctrd_pid=$!
  for _ in $(seq 200); do
    ctr --address "$d/c.sock" version >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  log "containerd did not start:"; tail -20 "$work/containerd.log" >&2
  return 1
}
stop_containerd() {
  [ -n "$ctrd_pid" ] && kill "$ctrd_pid" 2>/dev/null && wait "$ctrd_pid" 2>/dev/null
  ctrd_pid=""
}

run_ctr() {
  local img=$1 i=$2 ref=$3 gb=$4 l c0 c1 hwm
  fresh "$gb"
  start_containerd || return 0
  sync; echo 3 >/proc/sys/vm/drop_caches
  l=$(load1)
  c0=$(proc_cpu "$ctrd_pid")
  if timed ctr --address "$mnt/ctrd/c.sock" -n bench images pull --plain-http \
    --snapshotter native "$ref"; then
    c1=$(proc_cpu "$ctrd_pid")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$ctrd_pid/status")
    # Check that the image really was unpacked into the snapshotter.
    # (Captured first: `ctr … | grep -q` under pipefail fails when grep exits before ctr has
    # written everything, a SIGPIPE that this warning used to report now and then.)
    local snaps
    snaps=$(ctr --address "$mnt/ctrd/c.sock" -n bench snapshots --snapshotter native ls 2>&1 || true)
    if ! grep -q Committed <<<"$snaps"; then
      log "ctr: no committed snapshot after pull (not unpacked?)"
    fi
    stop_containerd
    record "$img" ctr-native "$i" $timed_out "$(fs_used_kb)" "$(echo "$c1 - $c0" | bc)" "$hwm" "$l"
  fi
  stop_containerd
}

# The floor: the same blobs with curl, decompressed by pigz/zstd and unpacked by tar, one
# directory per layer, all layers in parallel (no whiteouts applied, no digest checks).
run_floor() {
  local img=$1 i=$2 repo=$3 tag=$4 gb=$5 fbase=$6 l script=$work/floor.sh n=0 d mt dec
  fresh "$gb"; l=$(load1)
  echo "set -e" >"$script"
  while read -r d mt; do
    case "$mt" in *zstd*) dec="zstd -dcq" ;; *gzip*) dec="pigz -dc" ;; *) dec=cat ;; esac
    echo "mkdir -p $mnt/floor/$n; (curl -sf $fbase/v2/$repo/blobs/$d | $dec | tar -x -C $mnt/floor/$n) &" >>"$script"
    n=$((n + 1))
  done < <(manifest "$repo" "$tag" | jq -r '.layers[] | "\(.digest) \(.mediaType)"')
  echo 'for j in $(jobs -p); do wait $j; done' >>"$script"
  timed bash "$script" || return 0
  record "$img" floor-curl-tar "$i" $timed_out "$(fs_used_kb)" "" "" "$l"
}

# What writing the tree costs by itself, the part of a pull's CPU that inflate and SHA-256 leave
# out: every layer's uncompressed tar, read from the page cache, unpacked by one `tar -x` after
# the other onto a fresh file system (no decompression, no hashing, no whiteouts). Measured
# once per image after its timed rounds; recorded as peer "write-tar-x" (not a pull).
measure_write() {
  local img=$1 repo=$2 tag=$3 gb=$4 d mt n=0 blob dec tars=$SCRATCH_DIR/tars-$$
  rm -rf "$tars"; mkdir -p "$tars"
  while read -r d mt; do
    blob=$CACHE/registry/docker/registry/v2/blobs/sha256/${d:7:2}/${d#sha256:}/data
    case "$mt" in *zstd*) dec="zstd -dcq" ;; *gzip*) dec="pigz -dc" ;; *) dec=cat ;; esac
    $dec <"$blob" >"$tars/$n.tar"
    n=$((n + 1))
  done < <(manifest "$repo" "$tag" | jq -r '.layers[] | "\(.digest) \(.mediaType)"')
  fresh "$gb"
  cat "$tars"/*.tar >/dev/null
  cur_img=$img cur_peer=write-tar-x cur_run=1 cur_prof=""
  if timed sh -c "for t in $tars/*.tar; do d=$mnt/w/\$(basename \$t .tar); mkdir -p \$d; tar -xf \$t -C \$d; done"; then
    record "$img" write-tar-x 1 $timed_out "$(fs_used_kb)" "" "" "$(load1)"
  fi
  rm -rf "$tars"
}

declare -A checked
for img in "${image_list[@]}"; do
  repo=bench/$img tag=v$BENCH_VERSION
  gb=$(scratch_gb "$img")
  log "image $img: $(cat "$CACHE/images/$img.json") (scratch ${gb}G $FSTYPE)"
  for prof in "${profile_list[@]}"; do
    ref=${phost[$prof]}/bench/$img:v$BENCH_VERSION
    if [ "$prof" != lan ] && [ -z "${checked[$prof]:-}" ]; then
      shaping_check "$prof" "$img"
      checked[$prof]=1
    fi
    for i in $(seq "$RUNS"); do
      # Rotate the starting command every round, so that no command always follows the same
      # one (deleting a scratch image leaves work, e.g. discards, for whatever runs next).
      np=${#peer_list[@]}
      order=()
      for ((k = 0; k < np; k++)); do order+=("${peer_list[$(((k + i - 1) % np))]}"); done
      for p in "${order[@]}"; do
        log "  [$prof] run $i/$RUNS: $p"
        cur_img=$img cur_peer=$p cur_run=$i cur_prof=$prof
        case "$p" in
          msbimage) run_msbimage "$img" "$i" "$ref" "$gb" ;;
          msbimage-noindex) run_msbimage_noindex "$img" "$i" "$ref" "$gb" ;;
          msbimage-single) run_msbimage_single "$img" "$i" "$ref" "$gb" ;;
          msbimage-erofs) run_msbimage_outputs "$img" "$i" "$ref" "$gb" erofs-layers msbimage-erofs ;;
          msbimage-erofs-dir)
            run_msbimage_outputs "$img" "$i" "$ref" "$gb" directory,erofs-layers msbimage-erofs-dir ;;
          skopeo-umoci-mkfs) run_skopeo_umoci_mkfs "$img" "$i" "$ref" "$gb" ;;
          skopeo-umoci) run_skopeo_umoci "$img" "$i" "$ref" "$gb" ;;
          podman) run_podman "$img" "$i" "$ref" "$gb" ;;
          ctr) run_ctr "$img" "$i" "$ref" "$gb" ;;
          floor) run_floor "$img" "$i" "$repo" "$tag" "$gb" "http://${phost[$prof]}" ;;
          *) log "unknown peer $p" ;;
        esac
      done
    done
  done
  log "  writing the tree alone (tar -x of the uncompressed layers)"
  measure_write "$img" "$repo" "$tag" "$gb"
  if [[ ",$PEERS," == *,msbimage-erofs* || ",$PEERS," == *,skopeo-umoci-mkfs,* ]]; then
    log "  layer images against mkfs.erofs of the same trees"
    measure_erofs_size "$img" "$host/bench/$img:v$BENCH_VERSION" "$gb"
  fi
  mountpoint -q "$mnt" && umount "$mnt"
  rm -f "$loopimg"
done

# Single-core throughput on the big image's largest layer (blob read from the page cache).
MICRO=$work/micro.json
echo '{}' >"$MICRO"
if [[ ",$IMAGES," == *,big,* ]]; then
  read -r d size < <(manifest bench/big "v$BENCH_VERSION" | jq -r '.layers | max_by(.size) | "\(.digest) \(.size)"')
  blob=$CACHE/registry/docker/registry/v2/blobs/sha256/${d:7:2}/${d#sha256:}/data
  usize=$(pigz -dc "$blob" | wc -c)
  cat "$blob" >/dev/null
  mbs() { echo "scale=1; $1 / 1000000 / $2" | bc; }
  t() { /usr/bin/time -f %e -o "$work/t" "$@" >/dev/null 2>&1; cat "$work/t"; }
  tp=$(t sh -c "pigz -dc -p1 '$blob' >/dev/null")
  tg=$(t sh -c "gzip -dc '$blob' >/dev/null")
  ts=$(t sha256sum "$blob")
  jq -n --arg digest "$d" --argjson blob "$size" --argjson tar "$usize" \
    --arg pigz_s "$tp" --arg gzip_s "$tg" --arg sha_s "$ts" \
    --arg pigz "$(mbs "$usize" "$tp")" --arg gzip "$(mbs "$usize" "$tg")" --arg sha "$(mbs "$size" "$ts")" \
    '{layer: $digest, blob_bytes: $blob, tar_bytes: $tar,
      pigz_p1_inflate_s: ($pigz_s|tonumber), pigz_p1_inflate_mb_s_out: ($pigz|tonumber),
      gzip_inflate_s: ($gzip_s|tonumber), gzip_inflate_mb_s_out: ($gzip|tonumber),
      sha256sum_s: ($sha_s|tonumber), sha256sum_mb_s: ($sha|tonumber)}' >"$work/tools.json"
  # The same with msbimage's own libraries (zlib-rs, sha2 with SHA-NI), single-threaded.
  MSB_BENCH_BLOB=$blob cargo bench -q -p microsandbox-image --bench physics 2>/dev/null |
    grep '^{' | jq '{physics: .}' >"$work/physics.json"
  jq -s '.[0] + .[1]' "$work/tools.json" "$work/physics.json" >"$MICRO"
fi

# ---------------------------------------------------------------------------------------------
# 5. Summary: Markdown (RESULTS.md) and JSON.
machine=$work/machine.json
jq -n --arg nproc "$(nproc)" \
  --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
  --arg mem "$(free -h | awk '/^Mem:/ {print $2}')" \
  --arg kernel "$(uname -r)" --arg os "$(. /etc/os-release; echo "$PRETTY_NAME")" \
  --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" --arg fs "$FSTYPE" --arg runs "$RUNS" \
  --arg profiles "$PROFILES" \
  --arg versions "$(printf 'msbimage %s; skopeo %s; umoci %s; podman %s; containerd %s; docker-registry %s' \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo +dirty)" \
    "$(skopeo --version | awk '{print $3}')" "$(umoci --version | awk '{print $3}')" \
    "$(podman --version | awk '{print $3}')" "$(containerd --version | awk '{print $3}')" \
    "$(dpkg-query -W -f '${Version}' docker-registry)")" \
  '{nproc: $nproc, cpu: $cpu, memory: $mem, kernel: $kernel, os: $os, date: $date,
    scratch_fs: $fs, runs: ($runs|tonumber), versions: $versions, profiles: $profiles}' >"$machine"
SHAPING=$work/shaping.json
jq -n --slurpfile p "$work/profiles.json" --slurpfile c "$work/checks.jsonl" \
  '{profiles: $p[0], checks: $c}' >"$SHAPING"
cp "$TSV" "$SCRATCH_DIR/last-results.tsv"
cp "$work/failures.tsv" "$SCRATCH_DIR/last-failures.tsv"
cp "$SHAPING" "$SCRATCH_DIR/last-shaping.json"
cp "$machine" "$SCRATCH_DIR/last-machine.json"
cp "$MICRO" "$SCRATCH_DIR/last-micro.json"
touch "$work/erofs-size.jsonl"
jq -s . "$work/erofs-size.jsonl" >"$work/erofs-size.json"
cp "$work/erofs-size.json" "$SCRATCH_DIR/last-erofs-size.json"
python3 "$ROOT/tests/bench/summarize.py" "$TSV" "$machine" "$MICRO" "$CACHE/images" "$work/failures.tsv" \
  "$([ "$WRITE_RESULTS" = 1 ] && echo "$ROOT/tests/bench/RESULTS.md" || echo -)" \
  "$([ "$JSON" = 1 ] && echo json || echo table)" "$SHAPING" "$work/erofs-size.json"
