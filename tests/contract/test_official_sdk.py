"""The official Python SDK (PyPI ``mixpeek``, generated from the v0.82 API) reads every answer
the local server gave while driven through all its routes, with its own models."""

from __future__ import annotations

import importlib
import re
from typing import Any

import mixpeek  # a dev dependency: pip install -e ".[dev]"
import pytest

from tests.contract.contract_schema import operation, response_schema

# The answers the product reads most: each must have been read at least once.
MUST_READ = {
    "BatchModel",
    "SyncConfigurationModel",
    "TaskResponse",
    "ListTasksResponse",
    "BucketResponse",
    "NamespaceModel",
    "UploadResponse",
    "ListBatchesResponse",
    "BatchConfirmResponse",
    "ConfirmUploadResponse",
    "ObjectResponse",
    "StorageConnectionModel",
    "SyncListResponse",
    "OrganizationModelResponse",
    "ErrorResponse",
    "ListUploadsResponse",
}


def sdk_model(schema: str) -> Any:
    module = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", schema).lower()
    try:
        return getattr(importlib.import_module(f"mixpeek.models.{module}"), schema)
    except (ImportError, AttributeError):
        return getattr(importlib.import_module("mixpeek.models"), schema)


def test_the_sdk_version_is_the_contracts():
    assert mixpeek.__version__ == "1.3.783"


def test_the_sdk_refuses_what_the_contract_requires():
    # the reading below can fail: a batch without its required fields is refused
    model = sdk_model("BatchModel")
    with pytest.raises(Exception, match="max_node_death_resubmits"):
        model.from_dict({"bucket_id": "bkt_1"})


def test_the_sdk_reads_every_answer(driven):
    read: dict[str, int] = {}
    failures: dict[str, set[str]] = {}
    for ex in driven.exchanges:
        op = operation(ex.method, ex.path)
        if op is None or not ex.body:
            continue
        name = response_schema(op, ex.status)
        if name is None or name in ("object", "Dict"):
            continue
        model = sdk_model(name)
        try:
            model.from_dict(ex.json())
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, or a type error deeper down
            text = " | ".join(ln.strip() for ln in str(exc).splitlines() if "errors.pydantic.dev" not in ln)
            failures.setdefault(f"{name} ({ex.method} {op['path']})", set()).add(f"{type(exc).__name__}: {text}")
            continue
        read[name] = read.get(name, 0) + 1
    report = "\n".join(f"{k}: {sorted(v)}" for k, v in sorted(failures.items()))
    assert not failures, "the official SDK cannot read these answers:\n" + report
    assert set(read) >= MUST_READ, sorted(MUST_READ - set(read))
