"""Keyset (rowid) cursor pagination shared by the list routes."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from .errors import APIError

MAX_LIMIT = 1000


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        pad = "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(cursor + pad))
        if not isinstance(data, dict):
            raise ValueError
        return data
    except Exception:
        raise APIError(
            400, f"invalid cursor {cursor[:40]!r}: pass the next_cursor of a previous page", "InvalidCursorError"
        ) from None


@dataclass
class Page:
    rows: list[Any]
    next_cursor: str | None
    total: int | None
    limit: int
    offset: int


def paginate(
    store,
    *,
    table: str,
    select: str,
    where: str,
    params: list[Any],
    limit: int,
    offset: int | None,
    cursor: str | None,
    include_total: bool,
    descending: bool,
    moving: tuple[str, list[Any]] | None = None,
) -> Page:
    """Run a keyset-paginated query on ``table`` (ordered by rowid).

    A cursor remembers the query it came from (table + filters); a cursor
    from another query is rejected. ``moving`` is one more condition that is
    not part of that identity (an expiry cutoff, which moves between pages).
    """
    scope = hashlib.sha1(
        (table + "|" + where + "|" + json.dumps(params, default=str) + ("|d" if descending else "|a")).encode()
    ).hexdigest()[:12]
    order = "DESC" if descending else "ASC"
    cmp = "<" if descending else ">"
    key_params: list[Any] = []
    key_sql = ""
    off = offset or 0
    if cursor:
        data = decode_cursor(cursor)
        if data.get("s") != scope:
            raise APIError(
                400, "cursor does not belong to this listing (filters or resource changed)", "InvalidCursorError"
            )
        key_sql = f" AND rowid {cmp} ?"
        key_params = [int(data["k"])]
        off = 0
        page_offset = int(data.get("o", 0))
    else:
        page_offset = off
    if moving is not None:
        where = f"({where}) AND {moving[0]}"
        params = [*params, *moving[1]]
    sql = (
        f"SELECT rowid AS _rowid, {select} FROM {table} WHERE ({where}){key_sql} "
        f"ORDER BY rowid {order} LIMIT ? OFFSET ?"
    )
    rows = store.query(sql, [*params, *key_params, limit + 1, off])
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        next_cursor = encode_cursor({"k": rows[-1]["_rowid"], "s": scope, "o": page_offset + len(rows)})
    total = None
    if include_total:
        total = store.one(f"SELECT count(*) AS n FROM {table} WHERE ({where})", params)["n"]
    return Page(rows, next_cursor, total, limit, page_offset)


def pagination_body(page: Page) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total": None,
        "page": None,
        "page_size": page.limit,
        "total_pages": None,
        "next_page": None,
        "previous_page": None,
        "next_cursor": page.next_cursor,
    }
    if page.total is not None:
        body["total"] = page.total
        body["page"] = page.offset // page.limit + 1 if page.limit else 1
        body["total_pages"] = math.ceil(page.total / page.limit) if page.limit else 0
    if page.next_cursor:
        body["next_page"] = str(body["page"] + 1) if body["page"] else None
    if page.offset > 0 and body["page"]:
        body["previous_page"] = str(body["page"] - 1)
    return body
