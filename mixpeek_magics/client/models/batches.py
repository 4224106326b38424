from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel, Status


class BatchProgress(MixpeekModel):
    """``BatchProgress``: refreshed by the server about every 10 s while the
    batch runs; a batch has none (``progress`` is null) before and after."""

    processed: int | None = None
    total: int | None = None
    percent: float | None = None
    items_per_second: float | None = None
    eta_seconds: float | None = None
    errors: int | None = None
    first_error: str | None = None
    objects_failed: int | None = None
    objects_skipped: int | None = None
    queue_position: int | None = None
    queue_reason: str | None = None

    @property
    def fraction(self) -> float | None:
        """0..1 from ``percent``, else ``processed / total``."""
        if self.percent is not None:
            return max(0.0, min(1.0, float(self.percent) / 100.0))
        if self.total:
            return max(0.0, min(1.0, (self.processed or 0) / self.total))
        return None


class FailedObjectRecord(MixpeekModel):
    """``FailedObjectRecord``: one object a batch could not process (no filename:
    the object id is what the API knows)."""

    object_id: str
    error: str | None = None
    error_type: str | None = None
    timestamp: str | None = None


class Batch(MixpeekModel):
    """``BatchModel`` (the fields this client reads; the rest are kept as extras)."""

    batch_id: str | None = None
    batch_name: str | None = None
    bucket_id: str
    namespace_id: str | None = None
    status: Status = None
    status_message: str | None = None
    object_ids: list[str] | None = None
    collection_ids: list[str] | None = None
    error: str | None = None
    error_summary: dict[str, int] | None = None
    failure_reason: str | None = None
    type: str | None = None  # BUCKET / COLLECTION / ...
    manifest_key: str | None = None
    task_id: str | None = None
    loaded_object_ids: list[str] | None = None
    internal_metadata: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    progress: BatchProgress | None = None
    failed_objects: list[FailedObjectRecord] | None = None
    failed_object_count: int | None = None
    # this batch's own documents (None until the service reported them); queryable once resolvable
    documents_written: int | None = None
    documents_resolvable: bool | None = None
    documents_resolvable_error: str | None = None
    tier_tasks: list[dict[str, Any]] | None = None
    current_tier: int | None = None
    total_tiers: int | None = None
    dag_tiers: list[list[str]] | None = None
    estimated_completion: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def object_count(self) -> int | None:
        return len(self.object_ids) if self.object_ids is not None else None
