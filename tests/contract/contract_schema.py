"""The vendored contract, read by the tests on their own (not through the server's code).

``validator(name)`` is a strict Draft 2020-12 validator of schema ``name``:
wherever an object schema declares ``properties`` and says nothing about extra
keys, extra keys are errors (unless one property is literally named
``additional_properties``, the mark of a model that takes extra keys); a
free-form object with ``x-documented-keys`` takes only those keys.
``operation(method, path)`` finds the contract operation of a concrete or
templated path.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

CONTRACT_PATH = Path(__file__).resolve().parents[2] / "mixpeek_magics" / "local" / "contract" / "mixpeek-v0.82.json"
CONTRACT: dict[str, Any] = json.loads(CONTRACT_PATH.read_text())
SCHEMAS: dict[str, Any] = CONTRACT["schemas"]
URI = "urn:tests-contract"


def _close(node: Any) -> Any:
    if isinstance(node, list):
        return [_close(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "properties":
            out[k] = {p: _close(s) for p, s in v.items()}
        elif k in ("items", "anyOf", "oneOf", "allOf", "additionalProperties", "prefixItems"):
            out[k] = _close(v)
        else:
            out[k] = v
    if "x-documented-keys" in node:
        closed = {
            "type": "object",
            "properties": {k: {} for k in node["x-documented-keys"]},
            "additionalProperties": False,
        }
        out["anyOf"] = [
            closed if b.get("type") == "object" and "properties" not in b else b for b in out.get("anyOf", [])
        ]
    if "properties" in out and "additionalProperties" not in out and "additional_properties" not in out["properties"]:
        out["additionalProperties"] = False
    return out


STRICT = {name: _close(s) for name, s in SCHEMAS.items()}
_REGISTRY = Registry().with_resource(URI, DRAFT202012.create_resource({"components": {"schemas": STRICT}}))


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"type": "object"} if name in ("object", "Dict") else {"$ref": f"{URI}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(
        schema, registry=_REGISTRY, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def problems(name: str, instance: Any) -> list[str]:
    """Every error of ``instance`` against schema ``name`` (through anyOf: the branches' errors too)."""
    out = []
    for e in validator(name).iter_errors(instance):
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        best = jsonschema.exceptions.best_match([e]) if e.context else e
        out.append(f"{where}: {best.message}" if best is e else f"{where}: {e.message} ({best.message})")
    return out


def _pattern(path: str) -> re.Pattern:
    parts = [("[^/]+" if s.startswith("{") else re.escape(s)) for s in path.strip("/").split("/")]
    return re.compile("^/" + "/".join(parts) + "$")


_OPS = [
    (op["method"], _pattern(op["path"]), sum(1 for s in op["path"].split("/") if s.startswith("{")), op)
    for op in CONTRACT["operations"]
]


def operation(method: str, path: str) -> dict[str, Any] | None:
    """The contract operation a request path (or route template) is; the fewest parameters win."""
    found = [(n, op) for m, rx, n, op in _OPS if m == method.upper() and rx.match(path)]
    return min(found, key=lambda f: f[0])[1] if found else None


def response_schema(op: dict[str, Any], status: int) -> str | None:
    if status >= 400:
        return "ErrorResponse"
    if str(status) in op["responses"]:
        return op["responses"][str(status)]
    ok = [v for k, v in op["responses"].items() if k.startswith("2")]
    return ok[0] if len(ok) == 1 else None
