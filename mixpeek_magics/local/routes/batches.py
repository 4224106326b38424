"""Batch routes: create, add objects, submit, get, list, patch, delete, cancel, retry, failed documents."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Body, Depends, Query, Request

from ..db import dumps, loads
from ..deps import NsCtx, find_bucket, find_in_bucket, get_state, json_response, namespace
from ..errors import APIError
from ..models import (AddObjectsToBatchRequest, CreateBatchRequest, ListBatchesRequest, PatchBatchRequest,
                      RetryBatchRequest, SubmitBatchRequest)
from ..services import cancel_task, submit_batch
from ..state import TERMINAL
from ..util import new_id

router = APIRouter()


def _check_objects(state, bucket_id: str, object_ids: list[str]) -> None:
    if not object_ids:
        return
    rows = state.store.query("SELECT object_id FROM objects WHERE bucket_id=? AND object_id IN "
                             "(SELECT value FROM json_each(?))", (bucket_id, dumps(object_ids)))
    missing = sorted(set(object_ids) - {r["object_id"] for r in rows})
    if missing:
        raise APIError(400, f"{len(missing)} object id(s) are not in this bucket: {', '.join(missing[:10])}"
                            + (" ..." if len(missing) > 10 else ""), "InvalidObjectIds", {"missing": missing[:100]})


def new_batch(state, ns: NsCtx, bucket_id: str, object_ids: list[str], metadata: dict | None) -> str:
    batch_id = new_id("btch")
    now = state.iso_now()
    seen: set[str] = set()
    ids = [o for o in object_ids if not (o in seen or seen.add(o))]
    doc = {"batch_id": batch_id, "bucket_id": bucket_id, "status": "DRAFT", "object_ids": ids,
           "collection_ids": [], "error": None, "error_summary": None, "type": "BUCKET", "manifest_key": None,
           "task_id": None, "loaded_object_ids": None, "internal_metadata": None, "metadata": metadata or {},
           "tier_tasks": [], "current_tier": None, "total_tiers": 1, "dag_tiers": [[]], "created_at": now,
           "updated_at": now}
    state.store.execute("INSERT INTO batches(batch_id, org_id, namespace_id, bucket_id, status, doc) "
                        "VALUES (?,?,?,?,?,?)", (batch_id, ns.org_id, ns.namespace_id, bucket_id, "DRAFT", dumps(doc)))
    return batch_id


def _get(state, ns: NsCtx, bucket_identifier: str, batch_id: str):
    return find_in_bucket(state, ns, bucket_identifier, "batches", "batch_id", batch_id, "batch")


@router.post("/v1/buckets/{bucket_identifier}/batches")
def create_batch(request: Request, bucket_identifier: str, body: CreateBatchRequest,
                 skip_validation: bool = Query(False), ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    if not skip_validation:
        _check_objects(state, bucket["bucket_id"], body.object_ids)
    batch_id = new_batch(state, ns, bucket["bucket_id"], body.object_ids, body.metadata)
    return json_response(loads(state.store.one("SELECT doc FROM batches WHERE batch_id=?", (batch_id,))["doc"]))


@router.post("/v1/buckets/{bucket_identifier}/batches/list")
def list_batches(request: Request, bucket_identifier: str, body: Optional[ListBatchesRequest] = Body(None),
                 ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    bucket = find_bucket(state, ns, bucket_identifier)
    body = body or ListBatchesRequest()
    where, params = "bucket_id=?", [bucket["bucket_id"]]
    if body.status:
        where += " AND status=?"
        params.append(body.status.upper())
    total = state.store.one(f"SELECT count(*) AS n FROM batches WHERE {where}", params)["n"]
    rows = state.store.query(f"SELECT doc FROM batches WHERE {where} ORDER BY rowid DESC LIMIT ? OFFSET ?",
                             [*params, body.limit, body.offset])
    return json_response({"results": [loads(r["doc"]) for r in rows], "total_count": total})


@router.get("/v1/buckets/{bucket_identifier}/batches/{batch_id}")
def get_batch(request: Request, bucket_identifier: str, batch_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    return json_response(loads(row["doc"]))


@router.patch("/v1/buckets/{bucket_identifier}/batches/{batch_id}")
def patch_batch(request: Request, bucket_identifier: str, batch_id: str, body: PatchBatchRequest,
                ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if body.metadata is not None:
        d["metadata"] = {**(d.get("metadata") or {}), **body.metadata}
    d["updated_at"] = state.iso_now()
    state.store.execute("UPDATE batches SET doc=? WHERE batch_id=?", (dumps(d), batch_id))
    return json_response(d)


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
def add_objects(request: Request, bucket_identifier: str, batch_id: str, body: AddObjectsToBatchRequest,
                skip_validation: bool = Query(False), ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    bucket, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if d["status"] != "DRAFT":
        raise APIError(409, f"batch '{batch_id}' is {d['status']}: objects can only be added to a DRAFT batch",
                       "ConflictError")
    if not skip_validation:
        _check_objects(state, bucket["bucket_id"], body.object_ids)
    have = set(d["object_ids"])
    for oid in body.object_ids:
        if oid not in have:
            d["object_ids"].append(oid)
            have.add(oid)
    d["updated_at"] = state.iso_now()
    state.store.execute("UPDATE batches SET doc=? WHERE batch_id=?", (dumps(d), batch_id))
    return json_response(d)


@router.post("/v1/buckets/{bucket_identifier}/batches/{batch_id}/submit")
def submit(request: Request, bucket_identifier: str, batch_id: str,
           body: Optional[SubmitBatchRequest] = Body(None), ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    bucket, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if d["status"] not in ("DRAFT", "PENDING") or d.get("task_id"):
        raise APIError(409, f"batch '{batch_id}' was already submitted (status {d['status']}, task "
                            f"{d.get('task_id')}); use retry to reprocess failed objects", "ConflictError")
    if not d["object_ids"]:
        raise APIError(400, f"batch '{batch_id}' has no objects: add objects before submitting", "EmptyBatch")
    task_id = submit_batch(state, ns.org_id, ns.namespace_id, bucket["bucket_id"], batch_id)
    return json_response(state.task_dict(task_id))


@router.post("/v1/buckets/{bucket_identifier}/batches/{batch_id}/cancel")
def cancel(request: Request, bucket_identifier: str, batch_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if not d.get("task_id"):
        raise APIError(409, f"batch '{batch_id}' has not been submitted: nothing to cancel", "ConflictError")
    cancel_task(state, d["task_id"], reason="batch canceled")
    return json_response(state.task_dict(d["task_id"]))


@router.post("/v1/buckets/{bucket_identifier}/batches/{batch_id}/retry")
def retry(request: Request, bucket_identifier: str, batch_id: str, body: Optional[RetryBatchRequest] = Body(None),
          ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    bucket, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    if not d.get("task_id"):
        raise APIError(409, f"batch '{batch_id}' has not been submitted yet", "ConflictError")
    task = state.task_dict(d["task_id"])
    if task["status"] not in TERMINAL:
        raise APIError(409, f"batch '{batch_id}' is still {task['status']}: retry after it finishes", "ConflictError")
    failed = [f["object_id"] for f in (task["additional_data"] or {}).get("failed_objects", []) if f.get("object_id")]
    if task["status"] == "CANCELED":
        done = {o["object_id"] for o in task.get("outputs") or [] if o.get("status") == "COMPLETED"}
        failed = [o for o in d["object_ids"] if o not in done]
    if not failed:
        return json_response({"batch_id": batch_id, "task_id": None, "retried_count": 0, "status": task["status"],
                              "message": "no failed documents to retry"})
    task_id = submit_batch(state, ns.org_id, ns.namespace_id, bucket["bucket_id"], batch_id, object_ids=failed)
    return json_response({"batch_id": batch_id, "task_id": task_id, "retried_count": len(failed),
                          "status": "PENDING", "message": f"retrying {len(failed)} failed object(s)",
                          "task": state.task_dict(task_id)})


@router.get("/v1/buckets/{bucket_identifier}/batches/{batch_id}/failed-documents")
def failed_documents(request: Request, bucket_identifier: str, batch_id: str, tier_num: Optional[int] = None,
                     collection_id: Optional[str] = None, limit: int = Query(100, ge=1, le=1000),
                     offset: int = Query(0, ge=0), ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    _, row = _get(state, ns, bucket_identifier, batch_id)
    d = loads(row["doc"])
    docs: list[dict[str, Any]] = []
    if d.get("task_id"):
        task = state.task_dict(d["task_id"])
        for f in (task["additional_data"] or {}).get("failed_objects", []):
            docs.append({"document_id": f["object_id"], "object_id": f["object_id"], "filename": f.get("filename"),
                         "error": f.get("error"), "error_type": "runtime", "tier_num": 0, "retry_count": 0})
    return json_response({"batch_id": batch_id, "failed_documents": docs[offset:offset + limit],
                          "total": len(docs), "limit": limit, "offset": offset})
