"""Pulls from the loopback registry: results, the cache, policies, progress, settings."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

import msbimage
from msbimage import events
from helpers import Served


def test_pull_gives_layers_config_and_digests(client: msbimage.Registry, registry: Served) -> None:
    ref = registry.ref("fixtures/standard:gzip")
    result = client.pull(ref)
    assert isinstance(result, msbimage.PullResult)
    assert len(result.layers) == 3 and len(result.layer_diff_ids) == 3
    for layer, diff_id, index in zip(result.layers, result.layer_diff_ids, result.layer_indexes):
        assert isinstance(layer, Path) and layer.is_dir()
        assert diff_id.split(":")[1] in str(layer)
        assert index.is_file() and index.parent == layer.parent
    assert (result.layers[2] / "app" / "hello.txt").read_text() == "hello from layer 3\n"
    assert result.manifest_digest == registry.manifests["fixtures/standard:gzip"]
    assert result.config_digest.startswith("sha256:")
    assert result.index_digest is None
    assert result.cached is False
    assert str(result.reference) == ref
    assert result.platform == msbimage.Platform.parse("linux/amd64")
    config = result.config
    assert isinstance(config, msbimage.ImageConfig)
    assert config.env[1] == "GREETING=hello world"
    assert config.cmd == ["--flag", "value"]
    assert config.entrypoint == ["/usr/bin/tool"]
    assert config.working_dir == "/app"
    assert config.user == "1000:1000"
    assert config.exposed_ports == ["53/udp", "80/tcp"]
    assert config.volumes == ["/data"]
    assert config.labels["com.example.fixture"] == "standard"
    assert config.stop_signal == "SIGTERM"
    assert (config.os, config.architecture) == ("linux", "amd64")


def test_erofs_layer_images(client: msbimage.Registry, registry: Served) -> None:
    ref = registry.ref("fixtures/standard:gzip")
    plain = client.pull(ref)
    assert len(plain.layer_images) == 3
    assert all(image.name == "layer.erofs" and not image.exists() for image in plain.layer_images)
    assert plain.flat_image is None
    result = client.pull(
        ref, outputs=["directory", "erofs-layers", "erofs-flat"], erofs_opaque_xattr="user"
    )
    assert result.flat_image is not None
    assert result.flat_image.name == result.manifest_digest.removeprefix("sha256:") + ".erofs"
    for image, layer in zip(result.layer_images, result.layers):
        assert image.parent == layer.parent
    for image in [*result.layer_images, result.flat_image]:
        with image.open("rb") as f:
            f.seek(1024)
            assert f.read(4) == (0xE0F5E1E2).to_bytes(4, "little"), "EROFS superblock magic"
    with pytest.raises(msbimage.InvalidArgumentError):
        client.pull(ref, outputs=[])


def test_erofs_layer_images_alone(client: msbimage.Registry, registry: Served) -> None:
    ref = registry.ref("fixtures/standard:gzip")
    result = client.pull(ref, outputs=["erofs-layers"])
    assert all(image.is_file() for image in result.layer_images)
    assert not any(layer.exists() for layer in result.layers), "no tree is written"
    stack = result.layer_stack()
    assert stack.layer_trees == [None] * len(result.layers)
    assert stack.stat("app/hello.txt").host_path is None
    with pytest.raises(msbimage.InvalidArgumentError):
        stack.host_path("app/hello.txt")
    assert client.pull(ref, outputs=["erofs-layers"]).cached


def test_second_pull_comes_from_the_cache(client: msbimage.Registry, registry: Served) -> None:
    ref = registry.ref("fixtures/standard:zstd")
    first = client.pull(ref)
    again = client.pull(ref)
    assert again.cached and not first.cached
    assert again.layers == first.layers
    assert again == first.__class__(**{**first.__dict__, "cached": True})


def test_policies(client: msbimage.Registry, registry: Served) -> None:
    ref = registry.ref("fixtures/standard:none")
    with pytest.raises(msbimage.NotCachedError) as e:
        client.pull(ref, pull_policy="never")
    assert e.value.kind == "NOT_CACHED" and e.value.image == ref
    assert not client.pull(ref, pull_policy=msbimage.PullPolicy.IF_MISSING).cached
    assert client.pull(ref, pull_policy=msbimage.PullPolicy.NEVER).cached
    assert client.pull(ref, policy="never").cached  # the CLI's name for it
    with pytest.raises(msbimage.InvalidArgumentError):
        client.pull(ref, policy="never", pull_policy="never")
    assert client.pull(ref).cached
    seen: List[msbimage.PullEvent] = []
    always = client.pull(ref, pull_policy="always", progress=seen.append)
    assert not always.cached
    # Always refetches the manifest and reuses the layers.
    assert [type(e) for e in seen].count(events.LayerCached) == 3
    forced: List[msbimage.PullEvent] = []
    client.pull(ref, force=True, progress=forced.append)
    assert [type(e) for e in forced].count(events.LayerExtractComplete) == 3
    with pytest.raises(msbimage.InvalidArgumentError):
        client.pull(ref, force=True, pull_policy="never")
    with pytest.raises(msbimage.InvalidArgumentError, match="pull options"):
        client.pull(ref, pull_policy="sometimes")


def test_progress_sequence(client: msbimage.Registry, registry: Served) -> None:
    seen: List[msbimage.PullEvent] = []
    client.pull(registry.ref("fixtures/standard:gzip"), progress=seen.append)
    assert all(isinstance(e, msbimage.PullEvent) for e in seen)
    assert isinstance(seen[0], events.Resolving)
    assert isinstance(seen[1], events.Resolved)
    assert seen[1].layer_count == 3 and seen[1].total_download_bytes > 3 << 20
    assert isinstance(seen[-1], events.Complete) and not seen[-1].cached
    per_layer = {
        i: [type(e).__name__ for e in seen if getattr(e, "layer_index", None) == i]
        for i in range(3)
    }
    for names in per_layer.values():
        milestones = [n for n in names if not n.endswith("Progress")]
        assert milestones.index("LayerExtractStarted") < milestones.index("LayerExtractComplete")
        assert milestones.index("LayerDownloadComplete") < milestones.index("LayerExtractComplete")
        assert milestones.index("LayerExtractComplete") < milestones.index("LayerIndexComplete")
        assert milestones.count("LayerIndexStarted") == 1
    sizes = [e.downloaded_bytes for e in seen if isinstance(e, events.LayerDownloadProgress)]
    assert sizes, "no byte progress"
    # Events are matchable and round-trip to the core's JSON form.
    described = [_describe(e) for e in seen]
    assert "resolved 3 layers" in described and described[-1] == "complete"
    first = seen[1].to_data()
    assert first["type"] == "resolved" and first["layerCount"] == 3

    cached: List[msbimage.PullEvent] = []
    client.pull(registry.ref("fixtures/standard:gzip"), progress=cached.append)
    assert not any(isinstance(e, events.LayerDownloadProgress) for e in cached)
    assert isinstance(cached[-1], events.Complete) and cached[-1].cached


def _describe(event: msbimage.PullEvent) -> str:
    # `match` needs Python 3.10; the same dispatch through isinstance on 3.9.
    if isinstance(event, events.Resolved):
        return f"resolved {event.layer_count} layers"
    if isinstance(event, events.Complete):
        return "complete"
    return type(event).__name__


def test_platform_from_an_index(client: msbimage.Registry, registry: Served) -> None:
    for wanted, got in [("linux/arm/v6", "linux/arm/v6"), ("linux/arm64", "linux/arm64/v8")]:
        result = client.pull(registry.ref("fixtures/multi:latest"), platform=wanted)
        assert str(result.platform) == got
        assert result.index_digest == registry.manifests["fixtures/multi:latest"]
        assert (result.layers[0] / "etc" / "platform").read_text() == got + "\n"
    result = client.pull(
        registry.ref("fixtures/multi:latest"), platform=msbimage.Platform("linux", "arm", "7")
    )
    assert str(result.platform) == "linux/arm/v7"


def test_settings_are_keyword_arguments(cache_dir: Path, basic_registry: Served) -> None:
    cache = msbimage.GlobalCache(cache_dir)
    amd64 = msbimage.Platform("linux", "amd64")
    client = msbimage.Registry(
        amd64,
        cache,
        auth=msbimage.RegistryAuth.basic("user", "wrong"),
        auth_for={basic_registry.host: msbimage.RegistryAuth.basic("user", "pass")},
        insecure_registries=(basic_registry.host,),
        concurrency=2,
        durable=False,
        max_retries=1,
        connect_timeout=2.5,
        limits={"max_entries": 1000},
        docker_config=False,
        mirrors={},
    )
    assert client.pull(basic_registry.ref("fixtures/standard:gzip")).layers
    with pytest.raises(TypeError, match="concurency"):
        msbimage.Registry(amd64, cache, concurency=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="insecureRegistries"):
        msbimage.Registry(amd64, cache, insecureRegistries=[])  # type: ignore[call-arg]
    with pytest.raises(msbimage.InvalidArgumentError, match="ca"):
        msbimage.Registry(amd64, cache, ca_files=["/nonexistent/ca.pem"])
    with pytest.raises(msbimage.InvalidArgumentError, match="maxEntriez"):
        msbimage.Registry(amd64, cache, limits={"max_entriez": 1})
    with pytest.raises(msbimage.InvalidArgumentError, match="registry settings"):
        msbimage.Registry(amd64, cache, concurrency="many")  # type: ignore[typeddict-item]
    with pytest.raises(TypeError):
        client.pull(basic_registry.ref("fixtures/standard:gzip"), polcy="never")  # type: ignore[call-arg]


def test_small_limits_stop_a_layer(cache_dir: Path, registry: Served) -> None:
    client = msbimage.Registry(
        msbimage.Platform("linux", "amd64"), msbimage.GlobalCache(cache_dir), limits={"max_entries": 3}
    )
    with pytest.raises(msbimage.ExtractionError) as e:
        client.pull(registry.ref("fixtures/standard:gzip"))
    assert e.value.layer is not None and e.value.layer.startswith("sha256:")
    assert e.value.layer in e.value.message and e.value.image in e.value.message


def test_value_types(registry: Served) -> None:
    p = msbimage.Platform.parse("linux/aarch64")
    assert (p.os, p.architecture, p.variant) == ("linux", "arm64", "v8")
    assert str(p) == "linux/arm64/v8" and p == msbimage.Platform("linux", "arm64")
    assert hash(p) == hash(msbimage.Platform("linux", "arm64", "v8"))
    assert msbimage.Platform.host_linux().os == "linux"
    r = msbimage.Reference.parse("alpine")
    assert str(r) == "docker.io/library/alpine:latest"
    assert (r.registry, r.repository, r.tag, r.digest) == (
        "docker.io",
        "library/alpine",
        "latest",
        None,
    )
    d = "sha256:" + "a" * 64
    r2 = msbimage.Reference(f"{registry.host}/x/y@{d}")
    assert r2.digest == d and r2.registry == registry.host and r2.tag is None
    assert r == msbimage.Reference("docker.io/library/alpine")
    auth = msbimage.RegistryAuth.basic("u", "secret")
    assert "secret" not in repr(auth) and auth == msbimage.RegistryAuth.basic("u", "secret")
    assert msbimage.RegistryAuth.bearer("t").to_data() == {"type": "bearer", "token": "t"}
    assert msbimage.RegistryAuth.anonymous().to_data() == {"type": "anonymous"}
    refresh = msbimage.RegistryAuth.identity_token("rt-secret", username="u")
    assert "rt-secret" not in repr(refresh)
    assert msbimage.RegistryAuth.identity_token("t").to_data()["username"] == ""
