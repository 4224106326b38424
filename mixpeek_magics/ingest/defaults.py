"""Defaults of an ingest that the notebook's options show; importable without the upload machinery
(``%load_ext`` reads them, and loading the pipeline there would cost every kernel its imports)."""

from __future__ import annotations

DEFAULT_CONCURRENCY = 16  # PUTs in flight (bench/RESULTS.md, upload: the choice of 16)
