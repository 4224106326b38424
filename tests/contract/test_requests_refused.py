"""The local server refuses what the real service refuses: undeclared keys, bad enum values,
missing required fields, wrong types, out-of-bounds values, bodies that are not JSON; with a
422 in the contract's ErrorResponse shape that says what to change."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.contract_schema import problems


@pytest.fixture
def api(local_server):
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    with httpx.Client(base_url=local_server.base_url, headers=headers, timeout=30) as c:
        r = c.post("/v1/namespaces", json={"namespace_name": "strict_ns", "feature_extractors": []})
        assert r.status_code == 200, r.text
        c.headers["X-Namespace"] = r.json()["namespace_id"]
        r = c.post("/v1/buckets", json={"bucket_name": "b", "bucket_schema": {"properties": {"f": {"type": "text"}}}})
        assert r.status_code == 200, r.text
        c.bucket_id = r.json()["bucket_id"]  # type: ignore[attr-defined]
        yield c


def refused(r: httpx.Response) -> tuple[dict, list[dict]]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert problems("ErrorResponse", body) == []
    assert body["success"] is False and body["status"] == 422
    assert body["error"]["type"] == "ValidationError"
    errors = body["error"]["details"]["errors"]
    assert errors and all({"loc", "msg", "type"} <= set(e) for e in errors)
    return body, errors


def test_undeclared_key_is_refused_naming_the_accepted_keys(api, local_server):
    r = api.post("/v1/namespaces", json={"namespace_name": "other_ns", "feature_extractors": [], "extractors": []})
    body, errors = refused(r)
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", "extractors"], "extra_forbidden")]
    accepted = body["error"]["details"]["accepted_keys"]
    assert "namespace_name" in accepted and "feature_extractors" in accepted and "extractors" not in accepted
    assert errors[0]["accepted_keys"] == accepted
    message = body["error"]["message"]
    assert "extractors" in message and "feature_extractors" in message and "namespace_name" in message
    # refused before the handler: nothing was created
    names = [n["namespace_name"] for n in api.post("/v1/namespaces/list", json={}).json()["results"]]
    assert "other_ns" not in names


def test_create_namespace_needs_only_its_name(api):
    r = api.post("/v1/namespaces", json={"namespace_name": "named_only"})
    assert r.status_code == 200, r.text
    assert r.json()["namespace_name"] == "named_only"


def test_undeclared_nested_key_is_refused(api):
    r = api.post("/v1/tasks/list", json={"sort": {"field": "created_at", "order": "desc"}})
    body, errors = refused(r)
    assert errors[0]["loc"] == ["body", "sort", "order"] and errors[0]["type"] == "extra_forbidden"
    assert errors[0]["accepted_keys"] == ["direction", "field"]
    assert "direction" in body["error"]["message"]
    r = api.post(
        f"/v1/buckets/{api.bucket_id}/uploads/batch",
        json={"uploads": [{"filename": "a.txt", "content_type": "text/plain", "sha256": "x"}]},
    )
    _, errors = refused(r)
    assert errors[0]["loc"] == ["body", "uploads", 0, "sha256"] and errors[0]["type"] == "extra_forbidden"
    assert "file_hash" in errors[0]["accepted_keys"]


def test_a_schema_with_additional_properties_takes_extra_keys(api):
    # ListBatchesRequest declares a property named additional_properties: extras are accepted
    r = api.post(f"/v1/buckets/{api.bucket_id}/batches/list", json={"limit": 5, "experimental_flag": True})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("status", ["BOGUS", ["COMPLETED", "FAILED"], "completed"])
def test_task_status_is_one_enum_value(api, status):
    _, errors = refused(api.post("/v1/tasks/list", json={"status": status}))
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", "status"], "enum")]
    assert "COMPLETED_WITH_ERRORS" in errors[0]["msg"] and "COMPLETED_WITH_ERRORS" in errors[0]["expected"]
    assert api.post("/v1/tasks/list", json={"status": "COMPLETED"}).status_code == 200


def test_task_type_enum_and_filter_operator_enum(api):
    _, errors = refused(api.post("/v1/tasks/list", json={"task_type": "batch"}))
    assert errors[0]["type"] == "enum" and errors[0]["loc"] == ["body", "task_type"]
    # a filter condition is also a valid (extensible) logical operator in the contract, so the
    # handler is the one that refuses an unknown operator, in the same shape
    r = api.post("/v1/tasks/list", json={"filters": {"AND": [{"field": "status", "operator": "among", "value": 1}]}})
    body, _ = refused(r)
    assert "among" in body["error"]["message"]


def test_missing_required_fields(api):
    _, errors = refused(api.post("/v1/buckets", json={"bucket_schema": {"properties": {}}}))
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", "bucket_name"], "missing")]
    _, errors = refused(api.post(f"/v1/buckets/{api.bucket_id}/uploads", json={}))
    assert sorted(e["loc"][-1] for e in errors if e["type"] == "missing") == ["content_type", "filename"]
    _, errors = refused(api.post(f"/v1/buckets/{api.bucket_id}/uploads/batch"))  # no body at all
    assert errors[0]["type"] == "missing" and errors[0]["loc"] == ["body"]


def test_types_and_bounds(api):
    _, errors = refused(api.post(f"/v1/buckets/{api.bucket_id}/batches/list", json={"limit": "ten"}))
    assert errors[0]["loc"] == ["body", "limit"] and errors[0]["type"] == "int_type"
    r = api.post(
        f"/v1/buckets/{api.bucket_id}/uploads",
        json={"filename": "a.txt", "content_type": "text/plain", "presigned_url_expiration": 10},
    )
    _, errors = refused(r)
    assert errors[0]["loc"] == ["body", "presigned_url_expiration"] and errors[0]["type"] == "greater_than_equal"
    _, errors = refused(api.post("/v1/namespaces", json={"namespace_name": "ab"}))
    assert errors[0]["type"] == "string_too_short"


def test_a_body_that_is_not_json(api):
    r = api.post("/v1/tasks/list", content=b'{"status": ', headers={"Content-Type": "application/json"})
    _, errors = refused(r)
    assert errors[0]["type"] == "json_invalid"


def test_the_servers_other_422s_have_the_same_shape(api):
    r = api.post("/v1/tasks/list", params={"limit": 0}, json={})  # a query parameter out of bounds
    _, errors = refused(r)
    assert errors[0]["loc"] == ["query", "limit"]


def test_paths_outside_the_contract_are_not_checked(api, local_server):
    r = api.post(
        f"/v1/buckets/{api.bucket_id}/uploads", json={"filename": "x.json", "content_type": "application/json"}
    )
    assert r.status_code == 200, r.text
    data = b'{"anything": ["goes", 1]}'
    put = httpx.put(r.json()["presigned_url"], content=data, headers={"Content-Type": "application/json"})
    assert put.status_code == 200, put.text


def test_refusals_and_acceptances_are_counted(api, local_server):
    before = local_server.contract_stats
    refused(api.post("/v1/tasks/list", json={"status": "BOGUS", "nope": 1}))
    assert api.post("/v1/tasks/list", json={}).status_code == 200
    after = local_server.contract_stats
    assert after["requests_refused"].get("enum", 0) == before["requests_refused"].get("enum", 0) + 1
    assert (
        after["requests_refused"].get("extra_forbidden", 0) == before["requests_refused"].get("extra_forbidden", 0) + 1
    )
    assert after["requests_accepted"] == before["requests_accepted"] + 1
