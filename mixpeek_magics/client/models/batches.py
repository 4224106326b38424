from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel, Status


class Batch(MixpeekModel):
    """``BatchModel``."""

    batch_id: str | None = None
    bucket_id: str
    status: Status = None
    object_ids: list[str] = []
    collection_ids: list[str] | None = None
    error: str | None = None
    error_summary: dict[str, int] | None = None
    type: str | None = None                  # BUCKET / COLLECTION / ...
    manifest_key: str | None = None
    task_id: str | None = None
    loaded_object_ids: list[str] | None = None
    internal_metadata: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    tier_tasks: list[dict[str, Any]] = []
    current_tier: int | None = None
    total_tiers: int | None = None
    dag_tiers: list[list[str]] | None = None
    created_at: str | None = None
    updated_at: str | None = None
