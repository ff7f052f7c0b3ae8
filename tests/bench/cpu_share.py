#!/usr/bin/env python3
"""Where a pull's machine time goes: one cold `msbimage pull` at a time into a fresh loop-mounted
ext4 (page cache dropped first, as in run.sh), with the machine's busy and idle core-seconds over
the pull from /proc/stat, split into msbimage (user+sys of the pull), the registry, the shaper
(when one is named) and the rest (kernel writeback of the loop device and everything else), and
the cores busy in each half second. It answers one question the wall times cannot: whether a
pull waits on something, or the machine is simply full.

    python3 tests/bench/cpu_share.py --ref HOST/REPO:TAG --registry-pid PID [--shaper-pid PID]
        [--output erofs-layers] [--config FILE] [--runs N] [--binary PATH]

Run as root (loop mounts, drop_caches), on a machine running nothing else, against a registry
(and shaper) started as run.sh starts them. Prints one line per pull and the busy timeline.
"""

import argparse
import os
import resource
import subprocess
import time

HZ = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
MNT = "/var/tmp/msbimage-cpu-share/mnt"
IMG = "/var/tmp/msbimage-cpu-share/fs.img"
FRESH_FS_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fresh_fs.sh")


def machine() -> tuple[float, float]:
    """Busy and idle core-seconds since boot (iowait counts as idle)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / HZ, idle / HZ


def process_cpu(pid: int | None) -> float:
    """User+sys seconds of `pid` and its reaped children (0 without a pid)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / HZ


def fresh_fs(size_gb: int) -> None:
    """The file system of run.sh's cold runs (`fresh_fs.sh`), which must be ext4 here."""
    os.makedirs(MNT, exist_ok=True)
    subprocess.run(
        ["bash", "-c", 'source "$0"; fresh_fs "$1" "$2" "$3" ext4; [ "$FRESH_FSTYPE" = ext4 ]',
         FRESH_FS_SH, MNT, IMG, str(size_gb)],
        check=True,
    )


def one_pull(args: argparse.Namespace) -> None:
    fresh_fs(args.fs_gb)
    cmd = [args.binary, "pull", args.ref, "--cache", f"{MNT}/cache", "--progress", "none"]
    cmd += ["--output", args.output] + (["--config", args.config] if args.config else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, idle0 = machine()
    reg0, shaper0 = process_cpu(args.registry_pid), process_cpu(args.shaper_pid)
    start = time.monotonic()
    pull = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    timeline, last = [], (busy0, idle0)
    while True:
        try:
            pull.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        busy, idle = machine()
        db, di = busy - last[0], idle - last[1]
        last = (busy, idle)
        timeline.append(f"{CORES * db / (db + di):.1f}" if db + di else "?")
    wall = time.monotonic() - start
    busy1, idle1 = machine()
    timeline.append(f"({CORES * (busy1 - last[0]) / max(busy1 + idle1 - sum(last), 1e-9):.1f})")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    reg = process_cpu(args.registry_pid) - reg0
    shaper = process_cpu(args.shaper_pid) - shaper0
    busy = busy1 - busy0
    if pull.returncode != 0:
        raise SystemExit(f"pull failed ({pull.returncode}): {' '.join(cmd)}")
    print(
        f"{args.output}: wall {wall:.2f} s; machine busy {busy:.2f} of "
        f"{CORES * wall:.2f} core-s (idle {idle1 - idle0:.2f}): msbimage {ours:.2f}, "
        f"registry {reg:.2f}, shaper {shaper:.2f}, rest {busy - ours - reg - shaper:.2f}"
    )
    print("  cores busy per 0.5 s:", " ".join(timeline))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", required=True)
    p.add_argument("--registry-pid", type=int, required=True)
    p.add_argument("--shaper-pid", type=int)
    p.add_argument("--output", default="directory")
    p.add_argument("--config")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--fs-gb", type=int, default=12)
    p.add_argument("--binary", default="target/release/msbimage")
    args = p.parse_args()
    try:
        for _ in range(args.runs):
            one_pull(args)
    finally:
        subprocess.run(f"mountpoint -q {MNT} && umount {MNT}; rm -f {IMG}", shell=True)


if __name__ == "__main__":
    main()
