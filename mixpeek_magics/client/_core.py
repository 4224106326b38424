"""The sans-IO core: request specs, effects, the retry flow.

A resource method builds a :class:`RequestSpec` once. Anything that takes
more than one request (retries, pagination, ``tasks.wait``) is a generator
that *yields effects* and receives their results:

* ``Send(spec)``  -> the driver performs one HTTP exchange and sends back an
  :class:`Outcome` (a fully read response, or the transport exception);
* ``Sleep(s)``    -> the driver sleeps (``time.sleep`` / ``anyio.sleep``);
* ``Emit(value)`` -> only in iterator flows: the driver hands ``value`` to
  the caller's ``for`` / ``async for`` loop.

The sync and async clients are two small drivers of these generators, so no
request, retry rule or pagination step is written twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from mixpeek_magics.client import errors

T = TypeVar("T")

log = logging.getLogger("mixpeek_magics.client")

# Retry-safety of a request.
IDEMPOTENT = "idempotent"  # GET, list, DELETE, confirm, creates made safe to repeat: retry 429, 502/503/504,
# transport errors
UNSAFE = "unsafe"  # creates: retry only 429 and "never reached the server"

RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 10.0
# A refused connection is retried this many times, quickly: a server that is not there fails fast.
CONNECT_RETRIES = 2
CONNECT_BACKOFF = 0.25


@dataclass(frozen=True)
class RequestSpec(Generic[T]):
    """One HTTP request, independent of how it is sent; ``T`` is what ``parse`` makes of the answer."""

    method: str
    path: str  # "/v1/..." or an absolute URL (presigned uploads)
    params: Mapping[str, Any] | None = None
    json: Any = None
    parse: Callable[[Any], T] | None = None  # decoded JSON -> result; None -> decoded JSON
    retry: str = IDEMPOTENT
    namespaced: bool = False  # send X-Namespace
    namespace: str | None = None  # per-call override
    timeout: float | None = None  # per-call override (seconds)
    authenticated: bool = True
    # Presigned upload: stream this file as the body; result is the ETag.
    upload_path: str | None = None
    upload_size: int | None = None
    headers: Mapping[str, str] | None = None

    @property
    def presigned(self) -> bool:
        return self.upload_path is not None


@dataclass
class Send:
    spec: RequestSpec[Any]


@dataclass
class Sleep:
    seconds: float


@dataclass
class Emit:
    value: Any


@dataclass
class Outcome:
    """What the driver sends back for a ``Send``."""

    status_code: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    error: BaseException | None = None  # an httpx.TransportError (or subclass)
    method: str = ""
    url: str = ""  # safe to show: no query string

    def json(self) -> Any:
        import json as _json

        if not self.content:
            return None
        return _json.loads(self.content)


#: A sans-IO flow: yields effects, receives their results, returns a ``T``.
Flow = Generator[Any, Any, T]


@dataclass(frozen=True)
class Context:
    """What the flows need from the client: config values, nothing I/O."""

    base_url: str
    api_key: str | None = field(repr=False)  # only used to scrub messages
    max_retry_seconds: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    rand: Callable[[float, float], float] = field(default=random.uniform, repr=False)

    def __repr__(self) -> str:
        return (
            f"Context(base_url={self.base_url!r}, api_key={errors.redact_key(self.api_key)!r}, "
            f"max_retry_seconds={self.max_retry_seconds!r})"
        )


# --------------------------------------------------------------------------- classification


def _never_sent(exc: BaseException) -> bool:
    """True when the request provably did not reach the server."""
    import httpx

    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _refused(exc: BaseException) -> bool:
    """A connection that could not be opened (nobody listening, host down)."""
    import httpx

    return isinstance(exc, httpx.ConnectError)


def _transport_error(exc: BaseException, out: Outcome, ctx: Context) -> errors.APIConnectionError:
    import httpx

    where = f"{out.method} {out.url}"
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the response",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "")
        msg = (
            f"Timed out {kind + ' ' if kind else ''}for {where}: "
            "the server is slow or unreachable; retry or raise timeout="
        )
        return errors.APITimeoutError(errors.scrub(msg, ctx.api_key), method=out.method, url=out.url)
    if isinstance(exc, httpx.ConnectError):
        target = out.url if out.url.startswith(("http://", "https://")) else ctx.base_url
        origin = _origin(target)
        msg = f"Cannot reach {origin}: is the server running?"
        if _is_local(origin):
            msg += " (%mixpeek_auth --local starts one)"
        else:
            msg += " Check the network and MIXPEEK_BASE_URL"
        return errors.APIConnectionError(errors.scrub(msg, ctx.api_key), method=out.method, url=out.url)
    reason = type(exc).__name__
    msg = f"Connection to {_origin(out.url or ctx.base_url)} broke during {where} ({reason}); retry"
    return errors.APIConnectionError(errors.scrub(msg, ctx.api_key), method=out.method, url=out.url)


def _origin(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _is_local(origin: str) -> bool:
    host = origin.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def raise_for_outcome(out: Outcome, spec: RequestSpec[Any], ctx: Context) -> None:
    if out.error is not None:
        raise _transport_error(out.error, out, ctx) from None
    assert out.status_code is not None
    if out.status_code >= 400:
        raise errors.error_from_response(
            out.status_code,
            out.headers,
            out.content,
            method=out.method,
            url=out.url,
            base_url=ctx.base_url,
            api_key=ctx.api_key,
            presigned=spec.presigned,
        )


def clean_etag(value: str | None) -> str | None:
    """A PUT's ETag header as ``confirm(..., etag=...)`` takes it: without its quotes."""
    return value.strip().strip('"') if value else None


