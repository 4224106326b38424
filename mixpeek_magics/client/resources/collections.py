"""Collections: ``/v1/collections`` (namespace-scoped), the extractor catalogue
(``/v1/collections/features/extractors``) and triggers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixpeek_magics.client.models.collections import (
    Collection,
    FeatureExtractorInfo,
    TriggerResult,
)
from mixpeek_magics.client.resources._base import (
    QueryListResource,
    decoded,
    model,
    seg,
)


def feature_extractor_config(
    name: str,
    version: str = "v1",
    *,
    parameters: Mapping[str, Any] | None = None,
    input_mappings: Mapping[str, str] | None = None,
    field_passthrough: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A collection's ``feature_extractor`` (``text_extractor``, ``image_extractor``, ...).
    ``input_mappings`` maps the extractor's inputs to bucket fields (``{"text": "content"}``);
    ``field_passthrough`` copies object fields into the documents."""
    fe: dict[str, Any] = {"feature_extractor_name": name, "version": version}
    if parameters is not None:
        fe["parameters"] = dict(parameters)
    if input_mappings is not None:
        fe["input_mappings"] = dict(input_mappings)
    if field_passthrough is not None:
        fe["field_passthrough"] = [dict(f) for f in field_passthrough]
    return fe


class Collections(QueryListResource[Collection]):
    LIST_PATH = "/v1/collections/list"
    ITEM = Collection

    def create(
        self,
        collection_name: str,
        source_buckets: str | Sequence[str],
        feature_extractor: str | Mapping[str, Any],
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        version: str = "v1",
        parameters: Mapping[str, Any] | None = None,
        input_mappings: Mapping[str, str] | None = None,
        field_passthrough: Sequence[Mapping[str, Any]] | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Collection:
        """``POST /v1/collections``: a collection processing the objects of ``source_buckets``
        (bucket ids) with ``feature_extractor`` (a name such as ``"text_extractor"``, or a full
        ``feature_extractor`` mapping)."""
        buckets = [source_buckets] if isinstance(source_buckets, str) else list(source_buckets)
        if not buckets:
            raise ValueError("a collection needs at least one source bucket")
        if isinstance(feature_extractor, str):
            fe = feature_extractor_config(
                feature_extractor,
                version,
                parameters=parameters,
                input_mappings=input_mappings,
                field_passthrough=field_passthrough,
            )
        else:
            fe = dict(feature_extractor)
        body: dict[str, Any] = {
            "collection_name": collection_name,
            "source": {"type": "bucket", "bucket_ids": buckets},
            "feature_extractor": fe,
        }
        if description is not None:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return self._request(
            self._spec(
                "POST",
                "/v1/collections",
                json=body,
                parse=model(Collection),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def get(self, collection: str, *, namespace: str | None = None, timeout: float | None = None) -> Collection:
        """By id (``col_...``) or name."""
        return self._request(
            self._spec(
                "GET",
                f"/v1/collections/{seg(collection)}",
                parse=model(Collection),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def delete(self, collection: str, *, namespace: str | None = None, timeout: float | None = None) -> Any:
        return self._request(
            self._spec(
                "DELETE",
                f"/v1/collections/{seg(collection)}",
                parse=decoded,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def trigger(
        self,
        collection: str,
        *,
        object_ids: Sequence[str] | None = None,
        include_buckets: Sequence[str] | None = None,
        source_filters: Any = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> TriggerResult:
        """``POST /v1/collections/{id}/trigger``: (re)process the source objects through this
        collection; wait for ``result.task_id`` with ``client.tasks.wait``."""
        body: dict[str, Any] = {}
        if object_ids is not None:
            body["object_ids"] = list(object_ids)
        if include_buckets is not None:
            body["include_buckets"] = list(include_buckets)
        if source_filters is not None:
            body["source_filters"] = source_filters
        return self._request(
            self._spec(
                "POST",
                f"/v1/collections/{seg(collection)}/trigger",
                json=body,
                parse=model(TriggerResult),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def extractors(self, *, namespace: str | None = None, timeout: float | None = None) -> list[FeatureExtractorInfo]:
        """``GET /v1/collections/features/extractors``: the feature extractors collections can use."""

        def parse(data: Any) -> list[FeatureExtractorInfo]:
            items = data.get("results", data) if isinstance(data, dict) else data
            return [FeatureExtractorInfo.model_validate(x) for x in items or []]

        return self._request(
            self._spec(
                "GET",
                "/v1/collections/features/extractors",
                parse=parse,
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )

    def extractor(
        self, feature_extractor_id: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> FeatureExtractorInfo:
        return self._request(
            self._spec(
                "GET",
                f"/v1/collections/features/extractors/{seg(feature_extractor_id)}",
                parse=model(FeatureExtractorInfo),
                namespaced=True,
                namespace=namespace,
                timeout=timeout,
            )
        )
