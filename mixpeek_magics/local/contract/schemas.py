"""Strict JSON Schema validators built from the vendored contract, and readable errors.

Strict: an object schema that declares ``properties`` refuses keys it does not
declare (``additionalProperties: false`` is added), except where it says
otherwise (``additionalProperties`` already set) or where one of its properties
is literally named ``additional_properties`` (the SDK's mark of a model that
accepts extra keys). A free-form object carrying ``x-documented-keys`` accepts
exactly those keys.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from .spec import FREE_FORM, Contract

DOC_URI = "urn:mixpeek-contract"
_TYPE_ERRORS = {
    "string": "string_type",
    "integer": "int_type",
    "number": "float_type",
    "boolean": "bool_type",
    "array": "list_type",
    "object": "dict_type",
    "null": "none_required",
}
_TYPE_WORDS = {
    "string": "a valid string",
    "integer": "a valid integer",
    "number": "a valid number",
    "boolean": "a valid boolean",
    "array": "a valid list",
    "object": "a valid object (dictionary)",
    "null": "null",
}
_BOUND_ERRORS = {
    "minimum": ("greater_than_equal", "Input should be greater than or equal to {v}"),
    "maximum": ("less_than_equal", "Input should be less than or equal to {v}"),
    "exclusiveMinimum": ("greater_than", "Input should be greater than {v}"),
    "exclusiveMaximum": ("less_than", "Input should be less than {v}"),
    "minLength": ("string_too_short", "String should have at least {v} characters"),
    "maxLength": ("string_too_long", "String should have at most {v} characters"),
    "minItems": ("too_short", "List should have at least {v} items"),
    "maxItems": ("too_long", "List should have at most {v} items"),
    "pattern": ("string_pattern_mismatch", "String should match pattern '{v}'"),
    "format": ("format", "Input should be a valid {v}"),
    "uniqueItems": ("unique_items", "List items should be unique"),
}


def accepts_extra(node: dict[str, Any]) -> bool:
    """True when an object schema keeps keys it does not declare."""
    props = node.get("properties")
    if props is None:
        return node.get("additionalProperties", True) is not False
    if "additional_properties" in props:
        return True
    return node.get("additionalProperties", False) is True


def strictify(node: Any) -> Any:
    """A copy of ``node`` with undeclared keys refused wherever ``properties`` are declared."""
    if isinstance(node, list):
        return [strictify(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k == "properties":
            out[k] = {name: strictify(sub) for name, sub in v.items()}
        elif k in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems", "not"):
            out[k] = strictify(v)
        else:
            out[k] = copy.deepcopy(v)
    keys = node.get("x-documented-keys")
    if keys is not None:
        documented = {"type": "object", "properties": {k: {} for k in keys}, "additionalProperties": False}
        if "anyOf" in out:
            out["anyOf"] = [documented if _free_object(b) else b for b in out["anyOf"]]
        elif _free_object(out):
            out.update(documented)
    props = out.get("properties")
    if props is not None and "additionalProperties" not in out and "additional_properties" not in props:
        out["additionalProperties"] = False
    return out


def _free_object(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" and "properties" not in node and node.get("additionalProperties", True) is True


class Validators:
    """One strict Draft 2020-12 validator per schema name, built on first use."""

    def __init__(self, contract: Contract):
        self.contract = contract
        self.strict = {name: strictify(s) for name, s in contract.schemas.items()}
        doc = {"components": {"schemas": self.strict}}
        self.registry = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(doc))
        self._by_id = {id(s): name for name, s in self.strict.items()}
        self._cache: dict[tuple[str, bool], Any] = {}
        self._lock = threading.Lock()

    def schema_name_of(self, node: Any) -> str | None:
        return self._by_id.get(id(node))

    def get(self, name: str, formats: bool = True):
        """The validator of schema ``name``; ``formats``: check ``format`` (date-time, ...) too.
        Requests are not format-checked: the service parses dates more leniently than RFC 3339."""
        key = (name, formats)
        v = self._cache.get(key)
        if v is None:
            with self._lock:
                v = self._cache.get(key)
                if v is None:
                    schema = (
                        {"type": "object"} if name in FREE_FORM else {"$ref": f"{DOC_URI}#/components/schemas/{name}"}
                    )
                    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER if formats else None
                    v = jsonschema.Draft202012Validator(schema, registry=self.registry, format_checker=checker)
                    self._cache[key] = v
        return v

    def errors(
        self, name: str, instance: Any, loc_prefix: Iterable[Any] = (), formats: bool = True
    ) -> list[dict[str, Any]]:
        """The pydantic-style errors (loc, msg, type, ...) of ``instance`` against schema ``name``."""
        prefix = list(loc_prefix)
        out: list[dict[str, Any]] = []
        for err in self.get(name, formats).iter_errors(instance):
            for leaf in _leaves(err):
                out.extend(self._describe(leaf, prefix))
        seen: set[tuple] = set()
        unique = []
        for e in out:  # jsonschema reports each missing key once per key, each with the whole list
            key = (tuple(str(x) for x in e["loc"]), e["type"])
            if key not in seen:
                seen.add(key)
                unique.append(e)
        unique.sort(key=lambda e: [str(x) for x in e["loc"]])
        return unique

    def _describe(self, err, prefix: list[Any]) -> list[dict[str, Any]]:
        loc = prefix + list(err.absolute_path)
        kind, value, inst = err.validator, err.validator_value, err.instance
        if kind == "additionalProperties" and isinstance(inst, dict):
            accepted = sorted(err.schema.get("properties") or {})
            owner = self.schema_name_of(err.schema)
            return [
                {
                    "loc": loc + [key],
                    "msg": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                    "input": _small(inst[key]),
                    "accepted_keys": accepted,
                    "schema": owner,
                }
                for key in inst
                if key not in accepted
            ]
        if kind == "required" and isinstance(inst, dict):
            return [
                {"loc": loc + [key], "msg": "Field required", "type": "missing"} for key in value if key not in inst
            ]
        if kind == "enum":
            return [
                {
                    "loc": loc,
                    "msg": "Input should be " + _choices(value),
                    "type": "enum",
                    "input": _small(inst),
                    "expected": list(value),
                }
            ]
        if kind == "const":
            return [{"loc": loc, "msg": f"Input should be {value!r}", "type": "literal_error", "input": _small(inst)}]
        if kind == "type":
            types = [value] if isinstance(value, str) else list(value)
            return [
                {
                    "loc": loc,
                    "msg": "Input should be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types),
                    "type": _TYPE_ERRORS.get(types[0], "type_error"),
                    "input": _small(inst),
                }
            ]
        if kind in _BOUND_ERRORS:
            etype, msg = _BOUND_ERRORS[kind]
            return [{"loc": loc, "msg": msg.format(v=value), "type": etype, "input": _small(inst)}]
        return [{"loc": loc, "msg": err.message, "type": str(kind), "input": _small(inst)}]


def _choices(values: list[Any]) -> str:
    shown = [repr(v) for v in values]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _small(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return "..." if len(repr(value)) > 200 else value
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "..."
    return value


def _root_type_error(e) -> bool:
    return e.validator == "type" and not e.relative_path


def _leaves(err) -> list:
    """The errors that say what is wrong: through anyOf/oneOf, the errors of the
    branch the value was meant for (its type fits; the fewest errors)."""
    if err.validator not in ("anyOf", "oneOf") or not err.context:
        return [err]
    branches: dict[Any, list] = defaultdict(list)
    for sub in err.context:
        branches[sub.relative_schema_path[0]].append(sub)
    fitting = {i: errs for i, errs in branches.items() if not any(_root_type_error(e) for e in errs)}
    if not fitting:
        enums = [e for errs in branches.values() for e in errs if e.validator == "enum" and not e.relative_path]
        if enums:  # an enum field given another type: say which values it takes
            return [enums[0]]
        types: list[str] = []
        for errs in branches.values():
            for e in errs:
                if _root_type_error(e):
                    vv = e.validator_value
                    for t in [vv] if isinstance(vv, str) else vv:
                        if t not in types:
                            types.append(t)
        first = next(e for errs in branches.values() for e in errs if _root_type_error(e))
        first.validator_value = types
        return [first]
    best = min(fitting.values(), key=len)
    out: list = []
    for sub in best:
        out.extend(_leaves(sub))
    return out
