"""Frames of a collection's documents and of a search's hits, with their thumbnails.

A thumbnail is downloaded once, when the frame is built, and kept in the frame
as a :class:`Thumbnail` (the bytes): the frame's HTML shows it as an embedded
image, so a saved notebook or an HTML export shows it without the server. In
text (a terminal) it is a short ``<thumbnail image/jpeg 1.2 kB>``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mixpeek_magics._extras import require
from mixpeek_magics.frames.history import resolve_client

SNIPPET_CHARS = 160
THUMBNAIL_WORKERS = 8

DOCUMENT_COLUMNS: dict[str, str] = {
    "document_id": "str",
    "collection_id": "str",
    "root_object_id": "str",
    "filename": "str",
    "modality": "str",
    "mime_type": "str",
    "thumbnail": "object",
    "text": "str",
    "width": "Int64",
    "height": "Int64",
    "metadata": "object",
    "searchable_at": "datetime64[ns, UTC]",
}
HIT_COLUMNS: dict[str, str] = {
    "rank": "Int64",
    "score": "Float64",
    "document_id": "str",
    "collection_id": "str",
    "root_object_id": "str",
    "filename": "str",
    "modality": "str",
    "mime_type": "str",
    "thumbnail": "object",
    "snippet": "str",
    "width": "Int64",
    "height": "Int64",
}


class Thumbnail:
    """A document's thumbnail, embedded: ``data`` (bytes), ``mime_type``, :meth:`data_uri`."""

    __slots__ = ("data", "mime_type")

    def __init__(self, data: bytes, mime_type: str = "image/jpeg") -> None:
        self.data = data
        self.mime_type = mime_type

    def data_uri(self) -> str:
        import base64

        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    def img(self, max_px: int = 96, alt: str = "") -> str:
        return (
            f'<img src="{self.data_uri()}" alt="{html.escape(alt)}" loading="lazy" '
            f'style="max-width:{max_px}px;max-height:{max_px}px;object-fit:contain;'
            f'image-rendering:auto;vertical-align:middle">'
        )

    def _repr_html_(self) -> str:
        return self.img(256)

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) read from the JPEG, PNG or GIF header (no image library needed)."""
        return image_size(self.data)

    def __repr__(self) -> str:
        # the pixel size, not the byte count: that depends on the JPEG encoder's version
        size = self.size
        kind = self.mime_type.split("/")[-1]
        return f"<thumbnail {size[0]}x{size[1]} {kind}>" if size else f"<thumbnail {kind}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thumbnail) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's header: PNG (IHDR), GIF, JPEG (the first SOF marker)."""
    import struct

    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    return None


def _media_frame_class() -> type:
    """A DataFrame whose HTML shows the ``thumbnail`` column as images (built once, lazily:
    importing this module does not import pandas)."""
    global _MediaFrame
    if _MediaFrame is not None:
        return _MediaFrame
    import pandas as pd

    class MediaFrame(pd.DataFrame):
        """A DataFrame of documents or hits; its HTML shows thumbnails as images."""

        _metadata: list[str] = []

        @property
        def _constructor(self) -> type:
            return MediaFrame

        def _repr_html_(self) -> str | None:
            if "thumbnail" not in self.columns:
                return super()._repr_html_()  # type: ignore[misc]  # pandas-stubs omit DataFrame._repr_html_
            return media_table_html(self)

    _MediaFrame = MediaFrame
    return MediaFrame


_MediaFrame: Any = None


def media_table_html(frame: Any, max_rows: int | None = None) -> str:
    """An HTML table of ``frame`` with thumbnails as embedded images and every other cell escaped."""
    import pandas as pd

    max_rows = max_rows or pd.get_option("display.max_rows") or 60
    width = pd.get_option("display.max_colwidth") or 50

    def cell(value: Any) -> str:
        if isinstance(value, Thumbnail):
            return value.img()
        if value is None or (not isinstance(value, (list, dict, tuple)) and pd.isna(value)):
            return ""
        text = str(value)
        if len(text) > width:
            text = text[: width - 1] + "…"
        return html.escape(text)

    shown = frame if len(frame) <= max_rows else frame.head(max_rows)
    formatters = {c: cell for c in frame.columns}
    table = pd.DataFrame(shown).to_html(
        escape=False, formatters=formatters, index=True, border=0, na_rep="", classes="dataframe mixpeek-media"
    )
    more = "" if len(frame) <= max_rows else f"<p>… {len(frame) - max_rows} more rows</p>"
    return f"<div>{table}{more}<p>{len(frame)} rows × {len(frame.columns)} columns</p></div>"


