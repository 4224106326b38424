"""The ASGI application: routes, error handlers, contract strictness, fault injection, request log."""
from __future__ import annotations

import asyncio
import json
import logging

from fastapi import FastAPI

from .contract import ContractMiddleware
from .errors import error_body, install_handlers
from .routes import batches, buckets, misc, namespaces, objects, tasks, uploads
from .routes.uploads import UPLOAD_PUT_PREFIX, put_upload_asgi
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
        msg = ("rate limit exceeded (injected by the local server)" if status == 429
               else "service temporarily unavailable (injected by the local server)")
        body = json.dumps(error_body(status, msg, None, {"injected": True,
                                                          "retry_after_seconds": float(retry_after)})).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"retry-after", retry_after.encode())]})
        await send({"type": "http.response.body", "body": body})


def format_retry_after(seconds: float) -> str:
    """Whole seconds as an integer (RFC 9110 delta-seconds); a fractional setting is sent as is."""
    seconds = max(0.0, float(seconds))
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:g}"


class LocalApp(FastAPI):
    """FastAPI, except that presigned PUTs go straight to their handler.

    A bulk upload sends one PUT per file. Its handler needs no dependencies,
    no request model and no routing; FastAPI's middleware stack and router cost
    about a third of this server's CPU per PUT. Same answers as the route."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT":
            path = scope["path"]
            if path.startswith(UPLOAD_PUT_PREFIX):
                upload_id = path[len(UPLOAD_PUT_PREFIX):]
                if upload_id and "/" not in upload_id:
                    state = self.state.local
                    state.request_log.append(("PUT", path))
                    return await put_upload_asgi(state, scope, receive, send)
        await super().__call__(scope, receive, send)


def create_app(state: State) -> FastAPI:
    app = LocalApp(title="Mixpeek local server (mixpeek-magics)", version="0.81-local",
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
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
    app.add_middleware(FaultInjection, state=state)
    return app
