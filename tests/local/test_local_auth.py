"""Authentication, read-only keys, namespace header and organization isolation."""

from __future__ import annotations

import httpx
import pytest

from tests.local.localhelpers import Env, assert_error, client_for, wait_task


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk_test_wrong"},
        {"Authorization": "sk_test_x"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ],
)
def test_401_shapes(local_server, headers):
    r = httpx.post(local_server.base_url + "/v1/namespaces/list", headers=headers, json={})
    body = assert_error(r, 401, type="AuthenticationError")
    assert set(body) == {"success", "status", "error"}
    assert set(body["error"]) == {"message", "type", "details"}


def test_401_before_body_validation(local_server):
    r = httpx.post(local_server.base_url + "/v1/namespaces", json={"bad": "body"})
    assert_error(r, 401)
    r = httpx.post(local_server.base_url + "/v1/tasks/list", params={"limit": 5000})
    assert_error(r, 401)


def test_invalid_key_is_masked_in_error(local_server):
    key = "sk_test_" + "secretpart" * 4 + "WXYZ"
    r = httpx.get(local_server.base_url + "/v1/organizations", headers={"Authorization": f"Bearer {key}"})
    assert_error(r, 401)
    assert "secretpart" not in r.text and "sk_...WXYZ" in r.text


def test_read_only_key(env, local_server):
    ro = local_server.create_api_key(read_only=True)
    assert ro.startswith("sk_test_") and ro != local_server.api_key
    c = client_for(local_server, ro, namespace=env.namespace_id)
    # reads work, including POST .../list
    assert c.get("/v1/organizations").status_code == 200
    assert c.post("/v1/namespaces/list", json={}).status_code == 200
    assert c.post("/v1/tasks/list", json={}).status_code == 200
    assert c.get(f"/v1/buckets/{env.bucket_id}").status_code == 200
    # writes are refused with 403 and do nothing
    assert_error(
        c.post("/v1/namespaces", json={"namespace_name": "xyz", "feature_extractors": []}),
        403,
        "read-only",
        "PermissionDeniedError",
    )
    assert_error(c.delete(f"/v1/buckets/{env.bucket_id}"), 403)
    assert_error(c.post(f"/v1/buckets/{env.bucket_id}/objects", json={"blobs": []}), 403)
    assert_error(c.delete("/v1/tasks/task_whatever"), 403)
    assert env.c.get(f"/v1/buckets/{env.bucket_id}").status_code == 200
    names = [n["namespace_name"] for n in env.root.post("/v1/namespaces/list", json={}).json()["results"]]
    assert names == ["test_ns"]


def test_namespace_header_required_and_checked(env, local_server):
    c = client_for(local_server)
    assert_error(c.get(f"/v1/buckets/{env.bucket_id}"), 400, "X-Namespace", "MissingNamespaceError")
    assert_error(c.post("/v1/buckets/list", headers={"X-Namespace": "nope"}, json={}), 404, "nope")
    # by name and by id
    assert c.get(f"/v1/buckets/{env.bucket_id}", headers={"X-Namespace": "test_ns"}).status_code == 200
    assert c.get(f"/v1/buckets/{env.bucket_id}", headers={"X-Namespace": env.namespace_id}).status_code == 200
    # a bucket of another namespace of the same organization is not visible
    c.post("/v1/namespaces", json={"namespace_name": "other", "feature_extractors": []})
    assert_error(c.get(f"/v1/buckets/{env.bucket_id}", headers={"X-Namespace": "other"}), 404)


