"""Namespaces: ``/v1/namespaces`` (organization-scoped, no ``X-Namespace``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mixpeek_magics.client._core import RequestSpec
from mixpeek_magics.client.models.namespaces import FeatureExtractor, Namespace
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


class Namespaces(Resource):
    def create(
        self,
        namespace_name: str,
        feature_extractors: Iterable[FeatureExtractor | Mapping[str, Any]] | None = None,
        description: str | None = None,
        *,
        payload_indexes: list[Mapping[str, Any]] | None = None,
        auto_create_indexes: bool | None = None,
        timeout: float | None = None,
    ) -> Namespace:
        """``POST /v1/namespaces``. Only ``namespace_name`` is required;
        ``feature_extractors`` (e.g. ``[{"feature_extractor_name": "text_extractor",
        "version": "v1"}]``) is sent only when given."""
        from mixpeek_magics.client.names import check_name

        check_name(namespace_name, "namespace")
        body = {
            "namespace_name": namespace_name,
            "description": description,
            "feature_extractors": list(feature_extractors or ()) or None,
            "payload_indexes": payload_indexes,
            "auto_create_indexes": auto_create_indexes,
        }
        return self._request(
            self._spec(
                "POST",
                "/v1/namespaces",
                json={k: v for k, v in body.items() if v is not None},
                # names are unique: a repeated create can only be refused (409), never make a second one
                parse=model(Namespace),
                retry=IDEMPOTENT,
                timeout=timeout,
            )
        )

    def get(self, namespace: str, *, timeout: float | None = None) -> Namespace:
        """By id (``ns_...``) or name."""
        return self._request(
            self._spec("GET", f"/v1/namespaces/{seg(namespace)}", parse=model(Namespace), timeout=timeout)
        )

    def delete(self, namespace: str, *, timeout: float | None = None) -> Any:
        return self._request(self._spec("DELETE", f"/v1/namespaces/{seg(namespace)}", parse=decoded, timeout=timeout))

    def _list_spec(
        self,
        *,
        filters: Any,
        search: str | None,
        sort: Any,
        case_sensitive: bool | None,
        limit: int,
        cursor: str | None,
        offset: int | None,
        include_total: bool | None,
        timeout: float | None,
    ) -> RequestSpec[Page[Namespace]]:
        body = {"filters": filters, "sort": sort, "search": search, "case_sensitive": case_sensitive}
        return self._spec(
            "POST",
            "/v1/namespaces/list",
            params={
                "limit": check_limit(limit),
                "cursor": cursor,
                "offset": None if cursor else (offset or None),
                "include_total": include_total,
            },
            json={k: v for k, v in body.items() if v is not None},
            parse=page_parser(Namespace.model_validate),
            retry=IDEMPOTENT,
            timeout=timeout,
        )

    def list(
        self,
        *,
        filters: Any = None,
        search: str | None = None,
        sort: Any = None,
        case_sensitive: bool | None = None,
        limit: int = 100,
        cursor: str | None = None,
        offset: int | None = None,
        include_total: bool | None = None,
        timeout: float | None = None,
    ) -> Page[Namespace]:
        return self._request(
            self._list_spec(
                filters=filters,
                search=search,
                sort=sort,
                case_sensitive=case_sensitive,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=include_total,
                timeout=timeout,
            )
        )

    def iter(
        self,
        *,
        filters: Any = None,
        search: str | None = None,
        sort: Any = None,
        case_sensitive: bool | None = None,
        limit: int = 1000,
        max_items: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[Namespace]:
        """Every namespace, ``limit`` per request, lazily."""
        check_limit(limit)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                filters=filters,
                search=search,
                sort=sort,
                case_sensitive=case_sensitive,
                limit=limit,
                cursor=cursor,
                offset=offset,
                include_total=None,
                timeout=timeout,
            ),
            limit=limit,
            max_items=max_items,
        )
