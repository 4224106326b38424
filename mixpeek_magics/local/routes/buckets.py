"""Bucket routes: create, list, get, update (PUT), patch, delete."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Request

from ..collections import forget_bucket
from ..db import dumps
from ..deps import NsCtx, find_bucket, get_state, json_response, namespace, update_named_doc
from ..errors import APIError
from ..filters import FieldRef
from ..models import BucketCreateRequest, BucketUpdateRequest, ListBucketsRequest
from ..pagination import paginate, pagination_body
from ..services import bucket_response, remove_bucket_data
from ..util import new_id
from .common import ListParams, filters_sql, search_sql, sort_direction

router = APIRouter()

_COLUMNS = {"bucket_id": FieldRef(sql="bucket_id", exact=True), "bucket_name": FieldRef(sql="name")}


def _check_name(state, ns: NsCtx, name: str, exclude: str | None = None) -> None:
    row = state.store.one("SELECT bucket_id FROM buckets WHERE namespace_id=? AND name=?", (ns.namespace_id, name))
    if row is not None and row["bucket_id"] != exclude:
        raise APIError(
            409,
            f"a bucket named '{name}' already exists in namespace '{ns.namespace_name}'",
            "ConflictError",
            {"bucket_id": row["bucket_id"]},
        )


@router.post("/v1/buckets")
def create_bucket(request: Request, body: BucketCreateRequest, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    schema = body.bucket_schema.model_dump(exclude_none=True)
    if body.unique_key:
        missing = [f for f in body.unique_key.fields if f not in body.bucket_schema.properties]
        if missing:
            raise APIError(
                400, f"unique_key field(s) {missing} are not in bucket_schema.properties", "InvalidBucketSchema"
            )
    with state.store.tx() as c:
        _check_name(state, ns, body.bucket_name)
        bucket_id = new_id("bkt")
        now = state.iso_now()
        doc = {
            "bucket_id": bucket_id,
            "bucket_name": body.bucket_name,
            "description": body.description,
            "bucket_schema": schema,
            "unique_key": body.unique_key.model_dump() if body.unique_key else None,
            "metadata": body.metadata,
            "object_count": 0,
            "total_size_bytes": 0,
            "created_at": now,
            "updated_at": now,
            "last_upload_at": None,
            "status": "ACTIVE",
            "is_locked": False,
            "batch_stats": None,
            "storage_stats": None,
        }
        c.execute(
            "INSERT INTO buckets(bucket_id, org_id, namespace_id, name, doc) VALUES (?,?,?,?,?)",
            (bucket_id, ns.org_id, ns.namespace_id, body.bucket_name, dumps(doc)),
        )
        row = state.store.one("SELECT * FROM buckets WHERE bucket_id=?", (bucket_id,))
    return json_response(bucket_response(state, row))


@router.post("/v1/buckets/list")
def list_buckets(
    request: Request,
    body: ListBucketsRequest | None = Body(None),
    params: ListParams = Depends(),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    body = body or ListBucketsRequest()
    fsql, fparams = filters_sql(body.filters, _COLUMNS, case_sensitive=body.case_sensitive)
    ssql, sparams = search_sql(
        body.search, ["bucket_id", "name", "coalesce(json_extract(doc,'$.description'),'')"], body.case_sensitive
    )
    where = f"namespace_id=? AND {fsql} AND {ssql}"
    wparams = [ns.namespace_id, *fparams, *sparams]
    limit = params.limit or body.limit
    offset = params.offset if params.offset is not None else body.offset
    page = paginate(
        state.store,
        table="buckets",
        select="*",
        where=where,
        params=wparams,
        limit=limit,
        offset=offset,
        cursor=params.cursor,
        include_total=True,
        descending=sort_direction(body.sort, False),
    )
    results = [bucket_response(state, r) for r in page.rows]
    n = len(results) or 1
    tot_obj = sum(r["object_count"] for r in results)
    tot_size = sum(r["total_size_bytes"] for r in results)
    pag = pagination_body(page)
    if not params.include_total:
        pag.update(total=None, page=None, total_pages=None)
    return json_response(
        {
            "results": results,
            "total_count": page.total,
            "pagination": pag,
            "stats": {
                "total_objects": tot_obj,
                "total_size_bytes": tot_size,
                "avg_objects_per_bucket": tot_obj / n,
                "avg_size_per_bucket": tot_size / n,
            },
        }
    )


@router.get("/v1/buckets/{bucket_identifier}")
def get_bucket(request: Request, bucket_identifier: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    return json_response(bucket_response(state, find_bucket(state, ns, bucket_identifier)))


def _update(request: Request, ident: str, ns: NsCtx, changes: dict):
    state = get_state(request)
    with state.store.tx():
        row = find_bucket(state, ns, ident)
        if changes.get("bucket_name"):
            _check_name(state, ns, changes["bucket_name"], exclude=row["bucket_id"])
        row = update_named_doc(state, "buckets", "bucket_id", "bucket_name", row, changes)
    return json_response(bucket_response(state, row))


@router.put("/v1/buckets/{bucket_identifier}")
def update_bucket(request: Request, bucket_identifier: str, body: BucketUpdateRequest, ns: NsCtx = Depends(namespace)):
    return _update(request, bucket_identifier, ns, body.model_dump(exclude_unset=True))


@router.patch("/v1/buckets/{bucket_identifier}")
def patch_bucket(request: Request, bucket_identifier: str, body: BucketUpdateRequest, ns: NsCtx = Depends(namespace)):
    return _update(request, bucket_identifier, ns, body.model_dump(exclude_unset=True))


@router.delete("/v1/buckets/{bucket_identifier}")
def delete_bucket(request: Request, bucket_identifier: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    row = find_bucket(state, ns, bucket_identifier)
    count = remove_bucket_data(state, row["bucket_id"])
    forget_bucket(state, row["bucket_id"])
    task_id = state.create_task(
        ns.org_id,
        "api_buckets_delete",
        inputs=[row["bucket_id"]],
        status="COMPLETED",
        outputs=[{"bucket_id": row["bucket_id"], "objects_deleted": count}],
        additional_data={"namespace_id": ns.namespace_id, "bucket_id": row["bucket_id"]},
    )
    return json_response(
        {
            "task_id": task_id,
            "status": "COMPLETED",
            "bucket_id": row["bucket_id"],
            "bucket_name": row["name"],
            "object_count": count,
            "message": f"bucket '{row['name']}' and its {count} object(s) deleted",
        }
    )
