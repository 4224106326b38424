from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel


class Health(MixpeekModel):
    """``HealthCheckResponse``: ``status`` is ``OK`` or ``DEGRADED`` (or a newer value)."""

    status: str
    data: dict[str, Any] | None = None  # service name -> bool
    errors: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return str(self.status).upper() == "OK"
