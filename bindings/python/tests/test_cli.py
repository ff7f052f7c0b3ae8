"""``python -m msbimage`` against the Rust CLI: the same result JSON, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import msbimage
from helpers import Served, rust_cli


def py_cli(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "msbimage", *args], capture_output=True, text=True, timeout=300
    )


def test_pull_json_is_the_rust_clis(registry: Served, cache_dir: Path) -> None:
    ref = registry.ref("fixtures/standard:gzip")
    common: List[str] = ["--cache", str(cache_dir), "--platform", "linux/amd64"]
    cold = py_cli("pull", ref, *common, "--progress", "plain")
    assert cold.returncode == 0, cold.stderr
    assert "layer 2: extracted" in cold.stderr and "3 layers" in cold.stderr
    assert str(cache_dir) in cold.stdout and "cached:   no" in cold.stdout

    ours = py_cli("pull", ref, *common, "--json")
    theirs = rust_cli("pull", ref, *common, "--json", "--progress", "none")
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    assert ours.stdout == theirs.stdout
    doc = json.loads(ours.stdout)
    assert doc["cached"] is True and len(doc["layers"]) == 3
    assert doc["manifest_digest"] == registry.manifests["fixtures/standard:gzip"]

    inspect = py_cli("inspect", ref, *common)
    assert inspect.stdout == rust_cli("inspect", ref, *common).stdout == ours.stdout


def test_errors_and_exit_codes_are_the_rust_clis(registry: Served, cache_dir: Path) -> None:
    common = ["--cache", str(cache_dir)]
    amd64 = ["--platform", "linux/amd64"]
    for args in [
        ["pull", "Not A/Reference", "--json", *amd64],
        ["pull", registry.ref("fixtures/standard:zstd"), "--policy", "never", "--json", *amd64],
        ["pull", registry.ref("fixtures/multi:latest"), "--platform", "linux/s390x", "--json"],
    ]:
        ours = py_cli(*args, *common)
        theirs = rust_cli(*args, *common)
        assert ours.returncode == theirs.returncode != 0, (args, ours.stderr, theirs.stderr)
        report = json.loads(ours.stdout)["error"]
        assert report["kind"] == type(msbimage.errors.BY_KIND[report["kind"]]("")).kind
        # (The Rust CLI prints no JSON for a reference it cannot parse.)
        if theirs.stdout:
            assert json.loads(ours.stdout) == json.loads(theirs.stdout)
        assert ours.stderr.startswith("msbimage: error: ")
        assert ours.stderr.splitlines()[-1] == theirs.stderr.splitlines()[-1]
    assert msbimage.NotCachedError.exit_code == 3
