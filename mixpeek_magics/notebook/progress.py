"""ipywidgets progress displays: ``TaskProgress`` (one task) and ``TaskBoard`` (many).

Both implement the ``WatchObserver`` protocol (``on_update(snapshots,
connection)``, ``on_finish(snapshots)``) and may be driven from any thread, at
any rate: updates are coalesced by a ``Throttle`` into at most ~10 front-end
updates a second (``flush_count`` counts them), and the final state is always
flushed by ``on_finish``. The display only ever changes widget trait values,
so a widget updates in place in the cell that displayed it.

A displayed widget comes with a live text twin that front ends without widgets
show (refreshed every ``LIVE_TEXT_INTERVAL`` seconds), and when the watch
finishes its output becomes the static final state: the HTML summary and the
final text (see ``_DisplayMixin``), so the outcome survives without widget state.
"""

from __future__ import annotations

import html
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from mixpeek_magics._extras import require

require("notebook", "ipywidgets")

import ipywidgets as W

from mixpeek_magics.client import statuses
from mixpeek_magics.notebook import display
from mixpeek_magics.notebook.gallery import FailedThumbnails, failed_items_html
from mixpeek_magics.notebook.textprogress import (
    RateEstimator,
    Throttle,
    board_units,
    observed_time,
    task_progress_units,
)
from mixpeek_magics.tracking import summary
from mixpeek_magics.tracking.snapshot import TaskSnapshot

__all__ = ["TaskProgress", "TaskBoard"]

log = logging.getLogger(__name__)

CancelCallback = Callable[[str], None]

_BAR_STYLE = {"success": "success", "failed": "danger", "partial": "warning", "canceled": "warning"}


def _set(widget: Any, **traits: Any) -> None:
    """Set only the traits that change (each change is a comm message)."""
    for name, value in traits.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)


def _show(widget: Any, visible: bool) -> None:
    _set(widget.layout, display=None if visible else "none")


def _visible(widget: Any) -> bool:
    return widget.layout.display != "none"


#: Least seconds between two refreshes of the text a front end without widgets shows.
LIVE_TEXT_INTERVAL = 2.0


