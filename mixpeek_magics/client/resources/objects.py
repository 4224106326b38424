"""Bucket objects: ``/v1/buckets/{bucket}/objects`` (namespace-scoped)."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mixpeek_magics.client._core import RequestSpec
from mixpeek_magics.client.models.objects import BucketObject, CreateObjectsBatchResult
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT,
    Page,
    Resource,
    check_limit,
    decoded,
    model,
    page_parser,
    seg,
)

MAX_OBJECTS_PER_BATCH = 100


def object_body(
    blobs: Iterable[Mapping[str, Any]],
    key_prefix: str | None = None,
    skip_duplicates: bool = False,
    metadata: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``CreateObjectRequest`` body. Each blob is ``{"property", "type", "data" | "upload_id", ...}``."""
    body: dict[str, Any] = {
        "blobs": [dict(b) if isinstance(b, Mapping) else b for b in blobs],
        "skip_duplicates": bool(skip_duplicates),
    }
    if key_prefix is not None:
        body["key_prefix"] = key_prefix
    if metadata is not None:  # an extra key CreateObjectRequest takes (it has additional_properties)
        body["metadata"] = dict(metadata)
    body.update({k: v for k, v in extra.items() if v is not None})
    # the contract's idempotency key: a create retried after a 5xx or a timeout makes one object
    body.setdefault("idempotency_key", "mm-" + uuid.uuid4().hex)
    return body


class Objects(Resource):
    def create(
        self,
        bucket: str,
        blobs: Iterable[Mapping[str, Any]],
        key_prefix: str | None = None,
        skip_duplicates: bool = False,
        metadata: Mapping[str, Any] | None = None,
        *,
        auto_process: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> BucketObject:
        """``POST /v1/buckets/{bucket}/objects``: one object made of ``blobs``."""
        return self._request(
            self._spec(
                "POST",
                f"/v1/buckets/{seg(bucket)}/objects",
                params={"auto_process": auto_process},
                json=object_body(blobs, key_prefix, skip_duplicates, metadata),
                parse=model(BucketObject),
                retry=IDEMPOTENT,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def create_many(
        self,
        bucket: str,
        objects: Iterable[Mapping[str, Any]],
        *,
        auto_process: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> CreateObjectsBatchResult:
        """``POST /v1/buckets/{bucket}/objects/batch``: up to 100 ``CreateObjectRequest`` bodies
        (dicts with ``blobs``, optional ``key_prefix`` / ``skip_duplicates``)."""
        items = [dict(o) for o in objects]
        for item in items:  # each object's idempotency key makes the whole call safe to retry
            item.setdefault("idempotency_key", "mm-" + uuid.uuid4().hex)
        if not 1 <= len(items) <= MAX_OBJECTS_PER_BATCH:
            raise ValueError(f"create_many takes 1 to {MAX_OBJECTS_PER_BATCH} objects per call (got {len(items)})")
        return self._request(
            self._spec(
                "POST",
                f"/v1/buckets/{seg(bucket)}/objects/batch",
                params={"auto_process": auto_process},
                json={"objects": items},
                parse=model(CreateObjectsBatchResult),
                retry=IDEMPOTENT,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def get(
        self,
        bucket: str,
        object_id: str,
        *,
        return_presigned_urls: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> BucketObject:
        return self._request(
            self._spec(
                "GET",
                f"/v1/buckets/{seg(bucket)}/objects/{seg(object_id)}",
                params={"return_presigned_urls": return_presigned_urls},
                parse=model(BucketObject),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def delete(self, bucket: str, object_id: str, *, namespace: str | None = None, timeout: float | None = None) -> Any:
        return self._request(
            self._spec(
                "DELETE",
                f"/v1/buckets/{seg(bucket)}/objects/{seg(object_id)}",
                parse=decoded,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def _list_spec(
        self,
        bucket: str,
        *,
        filters: Any,
        sort: Any,
        search: str | None,
        select: Any,
        limit: int,
        cursor: str | None,
        offset: int | None,
        include_total: bool | None,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec[Page[BucketObject]]:
        body = {"filters": filters, "sort": sort, "search": search, "select": select}
        return self._spec(
            "POST",
            f"/v1/buckets/{seg(bucket)}/objects/list",
            params={
                "limit": check_limit(limit),
                "cursor": cursor,
                "offset": None if cursor else (offset or None),
                "include_total": include_total,
            },
            json={k: v for k, v in body.items() if v is not None},
            parse=page_parser(BucketObject.model_validate),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def list(
        self,
        bucket: str,
        filters: Any = None,
        *,
        sort: Any = None,
        search: str | None = None,
        select: list[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        offset: int | None = None,
        include_total: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Page[BucketObject]:
        return self._request(
            self._list_spec(
                bucket,
                filters=filters,
                sort=sort,
                search=search,
                select=select,
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
        filters: Any = None,
        *,
        sort: Any = None,
        search: str | None = None,
        select: builtins.list[str] | None = None,
        limit: int = 1000,
        max_items: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[BucketObject]:
        check_limit(limit)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                bucket,
                filters=filters,
                sort=sort,
                search=search,
                select=select,
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
