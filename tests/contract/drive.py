"""Drive a local server through every route it serves, with realistic requests.

Every request is one the contract accepts; the answers are recorded by the
caller's transport and checked by the tests.
"""

from __future__ import annotations

import hashlib
import uuid

import httpx

from tests.contract.conftest import Api, b64, png_bytes, wait_for

TERMINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"}
# Routes that are not the Mixpeek API: FastAPI's own pages, and under /_local/ the
# stand-ins for object-store URLs (S3's, for the real service: presigned PUTs, thumbnails).
FASTAPI_PAGES = {
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("HEAD", "/docs/oauth2-redirect"),
}
LOCAL_PREFIX = "/_local/"


def not_contract(route: tuple[str, str]) -> bool:
    return route in FASTAPI_PAGES or route[1].startswith(LOCAL_PREFIX)


def served_routes(app) -> set[tuple[str, str]]:
    """(method, template) of every route of the app, through included routers."""
    out: set[tuple[str, str]] = set()

    def walk(routes):
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            elif hasattr(r, "path"):
                for m in getattr(r, "methods", None) or ():
                    out.add((m, r.path))

    walk(app.router.routes)
    return out


def route_of(app_routes, method: str, path: str) -> tuple[str, str] | None:
    """The app route a concrete request path went to (literal segments win over parameters)."""
    found = []
    b = path.strip("/").split("/")
    for m, template in app_routes:
        a = template.strip("/").split("/")
        if m == method and len(a) == len(b) and all(x.startswith("{") or x == y for x, y in zip(a, b)):
            found.append((sum(x.startswith("{") for x in a), (m, template)))
    return min(found)[1] if found else None


def _served(routes, method: str, template: str) -> bool:
    """Routes the server may not have yet are driven once it has them."""
    return (method, template) in routes


def drive_everything(srv, recorder, moto, drive) -> None:
    root = Api(srv, recorder)
    try:
        _drive(srv, root, served_routes(srv.app), f"contract_{uuid.uuid4().hex[:6]}", moto, drive, recorder)
    finally:
        root.close()


def _drive(srv, root: Api, routes, ns_name: str, moto, drive, recorder) -> None:
    # -- health, organization -----------------------------------------------------
    root.call("GET", "/v1/health")
    root.call("GET", "/v1/organizations")
    root.call("PATCH", "/v1/organizations", {"metadata": {"team": "contract"}})
    # -- namespaces -----------------------------------------------------------------
    ns = root.call(
        "POST",
        "/v1/namespaces",
        {
            "namespace_name": ns_name,
            "description": "contract run",
            "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}],
        },
    )
    ns_id = ns["namespace_id"]
    root.call("POST", "/v1/namespaces/list", {})
    root.call("GET", f"/v1/namespaces/{ns_id}")
    root.call("PATCH", f"/v1/namespaces/{ns_id}", {"description": "patched"})
    root.call("PUT", f"/v1/namespaces/{ns_id}", {"namespace_name": ns_name})
    if _served(routes, "GET", "/v1/namespaces"):
        root.call("GET", "/v1/namespaces")
    root.call("GET", "/v1/namespaces/ns_does_not_exist", expect=404)
    c = Api(srv, recorder, namespace=ns_id)
    try:
        _drive_namespace(srv, c, routes, moto, drive)
    finally:
        c.close()
    root.call("DELETE", f"/v1/namespaces/{ns_id}")


