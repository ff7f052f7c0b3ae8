"""msbimage: pull OCI images into a shared, content-addressed cache, with a lookup index per
layer, from Python.

    import msbimage
    cache = msbimage.GlobalCache("/tmp/msb-cache")
    registry = msbimage.Registry(msbimage.Platform.host_linux(), cache)
    result = registry.pull("docker.io/library/alpine:latest")
    print(result.layers, result.config.entrypoint)

The native module (``msbimage._native``, the Rust core through pyo3) does the work; this
package gives it Python's idiom: dataclasses, enums, one exception class per error kind,
progress events usable with ``match``, ``asyncio`` and ``python -m msbimage``.
"""

from __future__ import annotations

from . import events
from ._native import CancelToken, GlobalCache, Platform, Reference, RegistryAuth
from ._native import __version__ as __version__
from ._options import PullOptions, RegistrySettings
from ._registry import (
    ImageConfig,
    ProgressCallback,
    PullIterator,
    PullPolicy,
    PullResult,
    Registry,
)
from . import errors
from .errors import *  # ImageError and one class per core error kind
from .events import *  # PullEvent and one class per core event type
from .layers import Entry, EntryKind, ImagePath, LayerStack

__all__ = [
    "CancelToken",
    "Entry",
    "EntryKind",
    "GlobalCache",
    "ImageConfig",
    "ImagePath",
    "LayerStack",
    "Platform",
    "ProgressCallback",
    "PullIterator",
    "PullOptions",
    "PullPolicy",
    "PullResult",
    "Reference",
    "Registry",
    "RegistryAuth",
    "RegistrySettings",
    "errors",
    "events",
]
__all__ += errors.__all__
__all__ += events.__all__
