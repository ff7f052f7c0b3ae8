"""The native half of msbimage (Rust, pyo3). Use the ``msbimage`` package instead."""

import datetime
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, final

from .reports import (
    CachedImage,
    CachedLayer,
    DiskUsage,
    GcReport,
    RemoteImage,
    RepairReport,
    SaveReport,
    UnpackReport,
    VerifyReport,
)

__version__: str

__all__ = [
    "CancelToken",
    "GlobalCache",
    "LayerLease",
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
    "set_report_decoder",
]

def api_surface() -> str:
    """The core's API surface document (JSON)."""

def default_cache_path() -> Path | None:
    """The default cache directory, or None when HOME is not set."""

def set_error_classes(classes: Mapping[str, type[BaseException]]) -> None:
    """Registers the exception class of each error kind code (done by the package)."""

def set_report_decoder(decode: Callable[[str, Any], Any]) -> None:
    """Registers the function that turns report data into report objects (done by the
    package)."""

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

    def __new__(
        cls, path: str | os.PathLike[str], *, group: str | int | None = None, read_only: bool = False
    ) -> GlobalCache:
        """Opens (creating it unless ``read_only``) the cache at ``path``. ``group``: share it
        read-only with this group (name or gid: directories ``2750``, files ``0640``).
        ``read_only``: a reader that never writes (the cache may belong to another user);
        calls that would write raise ReadOnlyError."""
    @property
    def path(self) -> Path:
        """The cache's root directory (absolute)."""
    @property
    def read_only(self) -> bool:
        """Whether the cache was opened read-only."""
    def verify(self, references: list[str | Reference] | None = None) -> VerifyReport:
        """Checks every layer's tree against its index and content digests, and the images'
        records and manifests (only the images ``references`` name, and their layers, when
        given). Reports damage; changes nothing."""
    def images(self) -> list[CachedImage]:
        """The images in the cache, sorted by name (blocking; the GIL is released)."""
    def layers(self) -> list[CachedLayer]:
        """The layers in the cache, with their size and the names of the images that hold
        them (walks every layer tree)."""
    def disk_usage(self) -> DiskUsage:
        """Bytes per image (exclusive and shared), per layer, unreferenced and in ``tmp/``."""
    def remove_image(self, reference: str | Reference, platform: str | Platform | None = None) -> GcReport:
        """Removes the image (for ``platform``, or every platform it was pulled for) and the
        layers only it held, unless someone holds them (``in_use_layers``). Raises
        InvalidReferenceError for a malformed reference, NotFoundError when the cache does
        not hold the image."""
    def gc(
        self,
        *,
        dry_run: bool = False,
        max_size: int | None = None,
        keep_recent: float | datetime.timedelta | None = None,
    ) -> GcReport:
        """Collects garbage: debris, layers and manifests no image refers to, and the images
        the policy evicts (least recently used first until the layers take at most
        ``max_size`` bytes; never one used within ``keep_recent`` seconds; ``keep_recent``
        alone evicts every other image). ``dry_run`` reports and removes nothing. A bad value
        raises InvalidArgumentError."""
    def hold_layer(self, diff_id: str) -> LayerLease:
        """Holds the layer ``diff_id`` (``sha256:…``) until the lease is released: ``gc``,
        ``remove_image`` and forced pulls, in any process, leave its tree alone."""

@final
class LayerLease:
    """A held layer: no process deletes its tree while the lease is held. Use it as a context
    manager, or call ``release()``; garbage collection releases a forgotten one."""

    @property
    def diff_id(self) -> str:
        """The held layer's diff_id (``sha256:…``)."""
    @property
    def released(self) -> bool:
        """Whether ``release()`` was called (or the ``with`` block ended)."""
    def release(self) -> None:
        """Lets go of the layer (idempotent); it stays held while anything else holds it."""
    def __enter__(self) -> LayerLease: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...

@final
class RegistryAuth:
    """Credentials for a registry: anonymous, basic (user and password or token), a bearer
    token or an identity token. Secrets never show in repr()."""

    @staticmethod
    def anonymous() -> RegistryAuth:
        """No credentials."""
    @staticmethod
    def basic(username: str, password: str) -> RegistryAuth:
        """A user name and a password (or access token)."""
    @staticmethod
    def bearer(token: str) -> RegistryAuth:
        """A ready bearer token, sent as is."""
    @staticmethod
    def identity_token(token: str, username: str | None = None) -> RegistryAuth:
        """An OAuth2 refresh token (Docker's ``identitytoken``), exchanged for access tokens."""
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
        source: str,
        options_json: str,
        progress: Callable[[Any], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> PullResult: ...
    def start(
        self,
        source: str,
        options_json: str,
        progress: Callable[[Any], None] | None,
        cancel: CancelToken,
        done: Callable[[PullResult | None, BaseException | None], None],
    ) -> None: ...
    def pull_iter(
        self, source: str, options_json: str, cancel: CancelToken | None = None
    ) -> PullIter: ...
    def inspect(
        self, reference: str | Reference, platform: str | Platform | None = None
    ) -> RemoteImage: ...
    def save(
        self, source: str, target: str, platform: str | Platform | None = None
    ) -> SaveReport: ...
    def repair(self, report_json: str) -> RepairReport: ...

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
    def unpack(self, dest: str | os.PathLike[str], rootless: bool | None = None) -> UnpackReport: ...

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
    def layer_trees(self) -> list[Path | None]: ...
