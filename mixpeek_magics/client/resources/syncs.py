"""Bucket syncs: ``/v1/buckets/{bucket}/syncs`` (namespace-scoped).

    sync = client.syncs.create("media", connection_id=conn.connection_id, source_path="raw-bucket/2024/",
                               sync_mode="initial_only", file_filters={"include_patterns": ["*.png"]})
    sync = client.syncs.wait("media", sync.sync_config_id)       # until the run (its job) has ended
    sync = client.syncs.wait("media", sync.sync_config_id, include_tasks=True)  # ... and its tasks
    jobs = client.syncs.jobs("media", sync.sync_config_id)        # the runs, most recent first

The server lists the source, creates the objects and submits them in batches
of ``batch_size``; the file bytes never pass through this client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mixpeek_magics.client._core import Context, Emit, Flow, RequestSpec, Sleep, call
from mixpeek_magics.client.errors import NotFoundError, WaitTimeout
from mixpeek_magics.client.models.syncs import (
    SYNC_MODES,
    FileFilters,
    SyncConfiguration,
    SyncJob,
    SyncTriggerResult,
)
from mixpeek_magics.client.models.tasks import Task
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT,
    Page,
    Resource,
    check_limit,
    decoded,
    dump,
    model,
    page_parser,
    seg,
)
from mixpeek_magics.client.resources.tasks import Tasks
from mixpeek_magics.client.statuses import is_terminal, status_value

SYNC_JOB_STATUSES = ("running", "completed", "failed", "interrupted", "skipped")


def _list_parser(data: Any) -> Page[SyncConfiguration]:
    page = page_parser(SyncConfiguration.model_validate)(data)
    if page.total is None and isinstance(data, dict) and isinstance(data.get("total"), int):
        page.total = data["total"]
    return page


def _check_interval(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 30 <= value <= 900):
        raise ValueError(f"polling_interval_seconds must be a whole number from 30 to 900 (got {value!r})")


def _check_batch(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100):
        raise ValueError(f"batch_size must be a whole number from 1 to 100 (got {value!r})")


def _filters(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, FileFilters):
        return dump(value)
    if isinstance(value, Mapping):
        return dump(FileFilters.model_validate(dict(value)))
    raise TypeError("file_filters must be a dict or a FileFilters model")


_STOPPED = ("FAILED", "SUSPENDED", "CANCELED", "DEACTIVATED", "ARCHIVED")


def _no_run_coming(sync: SyncConfiguration) -> bool:
    """Nothing will start a run by itself: paused, inactive or stopped."""
    return bool(sync.paused) or sync.is_active is False or str(sync.status or "").upper() in _STOPPED


def wait_sync_flow(
    ctx: Context,
    *,
    sync_spec: RequestSpec[SyncConfiguration],
    job_spec: Callable[[str], RequestSpec[SyncJob]],
    latest_job_spec: RequestSpec[Page[SyncJob]],
    tasks_spec: Callable[[list[str]], RequestSpec[Page[Task]]],
    run_id: str | None,
    timeout: float | None,
    poll: float,
    poll_max: float,
    include_tasks: bool,
) -> Flow[SyncConfiguration]:
    """Follow one run of a sync to its end; return the sync (``.run`` is the run's job). Sans-IO.

    The run is ``run_id`` (a trigger's ``sync_job_id``), else the sync's
    ``current_sync_run_id``, else its latest job, else the next run to start.
    Its status and counts come from ``GET .../jobs/{id}`` (SyncJobModel); it
    has ended when the job is completed / failed / interrupted / skipped. With
    ``include_tasks``, also until every task in the sync's ``task_ids`` is
    terminal (one ``tasks/list`` with ``task_id in [...]`` per poll for the
    ones not yet seen terminal; a task the server no longer has counts as
    done: its record expired)."""
    start = ctx.clock()
    delay = poll
    target = run_id
    job: SyncJob | None = None
    done_tasks: set[str] = set()
    sync: SyncConfiguration | None = None
    while True:
        if target is None:
            sync = yield from call(sync_spec, ctx)
            target = sync.current_sync_run_id
            if target is None and (sync.sync_run_counter or 0) > 0:
                page = yield from call(latest_job_spec, ctx)
                target = page.items[0].sync_job_id if page.items else None
        finished = False
        if target is not None:
            try:
                job = yield from call(job_spec(target), ctx)
            except NotFoundError:  # not a job id this server knows: the latest run stands for it
                page = yield from call(latest_job_spec, ctx)
                job = page.items[0] if page.items else None
            finished = job is None or job.finished
            if finished or sync is None:  # read after the run ended: its totals and task_ids are complete
                sync = yield from call(sync_spec, ctx)
        assert sync is not None
        if target is None and _no_run_coming(sync):
            finished = True
        if finished and include_tasks:
            pending = [t for t in sync.task_ids if t not in done_tasks]
            for i in range(0, len(pending), 1000):
                chunk = pending[i : i + 1000]
                tasks = yield from call(tasks_spec(chunk), ctx)
                running = {t.task_id for t in tasks.items if not is_terminal(t.status)}
                done_tasks.update(t for t in chunk if t not in running)
            finished = all(t in done_tasks for t in sync.task_ids)
            if finished:  # the sync's totals move as each task ends: read them after the last one did
                sync = yield from call(sync_spec, ctx)
                finished = all(t in done_tasks for t in sync.task_ids)
        if finished:
            sync._run = job
            return sync
        if timeout is not None:
            remaining = timeout - (ctx.clock() - start)
            if remaining <= 0:
                what = f"run {target}" if target else "its next run"
                raise WaitTimeout(
                    f"sync {sync.sync_config_id} ({what}) is still running after {timeout:g}s "
                    f"(status {sync.status}); wait again",
                    task=None,
                )
            delay = min(delay, remaining)
        yield Sleep(delay)
        delay = min(delay * 1.5, poll_max)


def sync_tasks_flow(
    ctx: Context,
    sync_spec: RequestSpec[SyncConfiguration],
    tasks_spec: Callable[[list[str]], RequestSpec[Page[Task]]],
) -> Flow[None]:
    """Emit the tasks in the sync's ``task_ids`` (1000 per ``tasks/list``). Sans-IO."""
    sync: SyncConfiguration = yield from call(sync_spec, ctx)
    ids = list(dict.fromkeys(sync.task_ids))
    for i in range(0, len(ids), 1000):
        page = yield from call(tasks_spec(ids[i : i + 1000]), ctx)
        for task in page.items:
            yield Emit(task)


class Syncs(Resource):
    def _base(self, bucket: str) -> str:
        return f"/v1/buckets/{seg(bucket)}/syncs"

    def create(
        self,
        bucket: str,
        connection_id: str,
        source_path: str,
        *,
        sync_mode: str = "continuous",
        file_filters: Any = None,
        polling_interval_seconds: int | None = None,
        batch_size: int | None = None,
        skip_batch_submission: bool | None = None,
        schema_mapping: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> SyncConfiguration:
        """``POST /v1/buckets/{bucket}/syncs``. ``source_path`` is ``bucket/prefix`` for
        S3 / Tigris, a folder path (``/Marketing``) or folder id for Google Drive.
        ``sync_mode``: ``initial_only`` (one run) or ``continuous`` (polls every
        ``polling_interval_seconds``, 30-900). Objects are submitted in batches of
        ``batch_size`` (1-100)."""
        if sync_mode not in SYNC_MODES:
            raise ValueError(f"sync_mode must be one of {', '.join(SYNC_MODES)} (got {sync_mode!r})")
        _check_interval(polling_interval_seconds)
        _check_batch(batch_size)
        if not connection_id or not source_path:
            raise ValueError("connection_id and source_path are required")
        body = {
            "connection_id": connection_id,
            "source_path": source_path,
            "sync_mode": sync_mode,
            "file_filters": _filters(file_filters),
            "polling_interval_seconds": polling_interval_seconds,
            "batch_size": batch_size,
            "skip_batch_submission": skip_batch_submission,
            "schema_mapping": dict(schema_mapping) if schema_mapping is not None else None,
            "metadata": dict(metadata) if metadata is not None else None,
        }
        return self._request(
            self._spec(
                "POST",
                self._base(bucket),
                json={k: v for k, v in body.items() if v is not None},
                parse=model(SyncConfiguration),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def get(
        self, bucket: str, sync_config_id: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> SyncConfiguration:
        return self._request(self._get_spec(bucket, sync_config_id, namespace, timeout))

    def _get_spec(
        self, bucket: str, sync_config_id: str, namespace: str | None, timeout: float | None
    ) -> RequestSpec[SyncConfiguration]:
        return self._spec(
            "GET",
            f"{self._base(bucket)}/{seg(sync_config_id)}",
            parse=model(SyncConfiguration),
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def update(
        self,
        bucket: str,
        sync_config_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: Any = None,
        is_active: bool | None = None,
        polling_interval_seconds: int | None = None,
        batch_size: int | None = None,
        schema_mapping: Mapping[str, Any] | None = None,
        skip_batch_submission: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> SyncConfiguration:
        """``PATCH``: only the given fields change (``is_active=False`` pauses, ``True`` resumes)."""
        _check_interval(polling_interval_seconds)
        _check_batch(batch_size)
        body = {
            "description": description,
            "metadata": dict(metadata) if metadata is not None else None,
            "status": status_value(status),
            "is_active": is_active,
            "polling_interval_seconds": polling_interval_seconds,
            "batch_size": batch_size,
            "schema_mapping": dict(schema_mapping) if schema_mapping is not None else None,
            "skip_batch_submission": skip_batch_submission,
        }
        body = {k: v for k, v in body.items() if v is not None}
        if not body:
            raise ValueError("nothing to update")
        return self._request(
            self._spec(
                "PATCH",
                f"{self._base(bucket)}/{seg(sync_config_id)}",
                json=body,
                parse=model(SyncConfiguration),
                retry=IDEMPOTENT,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def delete(
        self, bucket: str, sync_config_id: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> Any:
        return self._request(
            self._spec(
                "DELETE",
                f"{self._base(bucket)}/{seg(sync_config_id)}",
                parse=decoded,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def _switch_spec(
        self, bucket: str, sync_config_id: str, action: str, namespace: str | None, timeout: float | None
    ) -> RequestSpec[SyncConfiguration]:
        """``pause`` / ``resume``: idempotent state switches answering the sync."""
        return self._spec(
            "POST",
            f"{self._base(bucket)}/{seg(sync_config_id)}/{action}",
            parse=model(SyncConfiguration),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def pause(
        self, bucket: str, sync_config_id: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> SyncConfiguration:
        return self._request(self._switch_spec(bucket, sync_config_id, "pause", namespace, timeout))

    def resume(
        self, bucket: str, sync_config_id: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> SyncConfiguration:
        return self._request(self._switch_spec(bucket, sync_config_id, "resume", namespace, timeout))

    def trigger(
        self, bucket: str, sync_config_id: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> SyncTriggerResult:
        """Run now; ``sync_job_id`` of the answer identifies the run (``wait(..., run_id=)``)."""
        return self._request(
            self._spec(
                "POST",
                f"{self._base(bucket)}/{seg(sync_config_id)}/trigger",
                parse=model(SyncTriggerResult),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    # -- runs (jobs) ------------------------------------------------------------------
    def _jobs_spec(
        self,
        bucket: str,
        sync_config_id: str,
        *,
        status: str | None,
        limit: int,
        cursor: str | None,
        offset: int | None,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec[Page[SyncJob]]:
        if status is not None and str(status).lower() not in SYNC_JOB_STATUSES:
            raise ValueError(f"status {status!r} is not a sync job status; valid: {', '.join(SYNC_JOB_STATUSES)}")
        body = {"status": str(status).lower()} if status is not None else {}
        return self._spec(
            "POST",
            f"{self._base(bucket)}/{seg(sync_config_id)}/jobs",
            params={"limit": check_limit(limit), "cursor": cursor, "offset": None if cursor else (offset or None)},
            json=body,
            parse=page_parser(SyncJob.model_validate),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def jobs(
        self,
        bucket: str,
        sync_config_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        offset: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Page[SyncJob]:
        """``POST .../syncs/{id}/jobs``: the sync's runs, most recent first (``status``:
        running / completed / failed / interrupted / skipped)."""
        return self._request(
            self._jobs_spec(
                bucket,
                sync_config_id,
                status=status,
                limit=limit,
                cursor=cursor,
                offset=offset,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def _job_spec(
        self, bucket: str, sync_config_id: str, sync_job_id: str, namespace: str | None, timeout: float | None
    ) -> RequestSpec[SyncJob]:
        return self._spec(
            "GET",
            f"{self._base(bucket)}/{seg(sync_config_id)}/jobs/{seg(sync_job_id)}",
            parse=model(SyncJob),
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def job(
        self,
        bucket: str,
        sync_config_id: str,
        sync_job_id: str,
        *,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> SyncJob:
        """``GET .../syncs/{id}/jobs/{sync_job_id}``: one run's status and file counts."""
        return self._request(self._job_spec(bucket, sync_config_id, sync_job_id, namespace, timeout))

    def _tasks_spec(self, ids: list[str], status: Any, timeout: float | None) -> RequestSpec[Page[Task]]:
        filters = {"AND": [{"field": "task_id", "operator": "in", "value": list(ids)}]}
        return Tasks(self._client)._list_spec(
            status=status,
            task_type=None,
            filters=filters,
            sort=None,
            search=None,
            limit=max(1, len(ids)),
            cursor=None,
            offset=None,
            include_total=None,
            timeout=timeout,
        )

    def wait(
        self,
        bucket: str,
        sync_config_id: str,
        timeout: float | None = None,
        *,
        run_id: str | None = None,
        include_tasks: bool = False,
        poll: float = 0.5,
        poll_max: float = 5.0,
        namespace: str | None = None,
        request_timeout: float | None = None,
    ) -> SyncConfiguration:
        """Poll until the run ``run_id`` (a trigger's ``sync_job_id``; default: the
        current run, else the latest, else the next one to start) has ended, as
        its job says; with ``include_tasks`` also until every task the sync
        submitted is terminal. Returns the sync (``task_ids``, ``batch_ids``,
        totals); ``.run`` is the run's job (``SyncJob``: status, files_synced,
        files_failed, total_files)."""
        if poll <= 0 or poll_max < poll:
            raise ValueError("need 0 < poll <= poll_max")
        return self._run(
            wait_sync_flow(
                self._context(),
                sync_spec=self._get_spec(bucket, sync_config_id, namespace, request_timeout),
                job_spec=lambda job_id: self._job_spec(bucket, sync_config_id, job_id, namespace, request_timeout),
                latest_job_spec=self._jobs_spec(
                    bucket,
                    sync_config_id,
                    status=None,
                    limit=1,
                    cursor=None,
                    offset=None,
                    namespace=namespace,
                    timeout=request_timeout,
                ),
                tasks_spec=lambda ids: self._tasks_spec(ids, None, request_timeout),
                run_id=run_id,
                timeout=timeout,
                poll=poll,
                poll_max=poll_max,
                include_tasks=include_tasks,
            )
        )

    def tasks(
        self,
        bucket: str,
        sync_config_id: str,
        *,
        status: Any = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Task]:
        """Every task this sync submitted (its ``task_ids``; tasks whose record
        expired are not returned), optionally of one ``status``."""
        status_value(status)
        return self._iterate(
            sync_tasks_flow(
                self._context(),
                self._get_spec(bucket, sync_config_id, namespace, timeout),
                lambda ids: self._tasks_spec(ids, status, timeout),
            )
        )

    def _list_spec(
        self,
        bucket: str,
        *,
        connection_id: str | None,
        status: Any,
        is_active: bool | None,
        limit: int,
        cursor: str | None,
        offset: int | None,
        include_total: bool | None,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec[Page[SyncConfiguration]]:
        body = {"connection_id": connection_id, "status": status_value(status), "is_active": is_active}
        return self._spec(
            "POST",
            f"{self._base(bucket)}/list",
            params={
                "limit": check_limit(limit),
                "cursor": cursor,
                "offset": None if cursor else (offset or None),
                "include_total": include_total,
            },
            json={k: v for k, v in body.items() if v is not None},
            parse=_list_parser,
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def list(
        self,
        bucket: str,
        *,
        connection_id: str | None = None,
        status: Any = None,
        is_active: bool | None = None,
        limit: int = 100,
        cursor: str | None = None,
        offset: int | None = None,
        include_total: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Page[SyncConfiguration]:
        return self._request(
            self._list_spec(
                bucket,
                connection_id=connection_id,
                status=status,
                is_active=is_active,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=include_total,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def iter(
        self,
        bucket: str,
        *,
        connection_id: str | None = None,
        status: Any = None,
        is_active: bool | None = None,
        limit: int = 100,
        max_items: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[SyncConfiguration]:
        check_limit(limit)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                bucket,
                connection_id=connection_id,
                status=status,
                is_active=is_active,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=None,
                namespace=namespace,
                timeout=timeout,
            ),
            limit=limit,
            max_items=max_items,
        )
