"""The text and HTML renderings of task snapshots, for the displays of this layer.

They live in :mod:`mixpeek_magics.tracking.summary`: the watch handles' and
ingest results' HTML reprs (layer 2) need them too.
"""
from __future__ import annotations

from mixpeek_magics.tracking.summary import *
from mixpeek_magics.tracking.summary import __all__, _chip, _failed_items_text  # noqa: F401
