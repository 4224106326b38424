"""pandas views of tasks, objects, batches, syncs, connections, documents and search hits, with
summaries and plots.

Importing this module loads neither pandas nor matplotlib: pandas is imported
when a frame is built, matplotlib only when a plot is drawn
(``pip install "mixpeek-magics[plot]"``); without pandas (the ``notebook``
extra) a frame builder raises ``MissingDependencyError`` naming the extra.
"""

from __future__ import annotations

from mixpeek_magics.frames._schema import TASK_COLUMNS, TIMELINE_COLUMNS
from mixpeek_magics.frames._time import parse_when
from mixpeek_magics.frames.history import build_task_frame, task_history, task_timeline
from mixpeek_magics.frames.plots import plot_durations, plot_status_timeline, plot_throughput
from mixpeek_magics.frames.resources import (
    batches_frame,
    connections_frame,
    failures_frame,
    objects_frame,
    syncs_frame,
)
from mixpeek_magics.frames.search import Thumbnail, documents_frame, hits_frame
from mixpeek_magics.frames.summary import Summary, summarize

__all__ = [
    "TASK_COLUMNS",
    "TIMELINE_COLUMNS",
    "Summary",
    "batches_frame",
    "build_task_frame",
    "connections_frame",
    "failures_frame",
    "objects_frame",
    "parse_when",
    "plot_durations",
    "plot_status_timeline",
    "plot_throughput",
    "summarize",
    "syncs_frame",
    "task_history",
    "task_timeline",
    "Thumbnail",
    "documents_frame",
    "hits_frame",
]
