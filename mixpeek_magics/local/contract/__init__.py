"""The vendored Mixpeek API contract (v0.82), and the local server's strictness generated from it.

``mixpeek-v0.82.json`` (cut by ``scripts/vendor_contract.py``) holds the
operations (method, path, request and response schema names) and the schemas.
From it, for every request that is a contract operation:

* the JSON body is validated against the operation's request schema with
  undeclared keys refused (422 ``extra_forbidden`` naming the accepted keys, in
  the contract's ErrorResponse shape), enums, required fields, types and bounds
  enforced;
* the JSON answer is cut to the fields its response schema declares (errors to
  ErrorResponse) and, when ``LocalSettings.contract_check`` is on, checked
  against that schema with undeclared fields forbidden.

:class:`ContractMiddleware` does both; :class:`ContractStats` counts what it saw.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

from .spec import CONTRACT_FILE, FREE_FORM, Contract, Operation, load_contract
from .stats import TOTALS, ContractStats

__all__ = [
    "CONTRACT_FILE",
    "TOTALS",
    "Contract",
    "ContractMiddleware",
    "ContractStats",
    "Operation",
    "Strict",
    "load_contract",
    "strict",
]


class Strict:
    """Request validation and response projection/checking for one contract."""

    def __init__(self, contract: Contract):
        from .project import Projector
        from .schemas import Validators

        self.contract = contract
        self.validators = Validators(contract)
        self.projector = Projector(contract)

    # -- requests -----------------------------------------------------------------
    def request_errors(self, op: Operation, body: bytes) -> list[dict[str, Any]]:
        """Why ``body`` is refused for ``op`` (empty: accepted)."""
        name = op.request_body
        if name is None:
            return []
        if not body.strip():
            schema = self.contract.schemas.get(name) or {}
            if schema.get("required"):
                return [{"loc": ["body"], "msg": "Field required", "type": "missing"}]
            return []
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return [
                {"loc": ["body", getattr(exc, "pos", 0)], "msg": f"JSON decode error: {exc}", "type": "json_invalid"}
            ]
        return self.validators.errors(name, data, ("body",), formats=False)

    def refusal(self, op: Operation, errors: list[dict[str, Any]]) -> dict[str, Any]:
        """The 422 ErrorResponse of a refused request."""
        parts = []
        details: dict[str, Any] = {"errors": [_public(e) for e in errors]}
        for e in errors[:10]:
            where = ".".join(str(x) for x in e["loc"])
            if e["type"] == "extra_forbidden":
                owner = f" ({e['schema']})" if e.get("schema") else ""
                parts.append(
                    f"unknown field {where!s}{owner}: accepted keys are " + (", ".join(e["accepted_keys"]) or "none")
                )
                details.setdefault("accepted_keys", e["accepted_keys"])
            else:
                parts.append(f"{where}: {e['msg']}")
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        schema = f" ({op.request_body})" if op.request_body and op.request_body not in FREE_FORM else ""
        message = f"Invalid request body for {op.method} {op.path}{schema}: " + "; ".join(parts) + more
        return {
            "success": False,
            "status": 422,
            "error": {"message": message, "type": "ValidationError", "details": details},
        }

    # -- responses ----------------------------------------------------------------
    def project(self, schema: str, data: Any, dropped: Counter) -> Any:
        return self.projector.for_schema(schema)(data, dropped)

    def response_violations(self, op: Operation, status: int, schema: str, data: Any) -> list[dict[str, Any]]:
        out = []
        for e in self.validators.errors(schema, data):
            out.append(
                {
                    "operation": op.key,
                    "status": status,
                    "schema": schema,
                    "path": _json_path(e["loc"]),
                    "type": e["type"],
                    "msg": e["msg"],
                    **({"input": e["input"]} if "input" in e and e["type"] != "extra_forbidden" else {}),
                }
            )
        return out


def _public(e: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in e.items() if k != "schema" and not (k == "input" and v == "...")}


def _json_path(loc: list[Any]) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_lock = threading.Lock()
_strict: Strict | None = None


def strict() -> Strict:
    """The process's :class:`Strict` over the vendored contract (built once)."""
    global _strict
    if _strict is None:
        with _lock:
            if _strict is None:
                _strict = Strict(load_contract())
    return _strict


from .middleware import ContractMiddleware
