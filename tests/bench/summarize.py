"""Summarizes tests/bench/run.sh measurements into RESULTS.md and/or JSON.

usage: summarize.py RESULTS.tsv MACHINE.json MICRO.json IMAGES_DIR FAILURES.tsv OUT.md|- json|table
"""

import json
import os
import statistics
import sys

tsv, machine_path, micro_path, images_dir, failures_path, out_md, mode = sys.argv[1:8]
failures = {}
for line in open(failures_path):
    parts = line.rstrip("\n").split("\t")
    if len(parts) == 4:
        key = (parts[0], parts[1], parts[3])
        failures[key] = failures.get(key, 0) + 1
machine = json.load(open(machine_path))
micro = json.load(open(micro_path))

FIELDS = ["image", "peer", "run", "wall", "user", "sys", "rss_kb", "written_kb",
          "daemon_cpu", "daemon_rss_kb", "load1"]
rows = []
for line in open(tsv):
    parts = line.rstrip("\n").split("\t")
    if len(parts) < len(FIELDS):
        continue
    r = dict(zip(FIELDS, parts))
    for k in FIELDS[2:]:
        r[k] = float(r[k]) if r[k] not in ("", None) else None
    rows.append(r)

PEER_ORDER = ["msbimage-cold", "msbimage-noindex", "skopeo-umoci", "podman-vfs", "ctr-native", "floor-curl-tar",
              "msbimage-warm"]
