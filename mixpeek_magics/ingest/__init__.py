"""Ingestion: parsing ``%%ingest`` bodies, planning, and uploading (layer 2).

from mixpeek_magics.ingest import bulk_upload
result = bulk_upload(client, "my-bucket", ["a.png", "b.txt"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mixpeek_magics._lazy import lazy_getattr

if TYPE_CHECKING:
    from mixpeek_magics.ingest.bulk import (
        BulkUploadResult as BulkUploadResult,
        FileSpec as FileSpec,
        abulk_upload as abulk_upload,
        bulk_upload as bulk_upload,
    )
    from mixpeek_magics.ingest.parser import parse_body as parse_body
    from mixpeek_magics.ingest.plan import build_plan as build_plan

_LAZY = {
    "bulk_upload": "mixpeek_magics.ingest.bulk:bulk_upload",
    "abulk_upload": "mixpeek_magics.ingest.bulk:abulk_upload",
    "BulkUploadResult": "mixpeek_magics.ingest.bulk:BulkUploadResult",
    "FileSpec": "mixpeek_magics.ingest.bulk:FileSpec",
    "parse_body": "mixpeek_magics.ingest.parser:parse_body",
    "build_plan": "mixpeek_magics.ingest.plan:build_plan",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)
