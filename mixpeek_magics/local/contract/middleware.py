"""Pure ASGI middleware: refuse request bodies the contract refuses, cut answers to the contract.

Only requests that are contract operations are touched (``/v1/...`` paths the
vendored file names); presigned PUTs and anything else pass through. A JSON
request body is read whole before the handler runs and replayed to it; a JSON
answer is buffered, projected to its schema, checked when
``settings.contract_check`` is on, and sent with its new length. Other answers
(files, empty 204s) pass through untouched. What it saw goes to
``state.contract_stats`` (and, when ``$MIXPEEK_LOCAL_CONTRACT_REPORT`` names a
file, what is new is appended there after each request).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from ..db import dumps_bytes
from ..errors import error_body

log = logging.getLogger("mixpeek_magics.local")


def _content_type(headers) -> bytes:
    for k, v in headers:
        if k.lower() == b"content-type":
            return v.lower()
    return b""


class ContractMiddleware:
    def __init__(self, app, state):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").startswith("/v1/"):
            return await self.app(scope, receive, send)
        from . import strict

        checker = strict()
        method, path = scope["method"], scope["path"]
        stats = self.state.contract_stats
        op = checker.contract.match(method, path)
        if op is None:
            stats.request_unmatched(method, path)
            return await self.app(scope, receive, send)
        if op.request_body is not None:
            body, disconnected = await _read_body(receive)
            if not disconnected:
                errors = checker.request_errors(op, body)
                if errors:
                    # As the service: a body that is not JSON first; then who is asking (401,
                    # 403, the namespace); then what the body says.
                    denied = None if errors[0]["type"] == "json_invalid" else _caller_refusal(scope)
                    if denied is not None:
                        return await _send_json(
                            send,
                            denied.status,
                            error_body(denied.status, denied.message, denied.type, denied.details),
                            denied.headers,
                        )
                    stats.request_refused(sorted({e["type"] for e in errors}))
                    stats.report()  # before answering: the caller may read the report next
                    return await _send_json(send, 422, checker.refusal(op, errors))
            receive = _replay(body, receive, disconnected)
        stats.request_accepted()

        started: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def send_wrapper(message):
            nonlocal started
            kind = message["type"]
            if kind == "http.response.start":
                if _content_type(message.get("headers", ())).startswith(b"application/json"):
                    started = message
                    return
            elif kind == "http.response.body" and started is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start, started = started, None
                status = start["status"]
                body = self._answer(checker, op, status, b"".join(chunks))
                headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                stats.report()
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            stats.report()

    def _answer(self, checker, op, status: int, body: bytes) -> bytes:
        stats = self.state.contract_stats
        schema = op.response_schema(status)
        if schema is None:
            stats.response_undeclared(op.key)
            return body
        if not body:
            return body
        try:
            data = json.loads(body)
        except ValueError:
            stats.response(
                True,
                None,
                [
                    {
                        "operation": op.key,
                        "status": status,
                        "schema": schema,
                        "path": "$",
                        "type": "json_invalid",
                        "msg": "the answer is not JSON",
                    }
                ],
            )
            return body
        dropped: Counter = Counter()
        data = checker.project(schema, data, dropped)
        check = self.state.settings.contract_check
        violations = checker.response_violations(op, status, schema, data) if check else []
        if violations:
            log.debug("contract violation in %s %s answer: %s", op.key, status, violations[:3])
        stats.response(check, dropped, violations)
        return dumps_bytes(data) if dropped else body


async def _read_body(receive) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(parts), True
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), False


def _replay(body: bytes, receive, disconnected: bool):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if disconnected:
            return {"type": "http.disconnect"}
        return await receive()

    return replay


async def _send_json(send, status: int, payload: dict[str, Any], extra_headers: dict[str, str] | None = None) -> None:
    body = dumps_bytes(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _caller_refusal(scope):
    """The APIError the route's caller and namespace dependencies raise for this request
    (bad key, read-only key, missing or unknown namespace), or None."""
    from starlette.requests import Request

    from ..deps import caller, namespace
    from ..errors import APIError

    app = scope.get("app")
    route = _route_for(app, scope) if app is not None else None
    if route is None:
        return None
    calls = _dependency_calls(route)
    request = Request(scope)
    try:
        if namespace in calls:
            namespace(
                request, caller(request, request.headers.get("authorization")), request.headers.get("x-namespace")
            )
        elif caller in calls:
            caller(request, request.headers.get("authorization"))
    except APIError as exc:
        return exc
    return None


def _route_for(app, scope):
    from starlette.routing import Match

    stack = list(getattr(getattr(app, "router", None), "routes", ()))
    while stack:
        r = stack.pop(0)
        inner = getattr(r, "original_router", None)
        if inner is not None:
            stack[:0] = list(inner.routes)
            continue
        if getattr(r, "dependant", None) is not None and r.matches(scope)[0] == Match.FULL:
            return r
    return None


def _dependency_calls(route) -> set:
    calls, todo = set(), [route.dependant]
    while todo:
        d = todo.pop()
        for sub in d.dependencies:
            calls.add(sub.call)
            todo.append(sub)
    return calls
