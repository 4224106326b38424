"""``mixpeek_magics.watch()``: the tracking engine with a live display attached.

The engine (layer 2) knows nothing about widgets; this glue picks the display
(a widget board in a widget front end, text elsewhere), shows it in the
current cell, names the tasks' buckets, and records which cell started the
watch in the journal.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from mixpeek_magics import tracking
from mixpeek_magics.notebook import display
from mixpeek_magics.tracking.snapshot import TaskSnapshot

#: Where a board points for the failed items of a blocking watch: ``wait()`` warns with their names.
WARNING_HINT = "listed in the warning below"


def _signed_in_client() -> Any:
    from mixpeek_magics.notebook import session

    return session.signed_in_client()


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


def task_refs(tasks: Any) -> tuple[list[Any], dict[str, str] | None]:
    """What ``tracking.watch`` takes, from ids, Task objects, results with ``.task_id``,
    and anything holding task ids: an ``IngestResult`` (``.tasks``), a watch handle or
    ``TaskFailedError`` (``.task_ids``); and the names its objects go by (``item_names()``)."""
    items = list(tasks) if isinstance(tasks, (list, tuple, set)) else [tasks]
    refs: list[Any] = []
    names: dict[str, str] = {}
    for item in items:
        if isinstance(item, (str, bytes, Mapping)) or hasattr(item, "task_id"):
            refs.append(item)
        else:
            ids = getattr(item, "task_ids", None)
            if ids is None:
                ids = getattr(item, "tasks", None)
            if isinstance(ids, (list, tuple)):
                if not ids:
                    raise ValueError(
                        f"nothing to watch: this {type(item).__name__} started no task"
                        + (" (nothing new to process)" if hasattr(item, "item_names") else "")
                    )
                refs.extend(ids)
            else:
                refs.append(item)  # tracking.task_ids_of says what is wrong with it
        known = getattr(item, "item_names", None)
        if callable(known):
            known = known()
        if isinstance(known, Mapping):
            names.update(known)
    return refs, names or None


class BucketNames:
    """An observer in front of a display: tasks the engine labels with ids
    (``"bkt_… / btch_…"``) are labelled with their bucket's name instead.

    Each bucket is looked up once per watch (``client.buckets.get``), on a thread
    of its own so the engine is never held up; the display gets the names with the
    next update (or at once, re-sent, when the lookup answers). Labels a caller
    chose (``context={"label": ...}``) are kept.
    """

    #: How long the final update waits for lookups still running, in seconds.
    FINISH_WAIT = 3.0

    def __init__(self, observer: Any, client: Any) -> None:
        self.observer = observer
        self.client = client
        self.names: dict[str, str | None] = {}  # bucket id -> name (None: unknown, keep the id)
        self._pending: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._last: tuple[list[TaskSnapshot], str] | None = None
        self._finished = False

    def __getattr__(self, name: str) -> Any:  # the display's own attributes (finished, text, ...)
        if name == "observer":
            raise AttributeError(name)
        return getattr(self.observer, name)

    def _label(self, snap: TaskSnapshot) -> TaskSnapshot:
        if not snap.bucket_id or snap.label != " / ".join(x for x in (snap.bucket_id, snap.batch_id) if x):
            return snap
        with self._lock:
            known = snap.bucket_id in self.names
            name = self.names.get(snap.bucket_id)
            start = not known and snap.bucket_id not in self._pending
            if start:
                self._pending[snap.bucket_id] = threading.Event()
        if start:
            threading.Thread(
                target=self._lookup, args=(snap.bucket_id,), daemon=True, name="mixpeek-magics-bucket-name"
            ).start()
        return replace(snap, label=f"bucket {name}") if name else snap

    def _lookup(self, bucket_id: str) -> None:
        name = None
        try:
            bucket = self.client.buckets.get(bucket_id)
            if inspect.isawaitable(bucket):  # an AsyncMixpeek: its pool belongs to another loop
                getattr(bucket, "close", lambda: None)()
            else:
                name = getattr(bucket, "bucket_name", None) or None
        except Exception:  # noqa: BLE001 - not ours to read, gone, offline, odd answer: the id stays
            name = None
        with self._lock:
            self.names[bucket_id] = name
            done = self._pending.pop(bucket_id)
            last, finished = self._last, self._finished
        done.set()
        if name and last is not None and not finished:
            self.on_update(*last)

    def on_update(self, snapshots: Sequence[TaskSnapshot], connection: str = "ok") -> None:
        snaps = list(snapshots)
        with self._lock:
            if self._finished:
                return
            self._last = (snaps, connection)
        self.observer.on_update([self._label(s) for s in snaps], connection)

    def on_finish(self, snapshots: Sequence[TaskSnapshot]) -> None:
        snaps = list(snapshots)
        labelled = [self._label(s) for s in snaps]
        with self._lock:
            self._finished = True
            waiting = list(self._pending.values())
        for event in waiting:  # the final state should carry the names
            event.wait(self.FINISH_WAIT)
        if waiting:
            labelled = [self._label(s) for s in snaps]
        self.observer.on_finish(labelled)


def _start(
    start: Callable[..., Any],
    client: Any,
    mode: str,
    title: str | None,
    show: bool,
    source: str,
    kwargs: dict[str, Any],
    failure_hint: str | None = None,
) -> Any:
    handle_box: list[Any] = []

    def cancel(task_id: str) -> None:
        if handle_box:
            handle_box[0].cancel(task_id)

    board = display.make_display(mode=mode, on_cancel=cancel, title=title, failure_hint=failure_hint)
    if show:
        display.show(board)
    kwargs.setdefault("context", cell_context(source))
    if "policy" not in kwargs:  # %config MixpeekMagics: poll cap and progress cadence
        from mixpeek_magics.notebook.magics import options

        kwargs["policy"] = options.current().poll_policy()
    client = client if client is not None else _signed_in_client()
    handle = start(client, observers=[BucketNames(board, client)], **kwargs)
    if handle is not None:
        handle_box.append(handle)
        handle.display = board
    return handle


def watch(
    tasks: Any,
    *,
    client: Any = None,
    block: bool = True,
    mode: str = "auto",
    title: str | None = None,
    raise_on_failure: bool = True,
    show: bool = True,
    **kwargs: Any,
) -> tracking.WatchHandle:
    """Watch tasks with a live board: task ids, Task objects, results with ``.task_id``
    (``bulk_upload``'s), an ``IngestResult`` (``%%ingest -o result``) or anything with
    ``.task_ids``.

    ``block=True`` waits until every task is finished and raises
    ``TaskFailedError`` if one FAILED (so headless runs fail) and warns
    ``PartialFailureWarning`` (with the failed items) for COMPLETED_WITH_ERRORS;
    ``block=False`` returns the handle at once and the board keeps updating while
    other cells run. ``client`` defaults to the ``%mixpeek_auth`` session.
    """
    refs, names = task_refs(tasks)
    if names and "item_names" not in kwargs:
        kwargs["item_names"] = names

    def start(c: Any, **kw: Any) -> tracking.WatchHandle:
        return tracking.watch(refs, client=c, block=False, **kw)

    handle = _start(
        start, client, mode, title, show, "mixpeek_magics.watch()", kwargs, failure_hint=WARNING_HINT if block else None
    )
    if block:
        handle.wait(raise_on_failure=raise_on_failure)
    return handle


def attach_unfinished(
    client: Any = None,
    *,
    block: bool = False,
    mode: str = "auto",
    title: str | None = None,
    show: bool = True,
    **kwargs: Any,
) -> tracking.WatchHandle | None:
    """Re-attach a board to the tasks the journal saw unfinished (e.g. after a
    kernel restart); ``None`` when there are none."""

    def start(c: Any, **kw: Any) -> tracking.WatchHandle | None:
        return tracking.attach_unfinished(c, block=False, **kw)

    handle = _start(
        start,
        client,
        mode,
        title or "Re-attached tasks",
        show,
        "attach_unfinished()",
        kwargs,
        failure_hint=WARNING_HINT if block else None,
    )
    if handle is not None and block:
        handle.wait()
    return handle