def parse_outcome(out: Outcome, spec: RequestSpec[T], ctx: Context) -> T:
    if out.status_code is not None and 300 <= out.status_code < 400:
        location = errors.redact(_origin(out.headers.get("location") or "elsewhere").split("?")[0], ctx.api_key)
        raise errors.ResponseFormatError(
            f"{out.method} {out.url} was redirected ({out.status_code}) to {location[:200]}; "
            f"set the base URL (MIXPEEK_BASE_URL) to the server's real address"
        )
    if spec.presigned:  # a presigned PUT's result is its ETag
        return cast(T, clean_etag(out.headers.get("etag")))
    try:
        data = out.json()
    except ValueError:
        raise errors.ResponseFormatError(
            f"{out.method} {out.url} answered {out.status_code} with a body that is not JSON; "
            f"is {ctx.base_url} a Mixpeek API server?"
        ) from None
    if spec.parse is None:  # the decoded JSON itself
        return cast(T, data)
    try:
        return spec.parse(data)
    except Exception as exc:  # pydantic.ValidationError and friends
        if isinstance(exc, errors.MixpeekError):
            raise
        first = str(exc).splitlines()[0:3]
        raise errors.ResponseFormatError(
            errors.redact(f"Unexpected response shape from {out.method} {out.url}: {' '.join(first)}", ctx.api_key)
        ) from None


def backoff_delay(attempt: int, ctx: Context, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter (attempt 0 is the first retry).

    A ``Retry-After`` is honoured as given: the server said when, so that is the wait
    (no exponential growth on top of it)."""
    if retry_after is not None:
        return retry_after
    return ctx.rand(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt)))


# --------------------------------------------------------------------------- the request flow


def call(spec: RequestSpec[T], ctx: Context, attempts: list[int] | None = None) -> Flow[T]:
    """Send ``spec`` with retries where they cannot duplicate work; return the parsed result.

    One retry budget per call: every retry (whatever its cause) comes out of
    ``ctx.max_retry_seconds``, counted from the first attempt. A refused
    connection is retried ``CONNECT_RETRIES`` times only."""
    start = ctx.clock()
    attempt = 0
    refused = 0
    while True:
        if attempts is not None:
            attempts.append(attempt)  # the caller can tell a retried answer from a first one
        out: Outcome = yield Send(spec)
        retry_after: float | None = None
        if out.error is not None:
            retryable = _never_sent(out.error) or spec.retry == IDEMPOTENT
            reason = type(out.error).__name__
            if _refused(out.error):
                refused += 1
                if refused > CONNECT_RETRIES:
                    raise_for_outcome(out, spec, ctx)
        elif out.status_code is not None and out.status_code < 400:
            return parse_outcome(out, spec, ctx)
        elif out.status_code == 429:
            # The server refused without doing any work: safe for every request.
            retryable = True
            retry_after = errors.parse_retry_after(out.headers.get("retry-after"))
            reason = "429"
        elif out.status_code in RETRY_STATUSES:
            retryable = spec.retry == IDEMPOTENT
            retry_after = errors.parse_retry_after(out.headers.get("retry-after"))
            reason = str(out.status_code)
        else:
            retryable = False
            reason = ""
        if not retryable or ctx.max_retry_seconds <= 0:
            raise_for_outcome(out, spec, ctx)
        delay = (
            CONNECT_BACKOFF * refused
            if out.error is not None and _refused(out.error)
            else backoff_delay(attempt, ctx, retry_after)
        )
        elapsed = ctx.clock() - start
        if elapsed + delay > ctx.max_retry_seconds:
            log.info(
                "giving up on %s %s after %.1fs (%s): retry budget of %gs spent",
                out.method,
                out.url,
                elapsed,
                reason,
                ctx.max_retry_seconds,
            )
            raise_for_outcome(out, spec, ctx)
        attempt += 1
        log.info("retrying %s %s in %.2fs after %s (retry %d)", out.method, out.url, delay, reason, attempt)
        yield Sleep(delay)