def _drive_namespace(srv, c: Api, routes, moto, drive) -> None:
    # -- buckets ---------------------------------------------------------------------
    schema = {"properties": {"content": {"type": "text"}, "image": {"type": "image"}}}
    bucket = c.call(
        "POST",
        "/v1/buckets",
        {"bucket_name": "media", "bucket_schema": schema, "description": "contract", "metadata": {"k": "v"}},
    )
    bid = bucket["bucket_id"]
    c.call("POST", "/v1/buckets/list", {})
    c.call("GET", f"/v1/buckets/{bid}")
    c.call("PUT", f"/v1/buckets/{bid}", {"description": "put"})
    c.call("PATCH", f"/v1/buckets/{bid}", {"metadata": {"k": "w"}})
    if _served(routes, "GET", "/v1/buckets"):
        c.call("GET", "/v1/buckets")
    c.call("GET", "/v1/buckets/nope", expect=404)
    # -- objects ---------------------------------------------------------------------
    text_blob = {
        "property": "content",
        "type": "text",
        "data": {"base64": b64(b"hello contract"), "filename": "hello.txt", "mime_type": "text/plain"},
    }
    obj = c.call("POST", f"/v1/buckets/{bid}/objects", {"blobs": [text_blob], "key_prefix": "/notes"})
    oid = obj["object_id"]
    keyed = {"blobs": [text_blob], "idempotency_key": "contract-once"}
    once = c.call("POST", f"/v1/buckets/{bid}/objects", keyed)
    assert c.call("POST", f"/v1/buckets/{bid}/objects", keyed)["object_id"] == once["object_id"]
    image_blob = {
        "property": "image",
        "type": "image",
        "data": {"base64": b64(png_bytes(1)), "filename": "one.png", "mime_type": "image/png"},
    }
    many = c.call(
        "POST",
        f"/v1/buckets/{bid}/objects/batch",
        {
            "objects": [
                {"blobs": [image_blob]},
                {"blobs": [dict(text_blob, data=dict(text_blob["data"], base64=b64(b"two")))]},
            ]
        },
    )
    batch_oids = [o["object_id"] for o in many["succeeded"]]
    assert len(batch_oids) == 2
    c.call("POST", f"/v1/buckets/{bid}/objects/list", {})
    c.call("GET", f"/v1/buckets/{bid}/objects/{oid}")
    c.call("PUT", f"/v1/buckets/{bid}/objects/{oid}", {"key_prefix": "/notes/put"})
    c.call("PATCH", f"/v1/buckets/{bid}/objects/{oid}", {"key_prefix": "/notes/patched"})
    # -- uploads -----------------------------------------------------------------------
    up_oids = _drive_uploads(c, bid)
    # -- batches and tasks ---------------------------------------------------------------
    _drive_batches(c, routes, bid, [oid, *batch_oids, *up_oids])
    # -- collections, documents, retrievers -----------------------------------------------------
    _drive_collections(c, routes, bid)
    # -- connections and syncs -----------------------------------------------------------
    _drive_storage(srv, c, routes, bid, moto, drive)
    c.call("DELETE", f"/v1/buckets/{bid}/objects/{oid}", expect=(200, 204))
    c.call("DELETE", f"/v1/buckets/{bid}")


