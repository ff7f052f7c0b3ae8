"""Progress events: one frozen dataclass per event type of the core (``Resolving``,
``LayerDownloadProgress``, …), built at import from the core's event schema, so they match
the core's declaration by construction. Use them with ``isinstance`` or ``match``::

    match event:
        case LayerDownloadProgress(layer_index=i, downloaded_bytes=n):
            ...

``events.pyi`` declares the same classes for type checkers; a test keeps it in step."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple, Type, Union

from ._surface import EVENTS


class PullEvent:
    """Base class of every progress event. ``type`` is the event's tag in the core's JSON
    form (``"layerDownloadProgress"``); ``milestone`` says whether it is always delivered
    (byte counts are not: a newer one may replace them)."""

    type: ClassVar[str] = ""
    milestone: ClassVar[bool] = False
    #: (JSON field name, Python attribute name) of each field.
    _fields: ClassVar[Tuple[Tuple[str, str], ...]] = ()

    def to_data(self) -> Dict[str, Any]:
        """The event in the core's JSON form (``{"type": …, "layerIndex": …}``)."""
        data: Dict[str, Any] = {"type": self.type}
        for json_name, name in self._fields:
            data[json_name] = getattr(self, name)
        return data


_TYPES: Dict[str, Any] = {"string": str, "digest": str, "u64": int, "bool": bool}


def _annotation(schema_type: str) -> Any:
    optional = schema_type.endswith("?")
    base = _TYPES[schema_type.rstrip("?")]
    return Optional[base] if optional else base


#: The event class of each JSON type tag.
BY_TYPE: Dict[str, Type[PullEvent]] = {}

for _event in EVENTS:
    _cls = dataclasses.make_dataclass(
        _event["name"],
        [(f["rustName"], _annotation(f["type"])) for f in _event["fields"]],
        bases=(PullEvent,),
        frozen=True,
        namespace={
            "__doc__": _event["doc"],
            "type": _event["type"],
            "milestone": _event["milestone"],
            "_fields": tuple((f["name"], f["rustName"]) for f in _event["fields"]),
        },
    )
    _cls.__module__ = __name__
    BY_TYPE[_event["type"]] = _cls
    globals()[_cls.__name__] = _cls


#: Any of the event classes (for exhaustive ``match`` statements).
AnyPullEvent = Union[tuple(BY_TYPE.values())]  # type: ignore[valid-type]


def from_data(data: Mapping[str, Any]) -> PullEvent:
    """The event object for the core's JSON form of an event."""
    cls = BY_TYPE[data["type"]]
    return cls(**{name: data[json_name] for json_name, name in cls._fields})


__all__ = ["PullEvent", "AnyPullEvent", *(c.__name__ for c in BY_TYPE.values())]
