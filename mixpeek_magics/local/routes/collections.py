"""Collection routes: the extractor catalogue, create, list, get, delete, trigger; documents list and get;
and the signed thumbnail downloads (``/_local/thumbnails/{document_id}``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from .. import extractors as X
from ..collections import (
    check_thumbnail_signature,
    collection_response,
    delete_collection_data,
    document_response,
    extractor_of,
    find_collection,
    live_source_buckets,
    start_trigger,
    thumbnail_path,
)
from ..db import dumps, loads
from ..deps import NsCtx, find_bucket, get_state, json_response, namespace
from ..errors import APIError, validation_422
from ..filters import FieldRef, compile_filters, doc_resolver
from ..pagination import paginate, pagination_body
from ..util import new_id, select_fields
from .common import ListParams, filters_sql, refuse_taken_name, search_sql, sort_direction

router = APIRouter()

_COLUMNS = {"collection_id": FieldRef(sql="collection_id", exact=True), "collection_name": FieldRef(sql="name")}
_DOC_COLUMNS = {
    "document_id": FieldRef(sql="document_id", exact=True),
    "collection_id": FieldRef(sql="collection_id", exact=True),
    "root_object_id": FieldRef(sql="root_object_id", exact=True),
    "_internal.lineage.root_object_id": FieldRef(sql="root_object_id", exact=True),
}
_SPLITS = ("none", "characters", "words", "sentences", "paragraphs")


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise validation_422(["body"], "the request body must be a JSON object", "dict_type")
    return body


# -- the extractor catalogue ----------------------------------------------------------------------
def extractor_model(ext: X.Extractor) -> dict[str, Any]:
    inputs = {m: {"type": m, "description": f"the {m} to process"} for m in ext.modalities}
    return {
        "feature_extractor_name": ext.name,
        "version": ext.version,
        "feature_extractor_id": ext.extractor_id,
        "description": ext.description,
        "icon": "file-text" if ext.modalities == ("text",) else "image",
        "source": "builtin",
        "category": "general",
        "inference_type": "local",
        "input_schema": {"type": "object", "properties": inputs},
        "output_schema": {"type": "object", "properties": {k: {"type": v} for k, v in ext.output_fields.items()}},
        "parameter_schema": {"type": "object", "properties": {p: {} for p in ext.parameter_names}},
        "supported_input_types": list(ext.modalities),
        "max_inputs": {m: 1 for m in ext.modalities},
        "expected_input_types": {m: m for m in ext.modalities},
        "default_parameters": dict(ext.default_parameters),
        "required_vector_indexes": [vector_index_definition(ext)],
        "required_payload_indexes": [],
        "realtime_available": True,
        "capabilities": ["feature_search"],
    }


def vector_index_definition(ext: X.Extractor) -> dict[str, Any]:
    return {
        "name": ext.output,
        "description": f"{ext.name} {ext.version} vectors (local stand-in)",
        "type": "single",
        "feature_uri": ext.feature_uri,
        "index": {
            "name": ext.output,
            "description": f"{ext.dims}-dimension vectors",
            "type": "dense",
            "dimensions": ext.dims,
            "distance": "cosine",
            "datatype": "float32",
            "supported_inputs": list(ext.modalities),
        },
    }


@router.get("/v1/collections/features/extractors")
def list_feature_extractors(request: Request, ns: NsCtx = Depends(namespace)):
    return json_response([extractor_model(e) for e in X.EXTRACTORS.values()])


@router.get("/v1/collections/features/extractors/{feature_extractor_id}")
def get_feature_extractor(request: Request, feature_extractor_id: str, ns: NsCtx = Depends(namespace)):
    for ext in X.EXTRACTORS.values():
        if feature_extractor_id in (ext.extractor_id, ext.name, f"{ext.name}@{ext.version}"):
            return json_response(extractor_model(ext))
    raise APIError(
        404,
        f"feature extractor '{feature_extractor_id}' not found (the local server has {X.available()})",
        "NotFoundError",
        {"resource": "feature_extractor", "identifier": feature_extractor_id},
    )


# -- collections ---------------------------------------------------------------------------------
def _bad(message: str, **details: Any) -> APIError:
    return APIError(400, message, "InvalidCollectionConfig", details or None)


def _input_mappings(raw: Any, ext: X.Extractor, properties: dict[str, Any]) -> dict[str, str] | None:
    if raw is None:
        return None
    if isinstance(raw, list):  # [InputMapping {input_key, path, ...}]
        mapped: dict[str, str] = {}
        for m in raw:
            if not isinstance(m, dict) or not m.get("input_key"):
                raise _bad("input_mappings: each item needs an input_key")
            mapped[str(m["input_key"])] = str(m.get("path") or m["input_key"])
        raw = mapped
    if not isinstance(raw, dict):
        raise _bad('input_mappings must map extractor inputs to bucket fields, e.g. {"text": "content"}')
    for key, prop in raw.items():
        if key not in ext.modalities:
            raise _bad(f"input_mappings: {ext.name} has no input {key!r} (its inputs: {', '.join(ext.modalities)})")
        if not isinstance(prop, str) or prop not in properties:
            raise _bad(
                f"input_mappings: {prop!r} is not a field of the source bucket's schema "
                f"({', '.join(sorted(properties)) or 'no fields'})"
            )
    return {str(k): str(v) for k, v in raw.items()}


def _parameters(raw: Any, ext: X.Extractor) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("feature_extractor.parameters must be an object")
    split = raw.get("split_by")
    if split is not None and split not in _SPLITS:
        raise _bad(f"parameters.split_by {split!r} is not available on the local server ({', '.join(_SPLITS)})")
    return dict(raw)


@router.post("/v1/collections")
def create_collection(request: Request, body: Any = Body(...), ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    body = _body(body)
    name = body.get("collection_name")
    if not isinstance(name, str) or not name.strip():
        raise validation_422(["body", "collection_name"], "Field required", "missing")
    buckets = _source_buckets(state, ns, body.get("source"))
    fe, ext = _feature_extractor(body.get("feature_extractor"))
    properties: dict[str, Any] = {}
    for b in buckets:
        properties.update((loads(b["doc"]).get("bucket_schema") or {}).get("properties") or {})
    mappings = _input_mappings(fe.get("input_mappings"), ext, properties)
    params = _parameters(fe.get("parameters"), ext)
    passthrough = _field_passthrough(fe.get("field_passthrough"))
    now = state.iso_now()
    collection_id = new_id("col")
    doc = {
        "collection_id": collection_id,
        "collection_name": name,
        "description": body.get("description"),
        "feature_extractor": {
            "feature_extractor_name": ext.name,
            "version": ext.version,
            "feature_extractor_id": ext.extractor_id,
            "parameters": params,
            "input_mappings": mappings,
            "field_passthrough": passthrough,
            "include_all_source_fields": bool(fe.get("include_all_source_fields") or False),
            "params": fe.get("params"),
        },
        "source": {"type": "bucket", "bucket_ids": [b["bucket_id"] for b in buckets]},
        "input_schema": loads(buckets[0]["doc"]).get("bucket_schema") or {"properties": {}},
        "output_schema": {"properties": _output_properties(ext, passthrough, properties)},
        # no "source": the service gives one only for indexes that no extractor made
        "vector_indexes": [_vector_index(ext)],
        "metadata": body.get("metadata"),
        "enabled": body.get("enabled") is not False,
        "embedding_task": body.get("embedding_task"),
        "lifecycle_state": "active",
        "schema_version": 1,
        "schema_validation": "off",
        "created_at": now,
        "updated_at": now,
    }
    with state.store.tx() as c:
        refuse_taken_name(c, "collection", "collections", "collection_id", ns, name)
        c.execute(
            "INSERT INTO collections(collection_id, org_id, namespace_id, name, doc) VALUES (?,?,?,?,?)",
            (collection_id, ns.org_id, ns.namespace_id, name, dumps(doc)),
        )
        c.executemany(
            "INSERT OR IGNORE INTO collection_sources(bucket_id, collection_id) VALUES (?,?)",
            [(b["bucket_id"], collection_id) for b in buckets],
        )
    row = state.store.one("SELECT * FROM collections WHERE collection_id=?", (collection_id,))
    return json_response(collection_response(state, row))


def _source_buckets(state: Any, ns: NsCtx, source: Any) -> list[Any]:
    """The bucket rows a collection's ``source`` names (the local server reads buckets only)."""
    if not isinstance(source, dict) or "type" not in source:
        raise validation_422(["body", "source"], "Field required", "missing")
    if source["type"] != "bucket":
        raise _bad(
            f"source.type {source['type']!r} is not available on the local server: collections read "
            "buckets (source.type 'bucket')"
        )
    idents = source.get("bucket_ids") or []
    if not isinstance(idents, list) or not idents:
        raise _bad("source.bucket_ids must list at least one bucket")
    return [find_bucket(state, ns, str(b)) for b in idents]


