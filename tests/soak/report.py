#!/usr/bin/env python3
"""Summarises a soak run (tests/soak/run.sh): reads the run's work directory, prints the
figures as a table and JSON, writes them to OUT (Markdown), and exits 1 when a check failed:
a verify problem, a pull that failed for a reason other than the injected resets, a hang,
debris left after the final gc, a failed gc round or a failed final pull.

    python3 tests/soak/report.py WORK_DIR OUT.md

Definitions (blob bytes are compressed bytes, body bytes the proxy wrote to clients):
  served       every blob GET's body bytes, as the proxy counted them;
  ideal        the size of each blob once per layer download that completed
               (`layerDownloadComplete` events of the soak's pulls, killed ones included);
  per fetch    the size of each blob once per pull that asked for it at all;
  each once    the sum of the image's distinct blob sizes (the absolute minimum);
  retries      blob GETs after the first for the same blob in the same pull (the pull is told
               apart by its User-Agent, `msbimage-soak/<worker>-<n>`);
  resumes      GETs with `Range: bytes=N-`, N > 0: "in pull" after a reset, "from partial"
               when the pull's first GET of a blob starts past 0 (it resumed a killed pull's
               .partial; N bytes reused).
"""
import collections
import json
import os
import sys

work, out = sys.argv[1], sys.argv[2]
P = lambda *a: os.path.join(work, *a)


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return default


def jsonl(path):
    rows = []
    for line in read(path).splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def tsv(path):
    return [l.split("\t") for l in read(path).splitlines() if l.strip()]


params = json.loads(read(P("params.json")))
manifest = json.loads(read(P("manifest.json")))
sizes = {l["digest"]: l["size"] for l in manifest["layers"]}
order = [l["digest"] for l in manifest["layers"]]
checks = []  # (name, ok, detail)

# --- pulls -----------------------------------------------------------------------------
kills = {row[1]: row for row in tsv(P("run", "kills.tsv"))}
hangs = {row[1]: row for row in tsv(P("run", "hangs.tsv"))}
pulls = []
for row in tsv(P("run", "pulls.tsv")):
    pid_, mode, rc, t0, t1 = row[0], row[1], int(row[2]), float(row[3]), float(row[4])
    events = jsonl(P("pulls", pid_ + ".events"))
    types = collections.Counter(e.get("type") for e in events)
    complete = next((e for e in events if e.get("type") == "complete"), None)
    error = next((e for e in reversed(events) if e.get("type") == "error"), None)
    downloaded = [e["digest"] for e in events if e.get("type") == "layerDownloadComplete"]
    if pid_ in hangs:
        outcome = "hang"
    elif rc == 0:
        outcome = "completed"
    elif pid_ in kills:
        outcome = "killed"
    else:
        outcome = "failed"
    pulls.append(dict(id=pid_, mode=mode, rc=rc, secs=t1 - t0, outcome=outcome,
                      cached=bool(complete and complete.get("cached")),
                      downloads=downloaded, waits=types.get("layerWaiting", 0),
                      layers_cached=types.get("layerCached", 0), error=error,
                      stderr_other=[l for l in read(P("pulls", pid_ + ".events")).splitlines()
                                    if l.strip() and not l.startswith("{")]))
by_id = {p["id"]: p for p in pulls}
completed = [p for p in pulls if p["outcome"] == "completed"]
failed = [p for p in pulls if p["outcome"] == "failed"]


def injected(p):
    """A failure the resets explain: a network error on a blob after the retry budget."""
    e = p["error"] or {}
    msg = (e.get("message") or "").lower()
    return e.get("kind") == "REGISTRY" and any(
        w in msg for w in ("reset", "connection", "body", "decoding", "closed", "incomplete"))


fail_reasons = collections.Counter(
    f'{(p["error"] or {}).get("kind", "exit %d" % p["rc"])}: {(p["error"] or {}).get("message", "; ".join(p["stderr_other"][-2:]))}'
    for p in failed)
unexpected = [p for p in failed if not injected(p)]
checks.append(("pulls completed", len(completed) == params["pulls"],
               f'{len(completed)} of {params["pulls"]}'))
checks.append(("no failure but injected resets", not unexpected,
               "; ".join(f'{p["id"]}: {(p["error"] or {}).get("message") or p["rc"]}' for p in unexpected[:5])))