def test_organization_isolation(env, local_server):
    obj = env.text_obj("private text")
    _, task = env.submit([obj["object_id"]])
    wait_task(env.c, task["task_id"])
    up = env.c.post(
        f"/v1/buckets/{env.bucket_id}/uploads", json={"filename": "a.txt", "content_type": "text/plain"}
    ).json()
    batch = env.batch([obj["object_id"]])

    other_key = local_server.create_organization("other-org")
    assert other_key.startswith("sk_test_")
    o = client_for(local_server, other_key)
    assert o.get("/v1/organizations").json()["organization_name"] == "other-org"
    assert (
        o.get("/v1/organizations").json()["organization_id"]
        != env.root.get("/v1/organizations").json()["organization_id"]
    )
    # namespaces: not listed, not gettable by id or name, not usable as X-Namespace
    assert o.post("/v1/namespaces/list", json={}, params={"include_total": True}).json()["total_count"] == 0
    assert_error(o.get(f"/v1/namespaces/{env.namespace_id}"), 404)
    assert_error(o.get("/v1/namespaces/test_ns"), 404)
    assert_error(o.delete(f"/v1/namespaces/{env.namespace_id}"), 404)
    for ns in (env.namespace_id, "test_ns"):
        h = {"X-Namespace": ns}
        assert_error(o.get(f"/v1/buckets/{env.bucket_id}", headers=h), 404)
        assert_error(o.get(f"/v1/buckets/{env.bucket_id}/objects/{obj['object_id']}", headers=h), 404)
    # even with its own namespace of the same name, the other org sees none of the first org's things
    o.post("/v1/namespaces", json={"namespace_name": "test_ns", "feature_extractors": []})
    h = {"X-Namespace": "test_ns"}
    assert o.post("/v1/buckets/list", headers=h, json={}).json()["total_count"] == 0
    assert_error(o.get(f"/v1/buckets/{env.bucket_id}", headers=h), 404)
    assert_error(o.post(f"/v1/buckets/{env.bucket_id}/objects/list", headers=h, json={}), 404)
    assert_error(o.get(f"/v1/buckets/{env.bucket_id}/uploads/{up['upload_id']}", headers=h), 404)
    assert_error(o.get(f"/v1/buckets/{env.bucket_id}/batches/{batch['batch_id']}", headers=h), 404)
    # tasks: not gettable, not listed (not even by id), kill has no effect
    assert_error(o.get(f"/v1/tasks/{task['task_id']}"), 404)
    lst = o.post(
        "/v1/tasks/list",
        params={"include_total": True},
        json={"filters": {"AND": [{"field": "task_id", "operator": "in", "value": [task["task_id"]]}]}},
    ).json()
    assert lst["results"] == [] and lst["pagination"]["total"] == 0
    assert o.post("/v1/tasks/list", json={}).json()["results"] == []
    # the owner still sees everything
    assert env.c.get(f"/v1/buckets/{env.bucket_id}/objects/{obj['object_id']}").status_code == 200
    assert env.root.get(f"/v1/tasks/{task['task_id']}").json()["status"] == "COMPLETED"


def test_kill_of_other_orgs_task_is_404_and_has_no_effect(env, local_server):
    local_server.update_settings(pace_seconds=5)
    obj = env.text_obj("slow")
    b, task = env.submit([obj["object_id"]])
    other = client_for(local_server, local_server.create_organization("o2"))
    # another organization's task is as unknown as one that never existed
    assert_error(other.delete(f"/v1/tasks/{task['task_id']}"), 404, task["task_id"], "NotFoundError")
    assert_error(other.delete("/v1/tasks/task_never_existed"), 404)
    assert env.root.get(f"/v1/tasks/{task['task_id']}").json()["status"] in ("PENDING", "PROCESSING")
    assert env.c.get(f"/v1/buckets/{env.bucket_id}/batches/{b['batch_id']}").json()["status"] in (
        "PENDING",
        "PROCESSING",
    )
    r = env.root.delete(f"/v1/tasks/{task['task_id']}")
    assert r.status_code == 200 and r.json() == {"message": "Successfully deleted", "success": True}
    assert wait_task(env.root, task["task_id"], timeout=3)["status"] == "CANCELED"


def test_second_org_fixture_style(local_server_factory):
    """Two servers side by side keep separate data and keys."""
    a, b = local_server_factory(), local_server_factory()
    assert a.api_key != b.api_key and a.base_url != b.base_url
    assert_error(client_for(b, a.api_key).get("/v1/organizations"), 401)
    Env(a)
    assert client_for(b).post("/v1/namespaces/list", json={}).json()["total_count"] == 0
