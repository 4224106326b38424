"""Cut a JSON answer down to the fields its contract schema declares.

Each schema is compiled once into a function ``f(value, dropped) -> value``
that removes undeclared keys in place (recursively through ``$ref``, ``anyOf``
/ ``oneOf``, ``items`` and nested objects) and counts each removed key in
``dropped`` under ``Schema.field`` (``Schema.prop.field`` inside an inline
object). Objects that accept extra keys keep them; a free-form object with
``x-documented-keys`` keeps only those.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from .schemas import accepts_extra
from .spec import REF_PREFIX, Contract

Fn = Callable[[Any, Counter], Any]
# Properties whose default names the branch of a union (the SDK's models: S3Config.provider_type "s3").
DISCRIMINATORS = frozenset({"type", "provider_type", "source_type", "input_mode", "method", "kind", "stage_id"})
_JSON_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Projector:
    def __init__(self, contract: Contract):
        self.schemas = contract.schemas
        self._named: dict[str, list[Fn | None]] = {}
        self._shapes: dict[int, Any] = {}
        self._lock = threading.RLock()

    def for_schema(self, name: str) -> Fn:
        """The projection of schema ``name`` (identity for free-form bodies)."""
        if name not in self.schemas:
            return _identity
        with self._lock:
            return self._ref(name) or _identity

    # -- compiling ---------------------------------------------------------------
    def _ref(self, name: str) -> Fn | None:
        slot = self._named.get(name)
        if slot is None:
            slot = [None]
            self._named[name] = slot  # before compiling: recursive schemas find it
            slot[0] = self._compile(self.schemas.get(name, {}), name) or _identity
        fn = slot[0]
        if fn is _identity:
            return None
        if fn is not None:
            return fn

        def by_ref(value: Any, dropped: Counter, _slot=slot) -> Any:  # a schema that contains itself
            return _slot[0](value, dropped)

        return by_ref

    def _resolve(self, node: Any, depth: int = 0) -> Any:
        while isinstance(node, dict) and "$ref" in node and depth < 50:
            node = self.schemas.get(node["$ref"][len(REF_PREFIX) :], {})
            depth += 1
        return node

    def types_of(self, node: Any, depth: int = 0) -> frozenset[str] | None:
        """The JSON types a schema accepts (None: any)."""
        node = self._resolve(node)
        if not isinstance(node, dict) or depth > 20:
            return None
        for key in ("anyOf", "oneOf"):
            if key in node:
                found: set[str] = set()
                for b in node[key]:
                    t = self.types_of(b, depth + 1)
                    if t is None:
                        return None
                    found |= t
                return frozenset(found)
        t = node.get("type")
        if isinstance(t, str):
            return frozenset({t, "integer"} if t == "number" else {t})
        if isinstance(t, list):
            return frozenset(t) | ({"integer"} if "number" in t else set())
        if "enum" in node:
            return frozenset(json_type(v) for v in node["enum"])
        if "const" in node:
            return frozenset({json_type(node["const"])})
        if "properties" in node or "additionalProperties" in node:
            return frozenset({"object"})
        if "items" in node:
            return frozenset({"array"})
        return None

    def _compile(self, node: Any, label: str) -> Fn | None:
        if not isinstance(node, dict):
            return None
        if "$ref" in node:
            return self._ref(node["$ref"][len(REF_PREFIX) :])
        documented = node.get("x-documented-keys")
        if documented is not None:
            return _documented(frozenset(documented), label)
        for key in ("anyOf", "oneOf"):
            if key in node:
                return self._union(node[key], label)
        props = node.get("properties")
        if props is not None or node.get("type") == "object":
            return self._object(node, props, label)
        items = node.get("items")
        if isinstance(items, dict):
            inner = self._compile(items, label)
            if inner is None:
                return None

            def array(value: Any, dropped: Counter) -> Any:
                if isinstance(value, list):
                    for i, x in enumerate(value):
                        value[i] = inner(x, dropped)
                return value

            return array
        return None

    def _object(self, node: dict[str, Any], props: dict[str, Any] | None, label: str) -> Fn | None:
        extra = node.get("additionalProperties")
        if props is None:
            if isinstance(extra, dict):  # a map: every value has that schema
                inner = self._compile(extra, label + ".*")
                if inner is None:
                    return None

                def mapping(value: Any, dropped: Counter) -> Any:
                    if isinstance(value, dict):
                        for k in value:
                            value[k] = inner(value[k], dropped)
                    return value

                return mapping
            return None
        keep_extra = accepts_extra(node)
        extra_fn = self._compile(extra, label + ".*") if isinstance(extra, dict) else None
        fields: list[tuple[str, Fn]] = []
        for name, sub in props.items():
            sub_label = label + "." + name
            fn = self._compile(sub, sub_label)
            if fn is not None:
                fields.append((name, fn))
        declared = frozenset(props)
        labels: dict[str, str] = {}

        def obj(value: Any, dropped: Counter) -> Any:
            if not isinstance(value, dict):
                return value
            if not keep_extra:
                undeclared = [k for k in value if k not in declared]
                for k in undeclared:
                    if extra_fn is not None:
                        value[k] = extra_fn(value[k], dropped)
                        continue
                    del value[k]
                    name = labels.get(k)
                    if name is None:
                        name = labels[k] = f"{label}.{k}"
                    dropped[name] += 1
            for k, fn in fields:
                if k in value:
                    value[k] = fn(value[k], dropped)
            return value

        return obj

    def _union(self, branches: list[Any], label: str) -> Fn | None:
        compiled = []
        for b in branches:
            fn = self._compile(b, label)
            compiled.append((self.types_of(b), fn, b))
        if all(fn is None for _, fn, _ in compiled):
            return None

        def union(value: Any, dropped: Counter) -> Any:
            t = json_type(value)
            fits = [c for c in compiled if c[0] is None or t in c[0]]
            if not fits:
                return value
            if len(fits) > 1 and t == "object":
                fits.sort(key=lambda c: self._score(c[2], value), reverse=True)
            fn = fits[0][1]
            return fn(value, dropped) if fn is not None else value

        return union

    # -- which branch of a union an object is --------------------------------------------------
    def _shape(self, node: Any) -> tuple[dict[str, Any], frozenset, dict[str, set], bool] | None:
        node = self._resolve(node)
        if not isinstance(node, dict) or "properties" not in node:
            return None
        shape = self._shapes.get(id(node))
        if shape is None:
            props = node["properties"]
            tags = {k: v for k, v in ((k, self._tag(sub, k)) for k, sub in props.items()) if v is not None}
            shape = (props, frozenset(node.get("required", ())), tags, accepts_extra(node))
            self._shapes[id(node)] = shape
        return shape

    def _tag(self, sub: Any, name: str) -> set | None:
        """The values a discriminating property allows: a constant, a one-value enum, or the
        default of a property named like a discriminator (the SDK's models keep those there)."""
        sub = self._resolve(sub)
        if not isinstance(sub, dict):
            return None
        for node in [sub, *(self._resolve(b) for b in sub.get("anyOf", ()))]:
            if isinstance(node, dict):
                if "const" in node:
                    return {node["const"]}
                if len(node.get("enum") or ()) == 1:
                    return set(node["enum"])
        if name in DISCRIMINATORS and isinstance(sub.get("default"), str):
            return {sub["default"], None}
        return None

    def _fits(self, node: Any, value: Any, depth: int = 0) -> bool:
        """Whether ``value`` can be an instance of ``node``: types, enums, discriminators and
        required keys agree, nested objects too (a few levels down)."""
        node = self._resolve(node)
        if depth > 4 or not isinstance(node, dict):
            return True
        for key in ("anyOf", "oneOf"):
            if key in node:
                return any(self._fits(b, value, depth + 1) for b in node[key])
        types = self.types_of(node)
        if types is not None and json_type(value) not in types:
            return False
        if "enum" in node and value not in node["enum"]:
            return False
        shape = self._shape(node)
        if shape is None or not isinstance(value, dict):
            return True
        props, required, tags, _ = shape
        if not required <= value.keys():
            return False
        if any(k in value and value[k] not in allowed for k, allowed in tags.items()):
            return False
        return all(self._fits(props[k], v, depth + 1) for k, v in value.items() if k in props and isinstance(v, dict))

    def _score(self, node: Any, value: dict) -> tuple:
        shape = self._shape(node)
        if shape is None:
            return (int(self._fits(node, value)), 0, 0)
        props, _, _, extra = shape
        known = sum(1 for k in value if k in props)
        unknown = 0 if extra else len(value) - known
        return (int(self._fits(node, value)), known - unknown, -len(props))


def _documented(keys: frozenset, label: str) -> Fn:
    def documented(value: Any, dropped: Counter) -> Any:
        if isinstance(value, dict):
            for k in [k for k in value if k not in keys]:
                del value[k]
                dropped[f"{label}.{k}"] += 1
        return value

    return documented


def _identity(value: Any, dropped: Counter) -> Any:
    return value
