"""The native half of msbimage (Rust, pyo3). Use the ``msbimage`` package instead."""

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, final

__version__: str

__all__ = [
    "CancelToken",
    "GlobalCache",
    "LayerStack",
    "Platform",
    "PullIter",
    "PullResult",
    "Reference",
    "Registry",
    "RegistryAuth",
    "__version__",
    "api_surface",
    "default_cache_path",
    "set_error_classes",
]

def api_surface() -> str:
    """The core's API surface document (JSON)."""

def default_cache_path() -> Path | None:
    """The default cache directory, or None when HOME is not set."""

def set_error_classes(classes: Mapping[str, type[BaseException]]) -> None:
    """Registers the exception class of each error kind code (done by the package)."""

@final
class Platform:
    """A target platform: OS, CPU architecture and optional variant, normalised
    (``Platform("linux", "x86_64")`` is ``linux/amd64``)."""

    def __new__(cls, os: str, architecture: str, variant: str | None = None) -> Platform: ...
    @staticmethod
    def host_linux() -> Platform:
        """Linux on the architecture of this machine."""
    @staticmethod
    def parse(s: str) -> Platform:
        """Parses ``os/arch[/variant]`` (``"linux/arm/v7"``); raises InvalidArgumentError."""
    @property
    def os(self) -> str:
        """The operating system (``linux``)."""
    @property
    def architecture(self) -> str:
        """The architecture as OCI names it (``amd64``, ``arm64``, ``arm``, …)."""
    @property
    def variant(self) -> str | None:
        """The variant (``v7``), or None."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Reference:
    """An image reference, normalised (``alpine`` is ``docker.io/library/alpine:latest``)."""

    def __new__(cls, s: str) -> Reference: ...
    @staticmethod
    def parse(s: str) -> Reference:
        """Parses ``[registry/]repository[:tag][@digest]``; raises InvalidReferenceError."""
    @property
    def registry(self) -> str:
        """The registry (``docker.io``, ``localhost:5000``)."""
    @property
    def repository(self) -> str:
        """The repository (``library/alpine``)."""
    @property
    def tag(self) -> str | None:
        """The tag, or None."""
    @property
    def digest(self) -> str | None:
        """The digest (``sha256:…``), or None."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class GlobalCache:
    """The shared image cache at a directory (created if needed)."""

    def __new__(cls, path: str | os.PathLike[str]) -> GlobalCache: ...
    @property
    def path(self) -> Path:
        """The cache's root directory (absolute)."""

@final
class RegistryAuth:
    """Credentials for a registry: anonymous, basic (user and password or token) or a bearer
    token. Secrets never show in repr()."""

    @staticmethod
    def anonymous() -> RegistryAuth:
        """No credentials."""
    @staticmethod
    def basic(username: str, password: str) -> RegistryAuth:
        """A user name and a password (or access token)."""
    @staticmethod
    def bearer(token: str) -> RegistryAuth:
        """A ready bearer token, sent as is."""
    def to_data(self) -> dict[str, str]:
        """These credentials as the core's settings data (``{"type": "basic", …}``)."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class CancelToken:
    """Cancels the pulls it is given to, from any thread: they stop, clean up, and raise
    CancelledError."""

    def __new__(cls) -> CancelToken: ...
    def cancel(self) -> None:
        """Cancels every pull holding this token (idempotent)."""
    @property
    def cancelled(self) -> bool:
        """Whether cancel() was called."""

@final
class Registry:
    def __new__(cls, platform: Platform, cache: GlobalCache, config_json: str) -> Registry: ...
    @property
    def platform(self) -> Platform: ...
    @property
    def cache(self) -> GlobalCache: ...
    def pull(
        self,
        reference: str,
        options_json: str,
        progress: Callable[[Any], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> PullResult: ...
    def start(
        self,
        reference: str,
        options_json: str,
        progress: Callable[[Any], None] | None,
        cancel: CancelToken,
        done: Callable[[PullResult | None, BaseException | None], None],
    ) -> None: ...
    def pull_iter(
        self, reference: str, options_json: str, cancel: CancelToken | None = None
    ) -> PullIter: ...

@final
class PullIter:
    def __iter__(self) -> PullIter: ...
    def __next__(self) -> dict[str, Any]: ...
    def result(self) -> PullResult: ...
    def cancel(self) -> None: ...

@final
class PullResult:
    def data(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def layer_stack(self) -> LayerStack: ...

@final
class LayerStack:
    @staticmethod
    def open(index_paths: list[str]) -> LayerStack: ...
    def __len__(self) -> int: ...
    def stat(self, path: bytes) -> dict[str, Any]: ...
    def get(self, path: bytes) -> dict[str, Any] | None: ...
    def read_dir(self, path: bytes) -> list[dict[str, Any]]: ...
    def readlink(self, path: bytes) -> bytes: ...
    def xattrs(self, path: bytes) -> dict[bytes, bytes]: ...
    def walk(self) -> list[tuple[bytes, dict[str, Any]]]: ...
    def verify(self) -> None: ...
    @property
    def layer_trees(self) -> list[Path]: ...