def _feature_extractor(fe: Any) -> tuple[dict[str, Any], X.Extractor]:
    """The body's ``feature_extractor`` and the local extractor it names."""
    if not isinstance(fe, dict):
        raise _bad(f"feature_extractor is required: one of {X.available()}")
    ext = X.find_extractor(str(fe.get("feature_extractor_name")), str(fe.get("version")))
    if ext is None:
        raise _bad(
            f"feature extractor {fe.get('feature_extractor_name')!r} version {fe.get('version')!r} is not "
            f"available on the local server ({X.available()})"
        )
    return fe, ext


def _field_passthrough(raw: Any) -> list[dict[str, Any]] | None:
    if raw is not None and (
        not isinstance(raw, list) or not all(isinstance(p, dict) and p.get("source_path") for p in raw)
    ):
        raise _bad("field_passthrough must list objects with a source_path")
    return raw


def _output_properties(ext: X.Extractor, passthrough: Any, properties: dict[str, Any]) -> dict[str, Any]:
    """A document's fields: the extractor's, ``metadata`` and the passed-through bucket fields."""
    out_props: dict[str, Any] = {k: {"type": t} for k, t in ext.output_fields.items()}
    out_props["metadata"] = {"type": "object"}
    for p in passthrough or []:
        target = p.get("target_path") or p["source_path"].split(".")[-1]
        src = properties.get(p["source_path"]) or {}
        out_props[target] = {"type": src.get("type") or "string"}
    return out_props


