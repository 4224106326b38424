"""Models shared by several resources."""

from __future__ import annotations

from mixpeek_magics.client.models._base import DeleteResponse, MixpeekModel


class Pagination(MixpeekModel):
    """``PaginationResponse`` of the contract."""

    total: int | None = None
    page: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    next_page: str | None = None
    previous_page: str | None = None
    next_cursor: str | None = None


__all__ = ["DeleteResponse", "MixpeekModel", "Pagination"]
