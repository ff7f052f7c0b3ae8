"""Checking and repairing the cache, looking before pulling and exporting a rootfs, from
Python: ``GlobalCache.verify()``, ``Registry.repair()``, ``Registry.inspect()``,
``PullResult.unpack()`` and ``GlobalCache(path, read_only=…)``, against the loopback registry
with a fresh cache per test."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

import msbimage
from helpers import Served

IMAGE = "fixtures/standard:gzip"


def test_a_clean_cache_verifies_clean(client: msbimage.Registry, registry: Served) -> None:
    result = client.pull(registry.ref(IMAGE))
    report = client.cache.verify()
    assert isinstance(report, msbimage.VerifyReport)
    assert [l.diff_id for l in report.layers] == sorted(result.layer_diff_ids)
    assert all(l.problems == [] and l.recorded and l.entries > 0 for l in report.layers)
    assert [i.damaged_layers for i in report.images] == [[]]
    assert report.records == []


def test_damage_is_reported_and_repair_rebuilds_the_layer(
    client: msbimage.Registry, registry: Served
) -> None:
    ref = registry.ref(IMAGE)
    result = client.pull(ref)
    damaged = result.layer_diff_ids[0]
    target = result.layers[0] / "data" / "one-byte"
    original, before = target.read_bytes(), target.stat()
    # Other bytes of the same size, with the mode and times put back: only the content differs.
    os.chmod(target, 0o600)
    target.write_bytes(b"y" * len(original))
    os.chmod(target, before.st_mode & 0o7777)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    del result
    gc.collect()

    report = client.cache.verify([ref])
    [layer] = [l for l in report.layers if l.problems]
    assert layer.diff_id == damaged
    [problem] = layer.problems
    assert problem.kind == "contentChanged" and problem.path == "data/one-byte"
    assert report.images[0].damaged_layers == [damaged]

    repaired = client.repair(report)
    assert isinstance(repaired, msbimage.RepairReport)
    assert repaired.rebuilt_layers == [damaged] and repaired.failed == []
    after = client.cache.verify()
    assert all(l.problems == [] for l in after.layers)
    assert client.pull(ref).layers[0].joinpath("data", "one-byte").read_bytes() == original


def test_inspect_describes_what_a_pull_gets_without_pulling(
    client: msbimage.Registry, registry: Served
) -> None:
    ref = registry.ref(IMAGE)
    image = client.inspect(ref)
    assert isinstance(image, msbimage.RemoteImage)
    assert client.cache.images() == [], "inspect wrote nothing"
    assert isinstance(image.config, msbimage.ImageConfig)
    assert image.download_size == sum(l.size for l in image.layers) > 0

    result = client.pull(ref)
    assert image.manifest_digest == result.manifest_digest
    assert image.config_digest == result.config_digest
    assert image.config == result.config
    assert [l.diff_id for l in image.layers] == result.layer_diff_ids

    with pytest.raises(msbimage.PlatformNotFoundError):
        client.inspect(ref, platform="linux/arm64")


def test_unpack_writes_the_merged_tree(
    client: msbimage.Registry, registry: Served, tmp_path: Path
) -> None:
    result = client.pull(registry.ref(IMAGE))
    dest = tmp_path / "rootfs"
    report = result.unpack(dest, rootless=True)
    assert isinstance(report, msbimage.UnpackReport) and report.rootless
    stack = result.layer_stack()
    visible = [path for path, _ in stack.walk() if path]  # the walk lists the root ("") too
    assert report.entries == len(visible)
    written = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert written == sorted(visible)
    assert (dest / "data" / "one-byte").read_bytes() == (
        result.layers[0] / "data" / "one-byte"
    ).read_bytes()

    with pytest.raises(msbimage.InvalidArgumentError, match="empty"):
        result.unpack(dest)


def test_a_read_only_cache_reads_and_refuses_writes(
    client: msbimage.Registry, registry: Served
) -> None:
    ref = registry.ref(IMAGE)
    client.pull(ref)
    reader = msbimage.GlobalCache(client.cache.path, read_only=True)
    assert reader.read_only and not client.cache.read_only
    assert [i.names for i in reader.images()] == [[ref]]
    warm = msbimage.Registry(msbimage.Platform.parse("linux/amd64"), reader)
    assert warm.pull(ref).cached
    with pytest.raises(msbimage.IoError, match="read-only"):
        reader.remove_image(ref)
