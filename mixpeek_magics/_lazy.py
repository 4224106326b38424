"""Lazy module attributes (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, namespace: dict[str, Any], targets: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``name -> "module:attribute"`` (or
    ``"module"`` / ``"module:"`` for the module itself) on first access and
    caching the value in the module's ``namespace``."""

    def __getattr__(name: str) -> Any:
        target = targets.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        value = getattr(module, attr) if attr else module
        namespace[name] = value
        return value

    return __getattr__
