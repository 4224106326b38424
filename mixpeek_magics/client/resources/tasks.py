"""Tasks: ``/v1/tasks`` (organization-scoped) and the polling ``wait`` flow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mixpeek_magics.client._core import Context, Flow, RequestSpec, Sleep, call
from mixpeek_magics.client.errors import WaitTimeout
from mixpeek_magics.client.models.common import DeleteResponse
from mixpeek_magics.client.models.tasks import Task
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT,
    Page,
    Resource,
    check_limit,
    model,
    page_parser,
    seg,
)
from mixpeek_magics.client.statuses import is_terminal, status_value

POLL_INITIAL = 1.0  # documented guidance: exponential backoff from 1 s ...
POLL_MAX = 30.0  # ... to 30 s
POLL_JITTER = 0.2  # +-20 %


def poll_delays(initial: float = POLL_INITIAL, maximum: float = POLL_MAX) -> Iterator[float]:
    """Un-jittered polling intervals: initial, 2x, 4x, ... capped at ``maximum``."""
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * 2, maximum)


def wait_flow(
    get_spec: RequestSpec[Task],
    ctx: Context,
    *,
    timeout: float | None,
    poll: float,
    poll_max: float,
    on_update: Callable[[Task], None] | None = None,
) -> Flow[Task]:
    """Poll ``get_spec`` until the task is terminal; return it. Sans-IO."""
    start = ctx.clock()
    delays = poll_delays(poll, poll_max)
    while True:
        task: Task = yield from call(get_spec, ctx)
        if on_update is not None:
            on_update(task)
        if is_terminal(task.status):
            return task
        delay = next(delays)
        delay = max(0.0, delay * ctx.rand(1.0 - POLL_JITTER, 1.0 + POLL_JITTER))
        if poll_max:
            delay = min(delay, poll_max)
        if timeout is not None:
            remaining = timeout - (ctx.clock() - start)
            if remaining <= 0:
                raise WaitTimeout(
                    f"Task {task.task_id} is still {task.status} after {timeout:g}s; "
                    f"wait again or watch it with %mixpeek_watch",
                    task=task,
                )
            delay = min(delay, remaining)
        yield Sleep(delay)


def _type_value(task_type: Any) -> Any:
    if task_type is None:
        return None
    return str(getattr(task_type, "value", task_type))


class Tasks(Resource):
    def _get_spec(self, task_id: str, timeout: float | None) -> RequestSpec[Task]:
        return self._spec("GET", f"/v1/tasks/{seg(task_id)}", parse=model(Task), timeout=timeout)

    def get(self, task_id: str, *, timeout: float | None = None) -> Task:
        return self._request(self._get_spec(task_id, timeout))

    def kill(self, task_id: str, *, timeout: float | None = None) -> DeleteResponse:
        """``DELETE /v1/tasks/{task_id}``: stop a task (idempotent)."""
        return self._request(
            self._spec("DELETE", f"/v1/tasks/{seg(task_id)}", parse=model(DeleteResponse), timeout=timeout)
        )

    def _list_spec(
        self,
        *,
        status: Any,
        task_type: Any,
        filters: Any,
        sort: Any,
        search: str | None,
        limit: int,
        cursor: str | None,
        offset: int | None,
        include_total: bool | None,
        timeout: float | None,
    ) -> RequestSpec[Page[Task]]:
        body = {
            "status": status_value(status),
            "task_type": _type_value(task_type),
            "filters": filters,
            "sort": sort,
            "search": search,
        }
        return self._spec(
            "POST",
            "/v1/tasks/list",
            params={
                "limit": check_limit(limit),
                "cursor": cursor,
                "offset": None if cursor else (offset or None),
                "include_total": include_total,
            },
            json={k: v for k, v in body.items() if v is not None},
            parse=page_parser(Task.model_validate),
            retry=IDEMPOTENT,
            timeout=timeout,
        )

    def list(
        self,
        status: Any = None,
        task_type: Any = None,
        filters: Any = None,
        limit: int = 100,
        cursor: str | None = None,
        offset: int | None = None,
        *,
        sort: Any = None,
        search: str | None = None,
        include_total: bool | None = None,
        timeout: float | None = None,
    ) -> Page[Task]:
        """``POST /v1/tasks/list``. ``status`` is one ``TaskStatusEnum`` value (a list
        raises ``ValueError``: several statuses go in ``filters`` with operator ``in``)."""
        return self._request(
            self._list_spec(
                status=status,
                task_type=task_type,
                filters=filters,
                sort=sort,
                search=search,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=include_total,
                timeout=timeout,
            )
        )

    def iter(
        self,
        status: Any = None,
        task_type: Any = None,
        filters: Any = None,
        *,
        limit: int = 1000,
        sort: Any = None,
        search: str | None = None,
        max_items: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[Task]:
        """Every matching task, ``limit`` per request, one page in memory at a time."""
        check_limit(limit)
        status_value(status)  # refused now, not at the first page
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                status=status,
                task_type=task_type,
                filters=filters,
                sort=sort,
                search=search,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=None,
                timeout=timeout,
            ),
            limit=limit,
            max_items=max_items,
        )

    def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        *,
        poll: float = POLL_INITIAL,
        poll_max: float = POLL_MAX,
        on_update: Callable[[Task], None] | None = None,
        request_timeout: float | None = None,
    ) -> Task:
        """Poll until the task is COMPLETED / COMPLETED_WITH_ERRORS / FAILED / CANCELED.

        Intervals grow ``poll`` -> ``poll_max`` (1 s -> 30 s by default) with
        +-20 % jitter. ``timeout`` (seconds, None = forever) raises
        :class:`~mixpeek_magics.client.errors.WaitTimeout` carrying the last task seen.
        ``on_update(task)`` is called after every poll.
        """
        if poll <= 0 or poll_max < poll:
            raise ValueError("need 0 < poll <= poll_max")
        return self._run(
            wait_flow(
                self._get_spec(task_id, request_timeout),
                self._context(),
                timeout=timeout,
                poll=poll,
                poll_max=poll_max,
                on_update=on_update,
            )
        )
