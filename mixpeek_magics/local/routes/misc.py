"""Health and organization routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ..._version import __version__
from ..db import dumps, loads
from ..deps import caller, get_state, json_response
from ..models import OrganizationUpdateRequest
from ..state import Caller

router = APIRouter()


@router.get("/v1/health")
def health(request: Request, deep: bool = False, metrics: bool = False):
    state = get_state(request)
    ok = True
    try:
        state.store.one("SELECT 1")
    except Exception:  # noqa: BLE001
        ok = False
    worker_ok = state.worker is not None and any(t.is_alive() for t in state.worker.threads)
    data = {
        "cache": True,
        "metadata": ok,
        "vector_store": True,
        "object_storage": ok,
        "task_queue": worker_ok,
        "inference": True,
        "analytics": None,
    }
    body = {
        "status": "OK" if ok and worker_ok else "DEGRADED",
        "data": data,
        "errors": None,
        "meta": {"server": "mixpeek-magics local server", "version": __version__, "local": True},
    }
    return json_response(body)


def _org(request: Request, who: Caller) -> dict:
    row = get_state(request).store.expect_one("SELECT doc FROM organizations WHERE org_id=?", (who.org_id,))
    return loads(row["doc"])


@router.get("/v1/organizations")
def get_organization(request: Request, who: Caller = Depends(caller)):
    return json_response(_org(request, who))


@router.patch("/v1/organizations")
def update_organization(request: Request, body: OrganizationUpdateRequest, who: Caller = Depends(caller)):
    state = get_state(request)
    d = _org(request, who)
    for k, v in body.model_dump(exclude_unset=True).items():
        if v is not None:
            d[k] = v
    d["updated_at"] = state.iso_now()
    state.store.execute(
        "UPDATE organizations SET doc=?, name=? WHERE org_id=?", (dumps(d), d["organization_name"], who.org_id)
    )
    return json_response(d)
