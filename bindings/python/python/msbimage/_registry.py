"""Pulling: :class:`Registry` (its keyword arguments are the core's registry settings),
``pull``, ``pull_async`` and ``pull_iter``, and what they give back (:class:`PullResult`,
:class:`ImageConfig`)."""

from __future__ import annotations

import asyncio
import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Union

import json

from . import _native, events, reports
from ._config import ImageConfig
from ._data import core_json
from ._native import CancelToken, GlobalCache, Platform, Reference
from ._native import PullResult as NativeResult
from ._surface import PULL_ALIASES, PULL_DEFAULTS, REGISTRY_DEFAULTS
from .errors import ImageError
from .layers import LayerStack

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._options import PullOptions, RegistrySettings

#: A progress callback: called with each event, on a library thread, one call at a time.
ProgressCallback = Callable[[events.PullEvent], object]


class PullPolicy(enum.Enum):
    """When a pull contacts the registry (the core's ``PullPolicy``)."""

    #: Answer from the cache when the image is complete there; pull otherwise.
    IF_MISSING = "if-missing"
    #: Always fetch the manifest again; cached layers are reused by digest.
    ALWAYS = "always"
    #: Never touch the network: the image must be in the cache (else ``NotCachedError``).
    NEVER = "never"


@dataclass(frozen=True)
class PullResult:
    """What a pull produced."""

    #: The normalised reference pulled.
    reference: Reference
    #: The platform pulled for.
    platform: Platform
    #: Extracted layer trees (``…/layers/sha256/<diff_id>/fs``), bottom to top.
    layers: List[Path]
    #: The layers' uncompressed digests, parallel to ``layers``.
    layer_diff_ids: List[str]
    #: The image config.
    config: ImageConfig
    #: The config blob's digest (the image ID).
    config_digest: str
    #: The platform manifest's digest.
    manifest_digest: str
    #: The index's digest when the reference resolved through an index.
    index_digest: Optional[str]
    #: True when the answer came from the cache without contacting the registry.
    cached: bool
    #: Each layer's sidecar index file, parallel to ``layers``.
    layer_indexes: List[Path]
    #: Each layer's EROFS image, parallel to ``layers``: present when this pull or an earlier
    #: one of the layer had ``"erofs-layers"`` among its ``outputs``.
    layer_images: List[Path]
    #: The flat EROFS image of the whole image (its layers merged), when this pull had
    #: ``"erofs-flat"`` among its ``outputs``.
    flat_image: Optional[Path]
    _native: NativeResult = field(repr=False, compare=False)

    @classmethod
    def _from_native(cls, native: NativeResult) -> PullResult:
        data = native.data()
        return cls(
            **{
                **data,
                "reference": Reference.parse(data["reference"]),
                "platform": Platform.parse(data["platform"]),
                "layers": [Path(p) for p in data["layers"]],
                "layer_indexes": [Path(p) for p in data["layer_indexes"]],
                "layer_images": [Path(p) for p in data["layer_images"]],
                "flat_image": None if data["flat_image"] is None else Path(data["flat_image"]),
                "config": ImageConfig(**data["config"]),
            },
            _native=native,
        )

    def layer_stack(self) -> LayerStack:
        """The merged view of the image's layers (needs their indexes: ``IoError`` for an
        image pulled with ``build_index=False``)."""
        return LayerStack(self._native.layer_stack())

    def to_json(self) -> str:
        """The JSON document ``msbimage pull --json`` prints for this result."""
        return self._native.to_json()

    def unpack(
        self, dest: Union[str, "os.PathLike[str]"], *, rootless: Optional[bool] = None
    ) -> reports.UnpackReport:
        """Writes the image's merged root filesystem under ``dest`` (missing or an empty
        directory) as an ordinary tree: real symlinks, hardlinks, modes, times, xattrs, and
        owners when run as root. ``rootless`` (default: unless running as root) writes owners
        as ``user.rootlesscontainers`` xattrs and devices as empty files, as ``umoci unpack
        --rootless`` does. A destination that is not empty raises InvalidArgumentError."""
        report: reports.UnpackReport = self._native.unpack(dest, rootless)
        return report


