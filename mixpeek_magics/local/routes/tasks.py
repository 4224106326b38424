"""Task routes: get, list (filters, keyset pagination), kill.

With ``task_ttl_seconds`` set, a task older than that is gone from all three
(404, not listed), as the real service's records are after about 24 h; its
batch keeps what it did."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from ..deps import caller, get_state, json_response, raw_json_response
from ..errors import not_found
from ..filters import FieldRef, compile_filters, json_path
from ..models import ListTasksRequest
from ..pagination import paginate, pagination_body
from ..services import cancel_task
from ..state import Caller, task_columns, task_row_json
from .common import search_sql, sort_direction

router = APIRouter()


def _upper(v: Any) -> Any:
    return v.upper() if isinstance(v, str) else v


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


_FIELDS = {
    "task_id": FieldRef(sql="task_id", exact=True),
    "status": FieldRef(sql="status", exact=True, normalize=_upper),
    "task_type": FieldRef(sql="task_type", exact=True, normalize=_lower),
    "error": FieldRef(sql="error"),
}


def _resolve(field: str) -> FieldRef:
    if field in _FIELDS:
        return _FIELDS[field]
    for col in ("additional_data", "inputs", "outputs"):
        if field.startswith(col + "."):
            return FieldRef(json_col=col, path=json_path(field[len(col) + 1 :]))
    raise KeyError(field)


@router.get("/v1/tasks/{task_id}")
def get_task(request: Request, task_id: str, who: Caller = Depends(caller)):
    state = get_state(request)
    row = state.visible_task_row(task_id, who.org_id)
    if row is None:
        raise not_found("task", task_id)
    return raw_json_response(task_row_json(row))


@router.post("/v1/tasks/list")
def list_tasks(
    request: Request,
    body: ListTasksRequest | None = Body(None),
    limit: int | None = Query(None, ge=1, le=1000),
    offset: int | None = Query(None, ge=0, le=10000),
    cursor: str | None = Query(None),
    include_total: bool = Query(False),
    who: Caller = Depends(caller),
):
    state = get_state(request)
    body = body or ListTasksRequest()
    where = ["org_id=?"]
    params: list[Any] = [who.org_id]
    cutoff = state.task_expiry_cutoff()
    # one TaskStatusEnum / TaskType value each (the request model refuses lists and other spellings)
    for col, value in (("status", body.status), ("task_type", body.task_type)):
        if value is not None:
            where.append(f"{col}=?")
            params.append(value)
    fsql, fparams = compile_filters(body.filters, _resolve)
    where.append(fsql)
    params.extend(fparams)
    if body.search:
        ssql, sparams = search_sql(body.search, ["task_id", "task_type", "status", "coalesce(error,'')"])
        where.append(ssql)
        params.extend(sparams)
    page = paginate(
        state.store,
        table="tasks",
        select=task_columns(state),
        where=" AND ".join(where),
        params=params,
        limit=limit or 100,
        offset=offset,
        cursor=cursor,
        include_total=include_total,
        descending=sort_direction(body.sort, True),
        moving=None if cutoff is None else ("coalesce(created_at, 0) >= ?", [cutoff]),
    )
    results = ",".join(task_row_json(r) for r in page.rows)
    text = '{"results":[' + results + '],"pagination":' + json.dumps(pagination_body(page)) + "}"
    return raw_json_response(text)


@router.delete("/v1/tasks/{task_id}")
def kill_task(request: Request, task_id: str, who: Caller = Depends(caller)):
    state = get_state(request)
    # Another organization's task is as unknown as one that never existed (or expired): 404.
    if state.visible_task_row(task_id, who.org_id) is None:
        raise not_found("task", task_id)
    cancel_task(state, task_id, reason="killed via DELETE /v1/tasks/{task_id}")  # a finished task: no effect
    return json_response({"message": "Successfully deleted", "success": True})
