"""The merged view, checked against the layer trees the Rust CLI reports for the same image:
an overlay of those trees computed here, from the files on the host and the image metadata
the extractor keeps in the ``user.containers.override_stat`` xattr."""

from __future__ import annotations

import gc
import json
import os
import stat
import struct
from pathlib import Path
from typing import Dict, Tuple

import pytest

import msbimage
from msbimage import EntryKind
from helpers import Served, rust_cli

OVERRIDE = "user.containers.override_stat"
IMPLICIT = "user.msb.implicit"
WHITEOUT = "user.msb.whiteout"
OPAQUE = "user.msb.opaque"

Meta = Tuple[str, int, int, int, int, str]  # kind, mode, uid, gid, size, symlink target


def _kind(mode: int) -> str:
    return {
        stat.S_IFREG: "File",
        stat.S_IFDIR: "Dir",
        stat.S_IFLNK: "Symlink",
        stat.S_IFCHR: "CharDevice",
        stat.S_IFBLK: "BlockDevice",
        stat.S_IFIFO: "Fifo",
    }[stat.S_IFMT(mode)]


def _meta(path: Path) -> Meta:
    """An extracted file's image metadata, from the host file and its override xattr."""
    raw = os.getxattr(path, OVERRIDE, follow_symlinks=False)
    _version, uid, gid, mode, _rdev = struct.unpack("<B3xIIII", raw)
    kind = _kind(mode)
    target = path.read_bytes().decode() if kind == "Symlink" else ""
    size = len(target) if kind == "Symlink" else (path.stat().st_size if kind == "File" else 0)
    return kind, mode, uid, gid, size, target


def overlay(trees: list[Path]) -> Dict[str, Meta]:
    """The merged tree of ``trees`` (bottom to top) with overlay rules, reading the cache's
    tree format 2 (``core/src/cache/LAYOUT.md``): upper wins, a file marked
    ``user.msb.whiteout`` hides the name in the layers below, a directory marked
    ``user.msb.opaque`` cuts them off."""
    merged: Dict[str, Meta] = {}
    for tree in trees:
        entries: Dict[str, Meta] = {}
        hidden: set[str] = set()
        opaque: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(tree):
            rel_dir = os.path.relpath(dirpath, tree)
            rel_dir = "" if rel_dir == "." else rel_dir
            for name in sorted(dirnames + filenames):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                path = Path(dirpath) / name
                if _has_xattr(path, WHITEOUT):
                    hidden.add(rel)
                    continue
                if _has_xattr(path, OPAQUE):
                    opaque.add(rel)
                entries[rel] = _meta(path)
        for gone in hidden:
            merged = {p: m for p, m in merged.items() if p != gone and not p.startswith(gone + "/")}
        for cut in opaque:
            merged = {p: m for p, m in merged.items() if not p.startswith(cut + "/")}
        for path, meta in entries.items():
            lower = merged.get(path)
            if lower and lower[0] != "Dir" or meta[0] != "Dir":
                merged = {p: m for p, m in merged.items() if not p.startswith(path + "/")}
            implicit = meta[0] == "Dir" and _is_implicit(tree / path)
            merged[path] = lower if implicit and lower else meta
    return merged


def _has_xattr(path: Path, name: str) -> bool:
    try:
        os.getxattr(path, name, follow_symlinks=False)
        return True
    except OSError:
        return False


def _is_implicit(path: Path) -> bool:
    try:
        os.getxattr(path, IMPLICIT, follow_symlinks=False)
        return True
    except OSError:
        return False


@pytest.fixture
def pulled(client: msbimage.Registry, registry: Served, cache_dir: Path) -> msbimage.PullResult:
    return client.pull(registry.ref("fixtures/standard:gzip"))


def test_walk_matches_the_overlay_of_the_rust_clis_layers(
    pulled: msbimage.PullResult, registry: Served, cache_dir: Path
) -> None:
    cli = rust_cli(
        "inspect", registry.ref("fixtures/standard:gzip"), "--cache", str(cache_dir),
        "--platform", "linux/amd64",
    )
    assert cli.returncode == 0, cli.stderr
    trees = [Path(p) for p in json.loads(cli.stdout)["layers"]]
    assert trees == pulled.layers
    expected = overlay(trees)

    stack = pulled.layer_stack()
    assert len(stack) == 3 and stack.layer_trees == trees
    ours: Dict[str, Meta] = {}
    for path, entry in stack.walk():
        if path == "":
            continue
        assert entry.path == path and entry.name == path.rsplit("/", 1)[-1]
        target = entry.link_target or ""
        ours[path] = (entry.kind.value, entry.mode, entry.uid, entry.gid, entry.size, target)
        if entry.kind is EntryKind.FILE:
            assert entry.host_path is not None
            assert entry.host_path == trees[entry.layer] / path
            assert entry.host_path.stat().st_size == entry.size
    assert ours == expected
    assert len(ours) > 30


