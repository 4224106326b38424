"""Storage connections: ``/v1/organizations/connections`` (organization-scoped).

    conn = client.connections.create("raw media", "s3", S3Config(...))   # tested before saving
    client.connections.list(provider_type="s3", status="ACTIVE", is_active=True)
    client.connections.test(conn.connection_id)
    client.connections.list_folders(conn.connection_id, path="/Marketing")   # Google Drive

``provider_config`` may be a typed config (``S3Config``, ``TigrisConfig``,
``GoogleDriveConfig``) or the equivalent dict (e.g. from
:mod:`mixpeek_magics.client.credentials`); it is checked against the contract
before anything is sent, and problems are raised as
:class:`~mixpeek_magics.client.credentials.CredentialError` whose messages never
contain secret values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from mixpeek_magics.client._core import RequestSpec
from mixpeek_magics.client.credentials import CredentialError, redact
from mixpeek_magics.client.models.connections import (
    PROVIDER_TYPES,
    ConnectionTestResult,
    DriveFileList,
    FolderList,
    StorageConnection,
    parse_provider_config,
)
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT,
    Page,
    Resource,
    check_limit,
    dump,
    json_object,
    page_parser,
    seg,
)
from mixpeek_magics.client.statuses import status_value

BASE = "/v1/organizations/connections"


class _SecretBody(dict[str, Any]):
    """A request body whose repr never shows secrets (the JSON sent is the real one)."""

    def __repr__(self) -> str:
        return repr(redact(dict(self)))

    __str__ = __repr__


_TAGS = {"access_key", "iam_role", "service_account", "oauth"}


def _safe_validation_error(exc: ValidationError, prefix: str = "provider_config") -> CredentialError:
    """pydantic's error without the input values (they may be secrets), keyed by dotted field."""
    fields: dict[str, str] = {}

    def add(key: str, msg: str) -> None:
        fields[key] = f"{fields[key]}; {msg}" if key in fields else msg

    for e in exc.errors(include_input=False, include_url=False, include_context=False):
        parts = [str(x) for x in e.get("loc", ()) if str(x) not in _TAGS]
        key = ".".join([prefix, *parts])
        msg = str(e.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e.get("type") == "value_error" and ": " in msg:
            # "name: problem; name2: problem" from a model's contract check
            for piece in msg.split("; "):
                name, _, problem = piece.partition(": ")
                add(f"{key}.{name}" if problem else key, problem or piece)
        else:
            add(key, msg)
    return CredentialError(fields)


def _provider_type(value: Any) -> str:
    v = str(getattr(value, "value", value) or "").strip().lower()
    if v not in PROVIDER_TYPES:
        raise ValueError(f"provider_type must be one of {', '.join(PROVIDER_TYPES)} (got {value!r})")
    return v


def _config_body(provider_type: str, provider_config: Any) -> dict[str, Any]:
    try:
        cfg = parse_provider_config(provider_type, provider_config)
    except ValidationError as exc:
        raise _safe_validation_error(exc) from None
    body = dump(cfg)
    if not isinstance(body, dict):
        raise TypeError("provider_config must be a dict or a provider config model")
    return body


def _status(value: Any) -> Any:
    return status_value(value)


def _list_parser(data: Any) -> Page[StorageConnection]:
    page = page_parser(StorageConnection.from_response)(data)
    if page.total is None and isinstance(data, dict) and isinstance(data.get("total"), int):
        page.total = data["total"]
    return page


class Connections(Resource):
    # -- create / read / update / delete -------------------------------------------
    def create(
        self,
        name: str,
        provider_type: str,
        provider_config: Any,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        test_before_save: bool = True,
        *,
        timeout: float | None = None,
    ) -> StorageConnection:
        """``POST /v1/organizations/connections``. With ``test_before_save`` (the
        default) the server tests the credentials first; a failing test raises
        :class:`~mixpeek_magics.client.errors.APIStatusError` (400) with the
        provider's message and nothing is saved."""
        ptype = _provider_type(provider_type)
        body = {
            "name": name,
            "provider_type": ptype,
            "provider_config": _config_body(ptype, provider_config),
            "test_before_save": bool(test_before_save),
        }
        if description is not None:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = dict(metadata)
        spec = self._spec("POST", BASE, parse=StorageConnection.from_response, timeout=timeout)
        return self._request(dataclasses.replace(spec, json=_SecretBody(body)))

    def get(self, connection: str, *, timeout: float | None = None) -> StorageConnection:
        """By id (``conn_...``) or name."""
        return self._request(
            self._spec("GET", f"{BASE}/{seg(connection)}", parse=StorageConnection.from_response, timeout=timeout)
        )

    def update(
        self,
        connection: str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: Any = None,
        is_active: bool | None = None,
        provider_config: Any = None,
        timeout: float | None = None,
    ) -> StorageConnection:
        """``PATCH``: rename, describe, re-tag, suspend (``status="SUSPENDED"``) or
        reactivate, or replace the credentials (``provider_config``, tested by the server)."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if description is not None:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if status is not None:
            body["status"] = _status(status)
        if is_active is not None:
            body["is_active"] = bool(is_active)
        if provider_config is not None:
            ptype = (
                provider_config.provider_type
                if hasattr(provider_config, "provider_type")
                else (provider_config.get("provider_type") if isinstance(provider_config, Mapping) else None)
            )
            body["provider_config"] = (
                _config_body(ptype, provider_config)
                if ptype in ("s3", "tigris", "google_drive")
                else dump(provider_config)
            )
        if not body:
            raise ValueError(
                "nothing to update: pass name, description, metadata, status, is_active or provider_config"
            )
        spec = self._spec(
            "PATCH",
            f"{BASE}/{seg(connection)}",
            parse=StorageConnection.from_response,
            retry=IDEMPOTENT,
            timeout=timeout,
        )
        return self._request(dataclasses.replace(spec, json=_SecretBody(body)))

    def suspend(self, connection: str, *, timeout: float | None = None) -> StorageConnection:
        return self.update(connection, status="SUSPENDED", timeout=timeout)

    def activate(self, connection: str, *, timeout: float | None = None) -> StorageConnection:
        return self.update(connection, status="ACTIVE", timeout=timeout)

    def delete(self, connection: str, *, timeout: float | None = None) -> dict[str, Any]:
        return self._request(self._spec("DELETE", f"{BASE}/{seg(connection)}", parse=json_object, timeout=timeout))

    def test(self, connection: str, *, timeout: float | None = None) -> ConnectionTestResult:
        """``POST .../test``: ``success`` false (not an exception) when the provider refuses."""
        return self._request(
            self._spec(
                "POST",
                f"{BASE}/{seg(connection)}/test",
                retry=IDEMPOTENT,
                parse=ConnectionTestResult.model_validate,
                timeout=timeout,
            )
        )

    # -- Google Drive browsing ----------------------------------------------------------
    def list_folders(self, connection: str, path: str = "/", *, timeout: float | None = None) -> FolderList:
        """``GET .../folders``: the sub-folders of ``path`` (Google Drive connections)."""
        return self._request(
            self._spec(
                "GET",
                f"{BASE}/{seg(connection)}/folders",
                params={"path": path},
                parse=FolderList.model_validate,
                timeout=timeout,
            )
        )

    folders = list_folders

    def list_files(
        self, connection: str, path: str = "/", max_results: int = 50, *, timeout: float | None = None
    ) -> DriveFileList:
        """``GET .../files``: a preview of the files under ``path`` (Google Drive)."""
        if not 1 <= int(max_results) <= 100:
            raise ValueError("max_results must be between 1 and 100")
        return self._request(
            self._spec(
                "GET",
                f"{BASE}/{seg(connection)}/files",
                params={"path": path, "max_results": int(max_results)},
                parse=DriveFileList.model_validate,
                timeout=timeout,
            )
        )

    files = list_files

    # -- listing --------------------------------------------------------------------
    def _list_spec(
        self,
        *,
        provider_type: Any,
        status: Any,
        is_active: bool | None,
        limit: int,
        cursor: str | None,
        offset: int | None,
        include_total: bool | None,
        timeout: float | None,
    ) -> RequestSpec[Page[StorageConnection]]:
        body = {
            "provider_type": _provider_type(provider_type) if provider_type is not None else None,
            "status": _status(status),
            "is_active": is_active,
        }
        return self._spec(
            "POST",
            f"{BASE}/list",
            params={
                "limit": check_limit(limit),
                "cursor": cursor,
                "offset": None if cursor else (offset or None),
                "include_total": include_total,
            },
            json={k: v for k, v in body.items() if v is not None},
            parse=_list_parser,
            retry=IDEMPOTENT,
            timeout=timeout,
        )

    def list(
        self,
        provider_type: Any = None,
        status: Any = None,
        is_active: bool | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        offset: int | None = None,
        include_total: bool | None = None,
        timeout: float | None = None,
    ) -> Page[StorageConnection]:
        """One page, newest first. Filters: ``provider_type`` (``s3``, ``google_drive``,
        ``tigris``, ...), ``status`` (``ACTIVE``, ``SUSPENDED``, ``FAILED``, ``ARCHIVED``),
        ``is_active``. ``page.total`` counts every match."""
        return self._request(
            self._list_spec(
                provider_type=provider_type,
                status=status,
                is_active=is_active,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=include_total,
                timeout=timeout,
            )
        )

    def iter(
        self,
        provider_type: Any = None,
        status: Any = None,
        is_active: bool | None = None,
        *,
        limit: int = 100,
        max_items: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[StorageConnection]:
        """Every matching connection, ``limit`` per request."""
        check_limit(limit)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                provider_type=provider_type,
                status=status,
                is_active=is_active,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=None,
                timeout=timeout,
            ),
            limit=limit,
            max_items=max_items,
        )
