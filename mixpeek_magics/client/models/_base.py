"""Base of every response model: forward compatible by construction."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from mixpeek_magics.client.statuses import TaskStatus

_KNOWN_STATUSES = {s.value: s for s in TaskStatus}


def _status(value: Any) -> Any:
    """Known statuses become ``TaskStatus`` members; anything else stays a plain string."""
    if value is None:
        return None
    if isinstance(value, TaskStatus):
        return value
    text = str(value.value if hasattr(value, "value") else value)
    return _KNOWN_STATUSES.get(text.upper(), text)


#: A status field: a ``TaskStatus`` member when known, else the server's string.
Status = Annotated[
    Any,
    BeforeValidator(_status),
    PlainSerializer(lambda v: None if v is None else str(v), return_type=Any),
]


class MixpeekModel(BaseModel):
    """Unknown fields are kept (``extra="allow"``) so newer servers never break reads."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)


class DeleteResponse(MixpeekModel):
    message: str | None = None
    success: bool | None = None
