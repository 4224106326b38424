"""Error parsing, configuration and models (pure code, no server needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from mixpeek_magics.client import AsyncMixpeek, ClientConfig, Mixpeek, errors
from mixpeek_magics.client.errors import error_from_response, parse_retry_after
from mixpeek_magics.client.models import Bucket, Task, Upload
from mixpeek_magics.client.statuses import TaskStatus

KEY = "sk_test_0123456789abcdefWXYZ"


def make(status, body, headers=None):
    return error_from_response(
        status, headers or {}, body, method="POST", url="http://h/v1/buckets", base_url="http://h", api_key=KEY
    )


@pytest.mark.parametrize(
    "status,cls",
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (422, errors.ValidationError),
        (429, errors.RateLimitError),
        (500, errors.ServerError),
        (503, errors.ServerError),
    ],
)
def test_status_classes(status, cls):
    err = make(
        status,
        b'{"success": false, "status": %d, "error": {"message": "nope", "type": "T", "details": {"a": 1}}}' % status,
    )
    assert type(err) is cls and isinstance(err, errors.APIStatusError) and isinstance(err, errors.MixpeekError)
    assert err.status_code == status and err.error_type == "T" and err.details == {"a": 1}
    assert err.server_message == "nope"


def test_401_message_is_actionable():
    err = make(401, b'{"success":false,"status":401,"error":{"message":"bad key","type":"AuthenticationError"}}')
    assert str(err).startswith("API key rejected by http://h: run %mixpeek_auth again")


def test_fastapi_422_fields():
    body = (
        b'{"detail":[{"loc":["body","bucket_schema","properties"],"msg":"Field required","type":"missing"},'
        b'{"loc":["query","limit"],"msg":"Input should be less than or equal to 1000","type":"x"}]}'
    )
    err = make(422, body)
    assert err.fields == [
        ("body.bucket_schema.properties", "Field required"),
        ("query.limit", "Input should be less than or equal to 1000"),
    ]
    assert "body.bucket_schema.properties: Field required" in str(err)


def test_non_json_body_is_tolerated():
    err = make(502, b"<html><body>Bad Gateway</body></html>")
    assert isinstance(err, errors.ServerError) and "Bad Gateway" in str(err)
    assert isinstance(make(500, b""), errors.ServerError)


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=12), usegmt=True), now=now) == 12
    err = make(429, b"{}", {"Retry-After": "4"})
    assert err.retry_after == 4


def test_key_is_scrubbed_from_messages():
    err = make(403, (f'{{"error":{{"message":"key {KEY} is read-only","type":"x"}}}}').encode())
    assert KEY not in str(err) and KEY not in repr(err) and "sk_...WXYZ" in str(err)


def test_config_from_env(monkeypatch):
    monkeypatch.setenv("MIXPEEK_API_KEY", KEY)
    monkeypatch.setenv("MIXPEEK_BASE_URL", "http://127.0.0.1:5/")
    monkeypatch.setenv("MIXPEEK_NAMESPACE", "envns")
    cfg = ClientConfig.resolve()
    assert (cfg.api_key, cfg.base_url, cfg.namespace, cfg.timeout, cfg.max_retry_seconds) == (
        KEY,
        "http://127.0.0.1:5",
        "envns",
        30.0,
        60.0,
    )
    cfg = ClientConfig.resolve(api_key="sk_other_key_00001111", namespace="argns", timeout=3)
    assert cfg.api_key == "sk_other_key_00001111" and cfg.namespace == "argns" and cfg.timeout == 3
    monkeypatch.delenv("MIXPEEK_BASE_URL")
    assert ClientConfig.resolve().base_url == "https://api.mixpeek.com"


def test_config_rejects_bad_values():
    with pytest.raises(errors.ConfigurationError):
        ClientConfig(base_url="api.mixpeek.com")
    with pytest.raises(errors.ConfigurationError):
        ClientConfig(timeout=0)


async def test_reprs_never_show_the_key():
    c = Mixpeek(api_key=KEY, base_url="http://127.0.0.1:9")
    a = AsyncMixpeek(api_key=KEY, base_url="http://127.0.0.1:9")
    try:
        for text in (
            repr(c),
            str(c),
            repr(c.config),
            str(c.config),
            repr(a),
            repr(c.tasks),
            repr(c.with_options(namespace="x")),
            repr(a.config),
        ):
            assert KEY not in text and KEY[-8:] not in text
            assert "sk_...WXYZ" in text
    finally:
        c.close()
        await a.aclose()


def test_task_accepts_unknown_status_and_type():
    t = Task.model_validate(
        {
            "task_id": "t1",
            "task_type": "api_future_thing",
            "status": "QUEUED_V2",
            "brand_new_field": {"x": 1},
            "queue_position": 3,
            "additional_data": {
                "batch_id": "btch_1",
                "bucket_id": "bkt_1",
                "namespace_id": "ns_1",
                "current_tier": "0",
                "total_tiers": 2,
                "object_count": 10,
            },
        }
    )
    assert t.status == "QUEUED_V2" and type(t.status) is str
    assert t.task_type == "api_future_thing" and t.brand_new_field == {"x": 1}
    assert not t.is_terminal and t.queue_position == 3
    # the documented keys of a batch task's additional_data, and nothing else
    assert (t.batch_id, t.bucket_id, t.namespace_id, t.object_count) == ("btch_1", "bkt_1", "ns_1", 10)
    assert t.tier == (0, 2)
    assert not hasattr(t, "progress") and not hasattr(t, "failed_objects")
    known = Task.model_validate({"task_id": "t2", "task_type": "x", "status": "QUEUED"})
    assert known.status is TaskStatus.QUEUED and known.status == "QUEUED"
    assert known.batch_id is None and known.tier == (None, None)
    assert (
        Task.model_validate({"task_id": "t3", "task_type": "x", "status": "interrupted"}).status
        is TaskStatus.INTERRUPTED
    )
    done = Task.model_validate({"task_id": "t", "task_type": "x", "status": "COMPLETED_WITH_ERRORS"})
    assert done.is_terminal
    assert done.model_dump(mode="json")["status"] == "COMPLETED_WITH_ERRORS"


def test_batch_model_reads_progress_and_failed_objects():
    from mixpeek_magics.client.models import Batch

    b = Batch.model_validate(
        {
            "bucket_id": "bkt",
            "batch_id": "btch",
            "status": "IN_PROGRESS",
            "progress": {
                "processed": 3,
                "total": 12,
                "percent": 25.0,
                "items_per_second": 1.5,
                "eta_seconds": 6,
                "errors": 1,
                "first_error": "bad",
                "phases": {},
            },
            "failed_objects": [
                {"object_id": "obj_1", "error": "bad", "error_type": "decode", "timestamp": "2026-01-01T00:00:00Z"}
            ],
            "failed_object_count": 1,
            "status_message": "tier 1 of 1",
        }
    )
    assert b.progress.processed == 3 and b.progress.total == 12 and b.progress.fraction == 0.25
    assert b.failed_objects[0].object_id == "obj_1" and b.failed_object_count == 1
    assert b.status_message == "tier 1 of 1" and b.progress.phases == {}
    idle = Batch.model_validate({"bucket_id": "bkt", "status": "PENDING", "progress": None})
    assert idle.progress is None and idle.failed_objects is None


def test_one_task_status_per_request_checked_before_sending():
    from mixpeek_magics.client import Mixpeek

    c = Mixpeek(api_key="sk_test_0123456789abcdef", base_url="http://127.0.0.1:9")  # never contacted
    try:
        with pytest.raises(ValueError, match="takes one status.*operator.*in.*valid statuses: PENDING"):
            c.tasks.list(status=["COMPLETED", "FAILED"])
        with pytest.raises(ValueError, match="'DONE' is not a task status"):
            c.tasks.list(status="DONE")
        with pytest.raises(ValueError, match="takes one status"):
            c.tasks.iter(status=("FAILED", "CANCELED"))
        with pytest.raises(ValueError, match="not a task status"):
            c.batches.list_all(status="RUNNING")
    finally:
        c.close()


def test_other_models_keep_unknown_values():
    b = Bucket.model_validate(
        {"bucket_name": "b", "object_count": 0, "total_size_bytes": 0, "status": "MIGRATING", "future": 1}
    )
    assert b.status == "MIGRATING" and b.future == 1
    u = Upload.model_validate({"upload_id": "u", "presigned_url": "http://s3/k?X-Amz-Signature=abc"})
    assert "X-Amz-Signature" not in repr(u)


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, mixpeek_magics.client as c; "
        "bad=[m for m in ('httpx','pydantic','IPython','ipywidgets','pandas','mixpeek_magics.local',"
        "'mixpeek_magics.tracking','mixpeek_magics.notebook') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = (
        "import sys; from mixpeek_magics.client import Mixpeek, AsyncMixpeek, errors, models; "
        "m=Mixpeek(api_key='x'*20); [getattr(m, r) for r in dir(m) if not r.startswith('_')]; "
        "print([x for x in ('IPython','ipywidgets','pandas','mixpeek_magics.local','mixpeek_magics.tracking',"
        "'mixpeek_magics.notebook','fastapi') if x in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_response_models_declare_only_contract_fields():
    """Each response model's fields are properties of its schema in the vendored v0.82 contract."""
    import json
    from pathlib import Path

    from mixpeek_magics.client import models as m

    contract = Path(__file__).resolve().parents[2] / "mixpeek_magics" / "local" / "contract" / "mixpeek-v0.82.json"
    schemas = json.loads(contract.read_text())["schemas"]
    pairs = {
        "Task": "TaskResponse",
        "Batch": "BatchModel",
        "BatchProgress": "BatchProgress",
        "FailedObjectRecord": "FailedObjectRecord",
        "SyncConfiguration": "SyncConfigurationModel",
        "SyncJob": "SyncJobModel",
        "Upload": "UploadResponse",
        "ConfirmUploadResult": "ConfirmUploadResponse",
        "BatchUploadResult": "BatchUploadResponse",
        "BatchConfirmResult": "BatchConfirmResponse",
        "Bucket": "BucketResponse",
        "Namespace": "NamespaceModel",
        "BucketObject": "ObjectResponse",
        "Organization": "OrganizationModelResponse",
        "StorageConnection": "StorageConnectionModel",
        "FileFilters": "FileFilters",
    }
    undeclared = {
        cls: sorted(set(getattr(m, cls).model_fields) - set(schemas[name]["properties"])) for cls, name in pairs.items()
    }
    assert {cls: keys for cls, keys in undeclared.items() if keys} == {}
