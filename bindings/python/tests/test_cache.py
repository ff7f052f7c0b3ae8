"""The cache's life cycle from Python: ``GlobalCache.images()``, ``layers()``,
``disk_usage()``, ``remove_image()``, ``gc()`` and ``hold_layer()``, on images pulled from the
loopback registry into a fresh cache per test."""

from __future__ import annotations

import dataclasses
import datetime
import gc
import inspect
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

import msbimage
from msbimage import reports
from helpers import ROOT, Served

SURFACE: Dict[str, Any] = json.loads((ROOT / "core" / "api-surface.json").read_text())


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


@dataclasses.dataclass
class Pulled:
    """What a test needs of a pull, without the result (which holds its layers)."""

    ref: str
    manifest_digest: str
    layer_diff_ids: List[str]
    layers: List[Path]


@pytest.fixture
def pulled(client: msbimage.Registry, registry: Served) -> Pulled:
    ref = registry.ref("fixtures/standard:gzip")
    result = client.pull(ref)
    out = Pulled(ref, result.manifest_digest, result.layer_diff_ids, result.layers)
    del result
    gc.collect()  # no result of this process holds the layers now
    return out


def test_ls_shows_the_image_and_du_adds_up(
    client: msbimage.Registry, registry: Served, pulled: Pulled
) -> None:
    cache = client.cache
    ref = registry.ref("fixtures/standard:gzip")
    [image] = cache.images()
    assert isinstance(image, msbimage.CachedImage)
    assert image.names == [ref] and image.platform == "linux/amd64" and image.complete
    assert image.manifest_digest == pulled.manifest_digest
    assert image.layers == pulled.layer_diff_ids and image.last_used > 0

    layers = cache.layers()
    assert sorted(layer.diff_id for layer in layers) == sorted(pulled.layer_diff_ids)
    assert all(layer.images == [ref] and layer.bytes > 0 for layer in layers)

    usage = cache.disk_usage()
    assert isinstance(usage, msbimage.DiskUsage)
    [mine] = usage.images
    assert isinstance(mine, msbimage.ImageUsage) and isinstance(mine, msbimage.CachedImage)
    assert mine.names == [ref] and mine.shared_bytes == 0
    assert mine.exclusive_bytes + mine.shared_bytes == usage.layer_bytes
    assert usage.layer_bytes == sum(layer.bytes for layer in usage.layers) > 0
    assert usage.unreferenced_bytes == 0

    # A second image sharing the layers turns exclusive bytes into shared ones.
    client.pull(registry.ref("fixtures/standard:zstd"))
    both = cache.disk_usage().images
    assert len(both) == 2 and all(u.shared_bytes > 0 for u in both)
    assert all(u.exclusive_bytes + u.shared_bytes <= cache.disk_usage().layer_bytes for u in both)


def test_rm_removes_the_image_and_a_never_pull_then_fails(
    client: msbimage.Registry, registry: Served, pulled: Pulled
) -> None:
    ref = registry.ref("fixtures/standard:gzip")
    layers = pulled.layer_diff_ids
    report = client.cache.remove_image(msbimage.Reference(ref), "linux/amd64")
    assert isinstance(report, msbimage.GcReport) and not report.dry_run
    [removed] = report.removed_images
    assert removed.names == [ref] and removed.platform == "linux/amd64"
    assert sorted(report.removed_layers) == sorted(layers) and report.in_use_layers == []
    assert report.freed_bytes > 0
    assert client.cache.images() == []
    with pytest.raises(msbimage.NotCachedError):
        client.pull(ref, pull_policy="never")
    with pytest.raises(msbimage.NotFoundError, match="no such image"):
        client.cache.remove_image(ref)
    with pytest.raises(msbimage.InvalidReferenceError):
        client.cache.remove_image("Not A Reference")
    with pytest.raises(msbimage.InvalidArgumentError):
        client.cache.remove_image(ref, "linux")


def test_gc_dry_run_removes_nothing_then_policies_evict(
    client: msbimage.Registry, registry: Served, pulled: Pulled
) -> None:
    cache = client.cache
    plain = cache.gc()
    assert plain.removed_layers == [] and plain.removed_images == []
    dry = cache.gc(dry_run=True, max_size=0)
    assert dry.dry_run and len(dry.removed_images) == 1 and len(dry.removed_layers) == 3
    assert dry.freed_bytes > 0
    assert len(cache.images()) == 1 and len(cache.layers()) == 3  # nothing removed
    kept = cache.gc(max_size=0, keep_recent=datetime.timedelta(hours=1))
    assert kept.removed_images == []
    done = cache.gc(max_size=0, keep_recent=None)
    assert sorted(done.removed_layers) == sorted(dry.removed_layers)
    assert done.removed_images == dry.removed_images
    assert cache.layers() == [] and cache.images() == []


