"""Exceptions: :class:`ImageError` and one subclass per core error kind (``NotCachedError``,
``AuthError``, …), built at import from the core's list of kinds, so a kind added in the core
is a class here without any change. Each carries ``.kind`` (the stable code, e.g.
``"NOT_CACHED"``) and, where known, the ``.image`` and ``.layer`` (diff_id) it concerns.
``errors.pyi`` declares the same classes for type checkers; a test keeps it in step."""

from __future__ import annotations

from typing import ClassVar, Dict, Optional, Type

from . import _native
from ._surface import ERROR_KINDS


class ImageError(Exception):
    """Base class of every error msbimage raises. ``kind`` is the stable code of the error's
    kind (``"NOT_CACHED"``); ``message`` names the image and the layer."""

    #: The stable code of this class's kind (``"NOT_CACHED"``).
    kind: ClassVar[str] = ""
    #: The exit status of ``python -m msbimage`` (and of the Rust CLI) for this kind.
    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        message: str,
        *,
        image: Optional[str] = None,
        layer: Optional[str] = None,
        blob: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        #: The whole message.
        self.message = message
        #: The image reference the error concerns, if any.
        self.image = image
        #: The diff_id of the layer that failed, if one did.
        self.layer = layer
        #: The compressed blob's digest, when a layer failed while its blob was pulled.
        self.blob = blob

    def report(self) -> Dict[str, Optional[str]]:
        """The error as the core reports it as data (what ``--json`` prints under
        ``"error"``)."""
        return {
            "kind": self.kind,
            "message": self.message,
            "image": self.image,
            "layer": self.layer,
            "blob": self.blob,
        }

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.message, self.image, self.layer, self.blob))


def _rebuild(
    cls: Type[ImageError],
    message: str,
    image: Optional[str],
    layer: Optional[str],
    blob: Optional[str],
) -> ImageError:
    return cls(message, image=image, layer=layer, blob=blob)


#: The exception class of each kind code: ``{"NOT_CACHED": NotCachedError, …}``.
BY_KIND: Dict[str, Type[ImageError]] = {}

for _kind in ERROR_KINDS:
    _cls = type(
        f"{_kind['name']}Error",
        (ImageError,),
        {
            "__doc__": _kind["doc"],
            "__module__": __name__,
            "kind": _kind["code"],
            "exit_code": _kind["exitCode"],
        },
    )
    BY_KIND[_kind["code"]] = _cls
    globals()[_cls.__name__] = _cls

_native.set_error_classes(BY_KIND)

__all__ = ["ImageError", *(c.__name__ for c in BY_KIND.values())]
