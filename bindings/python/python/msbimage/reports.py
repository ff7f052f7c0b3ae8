"""The cache's reports: one frozen dataclass per report type of the core (``CachedImage``,
``CachedLayer``, ``ImageUsage``, ``DiskUsage``, ``RemovedImage``, ``GcReport``), built at
import from the core's report schemas, so they match the core's declaration by construction.
``GlobalCache.images()``, ``layers()``, ``disk_usage()``, ``remove_image()`` and ``gc()``
return them; attributes are snake_case (``report.removed_layers``), digests are ``str``,
times are seconds since the Unix epoch. ``ImageUsage`` is a ``CachedImage`` with its byte
counts. ``reports.pyi`` declares the same classes for type checkers; a test keeps it in
step."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type

from . import _native
from ._config import ImageConfig
from ._surface import CACHE_REPORTS


class Report:
    """Base class of every cache report."""

    #: (JSON field name, Python attribute name, schema type) of each field, base fields first.
    _fields: ClassVar[Tuple[Tuple[str, str, str], ...]] = ()


_SCALARS: Dict[str, Any] = {"string": str, "digest": str, "u64": int, "bool": bool}
#: Types of report fields that are not reports: built from their data by keyword.
_CLASSES: Dict[str, Any] = {"ImageConfig": ImageConfig}

#: The report class of each core report type name.
BY_NAME: Dict[str, Type[Report]] = {}


def _annotation(schema_type: str) -> Any:
    if schema_type.endswith("?"):
        return Optional[_annotation(schema_type[:-1])]
    base = schema_type[:-2] if schema_type.endswith("[]") else schema_type
    py = _SCALARS.get(base) or _CLASSES.get(base) or BY_NAME[base]
    return List[py] if schema_type.endswith("[]") else py


for _report in CACHE_REPORTS:
    _base: Type[Report] = BY_NAME[_report["extends"]] if _report["extends"] else Report
    _own = tuple((f["name"], f["rustName"], f["type"]) for f in _report["fields"])
    _cls = dataclasses.make_dataclass(
        _report["name"],
        [(f["rustName"], _annotation(f["type"])) for f in _report["fields"]],
        bases=(_base,),
        frozen=True,
        namespace={"__doc__": _report["doc"], "_fields": _base._fields + _own},
    )
    _cls.__module__ = __name__
    BY_NAME[_report["name"]] = _cls
    globals()[_cls.__name__] = _cls


def from_data(schema_type: str, data: Any) -> Any:
    """The core's JSON data of ``schema_type`` (``"GcReport"``, ``"CachedImage[]"``,
    ``"digest"``) as Python objects."""
    if schema_type.endswith("[]"):
        return [from_data(schema_type[:-2], item) for item in data]
    if schema_type.endswith("?"):
        return None if data is None else from_data(schema_type[:-1], data)
    if schema_type in _CLASSES:
        return _CLASSES[schema_type](**data)
    cls = BY_NAME.get(schema_type)
    if cls is None:
        return data
    return cls(**{name: from_data(ty, data[json_name]) for json_name, name, ty in cls._fields})


def to_data(report: Report) -> Dict[str, Any]:
    """A report as the core's JSON data (what ``from_data`` reads): how ``Registry.repair``
    hands a ``VerifyReport`` back to the core."""
    return {json_name: _to_data(getattr(report, name)) for json_name, name, _ in report._fields}


def _to_data(value: Any) -> Any:
    if isinstance(value, Report):
        return to_data(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_to_data(v) for v in value]
    return value


_native.set_report_decoder(from_data)

__all__ = ["Report", *(c.__name__ for c in BY_NAME.values())]
