"""Bucket sync routes: ``/v1/buckets/{bucket_id}/syncs`` (namespace-scoped).

Create (the source path is checked through the connection first), list with
the contract's filters, get, update, delete, pause, resume, trigger, and the
runs as jobs (``.../jobs`` list, ``.../jobs/{sync_job_id}``). Runs are executed
by :class:`~mixpeek_magics.local.sync_runner.SyncRunner`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ..connections import ConnectionService, normalize_status
from ..db import dumps, loads
from ..deps import NsCtx, find_bucket, find_in_bucket, get_state, json_response, namespace
from ..errors import APIError, validation_422
from ..pagination import paginate, pagination_body
from ..providers import FilterError, ProviderError, parse_filters
from ..state import State
from ..sync_runner import SyncRunner, job_out, public_doc
from ..util import new_id
from .common import ListParams
from .connections import LOCAL_USER, service

router = APIRouter()


class SyncCreateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    connection_id: str = Field(min_length=1)
    source_path: str = Field(min_length=1)
    sync_mode: Literal["initial_only", "continuous"] = "continuous"
    description: str | None = None
    file_filters: dict[str, Any] | None = None
    schema_mapping: dict[str, Any] | None = None
    polling_interval_seconds: int = Field(default=300, ge=30, le=86400)
    batch_size: int = Field(default=50, ge=1, le=100)
    max_objects_per_run: int | None = Field(default=None, ge=1)
    skip_batch_submission: bool = False
    skip_duplicates: bool = True
    metadata: dict[str, Any] | None = None


class SyncUpdateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    description: str | None = Field(default=None, max_length=500)
    metadata: dict[str, Any] | None = None
    status: str | None = None
    is_active: bool | None = None
    polling_interval_seconds: int | None = Field(default=None, ge=30, le=86400)
    batch_size: int | None = Field(default=None, ge=1, le=100)
    max_objects_per_run: int | None = Field(default=None, ge=1)
    schema_mapping: dict[str, Any] | None = None
    skip_batch_submission: bool | None = None


class ListSyncConfigurationsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    connection_id: str | None = None
    status: str | None = None
    is_active: bool | None = None


class ListSyncJobsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["running", "completed", "failed", "interrupted", "skipped"] | None = None


def _runner(state: State) -> SyncRunner:
    runner = state.sync_runner
    if runner is None:
        raise APIError(503, "bucket syncs are not enabled on this server", "ServiceUnavailableError")
    return runner


def _filters(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        ff = parse_filters(value)
    except FilterError as err:
        raise validation_422(["body", "file_filters", *err.field.split(".")], str(err)) from None
    return ff.to_dict() or None


def _get(state, ns: NsCtx, bucket_identifier: str, sync_id: str):
    return find_in_bucket(state, ns, bucket_identifier, "sync_configs", "sync_config_id", sync_id, "sync configuration")


def _out(state, sync_id: str) -> Any:
    row = state.store.one("SELECT doc FROM sync_configs WHERE sync_config_id=?", (sync_id,))
    return json_response(public_doc(loads(row["doc"])))


@router.post("/v1/buckets/{bucket_identifier}/syncs")
def create_sync(request: Request, bucket_identifier: str, body: SyncCreateRequest, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    runner = _runner(state)
    bucket = find_bucket(state, ns, bucket_identifier)
    svc = service(state)
    conn = svc.find(ns.org_id, body.connection_id)
    if conn["status"] in ("SUSPENDED", "ARCHIVED"):
        raise APIError(
            400,
            f"storage connection '{loads(conn['doc'])['name']}' is {conn['status']}: reactivate it before syncing "
            "from it",
            "BadRequestError",
        )
    filters = _filters(body.file_filters)
    source = body.source_path.strip()
    _check_source(svc, conn, source)
    sid = new_id("sync")
    doc = {
        "sync_config_id": sid,
        "bucket_id": bucket["bucket_id"],
        "connection_id": conn["connection_id"],
        "internal_id": ns.org_id,
        "namespace_id": ns.namespace_id,
        "source_path": source,
        "source_type": conn["provider_type"],
        "description": body.description,
        "file_filters": filters,
        "schema_mapping": body.schema_mapping,
        "sync_mode": body.sync_mode,
        "polling_interval_seconds": body.polling_interval_seconds,
        "batch_size": body.batch_size,
        "create_object_on_confirm": True,
        "skip_duplicates": body.skip_duplicates,
        "skip_batch_submission": body.skip_batch_submission,
        "created_by_user_id": LOCAL_USER,
        "metadata": body.metadata or {},
        "max_objects_per_run": body.max_objects_per_run or 100000,
        "max_batch_chunk_size": 1000,
        "batch_chunk_size": body.batch_size,
        **_new_sync_state(state.iso_now()),
    }
    state.store.execute(
        "INSERT INTO sync_configs(sync_config_id, org_id, namespace_id, bucket_id, connection_id, "
        "status, is_active, next_run_at, doc) VALUES (?,?,?,?,?,?,?,?,?)",
        (sid, ns.org_id, ns.namespace_id, bucket["bucket_id"], conn["connection_id"], "PENDING", 1, None, dumps(doc)),
    )
    runner.trigger(sid, "create")
    return json_response(public_doc(doc))  # as created: the run may already have started


def _check_source(svc: ConnectionService, conn: Any, source: str) -> None:
    """Refuse a source the connection cannot read (recorded on the connection as its last test)."""
    try:
        provider = svc.provider_for(conn)
        provider.test(source)
    except ProviderError as err:
        svc.record(conn["connection_id"], False, err.full_message)
        raise APIError(
            404 if err.kind == "not_found" else 400,
            f"cannot sync from {source!r} with connection '{loads(conn['doc'])['name']}': {err.full_message}",
            "StorageProviderError",
            err.to_dict(),
        ) from None
    svc.record(conn["connection_id"], True)


def _new_sync_state(now: str) -> dict[str, Any]:
    """A new sync's status, totals, lock, pause and resume fields: nothing run yet, first run due now."""
    return {
        "status": "PENDING",
        "is_active": True,
        "total_files_discovered": 0,
        "total_files_synced": 0,
        "total_files_failed": 0,
        "total_bytes_synced": 0,
        "created_at": now,
        "updated_at": now,
        "last_sync_at": None,
        "next_sync_at": now,
        "last_error": None,
        "consecutive_failures": 0,
        "locked_by_worker_id": None,
        "locked_at": None,
        "lock_expires_at": None,
        "paused": False,
        "pause_reason": None,
        "paused_at": None,
        "paused_by_user_id": None,
        "current_sync_run_id": None,
        "sync_run_counter": 0,
        "batch_ids": [],
        "task_ids": [],
        "batches_created": 0,
        "resume_enabled": True,
        "resume_cursor": None,
        "resume_last_primary_key": None,
        "resume_objects_processed": 0,
        "resume_checkpoint_frequency": 1000,
        "sync_progress": None,
        "stats": None,
    }


