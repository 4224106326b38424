"""The default client, for the layers below the notebook.

Frames and other helpers take ``client=None`` to mean "the signed-in client";
the session lives in the notebook layer (4), which registers itself here when
it loads, so nothing below it imports upward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_provider: Callable[[], Any] | None = None


def set_client_provider(provider: Callable[[], Any] | None) -> None:
    """Register the callable that returns the signed-in client (None to unregister)."""
    global _provider
    _provider = provider


def default_client() -> Any:
    """The signed-in client, or a clear error when there is no session to ask."""
    if _provider is None:
        raise LookupError(
            "no client given and no signed-in session: pass client=Mixpeek(api_key=..., "
            "base_url=...), or sign in first with %mixpeek_auth in a notebook"
        )
    return _provider()
