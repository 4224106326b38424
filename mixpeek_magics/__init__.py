"""mixpeek-magics: Jupyter magics, widgets and a Python API for Mixpeek.

``import mixpeek_magics`` stays light: everything below is resolved on first
use, so pandas, ipywidgets, FastAPI and friends load only when needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mixpeek_magics._lazy import lazy_getattr
from mixpeek_magics._version import __version__ as __version__

if TYPE_CHECKING:  # what editors and type checkers resolve the lazy names to
    from mixpeek_magics import client as client
    from mixpeek_magics.client import AsyncMixpeek as AsyncMixpeek, Mixpeek as Mixpeek, errors as errors
    from mixpeek_magics.frames import (
        summarize as summarize,
        task_history as task_history,
        task_timeline as task_timeline,
    )
    from mixpeek_magics.ingest import bulk_upload as bulk_upload
    from mixpeek_magics.local import LocalServer as LocalServer
    from mixpeek_magics.notebook.connect_form import connect as connect
    from mixpeek_magics.notebook.session import signed_in_client as signed_in_client
    from mixpeek_magics.notebook.watch import attach_unfinished as attach_unfinished, watch as watch

# public name -> "module:attribute"
_LAZY = {
    "Mixpeek": "mixpeek_magics.client:Mixpeek",
    "AsyncMixpeek": "mixpeek_magics.client:AsyncMixpeek",
    "errors": "mixpeek_magics.client:errors",
    "LocalServer": "mixpeek_magics.local:LocalServer",
    "watch": "mixpeek_magics.notebook.watch:watch",
    "attach_unfinished": "mixpeek_magics.notebook.watch:attach_unfinished",
    "bulk_upload": "mixpeek_magics.ingest:bulk_upload",
    "client": "mixpeek_magics.client:",
    "signed_in_client": "mixpeek_magics.notebook.session:signed_in_client",
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
