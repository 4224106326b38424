"""summarize() numbers on a known set of tasks, the plots, and the lazy import."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from mixpeek_magics.frames import (
    plot_durations,
    plot_status_timeline,
    plot_throughput,
    summarize,
    task_history,
)
from mixpeek_magics.tracking.snapshot import TaskSnapshot

from .conftest import T0, at

# two TaskType values of the contract (the server answers no other)
TYPE_A, TYPE_B = "api_buckets_batches_process", "api_buckets_uploads_batch_confirm"
# (status, task_type, seen at, started at, finished at) in seconds after T0; None: not observed
PLAN = [
    ("COMPLETED", TYPE_A, 0, 1, 11),  # 10 s
    ("COMPLETED", TYPE_A, 5, 6, 26),  # 20 s
    ("COMPLETED", TYPE_B, 10, 12, 42),  # 30 s
    ("FAILED", TYPE_B, 20, 21, 61),  # 40 s
    ("COMPLETED_WITH_ERRORS", TYPE_A, 30, 31, 81),  # 50 s
    ("CANCELED", TYPE_B, 40, 41, 3601),  # 3560 s
    ("PROCESSING", TYPE_A, 50, 52, None),  # running
    ("PENDING", TYPE_B, 60, None, None),  # waiting
]


@pytest.fixture
def known(frames_env):
    srv, journal = frames_env.server, frames_env.journal
    ids = []
    for status, ttype, seen, started, finished in PLAN:
        (tid,) = srv.seed_tasks(1, statuses=[status], task_type=ttype)
        ids.append(tid)
        first = at(T0, seen)
        journal.record(TaskSnapshot(tid, "PENDING", ttype, first_seen=first, observed_at=first))
        if started is not None:
            journal.record(TaskSnapshot(tid, "PROCESSING", ttype, first_seen=first, observed_at=at(T0, started)))
        if finished is not None:
            journal.record(TaskSnapshot(tid, status, ttype, first_seen=first, observed_at=at(T0, finished)))
    return ids, task_history(frames_env.client, journal=journal)


def test_summarize_numbers(known):
    ids, frame = known
    s = summarize(frame)
    terminal = [p for p in PLAN if p[4] is not None]
    durations = pd.Series([pd.Timedelta(seconds=p[4] - p[3]) for p in terminal])
    assert s["tasks"] == len(PLAN)
    assert s["terminal"] == len(terminal)
    assert s["completed"] == sum(p[0] == "COMPLETED" for p in PLAN)
    assert s["success_rate"] == pytest.approx(s["completed"] / len(terminal))
    assert s["duration_p50"] == durations.quantile(0.5)
    assert s["duration_p95"] == durations.quantile(0.95)
    assert s["duration_max"] == pd.Timedelta(seconds=3560)
    span_h = (max(p[4] for p in terminal) - min(p[2] for p in PLAN)) / 3600
    assert s["throughput_per_hour"] == pytest.approx(len(terminal) / span_h)

    counts = s.by_status["count"].to_dict()
    assert counts == {st: sum(p[0] == st for p in PLAN) for st in {p[0] for p in PLAN}}
    # lifecycle order
    assert list(s.by_status.index) == [
        "PENDING",
        "PROCESSING",
        "COMPLETED",
        "COMPLETED_WITH_ERRORS",
        "FAILED",
        "CANCELED",
    ]
    assert s.by_type.loc[TYPE_A, "count"] == sum(p[1] == TYPE_A for p in PLAN)
    assert s.by_type.loc[TYPE_B, "failed"] == 1 and s.by_type.loc[TYPE_A, "completed"] == 2

    d = s.to_dict()
    assert d["tasks"] == len(PLAN) and d["duration_max_seconds"] == 3560.0
    assert d["by_status"]["COMPLETED"] == 3 and d["by_type"] == {TYPE_A: 4, TYPE_B: 4}
    html = s._repr_html_()
    assert "<table" in html and "success rate" in html and "COMPLETED_WITH_ERRORS" in html
    assert "tasks: 8" in repr(s)


def test_summarize_empty_and_untimed(frames_env):
    empty = task_history(frames_env.client, include_journal=False)
    s = summarize(empty)
    assert s["tasks"] == 0 and s["success_rate"] is None and s["duration_p50"] is None
    assert s["throughput_per_hour"] is None and len(s.by_status) == 0
    frames_env.server.seed_tasks(4, statuses=["COMPLETED", "FAILED"])
    s = summarize(task_history(frames_env.client, include_journal=False))
    assert s["terminal"] == 4 and s["success_rate"] == 0.5 and s["duration_max"] is None
    with pytest.raises(ValueError, match="missing columns"):
        summarize(pd.DataFrame({"x": [1]}))


def test_plots_return_figures_with_one_bar_per_task(known):
    from matplotlib.figure import Figure

    ids, frame = known
    fig = plot_status_timeline(frame, now=pd.Timestamp(at(T0, 4000)))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    bars = ax.containers[0]
    assert len(bars) == len(PLAN)  # every task was seen, so every task has a bar
    # colours follow the status family; the canceled one spans 41 s .. 3601 s
    from matplotlib.colors import to_hex

    from mixpeek_magics.client import statuses

    by_id = frame.set_index("task_id")
    drawn = by_id.loc[frame.assign(b=frame.started.fillna(frame.first_seen)).sort_values("b").task_id]
    assert [to_hex(p.get_facecolor()) for p in bars] == [statuses.color(s) for s in drawn.status.astype(str)]
    widths_s = sorted(round(p.get_width() * 86400) for p in bars)
    assert 3560 in widths_s
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders headless (Agg)

    # tasks never seen in the journal get no bar
    partial = frame.copy()
    partial.loc[partial.index[:3], ["first_seen", "started", "finished"]] = pd.NaT
    assert len(plot_status_timeline(partial).axes[0].containers[0]) == len(PLAN) - 3

    fig = plot_durations(frame)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [TYPE_A, TYPE_B]
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == frame.duration.notna().sum()

    fig = plot_throughput(frame, freq="10min")
    assert isinstance(fig, Figure)
    total = sum(p.get_height() for c in fig.axes[0].containers for p in c)
    assert total == frame.is_terminal.sum()


def test_plots_handle_frames_without_times(frames_env):
    from matplotlib.figure import Figure

    frames_env.server.seed_tasks(3)
    frame = task_history(frames_env.client, include_journal=False)
    for fn in (plot_status_timeline, plot_durations, plot_throughput):
        fig = fn(frame)
        assert isinstance(fig, Figure) and not fig.axes[0].containers


def test_import_is_lazy():
    code = (
        "import sys, mixpeek_magics.frames as f\n"
        "assert callable(f.task_history) and callable(f.plot_durations)\n"
        "bad = [m for m in ('pandas', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "print(bad)\n"
        "import mixpeek_magics\n"
        "mixpeek_magics.task_history\n"
        "print([m for m in ('pandas', 'matplotlib') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]


def test_plots_without_matplotlib_say_how_to_install(tmp_path):
    # a stub that makes "import matplotlib" fail in a fresh interpreter
    (tmp_path / "matplotlib").mkdir()
    (tmp_path / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    code = (
        "import pandas as pd\n"
        "from mixpeek_magics.frames import plot_durations, build_task_frame\n"
        "try:\n"
        "    plot_durations(build_task_frame([]))\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert 'pip install "mixpeek-magics[plot]"' in out
