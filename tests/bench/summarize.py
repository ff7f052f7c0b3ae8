"""Summarizes tests/bench/run.sh measurements into RESULTS.md and/or JSON.

usage: summarize.py RESULTS.tsv MACHINE.json MICRO.json IMAGES_DIR FAILURES.tsv OUT.md|- json|table
                    [SHAPING.json [EROFS_SIZE.json]]

RESULTS.tsv rows have 11 columns, or 12 with the link profile last (rows without one, and
failure rows without a fifth column, are `lan`). SHAPING.json (from run.sh) holds the link
profiles' parameters and the shaping checks. EROFS_SIZE.json (from run.sh, with EROFS peers)
lists per image the bytes of our layer images and of mkfs.erofs's images of the same trees. With only `lan` in the data the output is what
it was before profiles existed.
"""

import json
import os
import statistics
import sys

tsv, machine_path, micro_path, images_dir, failures_path, out_md, mode = sys.argv[1:8]
shaping_path = sys.argv[8] if len(sys.argv) > 8 else None
erofs_size_path = sys.argv[9] if len(sys.argv) > 9 else None
erofs_sizes = {}
if erofs_size_path and os.path.exists(erofs_size_path):
    erofs_sizes = {e["image"]: e for e in json.load(open(erofs_size_path))}
failures = {}  # (image, profile, peer, error) -> runs
for line in open(failures_path):
    parts = line.rstrip("\n").split("\t")
    if len(parts) in (4, 5):
        prof = (parts[4] if len(parts) == 5 else "") or "lan"
        key = (parts[0], prof, parts[1], parts[3])
        failures[key] = failures.get(key, 0) + 1
machine = json.load(open(machine_path))
micro = json.load(open(micro_path))
shaping = {"profiles": {}, "checks": []}
if shaping_path and os.path.exists(shaping_path):
    shaping = json.load(open(shaping_path))

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
    r["profile"] = (parts[len(FIELDS)] if len(parts) > len(FIELDS) else "") or "lan"
    rows.append(r)

PEER_ORDER = ["msbimage-cold", "msbimage-noindex", "msbimage-single", "msbimage-erofs",
              "msbimage-erofs-dir", "skopeo-umoci", "skopeo-umoci-mkfs", "podman-vfs", "ctr-native",
              "floor-curl-tar", "msbimage-warm"]
