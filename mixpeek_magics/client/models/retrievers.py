"""Retrievers (``RetrieverConfig`` / ``RetrieverModelOutput``) and their executions
(``ExecuteRetrieverResponse``), from the v0.82 contract."""

from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel
from mixpeek_magics.client.models.documents import Document


class Stage(MixpeekModel):
    """``StageConfigOutput``."""

    stage_name: str
    config: dict[str, Any]
    parameters: dict[str, Any] | None = None
    stage_type: str | None = None
    description: str | None = None


class Retriever(MixpeekModel):
    """``RetrieverModelOutput`` (``RetrieverConfig`` when just created)."""

    retriever_id: str | None = None
    retriever_name: str
    description: str | None = None
    collection_identifiers: list[str]
    collection_ids: list[str] | None = None
    stages: list[Stage]
    fusion: str | None = None
    input_schema: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    feature_dependencies: list[dict[str, Any]] | None = None
    version: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class StageStatistics(MixpeekModel):
    input_count: int
    output_count: int
    duration_ms: float
    efficiency: float
    error: str | None = None
    cache_hit: bool | None = None


class ExecutionStatistics(MixpeekModel):
    """``RetrieverExecutionStatistics``."""

    stages: dict[str, StageStatistics] | None = None
    total_time_ms: float | None = None
    server_service_ms: float | None = None
    credits_used: float | None = None


class RetrieverResults(MixpeekModel):
    """``ExecuteRetrieverResponse``: the ranked documents (each with its ``score``) and
    ``stage_statistics``."""

    execution_id: str
    status: str
    retriever_id: str | None = None
    documents: list[Document] | None = None
    pagination: dict[str, Any] | None = None
    stage_statistics: ExecutionStatistics | None = None
    warnings: list[str] | None = None
    error: str | None = None
    cache_hit: bool | None = None

    @property
    def hits(self) -> list[Document]:
        return list(self.documents or [])

    def __len__(self) -> int:
        return len(self.documents or [])