def _frame(rows: list[dict[str, Any]], columns: dict[str, str], extra: list[str] | None = None) -> Any:
    from mixpeek_magics.frames.resources import _frame as typed_frame

    base = typed_frame(rows, columns)
    cls = _media_frame_class()
    frame = cls(base)
    for name in extra or []:
        frame[name] = [r.get(name) for r in rows] if rows else []
    return frame


# -- thumbnails ----------------------------------------------------------------------------------
def fetch_thumbnails(client: Any, docs: Iterable[Any]) -> dict[str, Thumbnail]:
    """document_id -> Thumbnail, for the documents that have one (downloaded a few at a time)."""
    from mixpeek_magics.client.media import fetch_media

    wanted = [(d.document_id, d.thumbnail_url) for d in docs if d.thumbnail_url]
    if not wanted:
        return {}

    def one(item: tuple[str, str]) -> tuple[str, Thumbnail | None]:
        media = fetch_media(client, item[1])
        if media is None or not media.mime_type.startswith("image/"):
            return item[0], None
        return item[0], Thumbnail(media.data, media.mime_type)

    with ThreadPoolExecutor(
        max_workers=min(THUMBNAIL_WORKERS, len(wanted)), thread_name_prefix="mixpeek-thumb"
    ) as pool:
        return {did: t for did, t in pool.map(one, wanted) if t is not None}


