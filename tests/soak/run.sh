#!/usr/bin/env bash
# Soak test (not run in CI): PULLS pulls of one multi-layer image from PROCS worker processes
# at once, through a fault proxy that resets one blob GET in RESET_EVERY at a varying point,
# while `msbimage gc` runs in a loop and one running pull is SIGKILLed every KILL_EVERY
# seconds (its worker then starts the next pull). Afterwards `msbimage verify` must find no
# problem, and a final `gc` must leave no debris. Prints a report and writes it to --out.
#
#   bash tests/soak/run.sh [--pulls 200] [--procs 4] [--kill-every 10] [--reset-every 5]
#        [--gc-every 2] [--seed N] [--hang-secs 300] [--tmpfs-size 12g] [--out FILE.md]
#
# Run as root to put the cache on a tmpfs (otherwise it goes under /var/tmp). The image is
# made from this machine's /usr with msbimage-push-tree (as tests/bench/ab.sh does): one
# layer above the 32 MiB `partialMinSize` (usr/share/locale, ~55 MB gzipped) so a killed
# download leaves a .partial the next pull resumes from, one of ~25 MB and three small ones.
# Everything listens on 127.0.0.1. Exit status: 0 when every check passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
PULLS=200
PROCS=4
KILL_EVERY=10
RESET_EVERY=5
GC_EVERY=2
SEED=$RANDOM
HANG_SECS=300
OUT=$root/tests/soak/RESULTS.md
TMPFS_SIZE=12g
while (($#)); do
  case "$1" in
    --pulls) PULLS=$2; shift 2 ;;
    --procs) PROCS=$2; shift 2 ;;
    --kill-every) KILL_EVERY=$2; shift 2 ;;
    --reset-every) RESET_EVERY=$2; shift 2 ;;
    --gc-every) GC_EVERY=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --hang-secs) HANG_SECS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --tmpfs-size) TMPFS_SIZE=$2; shift 2 ;;
    *) sed -n '2,17p' "$0" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d /tmp/msb-soak.XXXXXX)
bg=()
cleanup() {
  set +e
  touch "$work/stop" 2>/dev/null
  # Our own processes only: the loops, the pulls they started, the registry.
  for f in "$work"/run/w*.running; do
    [ -e "$f" ] && kill -9 "$(cut -d' ' -f1 "$f")" 2>/dev/null
  done
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building release binaries (target/release)…" >&2
cargo build --release -q -p microsandbox-image --features microsandbox-image/cli --bin msbimage \
  -p msbimage-testkit --bins
bin=$root/target/release

mkdir -p "$work/mnt" "$work/run" "$work/pulls" "$work/gc" "$work/cfg"
if [ "$(id -u)" -eq 0 ]; then
  mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0700" tmpfs "$work/mnt"
  fs=tmpfs
else
  echo "not root: the cache goes under /var/tmp instead of a tmpfs" >&2
  rmdir "$work/mnt"
  mkdir -p /var/tmp/msb-soak && ln -s "$(mktemp -d /var/tmp/msb-soak/cache.XXXXXX)" "$work/mnt"
  fs=disk
fi
cache=$work/mnt/cache
mkdir -m 0700 "$cache" # so the gc loop finds a cache before the first pull made one
msb() { "$bin/msbimage" "$@"; }

"$bin/msbimage-testkit" serve --ignore-stdin --reset-every "$RESET_EVERY" --seed "$SEED" \
  --blob-log "$work/blobs.jsonl" >"$work/serve.json" &
bg+=($!)
for _ in $(seq 100); do [ -s "$work/serve.json" ] && break; sleep 0.1; done
read -r host proxy < <(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["host"], d["proxy_host"])' <"$work/serve.json")
ref=$proxy/soak/usr:latest

echo "pushing soak/usr:latest to $host…" >&2
"$bin/msbimage-push-tree" --registry "http://$host" --image soak/usr:latest --compression gzip \
  --layer usr/share/locale=/usr/share/locale --layer usr/include=/usr/include \
  --layer usr/lib/x86_64-linux-gnu/perl=/usr/lib/x86_64-linux-gnu/perl \
  --layer usr/share/perl=/usr/share/perl \
  --layer usr/lib/x86_64-linux-gnu/perl-base=/usr/lib/x86_64-linux-gnu/perl-base \
  >"$work/push.json"
python3 - "$host" >"$work/manifest.json" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://{sys.argv[1]}/v2/soak/usr/manifests/latest",
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
sys.stdout.write(urllib.request.urlopen(req).read().decode())
PY

# Tickets: a worker claims one before a pull; a completed pull keeps it, a killed or failed
# one gives it back, so exactly PULLS pulls complete.
echo 0 >"$work/run/completed"
echo 0 >"$work/run/inflight"
tickets() { # claim | done | back
  (
    flock 9
    c=$(<"$work/run/completed") i=$(<"$work/run/inflight")
    case $1 in
      claim) ((c + i < PULLS)) || exit 1; echo $((i + 1)) >"$work/run/inflight" ;;
      done) echo $((c + 1)) >"$work/run/completed"; echo $((i - 1)) >"$work/run/inflight" ;;
      back) echo $((i - 1)) >"$work/run/inflight" ;;
    esac
  ) 9>"$work/run/tickets.lock"
}

