"""Task statuses: the known values, their families and lifecycle order.

The API adds statuses over time (QUEUED, INTERRUPTED, DEACTIVATED on newer
servers), so a status is always handled as a plain string here: unknown
values are kept as they are and treated as not finished.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class TaskStatus(str, Enum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"
    SKIPPED = "SKIPPED"
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"
    SUSPENDED = "SUSPENDED"
    INTERRUPTED = "INTERRUPTED"
    DEACTIVATED = "DEACTIVATED"

    def __str__(self) -> str:  # print the value, not "TaskStatus.X"
        return self.value


TERMINAL: frozenset[str] = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"})
# The documented polling guidance: keep polling while in one of these.
POLLABLE: frozenset[str] = frozenset({"PENDING", "QUEUED", "IN_PROGRESS", "PROCESSING"})

# Order used for sorting and for the pandas Categorical in frames.
LIFECYCLE_ORDER: tuple[str, ...] = (
    "DRAFT",
    "PENDING",
    "QUEUED",
    "IN_PROGRESS",
    "PROCESSING",
    "ACTIVE",
    "SUSPENDED",
    "INTERRUPTED",
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "CANCELED",
    "SKIPPED",
    "ARCHIVED",
    "DEACTIVATED",
    "UNKNOWN",
)

# Families drive colours and summary counts in displays.
_FAMILY = {
    "DRAFT": "pending",
    "PENDING": "pending",
    "QUEUED": "pending",
    "IN_PROGRESS": "running",
    "PROCESSING": "running",
    "ACTIVE": "running",
    "COMPLETED": "success",
    "SKIPPED": "success",
    "COMPLETED_WITH_ERRORS": "partial",
    "FAILED": "failed",
    "INTERRUPTED": "failed",
    "CANCELED": "canceled",
    "SUSPENDED": "canceled",
    "ARCHIVED": "canceled",
    "DEACTIVATED": "canceled",
}
FAMILY_COLORS = {
    "pending": "#9e9e9e",
    "running": "#1e88e5",
    "success": "#43a047",
    "partial": "#fb8c00",
    "failed": "#e53935",
    "canceled": "#6d4c41",
    "unknown": "#8e24aa",
}


_STATUS_VALUES = tuple(s.value for s in TaskStatus)  # TaskStatusEnum of the contract


def status_value(status: Any, *, what: str = "status") -> str | None:
    """One ``TaskStatusEnum`` value for a request body (the API takes exactly one).

    A list, or a value the API does not know, is refused here with the valid
    values, before anything is sent; several statuses go in ``filters``
    (``{"field": "status", "operator": "in", "value": [...]}``)."""
    if status is None:
        return None
    if isinstance(status, (list, tuple, set, frozenset)):
        raise ValueError(
            f"{what} takes one status, got {len(status)}: {sorted(map(str, status))}; for several, pass "
            f"filters={{'AND': [{{'field': 'status', 'operator': 'in', 'value': [...]}}]}} "
            f"(valid statuses: {', '.join(_STATUS_VALUES)})"
        )
    text = str(getattr(status, "value", status)).upper()
    if text not in _STATUS_VALUES:
        raise ValueError(f"{what} {status!r} is not a task status; valid statuses: {', '.join(_STATUS_VALUES)}")
    return text


def normalize(status: object) -> str:
    """The status as an upper-case string, whatever it came as."""
    if isinstance(status, Enum):
        status = status.value
    return str(status).upper() if status is not None else "UNKNOWN"


def is_terminal(status: object) -> bool:
    return normalize(status) in TERMINAL


def family(status: object) -> str:
    return _FAMILY.get(normalize(status), "unknown")


def color(status: object) -> str:
    return FAMILY_COLORS[family(status)]
