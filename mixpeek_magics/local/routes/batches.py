"""Batch routes: create, add objects, submit, get, list (per bucket and across buckets),
patch, delete, cancel, retry, failed documents. Answers are BatchModels (``batch_out``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request

from ..db import dumps, loads
from ..deps import NsCtx, caller, find_bucket, find_in_bucket, find_namespace, get_state, json_response, namespace
from ..errors import APIError, not_found
from ..models import (
    AddObjectsToBatchRequest,
    CreateBatchRequest,
    ListBatchesRequest,
    PatchBatchRequest,
    RetryBatchRequest,
    SubmitBatchRequest,
)
from ..pagination import paginate, pagination_body
from ..services import batch_out, cancel_task, new_batch_doc, submit_batch
from ..state import TERMINAL, Caller
from ..util import new_id

router = APIRouter()


def _check_objects(state, bucket_id: str, object_ids: list[str]) -> None:
    if not object_ids:
        return
    rows = state.store.query(
        "SELECT object_id FROM objects WHERE bucket_id=? AND object_id IN (SELECT value FROM json_each(?))",
        (bucket_id, dumps(object_ids)),
    )
    missing = sorted(set(object_ids) - {r["object_id"] for r in rows})
    if missing:
        raise APIError(
            400,
            f"{len(missing)} object id(s) are not in this bucket: {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else ""),
            "InvalidObjectIds",
            {"missing": missing[:100]},
        )


def new_batch(
    state, ns: NsCtx, bucket_id: str, object_ids: list[str], metadata: dict | None, dedup_strategy: str | None = None
) -> str:
    batch_id = new_id("btch")
    now = state.iso_now()
    ids = list(dict.fromkeys(object_ids))  # first occurrence of each, in order
    doc = new_batch_doc(batch_id, bucket_id, ns.namespace_id, ids, metadata, now)
    doc["dedup_strategy"] = dedup_strategy
    state.store.execute(
        "INSERT INTO batches(batch_id, org_id, namespace_id, bucket_id, status, doc) VALUES (?,?,?,?,?,?)",
        (batch_id, ns.org_id, ns.namespace_id, bucket_id, "DRAFT", dumps(doc)),
    )
    return batch_id


def _get(state, ns: NsCtx, bucket_identifier: str, batch_id: str):
    return find_in_bucket(state, ns, bucket_identifier, "batches", "batch_id", batch_id, "batch")


@router.post("/v1/buckets/{bucket_identifier}/batches")
def create_batch(
    request: Request,
    bucket_identifier: str,
    body: CreateBatchRequest,
    skip_validation: bool = Query(False),
    auto_submit: bool | None = Query(None),
    trigger_processing: bool | None = Query(None),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    if not skip_validation:
        _check_objects(state, bucket["bucket_id"], body.object_ids)
    batch_id = new_batch(state, ns, bucket["bucket_id"], body.object_ids, body.metadata, body.dedup_strategy)
    # the query wins over the body, auto_submit over its deprecated alias trigger_processing
    submit_now = next(
        (v for v in (auto_submit, trigger_processing, body.auto_submit, body.trigger_processing) if v is not None),
        False,
    )
    if submit_now:
        submit_batch(state, ns.org_id, ns.namespace_id, bucket["bucket_id"], batch_id)
    return json_response(
        batch_out(loads(state.store.expect_one("SELECT doc FROM batches WHERE batch_id=?", (batch_id,))["doc"]))
    )


def _list(state, where: list[str], params: list[Any], body: ListBatchesRequest) -> Any:
    """A ListBatchesResponse, newest first (offset, or the ``cursor`` of a previous page)."""
    if body.status:
        where.append("status=?")
        params.append(body.status)
    if body.bucket_id:
        where.append("bucket_id=?")
        params.append(body.bucket_id)
    if body.namespace_id:
        where.append("namespace_id=?")
        params.append(body.namespace_id)
    if body.collection_id:
        where.append("EXISTS (SELECT 1 FROM json_each(doc, '$.collection_ids') WHERE value=?)")
        params.append(body.collection_id)
    page = paginate(
        state.store,
        table="batches",
        select="doc",
        where=" AND ".join(where),
        params=params,
        limit=body.limit or 100,
        offset=None if body.cursor else body.offset,
        cursor=body.cursor,
        include_total=True,
        descending=True,
    )
    return json_response(
        {
            "results": [batch_out(loads(r["doc"])) for r in page.rows],
            "total_count": page.total,
            "pagination": pagination_body(page),
        }
    )


@router.post("/v1/buckets/{bucket_identifier}/batches/list")
def list_batches(
    request: Request,
    bucket_identifier: str,
    body: ListBatchesRequest | None = Body(None),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    return _list(state, ["bucket_id=?"], [bucket["bucket_id"]], body or ListBatchesRequest())


@router.post("/v1/batches/list")
def list_all_batches(
    request: Request,
    body: ListBatchesRequest | None = Body(None),
    who: Caller = Depends(caller),
    x_namespace: str | None = Header(None),
):
    """Batches across the organization's buckets (one namespace with X-Namespace)."""
    state = get_state(request)
    where, params = ["org_id=?"], [who.org_id]
    if x_namespace and x_namespace.strip():
        row = find_namespace(state, who.org_id, x_namespace.strip())
        if row is None:
            raise APIError(
                404,
                f"namespace '{x_namespace.strip()}' not found (X-Namespace header)",
                "NotFoundError",
                {"resource": "namespace", "identifier": x_namespace.strip()},
            )
        where.append("namespace_id=?")
        params.append(row["namespace_id"])
    return _list(state, where, params, body or ListBatchesRequest())


