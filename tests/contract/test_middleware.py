"""The contract middleware on its own: answers are cut to their schema (counted), checked
(violations recorded), bodies re-sent with the right length; other answers untouched; and the
stats reach ``LocalServer.contract_stats`` and the ``$MIXPEEK_LOCAL_CONTRACT_REPORT`` file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace
from typing import Any

import httpx

from mixpeek_magics.local import LocalSettings
from mixpeek_magics.local.contract import ContractMiddleware, ContractStats
from tests.contract.contract_schema import problems

TASK = {
    "task_id": "task_1",
    "task_type": "api_buckets_batches_process",
    "status": "PROCESSING",
    "inputs": ["obj_1"],
    "outputs": [],
    "error": None,
    "progress": 0.5,  # undeclared
    "additional_data": {"batch_id": "btch_1", "bucket_id": "bkt_1", "processed": 3, "failed_objects": []},
}
BATCH = {
    "batch_id": "btch_1",
    "bucket_id": "bkt_1",
    "status": "COMPLETED_WITH_ERRORS",
    "max_node_death_resubmits": 3,
    "max_deploy_resubmits": 3,
    "lifecycle": None,
    "lifecycle_reason": None,
    "failed_objects": [
        {
            "object_id": "obj_2",
            "error": "bad",
            "error_type": "permanent",
            "timestamp": "2026-01-01T00:00:00Z",
            "filename": "b.png",
        }
    ],
    "tier_tasks": [
        {
            "tier_num": 0,
            "source_type": "bucket",
            "task_id": "task_1",
            "status": "COMPLETED",
            "collection_ids": ["col_1"],
            "local_only": True,
        }
    ],
}


def inner_app(answers: dict[str, tuple[int, str, Any]]):
    async def app(scope, receive, send):
        status, ctype, payload = answers[scope["path"]]
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        # in two chunks: the middleware must gather them
        await send({"type": "http.response.body", "body": body[:5], "more_body": True})
        await send({"type": "http.response.body", "body": body[5:]})

    return app


def call(answers, path: str, check: bool = True, method: str = "GET", **kw) -> tuple[httpx.Response, ContractStats]:
    state = SimpleNamespace(contract_stats=ContractStats(), settings=LocalSettings(contract_check=check))
    app = ContractMiddleware(inner_app(answers), state)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.request(method, path, **kw)

    return asyncio.run(go()), state.contract_stats


def test_answers_are_cut_to_their_schema_and_the_cuts_counted():
    r, stats = call({"/v1/tasks/task_1": (200, "application/json", TASK)}, "/v1/tasks/task_1")
    body = r.json()
    assert int(r.headers["content-length"]) == len(r.content)
    assert "progress" not in body
    assert body["additional_data"] == {"batch_id": "btch_1", "bucket_id": "bkt_1"}
    assert body["inputs"] == ["obj_1"] and body["status"] == "PROCESSING"
    assert problems("TaskResponse", body) == []
    d = stats.as_dict()
    assert d["fields_dropped"] == {
        "TaskResponse.progress": 1,
        "TaskResponse.additional_data.processed": 1,
        "TaskResponse.additional_data.failed_objects": 1,
    }
    assert d["responses_checked"] == 1 and d["violations_total"] == 0 and d["undeclared_on_wire"] == 0


def test_nested_objects_are_cut_through_anyof_and_items():
    r, stats = call({"/v1/buckets/b/batches/btch_1": (200, "application/json", BATCH)}, "/v1/buckets/b/batches/btch_1")
    body = r.json()
    assert "filename" not in body["failed_objects"][0] and body["failed_objects"][0]["object_id"] == "obj_2"
    assert "local_only" not in body["tier_tasks"][0]
    assert problems("BatchModel", body) == []
    assert stats.as_dict()["fields_dropped"] == {"FailedObjectRecord.filename": 1, "TierTaskInfo.local_only": 1}


def test_error_answers_are_cut_to_error_response():
    err = {
        "success": False,
        "status": 404,
        "error": {"message": "no such task", "type": "NotFoundError", "details": {"anything": 1}},
        "detail": "legacy",
    }
    r, stats = call({"/v1/tasks/x": (404, "application/json", err)}, "/v1/tasks/x")
    assert r.status_code == 404
    assert r.json() == {
        "success": False,
        "status": 404,
        "error": {"message": "no such task", "type": "NotFoundError", "details": {"anything": 1}},
    }
    assert stats.as_dict()["fields_dropped"] == {"ErrorResponse.detail": 1}


def test_violations_are_recorded_with_operation_and_path():
    bad = {"task_id": "task_1", "status": "DONE"}
    r, stats = call({"/v1/tasks/task_1": (200, "application/json", bad)}, "/v1/tasks/task_1")
    assert r.json() == bad  # sent as it is: the check reports, it does not rewrite
    d = stats.as_dict()
    found = {(v["operation"], v["path"], v["type"]) for v in d["violations"]}
    assert found == {
        ("GET /v1/tasks/{task_id}", "$.status", "enum"),
        ("GET /v1/tasks/{task_id}", "$.task_type", "missing"),
    }
    assert d["violations_total"] == 2


def test_the_check_can_be_turned_off_but_not_the_projection():
    r, stats = call({"/v1/tasks/task_1": (200, "application/json", TASK)}, "/v1/tasks/task_1", check=False)
    assert "progress" not in r.json()
    d = stats.as_dict()
    assert d["responses_checked"] == 0 and d["responses_projected"] == 1 and d["fields_dropped_total"] == 3


def test_other_answers_pass_untouched():
    blob = b"\x89PNG not json at all"
    answers = {
        "/v1/tasks/t": (200, "application/octet-stream", blob),
        "/_local/uploads/upl_1": (200, "application/json", {"anything": 1}),
        "/v1/not/a/contract/path": (200, "application/json", {"anything": 1}),
    }
    r, stats = call(answers, "/v1/tasks/t")
    assert r.content == blob
    r, _ = call(answers, "/_local/uploads/upl_1", method="PUT", content=b'{"x": 1}')
    assert r.json() == {"anything": 1}
    r, stats = call(answers, "/v1/not/a/contract/path")
    assert r.json() == {"anything": 1} and stats.as_dict()["requests_unmatched"]


def _report_lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_local_server_reports_its_stats(local_server_factory, tmp_path, monkeypatch):
    report = tmp_path / "contract.jsonl"
    monkeypatch.setenv("MIXPEEK_LOCAL_CONTRACT_REPORT", str(report))
    monkeypatch.delenv("MIXPEEK_LOCAL_CONTRACT_REPORT_EXCEPT_PID", raising=False)
    srv = local_server_factory()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}) as c:
        assert c.get("/v1/organizations").status_code == 200
        assert c.post("/v1/tasks/list", json={"status": "NOPE"}).status_code == 422
    stats = srv.contract_stats
    assert stats["responses_checked"] == 1 and stats["requests_refused"] == {"enum": 1}
    # what is new is written after each request: a process killed without notice has reported
    lines = _report_lines(report)
    assert len(lines) == 2 and {x["pid"] for x in lines} == {os.getpid()}
    assert sum(x["responses_checked"] for x in lines) == 1
    assert [x["requests_refused"] for x in lines] == [{}, {"enum": 1}]
    srv.stop()  # nothing new: no other line
    assert len(_report_lines(report)) == 2
    monkeypatch.setenv("MIXPEEK_LOCAL_CONTRACT_REPORT_EXCEPT_PID", str(os.getpid()))
    srv.start()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}) as c:
        assert c.get("/v1/organizations").status_code == 200
    assert len(_report_lines(report)) == 2  # the excepted process (the test run's) writes nothing
    assert srv.contract_stats["responses_checked"] == 2  # across restarts of the server


def test_a_process_that_exits_with_its_server_running_reports_too(tmp_path):
    # what a notebook kernel does: %mixpeek_auth --local starts a server, the kernel is stopped
    report = tmp_path / "contract.jsonl"
    code = textwrap.dedent(f"""
        import httpx
        from mixpeek_magics.local import LocalServer
        srv = LocalServer(data_dir={str(tmp_path / "data")!r}, port=0).start()
        r = httpx.get(srv.base_url + "/v1/organizations", headers={{"Authorization": "Bearer " + srv.api_key}})
        assert r.status_code == 200, r.text
        import os
        os._exit(0)  # no atexit: like a kernel that is killed
    """)
    env = dict(os.environ, MIXPEEK_LOCAL_CONTRACT_REPORT=str(report))
    env.pop("MIXPEEK_LOCAL_CONTRACT_REPORT_EXCEPT_PID", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    lines = _report_lines(report)
    assert len(lines) == 1 and lines[0]["pid"] != os.getpid() and lines[0]["responses_checked"] == 1


def test_a_union_is_cut_by_the_branch_the_object_is():
    # ProviderConfig is anyOf twenty provider configs: the discriminator (provider_type) and the
    # required keys of nested objects choose, not the first branch that declares the same keys
    from collections import Counter

    from mixpeek_magics.local.contract import strict

    drive = {
        "provider_type": "google_drive",
        "shared_drive_id": None,
        "local_note": 1,
        "credentials": {
            "type": "service_account",
            "client_email": "a@b.iam",
            "project_id": "p",
            "private_key_id": "k1",
            "private_key": "***",
            "client_id": "1",
        },
    }
    s3 = {
        "provider_type": "s3",
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:9",
        "credentials": {"type": "iam_role", "role_arn": "arn:aws:iam::123456789012:role/r", "external_id": "x" * 8},
    }
    for config, kept, dropped_name in ((drive, "client_email", "GoogleDriveConfig.local_note"), (s3, "role_arn", None)):
        dropped: Counter = Counter()
        body = {
            "name": "c",
            "internal_id": "org",
            "created_by_user_id": "u",
            "provider_type": config["provider_type"],
            "provider_config": json.loads(json.dumps(config)),
        }
        out = strict().project("StorageConnectionModel", body, dropped)
        assert kept in out["provider_config"]["credentials"]
        assert dict(dropped) == ({dropped_name: 1} if dropped_name else {})
        assert problems("StorageConnectionModel", out) == []
