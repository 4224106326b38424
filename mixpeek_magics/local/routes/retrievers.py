"""Retriever routes: create, list, get, delete, execute, and ad hoc execution."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from .. import extractors as X
from ..collections import extractor_of, find_collection
from ..db import dumps, loads
from ..deps import NsCtx, get_state, json_response, namespace
from ..errors import APIError, validation_422
from ..filters import FieldRef
from ..pagination import paginate, pagination_body
from ..retrieval import Context, bad, check_stages, execute, feature_dependencies, logical, stage_id, stage_parameters
from ..util import new_id
from .collections import _base_url, _body
from .common import ListParams, filters_sql, refuse_taken_name, search_sql, sort_direction

router = APIRouter()

_COLUMNS = {"retriever_id": FieldRef(sql="retriever_id", exact=True), "retriever_name": FieldRef(sql="name")}


def find_retriever(state: Any, ns: NsCtx, ident: str):
    row = state.store.one(
        "SELECT * FROM retrievers WHERE namespace_id=? AND (retriever_id=? OR name=?) "
        "ORDER BY (retriever_id=?) DESC LIMIT 1",
        (ns.namespace_id, ident, ident, ident),
    )
    if row is None:
        raise APIError(
            404, f"retriever '{ident}' not found", "NotFoundError", {"resource": "retriever", "identifier": ident}
        )
    return row


def _stages_list(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise validation_422(["body", "stages"], "Field required", "missing")
    for i, st in enumerate(raw):
        if not isinstance(st, dict) or not st.get("stage_name") or not isinstance(st.get("config"), dict):
            raise validation_422(["body", "stages", i], "a stage needs a stage_name and a config object")
    return raw


def _collections(state: Any, ns: NsCtx, idents: list[str]) -> list[Any]:
    return [find_collection(state, ns.namespace_id, str(i)) for i in idents]


def _stage_collections(stages: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for st in stages:
        params = stage_parameters(st)
        for ident in params.get("collection_identifiers") or []:
            if ident not in out:
                out.append(str(ident))
        for s in params.get("searches") or []:
            for ident in (s.get("collection_identifiers") or []) if isinstance(s, dict) else []:
                if ident not in out:
                    out.append(str(ident))
    return out


def _check_features(stages: list[dict[str, Any]], cols: list[Any]) -> None:
    """Every search's feature_uri is a vector index of one of the collections (checked at creation,
    as the service does)."""
    have = {extractor_of(loads(c["doc"])).name for c in cols}
    for i, st in enumerate(stages):
        if stage_id(st) != "feature_search":
            continue
        for j, s in enumerate(stage_parameters(st).get("searches") or []):
            ext = X.by_feature_uri(str(s.get("feature_uri", "")))
            if ext is not None and ext.name not in have and not s.get("optional"):
                names = ", ".join(c["name"] for c in cols)
                raise bad(
                    f"stages[{i}].searches[{j}]: {ext.feature_uri} is not a vector index of "
                    f"{names} (their extractors: {', '.join(sorted(have))})",
                    stage=i,
                )


def _searched(
    state: Any, ns: NsCtx, body: dict[str, Any], purpose: str
) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """A body's checked stages, its collection identifiers (given, else those the stages name)
    and their collections; ``purpose`` ends the message when none is named."""
    stages = _stages_list(body.get("stages"))
    check_stages(stages)
    idents = list(body.get("collection_identifiers") or []) or _stage_collections(stages)
    if not idents:
        raise bad(f"collection_identifiers: name the collection(s) {purpose}")
    cols = _collections(state, ns, idents)
    _check_features(stages, cols)
    return stages, idents, cols


def _context(request: Request, ns: NsCtx, cols: list[Any], body: dict[str, Any]) -> Context:
    """The execution context of a search over ``cols`` (with the body's pre-filter)."""
    return Context(
        state=get_state(request),
        namespace_id=ns.namespace_id,
        base_url=_base_url(request),
        collections=cols,
        prefilter=_prefilter(body.get("filters")),
    )


def _stage_out(st: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: st.get(k)
        for k in ("stage_name", "stage_type", "config", "description", "output_alias", "on_error", "batch_size")
        if st.get(k) is not None
    }
    out["parameters"] = stage_parameters(st)
    return out


def _fusion(stages: list[dict[str, Any]]) -> str:
    for st in stages:
        if stage_id(st) == "feature_search":
            return str(stage_parameters(st).get("fusion") or "rrf")
    return "rrf"


@router.post("/v1/retrievers")
def create_retriever(request: Request, body: Any = Body(...), ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    body = _body(body)
    name = body.get("retriever_name")
    if not isinstance(name, str) or not name.strip():
        raise validation_422(["body", "retriever_name"], "Field required", "missing")
    stages, idents, cols = _searched(state, ns, body, "this retriever searches")
    now = state.iso_now()
    retriever_id = new_id("ret")
    doc = {
        "retriever_id": retriever_id,
        "retriever_name": name,
        "description": body.get("description"),
        "collection_identifiers": [str(i) for i in idents],
        "collection_ids": [c["collection_id"] for c in cols],
        "stages": [_stage_out(st) for st in stages],
        "fusion": _fusion(stages),
        "input_schema": body.get("input_schema"),
        "budget_limits": body.get("budget_limits"),
        "display_config": body.get("display_config"),
        "metadata": body.get("metadata"),
        "tags": body.get("tags"),
        "feature_dependencies": feature_dependencies(stages),
        "version": 1,
        "is_published": False,
        "created_at": now,
        "updated_at": now,
    }
    with state.store.tx() as c:
        refuse_taken_name(c, "retriever", "retrievers", "retriever_id", ns, name)
        c.execute(
            "INSERT INTO retrievers(retriever_id, org_id, namespace_id, name, doc) VALUES (?,?,?,?,?)",
            (retriever_id, ns.org_id, ns.namespace_id, name, dumps(doc)),
        )
    doc.pop("is_published")  # RetrieverConfig (the create answer) has no is_published
    return json_response(doc)


def _list(request: Request, body: dict[str, Any], params: ListParams, ns: NsCtx):
    state = get_state(request)
    cs = bool(body.get("case_sensitive") or False)
    fsql, fparams = filters_sql(body.get("filters"), _COLUMNS, case_sensitive=cs)
    ssql, sparams = search_sql(
        body.get("search"), ["retriever_id", "name", "coalesce(json_extract(doc,'$.description'),'')"], cs
    )
    where = f"namespace_id=? AND {fsql} AND {ssql}"
    page = paginate(
        state.store,
        table="retrievers",
        select="*",
        where=where,
        params=[ns.namespace_id, *fparams, *sparams],
        limit=params.limit or 10,
        offset=params.offset,
        cursor=params.cursor,
        include_total=True,
        descending=sort_direction(body.get("sort"), False),
    )
    return json_response(
        {"results": [loads(r["doc"]) for r in page.rows], "pagination": pagination_body(page), "total": page.total}
    )


@router.get("/v1/retrievers")
def list_retrievers_get(request: Request, params: ListParams = Depends(), ns: NsCtx = Depends(namespace)):
    return _list(request, {}, params, ns)


@router.post("/v1/retrievers/list")
def list_retrievers(
    request: Request, body: Any = Body(None), params: ListParams = Depends(), ns: NsCtx = Depends(namespace)
):
    return _list(request, _body(body), params, ns)


def _page(body: dict[str, Any]) -> tuple[int | None, int]:
    limit = body.get("limit")
    offset = 0
    pag = body.get("pagination")
    if isinstance(pag, dict):
        method = pag.get("method") or ("cursor" if "cursor" in pag else "offset")
        if method == "offset":
            size = int(pag.get("page_size") or 10)
            offset = (max(1, int(pag.get("page_number") or 1)) - 1) * size
            limit = size if limit is None else min(int(limit), size)
        elif pag.get("limit"):
            limit = int(pag["limit"])
    if limit is not None and int(limit) < 1:
        raise validation_422(["body", "limit"], "limit must be at least 1")
    return (int(limit) if limit is not None else None), offset


def _prefilter(filters: Any):
    if not filters:
        return None
    if not isinstance(filters, dict):
        raise validation_422(["body", "filters"], "filters must be an object (LogicalOperator)")
    logical({}, filters, True, "filters")  # refuses a malformed tree before anything runs
    return lambda doc: logical(doc, filters, True, "filters")


def _inputs(body: dict[str, Any], schema: Any) -> dict[str, Any]:
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise validation_422(["body", "inputs"], "inputs must be an object")
    missing = [
        k
        for k, spec in (schema or {}).items()
        if isinstance(spec, dict) and spec.get("required") and inputs.get(k) is None
    ]
    if missing:
        raise APIError(400, f"missing required input(s): {', '.join(missing)}", "InvalidInputs", {"missing": missing})
    for k, spec in (schema or {}).items():
        if isinstance(spec, dict) and k not in inputs and spec.get("default") is not None:
            inputs[k] = spec["default"]
    return inputs


@router.get("/v1/retrievers/{retriever_id}")
def get_retriever(request: Request, retriever_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    return json_response(loads(find_retriever(state, ns, retriever_id)["doc"]))


@router.delete("/v1/retrievers/{retriever_id}")
def delete_retriever(request: Request, retriever_id: str, ns: NsCtx = Depends(namespace)):
    state = get_state(request)
    row = find_retriever(state, ns, retriever_id)
    state.store.execute("DELETE FROM retrievers WHERE retriever_id=?", (row["retriever_id"],))
    return json_response(
        {"success": True, "retriever_id": row["retriever_id"], "message": f"retriever '{row['name']}' deleted"}
    )


@router.post("/v1/retrievers/execute")
def execute_adhoc(
    request: Request,
    body: Any = Body(...),
    return_presigned_urls: bool = Query(False),
    return_vectors: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    body = _body(body)
    stages, _idents, cols = _searched(state, ns, body, "to search")
    limit, offset = _page(body)
    ctx = _context(request, ns, cols, body)
    return json_response(
        execute(
            ctx,
            stages,
            _inputs(body, body.get("input_schema")),
            limit=limit,
            offset=offset,
            presigned=return_presigned_urls,
            vectors=return_vectors,
            execution_id=new_id("exec"),
        )
    )


@router.post("/v1/retrievers/{retriever_id}/execute")
def execute_retriever(
    request: Request,
    retriever_id: str,
    body: Any = Body(None),
    return_presigned_urls: bool = Query(False),
    return_vectors: bool = Query(False),
    explain: bool = Query(False),
    skip_cache: bool = Query(False),
    ns: NsCtx = Depends(namespace),
):
    state = get_state(request)
    body = _body(body)
    row = find_retriever(state, ns, retriever_id)
    d = loads(row["doc"])
    cols = [find_collection(state, ns.namespace_id, cid) for cid in d["collection_ids"]]
    limit, offset = _page(body)
    ctx = _context(request, ns, cols, body)
    stages = [
        {"stage_name": s["stage_name"], "stage_type": s.get("stage_type"), "config": s["config"]} for s in d["stages"]
    ]
    return json_response(
        execute(
            ctx,
            stages,
            _inputs(body, d.get("input_schema")),
            limit=limit,
            offset=offset,
            presigned=return_presigned_urls or bool(body.get("return_presigned_urls")),
            vectors=return_vectors or bool(body.get("return_vectors")),
            retriever_id=row["retriever_id"],
            execution_id=new_id("exec"),
        )
    )
