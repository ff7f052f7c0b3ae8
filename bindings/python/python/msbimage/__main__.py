"""``python -m msbimage``: pull an image into the cache from the command line.

    python -m msbimage pull REF [--platform OS/ARCH[/VARIANT]] [--policy …] [--json] …
    python -m msbimage inspect REF [--cache DIR]

The result JSON (``--json``, ``inspect``) is the Rust CLI's, made by the same core function;
failures print ``msbimage: error: …`` and exit with the Rust CLI's code for the error's kind
(and, with ``--json``, an ``{"error": {…}}`` object on stdout). Progress goes to stderr: one
status line redrawn on a terminal, milestone lines otherwise. It uses no library beyond the
standard one, so installing msbimage pulls in no other package.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Dict, List, Optional, Sequence, TextIO

from . import events
from ._native import GlobalCache, Platform
from ._options import RegistrySettings
from ._registry import PullPolicy, PullResult, Registry
from .errors import CancelledError, ImageError


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class Progress:
    """Shows a pull's events on a stream: a status line redrawn in place on a terminal,
    one line per milestone otherwise."""

    def __init__(self, stream: TextIO, mode: str) -> None:
        self.stream = stream
        self.live = mode == "tty" or (mode == "auto" and stream.isatty())
        self.quiet = mode == "none"
        self.layers = 0
        self.total = 0
        self.downloaded: Dict[int, int] = {}
        self.done: set[int] = set()
        self.last_draw = 0.0

    def __call__(self, event: events.PullEvent) -> None:
        if self.quiet:
            return
        if isinstance(event, events.Resolved):
            self.layers, self.total = event.layer_count, event.total_download_bytes
            self.line(f"{event.reference}: {self.layers} layers, {_mib(self.total)} to download")
        elif isinstance(event, events.LayerDownloadProgress):
            self.downloaded[event.layer_index] = event.downloaded_bytes
            self.draw()
        elif isinstance(event, events.LayerDownloadComplete):
            self.downloaded[event.layer_index] = event.downloaded_bytes
            self.line(f"layer {event.layer_index}: downloaded {_mib(event.downloaded_bytes)}")
        elif isinstance(event, (events.LayerExtractComplete, events.LayerCached)):
            self.done.add(event.layer_index)
            what = "extracted" if isinstance(event, events.LayerExtractComplete) else "cached"
            self.line(f"layer {event.layer_index}: {what}")
        elif isinstance(event, events.Complete):
            self.line(f"{event.reference}: done{' (from the cache)' if event.cached else ''}")

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.live or (not force and now - self.last_draw < 0.1):
            return
        self.last_draw = now
        got = sum(self.downloaded.values())
        self.stream.write(
            f"\r\x1b[K{len(self.done)}/{self.layers} layers, {_mib(got)} / {_mib(self.total)}"
        )
        self.stream.flush()

    def line(self, text: str) -> None:
        if self.live:
            self.stream.write(f"\r\x1b[K{text}\n")
            self.draw(force=True)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.live and not self.quiet:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m msbimage",
        description="Pull OCI images, verify them and extract their layers into a shared cache.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("reference", metavar="REF", help="[registry/]repository[:tag][@digest]")
        p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="target platform")
        p.add_argument("--cache", metavar="DIR", help="cache directory")

    pull = commands.add_parser("pull", help="pull an image into the cache")
    common(pull)
    pull.add_argument("--policy", choices=[p.value for p in PullPolicy], default="if-missing")
    pull.add_argument("--force", action="store_true", help="download every layer again")
    pull.add_argument("--no-index", action="store_true", help="do not build layer indexes")
    pull.add_argument("--insecure-registry", action="append", default=[], metavar="HOST")
    pull.add_argument("--ca-file", action="append", default=[], metavar="PEM")
    pull.add_argument("--mirror", action="append", default=[], metavar="REGISTRY=URL")
    pull.add_argument("--concurrency", type=int, metavar="N")
    pull.add_argument("--json", action="store_true", help="print the result as JSON")
    pull.add_argument("--progress", choices=["auto", "tty", "plain", "none"], default="auto")

    inspect = commands.add_parser("inspect", help="print what the cache holds for an image")
    common(inspect)
    return parser


def _registry(args: argparse.Namespace) -> Registry:
    platform = Platform.parse(args.platform) if args.platform else Platform.host_linux()
    cache = GlobalCache(args.cache) if args.cache else None
    settings: RegistrySettings = {}
    if args.command == "pull":
        mirrors: Dict[str, List[str]] = {}
        for m in args.mirror:
            registry, sep, url = m.partition("=")
            if not sep:
                raise SystemExit(f"msbimage: error: --mirror {m!r}: expected REGISTRY=URL")
            mirrors.setdefault(registry, []).append(url)
        settings = {
            "insecure_registries": args.insecure_registry,
            "ca_files": args.ca_file,
            "mirrors": mirrors,
            "concurrency": args.concurrency,
        }
    return Registry(platform, cache, **settings)


def _summary(r: PullResult) -> str:
    lines = [str(r.reference), f"  platform: {r.platform}", f"  digest:   {r.manifest_digest}"]
    if r.index_digest:
        lines.append(f"  index:    {r.index_digest}")
    lines += [
        f"  config:   {r.config_digest}",
        f"  cached:   {'yes' if r.cached else 'no'}",
        f"  layers:   {len(r.layers)}",
    ]
    lines += [f"    {layer}" for layer in r.layers]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    as_json = args.command == "inspect" or args.json
    progress: Optional[Progress] = None
    try:
        registry = _registry(args)
        if args.command == "inspect":
            result = registry.pull(args.reference, pull_policy=PullPolicy.NEVER)
        else:
            progress = Progress(sys.stderr, "none" if args.json else args.progress)
            result = registry.pull(
                args.reference,
                pull_policy=args.policy,
                force=args.force,
                build_index=not args.no_index,
                progress=progress,
            )
    except ImageError as e:
        return _fail(e.message, e.exit_code, e.report() if as_json else None, progress)
    except KeyboardInterrupt:
        return _fail("interrupted: pull cancelled", CancelledError.exit_code, None, progress)
    if progress:
        progress.end()
    sys.stdout.write(result.to_json() + "\n" if as_json else _summary(result))
    return 0


def _fail(
    message: str, code: int, report: Optional[Dict[str, Optional[str]]], progress: Optional[Progress]
) -> int:
    if progress:
        progress.end()
    if report is not None:
        sys.stdout.write(json.dumps({"error": report}) + "\n")
    sys.stderr.write(f"msbimage: error: {message}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