def _vector_index(ext: X.Extractor) -> dict[str, Any]:
    """The collection's vector index (its feature_uri is what feature_search stages name)."""
    return {
        "name": ext.output,
        "type": "single",
        "feature_uri": ext.feature_uri,
        "index": {"name": ext.output, "dimensions": ext.dims, "distance": "cosine", "inference_name": ext.output},
    }


def _list_collections(request: Request, body: dict[str, Any], params: ListParams, ns: NsCtx):
    state = get_state(request)
    cs = bool(body.get("case_sensitive") or False)
    fsql, fparams = filters_sql(body.get("filters"), _COLUMNS, case_sensitive=cs)
    ssql, sparams = search_sql(
        body.get("search"), ["collection_id", "name", "coalesce(json_extract(doc,'$.description'),'')"], cs
    )
    where = f"namespace_id=? AND {fsql} AND {ssql}"
    wparams = [ns.namespace_id, *fparams, *sparams]
    limit = params.limit or body.get("limit") or body.get("page_size") or 10
    offset = params.offset if params.offset is not None else (body.get("offset") or 0)
    if body.get("page") and body.get("page_size") and params.offset is None and not body.get("offset"):
        offset = (int(body["page"]) - 1) * int(body["page_size"])
    page = paginate(
        state.store,
        table="collections",
        select="*",
        where=where,
        params=wparams,
        limit=int(limit),
        offset=int(offset),
        cursor=params.cursor,
        include_total=True,
        descending=sort_direction(body.get("sort"), False),
    )
    results = [collection_response(state, r) for r in page.rows]
    docs = sum(r["document_count"] or 0 for r in results)
    pag = pagination_body(page)
    return json_response(
        {
            "results": results,
            "pagination": pag,
            "total_count": page.total,
            "stats": {
                "total_documents": docs,
                "total_feature_extractors": len(results),
                "avg_documents_per_collection": docs / len(results) if results else 0.0,
                "total_retrievers": sum(r["retriever_count"] or 0 for r in results),
                "total_taxonomies": 0,
                "collections_with_taxonomies": 0,
            },
        }
    )


