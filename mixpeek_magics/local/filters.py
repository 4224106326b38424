"""The contract's ``LogicalOperator`` filters compiled to SQLite WHERE clauses.

``{"AND": [...], "OR": [...], "NOT": [...], "case_sensitive": false}`` where each
item is a nested LogicalOperator or a ``FilterCondition`` ``{"field", "operator",
"value"}``. Extra keys are shorthand equality (``{"metadata.title": "x"}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import validation_422

OPERATORS = {
    "eq",
    "ne",
    "gt",
    "lt",
    "gte",
    "lte",
    "in",
    "nin",
    "contains",
    "starts_with",
    "ends_with",
    "regex",
    "exists",
    "is_null",
    "text",
}
MAX_DEPTH = 10
_FIELD_RE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_LOGICAL = ("AND", "OR", "NOT")


@dataclass
class FieldRef:
    """How a filter field maps to SQL.

    ``sql`` is a column expression, or ``json_col`` + ``path`` for a value
    inside a JSON column. ``exact`` fields (ids, enums) ignore case folding;
    ``normalize`` rewrites compared values (e.g. upper-case statuses).
    """

    sql: str | None = None
    json_col: str | None = None
    path: str | None = None
    exact: bool = False
    normalize: Callable[[Any], Any] | None = None

    def expr(self) -> tuple[str, list[Any]]:
        if self.sql is not None:
            return self.sql, []
        return f"json_extract({self.json_col}, ?)", [self.path]


def json_path(dotted: str) -> str:
    return "$" + "".join(f'."{p}"' for p in dotted.split("."))


Resolver = Callable[[str], FieldRef]


def _bad(loc: list[Any], msg: str):
    return validation_422(["body", "filters", *loc], msg)


def compile_filters(filters: Any, resolve: Resolver) -> tuple[str, list[Any]]:
    """Return ``(sql, params)``; ``("1", [])`` when there is nothing to filter."""
    if filters is None or filters == {}:
        return "1", []
    if not isinstance(filters, dict):
        raise _bad([], "filters must be an object (LogicalOperator)")
    return _logical(filters, resolve, [], 0, bool(filters.get("case_sensitive") or False))


def _logical(node: dict, resolve: Resolver, loc: list[Any], depth: int, cs: bool) -> tuple[str, list[Any]]:
    if depth > MAX_DEPTH:
        raise _bad(loc, f"filters nest deeper than {MAX_DEPTH} levels")
    if "case_sensitive" in node and node["case_sensitive"] is not None:
        cs = bool(node["case_sensitive"])
    parts: list[str] = []
    params: list[Any] = []
    for key, value in node.items():
        if key == "case_sensitive":
            continue
        if key in _LOGICAL:
            if value is None:
                continue
            if not isinstance(value, list):
                raise _bad([*loc, key], f"{key} must be a list of conditions")
            subs = [_item(v, resolve, [*loc, key, i], depth + 1, cs) for i, v in enumerate(value)]
            if not subs:
                continue
            sqls = [s for s, _ in subs]
            for _, p in subs:
                params.extend(p)
            if key == "AND":
                parts.append("(" + " AND ".join(sqls) + ")")
            elif key == "OR":
                parts.append("(" + " OR ".join(sqls) + ")")
            else:
                parts.append("NOT (" + " OR ".join(sqls) + ")")
        else:  # shorthand: {"field": value}
            op = "in" if isinstance(value, list) else "eq"
            s, p = _condition({"field": key, "operator": op, "value": value}, resolve, [*loc, key], cs)
            parts.append(s)
            params.extend(p)
    if not parts:
        return "1", []
    return "(" + " AND ".join(parts) + ")", params


def _item(item: Any, resolve: Resolver, loc: list[Any], depth: int, cs: bool) -> tuple[str, list[Any]]:
    if not isinstance(item, dict):
        raise _bad(loc, "each condition must be an object")
    if "field" in item:
        return _condition(item, resolve, loc, cs)
    return _logical(item, resolve, loc, depth, cs)


def _condition(cond: dict, resolve: Resolver, loc: list[Any], cs: bool) -> tuple[str, list[Any]]:
    field = cond.get("field")
    if not isinstance(field, str) or not _FIELD_RE.match(field):
        raise _bad([*loc, "field"], f"invalid filter field {field!r}")
    op = cond.get("operator") or "eq"
    if op not in OPERATORS:
        raise _bad([*loc, "operator"], f"unknown operator {op!r}; expected one of {sorted(OPERATORS)}")
    if "value" not in cond and op not in ("exists", "is_null"):
        raise _bad([*loc, "value"], "value is required")
    value = cond.get("value")
    try:
        ref = resolve(field)
    except KeyError:
        raise _bad([*loc, "field"], f"cannot filter on field {field!r}") from None
    if ref.normalize is not None:
        value = [ref.normalize(v) for v in value] if isinstance(value, list) else ref.normalize(value)
    expr, eparams = ref.expr()
    fold = not cs and not ref.exact

    def scalar(v: Any) -> Any:
        if isinstance(v, bool):
            return 1 if v else 0
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        return v

    def f(e: str, v: Any) -> tuple[str, Any]:
        if fold and isinstance(v, str):
            return f"lower({e})", v.lower()
        return e, scalar(v)

    if op in ("eq", "ne"):
        if value is None:
            return (f"{expr} IS NULL" if op == "eq" else f"{expr} IS NOT NULL"), eparams
        e, v = f(expr, value)
        if op == "eq":
            return f"{e} = ?", [*eparams, v]
        return f"({expr} IS NULL OR {e} != ?)", [*eparams, *eparams, v]
    if op in ("gt", "lt", "gte", "lte"):
        sym = {"gt": ">", "lt": "<", "gte": ">=", "lte": "<="}[op]
        e, v = f(expr, value)
        return f"{e} {sym} ?", [*eparams, v]
    if op in ("in", "nin"):
        if not isinstance(value, list):
            raise _bad([*loc, "value"], f"operator {op!r} needs a list value")
        vals = [scalar(v.lower() if (fold and isinstance(v, str)) else v) for v in value]
        e = f"lower({expr})" if fold else expr
        sql = f"{e} IN (SELECT value FROM json_each(?))"
        if op == "in":
            return sql, [*eparams, json.dumps(vals)]
        return f"({expr} IS NULL OR NOT {sql})", [*eparams, *eparams, json.dumps(vals)]
    if op in ("exists", "is_null"):
        want_null = (op == "is_null") == bool(True if value is None else value)
        return (f"{expr} IS NULL" if want_null else f"{expr} IS NOT NULL"), eparams
    if op in ("contains", "text"):
        if ref.json_col is not None:
            arr = (
                f"EXISTS (SELECT 1 FROM json_each({ref.json_col}, ?) WHERE "
                + ("lower(value) = ?" if fold and isinstance(value, str) else "value = ?")
                + ")"
            )
            s_e, s_v = f(expr, str(value))
            sql = f"(CASE WHEN json_type({ref.json_col}, ?) = 'array' THEN {arr} ELSE instr({s_e}, ?) > 0 END)"
            av = value.lower() if (fold and isinstance(value, str)) else scalar(value)
            return sql, [ref.path, ref.path, av, *eparams, s_v]
        e, v = f(expr, str(value))
        return f"instr({e}, ?) > 0", [*eparams, v]
    if op in ("starts_with", "ends_with"):
        e, v = f(expr, str(value))
        if op == "starts_with":
            return f"substr({e}, 1, length(?)) = ?", [*eparams, v, v]
        return f"substr({e}, -length(?)) = ?", [*eparams, v, v]
    if op == "regex":
        pattern = str(value)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _bad([*loc, "value"], f"invalid regular expression: {exc}") from None
        if not cs:
            pattern = "(?i)" + pattern
        return f"REGEXP(?, {expr})", [pattern, *eparams]
    raise _bad([*loc, "operator"], f"unsupported operator {op!r}")  # pragma: no cover


def doc_resolver(columns: dict[str, FieldRef], json_col: str = "doc", allow_any: bool = True) -> Resolver:
    """Fields listed in ``columns`` map to columns; others to ``json_col`` paths."""

    def resolve(field: str) -> FieldRef:
        if field in columns:
            return columns[field]
        if not allow_any:
            raise KeyError(field)
        return FieldRef(json_col=json_col, path=json_path(field))

    return resolve