def _put(url: str, data: bytes, content_type: str) -> str:
    r = httpx.put(url, content=data, headers={"Content-Type": content_type}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["etag"].strip('"')


def _drive_uploads(c: Api, bid: str) -> list[str]:
    data = png_bytes(7)
    up = c.call(
        "POST",
        f"/v1/buckets/{bid}/uploads",
        {
            "filename": "seven.png",
            "content_type": "image/png",
            "file_size_bytes": len(data),
            "file_hash": hashlib.sha256(data).hexdigest(),
            "metadata": {"origin": "contract"},
        },
    )
    etag = _put(up["presigned_url"], data, "image/png")
    confirmed = c.call(
        "POST", f"/v1/buckets/{bid}/uploads/{up['upload_id']}/confirm", {"etag": etag, "file_size_bytes": len(data)}
    )
    files = [(f"b{i}.png", png_bytes(20 + i)) for i in range(2)]
    ups = c.call(
        "POST",
        f"/v1/buckets/{bid}/uploads/batch",
        {
            "uploads": [
                {
                    "filename": n,
                    "content_type": "image/png",
                    "file_size_bytes": len(d),
                    "file_hash": hashlib.sha256(d).hexdigest(),
                }
                for n, d in files
            ]
        },
    )
    confirmations = []
    for u, (_, d) in zip(ups["uploads"], files):
        confirmations.append({"upload_id": u["upload_id"], "etag": _put(u["presigned_url"], d, "image/png")})
    done = c.call("POST", f"/v1/buckets/{bid}/uploads/confirm/batch", {"confirmations": confirmations})
    wait_for(lambda: c.call("GET", f"/v1/tasks/{done['task_id']}")["status"] in TERMINAL, what="batch confirm")
    ids = [u["upload_id"] for u in ups["uploads"]]
    listed = c.call(
        "POST",
        f"/v1/buckets/{bid}/uploads/list",
        {"filters": {"AND": [{"field": "upload_id", "operator": "in", "value": ids}]}},
    )
    object_ids = [u["object_id"] for u in listed["results"] if u.get("object_id")]
    got = c.call("GET", f"/v1/buckets/{bid}/uploads/{up['upload_id']}")
    object_ids.append(got.get("object_id") or confirmed.get("object_id"))
    spare = c.call("POST", f"/v1/buckets/{bid}/uploads", {"filename": "never.txt", "content_type": "text/plain"})
    c.call("DELETE", f"/v1/buckets/{bid}/uploads/{spare['upload_id']}", expect=(200, 204))
    return [o for o in object_ids if o]


def _drive_batches(c: Api, routes, bid: str, object_ids: list[str]) -> None:
    assert len(object_ids) >= 4
    batch = c.call("POST", f"/v1/buckets/{bid}/batches", {"object_ids": object_ids[:2]})
    btch = batch["batch_id"]
    c.call("POST", f"/v1/buckets/{bid}/batches/{btch}/objects", {"object_ids": object_ids[2:]})
    c.call("PATCH", f"/v1/buckets/{bid}/batches/{btch}", {"metadata": {"run": "contract"}})
    c.call("GET", f"/v1/buckets/{bid}/batches/{btch}")
    task = c.call("POST", f"/v1/buckets/{bid}/batches/{btch}/submit", {})
    tid = task["task_id"]
    c.call("POST", f"/v1/buckets/{bid}/batches/list", {"status": "PROCESSING"})
    c.call("POST", "/v1/tasks/list", {"filters": {"AND": [{"field": "task_id", "operator": "in", "value": [tid]}]}})
    final = wait_for(lambda: (t := c.call("GET", f"/v1/tasks/{tid}"))["status"] in TERMINAL and t, what="batch task")
    assert final["status"] in TERMINAL
    c.call("GET", f"/v1/buckets/{bid}/batches/{btch}")
    c.call("POST", f"/v1/buckets/{bid}/batches/list", {})
    c.call("POST", "/v1/tasks/list", {"status": "COMPLETED", "task_type": "api_buckets_batches_process"})
    c.call("POST", "/v1/tasks/list", {"sort": {"field": "created_at", "direction": "desc"}}, params={"limit": 5})
    c.call("GET", f"/v1/buckets/{bid}/batches/{btch}/failed-documents")
    c.call("POST", f"/v1/buckets/{bid}/batches/{btch}/retry", {})
    if _served(routes, "POST", "/v1/batches/list"):
        c.call("POST", "/v1/batches/list", {"bucket_id": bid})
    if _served(routes, "GET", "/v1/batches/{batch_id}"):
        c.call("GET", f"/v1/batches/{btch}")
    # a second batch (submitted as it is created, processing again what the first one did), canceled, deleted
    other = c.call(
        "POST",
        f"/v1/buckets/{bid}/batches",
        {"object_ids": object_ids[:1], "dedup_strategy": "force", "auto_submit": True},
    )
    c.call("POST", f"/v1/buckets/{bid}/batches/{other['batch_id']}/cancel")
    c.call("DELETE", f"/v1/buckets/{bid}/batches/{other['batch_id']}")
    if _served(routes, "POST", "/v1/batches/{batch_id}/cancel"):
        third = c.call("POST", f"/v1/buckets/{bid}/batches", {"object_ids": object_ids[:1]})
        c.call("POST", f"/v1/buckets/{bid}/batches/{third['batch_id']}/submit")
        c.call("POST", f"/v1/batches/{third['batch_id']}/cancel")
    c.call("DELETE", f"/v1/tasks/{tid}")
    c.call("GET", "/v1/tasks/task_does_not_exist", expect=404)


def _drive_collections(c: Api, routes, bid: str) -> None:
    if not _served(routes, "POST", "/v1/collections"):
        return
    extractors = c.call("GET", "/v1/collections/features/extractors")
    text = next(e for e in extractors if e["feature_extractor_name"] == "text_extractor")
    c.call("GET", f"/v1/collections/features/extractors/{text['feature_extractor_id']}")
    col = c.call(
        "POST",
        "/v1/collections",
        {
            "collection_name": "notes",
            "description": "contract",
            "source": {"type": "bucket", "bucket_ids": [bid]},
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
            },
        },
    )
    cid = col["collection_id"]
    run = c.call("POST", f"/v1/collections/{cid}/trigger", {}, expect=(200, 202))
    wait_for(lambda: c.call("GET", f"/v1/tasks/{run['task_id']}")["status"] in TERMINAL, what="collection trigger")
    c.call("GET", "/v1/collections")
    c.call("POST", "/v1/collections/list", {"search": "notes"})
    c.call("GET", f"/v1/collections/{cid}")
    docs = c.call("POST", f"/v1/collections/{cid}/documents/list", {"limit": 5})
    c.call("GET", f"/v1/collections/{cid}/documents")
    assert docs["results"], "the trigger made no document"
    c.call("GET", f"/v1/collections/{cid}/documents/{docs['results'][0]['document_id']}")
    search = {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {
                        "feature_uri": text.get("required_vector_indexes", [{}])[0].get("feature_uri")
                        or "mixpeek://text_extractor@v1/multilingual_e5_large_instruct_v1",
                        "query": {"input_mode": "text", "value": "{{INPUT.q}}"},
                    }
                ]
            },
        },
    }
    ret = c.call(
        "POST",
        "/v1/retrievers",
        {
            "retriever_name": "notes_search",
            "collection_identifiers": [cid],
            "stages": [search],
            "input_schema": {"q": {"type": "string", "required": True}},
        },
    )
    rid = ret["retriever_id"]
    c.call("GET", "/v1/retrievers")
    c.call("POST", "/v1/retrievers/list", {})
    c.call("GET", f"/v1/retrievers/{rid}")
    c.call("POST", f"/v1/retrievers/{rid}/execute", {"inputs": {"q": "hello"}, "limit": 5})
    c.call(
        "POST",
        "/v1/retrievers/execute",
        {"collection_identifiers": [cid], "stages": [search], "inputs": {"q": "contract"}, "limit": 3},
    )
    c.call("DELETE", f"/v1/retrievers/{rid}")
    c.call("DELETE", f"/v1/collections/{cid}")


