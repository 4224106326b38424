"""Pages of list results and the sans-IO auto-pagination flow.

List endpoints come in two shapes in the contract:

* cursor: ``limit`` / ``cursor`` / ``offset`` query parameters, the answer's
  ``pagination.next_cursor`` points at the next page (tasks, objects,
  namespaces, uploads);
* offset: ``offset`` / ``limit`` in the JSON body and a ``total_count`` in
  the answer (batches, buckets).

:func:`paginate` follows either to exhaustion, one page in memory at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mixpeek_magics.client._core import Context, Emit, Flow, RequestSpec, call

T = TypeVar("T")

MAX_LIMIT = 1000


@dataclass
class Page(Generic[T]):
    """One page of a list endpoint."""

    items: list[T]
    next_cursor: str | None = None
    total: int | None = None
    pagination: dict[str, Any] = field(default_factory=dict)  # the raw ``pagination`` object
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the answer minus ``results``

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]

    @property
    def has_more(self) -> bool:
        return bool(self.next_cursor)


def page_parser(parse_item: Callable[[Any], T], results_key: str = "results") -> Callable[[Any], Page[T]]:
    """Turn a decoded list answer into a :class:`Page`."""

    def parse(data: Any) -> Page[T]:
        if isinstance(data, list):  # tolerate a bare list
            return Page(items=[parse_item(x) for x in data])
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object with {results_key!r}, got {type(data).__name__}")
        raw_items = data.get(results_key) or []
        pagination = data.get("pagination") or {}
        if not isinstance(pagination, dict):
            pagination = {}
        total = data.get("total_count")
        if total is None:
            total = pagination.get("total")
        rest = {k: v for k, v in data.items() if k != results_key}
        return Page(
            items=[parse_item(x) for x in raw_items],
            next_cursor=pagination.get("next_cursor") or None,
            total=total if isinstance(total, int) else None,
            pagination=pagination,
            raw=rest,
        )

    return parse


def check_limit(limit: int, maximum: int = MAX_LIMIT) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1 or limit > maximum:
        raise ValueError(f"limit must be an integer from 1 to {maximum} (got {limit!r})")
    return limit


def paginate(
    make_spec: Callable[[str | None, int], RequestSpec[Page[Any]]],
    ctx: Context,
    *,
    limit: int,
    mode: str = "cursor",
    offset: int = 0,
    max_items: int | None = None,
) -> Flow[int]:
    """Emit every item of a list endpoint, fetching pages lazily.

    ``make_spec(cursor, offset)`` builds the request of one page. In
    ``"cursor"`` mode the next page is ``pagination.next_cursor``; if the
    server gives none but reports a ``total`` beyond what was read, the flow
    falls back to ``offset``. In ``"offset"`` mode it advances ``offset`` by
    the page size until a short page or ``total_count`` is reached. Returns
    how many items it emitted.
    """
    cursor: str | None = None
    seen_cursors: set[str] = set()
    emitted = 0
    while True:
        page: Page[Any] = yield from call(make_spec(cursor, offset), ctx)
        for item in page.items:
            yield Emit(item)
            emitted += 1
            if max_items is not None and emitted >= max_items:
                return emitted
        n = len(page.items)
        if n == 0:
            return emitted
        if mode == "cursor" and page.next_cursor:
            if page.next_cursor in seen_cursors:  # a server bug would loop forever
                return emitted
            seen_cursors.add(page.next_cursor)
            cursor = page.next_cursor
            offset += n
            continue
        if mode == "cursor":
            # No cursor: only continue if the server says there is more.
            if page.total is not None and offset + n < page.total:
                cursor = None
                offset += n
                continue
            return emitted
        # offset mode
        if n < limit:
            return emitted
        if page.total is not None and offset + n >= page.total:
            return emitted
        offset += n
