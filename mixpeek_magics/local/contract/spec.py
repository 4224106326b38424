"""The vendored contract: its operations and schemas, and which operation a request is."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTRACT_FILE = Path(__file__).with_name("mixpeek-v0.82.json")
REF_PREFIX = "#/components/schemas/"
# Names the contract uses for an untyped body: any JSON object.
FREE_FORM = frozenset({"object", "Dict"})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    tag: str
    request_body: str | None
    responses: dict[str, str]
    query: tuple[str, ...]
    segments: tuple[str | None, ...] = field(repr=False)  # None: a path parameter

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def response_schema(self, status: int) -> str | None:
        """The schema of a ``status`` answer: ErrorResponse for errors, the declared one for
        successes (a success with another 2xx code than the declared one gets that one)."""
        if status >= 400:
            return "ErrorResponse"
        name = self.responses.get(str(status))
        if name is not None:
            return name
        ok = [v for k, v in self.responses.items() if k.startswith("2")]
        return ok[0] if len(ok) == 1 and 200 <= status < 300 else None


def _segments(path: str) -> tuple[str | None, ...]:
    return tuple(None if (s.startswith("{") and s.endswith("}")) else s for s in path.strip("/").split("/"))


class Contract:
    """Operations indexed by method and number of path segments; schemas by name."""

    def __init__(self, doc: dict[str, Any]):
        self.version: str = doc.get("version", "")
        self.schemas: dict[str, Any] = doc["schemas"]
        self.operations: list[Operation] = []
        self._index: dict[tuple[str, int], list[Operation]] = {}
        for o in doc["operations"]:
            op = Operation(
                method=o["method"].upper(),
                path=o["path"],
                operation_id=o["operation_id"],
                tag=o.get("tag", ""),
                request_body=o.get("request_body"),
                responses=dict(o.get("responses") or {}),
                query=tuple(o.get("query") or ()),
                segments=_segments(o["path"]),
            )
            self.operations.append(op)
            self._index.setdefault((op.method, len(op.segments)), []).append(op)
        for ops in self._index.values():
            # Literal segments win over parameters, the leftmost difference first.
            ops.sort(key=lambda op: tuple(0 if s is not None else 1 for s in op.segments))

    def match(self, method: str, path: str) -> Operation | None:
        """The operation a concrete request path is (``/v1/buckets/b1/batches/list`` ->
        ``POST /v1/buckets/{bucket_identifier}/batches/list``), or None."""
        parts = path.strip("/").split("/")
        for op in self._index.get((method.upper(), len(parts)), ()):
            if all((p if s is None else s == p) for s, p in zip(op.segments, parts)):
                return op
        return None

    def match_template(self, method: str, template: str) -> Operation | None:
        """The operation a route template is, whatever its parameters are called
        (``{bucket_identifier}`` and ``{bucket_id}`` are the same shape)."""
        mine = _segments(template)
        for op in self._index.get((method.upper(), len(mine)), ()):
            if op.segments == mine:
                return op
        return None


_lock = threading.Lock()
_contract: Contract | None = None


def load_contract() -> Contract:
    """The vendored contract, read once per process."""
    global _contract
    if _contract is None:
        with _lock:
            if _contract is None:
                _contract = Contract(json.loads(CONTRACT_FILE.read_text(encoding="utf-8")))
    return _contract
