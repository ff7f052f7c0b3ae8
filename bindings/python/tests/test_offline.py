"""Offline images from Python: ``Registry.pull`` (and ``pull_iter``) of an OCI layout skopeo
wrote and of a docker archive ``Registry.save`` wrote, against the loopback registry, with a
fresh cache per test."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

import msbimage
from helpers import Served

IMAGE = "fixtures/standard:gzip"
MULTI = "fixtures/multi:latest"


def skopeo_copy(source: str, target: str) -> None:
    """skopeo as the other side: the test registry is plain HTTP on loopback."""
    out = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", source, target],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def fresh_client(cache: Path) -> msbimage.Registry:
    return msbimage.Registry(
        msbimage.Platform("linux", "amd64"), msbimage.GlobalCache(cache), durable=False
    )


def assert_same_image(a: msbimage.PullResult, b: msbimage.PullResult) -> None:
    assert a.layer_diff_ids == b.layer_diff_ids
    assert a.config_digest == b.config_digest
    assert a.manifest_digest == b.manifest_digest
    assert a.config == b.config
    assert all(index.is_file() for index in a.layer_indexes)


def test_an_oci_layout_pulls_like_the_registry(
    client: msbimage.Registry, registry: Served, tmp_path: Path
) -> None:
    layout = tmp_path / "standard"
    skopeo_copy(f"docker://{registry.ref(IMAGE)}", f"oci:{layout}:t")
    local = client.pull(f"oci-layout:{layout}:t")
    assert isinstance(local, msbimage.PullResult)
    assert str(local.reference) == "localhost/standard:t" and not local.cached
    remote = client.pull(registry.ref(IMAGE), pull_policy="always")
    assert_same_image(local, remote)
    # Recorded under its name: a pull that may not read anything answers from the cache.
    warm = client.pull("localhost/standard:t", pull_policy="never")
    assert warm.cached and warm.manifest_digest == local.manifest_digest
    # The iterator takes sources too, and reports the same image.
    with client.pull_iter(f"oci:{layout}:t", force=True) as events:
        kinds = [type(e).__name__ for e in events]
    assert kinds[-1] == "Complete"
    assert events.result.manifest_digest == local.manifest_digest


def test_save_writes_an_archive_that_pulls_back(
    client: msbimage.Registry, registry: Served, tmp_path: Path
) -> None:
    remote = client.pull(registry.ref(IMAGE))
    archive = tmp_path / "standard.tar"
    report = client.save(registry.ref(IMAGE), f"docker-archive:{archive}")
    assert isinstance(report, msbimage.SaveReport)
    assert report.reference == registry.ref(IMAGE)
    assert report.target == f"docker-archive:{archive}"
    assert report.manifest_digest == remote.manifest_digest
    assert report.config_digest == remote.config_digest
    assert report.blobs_written == len(remote.layers) + 1  # the layers and the config
    assert report.bytes_written == archive.stat().st_size
    with tarfile.open(archive) as tar:
        members = sorted(tar.getnames())
    expected = [d.split(":")[1] + ".tar" for d in remote.layer_diff_ids]
    expected += [remote.config_digest.split(":")[1] + ".json", "manifest.json"]
    assert members == sorted(expected)
    # Into another cache, so that nothing is answered from the first one.
    other = fresh_client(tmp_path / "other-cache")
    back = other.pull(f"docker-archive:{archive}")
    assert not back.cached and str(back.reference) == registry.ref(IMAGE)
    assert back.config_digest == remote.config_digest
    assert back.layer_diff_ids == remote.layer_diff_ids
    # skopeo reads what we wrote as the same layers (it rewrites the config as OCI's).
    layout = tmp_path / "copied"
    skopeo_copy(f"docker-archive:{archive}", f"oci:{layout}:x")
    copied = other.pull(f"oci-layout:{layout}:x")
    assert copied.layer_diff_ids == remote.layer_diff_ids


def test_save_to_a_layout_for_a_platform(
    client: msbimage.Registry, registry: Served, tmp_path: Path
) -> None:
    offered = client.inspect(registry.ref(MULTI)).platforms
    [other] = [p for p in offered if p != "linux/amd64"][:1]
    layout = tmp_path / "saved"
    report = client.save(registry.ref(MULTI), f"oci-layout:{layout}:v1", platform=other)
    assert isinstance(report, msbimage.SaveReport)
    assert (layout / "oci-layout").is_file() and (layout / "index.json").is_file()
    assert report.manifest_digest == client.inspect(registry.ref(MULTI), platform=other).manifest_digest
    assert report.target == f"oci-layout:{layout}:v1"
    local = fresh_client(tmp_path / "other-cache").pull(
        f"oci-layout:{layout}:v1", platform=other
    )
    assert local.manifest_digest == report.manifest_digest and str(local.platform) == other
    assert "linux/s390x" not in offered
    with pytest.raises(msbimage.PlatformNotFoundError):
        client.save(
            registry.ref(MULTI), f"oci-layout:{tmp_path / 'none'}:v1", platform="linux/s390x"
        )


def test_bad_sources_raise_what_the_core_says(
    client: msbimage.Registry, tmp_path: Path
) -> None:
    # A plain reference that does not parse is still a bad reference.
    with pytest.raises(msbimage.InvalidReferenceError):
        client.pull("Not A Reference!")
    # A transport string that does not parse, or one not supported, is a bad argument.
    with pytest.raises(msbimage.InvalidArgumentError, match="oci-layout"):
        client.pull("oci-layout:")
    with pytest.raises(msbimage.InvalidArgumentError, match="not supported"):
        client.pull(f"oci-archive:{tmp_path / 'x.tar'}")
    with pytest.raises(msbimage.NotFoundError, match="missing.tar"):
        client.pull(f"docker-archive:{tmp_path / 'missing.tar'}")
    with pytest.raises(msbimage.NotFoundError, match="missing.tar"):
        client.save(f"docker-archive:{tmp_path / 'missing.tar'}", f"oci:{tmp_path / 'out'}")


def test_save_does_not_push(client: msbimage.Registry, registry: Served, tmp_path: Path) -> None:
    with pytest.raises(msbimage.InvalidArgumentError, match="pushing to a registry"):
        client.save(registry.ref(IMAGE), registry.ref("saved/copy:v1"))
    with pytest.raises(msbimage.InvalidReferenceError):
        client.save(registry.ref(IMAGE), "Not A Target!")