checks.append(("no hang", not hangs, ", ".join(hangs)))

modes = {}
for m in ("force", "rm", "plain"):
    ps = [p for p in completed if p["mode"] == m]
    modes[m] = dict(completed=len(ps), warm=sum(p["cached"] for p in ps),
                    layer_downloads=sum(len(p["downloads"]) for p in ps),
                    layers_cached=sum(p["layers_cached"] for p in ps),
                    waited_for_another_pull=sum(p["waits"] for p in ps))

# --- kills -----------------------------------------------------------------------------
kill_phase = collections.Counter()
for row in kills.values():
    try:
        last = json.loads(row[3]) if len(row) > 3 and row[3].startswith("{") else {}
    except json.JSONDecodeError:
        last = {}
    t = last.get("type", "before any event")
    if t == "layerDownloadProgress":
        big = sizes.get(last.get("digest"), 0) >= 32 << 20
        t += " (the >32 MiB layer)" if big else " (a smaller layer)"
    kill_phase[t] += 1

# --- gc --------------------------------------------------------------------------------
gc_rows = tsv(P("run", "gc.tsv"))
gc_failed = [r for r in gc_rows if r[1] != "0"]
gc_tot = collections.Counter()
for r in gc_rows:
    try:
        g = json.loads(read(P("gc", r[0] + ".json")) or "{}")
    except json.JSONDecodeError:
        continue
    gc_tot["removed_images"] += len(g.get("removed_images", []))
    gc_tot["removed_layers"] += len(g.get("removed_layers", []))
    gc_tot["in_use_layers_skipped"] += len(g.get("in_use_layers", []))
    gc_tot["removed_debris"] += g.get("removed_debris", 0)
    gc_tot["removed_manifests"] += g.get("removed_manifests", 0)
checks.append(("every gc round succeeded", not gc_failed,
               "; ".join(read(P("gc", r[0] + ".err")).strip()[:200] for r in gc_failed[:3])))

tmp_rows = [r for r in tsv(P("run", "tmp.tsv")) if len(r) == 4 and all(x.strip() for x in r)]
peak_trash = max((int(r[1]) for r in tmp_rows), default=0)
peak_tmp = max((int(r[2]) for r in tmp_rows), default=0)
peak_used = max((int(r[3]) for r in tmp_rows), default=0)

# --- proxy log -------------------------------------------------------------------------
log = jsonl(P("blobs.jsonl"))
soak_log = [r for r in log if not (r.get("user_agent") or "").endswith("/final")]


def range_start(r):
    rg = r.get("range") or ""
    if rg.startswith("bytes="):
        try:
            return int(rg[len("bytes="):].split("-")[0])
        except ValueError:
            return 0
    return 0


per = collections.defaultdict(list)  # (pull id, digest) -> GETs in the order they ended
for r in soak_log:
    pid_ = (r.get("user_agent") or "?").rsplit("/", 1)[-1]
    per[(pid_, r["digest"])].append(r)
retries = resumes_in_pull = partial_resumes = partial_bytes = 0
served_by = collections.Counter()
for (pid_, digest), gets in per.items():
    retries += len(gets) - 1
    resumes_in_pull += sum(1 for g in gets[1:] if range_start(g) > 0)
    if range_start(gets[0]) > 0:
        partial_resumes += 1
        partial_bytes += range_start(gets[0])
    outcome = by_id.get(pid_, {}).get("outcome", "unknown")
    served_by[outcome] += sum(g["bytes"] for g in gets)
served = sum(r["bytes"] for r in soak_log)
resets = sum(1 for r in soak_log if r.get("reset"))
client_gone = sum(1 for r in soak_log if r.get("error"))
ideal = sum(sizes.get(d, 0) for p in pulls for d in p["downloads"])
per_fetch = sum(sizes.get(d, 0) for (_, d) in per)
each_once = sum(sizes.values())

