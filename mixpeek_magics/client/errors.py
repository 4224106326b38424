"""Typed errors raised by the Mixpeek client.

Every error message is short, says what to do next, and never contains the
API key (messages are scrubbed of it before they are built into an error).
This module imports nothing heavy: it works on status codes, header values and
body bytes, not on httpx objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "MixpeekError",
    "ConfigurationError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "RateLimitError",
    "ServerError",
    "APIConnectionError",
    "APITimeoutError",
    "ResponseFormatError",
    "WaitTimeout",
    "error_from_response",
    "parse_retry_after",
    "redact_key",
    "redact",
    "redact_value",
    "register_secret",
]


def redact_key(key: str | None) -> str:
    """``sk_...abcd`` (at most the last four characters), or ``<none>``."""
    if not key:
        return "<none>"
    if len(key) < 12:
        return "sk_...****"
    return f"sk_...{key[-4:]}"


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by its redaction."""
    if secret and text and secret in text:
        text = text.replace(secret, redact_key(secret))
    return text


# Secrets to take out of every error whatever the server echoes: API keys in use and storage
# credentials sent to the server (registered by the clients and the credential builders).
_SECRETS: set[str] = set()
_KEYLIKE = re.compile(r"(?i)(bearer\s+)[^\s\"',;}\]]{6,}|\bsk_[A-Za-z0-9_\-]{6,}")


def register_secret(secret: str | None) -> None:
    """Redact ``secret`` from every error built from now on (short values are ignored)."""
    if isinstance(secret, str) and len(secret) >= 8:
        _SECRETS.add(secret)


def redact(text: Any, key: str | None = None) -> str:
    """``text`` without ``key``, any registered secret, bearer token or ``sk_...`` key."""
    out = "" if text is None else str(text)
    if not out:
        return out
    for secret in ([key] if key else []) + sorted(_SECRETS, key=len, reverse=True):
        if secret and secret in out:
            out = out.replace(secret, redact_key(secret) if secret.startswith("sk_") else "***")
    return _KEYLIKE.sub(_mask_keylike, out)


def _mask_keylike(match: re.Match[str]) -> str:
    bearer: str | None = match.group(1)
    return bearer + "***" if bearer else redact_key(match.group(0))


def redact_value(value: Any, key: str | None = None, _depth: int = 0) -> Any:
    """A copy of a decoded JSON value (an error's ``details``) with every string redacted."""
    if _depth > 20:
        return "..."
    if isinstance(value, str):
        return redact(value, key)
    if isinstance(value, dict):
        return {redact(k, key): redact_value(v, key, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, key, _depth + 1) for v in value]
    return value


class MixpeekError(Exception):
    """Base class of every error this client raises."""

    def __init__(self, message: str) -> None:
        message = redact(message)  # every message, whoever built it: no key or registered secret
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigurationError(MixpeekError):
    """Missing API key, namespace or malformed base URL; nothing was sent."""


class ResponseFormatError(MixpeekError):
    """The server answered 2xx with a body this client cannot read."""


