"""Storage connection routes: ``/v1/organizations/connections`` (organization-scoped).

Create (tested first unless ``test_before_save`` is false: a failing test
answers 400 with the provider's message and saves nothing), list with the
contract's filters, get / update / delete by id or name, test, and the Google
Drive folder and file browsers. Credentials are encrypted at rest and
redacted in every answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from ..connections import PROVIDER_TYPES, ConnectionService, normalize_provider_config, normalize_status
from ..db import loads
from ..deps import caller, get_state, json_response
from ..errors import APIError, validation_422
from ..pagination import paginate, pagination_body
from ..providers import ProviderError
from ..state import Caller, State
from .common import ListParams

router = APIRouter()

BASE = "/v1/organizations/connections"
LOCAL_USER = "usr_local"


# The fields of the contract's provider configs and credentials (S3Config, TigrisConfig,
# GoogleDriveConfig; S3AccessKeyCredentials, ...): what a stored config keeps beside them
# (the bucket it was tested on, a service account's token URIs) stays server-side.
_CONFIG_KEYS = {
    "s3": ("provider_type", "credentials", "region", "endpoint_url", "use_ssl", "verify_ssl"),
    "tigris": ("provider_type", "credentials", "region", "endpoint_url"),
    "google_drive": ("provider_type", "credentials", "shared_drive_id", "impersonate_user"),
}
_CREDENTIAL_KEYS = {
    ("s3", "access_key"): ("type", "access_key_id", "secret_access_key", "session_token"),
    ("s3", "iam_role"): ("type", "role_arn", "external_id"),
    ("tigris", "access_key"): ("type", "access_key_id", "secret_access_key"),
    ("google_drive", "service_account"): (
        "type",
        "project_id",
        "private_key_id",
        "private_key",
        "client_email",
        "client_id",
    ),
    ("google_drive", "oauth"): ("type", "client_id", "client_secret", "refresh_token"),
}


def _config_out(provider_type: str, cfg: Any) -> Any:
    keys = _CONFIG_KEYS.get(provider_type)
    if keys is None or not isinstance(cfg, dict):
        return cfg
    out = {k: v for k, v in cfg.items() if k in keys}
    creds = out.get("credentials")
    if isinstance(creds, dict):
        ckeys = _CREDENTIAL_KEYS.get((provider_type, str(creds.get("type"))))
        if ckeys is not None:
            out["credentials"] = {k: v for k, v in creds.items() if k in ckeys}
    return out


def connection_out(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored connection as StorageConnectionModel (when it was last tested stays server-side)."""
    out = {k: v for k, v in doc.items() if k != "last_tested_at" and not k.startswith("_")}
    if "provider_config" in out:
        out["provider_config"] = _config_out(out.get("provider_type") or "", out["provider_config"])
    return out


def service(state: State) -> ConnectionService:
    svc = state.storage_connections
    if svc is None:
        svc = ConnectionService(state)
        state.storage_connections = svc
    return svc


