from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel, Status


class Bucket(MixpeekModel):
    """``BucketResponse``. ``bucket_schema`` is kept as the server's dict
    (``{"properties": {name: {"type": "image", ...}}}``)."""

    bucket_id: str | None = None
    bucket_name: str
    description: str | None = None
    bucket_schema: dict[str, Any] | None = None
    unique_key: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    object_count: int | None = None
    total_size_bytes: int | None = None
    created_at: str | None = None
    updated_at: str | None = None
    last_upload_at: str | None = None
    status: Status = None
    is_locked: bool | None = None
    batch_stats: dict[str, Any] | None = None
    storage_stats: dict[str, Any] | None = None
