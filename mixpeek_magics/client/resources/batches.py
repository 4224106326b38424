"""Batches: ``/v1/buckets/{bucket}/batches`` (namespace-scoped).

``create`` a batch of object ids, ``submit`` it to get a processing task.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mixpeek_magics.client import errors
from mixpeek_magics.client._core import Flow, RequestSpec, call
from mixpeek_magics.client.models.batches import Batch
from mixpeek_magics.client.models.common import DeleteResponse
from mixpeek_magics.client.models.tasks import Task
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT,
    Page,
    Resource,
    check_limit,
    json_object,
    model,
    page_parser,
    seg,
)
from mixpeek_magics.client.statuses import status_value


def _ids(object_ids: Iterable[str]) -> list[str]:
    ids = [str(i) for i in object_ids]
    if not ids:
        raise ValueError("object_ids must contain at least one object id")
    return ids


class Batches(Resource):
    def _base(self, bucket: str) -> str:
        return f"/v1/buckets/{seg(bucket)}/batches"

    def create(
        self,
        bucket: str,
        object_ids: Iterable[str],
        metadata: Mapping[str, Any] | None = None,
        *,
        skip_validation: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Batch:
        """``POST .../batches``. ``metadata`` is the batch's ``BatchMetadata`` (``source``,
        ``tags``, ``notes`` or any other key, e.g. provenance); sent only when given."""
        body: dict[str, Any] = {"object_ids": _ids(object_ids)}
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return self._request(
            self._spec(
                "POST",
                self._base(bucket),
                params={"skip_validation": skip_validation},
                json=body,
                # retried on 5xx / timeouts: a repeated create leaves at most a DRAFT batch that nothing submits
                parse=model(Batch),
                retry=IDEMPOTENT,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def add_objects(
        self,
        bucket: str,
        batch_id: str,
        object_ids: Iterable[str],
        *,
        skip_validation: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Batch:
        return self._request(
            self._spec(
                "POST",
                f"{self._base(bucket)}/{seg(batch_id)}/objects",
                params={"skip_validation": skip_validation},
                json={"object_ids": _ids(object_ids)},
                parse=model(Batch),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def submit(
        self,
        bucket: str,
        batch_id: str,
        *,
        include_processing_history: bool = True,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Task:
        """Start processing; returns the task to watch.

        Retried on 5xx / timeouts: a batch is submitted once, so when a retry is refused as
        already submitted (409), the batch's own task is the answer."""
        spec = self._spec(
            "POST",
            f"{self._base(bucket)}/{seg(batch_id)}/submit",
            json={"include_processing_history": include_processing_history},
            parse=model(Task),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )
        get_batch = self._spec(
            "GET",
            f"{self._base(bucket)}/{seg(batch_id)}",
            parse=model(Batch),
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )
        ctx = self._context()

        def flow() -> Flow[Task]:
            tries: list[int] = []
            try:
                return (yield from call(spec, ctx, attempts=tries))
            except errors.ConflictError:
                if len(tries) < 2:  # refused on the first attempt: a real conflict
                    raise
                batch = yield from call(get_batch, ctx)
                if not batch.task_id:
                    raise
                return (
                    yield from call(
                        self._spec("GET", f"/v1/tasks/{seg(batch.task_id)}", parse=model(Task), timeout=timeout), ctx
                    )
                )

        return self._run(flow())

    def get(self, bucket: str, batch_id: str, *, namespace: str | None = None, timeout: float | None = None) -> Batch:
        return self._request(
            self._spec(
                "GET",
                f"{self._base(bucket)}/{seg(batch_id)}",
                parse=model(Batch),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def delete(
        self, bucket: str, batch_id: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> DeleteResponse:
        return self._request(
            self._spec(
                "DELETE",
                f"{self._base(bucket)}/{seg(batch_id)}",
                parse=model(DeleteResponse),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def cancel(self, bucket: str, batch_id: str, *, namespace: str | None = None, timeout: float | None = None) -> Task:
        return self._request(
            self._spec(
                "POST",
                f"{self._base(bucket)}/{seg(batch_id)}/cancel",
                parse=model(Task),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def retry(
        self,
        bucket: str,
        batch_id: str,
        *,
        retry_mode: str = "transient_only",
        tier_nums: list[int] | None = None,
        max_retry_count: int = 3,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Re-run failed documents (``retry_mode`` ``transient_only`` or ``all``)."""
        body: dict[str, Any] = {"retry_mode": retry_mode, "max_retry_count": max_retry_count}
        if tier_nums is not None:
            body["tier_nums"] = list(tier_nums)
        return self._request(
            self._spec(
                "POST",
                f"{self._base(bucket)}/{seg(batch_id)}/retry",
                json=body,
                parse=json_object,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def failed_documents(
        self,
        bucket: str,
        batch_id: str,
        *,
        tier_num: int | None = None,
        collection_id: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        return self._request(
            self._spec(
                "GET",
                f"{self._base(bucket)}/{seg(batch_id)}/failed-documents",
                params={"tier_num": tier_num, "collection_id": collection_id, "limit": limit, "offset": offset},
                parse=json_object,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def _list_spec(
        self, bucket: str, *, status: Any, limit: int, offset: int, namespace: str | None, timeout: float | None
    ) -> RequestSpec[Page[Batch]]:
        # ListBatchesRequest: offset / limit in the body, answer has total_count (no cursor).
        body: dict[str, Any] = {"offset": offset or 0, "limit": check_limit(limit)}
        if status is not None:
            body["status"] = status_value(status)
        return self._spec(
            "POST",
            f"{self._base(bucket)}/list",
            json=body,
            parse=page_parser(Batch.model_validate),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def list(
        self,
        bucket: str,
        *,
        status: Any = None,
        limit: int = 100,
        offset: int = 0,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Page[Batch]:
        return self._request(
            self._list_spec(bucket, status=status, limit=limit, offset=offset, namespace=namespace, timeout=timeout)
        )

    def iter(
        self,
        bucket: str,
        *,
        status: Any = None,
        limit: int = 1000,
        max_items: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Batch]:
        check_limit(limit)
        status_value(status)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                bucket, status=status, limit=limit, offset=offset, namespace=namespace, timeout=timeout
            ),
            limit=limit,
            mode="offset",
            max_items=max_items,
        )

    # -- across buckets ----------------------------------------------------
    def _list_all_spec(
        self,
        *,
        status: Any,
        bucket_id: str | None,
        collection_id: str | None,
        namespace_id: str | None,
        limit: int,
        offset: int | None,
        cursor: str | None,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec[Page[Batch]]:
        body = {
            "status": status_value(status),
            "bucket_id": bucket_id,
            "collection_id": collection_id,
            "namespace_id": namespace_id,
            "limit": check_limit(limit),
            "offset": None if cursor else offset,
            "cursor": cursor,
        }
        # Organization-wide unless narrowed: X-Namespace only when one is asked for.
        return self._spec(
            "POST",
            "/v1/batches/list",
            json={k: v for k, v in body.items() if v is not None},
            parse=page_parser(Batch.model_validate),
            retry=IDEMPOTENT,
            timeout=timeout,
            namespaced=namespace is not None,
            namespace=namespace,
        )

    def list_all(
        self,
        *,
        status: Any = None,
        bucket_id: str | None = None,
        collection_id: str | None = None,
        namespace_id: str | None = None,
        limit: int = 100,
        offset: int | None = None,
        cursor: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Page[Batch]:
        """``POST /v1/batches/list``: batches across the organization's buckets
        (``ListBatchesRequest``), narrowed by one ``status``, a bucket, a
        collection or a namespace (``namespace_id``, or the ``namespace`` header)."""
        return self._request(
            self._list_all_spec(
                status=status,
                bucket_id=bucket_id,
                collection_id=collection_id,
                namespace_id=namespace_id,
                limit=limit,
                offset=offset,
                cursor=cursor,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def iter_all(
        self,
        *,
        status: Any = None,
        bucket_id: str | None = None,
        collection_id: str | None = None,
        namespace_id: str | None = None,
        limit: int = 1000,
        max_items: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Batch]:
        check_limit(limit)
        status_value(status)
        return self._paginate(
            lambda cursor, offset: self._list_all_spec(
                status=status,
                bucket_id=bucket_id,
                collection_id=collection_id,
                namespace_id=namespace_id,
                limit=limit,
                offset=offset or None,
                cursor=None,
                namespace=namespace,
                timeout=timeout,
            ),
            limit=limit,
            mode="offset",
            max_items=max_items,
        )
