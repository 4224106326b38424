"""Plots of a task history frame, as matplotlib ``Figure`` objects.

No pyplot global state: each function builds its own ``Figure`` (Agg-safe,
thread-safe, nothing left open). Jupyter displays a returned Figure inline.
"""

from __future__ import annotations

from typing import Any

from mixpeek_magics._extras import MissingDependencyError, require
from mixpeek_magics.client import statuses

_FIGURE_CLASS = None


def _figure(**kwargs: Any):
    """A new matplotlib Figure that also renders itself in Jupyter (``_repr_png_``)
    when the inline backend was never activated (no pyplot import)."""
    global _FIGURE_CLASS
    require("plot", "matplotlib")
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # installed, but broken
        raise MissingDependencyError("matplotlib", "plot", reason=str(exc)) from exc
    if _FIGURE_CLASS is None:

        class TaskFigure(Figure):
            def _repr_png_(self) -> bytes:
                import io

                buf = io.BytesIO()
                self.savefig(buf, format="png", dpi=self.dpi)
                return buf.getvalue()

        _FIGURE_CLASS = TaskFigure
    return _FIGURE_CLASS(**kwargs)


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _legend_for_families(ax, families) -> None:
    from matplotlib.patches import Patch

    seen = [f for f in statuses.FAMILY_COLORS if f in set(families)]
    if seen:
        ax.legend(
            handles=[Patch(color=statuses.FAMILY_COLORS[f], label=f) for f in seen],
            loc="best",
            fontsize="small",
            title="status",
        )


def plot_status_timeline(frame, now: Any = None, max_tasks: int = 2000, title: str | None = "Task timeline"):
    """One horizontal bar per task, from ``started`` (else ``first_seen``) to
    ``finished`` (else now), coloured by status family. Tasks the journal never
    saw have no times and are not drawn; the ``max_tasks`` most recent are."""
    import pandas as pd

    fig = _figure(figsize=(10, 0.5 + 0.22 * min(max(len(frame), 4), 40)), layout="constrained")
    ax = fig.add_subplot()
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now.tzinfo is None:
        now = now.tz_localize("UTC")
    begin = frame["started"].fillna(frame["first_seen"])
    drawn = frame.loc[begin.notna()].assign(_begin=begin[begin.notna()])
    drawn = drawn.sort_values("_begin").tail(max_tasks)
    if len(drawn) == 0:
        ax.text(0.5, 0.5, "no task with observed times (journal)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    import matplotlib.dates as mdates

    end = drawn["finished"].fillna(now)
    start_num = mdates.date2num(drawn["_begin"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    end_num = mdates.date2num(end.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    widths = end_num - start_num
    min_width = max((end_num.max() - start_num.min()) / 500.0, 1e-9)
    widths[widths < min_width] = min_width  # instant tasks stay visible
    fams = [statuses.family(s) for s in drawn["status"].astype(object)]
    colors = [statuses.FAMILY_COLORS[f] for f in fams]
    ys = list(range(len(drawn)))
    ax.barh(ys, widths, left=start_num, color=colors, height=0.8)
    _date_axis(ax)
    ax.set_ylim(-0.5, len(drawn) - 0.5)
    ax.invert_yaxis()
    if len(drawn) <= 40:
        ax.set_yticks(ys, [str(t)[-12:] for t in drawn["task_id"]], fontsize="x-small")
    else:
        ax.set_yticks([])
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("task")
    if title:
        ax.set_title(title)
    _legend_for_families(ax, fams)
    return fig


def plot_durations(frame, title: str | None = "Task durations by type"):
    """A box per task type of duration (seconds), with the tasks as points."""
    fig = _figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    data = frame.loc[frame["duration"].notna(), ["task_type", "duration", "status"]]
    if len(data) == 0:
        ax.text(
            0.5,
            0.5,
            "no durations yet (tasks must be watched to be timed)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return fig
    types = sorted(data["task_type"].fillna("(none)").astype(str).unique())
    groups = []
    for k, t in enumerate(types, start=1):
        sel = data[data["task_type"].fillna("(none)").astype(str) == t]
        secs = sel["duration"].dt.total_seconds().to_numpy()
        groups.append(secs)
        colors = [statuses.color(s) for s in sel["status"].astype(object)]
        jitter = (((sel.index.to_numpy() * 2654435761) % 1000) / 1000.0 - 0.5) * 0.3  # deterministic
        ax.scatter(k + jitter, secs, s=10, c=colors, alpha=0.7, zorder=3)
    ax.boxplot(groups, tick_labels=types, showfliers=False)
    ax.set_ylabel("duration (s)")
    if title:
        ax.set_title(title)
    return fig


def plot_throughput(frame, freq: str = "1min", title: str | None = "Finished tasks"):
    """Finished (terminal) tasks per ``freq`` bin, stacked by status family."""
    import numpy as np
    import pandas as pd

    fig = _figure(figsize=(10, 3.5), layout="constrained")
    ax = fig.add_subplot()
    done = frame.loc[frame["is_terminal"] & frame["finished"].notna(), ["finished", "status"]]
    if len(done) == 0:
        ax.text(0.5, 0.5, "no finished tasks with observed times", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    fam = done["status"].astype(object).map(statuses.family)
    bins = done["finished"].dt.floor(freq)
    table = pd.crosstab(bins, fam)
    full = pd.date_range(table.index.min(), table.index.max(), freq=freq)
    table = table.reindex(full, fill_value=0)
    import matplotlib.dates as mdates

    x = mdates.date2num(table.index.tz_convert("UTC").tz_localize(None).to_pydatetime())
    width = (pd.Timedelta(freq).total_seconds() / 86400.0) * 0.9
    bottom = np.zeros(len(table))
    for family in [f for f in statuses.FAMILY_COLORS if f in table.columns]:
        vals = table[family].to_numpy()
        ax.bar(x, vals, width=width, bottom=bottom, align="edge", color=statuses.FAMILY_COLORS[family], label=family)
        bottom += vals
    _date_axis(ax)
    ax.set_ylabel(f"tasks per {freq}")
    ax.set_xlabel("time (UTC)")
    ax.legend(fontsize="small", title="status")
    if title:
        ax.set_title(title)
    return fig
