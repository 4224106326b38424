"""Pure-Python renderings of task snapshots: text lines and a static HTML summary.

Shared by the displays (``notebook.textprogress``, ``notebook.progress``: what a
front end without widgets shows, and the final state a watch leaves in the
notebook) and the handles' own HTML reprs (``WatchHandle``, ``IngestResult``), so
it lives with the snapshots. Nothing here imports IPython or ipywidgets, and
nothing talks to the API.

The "stable" renderings (``render_summary_text``, ``summary_html``, ``final_line``)
contain no timestamps or durations, so saved notebooks compare cleanly under
nbval; task ids do appear and are covered by the project's nbval sanitizer.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mixpeek_magics.client import statuses
from mixpeek_magics.tracking.snapshot import TaskSnapshot

__all__ = [
    "Overall",
    "bar_text",
    "board_elapsed_seconds",
    "board_line",
    "counts_text",
    "elapsed_seconds",
    "failed_count",
    "failed_groups",
    "failed_items_text",
    "names_failed_items",
    "final_line",
    "format_duration",
    "overall_family",
    "overall_progress",
    "render_summary_text",
    "status_counts",
    "summary_html",
    "task_line",
]

BAR_WIDTH = 20
MAX_ERROR_LINES = 10
MAX_FAILED_ITEMS = 5
MAX_ERROR_GROUPS = 3
ERROR_CHARS = 120

_ORDER = {s: i for i, s in enumerate(statuses.LIFECYCLE_ORDER)}


def _status_key(status: str) -> tuple[int, str]:
    return (_ORDER.get(status, len(_ORDER)), status)


# --------------------------------------------------------------------------- primitives


def format_duration(seconds: float | None) -> str:
    """``0:07``, ``12:03``, ``1:02:03``; ``--:--`` when unknown."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "--:--"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def bar_text(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """``[########------------]``; all dashes when the fraction is unknown."""
    if fraction is None:
        filled = 0
    else:
        fraction = max(0.0, min(1.0, fraction))
        filled = int(fraction * width)
        if fraction >= 1.0:
            filled = width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def percent_text(fraction: float | None) -> str:
    """Floor of the percentage (99.9 % is not shown as 100 %)."""
    if fraction is None:
        return ""
    fraction = max(0.0, min(1.0, fraction))
    return f"{int(fraction * 100 + 1e-9)}%"


def status_counts(snapshots: Iterable[TaskSnapshot]) -> dict[str, int]:
    """Tasks per status, in lifecycle order (unknown statuses last)."""
    counter = Counter(statuses.normalize(s.status) for s in snapshots)
    return {k: counter[k] for k in sorted(counter, key=_status_key)}


def family_counts(snapshots: Iterable[TaskSnapshot]) -> dict[str, int]:
    counter = Counter(s.family for s in snapshots)
    return {f: counter[f] for f in statuses.FAMILY_COLORS if counter.get(f)}


def counts_text(snapshots: Sequence[TaskSnapshot]) -> str:
    """``2 PROCESSING, 1 COMPLETED, 1 FAILED``."""
    return ", ".join(f"{n} {status}" for status, n in status_counts(snapshots).items())


@dataclass(frozen=True)
class Overall:
    """Progress of a set of tasks.

    ``unit`` is ``"items"`` (sum processed / sum total, when every task reports a
    total) or ``"tasks"`` (finished tasks / all tasks).
    """

    done: int
    total: int
    fraction: float | None
    unit: str

    @property
    def counts(self) -> str:
        if self.unit == "tasks":
            return f"{self.done}/{self.total} tasks done"
        return f"{self.done}/{self.total}"


def overall_progress(snapshots: Sequence[TaskSnapshot]) -> Overall:
    if not snapshots:
        return Overall(0, 0, None, "tasks")
    if all(s.total for s in snapshots):
        done = sum(min(s.processed or 0, s.total or 0) for s in snapshots)
        total = sum(s.total or 0 for s in snapshots)
        return Overall(done, total, done / total if total else None, "items")
    finished = sum(1 for s in snapshots if s.terminal)
    return Overall(finished, len(snapshots), finished / len(snapshots), "tasks")


def overall_family(snapshots: Sequence[TaskSnapshot]) -> str:
    """One status family for a whole set: running until all are terminal."""
    if not snapshots:
        return "pending"
    if not all(s.terminal for s in snapshots):
        fams = {s.family for s in snapshots}
        return "running" if fams - {"pending"} else "pending"
    fams = {s.family for s in snapshots}
    for only in ("success", "failed", "canceled"):
        if fams == {only}:
            return only
    return "partial"


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def elapsed_seconds(snap: TaskSnapshot) -> float | None:
    """From first seen to finished (or to the latest observation)."""
    end = snap.finished_at or snap.observed_at
    if end is None or snap.first_seen is None:
        return None
    return max(0.0, (end - snap.first_seen).total_seconds())


def board_elapsed_seconds(snapshots: Sequence[TaskSnapshot]) -> float | None:
    if not snapshots:
        return None
    start = min(s.first_seen for s in snapshots)
    if all(s.terminal for s in snapshots):
        end = max((s.finished_at or s.observed_at) for s in snapshots)
    else:
        end = max(s.observed_at for s in snapshots)
    return max(0.0, (end - start).total_seconds())


def task_counts_text(snap: TaskSnapshot) -> str:
    if snap.total is not None:
        return f"{snap.processed or 0}/{snap.total}"
    if snap.processed is not None:
        return f"{snap.processed}/?"
    return getattr(snap, "tier_text", None) or ""  # no item counts yet: the batch's tier, if several


def task_name(snap: TaskSnapshot) -> str:
    return f"{snap.task_id} ({snap.label})" if snap.label else snap.task_id


# --------------------------------------------------------------------------- lines


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _timing(elapsed: float | None, eta: float | None, terminal: bool) -> str:
    parts = []
    if elapsed is not None:
        parts.append(f"elapsed {format_duration(elapsed)}")
    if eta is not None and not terminal:
        parts.append(f"eta {format_duration(eta)}")
    return "  ".join(parts)


def task_line(
    snap: TaskSnapshot,
    *,
    eta: float | None = None,
    timing: bool = False,
    width: int = BAR_WIDTH,
) -> str:
    """``[##########----------] 12/20 60% PROCESSING  elapsed 0:12  eta 0:08``.

    Without ``timing`` the line has no durations (stable for saved notebooks).
    """
    line = _join(
        bar_text(snap.fraction, width),
        task_counts_text(snap),
        percent_text(snap.fraction),
        statuses.normalize(snap.status),
    )
    if snap.label:
        line = f"{snap.label}: {line}"
    if timing:
        t = _timing(elapsed_seconds(snap), eta, snap.terminal)
        if t:
            line += "  " + t
    return line


def board_line(
    snapshots: Sequence[TaskSnapshot],
    *,
    connection: str = "ok",
    eta: float | None = None,
    timing: bool = False,
    width: int = BAR_WIDTH,
) -> str:
    """``[######--------------] 30/100 30% | 2 PROCESSING, 1 COMPLETED  elapsed 0:12  eta 0:40``."""
    if not snapshots:
        line = "No tasks yet"
    else:
        ov = overall_progress(snapshots)
        line = (
            _join(bar_text(ov.fraction, width), ov.counts, percent_text(ov.fraction)) + " | " + counts_text(snapshots)
        )
        if timing:
            t = _timing(board_elapsed_seconds(snapshots), eta, all(s.terminal for s in snapshots))
            if t:
                line += "  " + t
    if connection == "reconnecting":
        line += "  (reconnecting…)"
    return line


def _failed_items_text(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_FAILED_ITEMS])
    more = len(items) - MAX_FAILED_ITEMS
    return shown + (f" … and {more} more" if more > 0 else "")