def _body_dict(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise validation_422(["body"], "Input should be a valid dictionary")
    return body


def _opt_str(body: dict, key: str, *, max_len: int, min_len: int = 0) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise validation_422(["body", key], "Input should be a valid string")
    if len(v) < min_len:
        raise validation_422(
            ["body", key], f"String should have at least {min_len} character" + ("s" if min_len != 1 else "")
        )
    if len(v) > max_len:
        raise validation_422(["body", key], f"String should have at most {max_len} characters")
    return v


def _opt_dict(body: dict, key: str) -> dict | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise validation_422(["body", key], "Input should be a valid dictionary")
    return v


def _provider_type(value: Any, loc: list[Any]) -> str:
    v = str(getattr(value, "value", value) or "").strip().lower()
    if v not in PROVIDER_TYPES:
        raise validation_422(loc, "Input should be " + ", ".join(f"'{p}'" for p in PROVIDER_TYPES))
    return v


def provider_http_error(err: ProviderError, what: str) -> APIError:
    status = 404 if err.kind == "not_found" else 400
    return APIError(status, f"{what}: {err.full_message}", "StorageProviderError", err.to_dict())


@router.post(BASE)
def create_connection(request: Request, body: Any = Body(...), who: Caller = Depends(caller)):
    state = get_state(request)
    body = _body_dict(body)
    name = _opt_str(body, "name", max_len=100, min_len=1)
    if name is None:
        raise validation_422(["body", "name"], "Field required")
    if body.get("provider_type") is None:
        raise validation_422(["body", "provider_type"], "Field required")
    ptype = _provider_type(body["provider_type"], ["body", "provider_type"])
    if body.get("provider_config") is None:
        raise validation_422(["body", "provider_config"], "Field required")
    description = _opt_str(body, "description", max_len=500)
    metadata = _opt_dict(body, "metadata")
    tbs = body.get("test_before_save", True)
    if not isinstance(tbs, bool):
        raise validation_422(["body", "test_before_save"], "Input should be a valid boolean")
    config = normalize_provider_config(ptype, body["provider_config"])
    doc = service(state).create(
        who.org_id,
        name=name,
        provider_type=ptype,
        provider_config=config,
        description=description,
        metadata=metadata,
        test_before_save=tbs,
        created_by=LOCAL_USER,
    )
    return json_response(connection_out(doc))


@router.post(BASE + "/list")
def list_connections(
    request: Request, body: Any | None = Body(None), params: ListParams = Depends(), who: Caller = Depends(caller)
):
    state = get_state(request)
    service(state)
    body = _body_dict(body)
    where: list[str] = ["org_id=?"]
    wparams: list[Any] = [who.org_id]
    if body.get("provider_type") is not None:
        where.append("provider_type=?")
        wparams.append(_provider_type(body["provider_type"], ["body", "provider_type"]))
    if body.get("status") is not None:
        where.append("status=?")
        wparams.append(normalize_status(body["status"], ["body", "status"]))
    if body.get("is_active") is not None:
        if not isinstance(body["is_active"], bool):
            raise validation_422(["body", "is_active"], "Input should be a valid boolean")
        where.append("is_active=?")
        wparams.append(1 if body["is_active"] else 0)
    sql = " AND ".join(where)
    page = paginate(
        state.store,
        table="storage_connections",
        select="doc",
        where=sql,
        params=wparams,
        limit=params.limit or 100,
        offset=params.offset,
        cursor=params.cursor,
        include_total=True,
        descending=True,
    )
    total = page.total or 0
    pag = pagination_body(page)
    if not params.include_total:
        pag.update(total=None, total_pages=None)
    return json_response(
        {"results": [connection_out(loads(r["doc"])) for r in page.rows], "pagination": pag, "total": total}
    )


@router.get(BASE + "/{connection_identifier}")
def get_connection(request: Request, connection_identifier: str, who: Caller = Depends(caller)):
    state = get_state(request)
    return json_response(connection_out(loads(service(state).find(who.org_id, connection_identifier)["doc"])))


@router.patch(BASE + "/{connection_identifier}")
def update_connection(
    request: Request, connection_identifier: str, body: Any = Body(...), who: Caller = Depends(caller)
):
    state = get_state(request)
    svc = service(state)
    body = _body_dict(body)
    changes: dict[str, Any] = {}
    changes["name"] = _opt_str(body, "name", max_len=100, min_len=1)
    changes["description"] = _opt_str(body, "description", max_len=500)
    changes["metadata"] = _opt_dict(body, "metadata")
    if body.get("status") is not None:
        changes["status"] = normalize_status(body["status"], ["body", "status"])
    if body.get("is_active") is not None:
        if not isinstance(body["is_active"], bool):
            raise validation_422(["body", "is_active"], "Input should be a valid boolean")
        changes["is_active"] = body["is_active"]
    if body.get("provider_config") is not None:
        if not isinstance(body["provider_config"], dict):
            raise validation_422(["body", "provider_config"], "Input should be a valid dictionary")
        changes["provider_config"] = body["provider_config"]
    row = svc.find(who.org_id, connection_identifier)
    return json_response(connection_out(svc.update(row, changes)))


@router.delete(BASE + "/{connection_identifier}")
def delete_connection(request: Request, connection_identifier: str, who: Caller = Depends(caller)):
    state = get_state(request)
    svc = service(state)
    row = svc.find(who.org_id, connection_identifier)
    svc.delete(row)
    return json_response(
        {"message": f"Storage connection {row['connection_id']} deleted", "connection_id": row["connection_id"]}
    )


@router.post(BASE + "/{connection_identifier}/test")
def test_connection_route(request: Request, connection_identifier: str, who: Caller = Depends(caller)):
    state = get_state(request)
    svc = service(state)
    row = svc.find(who.org_id, connection_identifier)
    return json_response(svc.test_saved(row))


def _drive_provider(state, who: Caller, ident: str):
    svc = service(state)
    row = svc.find(who.org_id, ident)
    if row["provider_type"] != "google_drive":
        raise APIError(
            400,
            f"folder and file browsing is only available for google_drive connections; "
            f"'{loads(row['doc'])['name']}' is {row['provider_type']} (use a source_path like "
            "'bucket/prefix' for S3 syncs)",
            "BadRequestError",
        )
    if row["status"] in ("SUSPENDED", "ARCHIVED"):
        raise APIError(409, f"storage connection '{loads(row['doc'])['name']}' is {row['status']}", "ConflictError")
    try:
        return svc, row, svc.provider_for(row)
    except ProviderError as err:
        raise provider_http_error(err, "cannot use the connection") from None


@router.get(BASE + "/{connection_identifier}/folders")
def list_folders(request: Request, connection_identifier: str, path: str = Query("/"), who: Caller = Depends(caller)):
    state = get_state(request)
    svc, row, provider = _drive_provider(state, who, connection_identifier)
    try:
        folders = provider.list_folders(path or "/")
    except ProviderError as err:
        svc.record(row["connection_id"], False, err.full_message)
        raise provider_http_error(err, f"cannot list the folders of {path!r}") from None
    svc.record(row["connection_id"], True, used=True)
    return json_response({"results": folders, "parent_path": path or "/"})


@router.get(BASE + "/{connection_identifier}/files")
def list_files(
    request: Request,
    connection_identifier: str,
    path: str = Query("/"),
    max_results: int = Query(50, ge=1, le=100),
    who: Caller = Depends(caller),
):
    state = get_state(request)
    svc, row, provider = _drive_provider(state, who, connection_identifier)
    files: list[dict[str, Any]] = []
    has_more = False
    try:
        for f in provider.iter_files(path or "/"):
            if len(files) >= max_results:
                has_more = True
                break
            files.append(
                {
                    "id": f.file_id,
                    "name": f.name,
                    "path": f.key,
                    "mime_type": f.mime_type,
                    "size_bytes": f.size,
                    "md5_checksum": f.etag_or_md5,
                    "modified_time": f.modified.isoformat().replace("+00:00", "Z") if f.modified else None,
                }
            )
    except ProviderError as err:
        svc.record(row["connection_id"], False, err.full_message)
        raise provider_http_error(err, f"cannot list the files of {path!r}") from None
    svc.record(row["connection_id"], True, used=True)
    return json_response({"files": files, "path": path or "/", "count": len(files), "has_more": has_more})