def snippet(text: str | None, query: str | None = None, chars: int = SNIPPET_CHARS) -> str | None:
    """A one-line extract of ``text``, around the first word of ``query`` it contains."""
    if not text:
        return None
    flat = " ".join(text.split())
    if len(flat) <= chars:
        return flat
    start = 0
    for word in re.findall(r"[^\W_]+", (query or "").lower()):
        at = flat.lower().find(word)
        if at >= 0:
            start = max(0, at - chars // 3)
            break
    piece = flat[start : start + chars]
    return ("…" if start else "") + piece + ("…" if start + chars < len(flat) else "")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: Columns a frame gets only when a document has them: audio and video hits (the real service's
#: extractors make them; the local server's make text and image documents only).
MEDIA_COLUMNS: dict[str, str] = {"media_url": "str", "start_time": "Float64", "end_time": "Float64"}
_PLAYABLE = ("http://", "https://", "data:")


def media_kind(modality: str | None, mime_type: str | None) -> str | None:
    """``"video"``, ``"audio"`` or None, from the document's modality or MIME type."""
    for value in ((modality or "").lower(), (mime_type or "").lower().split("/")[0]):
        if value in ("video", "audio"):
            return value
    return None


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def media_fields(d: Any) -> dict[str, Any]:
    """What an audio or video document declares to play it: ``media_url`` (its segment's
    ``video_segment_url``, else the presigned or http(s) URL of its audio / video blob),
    ``start_time`` / ``end_time`` (seconds, the segment's position in its source)."""
    kind = media_kind(d.modality, d.mime_type)
    if kind is None:
        return {}
    fields = d.fields
    url = fields.get("video_segment_url") if kind == "video" else None
    if not (isinstance(url, str) and url.startswith(_PLAYABLE)):
        url = None
        for blob in d.document_blobs or []:
            if blob.type == kind or (blob.content_type or "").startswith(f"{kind}/"):
                for candidate in (blob.presigned_url, blob.url):
                    if candidate and candidate.startswith(_PLAYABLE):
                        url = candidate
                        break
            if url:
                break
    return {
        "media_url": url,
        "start_time": _seconds(fields.get("start_time")),
        "end_time": _seconds(fields.get("end_time")),
    }


def _with_media(columns: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, str]:
    """``columns`` and the media columns some row has."""
    return {**columns, **{c: t for c, t in MEDIA_COLUMNS.items() if any(r.get(c) is not None for r in rows)}}


def _document_row(d: Any, thumbs: Mapping[str, Thumbnail]) -> dict[str, Any]:
    return {
        **media_fields(d),
        "document_id": d.document_id,
        "collection_id": d.collection_id,
        "root_object_id": d.root_object_id,
        "filename": d.filename,
        "modality": d.modality,
        "mime_type": d.mime_type,
        "thumbnail": thumbs.get(d.document_id),
        "text": d.text,
        "width": _int(d.fields.get("width")),
        "height": _int(d.fields.get("height")),
        "metadata": d.metadata,
        "searchable_at": d.searchable_at,
    }


def documents_frame(
    collection: str,
    client: Any = None,
    *,
    filters: Any = None,
    search: str | None = None,
    limit: int | None = 100,
    thumbnails: bool = True,
):
    """The documents of ``collection`` (id or name), one row each: lineage (``root_object_id``),
    source ``filename``, ``modality``, ``text``, image size, ``metadata``, and a ``thumbnail``
    column (:class:`Thumbnail`) that the frame's HTML shows as images.

    ``filters`` is a LogicalOperator or a ``{field: value}`` mapping (``{"metadata.kind": "note"}``);
    ``limit=None`` reads them all."""
    require("notebook", "pandas")  # before any request
    client = resolve_client(client)
    logical = _as_logical(filters)
    docs = list(
        client.documents.iter(collection, logical, search=search, max_items=limit, limit=min(limit or 1000, 1000))
    )
    thumbs = fetch_thumbnails(client, docs) if thumbnails else {}
    rows = [_document_row(d, thumbs) for d in docs]
    frame = _frame(rows, _with_media(DOCUMENT_COLUMNS, rows))
    frame.attrs["collection"] = collection
    return frame


def _as_logical(filters: Any) -> Any:
    if not filters or not isinstance(filters, Mapping):
        return filters or None
    if any(k in filters for k in ("AND", "OR", "NOT")):
        return dict(filters)
    return {
        "AND": [
            {
                "field": k,
                "operator": "in" if isinstance(v, (list, tuple)) else "eq",
                "value": list(v) if isinstance(v, (list, tuple)) else v,
            }
            for k, v in filters.items()
        ]
    }


def hits_frame(results: Any, client: Any = None, *, query: str | None = None, thumbnails: bool = True):
    """The hits of a retriever execution (``RetrieverResults``), best first: ``rank``, ``score``,
    ids and lineage, ``filename``, ``modality``, a text ``snippet``, ``thumbnail``, image size and one
    ``metadata.<key>`` column per metadata key. ``frame.attrs``: ``stage_statistics`` (stage ->
    input/output counts and ``duration_ms``), ``total_time_ms``, ``execution_id``, ``query``."""
    require("notebook", "pandas")
    client = resolve_client(client) if thumbnails else client
    docs = list(getattr(results, "documents", None) or [])
    thumbs = fetch_thumbnails(client, docs) if thumbnails else {}
    rows: list[dict[str, Any]] = []
    meta_keys: list[str] = []
    for rank, d in enumerate(docs, start=1):
        row = {
            "rank": rank,
            "score": d.score,
            "document_id": d.document_id,
            "collection_id": d.collection_id,
            "root_object_id": d.root_object_id,
            "filename": d.filename,
            "modality": d.modality,
            "mime_type": d.mime_type,
            "thumbnail": thumbs.get(d.document_id),
            "snippet": snippet(d.text, query),
            "width": _int(d.fields.get("width")),
            "height": _int(d.fields.get("height")),
            **media_fields(d),
        }
        for k, v in d.metadata.items():
            key = f"metadata.{k}"
            if key not in meta_keys:
                meta_keys.append(key)
            row[key] = v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
        rows.append(row)
    frame = _frame(rows, _with_media(HIT_COLUMNS, rows), extra=meta_keys)
    stats = getattr(results, "stage_statistics", None)
    stages = {}
    if stats is not None and stats.stages:
        stages = {
            name: {"input_count": s.input_count, "output_count": s.output_count, "duration_ms": s.duration_ms}
            for name, s in stats.stages.items()
        }
    frame.attrs.update(
        stage_statistics=stages,
        total_time_ms=getattr(stats, "total_time_ms", None),
        execution_id=getattr(results, "execution_id", None),
        query=query,
    )
    return frame
