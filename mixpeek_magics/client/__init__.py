"""The Mixpeek API client (layer 1: httpx + pydantic, nothing from the notebook).

    from mixpeek_magics.client import Mixpeek, AsyncMixpeek, ClientConfig, errors

Importing this package is cheap: ``Mixpeek`` and friends (and with them httpx
and pydantic) load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mixpeek_magics._lazy import lazy_getattr

if TYPE_CHECKING:
    from mixpeek_magics.client import errors as errors, models as models, statuses as statuses
    from mixpeek_magics.client._client import AsyncMixpeek as AsyncMixpeek, Mixpeek as Mixpeek
    from mixpeek_magics.client.config import ClientConfig as ClientConfig
    from mixpeek_magics.client.errors import WaitTimeout as WaitTimeout
    from mixpeek_magics.client.models import Task as Task
    from mixpeek_magics.client.pagination import Page as Page

_LAZY = {
    "Mixpeek": "mixpeek_magics.client._client:Mixpeek",
    "AsyncMixpeek": "mixpeek_magics.client._client:AsyncMixpeek",
    "ClientConfig": "mixpeek_magics.client.config:ClientConfig",
    "Page": "mixpeek_magics.client.pagination:Page",
    "Task": "mixpeek_magics.client.models.tasks:Task",
    "WaitTimeout": "mixpeek_magics.client.errors:WaitTimeout",
    "errors": "mixpeek_magics.client.errors",
    "models": "mixpeek_magics.client.models",
    "statuses": "mixpeek_magics.client.statuses",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
