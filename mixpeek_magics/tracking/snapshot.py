"""What a watcher knows about one task at one moment, and who gets told.

Displays (widgets, text lines, tests) only ever see ``TaskSnapshot`` objects
through the ``WatchObserver`` protocol, so they never talk to the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from mixpeek_magics.client import statuses


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class TaskSnapshot:
    """One task as last observed. ``processed`` / ``total`` / ``percentage`` and
    ``failed_items`` come from the task's batch (``BatchModel.progress`` while it
    runs, the batch itself once it ended); a task without a batch, or whose batch
    has reported no progress yet, has none of them (the bar is indeterminate)."""

    task_id: str
    status: str
    task_type: str | None = None
    processed: int | None = None
    total: int | None = None
    percentage: float | None = None  # 0..100
    error: str | None = None
    # Names (filenames where the caller knows them, else object ids) of items that failed inside the task.
    failed_items: tuple[str, ...] = ()
    label: str | None = None  # human context: bucket / batch / sync name
    first_seen: datetime = field(default_factory=utcnow)
    observed_at: datetime = field(default_factory=utcnow)
    # When the status first became terminal, as observed (None while running).
    finished_at: datetime | None = None
    # How many items failed (the batch's failed_object_count / progress errors), when known.
    failed: int | None = None
    # Processing tier (0-based) of total_tiers, from the task's additional_data.
    current_tier: int | None = None
    total_tiers: int | None = None
    batch_id: str | None = None
    bucket_id: str | None = None
    # The error of each failed item, in the order of ``failed_items`` ("" where the batch gives none).
    failed_errors: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return statuses.is_terminal(self.status)

    @property
    def family(self) -> str:
        return statuses.family(self.status)

    @property
    def fraction(self) -> float | None:
        """Progress as 0..1: from percentage or processed/total; else, with
        several tiers, the share of tiers done; else None."""
        if self.percentage is not None:
            return max(0.0, min(1.0, self.percentage / 100.0))
        if self.total:
            return max(0.0, min(1.0, (self.processed or 0) / self.total))
        if self.terminal and self.status in ("COMPLETED",):
            return 1.0
        if self.total_tiers and self.total_tiers > 1 and self.current_tier is not None and not self.terminal:
            return max(0.0, min(1.0, self.current_tier / self.total_tiers))
        return None

    @property
    def indeterminate(self) -> bool:
        """Running with no progress reported yet: show a bar without a value."""
        return not self.terminal and self.fraction is None

    @property
    def tier_text(self) -> str | None:
        """``"tier 1/2"`` while a multi-tier batch runs (1-based for people)."""
        if self.total_tiers and self.total_tiers > 1 and self.current_tier is not None and not self.terminal:
            return f"tier {min(self.current_tier + 1, self.total_tiers)}/{self.total_tiers}"
        return None


class WatchObserver(Protocol):
    """Receives every state change of a watch.

    ``connection`` is ``"ok"`` or ``"reconnecting"`` (server unreachable,
    5xx or timeouts; last known state is kept). Observers must be quick and
    must not raise; they may be called from a background thread.
    """

    def on_update(self, snapshots: Sequence[TaskSnapshot], connection: str) -> None: ...

    def on_finish(self, snapshots: Sequence[TaskSnapshot]) -> None: ...
