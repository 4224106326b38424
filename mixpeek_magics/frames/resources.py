"""Frames of objects, batches, bucket syncs, storage connections and failures.

Secrets never reach a frame: storage connection credentials are dropped
entirely (only the credential *type* is shown), and any other field whose name
looks secret is removed too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mixpeek_magics._extras import require
from mixpeek_magics.frames import _schema
from mixpeek_magics.frames.history import resolve_client

_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|private|credential|api_?key|access_key|session|client_secret|refresh)",
    re.IGNORECASE,
)


def _to_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    if hasattr(item, "model_dump"):
        return item.model_dump(mode="json")
    return dict(vars(item))


def _scrub(value: Any) -> Any:
    """Remove secret-looking keys at any depth."""
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]):
    """A DataFrame with exactly ``columns`` (name -> dtype), also when empty."""
    require("notebook", "pandas")
    import pandas as pd

    if not rows:
        return _schema.empty_frame(columns)
    data = {}
    for name, dtype in columns.items():
        values = [r.get(name) for r in rows]
        if dtype == "category":
            data[name] = _schema.status_categorical(values)
        elif dtype == "str":
            data[name] = _schema.str_array(values)
        elif dtype == "Int64":
            data[name] = _schema.int_array(values)
        elif dtype == "Float64":
            data[name] = _schema.float_array(values)
        elif dtype == "boolean":
            data[name] = pd.array([None if v is None else bool(v) for v in values], dtype="boolean")
        elif dtype.startswith("datetime64"):
            data[name] = (
                pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601", errors="coerce")
                .dt.as_unit("ns")
                .array
            )
        else:  # object: dicts / lists kept as they are
            data[name] = pd.array(values, dtype=object)
    return pd.DataFrame(data)


def _ts(value: Any) -> Any:
    return value if value not in ("",) else None


# ------------------------------------------------------------------ objects
OBJECT_COLUMNS = {
    "object_id": "str",
    "bucket_id": "str",
    "key_prefix": "str",
    "status": "category",
    "error": "str",
    "blob_count": "Int64",
    "blob_properties": "str",
    "blob_types": "str",
    "filenames": "str",
    "created_at": "datetime64[ns, UTC]",
    "updated_at": "datetime64[ns, UTC]",
    "metadata": "object",
}


def _blob_filename(blob: Mapping[str, Any]) -> str | None:
    for key in ("filename", "name"):
        if blob.get(key):
            return str(blob[key])
    details = blob.get("details") or blob.get("metadata") or {}
    if isinstance(details, Mapping):
        for key in ("filename", "original_filename", "name"):
            if details.get(key):
                return str(details[key])
    data = blob.get("data")
    if isinstance(data, str) and "://" in data:
        return data.rsplit("/", 1)[-1] or data
    return None


def objects_frame(bucket: str, client: Any = None):
    """Every object of ``bucket`` (id or name): one row per object."""
    client = resolve_client(client)
    rows = []
    for item in client.objects.iter(bucket):
        d = _to_dict(item)
        blobs = [b for b in (d.get("blobs") or []) if isinstance(b, Mapping)]
        names = [n for n in (_blob_filename(b) for b in blobs) if n]
        rows.append(
            {
                "object_id": d.get("object_id"),
                "bucket_id": d.get("bucket_id"),
                "key_prefix": d.get("key_prefix"),
                "status": d.get("status"),
                "error": d.get("error"),
                "blob_count": len(blobs),
                "blob_properties": ", ".join(str(b.get("property")) for b in blobs if b.get("property")) or None,
                "blob_types": ", ".join(str(b.get("type")) for b in blobs if b.get("type")) or None,
                "filenames": ", ".join(names) or None,
                "created_at": _ts(d.get("created_at")),
                "updated_at": _ts(d.get("updated_at")),
                "metadata": _scrub(d.get("metadata") or {}),
            }
        )
    return _frame(rows, OBJECT_COLUMNS)


# ------------------------------------------------------------------ batches
BATCH_COLUMNS = {
    "batch_id": "str",
    "bucket_id": "str",
    "status": "category",
    "type": "str",
    "task_id": "str",
    "object_count": "Int64",
    "error": "str",
    "created_at": "datetime64[ns, UTC]",
    "updated_at": "datetime64[ns, UTC]",
    "source_cell": "str",
    "metadata": "object",
}


def batches_frame(bucket: str, client: Any = None):
    """Every batch of ``bucket``: status, task, object count, error, provenance."""
    from mixpeek_magics.frames._journal import format_provenance

    client = resolve_client(client)
    rows = []
    for item in client.batches.iter(bucket):
        d = _to_dict(item)
        meta = d.get("metadata") or {}
        prov = meta.get("provenance") if isinstance(meta, Mapping) else None
        rows.append(
            {
                "batch_id": d.get("batch_id"),
                "bucket_id": d.get("bucket_id"),
                "status": d.get("status"),
                "type": d.get("type"),
                "task_id": d.get("task_id"),
                "object_count": len(d.get("object_ids") or []),
                "error": d.get("error"),
                "created_at": _ts(d.get("created_at")),
                "updated_at": _ts(d.get("updated_at")),
                "source_cell": format_provenance(prov),
                "metadata": _scrub(meta),
            }
        )
    return _frame(rows, BATCH_COLUMNS)


# ------------------------------------------------------------------ syncs
SYNC_COLUMNS = {
    "sync_config_id": "str",
    "bucket_id": "str",
    "connection_id": "str",
    "source_path": "str",
    "sync_mode": "str",
    "status": "category",
    "is_active": "boolean",
    "paused": "boolean",
    "total_files_discovered": "Int64",
    "total_files_synced": "Int64",
    "total_files_failed": "Int64",
    "total_bytes_synced": "Int64",
    "batches_created": "Int64",
    "last_error": "str",
    "last_sync_at": "datetime64[ns, UTC]",
    "next_sync_at": "datetime64[ns, UTC]",
    "created_at": "datetime64[ns, UTC]",
}


def syncs_frame(bucket: str, client: Any = None):
    """Every sync configuration of ``bucket`` with its counters."""
    client = resolve_client(client)
    syncs = getattr(client, "syncs", None)
    if syncs is None:
        raise NotImplementedError("this client has no 'syncs' resource (client.syncs.iter(bucket))")
    rows = []
    for item in syncs.iter(bucket):
        d = _scrub(_to_dict(item))
        rows.append({k: d.get(k) for k in SYNC_COLUMNS})
    return _frame(rows, SYNC_COLUMNS)


# ------------------------------------------------------------------ connections
CONNECTION_COLUMNS = {
    "connection_id": "str",
    "name": "str",
    "provider_type": "str",
    "credential_type": "str",
    "status": "category",
    "is_active": "boolean",
    "description": "str",
    "region": "str",
    "endpoint_url": "str",
    "bucket": "str",
    "shared_drive_id": "str",
    "impersonate_user": "str",
    "consecutive_failures": "Int64",
    "last_error": "str",
    "last_used_at": "datetime64[ns, UTC]",
    "created_at": "datetime64[ns, UTC]",
    "updated_at": "datetime64[ns, UTC]",
}


def connections_frame(
    client: Any = None, provider_type: str | None = None, status: str | None = None, is_active: bool | None = None
):
    """Storage connections (List Storage Connections, with its filters).
    Credentials are never included: only their ``type`` (access_key, iam_role,
    service_account, oauth)."""
    client = resolve_client(client)
    conns = getattr(client, "connections", None)
    if conns is None:
        raise NotImplementedError("this client has no 'connections' resource (client.connections.iter(...))")
    kwargs = {
        k: v
        for k, v in (("provider_type", provider_type), ("status", status), ("is_active", is_active))
        if v is not None
    }
    rows = [connection_row(_to_dict(item)) for item in conns.iter(**kwargs)]
    return _frame(rows, CONNECTION_COLUMNS)


def connection_row(d: Mapping[str, Any]) -> dict[str, Any]:
    """One connection as a frame row: credentials dropped (only their ``type``
    is kept), other secret-looking fields removed."""
    config = d.get("provider_config") or {}
    if not isinstance(config, Mapping):
        config = {}
    creds = config.get("credentials")
    cred_type = creds.get("type") if isinstance(creds, Mapping) else None
    safe = _scrub({k: v for k, v in config.items() if k != "credentials"})
    row = {
        k: d.get(k)
        for k in (
            "connection_id",
            "name",
            "provider_type",
            "status",
            "is_active",
            "description",
            "consecutive_failures",
            "last_error",
            "last_used_at",
            "created_at",
            "updated_at",
        )
    }
    row["credential_type"] = cred_type if isinstance(cred_type, str) else None
    for k in ("region", "endpoint_url", "shared_drive_id", "impersonate_user"):
        v = safe.get(k)
        row[k] = v if v is None or isinstance(v, str) else str(v)
    row["bucket"] = safe.get("bucket") or safe.get("bucket_name")
    return row


# ------------------------------------------------------------------ failures
FAILURE_COLUMNS = {
    "source": "str",
    "task_id": "str",
    "batch_id": "str",
    "bucket_id": "str",
    "object_id": "str",
    "filename": "str",
    "error": "str",
    "error_type": "str",
}


def _looks_like_batch(value: Any) -> bool:
    return (
        hasattr(value, "batch_id")
        and not hasattr(value, "task_id")
        or (isinstance(value, Mapping) and "batch_id" in value and "task_type" not in value)
        or (hasattr(value, "batch_id") and hasattr(value, "object_ids"))
    )


def failures_frame(task_or_batch: Any, client: Any = None, bucket: str | None = None):
    """Failed items, with reasons, of a task or a batch: the batch's
    ``failed_objects`` (a task carries no failures: those of a batch task are
    its batch's), with each object's filename read from the object.

    ``task_or_batch``: a ``Task``, a ``Batch``, a task id, or a batch id (a
    batch id needs ``bucket=``; a Batch object carries its bucket)."""
    client = resolve_client(client)
    if _looks_like_batch(task_or_batch):
        d = _to_dict(task_or_batch)
        return _batch_failures(client, bucket or d.get("bucket_id"), d.get("batch_id"), d.get("task_id"), "batch")
    if isinstance(task_or_batch, str):
        if bucket is not None:
            try:
                return _batch_failures(client, bucket, task_or_batch, None, "batch")
            except Exception as exc:
                if type(exc).__name__ != "NotFoundError":
                    raise
        try:
            task = client.tasks.get(task_or_batch)
        except Exception as exc:
            if type(exc).__name__ == "NotFoundError":
                raise ValueError(
                    f"{task_or_batch!r} is not a known task id; for a batch id pass bucket=<bucket id or name>"
                ) from None
            raise
    else:
        task = task_or_batch
    d = _to_dict(task)
    data = d.get("additional_data") or {}
    batch_id, bucket_id = data.get("batch_id"), bucket or data.get("bucket_id")
    if not (batch_id and bucket_id):  # not a batch task: nothing itemised
        return _frame([], FAILURE_COLUMNS)
    return _batch_failures(client, bucket_id, batch_id, d.get("task_id"), "task", data.get("namespace_id"))


def _batch_failures(
    client: Any,
    bucket: str | None,
    batch_id: str | None,
    task_id: str | None,
    source: str,
    namespace: str | None = None,
):
    if not bucket:
        raise ValueError("a batch's failures need its bucket: failures_frame(batch_id, bucket='...')")
    batch = _to_dict(client.batches.get(bucket, batch_id, namespace=namespace))
    failed = [_to_dict(f) if not isinstance(f, Mapping) else f for f in batch.get("failed_objects") or []]
    names = _filenames(client, batch.get("bucket_id") or bucket, [f.get("object_id") for f in failed], namespace)
    rows = [
        {
            "source": source,
            "task_id": task_id or batch.get("task_id"),
            "batch_id": batch.get("batch_id") or batch_id,
            "bucket_id": batch.get("bucket_id") or bucket,
            "object_id": f.get("object_id"),
            "filename": names.get(f.get("object_id") or ""),
            "error": f.get("error"),
            "error_type": f.get("error_type"),
        }
        for f in failed
    ]
    return _frame(rows, FAILURE_COLUMNS)


def _filenames(client: Any, bucket: str, object_ids: list[Any], namespace: str | None) -> dict[str, str]:
    """object id -> the filename its first blob records (``BlobDetails.filename``):
    one ``objects/list`` filtered ``object_id in [...]`` per 1000 ids."""
    ids = [str(i) for i in dict.fromkeys(object_ids) if i]
    out: dict[str, str] = {}
    for i in range(0, len(ids), 1000):
        part = ids[i : i + 1000]
        filters = {"AND": [{"field": "object_id", "operator": "in", "value": part}]}
        for obj in client.objects.list(bucket, filters=filters, limit=len(part), namespace=namespace):
            d = _to_dict(obj)
            name = next((n for n in (_blob_filename(_to_dict(b)) for b in d.get("blobs") or []) if n), None)
            if d.get("object_id") in part and name:
                out[d["object_id"]] = name
    return out
