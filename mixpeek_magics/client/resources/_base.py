"""What every resource shares: building specs and handing them to the driver.

A resource method is written once. It returns whatever the client's driver
returns: the result itself on :class:`~mixpeek_magics.client.Mixpeek`, an
awaitable on :class:`~mixpeek_magics.client.AsyncMixpeek` (and an iterator /
async iterator for ``iter``).

Adding a resource (connections, syncs, ...) is one module in this package that
defines ``RESOURCE = TheClass``; the clients find it by attribute name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mixpeek_magics.client._core import IDEMPOTENT, UNSAFE, Flow, RequestSpec, call
from mixpeek_magics.client.pagination import Page, check_limit, page_parser, paginate

if TYPE_CHECKING:
    from mixpeek_magics.client._client import BaseClient

__all__ = [
    "Resource",
    "QueryListResource",
    "IDEMPOTENT",
    "UNSAFE",
    "Page",
    "seg",
    "drop_none",
    "model",
    "check_limit",
    "page_parser",
    "paginate",
]


def seg(value: Any) -> str:
    """One URL path segment, percent-encoded (ids and names may contain anything)."""
    text = str(value)
    if not text:
        raise ValueError("an identifier in the URL path must not be empty")
    return quote(text, safe="")


def drop_none(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


def model(cls: Any) -> Callable[[Any], Any]:
    return cls.model_validate


_PLAIN = frozenset((str, int, float, bool, type(None)))


def dump(value: Any) -> Any:
    """Request bodies accept pydantic models or plain dicts."""
    kind = type(value)
    if kind in _PLAIN:  # most values of a body: nothing to convert (a batch of 100 uploads has ~900)
        return value
    if kind is dict:
        return {k: v if type(v) in _PLAIN else dump(v) for k, v in value.items()}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str):  # str enums
        return value.value
    return value


class Resource:
    """Base of every resource; shared by the sync and the async client."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"

    # -- spec helpers ------------------------------------------------------
    @staticmethod
    def _spec(
        method: str,
        path: str,
        *,
        parse: Callable[[Any], Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: str | None = None,
        namespaced: bool = False,
        namespace: str | None = None,
        timeout: float | None = None,
        authenticated: bool = True,
    ) -> RequestSpec:
        if retry is None:
            retry = IDEMPOTENT if method in ("GET", "HEAD", "DELETE", "PUT") else UNSAFE
        return RequestSpec(
            method=method,
            path=path,
            params=drop_none(params or {}) or None,
            json=dump(json) if json is not None else None,
            parse=parse,
            retry=retry,
            namespaced=namespaced,
            namespace=namespace,
            timeout=timeout,
            authenticated=authenticated,
        )

    # -- execution ---------------------------------------------------------
    def _request(self, spec: RequestSpec) -> Any:
        """One request (with retries): the result, or an awaitable of it."""
        return self._client._execute(call(spec, self._client._context()))

    def _run(self, flow: Flow) -> Any:
        """A multi-request flow: its return value, or an awaitable of it."""
        return self._client._execute(flow)

    def _iterate(self, flow: Flow) -> Any:
        """An emitting flow: an iterator, or an async iterator."""
        return self._client._iterate(flow)

    def _paginate(
        self,
        make_spec: Callable[[str | None, int], RequestSpec],
        *,
        limit: int,
        mode: str = "cursor",
        max_items: int | None = None,
    ) -> Any:
        return self._iterate(paginate(make_spec, self._client._context(), limit=limit, mode=mode, max_items=max_items))


class QueryListResource(Resource):
    """A resource listed by ``POST {LIST_PATH}`` with filters, search and sort in the body
    and cursor paging in the query (collections, retrievers)."""

    LIST_PATH: str
    ITEM: Any  # the model of one listed item

    def _list_spec(
        self,
        *,
        filters: Any,
        search: str | None,
        sort: Any,
        limit: int,
        cursor: str | None,
        offset: int | None,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec:
        body = {"filters": filters, "search": search, "sort": sort}
        return self._spec(
            "POST",
            self.LIST_PATH,
            params={"limit": check_limit(limit), "cursor": cursor, "offset": None if cursor else (offset or None)},
            json={k: v for k, v in body.items() if v is not None},
            parse=page_parser(self.ITEM.model_validate),
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
        cursor: str | None = None,
        offset: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One page of items."""
        return self._request(
            self._list_spec(
                filters=filters,
                search=search,
                sort=sort,
                limit=limit,
                cursor=cursor,
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
    ) -> Any:
        """Every item, page after page."""
        check_limit(limit)
        return self._paginate(
            lambda cursor, offset: self._list_spec(
                filters=filters,
                search=search,
                sort=sort,
                limit=limit,
                cursor=cursor,
                offset=offset,
                namespace=namespace,
                timeout=timeout,
            ),
            limit=limit,
            max_items=max_items,
        )
