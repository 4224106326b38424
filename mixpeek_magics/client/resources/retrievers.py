"""Retrievers: ``/v1/retrievers`` (namespace-scoped), their execution, ad hoc execution
(``POST /v1/retrievers/execute``) and :meth:`Retrievers.search`, a one-call search of a collection.

Stages are plain mappings (``StageConfigInput``); :func:`feature_search_stage` and
:func:`attribute_filter_stage` build the two most common ones.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mixpeek_magics.client._core import Context, Flow, RequestSpec, call
from mixpeek_magics.client.models.collections import Collection
from mixpeek_magics.client.models.retrievers import Retriever, RetrieverResults
from mixpeek_magics.client.resources._base import (
    IDEMPOTENT,
    QueryListResource,
    decoded,
    model,
    seg,
)

MAX_QUERY_IMAGE_BYTES = 20 * 1024 * 1024


def feature_search_stage(
    feature_uri: str,
    *,
    text: str | None = None,
    content: str | None = None,
    document: tuple[str, str] | None = None,
    vector: Sequence[float] | None = None,
    top_k: int = 100,
    final_top_k: int = 25,
    stage_name: str = "feature_search",
    collection_identifiers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A ``feature_search`` stage with one search: by ``text``, by ``content`` (a data URI, base64 or
    URL of an image or text), by an existing ``document`` (``(collection_id, document_id)``) or by a
    raw ``vector``. Values may be templates such as ``"{{INPUT.query}}"``."""
    given = [x is not None for x in (text, content, document, vector)]
    if sum(given) != 1:
        raise ValueError("give exactly one of text=, content=, document=, vector=")
    if text is not None:
        query: dict[str, Any] = {"input_mode": "text", "value": text}
    elif content is not None:
        query = {"input_mode": "content", "value": content}
    elif document is not None:
        query = {"input_mode": "document", "document_ref": {"collection_id": document[0], "document_id": document[1]}}
    else:
        query = {"input_mode": "vector", "value": [float(v) for v in vector or ()]}
    search: dict[str, Any] = {"feature_uri": feature_uri, "query": query, "top_k": int(top_k)}
    if collection_identifiers is not None:
        search["collection_identifiers"] = list(collection_identifiers)
    return {
        "stage_name": stage_name,
        "stage_type": "filter",
        "config": {"stage_id": "feature_search", "parameters": {"searches": [search], "final_top_k": int(final_top_k)}},
    }


def attribute_filter_stage(
    field: str,
    value: Any,
    operator: str = "eq",
    *,
    stage_name: str = "attribute_filter",
    case_insensitive: bool | None = None,
) -> dict[str, Any]:
    """An ``attribute_filter`` stage keeping the documents whose ``field`` (a dotted path such as
    ``metadata.kind``) matches ``value``."""
    params: dict[str, Any] = {"field": field, "operator": operator, "value": value}
    if case_insensitive is not None:
        params["case_insensitive"] = bool(case_insensitive)
    return {
        "stage_name": stage_name,
        "stage_type": "filter",
        "config": {"stage_id": "attribute_filter", "parameters": params},
    }