def failed_count(snap: TaskSnapshot) -> int:
    """How many items failed inside the task (the batch's count, else the names known)."""
    return max(snap.failed or 0, len(snap.failed_items))


def failed_groups(snap: TaskSnapshot) -> list[tuple[str, list[str]]]:
    """The failed items' names grouped by their error, the most frequent error first
    (ties in the order first seen); error "": the batch gave none."""
    items = snap.failed_items
    errors = snap.failed_errors if len(snap.failed_errors) == len(items) else ("",) * len(items)
    groups: dict[str, list[str]] = {}
    for name, error in zip(items, errors):
        groups.setdefault(" ".join(error.split()), []).append(name)
    return sorted(groups.items(), key=lambda group: -len(group[1]))


def _grouped_items_text(snap: TaskSnapshot) -> str:
    groups = failed_groups(snap)
    if not any(error for error, _names in groups):
        return _failed_items_text(snap.failed_items)
    parts = []
    for error, names in groups[:MAX_ERROR_GROUPS]:
        label = error if len(error) <= ERROR_CHARS else error[: ERROR_CHARS - 1] + "…"
        parts.append(f"{label or 'no error given'} ({len(names)}): {_failed_items_text(names)}")
    more = len(groups) - MAX_ERROR_GROUPS
    return "; ".join(parts) + (f"; … and {more} more error{'s' if more != 1 else ''}" if more > 0 else "")


