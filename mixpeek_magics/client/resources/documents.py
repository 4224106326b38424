"""Documents of a collection: ``/v1/collections/{collection}/documents`` (namespace-scoped)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from mixpeek_magics.client._core import RequestSpec
from mixpeek_magics.client.models.documents import Document
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT,
    Page,
    Resource,
    check_limit,
    model,
    page_parser,
    seg,
)


class Documents(Resource):
    def get(
        self,
        collection: str,
        document_id: str,
        *,
        return_presigned_urls: bool | None = None,
        return_vectors: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Document:
        return self._request(
            self._spec(
                "GET",
                f"/v1/collections/{seg(collection)}/documents/{seg(document_id)}",
                params={"return_presigned_urls": return_presigned_urls, "return_vectors": return_vectors},
                parse=model(Document),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def _list_spec(
        self,
        collection: str,
        *,
        filters: Any,
        search: str | None,
        sort: Any,
        select: Sequence[str] | None,
        limit: int,
        cursor: str | None,
        offset: int | None,
        include_total: bool | None,
        return_presigned_urls: bool | None,
        return_vectors: bool | None,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec[Page[Document]]:
        body = {
            "filters": filters,
            "search": search,
            "sort": sort,
            "select": list(select) if select is not None else None,
            "return_presigned_urls": return_presigned_urls,
            "return_vectors": return_vectors,
        }
        return self._spec(
            "POST",
            f"/v1/collections/{seg(collection)}/documents/list",
            params={
                "limit": check_limit(limit),
                "cursor": cursor,
                "offset": None if cursor else (offset or None),
                "include_total": include_total,
            },
            json={k: v for k, v in body.items() if v is not None},
            parse=page_parser(Document.model_validate),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def list(
        self,
        collection: str,
        filters: Any = None,
        *,
        search: str | None = None,
        sort: Any = None,
        select: Sequence[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        offset: int | None = None,
        include_total: bool | None = None,
        return_presigned_urls: bool | None = None,
        return_vectors: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Page[Document]:
        """``POST .../documents/list``. ``filters`` is a LogicalOperator
        (``{"AND": [{"field": "metadata.kind", "operator": "eq", "value": "note"}]}``)."""
        return self._request(
            self._list_spec(
                collection,
                filters=filters,
                search=search,
                sort=sort,
                select=select,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=include_total,
                return_presigned_urls=return_presigned_urls,
                return_vectors=return_vectors,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def iter(
        self,
        collection: str,
        filters: Any = None,
        *,
        search: str | None = None,
        sort: Any = None,
        select: Sequence[str] | None = None,
        limit: int = 1000,
        max_items: int | None = None,
        return_presigned_urls: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Document]:
        check_limit(limit)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                collection,
                filters=filters,
                search=search,
                sort=sort,
                select=select,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=None,
                return_presigned_urls=return_presigned_urls,
                return_vectors=None,
                namespace=namespace,
                timeout=timeout,
            ),
            limit=limit,
            max_items=max_items,
        )
