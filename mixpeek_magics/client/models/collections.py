"""Collections (``CollectionResponse``), the extractor catalogue (``FeatureExtractorResponseModel``)
and collection triggers (``TriggerCollectionResponse``), from the v0.82 contract."""

from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel


class FeatureExtractorConfig(MixpeekModel):
    """A collection's ``feature_extractor`` (``...FeatureExtractorConfigOutput``)."""

    feature_extractor_name: str
    version: str
    feature_extractor_id: str | None = None
    parameters: dict[str, Any] | None = None
    input_mappings: Any = None
    field_passthrough: list[dict[str, Any]] | None = None
    include_all_source_fields: bool | None = None
    params: dict[str, Any] | None = None


class CollectionVectorIndex(MixpeekModel):
    name: str | None = None
    type: str | None = None
    feature_uri: str | None = None
    source: str | None = None
    index: dict[str, Any] | None = None


class Collection(MixpeekModel):
    """``CollectionResponse``."""

    collection_id: str | None = None
    collection_name: str
    description: str | None = None
    feature_extractor: FeatureExtractorConfig
    source: dict[str, Any]
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    vector_indexes: list[CollectionVectorIndex] | None = None
    document_count: int | None = None
    vector_count: int | None = None
    retriever_count: int | None = None
    taxonomy_count: int | None = None
    metadata: dict[str, Any] | None = None
    enabled: bool | None = None
    lifecycle_state: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def feature_uris(self) -> list[str]:
        """The vector indexes' feature URIs (what a ``feature_search`` stage searches)."""
        uris = [v.feature_uri for v in self.vector_indexes or [] if v.feature_uri]
        if not uris and self.feature_extractor is not None:
            fe = self.feature_extractor
            uris = [f"mixpeek://{fe.feature_extractor_name}@{fe.version}"]
        return uris

    @property
    def bucket_ids(self) -> list[str]:
        return list((self.source or {}).get("bucket_ids") or [])


class FeatureExtractorInfo(MixpeekModel):
    """``FeatureExtractorResponseModel``: one entry of the extractor catalogue."""

    feature_extractor_name: str
    version: str
    feature_extractor_id: str
    description: str | None = None
    icon: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    parameter_schema: dict[str, Any] | None = None
    supported_input_types: list[str] | None = None
    max_inputs: dict[str, int] | None = None
    default_parameters: dict[str, Any] | None = None
    required_vector_indexes: list[dict[str, Any]] | None = None
    required_payload_indexes: list[dict[str, Any]] | None = None
    category: str | None = None

    @property
    def feature_uris(self) -> list[str]:
        return [v["feature_uri"] for v in self.required_vector_indexes or [] if v.get("feature_uri")]


class TriggerResult(MixpeekModel):
    """``TriggerCollectionResponse``."""

    task_id: str
    collection_id: str
    total_tiers: int
    message: str
    batch_id: str | None = None
    batch_ids: list[str] | None = None
    task_ids: list[str] | None = None
    object_count: int | None = None
    source_bucket_ids: list[str] | None = None
