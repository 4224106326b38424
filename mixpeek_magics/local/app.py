"""The ASGI application: routes, error handlers, contract strictness, fault injection, request log."""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import FastAPI

from .contract import ContractMiddleware
from .errors import error_body, install_handlers
from .routes import batches, buckets, misc, namespaces, objects, tasks, uploads
from .state import State

log = logging.getLogger("mixpeek_magics.local")


class FaultInjection:
    """Pure ASGI middleware: logs requests, adds latency, injects 429/503 before any handler runs."""

    def __init__(self, app, state: State):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = self.state
        method, path = scope.get("method", ""), scope.get("path", "")
        state.request_log.append((method, path))
        settings = state.settings
        if path.startswith("/v1/"):
            if settings.latency_ms > 0:
                await asyncio.sleep(state.scaled(settings.latency_ms / 1000.0))
            if settings.fault_rate_429 > 0 or settings.fault_rate_503 > 0:
                r = state.fault_rng.random()
                status = None
                if r < settings.fault_rate_429:
                    status = 429
                elif r < settings.fault_rate_429 + settings.fault_rate_503:
                    status = 503
                if status is not None:
                    log.debug("injected %s for %s %s", status, method, path)
                    return await self._reject(status, send)
        return await self.app(scope, receive, send)

    async def _reject(self, status: int, send) -> None:
        retry_after = format_retry_after(self.state.settings.retry_after_seconds)
        msg = (
            "rate limit exceeded (injected by the local server)"
            if status == 429
            else "service temporarily unavailable (injected by the local server)"
        )
        body = json.dumps(
            error_body(status, msg, None, {"injected": True, "retry_after_seconds": float(retry_after)})
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", retry_after.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """Pure ASGI middleware: reads a request body under a size cap (413, from Content-Length before
    reading or as it streams) and a per-chunk read timeout (408: a stalled body cannot hold a
    connection), then hands the buffered body on."""

    def __init__(self, app, state: State):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.state.settings.max_request_bytes
        timeout = self.state.settings.body_read_timeout_seconds or None
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return await _refuse(
                    send,
                    413,
                    f"request body of {int(value)} bytes exceeds the {limit}-byte limit",
                    {"max_bytes": limit},
                )
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except asyncio.TimeoutError:
                return await _refuse(
                    send, 408, f"request body not received within {timeout:g} s", {"timeout_seconds": timeout}
                )
            if message["type"] == "http.disconnect":
                return None  # nobody to answer
            size += len(message.get("body", b""))
            if size > limit:
                return await _refuse(send, 413, f"request body exceeds the {limit}-byte limit", {"max_bytes": limit})
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _refuse(send, status: int, message: str, details: dict) -> None:
    body = json.dumps(error_body(status, message, "RequestTimeoutError" if status == 408 else None, details)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def format_retry_after(seconds: float) -> str:
    """Whole seconds as an integer (RFC 9110 delta-seconds); a fractional setting is sent as is."""
    seconds = max(0.0, float(seconds))
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:g}"


def create_app(state: State) -> FastAPI:
    app = FastAPI(
        title="Mixpeek local server (mixpeek-magics)",
        version="0.82-local",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.local = state
    install_handlers(app)
    for module in (misc, namespaces, buckets, objects, uploads, batches, tasks):
        app.include_router(module.router)
    from .sync_runner import install as install_storage

    install_storage(app, state)  # storage connections + bucket syncs (routes, runner, blob readers)
    from .collections import install as install_search

    install_search(app, state)  # collections, documents, retrievers, thumbnails
    # Inside FaultInjection: every request is logged, an injected fault comes before validation.
    app.add_middleware(ContractMiddleware, state=state)
    app.add_middleware(BodyLimits, state=state)  # before anything reads the body
    app.add_middleware(FaultInjection, state=state)
    return app
