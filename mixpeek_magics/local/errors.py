"""Error answers in the contract's shapes.

``ErrorResponse``: ``{"success": false, "status": N, "error": {"message", "type", "details"}}``;
a 422's details list the problems: ``{"errors": [{"loc", "msg", "type"}, ...]}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_DEFAULT_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "ConflictError",
    410: "GoneError",
    413: "PayloadTooLargeError",
    422: "ValidationError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _DEFAULT_TYPES.get(status, "Error")
        self.details = details
        self.headers = headers


def error_body(
    status: int, message: str, type: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "success": False,
        "status": status,
        "error": {"message": message, "type": type or _DEFAULT_TYPES.get(status, "Error"), "details": details},
    }


def error_response(
    status: int,
    message: str,
    type: str | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, type, details), status_code=status, headers=headers)


def not_found(kind: str, ident: str) -> APIError:
    return APIError(404, f"{kind} '{ident}' not found", "NotFoundError", {"resource": kind, "identifier": ident})


def bad_request(message: str, **details: Any) -> APIError:
    return APIError(400, message, "BadRequestError", details or None)


def validation_422(loc: list[Any], msg: str, type: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type}])


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.details, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no route for {request.method} {request.url.path}"
        return error_response(exc.status_code, msg, None, None, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, *validation_error(exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("mixpeek_magics.local").exception(
            "unhandled error on %s %s", request.method, request.url.path
        )
        return error_response(500, f"internal error: {type(exc).__name__}", "InternalServerError")


def validation_error(raw: Any) -> tuple[str, str, dict[str, Any]]:
    """Message, type and details of a 422: ``details.errors`` lists ``{loc, msg, type}``."""
    errors = []
    for e in raw:
        item = {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", "value_error"))}
        if "input" in e and _small(e["input"]):
            item["input"] = e["input"]
        errors.append(item)
    parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors[:10]]
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "Invalid request: " + "; ".join(parts) + more, "ValidationError", {"errors": errors}


def _small(value: Any) -> bool:
    try:
        import json

        return len(json.dumps(value)) < 500
    except (TypeError, ValueError):
        return False