PEER_LABEL = {
    "msbimage-cold": "msbimage pull, cold",
    "msbimage-noindex": "msbimage pull, cold, `--no-index` (what the index costs)",
    "skopeo-umoci": "skopeo copy + umoci unpack --rootless",
    "podman-vfs": "podman pull (vfs)",
    "ctr-native": "ctr images pull (native snapshotter) ¹",
    "floor-curl-tar": "floor: curl \\| pigz/zstd -dc \\| tar -x, layers in parallel ²",
    "msbimage-warm": "msbimage pull, warm (cached, CLI process)",
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


images = []
for r in rows:
    if r["image"] not in images:
        images.append(r["image"])

summary = {"machine": machine, "micro": micro, "images": {},
           "failures": [{"image": k[0], "peer": k[1], "error": k[2], "runs": n}
                        for k, n in failures.items()]}
for k in failures:
    if k[0] not in images:
        images.append(k[0])
for img in images:
    meta_path = os.path.join(images_dir, img + ".json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    cold = {r["run"]: r["wall"] for r in rows if r["image"] == img and r["peer"] == "msbimage-cold"}
    peers = {}
    for peer in PEER_ORDER:  # (write-tar-x is not a pull: see table())
        rs = [r for r in rows if r["image"] == img and r["peer"] == peer]
        if not rs:
            continue
        walls = [r["wall"] for r in rs]
        cpu = [r["user"] + r["sys"] + (r["daemon_cpu"] or 0) for r in rs]
        client_cpu = [r["user"] + r["sys"] for r in rs]
        ratios = [r["wall"] / cold[r["run"]] for r in rs if r["run"] in cold and cold[r["run"]] > 0]
        peers[peer] = {
            "runs": len(rs),
            "wall_s": walls,
            "wall_median_s": med(walls),
            "wall_min_s": min(walls),
            "wall_max_s": max(walls),
            "cpu_median_s": med(cpu),
            "client_cpu_median_s": med(client_cpu),
            "daemon_cpu_median_s": med([r["daemon_cpu"] for r in rs]),
            "rss_median_mb": med([r["rss_kb"] / 1024 for r in rs]),
            "daemon_rss_median_mb": med([r["daemon_rss_kb"] / 1024 if r["daemon_rss_kb"] else None for r in rs]),
            "written_median_mb": med([r["written_kb"] / 1024 if r["written_kb"] is not None else None for r in rs]),
            "ratio_to_msbimage_cold_median": med(ratios),
            "load1_at_start": [r["load1"] for r in rs],
        }
    summary["images"][img] = {"image": meta, "peers": peers}


def f(x, nd=2):
    return "" if x is None else f"{x:.{nd}f}"


def table(img):
    d = summary["images"][img]
    meta = d["image"]
    out = []
    if meta:
        out.append(
            f"### {img}: {meta.get('layers')} layers, "
            f"{meta.get('tar_bytes', 0) / 1e6:.0f} MB uncompressed, "
            f"{meta.get('blob_bytes', 0) / 1e6:.0f} MB compressed\n")
    else:
        out.append(f"### {img}\n")
    out.append("| command | runs | wall median s | min–max s | ratio to msbimage cold ³ | "
               "CPU user+sys s | peak RSS MB | written MB |")
    out.append("|---|---|---|---|---|---|---|---|")
    for peer, p in d["peers"].items():
        cpu = f(p["cpu_median_s"])
        rss = f(p["rss_median_mb"], 0)
        if p["daemon_cpu_median_s"] is not None:
            cpu = f"{f(p['cpu_median_s'])} (ctr {f(p['client_cpu_median_s'])} + daemon {f(p['daemon_cpu_median_s'])})"
            rss = f"ctr {f(p['rss_median_mb'], 0)} / daemon {f(p['daemon_rss_median_mb'], 0)}"
        ratio = "1.00" if peer == "msbimage-cold" else f(p["ratio_to_msbimage_cold_median"])
        out.append(
            f"| {PEER_LABEL[peer]} | {p['runs']} | {f(p['wall_median_s'])} | "
            f"{f(p['wall_min_s'])}–{f(p['wall_max_s'])} | {ratio} | {cpu} | {rss} | "
            f"{f(p['written_median_mb'], 0)} |")
    for (fimg, peer, err), n in failures.items():
        if fimg == img:
            out.append(f"| {peer}: **failed** ({n} runs) | | | | | | | |")
    phys = micro.get("physics")
    cold = d["peers"].get("msbimage-cold")
    if phys and cold and meta and not img.endswith("zstd"):
        # CPU floor of a pull of this image: inflate every tar byte, hash every blob and tar
        # byte, at the single-core rates measured with msbimage's own libraries.
        floor = (meta["tar_bytes"] / 1e6 / phys["inflate_mb_s_out"]
                 + (meta["tar_bytes"] + meta["blob_bytes"]) / 1e6 / phys["sha256_mb_s"])
        gb = meta["tar_bytes"] / 1e9
        out.append("")
        out.append(
            f"CPU per GB of tar: msbimage {cold['cpu_median_s'] / gb:.2f} s/GB; the floor "
            f"(inflate + SHA-256 of blob and tar, single core) {floor / gb:.2f} s/GB; "
            f"ratio **{cold['cpu_median_s'] / floor:.2f}×** (target ≤ 1.3×).")
        write = [r for r in rows if r["image"] == img and r["peer"] == "write-tar-x"]
        if write:
            w = write[0]["user"] + write[0]["sys"]
            out.append(
                f"Writing the tree alone (`tar -x` of the uncompressed layers from the page "
                f"cache onto a fresh file system, one run): {w:.2f} s CPU = {w / gb:.2f} s/GB "
                f"(user {write[0]['user']:.2f} + sys {write[0]['sys']:.2f}). Against the floor "
                f"plus that write cost ({(floor + w) / gb:.2f} s/GB), msbimage's CPU is "
                f"**{cold['cpu_median_s'] / (floor + w):.2f}×**.")
    fails = [(p, e, n) for (fi, p, e), n in failures.items() if fi == img]
    if fails:
        out.append("")
        for p, e, n in fails:
            out.append(f"- {p} failed: `{e.strip().lstrip('⨯ ')}`")
    return "\n".join(out)


def micro_md():
    if not micro:
        return ""
    m = micro
    return (
        "### Single-core throughput on the big image's largest layer\n\n"
        f"Layer `{m['layer'][:19]}…`: {m['blob_bytes'] / 1e6:.0f} MB gzip, "
        f"{m['tar_bytes'] / 1e6:.0f} MB tar; blob in the page cache, output to /dev/null.\n\n"
        "| operation | s | MB/s |\n|---|---|---|\n"
        f"| `pigz -dc -p1` (MB/s of tar output) | {m['pigz_p1_inflate_s']} | {m['pigz_p1_inflate_mb_s_out']} |\n"
        f"| `gzip -dc` (MB/s of tar output) | {m['gzip_inflate_s']} | {m['gzip_inflate_mb_s_out']} |\n"
        f"| `sha256sum` (MB/s of blob) | {m['sha256sum_s']} | {m['sha256sum_mb_s']} |\n"
        + (f"| msbimage's libraries: zlib-rs inflate (MB/s of tar output) | "
           f"{m['physics']['inflate_s']} | {m['physics']['inflate_mb_s_out']} |\n"
           f"| msbimage's libraries: sha2 SHA-256 of blob + tar (MB/s) | "
           f"{m['physics']['sha256_blob_s'] + m['physics']['sha256_tar_s']:.3f} | "
           f"{m['physics']['sha256_mb_s']} |\n" if m.get("physics") else ""))


if mode == "json":
    print(json.dumps(summary, indent=2))
else:
    for img in images:
        print(table(img))
        print()
    if micro:
        print(micro_md())

if out_md != "-":
    m = machine
    head_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.head.md")
    notes_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.notes.md")
    parts = []
    if os.path.exists(head_path):
        parts.append(open(head_path).read().rstrip() + "\n")
    parts.append(
        "## Machine\n\n"
        f"- date: {m['date']}\n- CPU: {m['cpu']}, nproc {m['nproc']}\n- memory: {m['memory']}\n"
        f"- kernel: {m['kernel']} ({m['os']})\n- scratch file system per cold run: fresh "
        f"{'loop-mounted ext4' if m['scratch_fs'] == 'ext4' else 'tmpfs'}\n"
        f"- versions: {m['versions']}\n- runs per command: {m['runs']}, alternating\n")
    parts.append("## Results\n")
    for img in images:
        parts.append(table(img) + "\n")
    if micro:
        parts.append(micro_md())
    loads = [r["load1"] for r in rows if r["load1"] is not None]
    if loads:
        parts.append(f"Load average (1 min) at the start of the timed runs: "
                     f"min {min(loads):.2f}, median {statistics.median(loads):.2f}, max {max(loads):.2f}.\n")
        if statistics.median(loads) > 0.5 * float(m["nproc"]):
            parts.append(
                f"**Caveat: the machine was not idle.** With {m['nproc']} CPUs, a median load of "
                f"{statistics.median(loads):.1f} means other processes (not started by the benchmark) "
                "competed for the CPU during the runs. Every command was exposed to it in turn "
                "(alternating rounds), so the ratios are more trustworthy than the absolute "
                "times, but CPU-bound commands (gzip inflate, copies) are slowed most, and the "
                "min–max spread shows the noise. Rerun on an idle machine for absolute numbers.\n")
    if os.path.exists(notes_path):
        parts.append(open(notes_path).read().rstrip() + "\n")
    with open(out_md, "w") as fh:
        fh.write("\n".join(parts))