def names_failed_items(snap: TaskSnapshot, hint: str | None = None) -> bool:
    """Whether a display names the task's failed items (see ``failed_items_text``)."""
    return bool(snap.failed_items) and (hint is None or snap.status != "COMPLETED_WITH_ERRORS")


def failed_items_text(snap: TaskSnapshot, hint: str | None = None) -> str:
    """The failed items of a task: their names (grouped by error when the batch gave errors),
    or (``hint`` given, for a task that ended COMPLETED_WITH_ERRORS: the warning lists them)
    only how many, and where to look."""
    n = failed_count(snap)
    if not n:
        return ""
    if snap.status != "COMPLETED_WITH_ERRORS":
        hint = None
    if names_failed_items(snap, hint):
        return f"failed items: {_grouped_items_text(snap)}"
    of = f" of {snap.total}" if snap.total else ""
    text = f"{n}{of} item{'s' if of or n != 1 else ''} failed"
    return f"{text}, {hint}" if hint else text


def error_lines(
    snapshots: Sequence[TaskSnapshot], *, limit: int = MAX_ERROR_LINES, hint: str | None = None
) -> list[str]:
    """One line per failed / partly failed task (error text and failed items;
    with ``hint``, the number of failed items and where they are listed)."""
    bad = [s for s in snapshots if s.family in ("failed", "partial") or s.error or failed_count(s)]
    lines = []
    for s in bad[:limit]:
        line = f"  {statuses.normalize(s.status)} {task_name(s)}"
        if s.error:
            line += f": {s.error}"
        items = failed_items_text(s, hint)
        if items:
            line += f" ({items})"
        lines.append(line)
    if len(bad) > limit:
        lines.append(f"  … and {len(bad) - limit} more with errors")
    return lines


def render_summary_text(snapshots: Sequence[TaskSnapshot], connection: str = "ok", *, hint: str | None = None) -> str:
    """The stable text form of a set of tasks (what a front end without widgets shows).

    ::

        3 tasks: 1 PROCESSING, 1 COMPLETED, 1 FAILED
        [##########----------] 15/30 50%
          FAILED tsk_1 (photos): cannot decode image
    """
    snapshots = list(snapshots)
    n = len(snapshots)
    if n == 0:
        head = "0 tasks: waiting for tasks"
    else:
        head = f"{n} task{'s' if n != 1 else ''}: {counts_text(snapshots)}"
    if connection == "reconnecting":
        head += "  (reconnecting…)"
    lines = [head]
    if n:
        ov = overall_progress(snapshots)
        lines.append(_join(bar_text(ov.fraction), ov.counts, percent_text(ov.fraction)))
        lines.extend(error_lines(snapshots, hint=hint))
    return "\n".join(lines)


