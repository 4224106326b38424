"""Namespace routes: create, list, get, update (PUT), patch, delete."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Request

from ..db import dumps
from ..deps import caller, find_namespace, get_state, json_response, update_named_doc
from ..errors import APIError, not_found
from ..filters import FieldRef
from ..models import CreateNamespaceRequest, ListNamespacesRequest, PatchNamespaceRequest, UpdateNamespaceRequest
from ..pagination import paginate, pagination_body
from ..services import namespace_response, remove_bucket_data
from ..state import Caller
from ..util import new_id
from .common import ListParams, filters_sql, search_sql, sort_direction

router = APIRouter()

_NS_COLUMNS = {"namespace_id": FieldRef(sql="namespace_id", exact=True), "namespace_name": FieldRef(sql="name")}


def _check_name(state, org_id: str, name: str, exclude: str | None = None) -> None:
    row = state.store.one("SELECT namespace_id FROM namespaces WHERE org_id=? AND name=?", (org_id, name))
    if row is not None and row["namespace_id"] != exclude:
        raise APIError(
            409, f"a namespace named '{name}' already exists", "ConflictError", {"namespace_id": row["namespace_id"]}
        )


def _get(state, who: Caller, ident: str):
    row = find_namespace(state, who.org_id, ident)
    if row is None:
        raise not_found("namespace", ident)
    return row


@router.post("/v1/namespaces")
def create_namespace(request: Request, body: CreateNamespaceRequest, who: Caller = Depends(caller)):
    state = get_state(request)
    with state.store.tx() as c:
        _check_name(state, who.org_id, body.namespace_name)
        ns_id = new_id("ns")
        now = state.iso_now()
        extractors = []
        for fe in body.feature_extractors:
            d = fe.model_dump()
            d["feature_extractor_id"] = f"{fe.feature_extractor_name}_{fe.version}"
            extractors.append(d)
        doc = {
            "namespace_id": ns_id,
            "namespace_name": body.namespace_name,
            "infrastructure": body.infrastructure,
            "cluster_id": None,
            "description": body.description,
            "feature_extractors": extractors,
            "payload_indexes": body.payload_indexes or [],
            "document_count": 0,
            "bucket_count": 0,
            "collection_count": 0,
            "object_count": 0,
            "auto_create_indexes": bool(body.auto_create_indexes),
            "vector_inference_map": {},
            "created_at": now,
            "updated_at": now,
        }
        c.execute(
            "INSERT INTO namespaces(namespace_id, org_id, name, doc) VALUES (?,?,?,?)",
            (ns_id, who.org_id, body.namespace_name, dumps(doc)),
        )
    return json_response(doc)


@router.post("/v1/namespaces/list")
def list_namespaces(
    request: Request,
    body: ListNamespacesRequest | None = Body(None),
    params: ListParams = Depends(),
    who: Caller = Depends(caller),
):
    state = get_state(request)
    body = body or ListNamespacesRequest()
    fsql, fparams = filters_sql(body.filters, _NS_COLUMNS, case_sensitive=body.case_sensitive)
    ssql, sparams = search_sql(
        body.search, ["namespace_id", "name", "coalesce(json_extract(doc,'$.description'),'')"], body.case_sensitive
    )
    where = f"org_id=? AND {fsql} AND {ssql}"
    wparams = [who.org_id, *fparams, *sparams]
    page = paginate(
        state.store,
        table="namespaces",
        select="*",
        where=where,
        params=wparams,
        limit=params.limit or 100,
        offset=params.offset,
        cursor=params.cursor,
        include_total=True,
        descending=sort_direction(body.sort, False),
    )
    results = [namespace_response(state, r) for r in page.rows]
    total = page.total or 0
    stats = {
        "total_feature_extractors": sum(len(r["feature_extractors"]) for r in results),
        "total_payload_indexes": sum(len(r.get("payload_indexes") or []) for r in results),
        "total_documents": 0,
        "total_buckets": sum(r["bucket_count"] for r in results),
        "total_collections": 0,
        "total_objects": sum(r["object_count"] for r in results),
    }
    n = len(results) or 1
    stats.update(
        {
            "avg_feature_extractors_per_namespace": stats["total_feature_extractors"] / n,
            "avg_payload_indexes_per_namespace": stats["total_payload_indexes"] / n,
            "avg_documents_per_namespace": 0.0,
            "avg_buckets_per_namespace": stats["total_buckets"] / n,
            "avg_collections_per_namespace": 0.0,
            "avg_objects_per_namespace": stats["total_objects"] / n,
        }
    )
    pag = pagination_body(page)
    if not params.include_total:
        pag.update(total=None, page=None, total_pages=None)
    return json_response({"results": results, "pagination": pag, "total_count": total, "stats": stats})


@router.get("/v1/namespaces/{namespace_identifier}")
def get_namespace(request: Request, namespace_identifier: str, who: Caller = Depends(caller)):
    state = get_state(request)
    return json_response(namespace_response(state, _get(state, who, namespace_identifier)))


def _update(request: Request, ident: str, who: Caller, changes: dict):
    state = get_state(request)
    with state.store.tx():
        row = _get(state, who, ident)
        if changes.get("namespace_name"):
            _check_name(state, who.org_id, changes["namespace_name"], exclude=row["namespace_id"])
        row = update_named_doc(state, "namespaces", "namespace_id", "namespace_name", row, changes)
    return json_response(namespace_response(state, row))


@router.put("/v1/namespaces/{namespace_identifier}")
def update_namespace(
    request: Request, namespace_identifier: str, body: UpdateNamespaceRequest, who: Caller = Depends(caller)
):
    return _update(request, namespace_identifier, who, body.model_dump(exclude_unset=True))


@router.patch("/v1/namespaces/{namespace_identifier}")
def patch_namespace(
    request: Request, namespace_identifier: str, body: PatchNamespaceRequest, who: Caller = Depends(caller)
):
    return _update(request, namespace_identifier, who, body.model_dump(exclude_unset=True))


@router.delete("/v1/namespaces/{namespace_identifier}")
def delete_namespace(request: Request, namespace_identifier: str, who: Caller = Depends(caller)):
    state = get_state(request)
    row = _get(state, who, namespace_identifier)
    ns_id = row["namespace_id"]
    buckets = state.store.query("SELECT bucket_id FROM buckets WHERE namespace_id=?", (ns_id,))
    objects = 0
    for b in buckets:
        objects += remove_bucket_data(state, b["bucket_id"])
    state.store.execute("DELETE FROM namespaces WHERE namespace_id=?", (ns_id,))
    task_id = state.create_task(
        who.org_id,
        "api_namespaces_delete",
        inputs=[ns_id],
        status="COMPLETED",
        outputs=[{"namespace_id": ns_id, "buckets_deleted": len(buckets), "objects_deleted": objects}],
        additional_data={"namespace_id": ns_id},
    )
    return json_response(
        {
            "namespace_id": ns_id,
            "namespace_name": row["name"],
            "task_id": task_id,
            "status": "COMPLETED",
            "message": f"namespace '{row['name']}' deleted",
            "success": True,
        }
    )