@router.post("/v1/buckets/{bucket_identifier}/syncs/list")
def list_syncs(
    request: Request,
    bucket_identifier: str,
    body: ListSyncConfigurationsRequest | None = Body(None),
    params: ListParams = Depends(),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    _runner(state)
    bucket = find_bucket(state, ns, bucket_identifier)
    body = body or ListSyncConfigurationsRequest()
    where, wparams = ["bucket_id=?"], [bucket["bucket_id"]]
    if body.connection_id:
        conn = state.store.one(
            "SELECT connection_id FROM storage_connections WHERE org_id=? AND (connection_id=? OR name=?)",
            (ns.org_id, body.connection_id, body.connection_id),
        )
        where.append("connection_id=?")
        wparams.append(conn["connection_id"] if conn else body.connection_id)
    if body.status is not None:
        where.append("status=?")
        wparams.append(normalize_status(body.status, ["body", "status"]))
    if body.is_active is not None:
        where.append("is_active=?")
        wparams.append(1 if body.is_active else 0)
    page = paginate(
        state.store,
        table="sync_configs",
        select="doc",
        where=" AND ".join(where),
        params=wparams,
        limit=params.limit or 100,
        offset=params.offset,
        cursor=params.cursor,
        include_total=True,
        descending=True,
    )
    pag = pagination_body(page)
    if not params.include_total:
        pag.update(total=None, total_pages=None)
    return json_response(
        {"results": [public_doc(loads(r["doc"])) for r in page.rows], "pagination": pag, "total": page.total or 0}
    )


@router.get("/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}")
def get_sync(request: Request, bucket_identifier: str, sync_config_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, sync_config_id)
    return json_response(public_doc(loads(row["doc"])))


def _pause(state, sync_id: str, reason: str | None) -> None:
    now = state.iso_now()
    runner = _runner(state)

    def fn(d: dict[str, Any]) -> None:
        d.update(
            paused=True,
            pause_reason=reason or "paused via the API",
            paused_at=now,
            paused_by_user_id=LOCAL_USER,
            status="SUSPENDED",
            is_active=False,
            updated_at=now,
        )

    runner._update(sync_id, fn, next_run_at=None, keep_next=False)
    runner.skip_queued(sync_id, "the sync was paused before this run started")


def _resume(state, sync_id: str) -> None:
    runner = _runner(state)
    now = state.iso_now()
    box: dict[str, Any] = {}

    def fn(d: dict[str, Any]) -> None:
        d.update(
            paused=False, pause_reason=None, paused_at=None, paused_by_user_id=None, is_active=True, updated_at=now
        )
        if d.get("sync_mode") == "continuous":
            d["status"] = "ACTIVE"
            # polling resumes at the configured interval (right away if it never ran)
            box["at"] = state.now() + (
                state.scaled(int(d.get("polling_interval_seconds") or 300)) if d.get("last_sync_at") else 0.0
            )
        elif d.get("_last_job_status") == "completed" and d.get("last_sync_at"):
            d["status"] = "COMPLETED"
            box["at"] = None
        else:
            d["status"] = "PENDING"
            box["at"] = state.now()

    runner._update(sync_id, fn)
    runner._update(sync_id, lambda d: None, next_run_at=box.get("at"), keep_next=False)
    runner.wake.set()


@router.patch("/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}")
def update_sync(
    request: Request,
    bucket_identifier: str,
    sync_config_id: str,
    body: SyncUpdateRequest,
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    runner = _runner(state)
    _, row = _get(state, ns, bucket_identifier, sync_config_id)
    changes = body.model_dump(exclude_unset=True)
    status = normalize_status(changes["status"], ["body", "status"]) if changes.get("status") else None
    if status is not None and status not in ("ACTIVE", "SUSPENDED", "PENDING", "COMPLETED", "FAILED"):
        raise validation_422(
            ["body", "status"], "a sync's status is one of ACTIVE, SUSPENDED, PENDING, COMPLETED, FAILED"
        )
    pause = status == "SUSPENDED" or changes.get("is_active") is False
    resume = (status == "ACTIVE" or changes.get("is_active") is True) and not pause
    now = state.iso_now()

    def fn(d: dict[str, Any]) -> None:
        for k in (
            "description",
            "metadata",
            "polling_interval_seconds",
            "batch_size",
            "schema_mapping",
            "skip_batch_submission",
            "max_objects_per_run",
        ):
            if changes.get(k) is not None:
                d[k] = changes[k]
        if changes.get("batch_size") is not None:
            d["batch_chunk_size"] = changes["batch_size"]
        if status is not None and status not in ("ACTIVE", "SUSPENDED"):
            d["status"] = status
        d["updated_at"] = now

    runner._update(sync_config_id, fn)
    doc = loads(row["doc"])
    if pause and not doc.get("paused"):
        _pause(state, sync_config_id, "paused via update (is_active=false)")
    elif resume and doc.get("paused"):
        _resume(state, sync_config_id)
    elif (
        changes.get("polling_interval_seconds")
        and doc.get("sync_mode") == "continuous"
        and not doc.get("paused")
        and row["next_run_at"] is not None
        and not runner.is_running(sync_config_id)
    ):
        runner.schedule(sync_config_id, state.now() + state.scaled(changes["polling_interval_seconds"]))
    return _out(state, sync_config_id)


@router.delete("/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}")
def delete_sync(request: Request, bucket_identifier: str, sync_config_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    runner = _runner(state)
    _get(state, ns, bucket_identifier, sync_config_id)
    runner.forget(sync_config_id)
    with state.store.tx() as c:
        c.execute("DELETE FROM sync_configs WHERE sync_config_id=?", (sync_config_id,))
        c.execute("DELETE FROM sync_files WHERE sync_config_id=?", (sync_config_id,))
        c.execute("DELETE FROM sync_jobs WHERE sync_config_id=?", (sync_config_id,))
    return json_response(
        {"message": f"Sync configuration {sync_config_id} deleted", "success": True, "sync_config_id": sync_config_id}
    )


@router.post("/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}/pause")
def pause_sync(request: Request, bucket_identifier: str, sync_config_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _get(state, ns, bucket_identifier, sync_config_id)
    _pause(state, sync_config_id, None)
    return _out(state, sync_config_id)


@router.post("/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}/resume")
def resume_sync(request: Request, bucket_identifier: str, sync_config_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, sync_config_id)
    if loads(row["doc"]).get("paused"):
        _resume(state, sync_config_id)
    return _out(state, sync_config_id)


@router.post("/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}/trigger")
def trigger_sync(request: Request, bucket_identifier: str, sync_config_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    runner = _runner(state)
    _, row = _get(state, ns, bucket_identifier, sync_config_id)
    doc = loads(row["doc"])
    if doc.get("paused"):
        raise APIError(
            409, f"sync {sync_config_id} is paused: resume it (POST .../resume) before triggering", "ConflictError"
        )
    if not doc.get("is_active"):
        raise APIError(
            409, f"sync {sync_config_id} is inactive ({doc.get('last_error') or doc.get('status')})", "ConflictError"
        )
    running = runner.is_running(sync_config_id)
    job_id = runner.trigger(sync_config_id, "manual")
    # The contract types this answer as a plain object; its documented key is sync_job_id.
    return json_response(
        {
            "sync_config_id": sync_config_id,
            "sync_job_id": job_id,
            "status": "QUEUED",
            "message": ("a run is in progress; this run starts when it finishes" if running else "sync run dispatched"),
        }
    )


@router.post("/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}/jobs")
def list_sync_jobs(
    request: Request,
    bucket_identifier: str,
    sync_config_id: str,
    body: ListSyncJobsRequest | None = Body(None),
    params: ListParams = Depends(),
    ns: NsCtx = Depends(namespace),
):
    """SyncJobListResponse: the sync's runs, newest first."""
    state = get_state(request)
    _get(state, ns, bucket_identifier, sync_config_id)
    body = body or ListSyncJobsRequest()
    where, wparams = ["sync_config_id=?"], [sync_config_id]
    if body.status is not None:
        where.append("status=?")
        wparams.append(body.status)
    page = paginate(
        state.store,
        table="sync_jobs",
        select="doc",
        where=" AND ".join(where),
        params=wparams,
        limit=params.limit or 100,
        offset=params.offset,
        cursor=params.cursor,
        include_total=True,
        descending=True,
    )
    pag = pagination_body(page)
    if not params.include_total:
        pag.update(total=None, total_pages=None)
    now = state.now()
    return json_response(
        {"results": [job_out(loads(r["doc"]), now) for r in page.rows], "pagination": pag, "total": page.total or 0}
    )


@router.get("/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}/jobs/{sync_job_id}")
def get_sync_job(
    request: Request, bucket_identifier: str, sync_config_id: str, sync_job_id: str, ns: NsCtx = Depends(namespace)
):
    state = get_state(request)
    _get(state, ns, bucket_identifier, sync_config_id)
    row = state.store.one(
        "SELECT doc FROM sync_jobs WHERE sync_job_id=? AND sync_config_id=?", (sync_job_id, sync_config_id)
    )
    if row is None:
        raise APIError(
            404,
            f"sync job '{sync_job_id}' not found for sync {sync_config_id}",
            "NotFoundError",
            {"resource": "sync_job", "identifier": sync_job_id},
        )
    return json_response(job_out(loads(row["doc"]), state.now()))
