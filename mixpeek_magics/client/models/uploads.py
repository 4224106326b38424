from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel, Status
from mixpeek_magics.client.models.tasks import Task


class Upload(MixpeekModel):
    """``UploadResponse``. ``presigned_url`` is where to PUT the bytes."""

    upload_id: str
    bucket_id: str | None = None
    filename: str | None = None
    content_type: str | None = None
    file_size_bytes: int | None = None
    presigned_url: str | None = None
    presigned_url_expiration: int | None = None
    s3_key: str | None = None
    status: Status = None
    metadata: dict[str, Any] | None = None
    create_object_on_confirm: bool | None = None
    object_metadata: dict[str, Any] | None = None
    blob_property: str | None = None
    blob_type: str | None = None
    file_hash: str | None = None
    skip_duplicates: bool | None = None
    is_duplicate: bool | None = None
    duplicate_of_upload_id: str | None = None
    skipped_unique_key: bool | None = None
    existing_object_id: str | None = None
    message: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    completed_at: str | None = None
    verified_at: str | None = None
    etag: str | None = None
    object_id: str | None = None
    task_id: str | None = None

    # the presigned URL carries a signature: keep it out of reprs
    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            if key == "presigned_url" and value:
                value = value.split("?", 1)[0] + ("?..." if "?" in value else "")
            yield key, value


class ConfirmUploadResult(MixpeekModel):
    """``ConfirmUploadResponse``."""

    upload_id: str
    status: Status = None
    etag: str | None = None
    file_size_bytes: int | None = None
    file_hash: str | None = None
    verified_at: str | None = None
    completed_at: str | None = None
    object_id: str | None = None
    task_id: str | None = None
    message: str | None = None


class BatchUploadResult(MixpeekModel):
    """``BatchUploadResponse``."""

    uploads: list[Upload] = []
    total: int | None = None


class BatchConfirmResult(MixpeekModel):
    """``BatchConfirmResponse``: the confirmations run as a background task."""

    task_id: str
    status: Status = None
    confirmations_count: int | None = None
    task: Task | None = None
    message: str | None = None
