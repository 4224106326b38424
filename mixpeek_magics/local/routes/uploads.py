"""Upload routes: create (presigned PUT URLs, served by ``upload_endpoint``), confirm, list, get, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from ..db import dumps, loads
from ..deps import NsCtx, find_bucket, find_in_bucket, get_state, json_response, namespace
from ..errors import APIError
from ..filters import FieldRef
from ..models import (
    BatchConfirmRequest,
    BatchUploadRequest,
    ConfirmUploadRequest,
    CreateUploadRequest,
    ListUploadsRequest,
)
from ..pagination import paginate, pagination_body
from ..services import confirm_upload, presigned_url, upload_path
from ..util import iso, new_id
from .common import ListParams, filters_sql, search_sql, sort_direction

router = APIRouter()

_COLUMNS = {
    "upload_id": FieldRef(sql="upload_id", exact=True),
    "status": FieldRef(sql="status", exact=True, normalize=lambda v: v.upper() if isinstance(v, str) else v),
    "file_hash": FieldRef(sql="file_hash", exact=True),
}


_INSERT_UPLOAD = (
    "INSERT INTO uploads(upload_id, org_id, namespace_id, bucket_id, status, file_hash, doc) VALUES (?,?,?,?,?,?,?)"
)


def _new_upload(
    state,
    base_url: str,
    ns: NsCtx,
    bucket_id: str,
    req: CreateUploadRequest,
    shared_meta: dict | None = None,
    shared_obj_meta: dict | None = None,
) -> tuple[dict[str, Any], tuple | None]:
    """The UploadResponse of a create, and the uploads row to insert (None: an
    existing upload is returned). Inserting is the caller's: a batch inserts
    all its rows in one short transaction (the presigned PUTs wait for the
    database while a transaction is open)."""
    now_ts = state.now()
    now = iso(now_ts)
    metadata = {**(shared_meta or {}), **(req.metadata or {})}
    object_metadata = (
        {**(shared_obj_meta or {}), **(req.object_metadata or {})} if (shared_obj_meta or req.object_metadata) else None
    )
    if req.skip_duplicates and req.file_hash:
        # committed content only, without waiting for a confirm's transaction (deduplication is best effort)
        up = state.store.read_one(
            "SELECT * FROM uploads WHERE bucket_id=? AND file_hash=? AND status='COMPLETED' ORDER BY rowid LIMIT 1",
            (bucket_id, req.file_hash),
        )
        obj = state.store.read_one(
            "SELECT object_id FROM objects WHERE bucket_id=? AND sha256=? ORDER BY rowid LIMIT 1",
            (bucket_id, req.file_hash),
        )
        if up is not None or obj is not None:
            existing_object_id = obj["object_id"] if obj is not None else None
            if up is not None:
                d = loads(up["doc"])
                existing_object_id = existing_object_id or d.get("object_id")
                d.update(
                    is_duplicate=True,
                    duplicate_of_upload_id=up["upload_id"],
                    presigned_url=None,
                    existing_object_id=existing_object_id,
                    message="File already exists with the same content hash. No upload needed - "
                    "returning existing upload.",
                )
                return d, None
            upload_id = new_id("upl")
            d = _doc(state, ns, bucket_id, upload_id, req, now, now_ts, metadata, object_metadata)
            d.update(
                status="SKIPPED",
                is_duplicate=True,
                presigned_url=None,
                existing_object_id=existing_object_id,
                object_id=existing_object_id,
                file_hash=req.file_hash,
                message=f"File already stored as object {existing_object_id}. No upload needed.",
            )
            return d, (upload_id, ns.org_id, ns.namespace_id, bucket_id, "SKIPPED", None, dumps(d))
    upload_id = new_id("upl")
    d = _doc(state, ns, bucket_id, upload_id, req, now, now_ts, metadata, object_metadata)
    expires = int(now_ts + req.presigned_url_expiration)
    d["presigned_url"] = presigned_url(state, base_url, upload_id, expires)
    return d, (upload_id, ns.org_id, ns.namespace_id, bucket_id, "PENDING", None, dumps({**d, "presigned_url": None}))


def _doc(state, ns, bucket_id, upload_id, req: CreateUploadRequest, now, now_ts, metadata, object_metadata):
    return {
        "upload_id": upload_id,
        "bucket_id": bucket_id,
        "filename": req.filename,
        "content_type": req.content_type,
        "file_size_bytes": req.file_size_bytes,
        "presigned_url": None,
        "presigned_url_expiration": req.presigned_url_expiration,
        "s3_key": f"{ns.org_id}/{ns.namespace_id}/api_buckets_uploads_create/{upload_id}/{req.filename}",
        "status": "PENDING",
        "metadata": metadata,
        "create_object_on_confirm": req.create_object_on_confirm,
        "object_metadata": object_metadata,
        "blob_property": req.blob_property,
        "blob_type": req.blob_type,
        "file_hash": req.file_hash,
        "skip_duplicates": req.skip_duplicates,
        "is_duplicate": False,
        "duplicate_of_upload_id": None,
        "skipped_unique_key": False,
        "existing_object_id": None,
        "message": None,
        "created_at": now,
        "expires_at": iso(now_ts + req.presigned_url_expiration),
        "completed_at": None,
        "verified_at": None,
        "etag": None,
        "object_id": None,
        "task_id": None,
    }


@router.post("/v1/buckets/{bucket_identifier}/uploads")
def create_upload(request: Request, bucket_identifier: str, body: CreateUploadRequest, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    d, row = _new_upload(state, str(request.base_url), ns, bucket["bucket_id"], body)
    if row is not None:
        state.store.execute(_INSERT_UPLOAD, row)
    return json_response(d)


@router.post("/v1/buckets/{bucket_identifier}/uploads/batch")
def create_uploads_batch(
    request: Request, bucket_identifier: str, body: BatchUploadRequest, ns: NsCtx = Depends(namespace)
):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    base_url = str(request.base_url)
    made = [
        _new_upload(state, base_url, ns, bucket["bucket_id"], u, body.shared_metadata, body.shared_object_metadata)
        for u in body.uploads
    ]
    rows = [row for _, row in made if row is not None]
    if rows:
        with state.store.tx() as c:
            c.executemany(_INSERT_UPLOAD, rows)
    ups = [d for d, _ in made]
    return json_response({"uploads": ups, "total": len(ups)})


@router.post("/v1/buckets/{bucket_identifier}/uploads/confirm/batch")
def confirm_uploads_batch(
    request: Request, bucket_identifier: str, body: BatchConfirmRequest, ns: NsCtx = Depends(namespace)
):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    for i, c in enumerate(body.confirmations):
        if not isinstance(c.get("upload_id"), str) or not c["upload_id"]:
            raise APIError(400, f"confirmations[{i}] needs an 'upload_id'", "BadRequestError")
    ids = [c["upload_id"] for c in body.confirmations]
    # Each upload's outcome is read from the upload (GET, or uploads/list with upload_id in [...]).
    ad = {"namespace_id": ns.namespace_id, "bucket_id": bucket["bucket_id"]}
    task_id = state.create_task(
        ns.org_id,
        "api_buckets_uploads_batch_confirm",
        inputs=ids,
        additional_data=ad,
        outputs=[],
        job={
            "kind": "confirm_batch",
            "namespace_id": ns.namespace_id,
            "bucket_id": bucket["bucket_id"],
            "confirmations": body.confirmations,
        },
    )
    task = state.task_dict(task_id)
    state.submit_task(task_id)
    return json_response(
        {
            "task_id": task_id,
            "status": task["status"],
            "confirmations_count": len(ids),
            "task": task,
            "message": "Batch confirmation is being processed in the background.",
        }
    )


@router.post("/v1/buckets/{bucket_identifier}/uploads/list")
def list_uploads(
    request: Request,
    bucket_identifier: str,
    body: ListUploadsRequest | None = Body(None),
    params: ListParams = Depends(),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    body = body or ListUploadsRequest()
    fsql, fparams = filters_sql(body.filters, _COLUMNS)
    ssql, sparams = search_sql(body.search, ["json_extract(doc,'$.filename')", "json_extract(doc,'$.metadata')"])
    where = f"bucket_id=? AND {fsql} AND {ssql}"
    wparams = [bucket["bucket_id"], *fparams, *sparams]
    limit = params.limit or body.limit or 20
    offset = params.offset if params.offset is not None else body.offset
    page = paginate(
        state.store,
        table="uploads",
        select="doc, received_size",
        where=where,
        params=wparams,
        limit=limit,
        offset=offset,
        cursor=params.cursor,
        include_total=params.include_total,
        descending=sort_direction(body.sort, True),
    )
    results = [loads(r["doc"]) for r in page.rows]
    by_status: dict[str, int] = {}
    for d in results:
        by_status[d["status"]] = by_status.get(d["status"], 0) + 1
    sizes = [int(r["received_size"] or loads(r["doc"]).get("file_size_bytes") or 0) for r in page.rows]
    stats = {
        "total_uploads": len(results),
        "total_size_bytes": sum(sizes),
        "uploads_by_status": by_status,
        "avg_file_size_bytes": (sum(sizes) / len(sizes)) if sizes else 0.0,
        "unique_buckets": 1 if results else 0,
    }
    return json_response({"results": results, "pagination": pagination_body(page), "stats": stats})


def _get_row(state, ns: NsCtx, bucket_identifier: str, upload_id: str):
    return find_in_bucket(state, ns, bucket_identifier, "uploads", "upload_id", upload_id, "upload")


@router.get("/v1/buckets/{bucket_identifier}/uploads/{upload_id}")
def get_upload(
    request: Request,
    bucket_identifier: str,
    upload_id: str,
    return_presigned_urls: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    _, row = _get_row(state, ns, bucket_identifier, upload_id)
    return json_response(loads(row["doc"]))


@router.delete("/v1/buckets/{bucket_identifier}/uploads/{upload_id}", status_code=204)
def delete_upload(
    request: Request,
    bucket_identifier: str,
    upload_id: str,
    delete_s3_object: bool = Query(True),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    _, row = _get_row(state, ns, bucket_identifier, upload_id)
    if row["status"] == "COMPLETED":
        raise APIError(409, f"upload '{upload_id}' is COMPLETED and cannot be canceled", "ConflictError")
    d = loads(row["doc"])
    d["status"] = "CANCELED"
    state.store.execute("UPDATE uploads SET status='CANCELED', doc=? WHERE upload_id=?", (dumps(d), upload_id))
    if delete_s3_object:
        upload_path(state, upload_id).unlink(missing_ok=True)  # an in-flight PUT's part file is its own
    return Response(status_code=204)


@router.post("/v1/buckets/{bucket_identifier}/uploads/{upload_id}/confirm")
def confirm_upload_route(
    request: Request,
    bucket_identifier: str,
    upload_id: str,
    body: ConfirmUploadRequest | None = Body(None),
    async_: bool = Query(False, alias="async"),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket, _ = _get_row(state, ns, bucket_identifier, upload_id)
    body = body or ConfirmUploadRequest()
    r = confirm_upload(
        state,
        ns.org_id,
        ns.namespace_id,
        bucket["bucket_id"],
        upload_id,
        etag=body.etag,
        file_size_bytes=body.file_size_bytes,
        file_hash=body.file_hash,
    )
    return json_response(r)
