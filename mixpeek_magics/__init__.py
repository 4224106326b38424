"""mixpeek-magics: Jupyter magics, widgets and a Python API for Mixpeek.

``import mixpeek_magics`` stays light: everything below is resolved on first
use, so pandas, ipywidgets, FastAPI and friends load only when needed.
"""
from __future__ import annotations

from mixpeek_magics._lazy import lazy_getattr
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY = {
    "Mixpeek": "mixpeek_magics.client:Mixpeek",
    "AsyncMixpeek": "mixpeek_magics.client:AsyncMixpeek",
    "errors": "mixpeek_magics.client:errors",
    "LocalServer": "mixpeek_magics.local:LocalServer",
    "watch": "mixpeek_magics.notebook.watch:watch",
    "attach_unfinished": "mixpeek_magics.notebook.watch:attach_unfinished",
    "bulk_upload": "mixpeek_magics.ingest:bulk_upload",
    # ``client`` is the subpackage; calling it, ``mixpeek_magics.client()``,
    # returns the signed-in client (see mixpeek_magics/client/__init__.py).
    "client": "mixpeek_magics.client:",
    "connect": "mixpeek_magics.notebook.connect_form:connect",
    "task_history": "mixpeek_magics.frames:task_history",
    "task_timeline": "mixpeek_magics.frames:task_timeline",
    "summarize": "mixpeek_magics.frames:summarize",
}

__all__ = sorted([*_LAZY, "load_ipython_extension", "unload_ipython_extension", "__version__"])


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mixpeek_magics``: register every magic."""
    from mixpeek_magics.notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from mixpeek_magics.notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)