PEER_LABEL = {
    "msbimage-cold": "msbimage pull, cold",
    "msbimage-noindex": "msbimage pull, cold, `--no-index` (what the index costs)",
    "msbimage-single": "msbimage pull, cold, `--range-connections 1` (one stream per blob)",
    "msbimage-erofs": "msbimage pull, cold, `--output erofs-layers` (an EROFS image per layer, no tree)",
    "msbimage-erofs-dir": "msbimage pull, cold, `--output directory,erofs-layers` (both)",
    "skopeo-umoci": "skopeo copy + umoci unpack --rootless",
    "skopeo-umoci-mkfs": "skopeo copy + umoci unpack (root) + mkfs.erofs of the tree",
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
# Profiles in the order run.sh ran them (then any others found in the data).
profiles = [p for p in machine.get("profiles", "").split(",") if p]
for prof in [r["profile"] for r in rows if r["peer"] != "write-tar-x"] + [k[1] for k in failures]:
    if prof not in profiles:
        profiles.append(prof)
profiles = [p for p in profiles
            if any(r["profile"] == p and r["peer"] != "write-tar-x" for r in rows)
            or any(k[1] == p for k in failures)] or ["lan"]
ONLY_LAN = profiles == ["lan"]

summary = {"machine": machine, "micro": micro, "images": {}, "shaping": shaping,
           "erofs_sizes": erofs_sizes,
           "failures": [{"image": k[0], "profile": k[1], "peer": k[2], "error": k[3], "runs": n}
                        for k, n in failures.items()]}
for k in failures:
    if k[0] not in images:
        images.append(k[0])


def peer_stats(img, prof):
    mine = [r for r in rows if r["image"] == img and r["profile"] == prof]
    cold = {r["run"]: r["wall"] for r in mine if r["peer"] == "msbimage-cold"}
    peers = {}
    for peer in PEER_ORDER:  # (write-tar-x is not a pull: see table())
        rs = [r for r in mine if r["peer"] == peer]
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
    return peers


def physics(img, prof, meta, peers):
    """For a shaped profile: the compressed bytes at the link's rate, and msbimage's median
    against the larger of that and msbimage's lan median (if lan ran)."""
    link = shaping.get("profiles", {}).get(prof, {}).get("link_bytes_per_s")
    cold = peers.get("msbimage-cold")
    if prof == "lan" or not link or not meta.get("blob_bytes") or not cold:
        return None
    lan = summary["images"][img]["profiles"].get("lan", {}).get("peers", {}).get("msbimage-cold")
    link_s = meta["blob_bytes"] / link
    lan_s = lan["wall_median_s"] if lan else None
    bound = max(link_s, lan_s or 0)
    return {"link_bytes_per_s": link, "blob_bytes": meta["blob_bytes"], "link_s": link_s,
            "msbimage_lan_median_s": lan_s, "msbimage_median_s": cold["wall_median_s"],
            "ratio": cold["wall_median_s"] / bound if bound > 0 else None}


for img in images:
    meta_path = os.path.join(images_dir, img + ".json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    summary["images"][img] = {"image": meta, "profiles": {}}
    for prof in profiles:
        summary["images"][img]["profiles"][prof] = {"peers": peer_stats(img, prof)}
    for prof in profiles:
        d = summary["images"][img]["profiles"][prof]
        d["physics"] = physics(img, prof, meta, d["peers"])
    summary["images"][img]["peers"] = summary["images"][img]["profiles"].get("lan", {}).get("peers", {})


def f(x, nd=2):
    return "" if x is None else f"{x:.{nd}f}"


def profile_desc(prof):
    p = shaping.get("profiles", {}).get(prof)
    if prof == "lan":
        return "lan (direct to the registry)"
    if not p:
        return prof
    mb = lambda r: "uncapped" if r is None else f"{r / 1e6:g} MB/s"  # noqa: E731
    return (f"{prof} ({p['rtt_ms']:g} ms RTT, {mb(p['conn_bytes_per_s'])} per connection, "
            f"{mb(p['link_bytes_per_s'])} link{', slow start' if p['slow_start'] else ''})")


def table(img, prof="lan"):
    d = summary["images"][img]
    meta = d["image"]
    pd = d["profiles"].get(prof, {"peers": {}, "physics": None})
    name = img if ONLY_LAN else f"{img}, {profile_desc(prof)}"
    out = []
    if meta:
        out.append(
            f"### {name}: {meta.get('layers')} layers, "
            f"{meta.get('tar_bytes', 0) / 1e6:.0f} MB uncompressed, "
            f"{meta.get('blob_bytes', 0) / 1e6:.0f} MB compressed\n")
    else:
        out.append(f"### {name}\n")
    out.append("| command | runs | wall median s | min–max s | ratio to msbimage cold ³ | "
               "CPU user+sys s | peak RSS MB | written MB |")
    out.append("|---|---|---|---|---|---|---|---|")
    for peer, p in pd["peers"].items():
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
    for (fimg, fprof, peer, err), n in failures.items():
        if fimg == img and fprof == prof:
            out.append(f"| {peer}: **failed** ({n} runs) | | | | | | | |")
    ph = pd.get("physics")
    if ph:
        lan = ph["msbimage_lan_median_s"]
        out.append("")
        out.append(
            f"Physics: {ph['blob_bytes'] / 1e6:.0f} MB compressed ÷ {ph['link_bytes_per_s'] / 1e6:g} MB/s "
            f"link = {ph['link_s']:.2f} s"
            + (f"; msbimage's lan median {lan:.2f} s" if lan is not None else "")
            + f". msbimage cold median {ph['msbimage_median_s']:.2f} s = "
            f"**{ph['ratio']:.2f}×** {'the larger of the two' if lan is not None else 'that'}.")
    phys = micro.get("physics")
    cold = pd["peers"].get("msbimage-cold")
    cpu_lines = prof == "lan" or "lan" not in profiles
    if cpu_lines and phys and cold and meta and not img.endswith("zstd"):
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
    erofs = erofs_md(img, pd["peers"]) if prof == "lan" else ""
    if erofs:
        out.append("")
        out.append(erofs)
    fails = [(p, e, n) for (fi, fp, p, e), n in failures.items() if fi == img and fp == prof]
    if fails:
        out.append("")
        for p, e, n in fails:
            out.append(f"- {p} failed: `{e.strip().lstrip('⨯ ')}`")
    return "\n".join(out)


def erofs_md(img, peers):
    """EROFS output against the directory pull and the tool pipeline (medians of per-round
    ratios where both ran in the round), and the images' size against mkfs.erofs."""
    lines = []
    mine = [r for r in rows if r["image"] == img and r["profile"] == "lan"]

    def ratio(a, b):
        wa = {r["run"]: r["wall"] for r in mine if r["peer"] == a}
        wb = {r["run"]: r["wall"] for r in mine if r["peer"] == b}
        return med([wa[k] / wb[k] for k in wa if k in wb and wb[k] > 0])

    e = "msbimage-erofs"
    if e in peers:
        to_dir = ratio(e, "msbimage-cold")
        tools = ratio("skopeo-umoci-mkfs", e)
        both = ratio("msbimage-erofs-dir", "msbimage-cold")
        lines.append(
            "EROFS per layer: "
            + (f"**{to_dir:.2f}×** the directory pull's wall time (target ≤ 0.7×)" if to_dir else "")
            + (f"; skopeo+umoci+mkfs.erofs takes **{tools:.2f}×** as long (target ≥ 5×)" if tools else "")
            + (f"; writing both costs {both:.2f}× the directory pull" if both else "")
            + " (medians of the per-round ratios).")
    sz = erofs_sizes.get(img)
    if sz and sz["mkfs_bytes"]:
        lines.append(
            f"Size: our {sz['layers']} layer images {sz['ours_bytes'] / 1e6:.1f} MB; mkfs.erofs of "
            f"the same trees (each mounted) with `--preserve-mtime` {sz['mkfs_bytes'] / 1e6:.1f} MB: "
            f"ours **{sz['ours_bytes'] / sz['mkfs_bytes']:.3f}×** (target within 5 %); with its "
            f"default (one build time for inodes whose time it does not keep) "
            f"{sz['mkfs_default_bytes'] / 1e6:.1f} MB ({sz['ours_bytes'] / sz['mkfs_default_bytes']:.3f}×).")
    return "\n".join(lines)


def shaping_md():
    checks = shaping.get("checks") or []
    if not checks:
        return ""
    out = ["### Shaping checks\n",
           "Before a shaped profile's first runs, `curl` fetched the image's largest blob through "
           "the shaper once, then N = link ÷ per-connection + 2 times at once. Expected: what the "
           "shaper's model predicts: 2 RTT (connection setup, request), slow start's rounds, and "
           "the bytes at the per-connection rate (one curl) or the link rate (N curls); in "
           "brackets the same without slow start. Shaper CPU: the proxy's user+sys during the one curl "
           "and during the N.\n",
           "| profile | image | blob MB | 1 curl s | expected s | ratio | N | N curls s | expected s | ratio "
           "| shaper CPU s |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in checks:
        out.append(
            f"| {c['profile']}{'' if c.get('ok', True) else ' (a curl failed)'} | {c['image']} | "
            f"{c['blob_bytes'] / 1e6:.0f} | {f(c['single_s'])} | {f(c['single_expected_s'])} "
            f"({f(c.get('single_no_slow_start_s'))}) | {f(c['single_ratio'])} | {c['parallel_n']} | "
            f"{f(c['parallel_s'])} | {f(c['parallel_expected_s'])} "
            f"({f(c.get('parallel_no_slow_start_s'))}) | {f(c['parallel_ratio'])} | "
            f"{f(c.get('shaper_cpu_single_s'))} / {f(c.get('shaper_cpu_parallel_s'))} |")
    return "\n".join(out) + "\n"


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
        for prof in profiles:
            print(table(img, prof))
            print()
    if shaping_md():
        print(shaping_md())
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
        f"- versions: {m['versions']}\n- runs per command: {m['runs']}, alternating\n"
        + ("" if ONLY_LAN else f"- link profiles: {', '.join(profile_desc(p) for p in profiles)}\n"))
    parts.append("## Results\n")
    for img in images:
        for prof in profiles:
            parts.append(table(img, prof) + "\n")
    if shaping_md():
        parts.append(shaping_md())
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
