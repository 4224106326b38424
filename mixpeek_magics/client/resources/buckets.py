"""Buckets: ``/v1/buckets`` (namespace-scoped)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mixpeek_magics.client._core import RequestSpec
from mixpeek_magics.client.models.buckets import Bucket
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


class Buckets(Resource):
    def create(
        self,
        bucket_name: str,
        bucket_schema: Mapping[str, Any],
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        unique_key: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Bucket:
        """``bucket_schema`` is ``{"properties": {"image": {"type": "image"}, ...}}``; a bare
        ``{"image": {"type": "image"}}`` mapping is wrapped for you."""
        from mixpeek_magics.client.names import check_name

        check_name(bucket_name, "bucket")
        schema = dict(bucket_schema)
        if "properties" not in schema:
            schema = {"properties": schema}
        body = {
            "bucket_name": bucket_name,
            "bucket_schema": schema,
            "description": description,
            "metadata": dict(metadata) if metadata is not None else None,
            "unique_key": unique_key,
        }
        return self._request(
            self._spec(
                "POST",
                "/v1/buckets",
                json={k: v for k, v in body.items() if v is not None},
                # names are unique: a repeated create can only be refused (409), never make a second bucket
                parse=model(Bucket),
                retry=IDEMPOTENT,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def get(self, bucket: str, *, namespace: str | None = None, timeout: float | None = None) -> Bucket:
        """By id (``bkt_...``) or name."""
        return self._request(
            self._spec(
                "GET",
                f"/v1/buckets/{seg(bucket)}",
                parse=model(Bucket),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def delete(self, bucket: str, *, namespace: str | None = None, timeout: float | None = None) -> Any:
        return self._request(
            self._spec(
                "DELETE",
                f"/v1/buckets/{seg(bucket)}",
                parse=decoded,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def _list_spec(
        self,
        *,
        filters: Any,
        search: str | None,
        sort: Any,
        limit: int,
        offset: int,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec[Page[Bucket]]:
        # ListBucketsRequest carries limit / offset in the body; the answer has total_count.
        body = {"filters": filters, "search": search, "sort": sort, "limit": check_limit(limit), "offset": offset or 0}
        return self._spec(
            "POST",
            "/v1/buckets/list",
            json={k: v for k, v in body.items() if v is not None},
            parse=page_parser(Bucket.model_validate),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def list(
        self,
        *,
        filters: Any = None,
        search: str | None = None,
        sort: Any = None,
        limit: int = 100,
        offset: int = 0,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Page[Bucket]:
        return self._request(
            self._list_spec(
                filters=filters,
                search=search,
                sort=sort,
                limit=limit,
                offset=offset,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def iter(
        self,
        *,
        filters: Any = None,
        search: str | None = None,
        sort: Any = None,
        limit: int = 1000,
        max_items: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Bucket]:
        check_limit(limit)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                filters=filters,
                search=search,
                sort=sort,
                limit=limit,
                offset=offset,
                namespace=namespace,
                timeout=timeout,
            ),
            limit=limit,
            mode="offset",
            max_items=max_items,
        )