def _drive_storage(srv, c: Api, routes, bid: str, moto, drive) -> None:
    src = f"src-{uuid.uuid4().hex[:6]}"
    moto.create_bucket(src)
    moto.put_objects(src, {"in/a.png": png_bytes(3), "in/b.txt": b"bee\n"})
    conn = c.call(
        "POST",
        "/v1/organizations/connections",
        {
            "name": f"s3-{uuid.uuid4().hex[:6]}",
            "provider_type": "s3",
            "provider_config": moto.provider_config(),
            "description": "contract",
        },
    )
    cid = conn["connection_id"]
    c.call("POST", "/v1/organizations/connections/list", {"provider_type": "s3"})
    c.call("GET", f"/v1/organizations/connections/{cid}")
    c.call("PATCH", f"/v1/organizations/connections/{cid}", {"description": "patched"})
    c.call("POST", f"/v1/organizations/connections/{cid}/test")
    # Drive: folders and files are Drive-only routes
    sa = drive.add_service_account()
    folder = drive.add_folder("root", "Assets")
    drive.add_file(folder, "brief.txt", b"hello", "text/plain")
    gconn = c.call(
        "POST",
        "/v1/organizations/connections",
        {
            "name": "drive",
            "provider_type": "google_drive",
            "provider_config": {"credentials": dict(sa, type="service_account")},
        },
    )
    c.call("GET", f"/v1/organizations/connections/{gconn['connection_id']}/folders", params={"path": "/"})
    c.call("GET", f"/v1/organizations/connections/{gconn['connection_id']}/files", params={"path": "/Assets"})
    # syncs
    base = f"/v1/buckets/{bid}/syncs"
    sync = c.call(
        "POST",
        base,
        {
            "connection_id": cid,
            "source_path": f"{src}/in",
            "sync_mode": "initial_only",
            "file_filters": {"include_patterns": ["*.png", "*.txt"]},
            "batch_size": 10,
        },
    )
    sid = sync["sync_config_id"]
    c.call("POST", f"{base}/list", {})
    wait_for(lambda: c.call("GET", f"{base}/{sid}")["status"] in ("COMPLETED", "FAILED"), what="sync run")
    c.call("PATCH", f"{base}/{sid}", {"description": "patched"})
    c.call("POST", f"{base}/{sid}/pause")
    c.call("POST", f"{base}/{sid}/resume")
    c.call("POST", f"{base}/{sid}/trigger")
    if _served(routes, "POST", "/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}/jobs"):
        jobs = c.call("POST", f"{base}/{sid}/jobs", {})
        job_template = "/v1/buckets/{bucket_identifier}/syncs/{sync_config_id}/jobs/{sync_job_id}"
        if jobs.get("results") and _served(routes, "GET", job_template):
            c.call("GET", f"{base}/{sid}/jobs/{jobs['results'][0]['sync_job_id']}")
    wait_for(
        lambda: c.call("GET", f"{base}/{sid}")["status"] in ("COMPLETED", "FAILED", "ACTIVE"), what="triggered run"
    )
    c.call("DELETE", f"{base}/{sid}")
    c.call("DELETE", f"/v1/organizations/connections/{gconn['connection_id']}", expect=(200, 204))
    c.call("DELETE", f"/v1/organizations/connections/{cid}", expect=(200, 204))
