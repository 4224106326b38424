"""Bucket syncs (``/v1/buckets/{bucket}/syncs``), from the v0.82 contract."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BeforeValidator, Field, PrivateAttr

from mixpeek_magics.client.models._base import MixpeekModel, Status

__all__ = ["SyncMode", "FileFilters", "SyncConfiguration", "SyncJob", "SyncTriggerResult", "SYNC_MODES",
           "SYNC_JOB_TERMINAL"]

SYNC_MODES = ("initial_only", "continuous")
#: A list of ids the server may send as null: read as an empty list.
IdList = Annotated[list[str], BeforeValidator(lambda v: [] if v is None else v)]
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

    Runs are jobs (``client.syncs.jobs`` / ``client.syncs.job``):
    ``current_sync_run_id`` is the run in progress, ``sync_run_counter`` counts
    the runs so far; ``task_ids`` / ``batch_ids`` are the processing tasks and
    batches this sync submitted.
    """

    sync_config_id: Optional[str] = None
    bucket_id: Optional[str] = None
    connection_id: Optional[str] = None
    internal_id: Optional[str] = None
    namespace_id: Optional[str] = None
    description: Optional[str] = None
    source_path: Optional[str] = None
    source_type: Optional[str] = None
    file_filters: Optional[FileFilters] = None
    schema_mapping: Optional[dict[str, Any]] = None
    sync_mode: Optional[str] = None
    polling_interval_seconds: Optional[int] = None
    batch_size: Optional[int] = None
    skip_batch_submission: Optional[bool] = None
    skip_duplicates: Optional[bool] = None
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
    locked: Optional[bool] = None
    locked_at: Optional[str] = None
    locked_by_worker_id: Optional[str] = None
    lock_expires_at: Optional[str] = None
    paused: Optional[bool] = None
    pause_reason: Optional[str] = None
    paused_at: Optional[str] = None
    current_sync_run_id: Optional[str] = None
    sync_run_counter: Optional[int] = None
    sync_progress: Optional[dict[str, Any]] = None
    batch_ids: IdList = Field(default_factory=list)
    task_ids: IdList = Field(default_factory=list)
    batches_created: Optional[int] = None

    _run: Any = PrivateAttr(default=None)

    @property
    def running(self) -> bool:
        """A run holds the sync's lock."""
        return bool(self.locked) or bool(self.locked_by_worker_id)

    @property
    def run(self) -> "SyncJob | None":
        """The run (job) ``client.syncs.wait`` followed to its end; None otherwise."""
        return self._run


#: ``SyncJobStatus``: a run that ended is in one of these.
SYNC_JOB_TERMINAL = frozenset({"completed", "failed", "interrupted", "skipped"})


class SyncJob(MixpeekModel):
    """``SyncJobModel``: one run of a sync (``status`` running / completed /
    failed / interrupted / skipped)."""

    sync_job_id: Optional[str] = None
    sync_config_id: Optional[str] = None
    internal_id: Optional[str] = None
    namespace_id: Optional[str] = None
    status: Optional[str] = None
    trigger: Optional[str] = None
    phase: Optional[str] = None
    files_synced: Optional[int] = None
    files_failed: Optional[int] = None
    files_verified: Optional[int] = None
    total_files: Optional[int] = None
    progress_percent: Optional[float] = None
    progress: Optional[dict[str, Any]] = None
    throughput_files_per_min: Optional[float] = None
    error: Optional[str] = None
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    updated_at: Optional[str] = None
    metadata: Optional[dict[str, Any]] = None

    @property
    def finished(self) -> bool:
        return str(self.status or "").lower() in SYNC_JOB_TERMINAL


class SyncTriggerResult(MixpeekModel):
    """Answer of ``POST .../trigger``: ``sync_job_id`` identifies the run."""

    sync_config_id: Optional[str] = None
    sync_job_id: Optional[str] = None
    status: Optional[str] = None
    message: Optional[str] = None
