"""Parity with the core's API surface (``core/api-surface.json``): every error kind, event
type and field, registry setting and pull option is in the package, at run time and in the
stubs; the generated files are up to date; stubtest and ``mypy --strict`` pass."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Set

import pytest

import msbimage
from helpers import ROOT

PACKAGE_SRC = ROOT / "bindings" / "python" / "python" / "msbimage"
SURFACE_FILE = ROOT / "core" / "api-surface.json"


@pytest.fixture(scope="module")
def surface() -> Dict[str, Any]:
    return json.loads(SURFACE_FILE.read_text())


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _stub_classes(path: Path) -> Dict[str, Set[str]]:
    """Class name → annotated attribute names, from a stub file."""
    tree = ast.parse(path.read_text())
    out: Dict[str, Set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {
                n.target.id
                for n in node.body
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
            }
    return out


def _typed_dict_keys(path: Path, name: str) -> Set[str]:
    return _stub_classes(path)[name]


def test_the_native_module_carries_the_committed_surface(surface: Dict[str, Any]) -> None:
    assert json.loads(msbimage._native.api_surface()) == surface


def test_every_error_kind_is_a_class(surface: Dict[str, Any]) -> None:
    stub = _stub_classes(PACKAGE_SRC / "errors.pyi")
    for kind in surface["errorKinds"]:
        name = kind["name"] + "Error"
        cls = getattr(msbimage, name, None)
        assert cls is not None, f"msbimage lacks {name}"
        assert issubclass(cls, msbimage.ImageError) and cls.kind == kind["code"]
        assert name in stub, f"errors.pyi lacks {name}"
        assert name in msbimage.__all__


def test_every_event_and_field_is_there(surface: Dict[str, Any]) -> None:
    stub = _stub_classes(PACKAGE_SRC / "events.pyi")
    for event in surface["events"]:
        cls = getattr(msbimage.events, event["name"], None)
        assert cls is not None, f"msbimage.events lacks {event['name']}"
        assert cls.type == event["type"] and cls.milestone == event["milestone"]
        fields = [f["rustName"] for f in event["fields"]]
        assert [f.name for f in dataclasses.fields(cls)] == fields
        assert stub[event["name"]] == set(fields), f"events.pyi: {event['name']}"
        if sys.version_info >= (3, 10):
            assert cls.__match_args__ == tuple(fields)
        sample = {"type": event["type"], **{f["name"]: None for f in event["fields"]}}
        assert msbimage.events.from_data(sample).to_data() == sample


def test_every_registry_setting_is_a_keyword(surface: Dict[str, Any], tmp_path: Path) -> None:
    defaults = surface["registryConfig"]["defaults"]
    keys = _typed_dict_keys(PACKAGE_SRC / "_options.py", "RegistrySettings")
    cache = msbimage.GlobalCache(tmp_path)
    for key, default in defaults.items():
        name = _snake(key)
        assert name in keys, f"RegistrySettings lacks {name}"
        # Accepted at run time, with the core's default as its value.
        msbimage.Registry(msbimage.Platform.host_linux(), cache, **{name: default})
    assert keys == {_snake(k) for k in defaults}


def test_every_pull_option_is_a_keyword(
    surface: Dict[str, Any], client: msbimage.Registry
) -> None:
    defaults = surface["pullOptions"]["defaults"]
    aliases = surface["pullOptions"]["aliases"]
    keys = _typed_dict_keys(PACKAGE_SRC / "_options.py", "PullOptions")
    assert keys == {_snake(k) for k in [*defaults, *aliases]}
    for key, default in defaults.items():
        options = {"pull_policy": "never", _snake(key): default}
        if key == "pullPolicy":
            options[_snake(key)] = "never"
        with pytest.raises(msbimage.NotCachedError):
            client.pull("localhost:1/none:latest", **options)
    assert {p.value for p in msbimage.PullPolicy} == {"if-missing", "always", "never"}


def test_pull_result_and_config_fields_match_the_core(client: msbimage.Registry, registry: Any) -> None:
    native = client._native.pull(registry.ref("fixtures/standard:none"), "{}")
    data = native.data()
    fields = {f.name for f in dataclasses.fields(msbimage.PullResult)} - {"_native"}
    assert set(data) == fields
    assert set(data["config"]) == {f.name for f in dataclasses.fields(msbimage.ImageConfig)}


def test_generated_files_are_up_to_date(surface: Dict[str, Any]) -> None:
    path = ROOT / "bindings" / "python" / "tools" / "gen_surface.py"
    spec = importlib.util.spec_from_file_location("gen_surface", path)
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for file, text in gen.outputs(surface).items():
        assert file.read_text() == text, f"{file} is stale: run {path}"


def _run(*args: str, cwd: Path = ROOT) -> "subprocess.CompletedProcess[str]":
    env = {**os.environ, "MYPY_CACHE_DIR": str(ROOT / "target" / "mypy-cache")}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_stubtest() -> None:
    allowlist = ROOT / "bindings" / "python" / "stubtest-allowlist.txt"
    out = _run(
        "-m", "mypy.stubtest", "msbimage", "--allowlist", str(allowlist),
        "--ignore-unused-allowlist",
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_on_the_package_and_an_example() -> None:
    example = ROOT / "bindings" / "python" / "examples" / "pull.py"
    for target in (["-p", "msbimage"], [str(example)]):
        out = _run("-m", "mypy", "--strict", *target)
        assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_rejects_misspelt_settings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import msbimage\n"
        "r = msbimage.Registry(msbimage.Platform.host_linux(), msbimage.GlobalCache('/tmp/x'),"
        " concurency=2)\n"
        "r.pull('alpine', pull_policy='never', forse=True)\n"
        "msbimage.Registry(msbimage.Platform.host_linux(), msbimage.GlobalCache('/tmp/x'),"
        " durable='yes')\n"
    )
    out = _run("-m", "mypy", "--strict", str(bad))
    assert out.returncode == 1
    for word in ["concurency", "forse", "durable"]:
        assert word in out.stdout, out.stdout


def test_the_example_runs(registry: Any, tmp_path: Path) -> None:
    example = ROOT / "bindings" / "python" / "examples" / "pull.py"
    ref = registry.ref("fixtures/standard:gzip")
    out = _run(str(example), ref, str(tmp_path / "cache"), "linux/amd64")
    assert out.returncode == 0, out.stderr
    assert "/etc/abs-link -> /usr/bin/tool" in out.stdout
    assert "entrypoint: ['/usr/bin/tool']" in out.stdout
    assert "3 layers" in out.stderr
