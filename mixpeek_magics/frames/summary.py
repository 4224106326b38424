"""``summarize(frame)``: counts, success rate, duration percentiles, throughput."""

from __future__ import annotations

import html
import math
from typing import Any

from mixpeek_magics.client import statuses


class Summary:
    """What ``summarize`` returns.

    ``by_status`` / ``by_type``: DataFrames of counts; ``stats``: a dict with
    ``tasks``, ``terminal``, ``completed``, ``success_rate`` (COMPLETED /
    terminal), ``duration_p50`` / ``duration_p95`` / ``duration_max``
    (``pandas.Timedelta`` or None), ``span`` and ``throughput_per_hour``
    (terminal tasks per hour between the first ``first_seen`` and the last
    ``finished``). ``to_dict()`` gives plain Python values (durations in seconds).
    """

    def __init__(self, by_status, by_type, stats: dict[str, Any]) -> None:
        self.by_status = by_status
        self.by_type = by_type
        self.stats = stats

    def __getitem__(self, key: str) -> Any:
        return self.stats[key]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.stats.items():
            if hasattr(v, "total_seconds"):
                v = v.total_seconds()
            elif isinstance(v, float) and math.isnan(v):
                v = None
            out[k + ("_seconds" if k.startswith("duration") or k == "span" else "")] = v
        out["by_status"] = {str(k): int(v) for k, v in self.by_status["count"].items()}
        out["by_type"] = {str(k): int(v) for k, v in self.by_type["count"].items()}
        return out

    def _stat_lines(self) -> list[tuple[str, str]]:
        s = self.stats
        rate = s["success_rate"]
        return [
            ("tasks", str(s["tasks"])),
            ("terminal", str(s["terminal"])),
            ("success rate", "n/a" if rate is None else f"{rate:.1%}"),
            ("duration p50", _fmt_td(s["duration_p50"])),
            ("duration p95", _fmt_td(s["duration_p95"])),
            ("duration max", _fmt_td(s["duration_max"])),
            ("throughput", "n/a" if s["throughput_per_hour"] is None else f"{s['throughput_per_hour']:.1f} tasks/hour"),
        ]

    def __repr__(self) -> str:
        lines = ["Summary"] + [f"  {k}: {v}" for k, v in self._stat_lines()]
        lines.append("  by status: " + ", ".join(f"{k}={int(v)}" for k, v in self.by_status["count"].items()))
        lines.append("  by type: " + ", ".join(f"{k}={int(v)}" for k, v in self.by_type["count"].items()))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self._stat_lines()
        )
        return (
            "<div class='mixpeek-summary'><table>" + rows + "</table>"
            "<div style='display:flex;gap:2em'>"
            f"<div><b>by status</b>{self.by_status.to_html()}</div>"
            f"<div><b>by type</b>{self.by_type.to_html()}</div></div></div>"
        )


def _fmt_td(td: Any) -> str:
    if td is None:
        return "n/a"
    secs = td.total_seconds()
    if secs < 60:
        return f"{secs:.2f}s"
    mins, secs = divmod(secs, 60)
    if mins < 60:
        return f"{int(mins)}m {secs:04.1f}s"
    hours, mins = divmod(mins, 60)
    return f"{int(hours)}h {int(mins):02d}m {int(secs):02d}s"


def summarize(frame) -> Summary:
    """Summarise a ``task_history`` frame (any frame with its columns)."""
    import pandas as pd

    missing = {"status", "task_type", "duration", "first_seen", "finished", "is_terminal"} - set(frame.columns)
    if missing:
        raise ValueError(f"summarize() needs a task_history frame; missing columns: {', '.join(sorted(missing))}")
    status = frame["status"].astype(str).where(frame["status"].notna(), "UNKNOWN")
    order = {s: i for i, s in enumerate(statuses.LIFECYCLE_ORDER)}
    counts = status.value_counts()
    by_status = pd.DataFrame(
        {
            "count": counts.astype("int64"),
            "family": [statuses.family(s) for s in counts.index],
        }
    )
    by_status = by_status.loc[sorted(by_status.index, key=lambda s: (order.get(s, len(order)), s))]
    by_status.index.name = "status"
    n = len(frame)
    by_status["share"] = by_status["count"] / n if n else 0.0

    types = frame["task_type"].astype(object).where(frame["task_type"].notna(), "(none)")
    grouped = pd.DataFrame(
        {"task_type": types, "status": status, "is_terminal": frame["is_terminal"], "duration": frame["duration"]}
    ).groupby("task_type", sort=True)
    by_type = (
        pd.DataFrame(
            {
                "count": grouped.size().astype("int64"),
                "terminal": grouped["is_terminal"].sum().astype("int64"),
                "completed": grouped["status"].apply(lambda s: int((s == "COMPLETED").sum())).astype("int64"),
                "failed": grouped["status"].apply(lambda s: int((s == "FAILED").sum())).astype("int64"),
                "duration_p50": grouped["duration"].median(),
            }
        )
        if n
        else pd.DataFrame(
            {
                "count": pd.Series([], dtype="int64"),
                "terminal": pd.Series([], dtype="int64"),
                "completed": pd.Series([], dtype="int64"),
                "failed": pd.Series([], dtype="int64"),
                "duration_p50": pd.Series([], dtype="timedelta64[ns]"),
            }
        )
    )
    by_type.index.name = "task_type"

    terminal = int(frame["is_terminal"].sum())
    completed = int((status == "COMPLETED").sum())
    success_rate = completed / terminal if terminal else None

    durations = frame["duration"].dropna()
    if len(durations):
        p50 = durations.quantile(0.5)
        p95 = durations.quantile(0.95)
        dmax = durations.max()
    else:
        p50 = p95 = dmax = None

    start = frame["first_seen"].min()
    end = frame.loc[frame["is_terminal"], "finished"].max() if terminal else pd.NaT
    span = (end - start) if (pd.notna(start) and pd.notna(end) and end > start) else None
    throughput = None
    if span is not None:
        done = int((frame["is_terminal"] & frame["finished"].notna()).sum())
        throughput = done / (span.total_seconds() / 3600.0)

    stats = {
        "tasks": n,
        "terminal": terminal,
        "completed": completed,
        "success_rate": success_rate,
        "duration_p50": p50,
        "duration_p95": p95,
        "duration_max": dmax,
        "span": span,
        "throughput_per_hour": throughput,
    }
    return Summary(by_status, by_type, stats)