@router.get("/v1/collections")
def list_collections_get(
    request: Request, params: ListParams = Depends(), search: str | None = Query(None), ns: NsCtx = Depends(namespace)
):
    return _list_collections(request, {"search": search}, params, ns)


@router.post("/v1/collections/list")
def list_collections(
    request: Request, body: Any = Body(None), params: ListParams = Depends(), ns: NsCtx = Depends(namespace)
):
    return _list_collections(request, _body(body), params, ns)


@router.get("/v1/collections/{collection_identifier}")
def get_collection(request: Request, collection_identifier: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    return json_response(collection_response(state, find_collection(state, ns.namespace_id, collection_identifier)))


@router.delete("/v1/collections/{collection_identifier}")
def delete_collection(request: Request, collection_identifier: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    row = find_collection(state, ns.namespace_id, collection_identifier)
    n = delete_collection_data(state, row["collection_id"])
    return json_response(
        {
            "success": True,
            "collection_id": row["collection_id"],
            "collection_name": row["name"],
            "documents_deleted": n,
            "message": f"collection '{row['name']}' and its {n} document(s) deleted",
        }
    )


@router.post("/v1/collections/{collection_identifier}/trigger", status_code=202)
def trigger_collection(
    request: Request, collection_identifier: str, body: Any = Body(None), ns: NsCtx = Depends(namespace)
):
    state = get_state(request)
    body = _body(body)
    row = find_collection(state, ns.namespace_id, collection_identifier)
    bucket_ids, deleted = live_source_buckets(state, loads(row["doc"])["source"]["bucket_ids"])
    if not bucket_ids:  # a collection outlives its buckets (with its documents), but has nothing left to process
        raise APIError(
            404,
            f"collection '{row['name']}' has no source bucket left to process: {', '.join(deleted)} deleted",
            "NotFoundError",
            {"resource": "bucket", "identifier": deleted[0]},
        )
    include = body.get("include_buckets")
    if include:
        wanted = {find_bucket(state, ns, str(b))["bucket_id"] for b in include}
        outside = wanted - set(bucket_ids)
        if outside:
            raise _bad(f"include_buckets: {', '.join(sorted(outside))} is not a source of this collection")
        bucket_ids = [b for b in bucket_ids if b in wanted]
    fsql, fparams = compile_filters(
        body.get("source_filters"),
        doc_resolver(
            {"object_id": FieldRef(sql="object_id", exact=True), "status": FieldRef(sql="status", exact=True)}
        ),
    )
    where = f"bucket_id IN (SELECT value FROM json_each(?)) AND status='COMPLETED' AND {fsql}"
    params: list[Any] = [dumps(bucket_ids), *fparams]
    if body.get("object_ids"):
        where += " AND object_id IN (SELECT value FROM json_each(?))"
        params.append(dumps([str(o) for o in body["object_ids"]]))
    ids = [
        r["object_id"] for r in state.store.query(f"SELECT object_id FROM objects WHERE {where} ORDER BY rowid", params)
    ]
    task_id = start_trigger(state, ns.org_id, ns.namespace_id, row, ids, bucket_ids)
    return json_response(
        {
            "task_id": task_id,
            "task_ids": [task_id],
            "collection_id": row["collection_id"],
            "total_tiers": 1,
            "object_count": len(ids),
            "source_bucket_ids": bucket_ids,
            "batch_id": None,
            "batch_ids": [],
            "batch_count": 0,
            "message": f"processing {len(ids)} object(s) of {len(bucket_ids)} bucket(s) "
            f"through collection '{row['name']}'",
        },
        status=202,
    )


# -- documents -----------------------------------------------------------------------------------


def _list_documents(
    request: Request,
    collection_identifier: str,
    body: dict[str, Any],
    params: ListParams,
    ns: NsCtx,
    presigned: bool,
    vectors: bool,
):
    state = get_state(request)
    row = find_collection(state, ns.namespace_id, collection_identifier)
    ext = extractor_of(loads(row["doc"]))
    filters = body.get("filters")
    fsql, fparams = compile_filters(filters, doc_resolver(_DOC_COLUMNS))
    ssql, sparams = search_sql(
        body.get("search"),
        [
            "coalesce(json_extract(doc,'$.text'),'')",
            "json_extract(doc,'$.document_blobs')",
            "json_extract(doc,'$.metadata')",
        ],
    )
    where = f"collection_id=? AND {fsql} AND {ssql}"
    wparams = [row["collection_id"], *fparams, *sparams]
    limit = params.limit or body.get("limit") or 10
    offset = params.offset if params.offset is not None else (body.get("offset") or 0)
    page = paginate(
        state.store,
        table="documents",
        select="*",
        where=where,
        params=wparams,
        limit=int(limit),
        offset=int(offset),
        cursor=params.cursor or body.get("cursor"),
        include_total=True,
        descending=sort_direction(body.get("sort"), False),
    )
    presigned = presigned or bool(body.get("return_presigned_urls"))
    vectors = vectors or bool(body.get("return_vectors"))
    base = _base_url(request)
    results = [
        document_response(state, r, base, presigned=presigned, vectors=vectors, extractor=ext) for r in page.rows
    ]
    if body.get("select"):
        results = [select_fields(d, list(body["select"]), ("document_id", "collection_id")) for d in results]
    nblobs = sum(len(d.get("document_blobs") or []) for d in results)
    pag = pagination_body(page)
    if not (params.include_total or body.get("include_total")):
        pag.update(total=None, page=None, total_pages=None)
    return json_response(
        {
            "results": results,
            "pagination": pag,
            "total_documents": page.total,
            "stats": {
                "total_documents": page.total,
                "avg_blobs_per_document": nblobs / len(results) if results else 0.0,
            },
        }
    )


@router.post("/v1/collections/{collection_identifier}/documents/list")
def list_documents(
    request: Request,
    collection_identifier: str,
    body: Any = Body(None),
    params: ListParams = Depends(),
    return_presigned_urls: bool = Query(False),
    return_vectors: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    return _list_documents(
        request, collection_identifier, _body(body), params, ns, return_presigned_urls, return_vectors
    )


@router.get("/v1/collections/{collection_identifier}/documents")
def list_documents_get(
    request: Request,
    collection_identifier: str,
    params: ListParams = Depends(),
    filters: str | None = Query(None),
    search: str | None = Query(None),
    return_presigned_urls: bool = Query(False),
    return_vectors: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    body: dict[str, Any] = {"search": search}
    if filters:
        try:
            body["filters"] = json.loads(filters)
        except ValueError:
            raise validation_422(["query", "filters"], "filters must be a JSON object (LogicalOperator)") from None
    return _list_documents(request, collection_identifier, body, params, ns, return_presigned_urls, return_vectors)


@router.get("/v1/collections/{collection_identifier}/documents/{document_id}")
def get_document(
    request: Request,
    collection_identifier: str,
    document_id: str,
    return_presigned_urls: bool = Query(False),
    return_vectors: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    col = find_collection(state, ns.namespace_id, collection_identifier)
    row = state.store.one(
        "SELECT * FROM documents WHERE document_id=? AND collection_id=?", (document_id, col["collection_id"])
    )
    if row is None:
        raise APIError(
            404,
            f"document '{document_id}' not found in collection '{col['name']}'",
            "NotFoundError",
            {"resource": "document", "identifier": document_id},
        )
    return json_response(
        document_response(
            state,
            row,
            _base_url(request),
            presigned=return_presigned_urls,
            vectors=return_vectors,
            extractor=extractor_of(loads(col["doc"])),
        )
    )


# -- thumbnails (signed, like a presigned URL: no API key) -----------------------------------------
@router.get("/_local/thumbnails/{document_id}", include_in_schema=False)
def get_thumbnail(
    request: Request, document_id: str, expires: str | None = Query(None), signature: str | None = Query(None)
):
    state = get_state(request)
    if not check_thumbnail_signature(state, document_id, expires, signature):
        raise APIError(
            403,
            "the thumbnail URL is invalid or expired: read the document again for a fresh one",
            "PermissionDeniedError",
        )
    path = thumbnail_path(state, document_id)
    try:
        data = path.read_bytes()
    except OSError:
        raise APIError(404, f"document '{document_id}' has no thumbnail", "NotFoundError") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
