"""Retriever execution on the local server: ``feature_search`` and ``attribute_filter`` stages.

A stage is ``{"stage_name", "stage_type", "config": {"stage_id", "parameters"}}``.
``feature_search`` embeds each search's query with the extractor of its
``feature_uri`` (text, an image or text as ``content``, a stored ``document``,
or a raw ``vector``) and ranks the documents of the target collections by
cosine similarity (documents that share nothing with the query, score 0, are
left out); several searches are fused (``rrf`` by default, ``weighted``,
``max``). ``attribute_filter`` keeps the documents whose field matches (as the
first stage it reads the collections' documents, up to 1000 each).
``{{INPUT.name}}`` in a stage's parameters is replaced by ``inputs["name"]``.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import extractors as X
from .collections import document_response, extractor_of, find_collection
from .db import loads
from .errors import APIError

STAGES = ("feature_search", "attribute_filter")
FIRST_STAGE_SCAN = 1000
DEFAULT_FINAL_TOP_K = 25
DEFAULT_TOP_K = 100
RRF_K = 60
_TEMPLATE = re.compile(r"\{\{\s*INPUT\.([A-Za-z0-9_\-]+)\s*\}\}")
_FILTER_OPS = {
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "nin",
    "contains",
    "starts_with",
    "ends_with",
    "regex",
    "words",
    "exists",
    "is_null",
    "text",
}


def bad(message: str, **details: Any) -> APIError:
    return APIError(400, message, "InvalidRetrieverConfig", details or None)


# -- configuration checks (create and execute) --------------------------------------------------
def _config(stage: dict[str, Any]) -> dict[str, Any]:
    config = stage.get("config")
    return config if isinstance(config, dict) else {}


def stage_id(stage: dict[str, Any]) -> str:
    config = _config(stage)
    sid = config.get("stage_id") or stage.get("stage_name")
    return str(sid or "")


def stage_parameters(stage: dict[str, Any]) -> dict[str, Any]:
    config = _config(stage)
    params = config.get("parameters")
    return params if isinstance(params, dict) else {}


def check_stages(stages: list[dict[str, Any]]) -> None:
    if not stages:
        raise bad("a retriever needs at least one stage")
    for i, st in enumerate(stages):
        sid = stage_id(st)
        if sid not in STAGES:
            raise bad(
                f"stages[{i}]: stage '{sid}' is not available on the local server "
                f"(it runs {', '.join(STAGES)}); set config.stage_id",
                stage=i,
            )
        params = stage_parameters(st)
        if sid == "feature_search":
            searches = params.get("searches")
            if not isinstance(searches, list) or not searches:
                raise bad(f"stages[{i}] feature_search: parameters.searches must list at least one search", stage=i)
            for j, s in enumerate(searches):
                uri = s.get("feature_uri") if isinstance(s, dict) else None
                if not isinstance(uri, str) or not uri:
                    raise bad(f"stages[{i}].searches[{j}]: feature_uri is required", stage=i)
                if not _TEMPLATE.search(uri) and X.by_feature_uri(uri) is None:
                    raise bad(
                        f"stages[{i}].searches[{j}]: unknown feature_uri {uri!r}; the local server has "
                        + ", ".join(e.feature_uri for e in X.EXTRACTORS.values()),
                        stage=i,
                    )
                if not isinstance(s.get("query"), dict):
                    raise bad(
                        f"stages[{i}].searches[{j}]: query must be an object ({{'input_mode': 'text', 'value': ...}})",
                        stage=i,
                    )
        else:
            if "conditions" not in params and "field" not in params:
                raise bad(
                    f"stages[{i}] attribute_filter: give parameters.field/operator/value or parameters.conditions",
                    stage=i,
                )


def feature_dependencies(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for st in stages:
        if stage_id(st) != "feature_search":
            continue
        for s in stage_parameters(st).get("searches") or []:
            ext = X.by_feature_uri(str(s.get("feature_uri", "")))
            if ext is not None:
                dep = {"extractor": ext.name, "version": ext.version, "output": ext.output, "scheme": "mixpeek"}
                if dep not in out:
                    out.append(dep)
    return out


# -- templates --------------------------------------------------------------------------------
def resolve_templates(value: Any, inputs: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: resolve_templates(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_templates(v, inputs) for v in value]
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole:
            return inputs.get(whole.group(1))
        return _TEMPLATE.sub(lambda m: "" if inputs.get(m.group(1)) is None else str(inputs[m.group(1)]), value)
    return value


# -- execution --------------------------------------------------------------------------------
@dataclass
class Hit:
    row: Any
    score: float | None = None
    doc: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    state: Any
    namespace_id: str
    base_url: str
    collections: list[Any]  # collection rows
    prefilter: Callable[[dict], bool] | None = None


def _content_bytes(value: str, state: Any) -> bytes:
    """A ``content`` query value: a data URI, base64, or an http(s) URL."""
    from .blobs import b64decode, decode_data_uri

    v = value.strip()
    if v.startswith("data:"):
        return decode_data_uri(v)[0]
    if v.startswith(("http://", "https://")):
        import httpx

        try:
            with httpx.Client(timeout=float(state.settings.fetch_timeout_seconds), follow_redirects=True) as c:
                r = c.get(v)
        except httpx.HTTPError as exc:
            raise bad(
                f"cannot fetch the query content {urllib.parse.urlsplit(v)._replace(query='').geturl()}: "
                f"{type(exc).__name__}"
            ) from None
        if r.status_code >= 400:
            raise bad(f"cannot fetch the query content: HTTP {r.status_code}")
        return r.content
    return b64decode(v)


def _sniff_modality(data: bytes) -> str:
    from .sniff import is_text, sniff_mime

    mime = sniff_mime(data[:8192])
    if mime.startswith("image/") and mime != "image/svg+xml":
        return "image"
    return "text" if is_text(data[:8192]) else "other"


def _query_vector(ctx: Context, ext: X.Extractor, query: dict[str, Any], where: str) -> X.Vector:
    mode = query.get("input_mode") or ("document" if "document_ref" in query else "text")
    try:
        if mode == "text":
            text = query.get("value", query.get("text"))
            if text is None:
                raise bad(f"{where}: the text query is empty (an {{{{INPUT.*}}}} without a value in inputs?)")
            return ext.embed_query_text(str(text))
        if mode == "content":
            value = query.get("value")
            if value is None and isinstance(query.get("content"), dict):
                c = query["content"]
                value = c.get("url") or c.get("base64") or c.get("data")
            if not isinstance(value, str) or not value:
                raise bad(f"{where}: the content query has no value (a data URI, base64 or an http(s) URL)")
            data = _content_bytes(value, ctx.state)
            return ext.embed_query_content(data, _sniff_modality(data))
        if mode == "document":
            ref = query.get("document_ref") or {}
            did = ref.get("document_id")
            row = ctx.state.store.one(
                "SELECT d.vector, c.doc AS cdoc FROM documents d JOIN collections c ON "
                "c.collection_id = d.collection_id WHERE d.document_id=? AND d.namespace_id=?",
                (did, ctx.namespace_id),
            )
            if row is None:
                raise APIError(
                    404,
                    f"{where}: document '{did}' not found",
                    "NotFoundError",
                    {"resource": "document", "identifier": did},
                )
            if extractor_of(loads(row["cdoc"])).name != ext.name:
                raise bad(f"{where}: document '{did}' has no {ext.feature_uri} vector")
            return X.unpack(row["vector"])
        if mode == "vector":
            values = query.get("value")
            if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
                raise bad(f"{where}: a vector query's value must be a list of numbers")
            if len(values) != ext.dims:
                raise bad(f"{where}: the vector has {len(values)} dimensions; {ext.feature_uri} has {ext.dims}")
            return X.sparse([float(v) for v in values])
    except X.ExtractionError as exc:
        raise bad(f"{where}: {exc}") from None
    raise bad(f"{where}: input_mode {mode!r} is not available on the local server (text, content, document, vector)")


def _target_collections(ctx: Context, idents: list[str] | None) -> list[Any]:
    if not idents:
        return ctx.collections
    return [find_collection(ctx.state, ctx.namespace_id, i) for i in idents]


def _rows(ctx: Context, collection_ids: list[str], limit: int | None = None) -> list[Any]:
    out: list[Any] = []
    for cid in collection_ids:
        sql = "SELECT * FROM documents WHERE collection_id=? ORDER BY rowid"
        params: list[Any] = [cid]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        out += ctx.state.store.query(sql, params)
    return out


def _hit(row: Any) -> Hit:
    return Hit(row=row, doc=loads(row["doc"]))


def _feature_search(ctx: Context, params: dict[str, Any], where: str, limit: int | None) -> tuple[list[Hit], int]:
    """The fused top documents, and how many documents were compared with the queries."""
    searches = params.get("searches") or []
    stage_cols = params.get("collection_identifiers")
    ranked: list[tuple[dict[str, float], float]] = []  # per search: document_id -> score; weight
    rows_by_id: dict[str, Any] = {}
    scanned: set[str] = set()
    for j, s in enumerate(searches):
        w = f"{where}.searches[{j}]"
        uri = str(s.get("feature_uri", ""))
        ext = X.by_feature_uri(uri)
        if ext is None:
            raise bad(f"{w}: unknown feature_uri {uri!r}")
        cols = _target_collections(ctx, s.get("collection_identifiers") or stage_cols)
        cols = [c for c in cols if extractor_of(loads(c["doc"])).name == ext.name]
        if not cols:
            if s.get("optional"):
                continue
            raise bad(f"{w}: no collection of this retriever has the vector index {uri}")
        query = s.get("query") or {}
        qvec = _query_vector(ctx, ext, query, w)
        top_k = int(s.get("top_k") or DEFAULT_TOP_K)
        min_score = s.get("min_score")
        scores: dict[str, float] = {}
        for row in _rows(ctx, [c["collection_id"] for c in cols]):
            scanned.add(row["document_id"])
            score = X.dot(qvec, X.unpack(row["vector"]))
            if score <= 1e-9 or (min_score is not None and score < float(min_score)):
                continue
            if ctx.prefilter is not None and not ctx.prefilter(loads(row["doc"])):
                continue
            scores[row["document_id"]] = score
            rows_by_id[row["document_id"]] = row
        best = dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k])
        ranked.append((best, float(s.get("weight", 1.0) if s.get("weight") is not None else 1.0)))
    fused = _fuse(ranked, str(params.get("fusion") or "rrf"))
    final = int(params.get("final_top_k") or DEFAULT_FINAL_TOP_K)
    if limit is not None:
        final = min(final, limit)
    order = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:final]
    return [Hit(row=rows_by_id[d], score=round(s, 6), doc=loads(rows_by_id[d]["doc"])) for d, s in order], len(scanned)


def _fuse(ranked: list[tuple[dict[str, float], float]], fusion: str) -> dict[str, float]:
    if not ranked:
        return {}
    if len(ranked) == 1:
        return dict(ranked[0][0])
    out: dict[str, float] = {}
    if fusion == "rrf":
        for scores, w in ranked:
            for rank, (d, _s) in enumerate(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])), start=1):
                out[d] = out.get(d, 0.0) + w / (RRF_K + rank)
    elif fusion == "weighted":
        total = sum(w for _, w in ranked) or 1.0
        for scores, w in ranked:
            for d, s in scores.items():
                out[d] = out.get(d, 0.0) + s * w / total
    elif fusion == "max":
        for scores, _w in ranked:
            for d, s in scores.items():
                out[d] = max(out.get(d, 0.0), s)
    else:
        raise bad(f"fusion {fusion!r} is not available on the local server (rrf, weighted, max)")
    return out


# -- attribute conditions (in memory) -------------------------------------------------------------
_MISSING = object()


def _value_at(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _cmp(a: Any, b: Any, ci: bool) -> tuple[Any, Any]:
    if ci and isinstance(a, str) and isinstance(b, str):
        return a.lower(), b.lower()
    return a, b


def condition(doc: dict[str, Any], cond: dict[str, Any], ci: bool, where: str) -> bool:
    fieldname = cond.get("field")
    if not isinstance(fieldname, str) or not fieldname:
        raise bad(f"{where}: a condition needs a field")
    op = cond.get("operator") or "eq"
    if op not in _FILTER_OPS:
        raise bad(f"{where}: unknown operator {op!r}; expected one of {sorted(_FILTER_OPS)}")
    raw = _value_at(doc, fieldname)
    value = cond.get("value")
    if op in ("exists", "is_null"):
        present = raw is not _MISSING and raw is not None
        want = True if value is None else bool(value)
        return (present if op == "exists" else not present) == want
    if raw is _MISSING:
        return op in ("ne", "nin")
    if op in ("in", "nin"):
        if not isinstance(value, list):
            raise bad(f"{where}: operator {op!r} needs a list value")
        items = raw if isinstance(raw, list) else [raw]
        hit = any(_cmp(x, v, ci)[0] == _cmp(x, v, ci)[1] for x in items for v in value)
        return hit if op == "in" else not hit
    if op in ("contains", "text"):
        if isinstance(raw, list):
            return any(_cmp(x, value, ci)[0] == _cmp(x, value, ci)[1] for x in raw)
        a, b = _cmp(str(raw), str(value), ci or op == "text")
        return b in a
    if op == "words":
        have = set(X.tokens(str(raw)) if not isinstance(raw, list) else [str(x).lower() for x in raw])
        return all(w in have for w in X.tokens(str(value)))
    if op in ("starts_with", "ends_with"):
        a, b = _cmp(str(raw), str(value), ci)
        return a.startswith(b) if op == "starts_with" else a.endswith(b)
    if op == "regex":
        try:
            return re.search(str(value), str(raw), re.IGNORECASE if ci else 0) is not None
        except re.error as exc:
            raise bad(f"{where}: invalid regular expression: {exc}") from None
    a, b = _cmp(raw, value, ci)
    if op == "eq":
        return a == b or (isinstance(a, (int, float)) and isinstance(b, str) and str(a) == b)
    if op == "ne":
        return a != b
    try:
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    except TypeError:
        return False


def logical(doc: dict[str, Any], node: Any, ci: bool, where: str, depth: int = 0) -> bool:
    """A LogicalOperator ({AND, OR, NOT}, conditions, or {field: value} shorthand) on one document."""
    if depth > 10:
        raise bad(f"{where}: conditions nest deeper than 10 levels")
    if not isinstance(node, dict):
        raise bad(f"{where}: a condition must be an object")
    if "field" in node:
        return condition(doc, node, ci, where)
    if node.get("case_sensitive") is not None:
        ci = not bool(node["case_sensitive"])
    ok = True
    for key, value in node.items():
        if key in ("case_sensitive", "additional_properties"):
            continue
        if key in ("AND", "OR", "NOT"):
            if value is None:
                continue
            if not isinstance(value, list):
                raise bad(f"{where}: {key} must be a list")
            subs = [logical(doc, v, ci, where, depth + 1) for v in value]
            if key == "AND":
                ok = ok and all(subs)
            elif key == "OR":
                ok = ok and (any(subs) if subs else True)
            else:
                ok = ok and not any(subs)
        else:
            op = "in" if isinstance(value, list) else "eq"
            ok = ok and condition(doc, {"field": key, "operator": op, "value": value}, ci, where)
    return ok


def _first_stage_rows(ctx: Context) -> list[Hit]:
    hits = [_hit(r) for r in _rows(ctx, [c["collection_id"] for c in ctx.collections], FIRST_STAGE_SCAN)]
    if ctx.prefilter is not None:
        hits = [h for h in hits if ctx.prefilter(h.doc)]
    return hits


def _attribute_filter(ctx: Context, params: dict[str, Any], hits: list[Hit], where: str) -> list[Hit]:
    ci = bool(params.get("case_insensitive", False))
    if params.get("conditions") is not None:
        return [h for h in hits if logical(h.doc, params["conditions"], ci, where)]
    cond = {"field": params.get("field"), "operator": params.get("operator") or "eq", "value": params.get("value")}
    return [h for h in hits if condition(h.doc, cond, ci, where)]


def execute(
    ctx: Context,
    stages: list[dict[str, Any]],
    inputs: dict[str, Any],
    *,
    limit: int | None = None,
    offset: int = 0,
    presigned: bool = False,
    vectors: bool = False,
    retriever_id: str | None = None,
    execution_id: str,
) -> dict[str, Any]:
    """Run the stages; an ExecuteRetrieverResponse."""
    check_stages(stages)
    started = time.perf_counter()
    hits: list[Hit] | None = None
    stats: dict[str, Any] = {}
    for i, st in enumerate(stages):
        sid = stage_id(st)
        name = str(st.get("stage_name") or sid)
        if name in stats:
            name = f"{name}_{i}"
        params = resolve_templates(stage_parameters(st), inputs)
        where = f"stages[{i}] ({name})"
        t0 = time.perf_counter()
        before = 0 if hits is None else len(hits)
        if sid == "feature_search":
            found, scanned = _feature_search(ctx, params, where, None)
            if hits is None:
                before = scanned
            else:  # a later search narrows what the stages before kept
                keep = {h.row["document_id"] for h in hits}
                found = [h for h in found if h.row["document_id"] in keep]
            hits = found
        else:
            if hits is None:  # the first stage: read the collections' documents
                hits = _first_stage_rows(ctx)
                before = len(hits)
            hits = _attribute_filter(ctx, params, hits, where)
        ms = (time.perf_counter() - t0) * 1000.0
        stats[name] = {
            "input_count": before,
            "output_count": len(hits),
            "duration_ms": round(ms, 3),
            "efficiency": round(len(hits) / before, 4) if before else 1.0,
        }
    hits = hits or []
    total = len(hits)
    page = hits[offset : offset + limit] if limit is not None else hits[offset:]
    extractors = {c["collection_id"]: extractor_of(loads(c["doc"])) for c in ctx.collections}
    documents = []
    for h in page:
        cid = h.row["collection_id"]
        if cid not in extractors:  # a search's own collection_identifiers
            extractors[cid] = extractor_of(loads(find_collection(ctx.state, ctx.namespace_id, cid)["doc"]))
        ext = extractors[cid]
        d = document_response(ctx.state, h.row, ctx.base_url, presigned=presigned, vectors=vectors, extractor=ext)
        d["score"] = h.score
        documents.append(d)
    total_ms = (time.perf_counter() - started) * 1000.0
    return {
        "execution_id": execution_id,
        "retriever_id": retriever_id or "",
        "status": "completed",
        "documents": documents,
        "pagination": {
            "method": "offset",
            "offset": offset,
            "limit": limit,
            "total": total,
            "has_more": offset + len(page) < total,
        },
        "stage_statistics": {"stages": stats, "total_time_ms": round(total_ms, 3), "credits_used": 0.0},
        "cache_hit": False,
        "warnings": None,
        "error": None,
    }