def test_lookups(pulled: msbimage.PullResult) -> None:
    stack = pulled.layer_stack()
    stack.verify()
    hosts = stack.stat("etc/overwritten")
    assert (hosts.size, hosts.layer, hosts.kind, hosts.mode) == (13, 1, EntryKind.FILE, 0o100644)
    assert stack.stat("/etc/overwritten/") == hosts
    assert stack.stat(b"etc/overwritten") == hosts and stack.stat(Path("etc/overwritten")) == hosts
    assert hosts.permissions == 0o644 and hosts.is_file() and not hosts.is_dir()
    assert hosts.host_path is not None and hosts.host_path.read_bytes() == b"from layer 2\n"
    assert stack.host_path("etc/overwritten") == hosts.host_path
    assert hosts.mtime == hosts.mtime_ns / 1e9

    for gone in ["etc/to-delete", "opaque/old-a", "no/such/file"]:
        assert stack.get(gone) is None and not stack.exists(gone)
        with pytest.raises(msbimage.NotFoundError):
            stack.stat(gone)
    assert [e.name for e in stack.read_dir("opaque")] == ["new"]
    assert "to-delete" not in [e.name for e in stack.read_dir("/etc")]
    with pytest.raises(msbimage.InvalidArgumentError, match="not a directory"):
        stack.read_dir("etc/overwritten")

    link = stack.stat("etc/abs-link")
    assert link.is_symlink() and link.link_target == "/usr/bin/tool"
    assert stack.readlink("usr/bin/rel-link") == "tool"
    with pytest.raises(msbimage.InvalidArgumentError, match="not a symbolic link"):
        stack.readlink("usr/bin/tool")

    assert stack.xattrs("app/xattr-file") == {"user.test": b"hello"}
    assert stack.xattrs("app/hello.txt") == {}
    owned = stack.stat("home/user/owned")
    assert (owned.uid, owned.gid) == (1000, 1000)
    assert stack.stat("usr/bin/suid").mode == 0o104755
    assert stack.stat("tmp").mode == 0o41777
    dev = stack.stat("dev/null")
    assert dev.kind is EntryKind.CHAR_DEVICE and dev.rdev != 0
    assert stack.stat("dev/fifo").kind is EntryKind.FIFO
    assert stack.stat("usr/bin/tool-hardlink").hardlink
    assert stack.stat("opaque").opaque
    root = stack.stat("/")
    assert root.is_dir() and root.path == "" and stack.stat("") == root


def test_stack_from_index_paths_and_without_indexes(
    pulled: msbimage.PullResult, client: msbimage.Registry, registry: Served
) -> None:
    stack = msbimage.LayerStack.open(pulled.layer_indexes)
    assert stack.stat("app/hello.txt") == pulled.layer_stack().stat("app/hello.txt")
    no_index = client.pull(registry.ref("fixtures/multi:latest"), build_index=False)
    with pytest.raises(msbimage.IoError, match="build_index"):
        no_index.layer_stack()


def test_a_stack_keeps_its_layers_from_gc_after_the_result_is_gone(
    client: msbimage.Registry, registry: Served, cache_dir: Path
) -> None:
    stack = client.pull(registry.ref("fixtures/standard:gzip")).layer_stack()
    gc.collect()  # the result is gone; the stack holds the layers' leases
    trees = stack.layer_trees
    forget = rust_cli("rm", registry.ref("fixtures/standard:gzip"), "--cache", str(cache_dir), "--json")
    assert forget.returncode == 0, forget.stderr
    removed = json.loads(forget.stdout)["removed"][0]
    assert removed["removedLayers"] == [] and len(removed["inUseLayers"]) == 3
    assert all(t.is_dir() for t in trees)
    assert stack.stat("etc/overwritten").size > 0
    del stack
    gc.collect()
    collect = rust_cli("gc", "--cache", str(cache_dir), "--json")
    assert collect.returncode == 0, collect.stderr
    assert len(json.loads(collect.stdout)["removedLayers"]) == 3
    assert not any(t.exists() for t in trees)
