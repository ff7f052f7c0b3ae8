"""Pulls an image and looks inside it: the example the test suite type-checks with
``mypy --strict`` and runs.

    python examples/pull.py REF CACHE_DIR [PLATFORM]
"""

from __future__ import annotations

import sys

import msbimage
from msbimage import events


def on_progress(event: msbimage.PullEvent) -> None:
    if isinstance(event, events.Resolved):
        print(f"{event.reference}: {event.layer_count} layers", file=sys.stderr)
    elif isinstance(event, events.LayerExtractComplete):
        print(f"layer {event.layer_index}: {event.entries} entries", file=sys.stderr)


def main(reference: str, cache_dir: str, platform: str = "linux/amd64") -> int:
    cache = msbimage.GlobalCache(cache_dir)
    registry = msbimage.Registry(
        msbimage.Platform.parse(platform),
        cache,
        concurrency=2,
        durable=False,
        max_retries=1,
    )
    try:
        result = registry.pull(
            reference, pull_policy=msbimage.PullPolicy.IF_MISSING, progress=on_progress
        )
    except msbimage.NotCachedError as e:
        print(f"not cached: {e.image}", file=sys.stderr)
        return 3
    except msbimage.ImageError as e:
        print(f"{e.kind}: {e.message}", file=sys.stderr)
        return e.exit_code
    for layer in result.layers:
        print(layer)
    entrypoint: list[str] | None = result.config.entrypoint
    print("entrypoint:", entrypoint)
    stack = result.layer_stack()
    for path, entry in stack.walk():
        if entry.kind is msbimage.EntryKind.SYMLINK:
            print(f"/{path} -> {entry.link_target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
