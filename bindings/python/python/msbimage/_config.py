"""The runtime part of an image's config (:class:`ImageConfig`): what ``PullResult.config``
and ``RemoteImage.config`` hold. Built from the core's ``ImageConfig`` data, whose field names
it shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image's config."""

    #: ``KEY=value`` environment entries.
    env: List[str]
    #: Default command (arguments to the entrypoint).
    cmd: Optional[List[str]]
    #: Entrypoint.
    entrypoint: Optional[List[str]]
    #: Working directory.
    working_dir: Optional[str]
    #: ``user[:group]``, by name or id.
    user: Optional[str]
    #: Exposed ports such as ``80/tcp``, sorted.
    exposed_ports: List[str]
    #: Volume mount points, sorted.
    volumes: List[str]
    #: Labels.
    labels: Dict[str, str]
    #: Signal that stops the container, e.g. ``SIGTERM``.
    stop_signal: Optional[str]
    #: Operating system the image is built for.
    os: str
    #: CPU architecture the image is built for.
    architecture: str
    #: CPU variant, if any.
    variant: Optional[str] = None
