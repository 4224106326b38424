"""``mixpeek_magics.watch()``: the tracking engine with a live display attached.

The engine (layer 2) knows nothing about widgets; this glue picks the display
(a widget board in a widget front end, text elsewhere), shows it in the
current cell, and records which cell started the watch in the journal.
"""
from __future__ import annotations

from typing import Any, Callable

from mixpeek_magics import tracking
from mixpeek_magics.notebook import display


def _signed_in_client() -> Any:
    from mixpeek_magics.notebook import session

    return session.client()


def cell_context(source: str | None = None) -> dict[str, Any]:
    """Where this watch was started (cell, notebook path), for the journal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return {"source": source} if source else {}
    shell = get_ipython()
    if shell is None:
        return {"source": source} if source else {}
    from mixpeek_magics.notebook.magics._common import provenance

    return provenance(shell, source or "mixpeek_magics.watch()")


def _start(start: Callable[..., Any], client: Any, mode: str, title: str | None, show: bool,
           source: str, kwargs: dict[str, Any]) -> Any:
    handle_box: list[Any] = []

    def cancel(task_id: str) -> None:
        if handle_box:
            handle_box[0].cancel(task_id)

    board = display.make_display(mode=mode, on_cancel=cancel, title=title)
    if show:
        display.show(board)
    kwargs.setdefault("context", cell_context(source))
    if "policy" not in kwargs:  # %config MixpeekMagics: poll cap and progress cadence
        from mixpeek_magics.notebook.magics import options

        kwargs["policy"] = options.current().poll_policy()
    handle = start(client if client is not None else _signed_in_client(), observers=[board], **kwargs)
    if handle is not None:
        handle_box.append(handle)
        handle.display = board
    return handle


def watch(tasks: Any, client: Any = None, *, block: bool = True, mode: str = "auto", title: str | None = None,
          raise_on_failure: bool = True, show: bool = True, **kwargs: Any) -> tracking.WatchHandle:
    """Watch tasks (ids, Task objects, results with ``.task_id``) with a live board.

    ``block=True`` waits until every task is finished and raises
    ``TaskFailedError`` if one FAILED (so headless runs fail); ``block=False``
    returns the handle at once and the board keeps updating while other
    cells run. ``client`` defaults to the ``%mixpeek_auth`` session.
    """
    def start(c: Any, **kw: Any) -> tracking.WatchHandle:
        return tracking.watch(c, tasks, block=False, **kw)

    handle = _start(start, client, mode, title, show, "mixpeek_magics.watch()", kwargs)
    if block:
        handle.wait(raise_on_failure=raise_on_failure)
    return handle


def attach_unfinished(client: Any = None, *, block: bool = False, mode: str = "auto", title: str | None = None,
                      show: bool = True, **kwargs: Any) -> tracking.WatchHandle | None:
    """Re-attach a board to the tasks the journal saw unfinished (e.g. after a
    kernel restart); ``None`` when there are none."""
    def start(c: Any, **kw: Any) -> tracking.WatchHandle | None:
        return tracking.attach_unfinished(c, block=False, **kw)

    handle = _start(start, client, mode, title or "Re-attached tasks", show, "attach_unfinished()", kwargs)
    if handle is not None and block:
        handle.wait()
    return handle