def final_line(snapshots: Sequence[TaskSnapshot], title: str | None = None) -> str:
    """The outcome in one plain line (a log's last word on a watch), without durations::

    %%ingest photos: [####################] 8/8 100% | 1 COMPLETED_WITH_ERRORS (1 of 8 items failed)
    """
    line = board_line(snapshots)
    failed = sum(failed_count(s) for s in snapshots)
    if failed:
        ov = overall_progress(snapshots)
        of = f" of {ov.total}" if ov.unit == "items" and ov.total else ""
        line += f" ({failed}{of} item{'s' if of or failed != 1 else ''} failed)"
    return f"{title}: {line}" if title else line


# --------------------------------------------------------------------------- HTML


def _chip(text: str, color: str) -> str:
    return (
        f'<span style="display:inline-block;background:{color};color:#fff;border-radius:8px;'
        f'padding:1px 8px;margin:0 4px 2px 0;font-size:0.9em">{html.escape(text)}</span>'
    )


def _row_order(snapshots: Sequence[TaskSnapshot]) -> list[TaskSnapshot]:
    rank = {"failed": 0, "partial": 1}
    return sorted(snapshots, key=lambda s: rank.get(s.family, 2))


def summary_html(
    snapshots: Sequence[TaskSnapshot],
    title: str | None = None,
    *,
    max_rows: int = 200,
    hint: str | None = None,
    items_html: Callable[[TaskSnapshot], str] | None = None,
) -> str:
    """A small self-contained HTML table: status counts with colours, one row per task.

    Failed tasks come first; at most ``max_rows`` rows, then "… and N more".
    All text (ids, labels, errors) is HTML-escaped. ``hint``: see ``failed_items_text``;
    ``items_html(snapshot)``: the failed items as HTML (already escaped), where they are named.
    """
    snapshots = list(snapshots)
    esc = html.escape
    out = ['<div class="mixpeek-task-summary" style="font-family:sans-serif;font-size:13px">']
    if title:
        out.append(f'<div style="font-weight:bold;margin-bottom:4px">{esc(title)}</div>')
    n = len(snapshots)
    ov = overall_progress(snapshots)
    out.append(
        f'<div style="margin-bottom:4px"><b>{n} task{"s" if n != 1 else ""}</b>'
        + (f" &middot; {esc(ov.counts)} {esc(percent_text(ov.fraction))}" if n else "")
        + "</div>"
    )
    out.append(
        "<div>"
        + "".join(
            _chip(f"{count} {status}", statuses.color(status)) for status, count in status_counts(snapshots).items()
        )
        + "</div>"
    )
    if n:
        cell = 'style="padding:2px 8px;text-align:left;border-bottom:1px solid #ddd;vertical-align:top"'
        out.append('<table style="border-collapse:collapse;margin-top:4px">')
        out.append(
            "<thead><tr>"
            + "".join(f"<th {cell}>{h}</th>" for h in ("task", "type", "status", "processed", "error"))
            + "</tr></thead><tbody>"
        )
        rows = _row_order(snapshots)
        for s in rows[:max_rows]:
            status = statuses.normalize(s.status)
            err = esc(s.error or "")
            items = failed_items_text(s, hint)
            if items:
                shown = esc(items)
                if items_html is not None and names_failed_items(s, hint):
                    shown = items_html(s)
                err = (err + "<br>" if err else "") + shown
            name = esc(s.task_id) + (f'<br><span style="color:#666">{esc(s.label)}</span>' if s.label else "")
            out.append(
                "<tr>"
                f"<td {cell}><code>{name}</code></td>"
                f"<td {cell}>{esc(s.task_type or '')}</td>"
                f"<td {cell}>{_chip(status, statuses.color(status))}</td>"
                f"<td {cell}>{esc(task_counts_text(s))}</td>"
                f"<td {cell}>{err}</td>"
                "</tr>"
            )
        if len(rows) > max_rows:
            out.append(f'<tr><td {cell} colspan="5">… and {len(rows) - max_rows} more</td></tr>')
        out.append("</tbody></table>")
    out.append("</div>")
    return "".join(out)
