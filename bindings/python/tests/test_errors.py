"""Every error kind of the core reaches Python as its own exception class, with its code, the
image and the layer."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import msbimage
from helpers import Pusher, Served, gzip_bytes, sha256, tar_of


def test_one_class_per_kind_under_image_error() -> None:
    surface = json.loads(msbimage._native.api_surface())
    for kind in surface["errorKinds"]:
        cls = getattr(msbimage, kind["name"] + "Error")
        assert issubclass(cls, msbimage.ImageError)
        assert cls.kind == kind["code"] and cls.exit_code == kind["exitCode"]
        assert cls.__doc__ == kind["doc"]
        assert msbimage.errors.BY_KIND[kind["code"]] is cls
    e = msbimage.NotCachedError("x: not cached", image="x")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is msbimage.NotCachedError and back.image == "x"
    assert e.report() == {
        "kind": "NOT_CACHED",
        "message": "x: not cached",
        "image": "x",
        "layer": None,
        "blob": None,
    }


def test_argument_reference_io_and_not_found(client: msbimage.Registry, registry: Served) -> None:
    with pytest.raises(msbimage.InvalidReferenceError) as ref_error:
        client.pull("Not A/Reference")
    assert ref_error.value.kind == "INVALID_REFERENCE"
    with pytest.raises(msbimage.InvalidReferenceError):
        msbimage.Reference.parse("lower/Case")
    with pytest.raises(msbimage.InvalidArgumentError) as arg_error:
        msbimage.Platform.parse("linux")
    assert arg_error.value.kind == "INVALID_ARGUMENT"
    with pytest.raises(msbimage.InvalidArgumentError):
        client.pull(registry.ref("fixtures/standard:gzip"), platform="linux")
    with pytest.raises(msbimage.IoError) as io_error:
        msbimage.GlobalCache("/dev/null/cache")
    assert "/dev/null/cache" in io_error.value.message
    stack = client.pull(registry.ref("fixtures/standard:gzip")).layer_stack()
    with pytest.raises(msbimage.NotFoundError) as missing:
        stack.stat("etc/to-delete")
    assert missing.value.kind == "NOT_FOUND" and "/etc/to-delete" in str(missing.value)


def test_not_cached_platform_registry_auth_cancelled(
    client: msbimage.Registry, registry: Served, basic_registry: Served
) -> None:
    gzip_ref = registry.ref("fixtures/standard:gzip")
    with pytest.raises(msbimage.NotCachedError):
        client.pull(gzip_ref, pull_policy="never")
    with pytest.raises(msbimage.PlatformNotFoundError) as platform:
        client.pull(registry.ref("fixtures/multi:latest"), platform="linux/s390x")
    assert "s390x" in platform.value.message
    assert platform.value.image == registry.ref("fixtures/multi:latest")
    with pytest.raises(msbimage.RegistryError) as missing_tag:
        client.pull(registry.ref("fixtures/standard:no-such-tag"))
    assert missing_tag.value.kind == "REGISTRY"
    with pytest.raises(msbimage.AuthError):
        client.pull(basic_registry.ref("fixtures/standard:gzip"))
    token = msbimage.CancelToken()
    token.cancel()
    with pytest.raises(msbimage.CancelledError) as cancelled:
        client.pull(gzip_ref, cancel=token)
    assert cancelled.value.image == gzip_ref


def test_digest_extraction_and_unsupported(client: msbimage.Registry, registry: Served) -> None:
    push = Pusher(registry.host)
    layer_tar = tar_of({"hello.txt": b"hello\n"})
    layer = gzip_bytes(layer_tar)

    # The config names another diff_id than the layer's tar hashes to.
    push.image("bad/diffid", "v1", [layer], [sha256(b"something else")])
    with pytest.raises(msbimage.DigestMismatchError) as mismatch:
        client.pull(registry.ref("bad/diffid:v1"))
    assert mismatch.value.layer == sha256(b"something else")
    assert mismatch.value.layer in mismatch.value.message

    # A "gzip" layer that is not gzip.
    garbage = b"this is not a gzip stream at all" * 10
    push.image("bad/layer", "v1", [garbage], [sha256(b"whatever")])
    with pytest.raises(msbimage.ExtractionError) as extraction:
        client.pull(registry.ref("bad/layer:v1"))
    assert extraction.value.image == registry.ref("bad/layer:v1")
    assert extraction.value.blob == sha256(garbage)

    # A config that is not JSON.
    push.image("bad/config", "v1", [layer], [sha256(layer_tar)], config=b"not json")
    with pytest.raises(msbimage.UnsupportedError):
        client.pull(registry.ref("bad/config:v1"))

    # The good image from the same pieces pulls.
    push.image("good/image", "v1", [layer], [sha256(layer_tar)])
    result = client.pull(registry.ref("good/image:v1"))
    assert (result.layers[0] / "hello.txt").read_bytes() == b"hello\n"


def test_errors_raised_in_native_code_keep_their_class(tmp_path: Path) -> None:
    # A missing index file when opening a stack: IoError naming the layer.
    with pytest.raises(msbimage.IoError, match="layer 0"):
        msbimage.LayerStack.open([tmp_path / "layers" / "sha256" / "x" / "index"])
    assert msbimage.InternalError.kind == "INTERNAL"
