"""Choose a progress display for the current environment: widgets or text.

``make_display()`` returns a ``WatchObserver``: a ``TaskBoard`` widget when
running in a kernel whose front end can render widgets (ipykernel's
``ZMQInteractiveShell`` and ipywidgets importable), a ``TextProgress``
otherwise (terminal IPython, plain Python, ``MIXPEEK_MAGICS_WIDGETS=0``).

From inside a kernel one cannot tell nbconvert, papermill or an editor without
a widget manager from JupyterLab; there the widget still carries a text/plain
progress repr and leaves a static HTML summary when the watch finishes.

This module does not import ipywidgets (nor IPython) until a widget is needed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

__all__ = [
    "ENV_VAR",
    "widgets_disabled_by_env",
    "in_widget_kernel",
    "choose_mode",
    "make_display",
    "show",
    "kernel_shell",
    "current_parent",
    "headless_kernel",
    "same_cell",
    "print_in_cell",
]

ENV_VAR = "MIXPEEK_MAGICS_WIDGETS"
_FALSE = {"0", "false", "no", "off"}


def widgets_disabled_by_env() -> bool:
    return os.environ.get(ENV_VAR, "").strip().lower() in _FALSE


def _shell() -> Any:
    """The running IPython shell, without importing IPython if nobody did."""
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except Exception:
        return None
    return get_ipython()


def kernel_shell() -> Any:
    """The ipykernel shell (``ZMQInteractiveShell``), or None outside a kernel."""
    shell = _shell()
    if shell is None or not any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__):
        return None
    return shell


def current_parent() -> dict | None:
    """The header of the request whose outputs this thread writes to (the running cell)."""
    shell = kernel_shell()
    if shell is None:
        return None
    try:
        header = shell.display_pub.parent_header
        return dict(header) if header else None
    except Exception:
        return None


def same_cell(parent: dict | None) -> bool:
    """True while the request of ``parent`` (a header from ``current_parent``) still runs here."""
    now = current_parent()
    if not parent or not now:
        return False
    return (parent.get("header") or parent).get("msg_id") == (now.get("header") or now).get("msg_id")


def headless_kernel() -> bool:
    """True in a kernel whose client cannot answer input (papermill, nbconvert, nbclient):
    nobody watches the outputs live, so a log is all that is read of them."""
    shell = kernel_shell()
    if shell is None:
        return False
    return not getattr(getattr(shell, "kernel", None), "_allow_stdin", False)


def print_in_cell(text: str, parent: dict | None, stream: TextIO | None = None) -> None:
    """Print ``text`` into the output of the cell ``parent`` ran (from any thread)."""
    shell = kernel_shell()
    token = None
    if shell is not None and parent and hasattr(shell, "set_thread_parent"):
        try:
            token = shell.set_thread_parent(parent)
        except Exception:
            token = None
    try:
        print(text, file=stream or sys.stdout, flush=True)
    finally:
        if token is not None:
            shell.reset_thread_parent(token)


def in_widget_kernel() -> bool:
    """True in an ipykernel (ZMQInteractiveShell) with ipywidgets importable."""
    shell = _shell()
    if shell is None:
        return False
    if not any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__):
        return False
    if "ipykernel" not in sys.modules and importlib.util.find_spec("ipykernel") is None:
        return False
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):
        return False


def choose_mode(mode: str = "auto") -> str:
    """``"widget"`` or ``"text"`` for the requested mode."""
    if mode not in ("auto", "widget", "text"):
        raise ValueError(f"display mode must be 'auto', 'widget' or 'text', not {mode!r}")
    if mode != "auto":
        return mode
    if widgets_disabled_by_env():
        return "text"
    return "widget" if in_widget_kernel() else "text"


def make_display(
    *,
    mode: str = "auto",
    on_cancel: Callable[[str], None] | None = None,
    stream: TextIO | None = None,
    title: str | None = None,
    **options: Any,
) -> Any:
    """A progress observer for the environment (see module doc).

    ``options`` go to the chosen class: ``TaskBoard(max_rows=, collapse_threshold=,
    min_interval=)`` or ``TextProgress(interval=, tty=, width=)``.
    """
    if choose_mode(mode) == "widget":
        from mixpeek_magics.notebook.progress import TaskBoard

        return TaskBoard(on_cancel=on_cancel, title=title, **options)
    from mixpeek_magics.notebook.textprogress import TextProgress

    return TextProgress(stream, title=title, on_cancel=on_cancel, **options)


def show(observer: Any) -> Any:
    """Display ``observer`` in the current output (widgets only) and return it.

    A text display writes to its stream by itself, so it is returned unchanged.
    """
    if hasattr(observer, "_ipython_display_") and _shell() is not None:
        from IPython.display import display

        display(observer)
    return observer