class _DisplayMixin:
    """What every front end sees of a displayed board, live and once it is over.

    ``display(widget)`` (or the widget as a cell's last expression) publishes two
    outputs in the current cell, each with a display id:

    * the widget view (its ``text/plain`` is empty: the text is the other output's);
    * the live text: a bundle whose widget view is a hidden, empty widget and whose
      ``text/plain`` is the progress text. A widget front end renders the hidden
      widget (nothing to see); one without widgets (no widget manager, the VS Code
      fallback, a notebook saved mid-run, GitHub) shows the text. It is refreshed
      through its display id at most every ``LIVE_TEXT_INTERVAL`` seconds; the
      board's own view is never re-published while it runs (a front end rebuilds
      a widget view on every update of its output).

    ``on_finish`` turns the widget's output into the static final state (the HTML
    summary and the final text: no second copy of the board) and empties the live
    text. Updates by display id reach the original cell from any thread, whichever
    cell is running (nbclient/nbconvert/nbval apply them to the saved notebook,
    JupyterLab routes them by display id). In a headless run (papermill, nbconvert:
    its log never shows updates) one final plain line is printed too, when the watch
    ends while the board's cell still runs. Without a
    display id (the widget shown inside another container) the summary is
    displayed with the parent header of the cell that created the widget.
    """

    _outputs: list[tuple[str, str]]
    _created_parent: dict | None
    _shown_parent: dict | None
    _summary_emitted: bool
    failure_hint: str | None = None

    def _init_display(self, live_interval: float = LIVE_TEXT_INTERVAL) -> None:
        self._outputs = []
        self._created_parent = display.current_parent()
        self._shown_parent = None
        self._summary_emitted = False
        self._display_lock = threading.Lock()
        self._hidden: Any = None
        self._live = Throttle(self._publish_live, interval=live_interval)
        self.live_updates = 0  # live text refreshes published (after the first display)

    # subclasses provide these
    def text(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def summary_html(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def final_line(self) -> str:  # pragma: no cover
        raise NotImplementedError

    @property
    def finished(self) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        data = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        data["text/plain"] = self.text()
        return data

    def _summary_bundle(self) -> dict:
        return {"text/html": self.summary_html(), "text/plain": self.text()}

    def _live_bundle(self) -> dict:
        if self._hidden is None:
            self._hidden = W.Box(layout=W.Layout(display="none"))
        data = self._hidden._repr_mimebundle_() or {}
        data["text/plain"] = self.text()
        return data

    def shown_in_current_cell(self) -> bool:
        """True while the cell that displayed this widget still runs (its result
        need not repeat what the board shows)."""
        return bool(self._outputs) and display.same_cell(self._shown_parent)

    def _ipython_display_(self) -> None:
        from IPython.display import display as show

        if display.kernel_shell() is None:
            show(self._repr_mimebundle_(), raw=True)
            return
        with self._display_lock:
            if self._summary_emitted:  # over already: the static final state only
                show(self._summary_bundle(), raw=True)
                return
            widget_id, live_id = uuid.uuid4().hex, uuid.uuid4().hex
            bundle = self._repr_mimebundle_()
            bundle["text/plain"] = ""
            show(bundle, raw=True, display_id=widget_id)
            show(self._live_bundle(), raw=True, display_id=live_id)
            self._outputs.append((widget_id, live_id))
            self._shown_parent = display.current_parent()

    def _live_tick(self) -> None:
        if self._outputs and not self._summary_emitted:
            self._live.submit("tick")

    def _publish_live(self, state: str) -> None:
        if state != "tick":
            return
        from IPython.display import update_display

        with self._display_lock:
            if self._summary_emitted or not self._outputs:
                return
            bundle = self._live_bundle()
            for _widget_id, live_id in self._outputs:
                update_display(bundle, raw=True, display_id=live_id)
            self.live_updates += 1

    def _emit_final(self) -> None:
        """The static final state in the widget's output, once (and a plain line when headless)."""
        self._live.finish("stop")
        shell = display.kernel_shell()
        with self._display_lock:
            if self._summary_emitted or shell is None:
                return
            self._summary_emitted = True
            outputs = list(self._outputs)
        try:
            from IPython.display import display as show, update_display

            final = self._summary_bundle()
            if outputs:
                for widget_id, live_id in outputs:
                    update_display(final, raw=True, display_id=widget_id)
                    update_display({"text/plain": ""}, raw=True, display_id=live_id)
            else:
                pub = shell.display_pub
                token = None
                if self._created_parent and hasattr(pub, "set_thread_parent"):
                    token = pub.set_thread_parent(self._created_parent)
                try:
                    show(final, raw=True)
                finally:
                    if token is not None:
                        pub.reset_thread_parent(token)
            if display.headless_kernel() and display.same_cell(self._shown_parent or self._created_parent):
                # a log (papermill --log-output) shows no display updates: the outcome as a line, in the
                # board's cell while it runs (a watch ending later would print into another cell)
                print(self.final_line(), flush=True)
        except Exception:
            log.debug("could not publish the final summary", exc_info=True)


class TaskProgress(_DisplayMixin, W.VBox):
    """Progress of one task: status badge, bar, processed/total, %, elapsed, ETA,
    error text, failed items and a Cancel button with an inline confirmation.

    As a standalone observer it follows ``task_id`` (or the first snapshot it
    gets). ``on_cancel(task_id)`` is called when the user confirms Cancel;
    ``None`` hides the button. Failed items are grouped by error, each with a
    small thumbnail when it is a local image file (``thumbnails``: made once each,
    a bounded number; a board's rows share the board's).
    """

    def __init__(
        self,
        snapshot: TaskSnapshot | None = None,
        *,
        task_id: str | None = None,
        on_cancel: CancelCallback | None = None,
        min_interval: float = 0.1,
        show_name: bool = True,
        failure_hint: str | None = None,
        thumbnails: FailedThumbnails | None = None,
        **kwargs: Any,
    ) -> None:
        self.on_cancel = on_cancel
        self.failure_hint = failure_hint
        self.thumbnails = thumbnails if thumbnails is not None else FailedThumbnails()
        self._items_key: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._items_html = ""
        self.task_id: str | None = task_id or (snapshot.task_id if snapshot else None)
        self.snapshot: TaskSnapshot | None = None
        self.connection = "ok"
        self.frozen = False
        self.cancel_requested = False
        self.eta_seconds: float | None = None
        self.elapsed_seconds: float | None = None
        self.status_color = statuses.FAMILY_COLORS["pending"]
        self._estimator = RateEstimator()
        self._ui_lock = threading.RLock()
        self._show_name = show_name

        # In a narrow row the flexbox shrinks children: badge, detail and buttons keep
        # their natural width (flex 0 0 auto); only the name and the bar give way.
        self.badge = W.HTML(
            value="", layout=W.Layout(padding="0 8px", margin="2px 4px", min_width="80px", flex="0 0 auto")
        )
        self.badge.style.background = self.status_color
        self.badge.style.text_color = "#ffffff"
        self.name = W.HTML(
            value="", layout=W.Layout(min_width="120px", flex="1 1 auto", display=None if show_name else "none")
        )
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=100.0, layout=W.Layout(width="240px", flex="0 1 240px"))
        self.detail = W.Label(value="", layout=W.Layout(flex="0 0 auto"))
        self.cancel_button = W.Button(
            description="Cancel",
            icon="stop",
            tooltip="Cancel this task",
            layout=W.Layout(width="auto", flex="0 0 auto", display=None if on_cancel else "none"),
        )
        self.confirm_label = W.Label(value="")
        self.confirm_yes = W.Button(description="Yes", button_style="danger", layout=W.Layout(width="auto"))
        self.confirm_no = W.Button(description="No", layout=W.Layout(width="auto"))
        self.confirm_box = W.HBox(
            [self.confirm_label, self.confirm_yes, self.confirm_no], layout=W.Layout(display="none")
        )
        self.error = W.HTML(value="", layout=W.Layout(display="none", margin="0 0 0 8px"))
        self.cancel_button.on_click(lambda _b: self.request_cancel())
        self.confirm_yes.on_click(lambda _b: self.confirm_cancel())
        self.confirm_no.on_click(lambda _b: self.dismiss_cancel())
        top = W.HBox(
            [self.badge, self.name, self.bar, self.detail, self.cancel_button, self.confirm_box],
            layout=W.Layout(align_items="center"),
        )
        super().__init__(children=[top, self.error], **kwargs)
        self._init_display()
        self._throttle = Throttle(self._flush, interval=min_interval)
        if snapshot is not None:
            self._apply(snapshot, "ok", final=False)

    # -- observer API --------------------------------------------------------------------

    @property
    def flush_count(self) -> int:
        return self._throttle.flush_count

    @property
    def finished(self) -> bool:
        return self._throttle.finished

    def _pick(self, snapshots: Sequence[TaskSnapshot]) -> TaskSnapshot | None:
        if self.task_id is not None:
            for s in snapshots:
                if s.task_id == self.task_id:
                    return s
            return None
        return snapshots[0] if snapshots else None

    def on_update(self, snapshots: Sequence[TaskSnapshot], connection: str = "ok") -> None:
        snap = self._pick(snapshots)
        if snap is None and connection == self.connection:
            return
        self._throttle.submit((snap, connection, False))

    def on_finish(self, snapshots: Sequence[TaskSnapshot]) -> None:
        if self.finished:
            return
        self._throttle.finish((self._pick(snapshots), "ok", True))
        self._emit_final()

    def _flush(self, state: tuple[TaskSnapshot | None, str, bool]) -> None:
        snap, connection, final = state
        with self._ui_lock:
            if snap is None:
                snap = self.snapshot
            if snap is not None:
                self._apply(snap, connection, final=final)
            else:
                self.connection = connection
            if final:
                self.freeze()
            elif snap is None or not statuses.is_terminal(snap.status):  # an ended task's final state follows
                self._live_tick()

    # -- rendering -----------------------------------------------------------------------

    def bind(self, task_id: str | None) -> None:
        """Follow another task (rows are reused by ``TaskBoard``): resets all state."""
        with self._ui_lock:
            self.task_id = task_id
            self.snapshot = None
            self.frozen = False
            self.cancel_requested = False
            self.eta_seconds = None
            self.elapsed_seconds = None
            self._estimator.reset()
            _show(self.confirm_box, False)
            _set(self.cancel_button, disabled=False, description="Cancel")
            _show(self.cancel_button, self.on_cancel is not None)

    def _apply(self, snap: TaskSnapshot, connection: str, *, final: bool) -> None:
        if self.task_id is None:
            self.task_id = snap.task_id
        self.snapshot = snap
        self.connection = connection
        status = statuses.normalize(snap.status)
        fam = statuses.family(status)
        color = statuses.FAMILY_COLORS[fam]
        self.status_color = color

        units = task_progress_units(snap)
        if units is not None:
            self._estimator.add(snap.observed_at.timestamp(), units[0])
            self.eta_seconds = None if snap.terminal else self._estimator.eta(units[1] - units[0])
        else:
            self.eta_seconds = None
        self.elapsed_seconds = summary.elapsed_seconds(snap)

        _set(self.badge, value=html.escape(status))
        _set(self.badge.style, background=color)
        if self._show_name:
            name = f"<code>{html.escape(snap.task_id)}</code>"
            extra = snap.label or snap.task_type
            if extra:
                name += f' <span style="color:#666">{html.escape(extra)}</span>'
            _set(self.name, value=name)
        fraction = snap.fraction
        _set(self.bar, value=round((fraction or 0.0) * 100.0, 2))
        _set(self.bar.style, bar_color=color)
        _set(self.bar, bar_style=_BAR_STYLE.get(fam, "") if snap.terminal else "")
        _set(self.detail, value=self._detail_text(snap, connection))

        err = []
        if snap.error:
            err.append(f'<span style="color:{color}"><b>Error:</b> {html.escape(snap.error)}</span>')
        if snap.failed_items:
            head = f'<span style="color:{color}"><b>Failed items ({len(snap.failed_items)}):</b></span>'
            err.append(head + self.failed_items_html(snap))
        _set(self.error, value="<br>".join(err))
        _show(self.error, bool(err))
        if snap.terminal:
            self.freeze()

    def failed_items_html(self, snap: TaskSnapshot) -> str:
        """The task's failed items grouped by error, with thumbnails; rebuilt only when they change
        (a row is re-applied at every refresh of the board)."""
        key = (snap.failed_items, snap.failed_errors)
        if key != self._items_key:
            self._items_key = key
            self._items_html = failed_items_html(summary.failed_groups(snap), self.thumbnails)
        return self._items_html

    def _detail_text(self, snap: TaskSnapshot, connection: str) -> str:
        parts = []
        if snap.total is not None:
            parts.append(f"{snap.processed or 0} / {snap.total}")
        elif snap.processed is not None:
            parts.append(f"{snap.processed} / ?")
        elif snap.tier_text:
            parts.append(snap.tier_text)
        elif getattr(snap, "indeterminate", False) and snap.family == "running":
            parts.append("no progress reported yet")  # the batch's progress is null until it is first refreshed
        pct = summary.percent_text(snap.fraction)
        if pct:
            parts.append(pct)
        if self.elapsed_seconds is not None:
            parts.append(f"elapsed {summary.format_duration(self.elapsed_seconds)}")
        if self.eta_seconds is not None and not snap.terminal:
            parts.append(f"eta {summary.format_duration(self.eta_seconds)}")
        if self.cancel_requested and not snap.terminal:
            parts.append("cancel requested…")
        if connection == "reconnecting":
            parts.append("reconnecting…")
        return " · ".join(parts)

    def freeze(self) -> None:
        """Final state: no more cancel, bar coloured by the outcome."""
        with self._ui_lock:
            self.frozen = True
            _show(self.confirm_box, False)
            _set(self.cancel_button, disabled=True)
            _show(self.cancel_button, False)
            if self.snapshot is not None:
                fam = self.snapshot.family
                _set(self.bar.style, bar_color=statuses.FAMILY_COLORS[fam])
                if self.snapshot.status == "COMPLETED" and self.snapshot.fraction is None:
                    _set(self.bar, value=100.0)

    # -- cancel --------------------------------------------------------------------------

    def request_cancel(self) -> None:
        """The Cancel button: ask "Cancel task X? [Yes] [No]"."""
        with self._ui_lock:
            if self.frozen or self.on_cancel is None or self.task_id is None or self.cancel_requested:
                return
            _set(self.confirm_label, value=f"Cancel task {self.task_id}?")
            _show(self.cancel_button, False)
            _show(self.confirm_box, True)

    def dismiss_cancel(self) -> None:
        with self._ui_lock:
            _show(self.confirm_box, False)
            _show(self.cancel_button, self.on_cancel is not None and not self.frozen)

    def confirm_cancel(self) -> None:
        with self._ui_lock:
            if not _visible(self.confirm_box) or self.on_cancel is None or self.task_id is None:
                return
            _show(self.confirm_box, False)
            self.cancel_requested = True
            _set(self.cancel_button, disabled=True, description="Canceling…")
            _show(self.cancel_button, not self.frozen)
            task_id, callback = self.task_id, self.on_cancel
        try:
            callback(task_id)
        except Exception as exc:  # show it; never raise into the widget's event loop
            with self._ui_lock:
                self.cancel_requested = False
                _set(self.cancel_button, disabled=False, description="Cancel")
                _set(self.error, value=f'<span style="color:#e53935">Cancel failed: {html.escape(str(exc))}</span>')
                _show(self.error, True)
            return
        with self._ui_lock:
            if self.snapshot is not None:
                _set(self.detail, value=self._detail_text(self.snapshot, self.connection))

    # -- text ----------------------------------------------------------------------------

    def text(self) -> str:
        snap = self.snapshot
        if snap is None:
            return "waiting for task" + (f" {self.task_id}" if self.task_id else "")
        line = summary.task_line(snap)
        if self.connection == "reconnecting":
            line += "  (reconnecting…)"
        hint = self.failure_hint if self.finished else None
        lines = [line] + [x.strip() for x in summary.error_lines([snap], hint=hint)]
        return "\n".join(lines)

    def summary_html(self) -> str:
        return summary.summary_html(
            [self.snapshot] if self.snapshot else [], hint=self.failure_hint, items_html=self.failed_items_html
        )

    def final_line(self) -> str:
        return summary.final_line([self.snapshot] if self.snapshot else [])


class TaskBoard(_DisplayMixin, W.VBox):
    """Many tasks: counts by status, overall bar, reconnecting indicator, Cancel all,
    and a collapsible list of per-task rows.

    At most ``max_rows`` rows exist (reused as tasks come and go; unfinished
    tasks first, then failed ones, when there are more tasks than rows) with
    "… and N more" below. The list starts collapsed once there are more than
    ``collapse_threshold`` tasks; rows are not updated while it is collapsed.
    The header (counts, overall bar) follows every flush; rows refresh at most
    every ``row_interval`` seconds unless a shown task changes status.
    """

    def __init__(
        self,
        *,
        on_cancel: CancelCallback | None = None,
        title: str | None = None,
        max_rows: int = 50,
        collapse_threshold: int = 20,
        min_interval: float = 0.1,
        row_interval: float = 0.5,
        failure_hint: str | None = None,
        live_interval: float = LIVE_TEXT_INTERVAL,
        base_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.on_cancel = on_cancel
        self.title = title
        self.failure_hint = failure_hint
        # the rows' failed items: thumbnails of local image files, named relative to base_dir (the cwd)
        self.thumbnails = FailedThumbnails(base_dir)
        self.row_interval = row_interval
        self._rows_at = float("-inf")
        self._rows_signature: Any = None
        self._rows_timer: threading.Timer | None = None
        self.max_rows = max_rows
        self.collapse_threshold = collapse_threshold
        self.snapshots: list[TaskSnapshot] = []
        self.connection = "ok"
        self.counts: dict[str, int] = {}
        self.overall = summary.overall_progress([])
        self.eta_seconds: float | None = None
        self.elapsed_seconds: float | None = None
        self.hidden_count = 0
        self.rows: dict[str, TaskProgress] = {}
        self._pool: list[TaskProgress] = []
        self._rows_dirty = False
        self._final = False
        self._auto_collapsed = False
        self._setting_index = False
        self._estimator = RateEstimator()
        self._ui_lock = threading.RLock()
        self.cancel_all_requested = False

        self.title_html = W.HTML(
            value=f"<b>{html.escape(title)}</b>" if title else "", layout=W.Layout(display=None if title else "none")
        )
        self.counts_html = W.HTML(value="")
        self.connection_label = W.HTML(
            value='<span style="color:#fb8c00">⟳ reconnecting…</span>', layout=W.Layout(display="none")
        )
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=100.0, layout=W.Layout(width="320px"))
        self.bar.style.bar_color = statuses.FAMILY_COLORS["pending"]
        self.detail = W.Label(value="")
        self.cancel_all_button = W.Button(
            description="Cancel all", icon="stop", layout=W.Layout(width="auto", display="none")
        )
        self.cancel_all_label = W.Label(value="")
        self.cancel_all_yes = W.Button(description="Yes", button_style="danger", layout=W.Layout(width="auto"))
        self.cancel_all_no = W.Button(description="No", layout=W.Layout(width="auto"))
        self.cancel_all_box = W.HBox(
            [self.cancel_all_label, self.cancel_all_yes, self.cancel_all_no], layout=W.Layout(display="none")
        )
        self.message = W.HTML(value="", layout=W.Layout(display="none"))
        self.cancel_all_button.on_click(lambda _b: self.request_cancel_all())
        self.cancel_all_yes.on_click(lambda _b: self.confirm_cancel_all())
        self.cancel_all_no.on_click(lambda _b: self.dismiss_cancel_all())
        self.more_label = W.Label(value="", layout=W.Layout(display="none"))
        self.rows_box = W.VBox([])
        self.accordion = W.Accordion(children=[self.rows_box], titles=("Tasks (0)",), selected_index=0)
        self.accordion.observe(self._on_toggle, names="selected_index")
        header = W.HBox([self.counts_html, self.connection_label], layout=W.Layout(align_items="center"))
        overall = W.HBox(
            [self.bar, self.detail, self.cancel_all_button, self.cancel_all_box], layout=W.Layout(align_items="center")
        )
        super().__init__(children=[self.title_html, header, overall, self.message, self.accordion], **kwargs)
        self._init_display(live_interval)
        self._throttle = Throttle(self._flush, interval=min_interval)

    # -- observer API --------------------------------------------------------------------

    @property
    def flush_count(self) -> int:
        return self._throttle.flush_count

    @property
    def finished(self) -> bool:
        return self._throttle.finished

    @property
    def expanded(self) -> bool:
        return self.accordion.selected_index == 0

    def on_update(self, snapshots: Sequence[TaskSnapshot], connection: str = "ok") -> None:
        self._throttle.submit((list(snapshots), connection, False))

    def on_finish(self, snapshots: Sequence[TaskSnapshot]) -> None:
        if self.finished:
            return
        self._throttle.finish((list(snapshots), "ok", True))
        self._emit_final()

    def _flush(self, state: tuple[list[TaskSnapshot], str, bool]) -> None:
        snaps, connection, final = state
        with self._ui_lock:
            self._apply(snaps, connection, final)
        # once every task ended, the final state replaces the live text: no tick just before it
        if not final and not all(statuses.is_terminal(s.status) for s in snaps):
            self._live_tick()

    # -- rendering -----------------------------------------------------------------------

    def _apply(self, snaps: list[TaskSnapshot], connection: str, final: bool) -> None:
        self.snapshots = snaps
        self.connection = connection
        n = len(snaps)
        self.counts = summary.status_counts(snaps)
        _set(self.counts_html, value=self._counts_html(n))
        _show(self.connection_label, connection == "reconnecting" and not final)

        ov = summary.overall_progress(snaps)
        self.overall = ov
        all_done = n > 0 and all(s.terminal for s in snaps)
        units = board_units(snaps)
        t = observed_time(snaps)
        if units is not None and t is not None:
            self._estimator.add(t, units[0])
            self.eta_seconds = None if all_done else self._estimator.eta(units[1] - units[0])
        else:
            self.eta_seconds = None
        self.elapsed_seconds = summary.board_elapsed_seconds(snaps)
        fam = summary.overall_family(snaps)
        _set(self.bar, value=round((ov.fraction or 0.0) * 100.0, 2))
        _set(self.bar.style, bar_color=statuses.FAMILY_COLORS[fam])
        _set(self.bar, bar_style=_BAR_STYLE.get(fam, "") if (final or all_done) else "")
        _set(self.detail, value=self._detail_text(ov, connection, all_done))

        unfinished = n - sum(1 for s in snaps if s.terminal)
        can_cancel = self.on_cancel is not None and not final and unfinished > 0
        if not can_cancel:
            _show(self.cancel_all_box, False)
        _show(self.cancel_all_button, can_cancel and not _visible(self.cancel_all_box))
        _set(self.cancel_all_button, disabled=self.cancel_all_requested)

        if n > self.collapse_threshold and not self._auto_collapsed:
            self._auto_collapsed = True
            self._set_index(None)
        _set(self.accordion, titles=(f"Tasks ({n})",))
        self._final = final
        if self.expanded:
            # rows (up to max_rows widgets each) refresh at most every row_interval,
            # at once when a status changes, and always for the final state
            now = time.monotonic()
            signature = tuple((s.task_id, s.status) for s in self._select(snaps))
            if (
                final
                or self._rows_dirty
                or signature != self._rows_signature
                or now - self._rows_at >= self.row_interval
            ):
                self._render_rows(final)
                self._rows_signature, self._rows_at = signature, now
            else:
                self._update_more(len(signature))
                self._schedule_rows(self.row_interval - (now - self._rows_at))
        else:
            self._rows_dirty = True
            self._update_more(self._shown_ids_count(snaps))

    def _schedule_rows(self, delay: float) -> None:
        """Rows skipped by ``row_interval`` are refreshed later even if updates stop:
        the latest state is resubmitted through the throttle (so it is counted)."""
        if self._rows_timer is not None:
            return

        def fire() -> None:
            with self._ui_lock:
                self._rows_timer = None
                state = (self.snapshots, self.connection, False)
            self._throttle.submit_if_idle(state)

        timer = threading.Timer(max(0.0, delay) + 0.01, fire)
        timer.daemon = True
        self._rows_timer = timer
        timer.start()

    def _set_index(self, index: int | None) -> None:
        self._setting_index = True
        try:
            self.accordion.selected_index = index
        finally:
            self._setting_index = False

    def _on_toggle(self, change: dict) -> None:
        if self._setting_index:
            return
        self._auto_collapsed = True  # the user chose; never auto-collapse again
        if change["new"] == 0:
            with self._ui_lock:
                self._render_rows(getattr(self, "_final", False))

    def _counts_html(self, n: int) -> str:
        head = f"<b>{n} task{'s' if n != 1 else ''}</b> "
        chips = "".join(
            summary._chip(f"{count} {status}", statuses.color(status)) for status, count in self.counts.items()
        )
        return head + chips

    def _detail_text(self, ov: summary.Overall, connection: str, all_done: bool) -> str:
        parts = []
        if ov.total:
            parts.append(f"{ov.done} / {ov.total}" + (" tasks done" if ov.unit == "tasks" else ""))
            parts.append(summary.percent_text(ov.fraction))
        if self.elapsed_seconds is not None:
            parts.append(f"elapsed {summary.format_duration(self.elapsed_seconds)}")
        if self.eta_seconds is not None and not all_done:
            parts.append(f"eta {summary.format_duration(self.eta_seconds)}")
        return " · ".join(p for p in parts if p)

    def _select(self, snaps: list[TaskSnapshot]) -> list[TaskSnapshot]:
        """The snapshots that get a row: all, in order, when they fit; else
        unfinished first, then failed / partly failed, then the rest."""
        if len(snaps) <= self.max_rows:
            return snaps
        rank = {"failed": 1, "partial": 1}
        ordered = sorted(snaps, key=lambda s: 0 if not s.terminal else rank.get(s.family, 2))
        return ordered[: self.max_rows]

    def _shown_ids_count(self, snaps: list[TaskSnapshot]) -> int:
        return min(len(snaps), self.max_rows)

    def _update_more(self, shown: int) -> None:
        self.hidden_count = len(self.snapshots) - shown
        _set(self.more_label, value=f"… and {self.hidden_count} more" if self.hidden_count > 0 else "")
        _show(self.more_label, self.hidden_count > 0)

    def _render_rows(self, final: bool) -> None:
        shown = self._select(self.snapshots)
        wanted = {s.task_id for s in shown}
        for task_id in [t for t in self.rows if t not in wanted]:
            gone = self.rows.pop(task_id)
            gone.bind(None)
            self._pool.append(gone)
        ordered_rows = []
        for snap in shown:
            row = self.rows.get(snap.task_id)
            if row is None:
                if self._pool:
                    row = self._pool.pop()
                else:
                    row = TaskProgress(
                        on_cancel=self._cancel_one if self.on_cancel else None,
                        thumbnails=self.thumbnails,
                        layout=W.Layout(border_bottom="1px solid #eee"),
                    )
                row.bind(snap.task_id)
                self.rows[snap.task_id] = row
            with row._ui_lock:
                row._apply(snap, self.connection, final=final)
                if final:
                    row.freeze()
            ordered_rows.append(row)
        children = tuple(ordered_rows) + ((self.more_label,) if len(self.snapshots) > len(shown) else ())
        if self.rows_box.children != children:
            self.rows_box.children = children
        self._update_more(len(shown))
        self._rows_dirty = False

    # -- cancel --------------------------------------------------------------------------

    def _cancel_one(self, task_id: str) -> None:
        if self.on_cancel is not None:
            self.on_cancel(task_id)

    def unfinished_ids(self) -> list[str]:
        return [s.task_id for s in self.snapshots if not s.terminal]

    def request_cancel_all(self) -> None:
        with self._ui_lock:
            ids = self.unfinished_ids()
            if self.on_cancel is None or not ids or self.finished or self.cancel_all_requested:
                return
            _set(self.cancel_all_label, value=f"Cancel all {len(ids)} unfinished task{'s' if len(ids) != 1 else ''}?")
            _show(self.cancel_all_button, False)
            _show(self.cancel_all_box, True)

    def dismiss_cancel_all(self) -> None:
        with self._ui_lock:
            _show(self.cancel_all_box, False)
            _show(self.cancel_all_button, self.on_cancel is not None and not self.finished)

    def confirm_cancel_all(self) -> None:
        with self._ui_lock:
            if not _visible(self.cancel_all_box) or self.on_cancel is None:
                return
            _show(self.cancel_all_box, False)
            ids = self.unfinished_ids()
            self.cancel_all_requested = True
            _set(self.cancel_all_button, disabled=True, description="Canceling…")
            _show(self.cancel_all_button, True)
            callback = self.on_cancel
        errors = []
        for task_id in ids:
            try:
                callback(task_id)
            except Exception as exc:
                errors.append(f"{task_id}: {exc}")
        with self._ui_lock:
            for task_id in ids:
                row = self.rows.get(task_id)
                if row is not None and not row.frozen:
                    row.cancel_requested = True
                    _set(row.cancel_button, disabled=True, description="Canceling…")
            if errors:
                self.cancel_all_requested = False
                _set(self.cancel_all_button, disabled=False, description="Cancel all")
                _set(
                    self.message,
                    value='<span style="color:#e53935">Cancel failed for '
                    + html.escape("; ".join(errors[:5]))
                    + ("…" if len(errors) > 5 else "")
                    + "</span>",
                )
                _show(self.message, True)

    # -- text ----------------------------------------------------------------------------

    def text(self) -> str:
        hint = self.failure_hint if self.finished else None
        body = summary.render_summary_text(self.snapshots, self.connection, hint=hint)
        return f"{self.title}\n{body}" if self.title else body

    def summary_html(self) -> str:
        return summary.summary_html(self.snapshots, self.title, hint=self.failure_hint, items_html=self._items_html)

    def _items_html(self, snap: TaskSnapshot) -> str:
        row = self.rows.get(snap.task_id)
        if row is not None and row.snapshot is snap:
            return row.failed_items_html(snap)
        return failed_items_html(summary.failed_groups(snap), self.thumbnails)

    def final_line(self) -> str:
        return summary.final_line(self.snapshots, self.title)
