from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel, Status


class Blob(MixpeekModel):
    """``BlobModel`` as returned inside an object."""

    blob_id: str | None = None
    property: str
    key_prefix: str | None = None
    type: str  # image / video / text / ... (kept as a string)
    properties: dict[str, Any] | None = None
    details: dict[str, Any] | None = None


class BucketObject(MixpeekModel):
    """``ObjectResponse``."""

    object_id: str | None = None
    bucket_id: str
    key_prefix: str | None = None
    blobs: list[Blob] = []
    source_details: list[dict[str, Any]] = []
    status: Status = None
    error: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class FailedObject(MixpeekModel):
    """``FailedObjectError``: one rejected object of a batch create."""

    object_index: int
    error: str
    error_type: str | None = None


class CreateObjectsBatchResult(MixpeekModel):
    """``CreateObjectsBatchResponse``."""

    succeeded: list[BucketObject] = []
    failed: list[FailedObject] = []
    total_requested: int | None = None
    succeeded_count: int | None = None
    failed_count: int | None = None
