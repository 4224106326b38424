from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel


class FeatureExtractor(MixpeekModel):
    """``BaseFeatureExtractorModel``: e.g. ``{"feature_extractor_name": "text_extractor", "version": "v1"}``."""

    feature_extractor_name: str
    version: str
    params: dict[str, Any] | None = None


class Namespace(MixpeekModel):
    """``NamespaceModel``."""

    namespace_id: str | None = None
    namespace_name: str
    description: str | None = None
    infrastructure: dict[str, Any] | None = None
    cluster_id: str | None = None
    feature_extractors: list[FeatureExtractor] = []
    payload_indexes: list[dict[str, Any]] | None = None
    document_count: int | None = None
    bucket_count: int | None = None
    collection_count: int | None = None
    object_count: int | None = None
    auto_create_indexes: bool | None = None
    vector_inference_map: dict[str, str] | None = None
    created_at: str | None = None
    updated_at: str | None = None
