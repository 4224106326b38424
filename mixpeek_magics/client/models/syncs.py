"""Bucket syncs (``/v1/buckets/{bucket}/syncs``), from the v0.82 contract."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr

from mixpeek_magics.client.models._base import MixpeekModel, Status

__all__ = [
    "SyncMode",
    "FileFilters",
    "SyncConfiguration",
    "SyncJob",
    "SyncTriggerResult",
    "SYNC_MODES",
    "SYNC_JOB_TERMINAL",
]

SYNC_MODES = ("initial_only", "continuous")
#: A list of ids the server may send as null: read as an empty list.
IdList = Annotated[list[str], BeforeValidator(lambda v: [] if v is None else v)]
SyncMode = Literal["initial_only", "continuous"]


class FileFilters(MixpeekModel):
    """``FileFilters``: all optional, combined with AND; glob patterns."""

    include_patterns: list[str] | None = None
    exclude_patterns: list[str] | None = None
    min_size_bytes: int | None = Field(None, ge=0)
    max_size_bytes: int | None = Field(None, ge=0)
    modified_after: str | None = None
    modified_before: str | None = None
    mime_types: list[str] | None = None


class SyncConfiguration(MixpeekModel):
    """``SyncConfigurationModel``: configuration, status and run metrics.

    Runs are jobs (``client.syncs.jobs`` / ``client.syncs.job``):
    ``current_sync_run_id`` is the run in progress, ``sync_run_counter`` counts
    the runs so far; ``task_ids`` / ``batch_ids`` are the processing tasks and
    batches this sync submitted.
    """

    sync_config_id: str | None = None
    bucket_id: str | None = None
    connection_id: str | None = None
    internal_id: str | None = None
    namespace_id: str | None = None
    description: str | None = None
    source_path: str | None = None
    source_type: str | None = None
    file_filters: FileFilters | None = None
    schema_mapping: dict[str, Any] | None = None
    sync_mode: str | None = None
    polling_interval_seconds: int | None = None
    batch_size: int | None = None
    skip_batch_submission: bool | None = None
    skip_duplicates: bool | None = None
    status: Status = None
    is_active: bool | None = None
    total_files_discovered: int = 0
    total_files_synced: int = 0
    total_files_failed: int = 0
    total_bytes_synced: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    last_sync_at: str | None = None
    next_sync_at: str | None = None
    last_error: str | None = None
    consecutive_failures: int | None = None
    metadata: dict[str, Any] | None = None
    locked: bool | None = None
    locked_at: str | None = None
    locked_by_worker_id: str | None = None
    lock_expires_at: str | None = None
    paused: bool | None = None
    pause_reason: str | None = None
    paused_at: str | None = None
    current_sync_run_id: str | None = None
    sync_run_counter: int | None = None
    sync_progress: dict[str, Any] | None = None
    batch_ids: IdList = Field(default_factory=list)
    task_ids: IdList = Field(default_factory=list)
    batches_created: int | None = None

    _run: Any = PrivateAttr(default=None)

    @property
    def running(self) -> bool:
        """A run holds the sync's lock."""
        return bool(self.locked) or bool(self.locked_by_worker_id)

    @property
    def run(self) -> SyncJob | None:
        """The run (job) ``client.syncs.wait`` followed to its end; None otherwise."""
        run = self._run
        return run if isinstance(run, SyncJob) else None


#: ``SyncJobStatus``: a run that ended is in one of these.
SYNC_JOB_TERMINAL = frozenset({"completed", "failed", "interrupted", "skipped"})


class SyncJob(MixpeekModel):
    """``SyncJobModel``: one run of a sync (``status`` running / completed /
    failed / interrupted / skipped)."""

    sync_job_id: str | None = None
    sync_config_id: str | None = None
    internal_id: str | None = None
    namespace_id: str | None = None
    status: str | None = None
    trigger: str | None = None
    phase: str | None = None
    files_synced: int | None = None
    files_failed: int | None = None
    files_verified: int | None = None
    total_files: int | None = None
    progress_percent: float | None = None
    progress: dict[str, Any] | None = None
    throughput_files_per_min: float | None = None
    error: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    updated_at: str | None = None
    metadata: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return str(self.status or "").lower() in SYNC_JOB_TERMINAL


class SyncTriggerResult(MixpeekModel):
    """Answer of ``POST .../trigger``: ``sync_job_id`` identifies the run."""

    sync_config_id: str | None = None
    sync_job_id: str | None = None
    status: str | None = None
    message: str | None = None