# Each worker's pulls cycle through three ways of needing the network, a third each:
# `--force` (every layer downloaded and swapped in again), `rm` then pull (layers no other
# pull holds are gone), and a plain pull (cold when gc evicted the image, else warm). Each
# pull names itself in its User-Agent, so the proxy's log tells its blob GETs apart.
worker() {
  local k=$1 n=0 id mode rc t0 t1 flags
  local modes=(rm plain force rm force plain)
  while [ ! -e "$work/stop" ] && tickets claim; do
    n=$((n + 1))
    id=w$k-$n
    mode=${modes[$(((n + 2 * k) % ${#modes[@]}))]}
    flags=()
    case $mode in
      force) flags=(--force) ;;
      rm) msb rm "$ref" --cache "$cache" --json >"$work/pulls/$id.rm" 2>&1 || true ;;
    esac
    printf '{"userAgent": "msbimage-soak/%s"}\n' "$id" >"$work/cfg/$id.json"
    t0=$(date +%s.%N)
    # The binary itself in the background (not a function: $! must be the msbimage process).
    "$bin/msbimage" pull "$ref" --cache "$cache" --insecure-registry "$proxy" \
      --config "$work/cfg/$id.json" --progress json "${flags[@]}" \
      >"$work/pulls/$id.out" 2>"$work/pulls/$id.events" &
    local pid=$!
    echo "$pid $id $t0" >"$work/run/w$k.running"
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    rm -f "$work/run/w$k.running"
    t1=$(date +%s.%N)
    printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$mode" "$rc" "$t0" "$t1" >>"$work/run/pulls.tsv"
    if ((rc == 0)); then tickets done; else tickets back; fi
    if (($(grep -c . "$work/run/pulls.tsv") > 5 * PULLS)); then
      echo "worker $k: more than $((5 * PULLS)) pulls started, giving up" >&2
      touch "$work/stop"
    fi
  done
}

# Every KILL_EVERY s: SIGKILL the running pull of the next worker (round robin) that has one.
# Meanwhile, every 0.2 s: a pull running for more than HANG_SECS is recorded as hung and killed.
killer() {
  local next=1 k f pid id t0 due
  due=$(($(date +%s%N) + KILL_EVERY * 1000000000))
  while [ ! -e "$work/stop" ]; do
    sleep 0.2
    for f in "$work"/run/w*.running; do
      [ -e "$f" ] || continue
      read -r pid id t0 <"$f" || continue
      if (($(date +%s) - ${t0%.*} > HANG_SECS)) && [ ! -e "$work/run/hang-$id" ]; then
        touch "$work/run/hang-$id"
        cat "/proc/$pid/stack" >"$work/run/hang-$id.stack" 2>/dev/null || true
        printf '%s\t%s\t%s\n' "$(date +%s.%N)" "$id" "$pid" >>"$work/run/hangs.tsv"
        kill -9 "$pid" 2>/dev/null || true
      fi
    done
    (($(date +%s%N) >= due)) || continue
    due=$((due + KILL_EVERY * 1000000000))
    for k in $(seq 0 $((PROCS - 1))); do
      k=$(((next - 1 + k) % PROCS + 1))
      f=$work/run/w$k.running
      [ -e "$f" ] || continue
      read -r pid id t0 <"$f" || continue
      grep -q msbimage "/proc/$pid/cmdline" 2>/dev/null || continue
      kill -9 "$pid" 2>/dev/null || continue
      # What the pull was doing: its last progress event.
      printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$id" "$pid" \
        "$(tail -n 1 "$work/pulls/$id.events" 2>/dev/null | tr -d '\t')" >>"$work/run/kills.tsv"
      next=$((k % PROCS + 1))
      break
    done
  done
}

# gc in a loop: plain (debris, unreferenced layers) and `--max-size 0` (evict every image,
# keeping only layers a pull holds) in turn.
gc_loop() {
  local n=0 rc
  while [ ! -e "$work/stop" ]; do
    n=$((n + 1))
    rc=0
    if ((n % 2)); then
      msb gc --cache "$cache" --json >"$work/gc/$n.json" 2>"$work/gc/$n.err" || rc=$?
    else
      msb gc --cache "$cache" --max-size 0 --json >"$work/gc/$n.json" 2>"$work/gc/$n.err" || rc=$?
    fi
    printf '%s\t%s\t%s\n' "$n" "$rc" "$(date +%s.%N)" >>"$work/run/gc.tsv"
    # What tmp/ holds now (replaced trees waiting for their layer to be free, staging) and
    # how full the cache's filesystem is.
    printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" \
      "$(find "$cache/tmp" -mindepth 1 -maxdepth 1 -name 'trash-*' 2>/dev/null | wc -l)" \
      "$(du -sb "$cache/tmp" 2>/dev/null | cut -f1)" \
      "$(df -B1 --output=used "$cache" | tail -n 1 | tr -d ' ')" >>"$work/run/tmp.tsv"
    sleep "$GC_EVERY"
  done
}

echo "soak: $PULLS pulls of $ref from $PROCS processes, 1 blob GET in $RESET_EVERY reset, gc every ${GC_EVERY}s, a SIGKILL every ${KILL_EVERY}s (seed $SEED, cache on $fs)" >&2
start=$(date +%s.%N)
gc_loop &
gc_pid=$!
bg+=("$gc_pid")
killer &
killer_pid=$!
bg+=("$killer_pid")
workers=()
for k in $(seq "$PROCS"); do
  worker "$k" &
  workers+=($!)
done
last=-1
while :; do
  alive=0
  for w in "${workers[@]}"; do kill -0 "$w" 2>/dev/null && alive=1; done
  ((alive)) || break
  c=$(<"$work/run/completed")
  [ -n "$c" ] || continue # read while a worker rewrote it
  if ((c / 20 != last)); then
    last=$((c / 20))
    echo "  $(date -u +%T) $c/$PULLS pulls completed, $(cat "$work/run/kills.tsv" 2>/dev/null | wc -l) SIGKILLs, $(cat "$work/run/gc.tsv" 2>/dev/null | wc -l) gc rounds" >&2
  fi
  sleep 1
done
for w in "${workers[@]}"; do wait "$w" || true; done
end=$(date +%s.%N)
touch "$work/stop"
wait "$killer_pid" "$gc_pid" || true

# Afterwards: verify what the soak left; then rm + a cold pull (no faults but the proxy's
# resets; it consumes any partial a kill left), verify again; then gc, and look for debris.
post=$work/post
mkdir -p "$post"
rc=0; msb verify --cache "$cache" --json >"$post/verify1.json" 2>"$post/verify1.err" || rc=$?
echo "$rc" >"$post/verify1.rc"
find "$cache" -path '*/blobs/*' -name '*.partial' -printf '%s %p\n' >"$post/partials-before.txt" || true
msb rm "$ref" --cache "$cache" --json >"$post/rm.json" 2>&1 || true
printf '{"userAgent": "msbimage-soak/final"}\n' >"$work/cfg/final.json"
rc=0; msb pull "$ref" --cache "$cache" --insecure-registry "$proxy" --config "$work/cfg/final.json" \
  --progress json >"$post/final.out" 2>"$post/final.events" || rc=$?
echo "$rc" >"$post/final.rc"
rc=0; msb verify --cache "$cache" --json >"$post/verify2.json" 2>"$post/verify2.err" || rc=$?
echo "$rc" >"$post/verify2.rc"
rc=0; msb gc --cache "$cache" --json >"$post/gc.json" 2>"$post/gc.err" || rc=$?
echo "$rc" >"$post/gc.rc"
find "$cache/tmp" -mindepth 1 -maxdepth 1 -printf '%f\n' >"$post/tmp-after-gc.txt" 2>/dev/null || true
find "$cache" -path '*/blobs/*' -name '*.partial' -printf '%s %p\n' >"$post/partials-after.txt" || true
find "$cache/layers/sha256" -mindepth 1 -maxdepth 1 -printf '%f\n' >"$post/layers-after-gc.txt" 2>/dev/null || true
du -sb "$cache" | cut -f1 >"$post/cache-bytes.txt"

cat >"$work/params.json" <<JSON
{"pulls": $PULLS, "procs": $PROCS, "kill_every": $KILL_EVERY, "reset_every": $RESET_EVERY,
 "gc_every": $GC_EVERY, "seed": $SEED, "hang_secs": $HANG_SECS, "fs": "$fs",
 "start": $start, "end": $end, "reference": "$ref",
 "command": "bash tests/soak/run.sh --pulls $PULLS --procs $PROCS --kill-every $KILL_EVERY --reset-every $RESET_EVERY --gc-every $GC_EVERY --seed $SEED --tmpfs-size $TMPFS_SIZE",
 "commit": "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core tests/harness || echo +dirty)",
 "machine": "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"}
JSON
status=0
python3 "$root/tests/soak/report.py" "$work" "$OUT" || status=$?
[ -n "${KEEP:-}" ] && cp -r "$work" "$KEEP" && echo "work dir copied to $KEEP" >&2
exit "$status"