def test_a_bad_policy_is_an_invalid_argument(client: msbimage.Registry) -> None:
    with pytest.raises(msbimage.InvalidArgumentError, match="maxSize|u64"):
        client.cache.gc(max_size=-1)
    with pytest.raises(msbimage.InvalidArgumentError):
        client.cache.gc(keep_recent=-5.0)
    with pytest.raises(TypeError):
        client.cache.gc(max_sise=1)  # type: ignore[call-arg]


def test_a_held_layer_survives_rm_and_gc_until_released(
    client: msbimage.Registry, registry: Served, pulled: Pulled
) -> None:
    cache = client.cache
    diff_id = pulled.layer_diff_ids[0]
    tree = pulled.layers[0]
    with cache.hold_layer(diff_id) as lease:
        assert isinstance(lease, msbimage.LayerLease)
        assert lease.diff_id == diff_id and not lease.released
        rm = cache.remove_image(registry.ref("fixtures/standard:gzip"))
        assert rm.in_use_layers == [diff_id] and len(rm.removed_layers) == 2
        again = cache.gc()
        assert again.in_use_layers == [diff_id] and again.removed_layers == []
        assert tree.is_dir()
    assert lease.released
    lease.release()  # idempotent
    after = cache.gc()
    assert after.removed_layers == [diff_id] and after.in_use_layers == []
    assert not tree.exists()

    # A lease taken before the layer is pulled again; release() without a with block; a
    # lease dropped by garbage collection.
    late = cache.hold_layer(diff_id)
    client.pull(pulled.ref)
    gc.collect()
    assert cache.remove_image(pulled.ref).in_use_layers == [diff_id]
    late.release()
    forgotten = cache.hold_layer(diff_id)
    assert cache.gc().in_use_layers == [diff_id]
    del forgotten
    gc.collect()
    assert cache.gc().removed_layers == [diff_id]
    with pytest.raises(msbimage.InvalidArgumentError):
        cache.hold_layer("sha256:nothex")


def test_reports_follow_the_core_schema() -> None:
    for report in SURFACE["cacheReports"]:
        cls = getattr(msbimage, report["name"])
        assert cls is reports.BY_NAME[report["name"]] and report["name"] in msbimage.__all__
        own = [f["rustName"] for f in report["fields"]]
        names = [f.name for f in dataclasses.fields(cls)]
        assert names[len(names) - len(own):] == own
        if report["extends"]:
            assert issubclass(cls, getattr(msbimage, report["extends"]))
    sample = {"dryRun": True, "removedImages": [{"names": ["a"], "platform": "p", "manifestDigest": "d"}],
              "removedLayers": [], "inUseLayers": ["x"], "removedManifests": 1, "removedFlatImages": 0,
              "removedDebris": 2, "freedBytes": 3}
    decoded = reports.from_data("GcReport", sample)
    assert decoded.removed_images[0] == msbimage.RemovedImage(["a"], "p", "d")
    assert decoded.in_use_layers == ["x"] and decoded.freed_bytes == 3


def test_gc_keywords_are_the_core_policy() -> None:
    params = inspect.signature(msbimage.GlobalCache.gc).parameters
    keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == {_snake(k) for k in SURFACE["gcPolicy"]["defaults"]}


def test_a_pull_result_holds_its_layers_like_a_lease(
    client: msbimage.Registry, registry: Served
) -> None:
    ref = registry.ref("fixtures/standard:zstd")
    result = client.pull(ref)
    rm = client.cache.remove_image(ref)
    assert rm.removed_layers == [] and sorted(rm.in_use_layers) == sorted(result.layer_diff_ids)
    del result
    gc.collect()
    assert len(client.cache.gc().removed_layers) == 3


def test_a_lease_says_what_it_holds(tmp_path: Path) -> None:
    cache = msbimage.GlobalCache(tmp_path / "c")
    lease = cache.hold_layer("sha256:" + "0" * 64)
    assert "LayerLease(" in repr(lease)
    lease.release()
    assert "released" in repr(lease)
