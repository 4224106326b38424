"""Helpers shared by the list routes."""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import Query

from ..db import Store
from ..deps import NsCtx
from ..errors import APIError, validation_422
from ..filters import FieldRef, compile_filters, doc_resolver


class ListParams:
    """The contract's list query parameters: limit 1..1000, offset, cursor, include_total."""

    def __init__(
        self,
        limit: int | None = Query(None, ge=1, le=1000),
        offset: int | None = Query(None, ge=0, le=10000),
        cursor: str | None = Query(None),
        include_total: bool = Query(False),
    ):
        self.limit = limit
        self.offset = offset
        self.cursor = cursor
        self.include_total = include_total


def search_sql(search: str | None, columns: list[str], case_sensitive: bool = False) -> tuple[str, list[Any]]:
    if not search:
        return "1", []
    if case_sensitive:
        parts = [f"instr({c}, ?) > 0" for c in columns]
        return "(" + " OR ".join(parts) + ")", [search] * len(columns)
    parts = [f"instr(lower({c}), ?) > 0" for c in columns]
    return "(" + " OR ".join(parts) + ")", [search.lower()] * len(columns)


def filters_sql(
    filters: Any, columns: dict[str, FieldRef], json_col: str = "doc", case_sensitive: bool | None = None
) -> tuple[str, list[Any]]:
    if filters and case_sensitive is not None and isinstance(filters, dict) and "case_sensitive" not in filters:
        filters = {**filters, "case_sensitive": case_sensitive}
    return compile_filters(filters, doc_resolver(columns, json_col))


def sort_direction(sort: Any, default_desc: bool) -> bool:
    """Only creation order can be sorted on (rowid keyset); returns True for descending."""
    if not sort:
        return default_desc
    if not isinstance(sort, dict):
        raise validation_422(["body", "sort"], "sort must be an object {field, direction}")
    field = sort.get("field", "created_at")
    if field not in ("created_at", "rowid", "_id"):
        raise validation_422(["body", "sort", "field"], f"the local server sorts by created_at only, not {field!r}")
    direction = str(sort.get("direction", "asc")).lower()
    if direction not in ("asc", "desc"):
        raise validation_422(["body", "sort", "direction"], "direction must be 'asc' or 'desc'")
    return direction == "desc"


def refuse_taken_name(
    db: sqlite3.Connection | Store, kind: str, table: str, id_column: str, ns: NsCtx, name: str
) -> None:
    """409 when a ``kind`` of the namespace already has ``name`` (a name finds the resource again,
    so it is unique per namespace); ``db``: the store, or the connection of the caller's transaction."""
    taken = db.execute(
        f"SELECT {id_column} FROM {table} WHERE namespace_id=? AND name=?", (ns.namespace_id, name)
    ).fetchone()
    if taken is not None:
        raise APIError(
            409,
            f"a {kind} named '{name}' already exists in namespace '{ns.namespace_name}'",
            "ConflictError",
            {id_column: taken[id_column]},
        )