def data_uri(source: str | os.PathLike[str] | bytes, mime_type: str | None = None) -> str:
    """A file (path) or bytes as a ``data:`` URI, the form a ``content`` query takes most reliably."""
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
        mime = mime_type or "application/octet-stream"
    else:
        path = os.fspath(source)
        size = os.path.getsize(path)
        if size > MAX_QUERY_IMAGE_BYTES:
            raise ValueError(f"{path}: {size} bytes is too large for a query (at most {MAX_QUERY_IMAGE_BYTES})")
        with open(path, "rb") as fh:
            raw = fh.read()
        mime = mime_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def _filter_stages(filters: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    stages = []
    for i, (name, value) in enumerate((filters or {}).items()):
        op = "in" if isinstance(value, (list, tuple)) else "eq"
        stages.append(
            attribute_filter_stage(
                name,
                list(value) if op == "in" else value,
                op,
                stage_name="attribute_filter" if i == 0 else f"attribute_filter_{i}",
            )
        )
    return stages


def _search_flow(
    get_spec: RequestSpec[Collection],
    make_exec_spec: Callable[[Collection], RequestSpec[RetrieverResults]],
    ctx: Context,
) -> Flow[RetrieverResults]:
    collection: Collection = yield from call(get_spec, ctx)
    return (yield from call(make_exec_spec(collection), ctx))


class Retrievers(QueryListResource[Retriever]):
    LIST_PATH = "/v1/retrievers/list"
    ITEM = Retriever

    def create(
        self,
        retriever_name: str,
        stages: Sequence[Mapping[str, Any]],
        collection_identifiers: Sequence[str] | None = None,
        description: str | None = None,
        *,
        input_schema: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Retriever:
        """``POST /v1/retrievers``. ``input_schema`` declares the ``{{INPUT.*}}`` values an execution
        takes, e.g. ``{"query": {"type": "text", "required": True}}``."""
        body: dict[str, Any] = {"retriever_name": retriever_name, "stages": [dict(s) for s in stages]}
        optional = {
            "collection_identifiers": list(collection_identifiers) if collection_identifiers else None,
            "description": description,
            "input_schema": dict(input_schema) if input_schema else None,
            "metadata": dict(metadata) if metadata is not None else None,
            "tags": list(tags) if tags is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._request(
            self._spec(
                "POST",
                "/v1/retrievers",
                json=body,
                parse=model(Retriever),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def get(self, retriever: str, *, namespace: str | None = None, timeout: float | None = None) -> Retriever:
        return self._request(
            self._spec(
                "GET",
                f"/v1/retrievers/{seg(retriever)}",
                parse=model(Retriever),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def delete(self, retriever: str, *, namespace: str | None = None, timeout: float | None = None) -> Any:
        return self._request(
            self._spec(
                "DELETE",
                f"/v1/retrievers/{seg(retriever)}",
                parse=decoded,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def execute(
        self,
        retriever: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        filters: Any = None,
        limit: int | None = None,
        return_presigned_urls: bool | None = None,
        return_vectors: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> RetrieverResults:
        """``POST /v1/retrievers/{retriever}/execute`` with the values of its ``{{INPUT.*}}``."""
        body: dict[str, Any] = {"inputs": dict(inputs or {})}
        optional = {
            "filters": filters,
            "limit": limit,
            "return_presigned_urls": return_presigned_urls,
            "return_vectors": return_vectors,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        # Executing reads only: safe to retry like a GET.
        return self._request(
            self._spec(
                "POST",
                f"/v1/retrievers/{seg(retriever)}/execute",
                json=body,
                parse=model(RetrieverResults),
                retry=IDEMPOTENT,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def _adhoc_spec(
        self,
        stages: Sequence[Mapping[str, Any]],
        collection_identifiers: Sequence[str] | None,
        inputs: Mapping[str, Any] | None,
        filters: Any,
        limit: int | None,
        return_presigned_urls: bool | None,
        return_vectors: bool | None,
        namespace: str | None,
        timeout: float | None,
    ) -> RequestSpec[RetrieverResults]:
        body: dict[str, Any] = {"stages": [dict(s) for s in stages]}
        optional = {
            "collection_identifiers": list(collection_identifiers) if collection_identifiers else None,
            "inputs": dict(inputs) if inputs is not None else None,
            "filters": filters,
            "limit": limit,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._spec(
            "POST",
            "/v1/retrievers/execute",
            json=body,
            params={"return_presigned_urls": return_presigned_urls, "return_vectors": return_vectors},
            parse=model(RetrieverResults),
            retry=IDEMPOTENT,
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )

    def execute_adhoc(
        self,
        stages: Sequence[Mapping[str, Any]],
        collection_identifiers: Sequence[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        filters: Any = None,
        limit: int | None = None,
        return_presigned_urls: bool | None = None,
        return_vectors: bool | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> RetrieverResults:
        """``POST /v1/retrievers/execute``: run stages without saving a retriever."""
        return self._request(
            self._adhoc_spec(
                stages,
                collection_identifiers,
                inputs,
                filters,
                limit,
                return_presigned_urls,
                return_vectors,
                namespace,
                timeout,
            )
        )

    def search(
        self,
        collection: str,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | bytes | None = None,
        document_id: str | None = None,
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        feature_uri: str | None = None,
        return_presigned_urls: bool | None = True,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> RetrieverResults:
        """Search one collection by ``text``, by example (``image``: a path or bytes) or by one of its
        documents (``document_id``): an ad hoc ``feature_search`` on the collection's vector index,
        then one ``attribute_filter`` per ``filters`` item (``{"metadata.kind": "note"}``).
        The top ``k`` documents, best first, each with its ``score``."""
        if sum(x is not None for x in (text, image, document_id)) != 1:
            raise ValueError("give exactly one of text, image=, document_id=")
        if not isinstance(k, int) or not 1 <= k <= 1000:
            raise ValueError(f"k must be an integer from 1 to 1000 (got {k!r})")
        content = data_uri(image) if image is not None else None
        extra = _filter_stages(filters)

        def exec_spec(col: Collection) -> RequestSpec[RetrieverResults]:
            uri = feature_uri or col.feature_uris[0]
            query: dict[str, Any] = (
                {"text": text}
                if text is not None
                else (
                    {"content": content}
                    if content is not None
                    else {"document": (col.collection_id or collection, document_id)}
                )
            )
            # with filters after it, the search keeps more candidates for them to choose from
            pool = k if not extra else max(k * 10, 100)
            stages = [feature_search_stage(uri, top_k=max(pool, 100), final_top_k=pool, **query), *extra]
            return self._adhoc_spec(
                stages,
                [col.collection_id or collection],
                None,
                None,
                k,
                return_presigned_urls,
                None,
                namespace,
                timeout,
            )

        get_spec = self._spec(
            "GET",
            f"/v1/collections/{seg(collection)}",
            parse=model(Collection),
            namespaced=True,
            namespace=namespace,
            timeout=timeout,
        )
        return self._run(_search_flow(get_spec, exec_spec, self._context()))
