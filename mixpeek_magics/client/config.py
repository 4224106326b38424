"""Client configuration: arguments, else environment, else defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from mixpeek_magics.client.errors import ConfigurationError, redact_key, register_secret

DEFAULT_BASE_URL = "https://api.mixpeek.com"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRY_SECONDS = 60.0

ENV_API_KEY = "MIXPEEK_API_KEY"
ENV_BASE_URL = "MIXPEEK_BASE_URL"
ENV_NAMESPACE = "MIXPEEK_NAMESPACE"


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to talk to one Mixpeek server.

    ``repr()`` shows the key as ``sk_...abcd`` at most.
    """

    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    namespace: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_retry_seconds: float = DEFAULT_MAX_RETRY_SECONDS
    user_agent: str = "mixpeek-magics/0.1"

    def __post_init__(self) -> None:
        base = (self.base_url or "").strip().rstrip("/")
        if not (base.startswith("http://") or base.startswith("https://")):
            raise ConfigurationError(
                f"base_url must start with http:// or https:// (got {base!r}); pass base_url=... or set {ENV_BASE_URL}"
            )
        object.__setattr__(self, "base_url", base)
        register_secret(self.api_key)  # errors redact it whatever the server echoes
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigurationError(f"timeout must be positive seconds (got {self.timeout!r})")
        if self.max_retry_seconds is None or self.max_retry_seconds < 0:
            raise ConfigurationError(f"max_retry_seconds must be >= 0 (got {self.max_retry_seconds!r})")

    @classmethod
    def resolve(
        cls,
        api_key: str | None = None,
        base_url: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        max_retry_seconds: float | None = None,
        **extra: Any,
    ) -> ClientConfig:
        """Arguments win; else ``MIXPEEK_API_KEY`` / ``MIXPEEK_BASE_URL`` / ``MIXPEEK_NAMESPACE``."""
        return cls(
            api_key=api_key if api_key is not None else (os.environ.get(ENV_API_KEY) or None),
            base_url=base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL,
            namespace=namespace if namespace is not None else (os.environ.get(ENV_NAMESPACE) or None),
            timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
            max_retry_seconds=DEFAULT_MAX_RETRY_SECONDS if max_retry_seconds is None else float(max_retry_seconds),
            **extra,
        )

    @property
    def redacted_key(self) -> str:
        return redact_key(self.api_key)

    def replace(self, **changes: Any) -> ClientConfig:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def __repr__(self) -> str:
        return (
            f"ClientConfig(api_key={self.redacted_key!r}, base_url={self.base_url!r}, "
            f"namespace={self.namespace!r}, timeout={self.timeout!r}, "
            f"max_retry_seconds={self.max_retry_seconds!r})"
        )

    __str__ = __repr__
