"""Ingestion: parsing ``%%ingest`` bodies, planning, and uploading (layer 2).

    from mixpeek_magics.ingest import bulk_upload
    result = bulk_upload(client, "my-bucket", ["a.png", "b.txt"])
"""
from __future__ import annotations

from mixpeek_magics._lazy import lazy_getattr
from typing import Any

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