def _org_batch(state, who: Caller, batch_id: str):
    row = state.store.one("SELECT * FROM batches WHERE batch_id=? AND org_id=?", (batch_id, who.org_id))
    if row is None:
        raise not_found("batch", batch_id)
    return row


@router.get("/v1/batches/{batch_id}")
def get_batch_by_id(request: Request, batch_id: str, who: Caller = Depends(caller)):
    return json_response(batch_out(loads(_org_batch(get_state(request), who, batch_id)["doc"])))


@router.post("/v1/batches/{batch_id}/cancel")
def cancel_by_id(request: Request, batch_id: str, who: Caller = Depends(caller)):
    state = get_state(request)
    return _cancel(state, loads(_org_batch(state, who, batch_id)["doc"]))


@router.get("/v1/buckets/{bucket_identifier}/batches/{batch_id}")
def get_batch(request: Request, bucket_identifier: str, batch_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    return json_response(batch_out(loads(row["doc"])))


@router.patch("/v1/buckets/{bucket_identifier}/batches/{batch_id}")
def patch_batch(
    request: Request, bucket_identifier: str, batch_id: str, body: PatchBatchRequest, ns: NsCtx = Depends(namespace)
):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if body.metadata is not None:
        d["metadata"] = {**(d.get("metadata") or {}), **body.metadata}
    d["updated_at"] = state.iso_now()
    state.store.execute("UPDATE batches SET doc=? WHERE batch_id=?", (dumps(d), batch_id))
    return json_response(batch_out(d))


@router.delete("/v1/buckets/{bucket_identifier}/batches/{batch_id}")
def delete_batch(request: Request, bucket_identifier: str, batch_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if d.get("task_id"):
        cancel_task(state, d["task_id"], reason="batch deleted")
    state.store.execute("DELETE FROM batches WHERE batch_id=?", (batch_id,))
    return json_response({"message": "Successfully deleted", "success": True})


@router.post("/v1/buckets/{bucket_identifier}/batches/{batch_id}/objects")
def add_objects(
    request: Request,
    bucket_identifier: str,
    batch_id: str,
    body: AddObjectsToBatchRequest,
    skip_validation: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if d["status"] != "DRAFT":
        raise APIError(
            409, f"batch '{batch_id}' is {d['status']}: objects can only be added to a DRAFT batch", "ConflictError"
        )
    if not skip_validation:
        _check_objects(state, bucket["bucket_id"], body.object_ids)
    have = set(d["object_ids"])
    for oid in body.object_ids:
        if oid not in have:
            d["object_ids"].append(oid)
            have.add(oid)
    d["updated_at"] = state.iso_now()
    state.store.execute("UPDATE batches SET doc=? WHERE batch_id=?", (dumps(d), batch_id))
    return json_response(batch_out(d))


@router.post("/v1/buckets/{bucket_identifier}/batches/{batch_id}/submit")
def submit(
    request: Request,
    bucket_identifier: str,
    batch_id: str,
    body: SubmitBatchRequest | None = Body(None),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if d["status"] not in ("DRAFT", "PENDING") or d.get("task_id"):
        raise APIError(
            409,
            f"batch '{batch_id}' was already submitted (status {d['status']}, task "
            f"{d.get('task_id')}); use retry to reprocess failed objects",
            "ConflictError",
        )
    if not d["object_ids"]:
        raise APIError(400, f"batch '{batch_id}' has no objects: add objects before submitting", "EmptyBatch")
    task_id = submit_batch(state, ns.org_id, ns.namespace_id, bucket["bucket_id"], batch_id)
    return json_response(state.task_dict(task_id))


@router.post("/v1/buckets/{bucket_identifier}/batches/{batch_id}/cancel")
def cancel(request: Request, bucket_identifier: str, batch_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    return _cancel(state, loads(row["doc"]))


def _cancel(state, d: dict[str, Any]) -> Any:
    if not d.get("task_id"):
        raise APIError(409, f"batch '{d['batch_id']}' has not been submitted: nothing to cancel", "ConflictError")
    cancel_task(state, d["task_id"], reason="batch canceled")
    # CancellationOutcome: the local worker stops at the next object; there is no engine job to dispatch to
    return json_response(
        {
            **state.task_dict(d["task_id"]),
            "cancellation": {"ray_jobs_requested": 0, "ray_jobs_accepted": 0, "ray_jobs_refused": 0},
        }
    )


@router.post("/v1/buckets/{bucket_identifier}/batches/{batch_id}/retry")
def retry(
    request: Request,
    bucket_identifier: str,
    batch_id: str,
    body: RetryBatchRequest | None = Body(None),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    bucket, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if not d.get("task_id"):
        raise APIError(409, f"batch '{batch_id}' has not been submitted yet", "ConflictError")
    status = d.get("status")
    if status not in TERMINAL:
        raise APIError(409, f"batch '{batch_id}' is still {status}: retry after it finishes", "ConflictError")
    failed = [f["object_id"] for f in d.get("failed_objects") or [] if f.get("object_id")]
    if status == "CANCELED":
        done = {
            r["object_id"]
            for r in state.store.query(
                "SELECT object_id FROM objects WHERE bucket_id=? AND status='COMPLETED' AND object_id IN "
                "(SELECT value FROM json_each(?))",
                (bucket["bucket_id"], dumps(d["object_ids"])),
            )
        }
        failed = [o for o in d["object_ids"] if o not in done]
    if not failed:
        return json_response(
            {
                "batch_id": batch_id,
                "task_id": None,
                "retried_count": 0,
                "status": status,
                "message": "no failed documents to retry",
            }
        )
    task_id = submit_batch(state, ns.org_id, ns.namespace_id, bucket["bucket_id"], batch_id, object_ids=failed)
    return json_response(
        {
            "batch_id": batch_id,
            "task_id": task_id,
            "retried_count": len(failed),
            "status": "PENDING",
            "message": f"retrying {len(failed)} failed object(s)",
            "task": state.task_dict(task_id),
        }
    )


@router.get("/v1/buckets/{bucket_identifier}/batches/{batch_id}/failed-documents")
def failed_documents(
    request: Request,
    bucket_identifier: str,
    batch_id: str,
    tier_num: int | None = None,
    collection_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    docs: list[dict[str, Any]] = []
    ids = [f["object_id"] for f in d.get("failed_objects") or []]
    names = {
        r["object_id"]: r["filename"]
        for r in state.store.query(
            "SELECT object_id, json_extract(doc, '$.blobs[0].details.filename') AS filename FROM objects "
            "WHERE object_id IN (SELECT value FROM json_each(?))",
            (dumps(ids),),
        )
    }
    for f in d.get("failed_objects") or []:
        docs.append(
            {
                "document_id": f["object_id"],
                "object_id": f["object_id"],
                "filename": names.get(f["object_id"]),
                "error": f.get("error"),
                "error_type": f.get("error_type"),
                "tier_num": 0,
                "retry_count": int(d.get("retry_count") or 0),
            }
        )
    return json_response(
        {
            "batch_id": batch_id,
            "failed_documents": docs[offset : offset + limit],
            "total": len(docs),
            "limit": limit,
            "offset": offset,
        }
    )
