"""Bucket syncs (``/v1/buckets/{bucket}/syncs``), from the v0.81 contract."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from mixpeek_magics.client.models._base import MixpeekModel, Status

__all__ = ["SyncMode", "FileFilters", "SyncConfiguration", "SyncTriggerResult", "SYNC_MODES"]

SYNC_MODES = ("initial_only", "continuous")
SyncMode = Literal["initial_only", "continuous"]


class FileFilters(MixpeekModel):
    """``FileFilters``: all optional, combined with AND; glob patterns."""

    include_patterns: Optional[list[str]] = None
    exclude_patterns: Optional[list[str]] = None
    min_size_bytes: Optional[int] = Field(None, ge=0)
    max_size_bytes: Optional[int] = Field(None, ge=0)
    modified_after: Optional[str] = None
    modified_before: Optional[str] = None
    mime_types: Optional[list[str]] = None


class SyncConfiguration(MixpeekModel):
    """``SyncConfigurationModel``: configuration, status and run metrics.

    ``task_ids`` are the processing tasks of the batches this sync submitted
    (each task's ``additional_data.sync_config_id`` is this sync's id);
    ``last_run`` (local server) summarizes the latest run.
    """

    sync_config_id: Optional[str] = None
    bucket_id: Optional[str] = None
    connection_id: Optional[str] = None
    internal_id: Optional[str] = None
    namespace_id: Optional[str] = None
    source_path: Optional[str] = None
    file_filters: Optional[FileFilters] = None
    schema_mapping: Optional[dict[str, Any]] = None
    sync_mode: Optional[str] = None
    polling_interval_seconds: Optional[int] = None
    batch_size: Optional[int] = None
    skip_batch_submission: Optional[bool] = None
    status: Status = None
    is_active: Optional[bool] = None
    total_files_discovered: int = 0
    total_files_synced: int = 0
    total_files_failed: int = 0
    total_bytes_synced: int = 0
    created_at: Optional[str] = None
    updated_at: Optional[str] = None
    last_sync_at: Optional[str] = None
    next_sync_at: Optional[str] = None
    last_error: Optional[str] = None
    consecutive_failures: Optional[int] = None
    metadata: Optional[dict[str, Any]] = None
    locked_by_worker_id: Optional[str] = None
    paused: Optional[bool] = None
    pause_reason: Optional[str] = None
    paused_at: Optional[str] = None
    current_sync_run_id: Optional[str] = None
    sync_run_counter: Optional[int] = None
    batch_ids: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)
    batches_created: Optional[int] = None
    last_run: Optional[dict[str, Any]] = None
    failed_files: Optional[list[dict[str, Any]]] = None

    @property
    def running(self) -> bool:
        """A run holds the sync's lock (or has not started yet)."""
        last = self.last_run or {}
        return bool(self.locked_by_worker_id) or last.get("status") == "RUNNING" or \
            (str(self.status) == "PENDING" and not self.paused)


class SyncTriggerResult(MixpeekModel):
    """Answer of ``POST .../trigger``: ``sync_job_id`` identifies the run."""

    sync_config_id: Optional[str] = None
    sync_job_id: Optional[str] = None
    status: Optional[str] = None
    message: Optional[str] = None
