"""Regenerate the vendored Mixpeek API contract (mixpeek_magics/local/contract/mixpeek-v0.82.json).

The source is the contract the team keeps beside the project (the official Python
SDK's generated models, PyPI ``mixpeek`` 1.3.783, MIT licence, rebuilt as an
OpenAPI-shaped document). This keeps, as facts only, what the project speaks:
operations (method, path, query parameter names, request and response schema
names) of the resources below, and the schemas they reach (types, enums,
required lists, formats, bounds), without descriptions, titles or examples.

    python scripts/vendor_contract.py PATH/TO/openapi-v0.82-from-sdk.json

Nothing reads the source at run or test time: the vendored file is committed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "mixpeek_magics" / "local" / "contract" / "mixpeek-v0.82.json"

# The API resources (the SDK's tags) the client calls and the local server answers.
TAGS = (
    "health",
    "organizations",
    "organization_connections",
    "namespaces",
    "buckets",
    "bucket_objects",
    "bucket_uploads",
    "bucket_batches",
    "batches",
    "bucket_syncs",
    "tasks",
    "collections",
    "collection_documents",
    "feature_extractors",
    "retrievers",
    "adhoc_retrievers",
)
# Schema keywords that are facts; everything else (prose, titles, examples) stays out.
KEEP = {
    "type",
    "properties",
    "required",
    "items",
    "anyOf",
    "oneOf",
    "allOf",
    "enum",
    "const",
    "$ref",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "default",
    "additionalProperties",
    "discriminator",
    "uniqueItems",
    "prefixItems",
}

# Keys a batch task's additional_data documents (TaskResponse.additional_data's description:
# common fields, then the batch-specific ones). The schema itself says only "object".
TASK_ADDITIONAL_DATA_KEYS = [
    "error",
    "job_id",
    "from_mongodb",
    "batch_id",
    "bucket_id",
    "namespace_id",
    "current_tier",
    "total_tiers",
    "collection_ids",
    "object_count",
    "sample_object_ids",
]


def strip(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "properties":
                out[k] = {name: strip(sub) for name, sub in v.items()}
            elif k in KEEP:
                out[k] = strip(v)
        return out
    if isinstance(node, list):
        return [strip(x) for x in node]
    return node


def refs(node, found):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            found.add(r.rsplit("/", 1)[-1])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def main(source: str) -> None:
    doc = json.loads(Path(source).read_text())
    schemas = doc["components"]["schemas"]
    operations = []
    wanted: set[str] = set()
    for path, methods in sorted(doc["paths"].items()):
        for method, op in sorted(methods.items()):
            if op.get("tag") not in TAGS:
                continue
            responses = {
                code: name for code, name in op.get("responses", {}).items() if name and not code.startswith(("4", "5"))
            }
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "operation_id": op["operationId"],
                    "tag": op["tag"],
                    "query": sorted(set(op.get("query", []))),
                    "request_body": op.get("requestBody"),
                    "responses": responses,
                }
            )
            for name in [op.get("requestBody"), *responses.values()]:
                if name and name in schemas:
                    wanted.add(name)
    wanted.add("ErrorResponse")
    closure: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in closure or name not in schemas:
            continue
        closure.add(name)
        found: set[str] = set()
        refs(schemas[name], found)
        todo.extend(found - closure)
    vendored = {name: strip(schemas[name]) for name in sorted(closure)}
    # The one documented-but-untyped object the server fills: say which keys it may hold.
    vendored["TaskResponse"]["properties"]["additional_data"]["x-documented-keys"] = TASK_ADDITIONAL_DATA_KEYS
    out = {
        "version": "0.82",
        "source": {
            "package": "mixpeek (PyPI) 1.3.783, its generated api/*.py and models/*.py",
            "licence": "MIT",
            "via": "openapi-v0.82-from-sdk.json, rebuilt from that package; cut by scripts/vendor_contract.py",
            "note": "facts only (paths, methods, parameter and field names, types, enums, required)",
        },
        "operations": operations,
        "schemas": vendored,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"{len(operations)} operations, {len(vendored)} schemas -> {OUT}")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not re.search(r"\.json$", sys.argv[1]):
        sys.exit(__doc__)
    main(sys.argv[1])
