"""What every resource shares: building specs and handing them to the client's driver.

A resource method is written once, for both clients: it builds its request specs
(or a sans-IO flow) and hands them to the driver, which gives back the result
itself on :class:`~mixpeek_magics.client.Mixpeek` and an awaitable of it on
:class:`~mixpeek_magics.client.AsyncMixpeek` (an iterator / async iterator for
``iter``). The methods are annotated as the sync client runs them;
``resources/_async.py`` (generated from them by ``scripts/gen_async_types.py``)
declares what the async client makes of each one, and ``AsyncMixpeek``'s
resource attributes are typed with it.

Adding a resource: a module in this package with its ``Resource`` subclass, a
``cached_property`` for it on both clients (``client/_client.py``), and
``scripts/gen_async_types.py`` run again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast
from urllib.parse import quote

from pydantic import BaseModel

from mixpeek_magics.client._core import IDEMPOTENT, UNSAFE, Context, Flow, RequestSpec, call
from mixpeek_magics.client.pagination import Page, check_limit, page_parser, paginate

if TYPE_CHECKING:
    import threading

    from mixpeek_magics.client._client import BaseClient

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
ItemT = TypeVar("ItemT", bound=BaseModel)

__all__ = [
    "Resource",
    "QueryListResource",
    "IDEMPOTENT",
    "UNSAFE",
    "Page",
    "seg",
    "drop_none",
    "model",
    "decoded",
    "json_object",
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


def model(cls: type[M]) -> Callable[[Any], M]:
    """The parser of an answer declared as ``cls``."""
    return cls.model_validate


def decoded(data: Any) -> Any:
    """The parser of an answer the contract declares no shape for: the decoded JSON itself."""
    return data


def json_object(data: Any) -> dict[str, Any]:
    """The parser of an answer the contract declares as an open object (``{}`` for an empty body)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


class _Driver(Protocol):
    """What a resource asks of its client, typed as :class:`~mixpeek_magics.client.Mixpeek`
    runs it. ``AsyncMixpeek`` runs the same flows as coroutines (async iterators for
    ``_iterate``); ``resources/_async.py`` types its resources accordingly."""

    def _context(self) -> Context: ...

    def _execute(self, flow: Flow[T]) -> T: ...

    def _iterate(self, flow: Flow[Any]) -> Iterator[Any]: ...

    def _put_files(
        self,
        uploads: Any,
        files: Sequence[tuple[str, Any, str]],
        concurrency: int,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> list[str | None | BaseException]: ...


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
        # The one place the shared class is typed as the sync driver runs it (see _Driver).
        self._driver = cast(_Driver, client)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"

    # -- spec helpers ------------------------------------------------------
    @staticmethod
    def _spec(
        method: str,
        path: str,
        *,
        parse: Callable[[Any], T],
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: str | None = None,
        namespaced: bool = False,
        namespace: str | None = None,
        timeout: float | None = None,
        authenticated: bool = True,
    ) -> RequestSpec[T]:
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
    def _context(self) -> Context:
        return self._driver._context()

    def _request(self, spec: RequestSpec[T]) -> T:
        """One request (with retries): the result, or an awaitable of it."""
        return self._driver._execute(call(spec, self._driver._context()))

    def _run(self, flow: Flow[T]) -> T:
        """A multi-request flow: its return value, or an awaitable of it."""
        return self._driver._execute(flow)

    def _iterate(self, flow: Flow[Any]) -> Iterator[Any]:
        """An emitting flow: an iterator, or an async iterator."""
        return self._driver._iterate(flow)

    def _paginate(
        self,
        make_spec: Callable[[str | None, int], RequestSpec[Page[T]]],
        *,
        limit: int,
        mode: str = "cursor",
        max_items: int | None = None,
    ) -> Iterator[T]:
        """Every item of a list endpoint, one page in memory at a time."""
        flow = paginate(make_spec, self._driver._context(), limit=limit, mode=mode, max_items=max_items)
        return self._iterate(flow)


class QueryListResource(Resource, Generic[ItemT]):
    """A resource listed by ``POST {LIST_PATH}`` with filters, search and sort in the body
    and cursor paging in the query (collections, retrievers)."""

    LIST_PATH: str
    ITEM: type[ItemT]  # the model of one listed item

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
    ) -> RequestSpec[Page[ItemT]]:
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
    ) -> Page[ItemT]:
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
    ) -> Iterator[ItemT]:
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