class APIStatusError(MixpeekError):
    """The server answered with a non-2xx status."""

    def __init__(
        self,
        status_code: int,
        message: str,
        error_type: str | None = None,
        details: Any = None,
        *,
        method: str | None = None,
        url: str | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.details = details
        self.method = method
        self.url = url
        self.server_message = server_message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"


class BadRequestError(APIStatusError):
    """400 and other 4xx without a dedicated class."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but not allowed to do this (e.g. read-only key writing)."""


class NotFoundError(APIStatusError):
    """404."""


class ConflictError(APIStatusError):
    """409: the resource already exists or is in a state that forbids this."""


class ValidationError(APIStatusError):
    """422: the request body or parameters were rejected.

    ``fields`` is a list of ``(dotted location, message)``, e.g.
    ``[("body.bucket_name", "Field required")]``; ``accepted_keys`` the keys
    the request's schema declares, when the server names them (an undeclared
    key is refused as ``extra_forbidden``).
    """

    def __init__(self, *args: Any, fields: list[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields: list[tuple[str, str]] = list(fields or [])
        accepted = self.details.get("accepted_keys") if isinstance(self.details, dict) else None
        self.accepted_keys: list[str] = [str(k) for k in accepted] if isinstance(accepted, list) else []


class RateLimitError(APIStatusError):
    """429: slow down. ``retry_after`` is the advised wait in seconds, if any."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx."""


class APIConnectionError(MixpeekError):
    """The server could not be reached, or the connection broke mid-request."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class APITimeoutError(APIConnectionError):
    """The request did not complete within its timeout."""


class WaitTimeout(MixpeekError, TimeoutError):
    """``tasks.wait`` gave up before the task finished. ``task`` is the last state seen."""

    def __init__(self, message: str, task: Any = None) -> None:
        super().__init__(message)
        self.task = task


# --------------------------------------------------------------------------- parsing


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        now = now or datetime.now(timezone.utc)
        return max(0.0, (when - now).total_seconds())
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def _loc_path(loc: Any) -> str:
    if isinstance(loc, (list, tuple)):
        return ".".join(str(part) for part in loc)
    return str(loc)


def _detail_fields(items: Any) -> list[tuple[str, str]]:
    """``[(dotted location, message)]`` from ``[{"loc", "msg", "type"}, ...]`` (the
    ``details.errors`` of an ErrorResponse, or FastAPI's ``detail`` list)."""
    fields: list[tuple[str, str]] = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            fields.append((_loc_path(item.get("loc", ())), str(item.get("msg", ""))))
    return fields


def _parse_body(body: bytes | str | None) -> tuple[str | None, str | None, Any, list[tuple[str, str]]]:
    """(server message, error type, details, validation fields) from an error body."""
    if body is None:
        return None, None, None, []
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    try:
        data = json.loads(text)
    except ValueError:
        snippet = " ".join(text.split())[:200]
        return (snippet or None), None, None, []
    fields: list[tuple[str, str]] = []
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):  # the contract's ErrorResponse
            message = err.get("message")
            details = err.get("details")
            fields = _detail_fields(details.get("errors") if isinstance(details, dict) else None)
            return (str(message) if message is not None else None), err.get("type"), details, fields
        if isinstance(err, str):
            return err, data.get("type"), data.get("details"), fields
        detail = data.get("detail")
        if isinstance(detail, list):  # FastAPI validation errors
            fields = _detail_fields(detail)
            message = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in fields) or None
            return message, "validation_error", detail, fields
        if isinstance(detail, str):
            return detail, None, None, fields
        if isinstance(detail, dict):
            return str(detail.get("message") or detail), detail.get("type"), detail, fields
        if isinstance(data.get("message"), str):
            return data["message"], data.get("type"), data.get("details"), fields
    snippet = " ".join(text.split())[:200]
    return (snippet or None), None, None, fields


_CLASSES: dict[int, type[APIStatusError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def error_from_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes | str | None,
    *,
    method: str,
    url: str,
    base_url: str,
    api_key: str | None = None,
    presigned: bool = False,
) -> APIStatusError:
    """Build the typed error for a non-2xx response.

    ``url`` must already be free of query strings that carry secrets
    (presigned URLs); ``api_key`` is scrubbed from everything.
    """
    server_message, error_type, details, fields = _parse_body(body)
    # whatever the server echoed (an Authorization header, a credential) stops here
    server_message = redact(server_message, api_key) if server_message else None
    error_type = redact(error_type, api_key) if isinstance(error_type, str) else None
    details = redact_value(details, api_key)
    fields = [(redact(loc, api_key), redact(msg, api_key)) for loc, msg in fields]
    url = redact(url, api_key)
    said = f": {server_message}" if server_message else ""
    where = f"{method} {url}"
    retry_after: float | None = None
    if presigned:
        human = f"Upload to storage failed with HTTP {status_code} ({where}){said}"
    elif status_code == 401:
        human = f"API key rejected by {base_url}: run %mixpeek_auth again"
        if server_message:
            human += f" (server said: {server_message})"
    elif status_code == 403:
        human = (
            f"Permission denied for {where}{said}. "
            "A read-only API key cannot create, change or delete; use a key with write access"
        )
    elif status_code == 404:
        human = f"Not found: {where}{said}"
    elif status_code == 409:
        human = f"Conflict on {where}{said}"
    elif status_code == 422:
        human = f"Request rejected as invalid ({where})"
        if fields:
            human += ": " + "; ".join(f"{loc}: {msg}" for loc, msg in fields[:8])
            if len(fields) > 8:
                human += f"; and {len(fields) - 8} more"
        elif server_message:
            human += said
        accepted = details.get("accepted_keys") if isinstance(details, dict) else None
        if isinstance(accepted, list) and accepted:
            human += f" (accepted keys: {', '.join(map(str, accepted))})"
    elif status_code == 429:
        retry_after = parse_retry_after(_header(headers, "retry-after"))
        human = f"Rate limited by {base_url} ({where})"
        human += f"; retry after {retry_after:g}s" if retry_after is not None else "; wait and retry"
    elif status_code >= 500:
        human = f"Server error {status_code} from {base_url} for {where}{said}. Try again shortly"
    else:
        human = f"HTTP {status_code} for {where}{said}"
    human = redact(human, api_key)
    cls = _CLASSES.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else BadRequestError
    kwargs: dict[str, Any] = dict(method=method, url=url, server_message=server_message)
    if cls is ValidationError:
        return ValidationError(status_code, human, error_type, details, fields=fields, **kwargs)
    if cls is RateLimitError:
        return RateLimitError(status_code, human, error_type, details, retry_after=retry_after, **kwargs)
    return cls(status_code, human, error_type, details, **kwargs)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and name.lower() != name:
        value = headers.get(name.lower())
    if value is None:
        for key, val in headers.items():
            if key.lower() == name.lower():
                return val
    return value