# --- after -----------------------------------------------------------------------------
def verify(name):
    rc = int(read(P("post", name + ".rc"), "-1").strip() or -1)
    try:
        rep = json.loads(read(P("post", name + ".json")))["report"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return dict(rc=rc, problems=None, images=0, layers=0, bytes=0, list=[])
    probs = [f'{pr["kind"]}: {pr.get("path") or ""} {pr["detail"]}' for i in rep["images"] for pr in i["problems"]]
    probs += [f'{l["diffId"]}: {pr["kind"]}: {pr.get("path") or ""} {pr["detail"]}' for l in rep["layers"] for pr in l["problems"]]
    probs += [f'record: {pr["kind"]}: {pr["detail"]}' for pr in rep["records"]]
    n = len(probs) + sum(l.get("moreProblems", 0) for l in rep["layers"])
    return dict(rc=rc, problems=n, images=len(rep["images"]), layers=len(rep["layers"]),
                bytes=sum(l["bytes"] for l in rep["layers"]), list=probs[:20])


v1, v2 = verify("verify1"), verify("verify2")
checks.append(("verify after the soak: 0 problems", v1["problems"] == 0 and v1["rc"] == 0,
               "; ".join(v1["list"][:5]) or f'rc {v1["rc"]}'))
final_rc = int(read(P("post", "final.rc"), "-1").strip() or -1)
final_events = jsonl(P("post", "final.events"))
final_resumed = [r for r in log if (r.get("user_agent") or "").endswith("/final") and range_start(r) > 0]
checks.append(("final cold pull succeeded", final_rc == 0, f"rc {final_rc}"))
checks.append(("verify after the final pull: 0 problems", v2["problems"] == 0 and v2["rc"] == 0,
               "; ".join(v2["list"][:5]) or f'rc {v2["rc"]}'))
gc_rc = read(P("post", "gc.rc"), "-1").strip()
tmp_left = [l for l in read(P("post", "tmp-after-gc.txt")).splitlines() if l.strip()]
partials_before = [l for l in read(P("post", "partials-before.txt")).splitlines() if l.strip()]
partials_left = [l for l in read(P("post", "partials-after.txt")).splitlines() if l.strip()]
layers_left = [l for l in read(P("post", "layers-after-gc.txt")).splitlines() if l.strip()]
checks.append(("final gc succeeded", gc_rc == "0", gc_rc))
checks.append(("no staging/trash/temp debris in tmp/ after the final gc", not tmp_left, ", ".join(tmp_left[:5])))
checks.append(("no .partial left after the final pull and gc", not partials_left, ", ".join(partials_left[:5])))
checks.append(("only the image's layers left after gc", len(layers_left) == len(sizes),
               f"{len(layers_left)} layer dirs, image has {len(sizes)}"))

wall = params["end"] - params["start"]
summary = dict(
    params={k: params[k] for k in ("pulls", "procs", "kill_every", "reset_every", "gc_every", "seed", "fs")},
    wall_seconds=round(wall, 1),
    image=dict(layers=len(order), blob_bytes=[sizes[d] for d in order]),
    pulls=dict(completed=len(completed), killed=sum(p["outcome"] == "killed" for p in pulls),
               failed=len(failed), failed_injected=len(failed) - len(unexpected),
               failed_other=len(unexpected), hangs=len(hangs), started=len(pulls),
               by_mode=modes, fail_reasons=dict(fail_reasons),
               median_completed_secs=round(sorted(p["secs"] for p in completed)[len(completed) // 2], 2) if completed else None),
    sigkills=dict(done=len(kills), phase=dict(kill_phase)),
    gc=dict(rounds=len(gc_rows), failed=len(gc_failed), **gc_tot),
    tmp_peaks=dict(trash_trees=peak_trash, tmp_bytes=peak_tmp, cache_fs_used_bytes=peak_used),
    proxy=dict(blob_gets=len(soak_log), resets_injected=resets,
               reset_share=round(resets / len(soak_log), 3) if soak_log else None,
               gets_ended_by_client=client_gone),
    bytes=dict(served=served, ideal_completed_downloads=ideal, served_over_ideal=round(served / ideal, 3) if ideal else None,
               per_pull_fetch=per_fetch, each_blob_once=each_once,
               completed_layer_downloads=sum(len(p["downloads"]) for p in pulls),
               served_to=dict(served_by)),
    retries=retries,
    resumes=dict(in_pull_after_reset=resumes_in_pull, from_partial=partial_resumes,
                 partial_bytes_reused=partial_bytes, final_pull_from_partial=len(final_resumed)),
    verify=dict(after_soak={k: v1[k] for k in ("problems", "images", "layers", "bytes")},
                after_final_pull={k: v2[k] for k in ("problems", "images", "layers", "bytes")}),
    debris=dict(partials_before_final_pull=len(partials_before), tmp_after_gc=len(tmp_left),
                partials_after_gc=len(partials_left), layer_dirs_after_gc=len(layers_left)),
    checks=[dict(check=c, ok=ok, detail=d) for c, ok, d in checks],
)
ok = all(c[1] for c in checks)

MB = lambda b: f"{b / 1e6:,.1f} MB"
s = summary
lines = [
    "| figure | value |", "|---|---|",
    f'| pulls completed | {s["pulls"]["completed"]} of {params["pulls"]} ({s["pulls"]["started"]} started: {s["pulls"]["killed"]} SIGKILLed, {s["pulls"]["failed"]} failed, {s["pulls"]["hangs"]} hung) |',
    f'| completed by mode | ' + ", ".join(f'{m}: {v["completed"]} ({v["warm"]} warm, {v["layer_downloads"]} layer downloads, {v["layers_cached"]} layers cached, {v["waited_for_another_pull"]} waits for another pull)' for m, v in modes.items()) + " |",
    f'| failed pulls | {len(failed)}: {len(failed) - len(unexpected)} from injected resets, {len(unexpected)} other |',
    f'| SIGKILLs | {len(kills)} (' + ", ".join(f"{n} during {t}" for t, n in kill_phase.most_common()) + ") |",
    f'| gc rounds | {len(gc_rows)} ({len(gc_failed)} failed): removed {gc_tot["removed_images"]} images, {gc_tot["removed_layers"]} layers, {gc_tot["removed_debris"]} debris; {gc_tot["in_use_layers_skipped"]} in-use layers skipped |',
    f'| tmp/ at its fullest (sampled after each gc round) | {peak_trash} replaced trees waiting, {MB(peak_tmp)} in tmp/; {MB(peak_used)} used on the cache filesystem |',
    f'| blob GETs (proxy) | {len(soak_log)}: {resets} reset by the proxy ({s["proxy"]["reset_share"]}), {client_gone} ended by the client going away |',
    f'| bytes served for blobs | {MB(served)} (to completed pulls {MB(served_by["completed"])}, killed {MB(served_by["killed"])}, failed {MB(served_by["failed"])}) |',
    f'| ideal: each blob once per completed layer download | {MB(ideal)} ({s["bytes"]["completed_layer_downloads"]} downloads); served/ideal = {s["bytes"]["served_over_ideal"]} |',
    f'| each blob once per pull that fetched it | {MB(per_fetch)} |',
    f'| each blob once (absolute) | {MB(each_once)} ({len(order)} blobs) |',
    f'| retries (GETs after the first, per blob per pull) | {retries} |',
    f'| resumes | {resumes_in_pull} in-pull Range resumes after a reset; {partial_resumes} resumed from a killed pull\'s .partial ({MB(partial_bytes)} reused) |',
    f'| verify after the soak | {v1["problems"]} problems ({v1["images"]} images, {v1["layers"]} layers, {MB(v1["bytes"])} read) |',
    f'| verify after rm + a final cold pull | {v2["problems"]} problems ({v2["images"]} images, {v2["layers"]} layers, {MB(v2["bytes"])} read) |',
    f'| debris after the final gc | tmp/: {len(tmp_left)} entries; .partial: {len(partials_before)} before the final pull, {len(partials_left)} after; {len(layers_left)} layer dirs |',
    f'| wall time | {wall:.0f} s |',
]
table = "\n".join(lines)
checks_md = "\n".join(f'- [{"x" if c[1] else " "}] {c[0]}{": " + c[2] if c[2] and not c[1] else ""}' for c in checks)
print(table)
print(checks_md)
print(json.dumps(summary, indent=1))
# Notes written by hand below NOTES_MARK in OUT are kept across runs.
NOTES_MARK = "<!-- notes: kept by report.py -->"
notes = read(out)
notes = notes[notes.index(NOTES_MARK):] if NOTES_MARK in notes else NOTES_MARK + "\n"
with open(out, "w") as f:
    f.write(f"""# Soak test results

`{params["command"]}` (tests/soak/run.sh), {params["fs"]} cache, at {params["commit"]}.
Machine: {params["machine"]}.

{table}

Checks ({"all passed" if ok else "FAILED"}):

{checks_md}

Definitions are in `tests/soak/report.py`. The run's figures as JSON:

```json
{json.dumps(summary, indent=1)}
```

{notes}""")
sys.exit(0 if ok else 1)
