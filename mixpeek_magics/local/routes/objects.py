"""Object routes: create, batch create, list, get, update, patch, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from ..db import loads
from ..deps import NsCtx, find_bucket, find_in_bucket, get_state, json_response, namespace
from ..errors import APIError
from ..filters import FieldRef
from ..models import CreateObjectRequest, CreateObjectsBatchRequest, ListObjectsRequest, UpdateObjectRequest
from ..pagination import paginate, pagination_body
from ..services import build_blob, create_object, delete_object_files, object_out, save_object
from ..util import select_fields
from .common import ListParams, filters_sql, search_sql, sort_direction

router = APIRouter()

_COLUMNS = {
    "object_id": FieldRef(sql="object_id", exact=True),
    "status": FieldRef(sql="status", exact=True, normalize=lambda v: v.upper() if isinstance(v, str) else v),
    "sha256": FieldRef(sql="sha256", exact=True),
    "size_bytes": FieldRef(sql="size_bytes"),
}


def _auto_process(state, ns: NsCtx, bucket_id: str, object_ids: list[str]) -> str:
    from ..services import submit_batch
    from .batches import new_batch

    batch_id = new_batch(state, ns, bucket_id, object_ids, {"auto_process": True})
    return submit_batch(state, ns.org_id, ns.namespace_id, bucket_id, batch_id)


@router.post("/v1/buckets/{bucket_identifier}/objects")
def create_object_route(
    request: Request,
    bucket_identifier: str,
    body: CreateObjectRequest,
    policy: str | None = Query(None),
    auto_process: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    d, dup = create_object(state, ns.org_id, ns.namespace_id, bucket["bucket_id"], body)
    if auto_process and not dup:
        task_id = _auto_process(state, ns, bucket["bucket_id"], [d["object_id"]])
        d = dict(d, task_id=task_id, status="PENDING")
    return json_response(object_out(d))


@router.post("/v1/buckets/{bucket_identifier}/objects/batch")
def create_objects_batch(
    request: Request,
    bucket_identifier: str,
    body: CreateObjectsBatchRequest,
    auto_process: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    succeeded: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for i, raw in enumerate(body.objects):
        try:
            req = CreateObjectRequest.model_validate(raw)
            d, _dup = create_object(state, ns.org_id, ns.namespace_id, bucket["bucket_id"], req)
            succeeded.append(object_out(d))
        except ValidationError as exc:
            msg = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
            failed.append({"object_index": i, "error": msg, "error_type": "ValidationError"})
        except APIError as exc:
            failed.append({"object_index": i, "error": exc.message, "error_type": exc.type})
    if not succeeded and failed:
        raise APIError(
            400,
            f"none of the {len(failed)} object(s) could be created; first error: {failed[0]['error']}",
            "BatchCreateFailed",
            {"failed": failed},
        )
    body_out: dict[str, Any] = {
        "succeeded": succeeded,
        "failed": failed,
        "total_requested": len(body.objects),
        "succeeded_count": len(succeeded),
        "failed_count": len(failed),
    }
    if auto_process:
        new_ids = [d["object_id"] for d in succeeded if not d.get("is_duplicate")]
        if new_ids:  # CreateObjectsBatchResponse names no task: the batch is found by listing batches
            _auto_process(state, ns, bucket["bucket_id"], new_ids)
    return json_response(body_out)


@router.post("/v1/buckets/{bucket_identifier}/objects/list")
def list_objects(
    request: Request,
    bucket_identifier: str,
    body: ListObjectsRequest | None = Body(None),
    params: ListParams = Depends(),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    body = body or ListObjectsRequest()
    fsql, fparams = filters_sql(body.filters, _COLUMNS)
    ssql, sparams = search_sql(
        body.search,
        [
            "object_id",
            "coalesce(json_extract(doc,'$.key_prefix'),'')",
            "json_extract(doc,'$.metadata')",
            "json_extract(doc,'$.blobs')",
        ],
    )
    where = f"bucket_id=? AND {fsql} AND {ssql}"
    wparams = [bucket["bucket_id"], *fparams, *sparams]
    page = paginate(
        state.store,
        table="objects",
        select="doc",
        where=where,
        params=wparams,
        limit=params.limit or 100,
        offset=params.offset,
        cursor=params.cursor,
        include_total=params.include_total,
        descending=sort_direction(body.sort, False),
    )
    results = [object_out(loads(r["doc"])) for r in page.rows]
    if body.select:
        results = [select_fields(d, body.select, ("object_id", "bucket_id")) for d in results]
    by_status: dict[str, int] = {}
    for d in results:
        by_status[d.get("status", "PENDING")] = by_status.get(d.get("status", "PENDING"), 0) + 1
    nblobs = sum(len(d.get("blobs") or []) for d in results)
    stats = {
        "total_objects": len(results),
        "total_blobs": nblobs,
        "avg_blobs_per_object": nblobs / len(results) if results else 0.0,
        "objects_by_status": by_status,
    }
    return json_response({"results": results, "pagination": pagination_body(page), "stats": stats})


def _get(state, ns: NsCtx, bucket_identifier: str, object_identifier: str):
    return find_in_bucket(state, ns, bucket_identifier, "objects", "object_id", object_identifier, "object")


@router.get("/v1/buckets/{bucket_identifier}/objects/{object_identifier}")
def get_object(
    request: Request,
    bucket_identifier: str,
    object_identifier: str,
    return_presigned_urls: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, object_identifier)
    return json_response(object_out(loads(row["doc"])))


def _update(
    request: Request, bucket_identifier: str, object_identifier: str, ns: NsCtx, changes: dict[str, Any], blobs=None
):
    state = get_state(request)
    bucket, row = _get(state, ns, bucket_identifier, object_identifier)
    d = loads(row["doc"])
    if blobs is not None:
        new_blobs = [build_blob(state, ns.org_id, bucket["bucket_id"], b, i) for i, b in enumerate(blobs)]
        delete_object_files(state, d)
        d["blobs"] = new_blobs
    for k, v in changes.items():
        if k in ("object_id", "bucket_id", "created_at", "updated_at", "blobs", "status"):
            continue
        if k == "metadata" and isinstance(v, dict):
            d["metadata"] = {**(d.get("metadata") or {}), **v}
        elif v is not None:
            d[k] = v
    d["updated_at"] = state.iso_now()
    save_object(state, d)
    return json_response(object_out(d))


@router.put("/v1/buckets/{bucket_identifier}/objects/{object_identifier}")
def update_object(
    request: Request,
    bucket_identifier: str,
    object_identifier: str,
    body: UpdateObjectRequest,
    ns: NsCtx = Depends(namespace),
):
    changes = body.model_dump(exclude_unset=True, exclude={"blobs"})
    return _update(request, bucket_identifier, object_identifier, ns, changes, body.blobs)


@router.patch("/v1/buckets/{bucket_identifier}/objects/{object_identifier}")
def patch_object(
    request: Request,
    bucket_identifier: str,
    object_identifier: str,
    body: dict[str, Any] = Body(...),
    ns: NsCtx = Depends(namespace),
):
    return _update(request, bucket_identifier, object_identifier, ns, body)


@router.delete("/v1/buckets/{bucket_identifier}/objects/{object_identifier}", status_code=204)
def delete_object(request: Request, bucket_identifier: str, object_identifier: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, object_identifier)
    delete_object_files(state, loads(row["doc"]))
    state.store.execute("DELETE FROM objects WHERE object_id=?", (row["object_id"],))
    return Response(status_code=204)
