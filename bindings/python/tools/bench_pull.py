#!/usr/bin/env python3
"""Cold and warm pull times of one image through Python and through the Rust CLI, in the
same run, alternating, against a loopback ``msbimage-testkit serve`` registry.

    python tools/bench_pull.py [--runs 5] [--image fixtures/standard:gzip]
        [--cli target/release/msbimage] [--testkit target/debug/msbimage-testkit]

Rows: ``python``: ``Registry.pull`` in this process (a new Registry per run, as a process
would); ``python -m``: ``python -m msbimage pull`` as a process; ``rust cli``: the
``msbimage pull`` process. Cold = a fresh cache; warm = the same cache again (answered from
the cache). Caches live on the same file system as /tmp; ``durable`` stays on for all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import msbimage

ROOT = Path(__file__).resolve().parents[3]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default="fixtures/standard:gzip")
    parser.add_argument("--cli", default=str(ROOT / "target" / "release" / "msbimage"))
    parser.add_argument("--testkit", default=str(ROOT / "target" / "debug" / "msbimage-testkit"))
    args = parser.parse_args()

    kit = subprocess.Popen(
        [args.testkit, "serve", "--push-fixtures"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert kit.stdout is not None and kit.stdin is not None
    ref = f"{json.loads(kit.stdout.readline())['host']}/{args.image}"
    platform = "linux/amd64"

    def in_process(cache: Path) -> None:
        registry = msbimage.Registry(msbimage.Platform.parse(platform), msbimage.GlobalCache(cache))
        registry.pull(ref)

    def py_module(cache: Path) -> None:
        subprocess.run(
            [sys.executable, "-m", "msbimage", "pull", ref, "--cache", str(cache),
             "--platform", platform, "--json"],
            check=True, stdout=subprocess.DEVNULL,
        )

    def rust_cli(cache: Path) -> None:
        subprocess.run(
            [args.cli, "pull", ref, "--cache", str(cache), "--platform", platform, "--json",
             "--progress", "none"],
            check=True, stdout=subprocess.DEVNULL,
        )

    ways: Dict[str, Callable[[Path], None]] = {
        "python": in_process, "python -m": py_module, "rust cli": rust_cli,
    }
    times: Dict[str, Dict[str, List[float]]] = {w: {"cold": [], "warm": []} for w in ways}
    names = list(ways)
    with tempfile.TemporaryDirectory(prefix="msb-bench-") as tmp:
        for run in range(args.runs):
            order = names[run % len(names):] + names[: run % len(names)]  # rotate who goes first
            for name in order:
                cache = Path(tmp) / f"{name.replace(' ', '-')}-{run}"
                for phase in ("cold", "warm"):
                    start = time.perf_counter()
                    ways[name](cache)
                    times[name][phase].append(time.perf_counter() - start)
    kit.stdin.close()
    kit.wait(timeout=30)

    print(f"{ref}, {args.runs} runs each, alternating; median (min–max) ms")
    for name in names:
        cells = []
        for phase in ("cold", "warm"):
            t = [x * 1000 for x in times[name][phase]]
            cells.append(f"{phase} {statistics.median(t):8.1f} ({min(t):.1f}–{max(t):.1f})")
        print(f"  {name:10} " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
