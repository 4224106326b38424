"""FastAPI dependencies: the caller (API key), the namespace (X-Namespace)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Header, Request
from fastapi.responses import Response

from .db import dumps, dumps_bytes, loads
from .errors import APIError, not_found
from .state import Caller, State


def get_state(request: Request) -> State:
    return request.app.state.local


def is_write(request: Request) -> bool:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not request.url.path.rstrip("/").endswith("/list")


def caller(request: Request, authorization: str | None = Header(None)) -> Caller:
    state = get_state(request)
    who = state.authenticate(authorization)
    if who.read_only and is_write(request):
        raise APIError(
            403,
            f"API key {who.key_masked} is read-only: {request.method} {request.url.path} needs a key with write access",
            "PermissionDeniedError",
        )
    return who


@dataclass(frozen=True)
class NsCtx:
    org_id: str
    namespace_id: str
    namespace_name: str
    caller: Caller


def find_namespace(state: State, org_id: str, ident: str):
    return state.store.one(
        "SELECT * FROM namespaces WHERE org_id=? AND (namespace_id=? OR name=?) ORDER BY (namespace_id=?) DESC LIMIT 1",
        (org_id, ident, ident, ident),
    )


def namespace(request: Request, who: Caller = Depends(caller), x_namespace: str | None = Header(None)) -> NsCtx:
    if not x_namespace or not x_namespace.strip():
        raise APIError(
            400,
            "missing X-Namespace header: namespace-scoped routes need 'X-Namespace: <namespace id or name>'",
            "MissingNamespaceError",
        )
    ident = x_namespace.strip()
    row = find_namespace(get_state(request), who.org_id, ident)
    if row is None:
        raise APIError(
            404,
            f"namespace '{ident}' not found (X-Namespace header)",
            "NotFoundError",
            {"resource": "namespace", "identifier": ident},
        )
    return NsCtx(who.org_id, row["namespace_id"], row["name"], who)


def find_bucket(state: State, ns: NsCtx, ident: str):
    row = state.store.one(
        "SELECT * FROM buckets WHERE namespace_id=? AND (bucket_id=? OR name=?) ORDER BY (bucket_id=?) DESC LIMIT 1",
        (ns.namespace_id, ident, ident, ident),
    )
    if row is None:
        raise APIError(
            404,
            f"bucket '{ident}' not found in namespace '{ns.namespace_name}'",
            "NotFoundError",
            {"resource": "bucket", "identifier": ident},
        )
    return row


def find_in_bucket(
    state: State, ns: NsCtx, bucket_identifier: str, table: str, id_column: str, ident: str, resource: str
):
    """The bucket and the row of ``table`` (a constant of the caller's) with id ``ident``
    inside that bucket; 404 for either."""
    bucket = find_bucket(state, ns, bucket_identifier)
    row = state.store.one(f"SELECT * FROM {table} WHERE {id_column}=? AND bucket_id=?", (ident, bucket["bucket_id"]))
    if row is None:
        raise not_found(resource, ident)
    return bucket, row


def update_named_doc(state: State, table: str, id_column: str, name_field: str, row, changes: dict[str, Any]):
    """Merge the non-null ``changes`` into a row's JSON doc, stamp ``updated_at``,
    store the doc and its name column; the updated row. ``table`` and ``id_column``
    are constants of the caller's."""
    d = loads(row["doc"])
    d.update({k: v for k, v in changes.items() if v is not None})
    d["updated_at"] = state.iso_now()
    state.store.execute(
        f"UPDATE {table} SET doc=?, name=? WHERE {id_column}=?", (dumps(d), d[name_field], row[id_column])
    )
    return state.store.one(f"SELECT * FROM {table} WHERE {id_column}=?", (row[id_column],))


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps_bytes(body), status_code=status, media_type="application/json")


def raw_json_response(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="application/json")


def doc(row) -> dict[str, Any]:
    return loads(row["doc"])
