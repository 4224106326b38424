from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from mixpeek_magics.client import statuses
from mixpeek_magics.client.models._base import MixpeekModel, Status

#: The keys the contract documents in a batch task's ``additional_data``
#: (``TaskResponse.additional_data["x-documented-keys"]``); nothing else is read.
DOCUMENTED_KEYS = (
    "error",
    "job_id",
    "from_mongodb",
    "batch_id",
    "bucket_id",
    "namespace_id",
    "current_tier",
    "total_tiers",
    "collection_ids",
    "object_count",
    "sample_object_ids",
)


class Tier(NamedTuple):
    """``current_tier`` (0-based) of ``total_tiers`` processing tiers."""

    current: int | None
    total: int | None


N = TypeVar("N")


def _num(value: Any, kind: Callable[[Any], N]) -> N | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


class Task(MixpeekModel):
    """``TaskResponse``. ``status`` and ``task_type`` may be values this client
    has never heard of; they are kept as strings (known statuses are
    ``TaskStatus`` members, which compare equal to their strings).

    A task carries status, not progress: the progress and failed items of a
    batch task live on its batch (``batch_ref`` names it)."""

    task_id: str
    task_type: str | None = None
    status: Status = statuses.TaskStatus.UNKNOWN
    inputs: list[Any] | None = None
    outputs: list[Any] | None = None
    additional_data: dict[str, Any] | None = None
    error: str | None = None
    cancellation: dict[str, Any] | None = None
    queue_position: int | None = None
    estimated_wait_minutes: float | None = None

    @property
    def is_terminal(self) -> bool:
        return statuses.is_terminal(self.status)

    def _data(self, key: str) -> Any:
        data = self.additional_data
        return data.get(key) if isinstance(data, dict) else None

    @property
    def batch_id(self) -> str | None:
        value = self._data("batch_id")
        return str(value) if value else None

    @property
    def bucket_id(self) -> str | None:
        value = self._data("bucket_id")
        return str(value) if value else None

    @property
    def namespace_id(self) -> str | None:
        value = self._data("namespace_id")
        return str(value) if value else None

    @property
    def object_count(self) -> int | None:
        return _num(self._data("object_count"), int)

    @property
    def tier(self) -> Tier:
        """``(current_tier, total_tiers)`` of a batch task; unknown parts are None."""
        return Tier(_num(self._data("current_tier"), int), _num(self._data("total_tiers"), int))
