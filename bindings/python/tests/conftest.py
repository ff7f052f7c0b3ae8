"""Fixtures: loopback registries started once per session (``msbimage-testkit serve``,
anonymous and with basic auth) and a fresh cache per test."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import msbimage  # noqa: E402
from helpers import Served, serve, tmp_entries  # noqa: E402


@pytest.fixture(scope="session")
def registry() -> Iterator[Served]:
    served = serve()
    yield served
    served.stop()


@pytest.fixture(scope="session")
def basic_registry() -> Iterator[Served]:
    served = serve("--basic", "user:pass")
    yield served
    served.stop()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "cache"
    yield path
    # Results hold leases on their layers, and a tree a forced pull replaced stays in tmp/
    # until the last result holding that layer is gone: collect the test's results (some sit
    # in reference cycles of exception tracebacks) before checking.
    gc.collect()
    if (path / "tmp").is_dir():
        assert tmp_entries(path) == [], "a pull left staging files behind"


@pytest.fixture
def client(cache_dir: Path) -> msbimage.Registry:
    """A registry client for linux/amd64 (the fixtures' platform) on a fresh cache."""
    return msbimage.Registry(
        msbimage.Platform("linux", "amd64"), msbimage.GlobalCache(cache_dir), durable=False
    )
