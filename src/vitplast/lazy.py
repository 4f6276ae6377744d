"""Lazy public names of a package (PEP 562), so that importing it does not pay for torch and friends."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, table: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__``: ``name`` is imported from module ``table[name]`` on first use and cached in
    ``namespace`` (the package's ``globals()``), so later lookups are plain attribute reads."""

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
