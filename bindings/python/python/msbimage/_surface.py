"""The core's API surface (error kinds, event types, settings and pull options with their
defaults), read once from the native module: every list the package builds classes or
checks keyword arguments from comes from here, never from a copy kept in Python."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from . import _native

SURFACE: Dict[str, Any] = json.loads(_native.api_surface())

#: Every error kind: ``{"name": "NotCached", "code": "NOT_CACHED", "exitCode": 3, "doc": …}``.
ERROR_KINDS: List[Dict[str, Any]] = SURFACE["errorKinds"]

#: Every progress event type with its fields (``name`` in JSON, ``rustName`` in Python).
EVENTS: List[Dict[str, Any]] = SURFACE["events"]

#: Every registry setting (camelCase) with its default.
REGISTRY_DEFAULTS: Dict[str, Any] = SURFACE["registryConfig"]["defaults"]

#: Every pull option (camelCase) with its default.
PULL_DEFAULTS: Dict[str, Any] = SURFACE["pullOptions"]["defaults"]

#: Other names the core takes for pull options (alias → option), e.g. ``policy``.
PULL_ALIASES: Dict[str, str] = SURFACE["pullOptions"].get("aliases", {})

#: Every report type of the cache's life cycle with its fields (``name`` in JSON, ``rustName``
#: in Python) and the report it extends, each after the ones it refers to.
CACHE_REPORTS: List[Dict[str, Any]] = SURFACE["cacheReports"]

#: Every gc policy key (camelCase) with its default.
GC_DEFAULTS: Dict[str, Any] = SURFACE["gcPolicy"]["defaults"]
