"""Bucket syncs: ``/v1/buckets/{bucket}/syncs`` (namespace-scoped).

    sync = client.syncs.create("media", connection_id=conn.connection_id, source_path="raw-bucket/2024/",
                               sync_mode="initial_only", file_filters={"include_patterns": ["*.png"]})
    sync = client.syncs.wait("media", sync.sync_config_id)       # until the run has submitted everything
    tasks = [client.tasks.wait(t) for t in sync.task_ids]         # or client.syncs.tasks("media", id)

The server lists the source, creates the objects and submits them in batches
of ``batch_size``; the file bytes never pass through this client.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from mixpeek_magics.client._core import Context, Flow, RequestSpec, Sleep, call
from mixpeek_magics.client.errors import WaitTimeout
from mixpeek_magics.client.models.syncs import SYNC_MODES, FileFilters, SyncConfiguration, SyncTriggerResult
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT, Page, Resource, check_limit, dump, model, page_parser, seg,
)
from mixpeek_magics.client.statuses import normalize


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


def _finished(sync: SyncConfiguration, run_id: str | None) -> bool:
    last = sync.last_run or {}
    if run_id is not None and last.get("run_id") != run_id:
        return False
    if sync.locked_by_worker_id or last.get("status") == "RUNNING":
        return False
    if run_id is None and str(sync.status) == "PENDING" and not sync.paused:
        return False
    return True


def wait_sync_flow(get_spec: RequestSpec, ctx: Context, *, run_id: str | None, timeout: float | None,
                   poll: float, poll_max: float, include_tasks: bool) -> Flow:
    """Poll until the sync's run (``run_id``, or the current one) has finished; with
    ``include_tasks`` also until the tasks of that run are terminal (local server:
    ``last_run.tasks_finished``). Sans-IO."""
    start = ctx.clock()
    delay = poll
    while True:
        sync: SyncConfiguration = yield from call(get_spec, ctx)
        done = _finished(sync, run_id) or str(sync.status) in ("FAILED", "SUSPENDED")
        if done and include_tasks:
            last = sync.last_run or {}
            pending = set(last.get("task_ids") or []) - set(last.get("tasks_finished") or [])
            done = not pending
        if done:
            return sync
        if timeout is not None:
            remaining = timeout - (ctx.clock() - start)
            if remaining <= 0:
                raise WaitTimeout(f"sync {sync.sync_config_id} is still running after {timeout:g}s "
                                  f"(status {sync.status}); wait again", task=None)
            delay = min(delay, remaining)
        yield Sleep(delay)
        delay = min(delay * 1.5, poll_max)


class Syncs(Resource):
    def _base(self, bucket: str) -> str:
        return f"/v1/buckets/{seg(bucket)}/syncs"

    def create(self, bucket: str, connection_id: str, source_path: str, *, sync_mode: str = "continuous",
               file_filters: Any = None, polling_interval_seconds: int | None = None,
               batch_size: int | None = None, skip_batch_submission: bool | None = None,
               schema_mapping: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
               namespace: str | None = None, timeout: float | None = None) -> SyncConfiguration:
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
        body = {"connection_id": connection_id, "source_path": source_path, "sync_mode": sync_mode,
                "file_filters": _filters(file_filters), "polling_interval_seconds": polling_interval_seconds,
                "batch_size": batch_size, "skip_batch_submission": skip_batch_submission,
                "schema_mapping": dict(schema_mapping) if schema_mapping is not None else None,
                "metadata": dict(metadata) if metadata is not None else None}
        return self._request(self._spec(
            "POST", self._base(bucket), json={k: v for k, v in body.items() if v is not None},
            parse=model(SyncConfiguration), namespaced=True, namespace=namespace, timeout=timeout,
        ))

    def get(self, bucket: str, sync_config_id: str, *, namespace: str | None = None,
            timeout: float | None = None) -> SyncConfiguration:
        return self._request(self._get_spec(bucket, sync_config_id, namespace, timeout))

    def _get_spec(self, bucket: str, sync_config_id: str, namespace: str | None, timeout: float | None):
        return self._spec("GET", f"{self._base(bucket)}/{seg(sync_config_id)}", parse=model(SyncConfiguration),
                          namespaced=True, namespace=namespace, timeout=timeout)

    def update(self, bucket: str, sync_config_id: str, *, description: str | None = None,
               metadata: Mapping[str, Any] | None = None, status: Any = None, is_active: bool | None = None,
               polling_interval_seconds: int | None = None, batch_size: int | None = None,
               schema_mapping: Mapping[str, Any] | None = None, skip_batch_submission: bool | None = None,
               namespace: str | None = None, timeout: float | None = None) -> SyncConfiguration:
        """``PATCH``: only the given fields change (``is_active=False`` pauses, ``True`` resumes)."""
        _check_interval(polling_interval_seconds)
        _check_batch(batch_size)
        body = {"description": description, "metadata": dict(metadata) if metadata is not None else None,
                "status": str(normalize(status)) if status is not None else None, "is_active": is_active,
                "polling_interval_seconds": polling_interval_seconds, "batch_size": batch_size,
                "schema_mapping": dict(schema_mapping) if schema_mapping is not None else None,
                "skip_batch_submission": skip_batch_submission}
        body = {k: v for k, v in body.items() if v is not None}
        if not body:
            raise ValueError("nothing to update")
        return self._request(self._spec("PATCH", f"{self._base(bucket)}/{seg(sync_config_id)}", json=body,
                                        parse=model(SyncConfiguration), retry=IDEMPOTENT, namespaced=True,
                                        namespace=namespace, timeout=timeout))

    def delete(self, bucket: str, sync_config_id: str, *, namespace: str | None = None,
               timeout: float | None = None) -> Any:
        return self._request(self._spec("DELETE", f"{self._base(bucket)}/{seg(sync_config_id)}",
                                        namespaced=True, namespace=namespace, timeout=timeout))

    def pause(self, bucket: str, sync_config_id: str, *, namespace: str | None = None,
              timeout: float | None = None) -> SyncConfiguration:
        return self._request(self._spec("POST", f"{self._base(bucket)}/{seg(sync_config_id)}/pause",
                                        parse=model(SyncConfiguration), retry=IDEMPOTENT, namespaced=True,
                                        namespace=namespace, timeout=timeout))

    def resume(self, bucket: str, sync_config_id: str, *, namespace: str | None = None,
               timeout: float | None = None) -> SyncConfiguration:
        return self._request(self._spec("POST", f"{self._base(bucket)}/{seg(sync_config_id)}/resume",
                                        parse=model(SyncConfiguration), retry=IDEMPOTENT, namespaced=True,
                                        namespace=namespace, timeout=timeout))

    def trigger(self, bucket: str, sync_config_id: str, *, namespace: str | None = None,
                timeout: float | None = None) -> SyncTriggerResult:
        """Run now; ``sync_job_id`` of the answer identifies the run (``wait(..., run_id=)``)."""
        return self._request(self._spec("POST", f"{self._base(bucket)}/{seg(sync_config_id)}/trigger",
                                        parse=model(SyncTriggerResult), namespaced=True, namespace=namespace,
                                        timeout=timeout))

    def wait(self, bucket: str, sync_config_id: str, timeout: float | None = None, *, run_id: str | None = None,
             include_tasks: bool = False, poll: float = 0.5, poll_max: float = 5.0,
             namespace: str | None = None, request_timeout: float | None = None) -> SyncConfiguration:
        """Poll until the run ``run_id`` (default: the current or next one) has
        finished listing and submitting; with ``include_tasks`` also until its
        tasks are terminal. Returns the sync (``task_ids``, ``last_run``, totals)."""
        if poll <= 0 or poll_max < poll:
            raise ValueError("need 0 < poll <= poll_max")
        return self._run(wait_sync_flow(self._get_spec(bucket, sync_config_id, namespace, request_timeout),
                                        self._client._context(), run_id=run_id, timeout=timeout, poll=poll,
                                        poll_max=poll_max, include_tasks=include_tasks))

    def tasks(self, bucket: str, sync_config_id: str, *, status: Any = None, limit: int = 1000,
              timeout: float | None = None) -> Iterator[Any]:
        """Every task this sync produced (``additional_data.sync_config_id``)."""
        return self._client.tasks.iter(status=status, filters={"additional_data.sync_config_id": sync_config_id},
                                       limit=limit, timeout=timeout)

    def _list_spec(self, bucket: str, *, connection_id: str | None, status: Any, is_active: bool | None,
                   limit: int, cursor: str | None, offset: int | None, include_total: bool | None,
                   namespace: str | None, timeout: float | None):
        body = {"connection_id": connection_id, "status": str(normalize(status)) if status is not None else None,
                "is_active": is_active}
        return self._spec(
            "POST", f"{self._base(bucket)}/list",
            params={"limit": check_limit(limit), "cursor": cursor, "offset": None if cursor else (offset or None),
                    "include_total": include_total},
            json={k: v for k, v in body.items() if v is not None}, parse=_list_parser, retry=IDEMPOTENT,
            namespaced=True, namespace=namespace, timeout=timeout,
        )

    def list(self, bucket: str, *, connection_id: str | None = None, status: Any = None,
             is_active: bool | None = None, limit: int = 100, cursor: str | None = None,
             offset: int | None = None, include_total: bool | None = None, namespace: str | None = None,
             timeout: float | None = None) -> Page[SyncConfiguration]:
        return self._request(self._list_spec(bucket, connection_id=connection_id, status=status,
                                             is_active=is_active, limit=limit, cursor=cursor, offset=offset,
                                             include_total=include_total, namespace=namespace, timeout=timeout))

    def iter(self, bucket: str, *, connection_id: str | None = None, status: Any = None,
             is_active: bool | None = None, limit: int = 100, max_items: int | None = None,
             namespace: str | None = None, timeout: float | None = None) -> Iterator[SyncConfiguration]:
        check_limit(limit)
        return self._paginate(
            lambda cursor, offset: self._list_spec(bucket, connection_id=connection_id, status=status,
                                                   is_active=is_active, limit=limit, cursor=cursor, offset=offset,
                                                   include_total=None, namespace=namespace, timeout=timeout),
            limit=limit, max_items=max_items,
        )


RESOURCE = Syncs
