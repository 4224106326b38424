from __future__ import annotations

from typing import Any, NamedTuple

from mixpeek_magics.client import statuses
from mixpeek_magics.client.models._base import MixpeekModel, Status


class Progress(NamedTuple):
    processed: int | None
    total: int | None
    percentage: float | None


def _num(value: Any, kind: type) -> Any:
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


class Task(MixpeekModel):
    """``TaskResponse``. ``status`` and ``task_type`` may be values this client
    has never heard of; they are kept as strings (known statuses are
    ``TaskStatus`` members, which compare equal to their strings)."""

    task_id: str
    task_type: str | None = None
    status: Status = statuses.TaskStatus.UNKNOWN
    inputs: list[Any] | None = None
    outputs: list[Any] | None = None
    additional_data: dict[str, Any] | None = None
    error: str | None = None

    @property
    def is_terminal(self) -> bool:
        return statuses.is_terminal(self.status)

    @property
    def progress(self) -> Progress:
        """``(processed, total, percentage)`` from ``additional_data``; unknown parts are None."""
        data = self.additional_data or {}
        processed = _num(data.get("processed"), int)
        total = _num(data.get("total"), int)
        percentage = _num(data.get("percentage"), float)
        if percentage is None and processed is not None and total:
            percentage = round(100.0 * processed / total, 2)
        return Progress(processed, total, percentage)

    @property
    def failed_objects(self) -> list[dict[str, Any]]:
        """``additional_data.failed_objects``: ``[{"object_id", "filename", "error"}, ...]``."""
        items = (self.additional_data or {}).get("failed_objects") or []
        return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []
