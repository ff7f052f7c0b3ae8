"""The merged view of an image's layers (:class:`LayerStack`), answered from the layers'
sidecar indexes without touching the host trees: ``stat``, ``read_dir``, ``readlink``,
``xattrs``, ``walk``, and where each entry's content lives on the host."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native

#: A path inside the image: ``"etc/hosts"``, ``"/etc/hosts"`` (slashes at either end do not
#: matter; ``""`` and ``"/"`` are the root), as str, bytes or a path-like object.
ImagePath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class EntryKind(enum.Enum):
    """What an entry is (the core's ``EntryKind`` variant names)."""

    FILE = "File"
    DIR = "Dir"
    SYMLINK = "Symlink"
    CHAR_DEVICE = "CharDevice"
    BLOCK_DEVICE = "BlockDevice"
    FIFO = "Fifo"
    WHITEOUT = "Whiteout"


@dataclass(frozen=True)
class Entry:
    """One visible entry of the merged view, with the image's own metadata (not the host
    file's: on the host a symlink is a regular file holding its target, devices are empty
    files, owners and modes may differ)."""

    #: The last path component (``""`` for the root).
    name: str
    #: The path inside the image, without leading slash (``"etc/hosts"``).
    path: str
    #: What the entry is.
    kind: EntryKind
    #: Full mode, file type bits included (``0o100644``).
    mode: int
    #: Owner.
    uid: int
    #: Group.
    gid: int
    #: Size in bytes (a symlink's target length; 0 for directories and special files).
    size: int
    #: Link count inside the entry's layer.
    nlink: int
    #: Device number of a character or block device (kernel ``new_encode_dev`` form).
    rdev: int
    #: Modification time in nanoseconds since the epoch.
    mtime_ns: int
    #: Inode of the extracted file on the host (0 if unknown).
    inode: int
    #: Position of the layer the entry comes from (0 = bottom).
    layer: int
    #: Whether this directory hides the lower layers' contents.
    opaque: bool
    #: Whether the entry shares its inode with another entry of its layer.
    hardlink: bool
    #: A symlink's target, as stored (not resolved); None for other kinds.
    link_target: Optional[str]
    #: Where the content lives on the host (for a directory: the layer giving its metadata).
    host_path: Optional[Path]

    @property
    def mtime(self) -> float:
        """Modification time in seconds since the epoch."""
        return self.mtime_ns / 1e9

    @property
    def permissions(self) -> int:
        """The permission bits (``mode & 0o7777``)."""
        return self.mode & 0o7777

    def is_dir(self) -> bool:
        """Whether the entry is a directory."""
        return self.kind is EntryKind.DIR

    def is_file(self) -> bool:
        """Whether the entry is a regular file."""
        return self.kind is EntryKind.FILE

    def is_symlink(self) -> bool:
        """Whether the entry is a symbolic link."""
        return self.kind is EntryKind.SYMLINK

    @classmethod
    def _from_data(cls, data: Mapping[str, Any]) -> Entry:
        target = data["link_target"]
        return cls(
            **{
                **data,
                "name": os.fsdecode(data["name"]),
                "path": os.fsdecode(data["path"]),
                "kind": EntryKind(data["kind"]),
                "link_target": None if target is None else os.fsdecode(target),
            }
        )


def _encode(path: ImagePath) -> bytes:
    return os.fsencode(path)


class LayerStack:
    """The layers of an image, bottom to top, seen as one tree: upper layers win, whiteouts
    hide, opaque directories cut off the layers below. Immutable; safe to share between
    threads. Lookups raise ``NotFoundError`` for a path that is not visible and ``IoError``
    for an index that breaks the format."""

    def __init__(self, native: _native.LayerStack) -> None:
        self._native = native

    @classmethod
    def open(cls, index_paths: Sequence[Union[str, "os.PathLike[str]"]]) -> LayerStack:
        """Opens the index files of an image's layers (bottom to top); each layer's tree is
        the ``fs`` directory beside its index."""
        return cls(_native.LayerStack.open([os.fspath(p) for p in index_paths]))

    def __len__(self) -> int:
        return len(self._native)

    @property
    def layer_trees(self) -> List[Optional[Path]]:
        """The host directories of the layers, bottom to top (None for a layer without one:
        pulled with ``outputs=["erofs-layers"]`` only, its EROFS image is its only copy)."""
        return self._native.layer_trees

    def stat(self, path: ImagePath) -> Entry:
        """The entry at ``path`` (symlinks are not followed); ``NotFoundError`` if none."""
        return Entry._from_data(self._native.stat(_encode(path)))

    def get(self, path: ImagePath) -> Optional[Entry]:
        """The entry at ``path``, or None."""
        data = self._native.get(_encode(path))
        return None if data is None else Entry._from_data(data)

    def exists(self, path: ImagePath) -> bool:
        """Whether ``path`` is visible in the merged view."""
        return self._native.get(_encode(path)) is not None

    def read_dir(self, path: ImagePath) -> List[Entry]:
        """The entries of the directory at ``path``, sorted by name; ``NotFoundError`` if
        none, ``InvalidArgumentError`` if it is not a directory."""
        return [Entry._from_data(d) for d in self._native.read_dir(_encode(path))]

    def readlink(self, path: ImagePath) -> str:
        """The target of the symbolic link at ``path``; ``InvalidArgumentError`` if it is
        not one."""
        return os.fsdecode(self._native.readlink(_encode(path)))

    def xattrs(self, path: ImagePath) -> Dict[str, bytes]:
        """The extended attributes of the entry at ``path`` (``security.capability``, …)."""
        return {os.fsdecode(k): v for k, v in self._native.xattrs(_encode(path)).items()}

    def host_path(self, path: ImagePath) -> Path:
        """Where the content of the entry at ``path`` lives on the host (open regular files
        there for reading; the trees are shared and must not be modified). Raises
        ``InvalidArgumentError`` when its layer has no tree (pulled as its EROFS image
        alone)."""
        found = self.stat(path).host_path
        if found is None:
            from .errors import BY_KIND

            raise BY_KIND["INVALID_ARGUMENT"](
                f"{path!r}: its layer has no tree (pulled with outputs ['erofs-layers'] only)"
            )
        return found

    def walk(self) -> Iterator[Tuple[str, Entry]]:
        """Every visible ``(path, entry)``, the root (``""``) first, each directory before
        its contents, siblings sorted by name."""
        for path, data in self._native.walk():
            yield os.fsdecode(path), Entry._from_data(data)

    def verify(self) -> None:
        """Checks every index completely, so that no later lookup can fail."""
        self._native.verify()

    def __repr__(self) -> str:
        return f"<LayerStack of {len(self)} layers>"