def _ref(reference: Union[Reference, str]) -> str:
    return str(reference)


def _progress(progress: Optional[ProgressCallback]) -> Optional[Callable[[Any], None]]:
    if progress is None:
        return None

    def deliver(data: Any) -> None:
        progress(events.from_data(data))

    return deliver


class Registry:
    """Pulls images into a :class:`GlobalCache`.

    Keyword arguments are the core's registry settings (``RegistryConfig``), in snake_case:
    ``auth``, ``auth_for={host: auth}``, ``docker_config`` (False, True or a path),
    ``insecure_registries``, ``ca_files``, ``mirrors={registry: [mirror, …]}``,
    ``concurrency``, ``durable``, ``partial_min_size`` (bytes, or None), ``max_retries``,
    ``connect_timeout``, ``read_timeout``, ``max_retry_after`` (seconds), ``lock_timeout``
    (seconds, or None), ``cache_max_size`` (bytes, or None: collect after each pull that
    downloaded a layer, never evicting the image just pulled), ``cache_keep_recent``
    (seconds, or None) and ``limits`` (``max_entries``, …). An unknown name is a TypeError;
    a bad value an ``InvalidArgumentError``.
    """

    def __init__(
        self,
        platform: Optional[Platform] = None,
        cache: Union[GlobalCache, str, "os.PathLike[str]", None] = None,
        **settings: Unpack[RegistrySettings],
    ) -> None:
        if cache is None:
            default = _native.default_cache_path()
            if default is None:
                raise TypeError("Registry() needs a cache (HOME is not set)")
            cache = default
        if not isinstance(cache, GlobalCache):
            cache = GlobalCache(cache)
        config = core_json("Registry", settings, REGISTRY_DEFAULTS)
        self._native = _native.Registry(platform or Platform.host_linux(), cache, config)

    @property
    def platform(self) -> Platform:
        """The default target platform."""
        return self._native.platform

    @property
    def cache(self) -> GlobalCache:
        """The cache pulled into."""
        return self._native.cache

    def pull(
        self,
        reference: Union[Reference, str],
        *,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        **options: Unpack[PullOptions],
    ) -> PullResult:
        """Pulls an image and returns where its layers are. ``reference`` is a reference
        (``docker://`` optional) or an offline image: ``"oci-layout:DIR[:TAG|@DIGEST]"`` (or
        ``oci:``) or ``"docker-archive:FILE[:NAME:TAG]"``, pulled into the cache under its name
        through the same verification. Options are the core's pull
        options: ``pull_policy`` (``"if-missing"``, ``"always"``, ``"never"`` or a
        :class:`PullPolicy`), ``force``, ``build_index``, ``platform``.

        The GIL is released while the pull runs. ``progress`` is called with each event on a
        library thread, one call at a time; if it raises, the pull is cancelled and the
        exception is raised here. Ctrl-C (KeyboardInterrupt) and ``cancel.cancel()`` stop
        the pull; it returns once its partial files are removed.
        """
        native = self._native.pull(
            _ref(reference), core_json("pull", options, PULL_DEFAULTS, PULL_ALIASES), _progress(progress), cancel
        )
        return PullResult._from_native(native)

    async def pull_async(
        self,
        reference: Union[Reference, str],
        *,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        **options: Unpack[PullOptions],
    ) -> PullResult:
        """Like :meth:`pull`, awaited: the pull runs on the library's threads, not the event
        loop's. Cancelling the awaiting task cancels the pull (and waits for its cleanup)."""
        loop = asyncio.get_running_loop()
        token = cancel if cancel is not None else CancelToken()
        done: asyncio.Future[_native.PullResult] = loop.create_future()

        def settle(result: Optional[_native.PullResult], error: Optional[BaseException]) -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                assert result is not None
                done.set_result(result)

        def finished(result: Optional[_native.PullResult], error: Optional[BaseException]) -> None:
            # On a library thread.
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

        self._native.start(
            _ref(reference),
            core_json("pull_async", options, PULL_DEFAULTS, PULL_ALIASES),
            _progress(progress),
            token,
            finished,
        )
        try:
            native = await asyncio.shield(done)
        except asyncio.CancelledError:
            token.cancel()
            try:
                await done  # the pull stops once its workers have cleaned up
            except (ImageError, asyncio.CancelledError):
                pass
            raise
        return PullResult._from_native(native)

    def pull_iter(
        self,
        reference: Union[Reference, str],
        *,
        cancel: Optional[CancelToken] = None,
        **options: Unpack[PullOptions],
    ) -> PullIterator:
        """Starts a pull and returns an iterator over its events; the result is then
        ``.result``. Byte-count events of a slow reader are merged (milestones never are).
        Leaving a ``with`` block (or dropping the iterator) early cancels the pull."""
        native = self._native.pull_iter(
            _ref(reference), core_json("pull_iter", options, PULL_DEFAULTS, PULL_ALIASES), cancel
        )
        return PullIterator(native)

    def inspect(
        self, reference: Union[Reference, str], *, platform: Union[Platform, str, None] = None
    ) -> reports.RemoteImage:
        """What ``reference`` resolves to on its registry for ``platform`` (default: the
        registry's): its digest, an index's platforms, the chosen manifest, the config and
        the layers with their sizes, verified like a pull's first steps. No layer is
        downloaded and nothing is written to the cache."""
        image: reports.RemoteImage = self._native.inspect(_ref(reference), platform)
        return image

    def save(
        self,
        source: Union[Reference, str],
        target: Union[str, "os.PathLike[str]"],
        *,
        platform: Union[Platform, str, None] = None,
    ) -> reports.SaveReport:
        """Writes the image ``source`` names (as :meth:`pull` takes it) to ``target``, an
        OCI image layout (``"oci-layout:DIR[:TAG]"``) or a docker archive
        (``"docker-archive:FILE[:NAME:TAG]"``), for ``platform`` (default: the registry's),
        to carry it where no registry is. A registry image is fetched again (the cache keeps
        extracted layers, not blobs)."""
        saved: reports.SaveReport = self._native.save(_ref(source), os.fspath(target), platform)
        return saved

    def repair(self, report: reports.VerifyReport) -> reports.RepairReport:
        """Repairs what ``cache.verify()`` found: removes invalid image records, fetches the
        damaged images' manifests again (pinned to their digests) and rebuilds only their
        damaged layers. Images that cannot be repaired are listed in ``failed``. Verify again
        to confirm."""
        repaired: reports.RepairReport = self._native.repair(json.dumps(reports.to_data(report)))
        return repaired

    def __repr__(self) -> str:
        return f"Registry(platform={self.platform}, cache={self.cache.path})"


class PullIterator(Iterator[events.PullEvent]):
    """The events of a running pull (see :meth:`Registry.pull_iter`). The iteration raises
    the pull's error, if any, at its end."""

    def __init__(self, native: _native.PullIter) -> None:
        self._native = native
        self._result: Optional[PullResult] = None

    def __iter__(self) -> PullIterator:
        return self

    def __next__(self) -> events.PullEvent:
        data = next(self._native)
        return events.from_data(data)

    @property
    def result(self) -> PullResult:
        """The pull's result, once the iteration has ended (RuntimeError before)."""
        if self._result is None:
            self._result = PullResult._from_native(self._native.result())
        return self._result

    def cancel(self) -> None:
        """Cancels the pull; the iteration then ends with ``CancelledError``."""
        self._native.cancel()

    def close(self) -> None:
        """Cancels the pull if it is still running and waits for it to clean up."""
        self._native.cancel()
        try:
            for _ in self._native:
                pass
        except ImageError:
            pass

    def __enter__(self) -> PullIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
