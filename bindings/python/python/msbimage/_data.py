"""Keyword arguments to the core's JSON: the one generic conversion through which Python
settings and pull options reach the core's serde structs (``RegistryConfig``,
``PullOptions``). Names go from snake_case to camelCase; values become JSON data. A new core
setting is accepted here without any change."""

from __future__ import annotations

import enum
import json
import os
from typing import Any, Mapping, Optional

from ._native import Platform, Reference, RegistryAuth


def camel(name: str) -> str:
    """``insecure_registries`` → ``insecureRegistries``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    """``insecureRegistries`` → ``insecure_registries``."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def to_data(value: Any, default: Any = None) -> Any:
    """A Python value as the core's JSON data. A mapping given for a setting whose default
    is a settings object (``limits``) has its keys converted like keyword names; other
    mappings (``auth_for``, ``mirrors``: keyed by registry) keep theirs."""
    if isinstance(value, RegistryAuth):
        return value.to_data()
    if isinstance(value, (Platform, Reference)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        if isinstance(default, dict) and default:
            return {camel(str(k)): to_data(v, default.get(camel(str(k)))) for k, v in value.items()}
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_data(v) for v in value]
    return value


def core_json(
    caller: str,
    kwargs: Mapping[str, object],
    defaults: Mapping[str, Any],
    aliases: Optional[Mapping[str, str]] = None,
) -> str:
    """The JSON object of the core settings named by ``kwargs``. None means "the default".
    An unknown name is a TypeError, as for any Python function; an alias the core lists
    (``policy`` for ``pull_policy``) goes through under its own name."""
    aliases = aliases or {}
    data = {}
    for key, value in kwargs.items():
        name = camel(key)
        option = aliases.get(name, name)
        if option not in defaults or snake(name) != key:
            raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")
        if value is not None:
            data[name] = to_data(value, defaults[option])
    return json.dumps(data)
