"""The search gallery: one card per hit, best first, as static HTML (thumbnails embedded
as base64, no script, no widget: a saved notebook and an nbconvert HTML export show
it without the server) and as a ranked text table (terminals, ``print``).

``Gallery(frame)`` takes a :func:`mixpeek_magics.frames.hits_frame` frame (or a
documents frame); its ``attrs`` give the title (query, collection) and the stage
timings shown under the cards.
"""

from __future__ import annotations

import html
import math
from typing import Any

CARD_PX = 168
IMAGE_PX = 120
TEXT_WIDTH = 60  # snippet width of the text table

_STYLE = (  # a CSS template: %-format leaves its braces alone
    ".mixpeek-gallery{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:12px;color:inherit}"
    ".mixpeek-gallery .mg-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(%(card)dpx,1fr));"
    "gap:10px;margin:6px 0}"
    ".mixpeek-gallery .mg-card{border:1px solid rgba(128,128,128,.35);border-radius:8px;padding:8px;"
    "display:flex;flex-direction:column;gap:4px;min-width:0}"
    ".mixpeek-gallery .mg-media{height:%(img)dpx;display:flex;align-items:center;justify-content:center;"
    "background:rgba(128,128,128,.08);border-radius:5px;overflow:hidden}"
    ".mixpeek-gallery .mg-media img{width:100%%;height:%(img)dpx;object-fit:contain}"
    ".mixpeek-gallery .mg-snippet{font-size:11px;line-height:1.35;padding:6px;overflow:hidden;height:100%%;"
    "box-sizing:border-box;width:100%%;white-space:normal;text-align:left}"
    ".mixpeek-gallery .mg-top{display:flex;justify-content:space-between;font-variant-numeric:tabular-nums}"
    ".mixpeek-gallery .mg-score{font-weight:600}"
    ".mixpeek-gallery .mg-name{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}"
    ".mixpeek-gallery .mg-meta{opacity:.7;font-size:11px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}"
    ".mixpeek-gallery table.mg-stages{border-collapse:collapse;font-size:11px;margin-top:4px}"
    ".mixpeek-gallery table.mg-stages td,.mixpeek-gallery table.mg-stages th{padding:1px 8px;text-align:left}"
) % {"card": CARD_PX, "img": IMAGE_PX}
# only in galleries with audio or video cards: the others' saved outputs stay as they were
_MEDIA_STYLE = (
    ".mixpeek-gallery .mg-keyframe{position:relative;width:100%;height:100%;display:flex;align-items:center;"
    "justify-content:center}"
    ".mixpeek-gallery .mg-badge{position:absolute;left:4px;bottom:4px;background:rgba(0,0,0,.65);color:#fff;"
    "border-radius:4px;padding:0 5px;font-size:11px;text-decoration:none}"
    ".mixpeek-gallery .mg-audio{display:flex;flex-direction:column;justify-content:space-between;width:100%;"
    "height:100%}"
    ".mixpeek-gallery .mg-audio audio{width:100%;height:30px}"
    ".mixpeek-gallery .mg-icon{font-size:40px;opacity:.55}"
)
_PLAYABLE = ("http://", "https://", "data:")


def _missing(value: Any) -> bool:
    """None, NaN, pandas' NA / NaT."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return math.isnan(value)  # numpy's float NaN
    except (TypeError, ValueError):
        return False


def _fmt_score(value: Any) -> str:
    return "" if _missing(value) else f"{float(value):.3f}"


def _fmt_time(value: Any) -> str:
    if _missing(value):
        return ""
    minutes, seconds = divmod(int(round(float(value))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _span(row: dict[str, Any]) -> str:
    """A segment's place in its source, ``0:10–0:20`` (or its start)."""
    start, end = _fmt_time(row.get("start_time")), _fmt_time(row.get("end_time"))
    return f"{start}–{end}" if start and end else start


def _playable(value: Any) -> str | None:
    """A URL the browser may load (never ``javascript:`` or a storage URI it cannot)."""
    return value if isinstance(value, str) and value.startswith(_PLAYABLE) else None


def _fmt_ms(value: Any) -> str:
    if _missing(value):
        return ""
    v = float(value)
    return f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


class Gallery:
    """Cards of search hits (or documents). ``frame``: the hits DataFrame; ``title``: shown above."""

    def __init__(self, frame: Any, title: str | None = None, max_cards: int = 100) -> None:
        self.frame = frame
        self.title = title if title is not None else self._default_title()
        self.max_cards = max_cards

    # -- content -------------------------------------------------------------------------------
    def _default_title(self) -> str:
        attrs = getattr(self.frame, "attrs", {}) or {}
        n = len(self.frame)
        what = f"{n} hit{'s' if n != 1 else ''}" if "rank" in self.frame.columns else f"{n} document(s)"
        query = attrs.get("query")
        where = attrs.get("collection")
        parts = [what]
        if query:
            parts.append(f"for {query!r}" if not str(query).startswith("<") else f"for {query}")
        if where:
            parts.append(f"in {where}")
        return " ".join(parts)

    def _rows(self) -> list[dict[str, Any]]:
        cols = list(self.frame.columns)
        return [dict(zip(cols, values)) for values in self.frame.head(self.max_cards).itertuples(index=False)]

    def _stages(self) -> list[tuple[str, Any, Any, Any]]:
        stats = (getattr(self.frame, "attrs", {}) or {}).get("stage_statistics") or {}
        return [(name, s.get("input_count"), s.get("output_count"), s.get("duration_ms")) for name, s in stats.items()]

    @staticmethod
    def _meta(row: dict[str, Any]) -> list[str]:
        out = []
        for k, v in row.items():
            if k.startswith("metadata.") and not _missing(v):
                out.append(f"{k[len('metadata.') :]}={v}")
        if not out and isinstance(row.get("metadata"), dict):
            out = [f"{k}={v}" for k, v in row["metadata"].items()]
        return out

    # -- HTML ------------------------------------------------------------------------------------
    @staticmethod
    def _media(row: dict[str, Any], name: str) -> str:
        """What the hit is: a video's keyframe (its thumbnail) marked with its segment, an audio
        player on the URL the document declares (``preload="none"``: nothing is fetched until
        played), an image, a text snippet, or what kind of document it is."""
        from mixpeek_magics.frames.search import Thumbnail, media_kind

        esc = html.escape
        thumb = row.get("thumbnail")
        text = row.get("snippet") if "snippet" in row else row.get("text")
        text = None if _missing(text) or not text else str(text)
        picture = f'<img src="{thumb.data_uri()}" alt="{esc(name)}">' if isinstance(thumb, Thumbnail) else None
        kind = media_kind(
            None if _missing(row.get("modality")) else row.get("modality"),
            None if _missing(row.get("mime_type")) else row.get("mime_type"),
        )
        url = _playable(row.get("media_url"))
        if kind == "video":
            span = _span(row)
            label = f"▶ {span}" if span else "▶ video"
            badge = (
                f'<a class="mg-badge" href="{esc(url)}" target="_blank" rel="noopener noreferrer">{esc(label)}</a>'
                if url
                else f'<span class="mg-badge">{esc(label)}</span>'
            )
            picture = picture or '<span class="mg-icon">🎞</span>'
            return f'<div class="mg-keyframe">{picture}{badge}</div>'
        if kind == "audio":
            top = f'<div class="mg-snippet">{esc(text[:300])}</div>' if text else '<span class="mg-icon">🎵</span>'
            player = (
                f'<audio controls preload="none" src="{esc(url)}"></audio>'
                if url
                else '<div class="mg-meta">no playable URL</div>'
            )
            return f'<div class="mg-audio">{top}{player}</div>'
        if picture:
            return picture
        if text:
            return f'<div class="mg-snippet">{esc(text[:400])}</div>'
        return f'<div class="mg-meta">{esc(str(row.get("mime_type") or row.get("modality") or "document"))}</div>'

    def _card(self, row: dict[str, Any], index: int) -> str:
        name = str(row.get("filename") or row.get("document_id") or "")
        media = self._media(row, name)
        rank: Any = row.get("rank")
        rank_txt = f"#{int(rank)}" if not _missing(rank) else f"{index + 1}."
        size = ""
        width, height = row.get("width"), row.get("height")
        if width is not None and height is not None and not _missing(width) and not _missing(height):
            size = f"{int(width)}×{int(height)}"
        details = " · ".join(x for x in [str(row.get("modality") or ""), size, _span(row), *self._meta(row)] if x)
        return (
            f'<div class="mg-card" data-rank="{html.escape(str(rank if not _missing(rank) else index + 1))}" '
            f'data-document-id="{html.escape(str(row.get("document_id") or ""))}">'
            f'<div class="mg-media">{media}</div>'
            f'<div class="mg-top"><span>{rank_txt}</span>'
            f'<span class="mg-score">{_fmt_score(row.get("score"))}</span></div>'
            f'<div class="mg-name" title="{html.escape(str(name))}">{html.escape(str(name))}</div>'
            f'<div class="mg-meta" title="{html.escape(details)}">{html.escape(details)}</div></div>'
        )

    def _repr_html_(self) -> str:
        rows = self._rows()
        cards = "".join(self._card(r, i) for i, r in enumerate(rows))
        if not rows:
            cards = '<div class="mg-meta">no hits</div>'
        more = ""
        if len(self.frame) > len(rows):
            more = f'<div class="mg-meta">… {len(self.frame) - len(rows)} more in the DataFrame</div>'
        stages = self._stages()
        table = ""
        if stages:
            body = "".join(
                f"<tr><td>{html.escape(str(n))}</td><td>{'' if _missing(i) else i} → "
                f"{'' if _missing(o) else o}</td><td>{_fmt_ms(ms)}</td></tr>"
                for n, i, o, ms in stages
            )
            total = (getattr(self.frame, "attrs", {}) or {}).get("total_time_ms")
            foot = f"<tr><td>total</td><td></td><td>{_fmt_ms(total)}</td></tr>" if not _missing(total) else ""
            table = (
                f'<table class="mg-stages"><tr><th>stage</th><th>documents</th><th>time</th></tr>{body}{foot}</table>'
            )
        style = _STYLE + (_MEDIA_STYLE if 'class="mg-keyframe"' in cards or 'class="mg-audio"' in cards else "")
        return (
            f'<div class="mixpeek-gallery"><style>{style}</style>'
            f"<div><b>{html.escape(self.title)}</b></div>"
            f'<div class="mg-grid">{cards}</div>{more}{table}</div>'
        )

    # -- text ------------------------------------------------------------------------------------
    def to_text(self) -> str:
        rows = self._rows()
        lines = [self.title]
        if rows:
            header = ["rank", "score", "name", "kind", "snippet / details"]
            table = []
            for i, r in enumerate(rows):
                rank: Any = r.get("rank")
                text = r.get("snippet") if "snippet" in r else r.get("text")
                if _missing(text) or not text:
                    w, h = r.get("width"), r.get("height")
                    size = (
                        f"{int(w)}x{int(h)}"
                        if w is not None and h is not None and not (_missing(w) or _missing(h))
                        else ""
                    )
                    text = " ".join(x for x in [size, _span(r), *self._meta(r)] if x)
                text = " ".join(str(text).split())
                if len(text) > TEXT_WIDTH:
                    text = text[: TEXT_WIDTH - 1] + "…"
                table.append(
                    [
                        str(int(rank)) if not _missing(rank) else str(i + 1),
                        _fmt_score(r.get("score")),
                        str(r.get("filename") or r.get("document_id") or ""),
                        str(r.get("modality") or ""),
                        text,
                    ]
                )
            widths = [max(len(h), *(len(row[c]) for row in table)) for c, h in enumerate(header)]
            fmt = lambda cells: "  ".join(  # noqa: E731
                (cell.rjust(w) if c < 2 else cell.ljust(w)) for c, (cell, w) in enumerate(zip(cells, widths))
            ).rstrip()
            lines += [fmt(header), *(fmt(row) for row in table)]
        else:
            lines.append("(no hits)")
        if len(self.frame) > len(rows):
            lines.append(f"... {len(self.frame) - len(rows)} more in the DataFrame")
        stages = self._stages()
        if stages:
            lines.append(
                "stages: "
                + "; ".join(
                    f"{n} {'' if _missing(i) else i} -> {'' if _missing(o) else o} in {_fmt_ms(ms)}"
                    for n, i, o, ms in stages
                )
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self._repr_html_(), "text/plain": self.to_text()}


# -- failure triage ----------------------------------------------------------------------------------
MAX_EMBEDDED_FILE = 512 * 1024
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}


class FailureGallery:
    """An ingest's failed items grouped by error, each with its file's picture when it is a
    local image (its own bytes, embedded: a file the browser cannot decode shows as broken,
    which is the point) and its name; text: one block per error."""

    def __init__(self, records: list[dict[str, Any]], base_dir: str | None = None) -> None:
        self.groups: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            self.groups.setdefault(str(r.get("error") or "unknown error"), []).append(r)
        self.base_dir = base_dir

    def _picture(self, source: Any) -> str:
        import base64
        import os

        if not isinstance(source, str) or "://" in source:
            return ""
        path = source if os.path.isabs(source) or self.base_dir is None else os.path.join(self.base_dir, source)
        mime = _IMAGE_TYPES.get(os.path.splitext(path)[1].lower())
        try:
            if mime is None or os.path.getsize(path) > MAX_EMBEDDED_FILE:
                return ""
            with open(path, "rb") as fh:
                data = base64.b64encode(fh.read()).decode("ascii")
        except OSError:
            return ""
        return f'<img src="data:{mime};base64,{data}" alt="{html.escape(os.path.basename(path))} (cannot be shown)">'

    def _repr_html_(self) -> str:
        if not self.groups:
            return '<div class="mixpeek-gallery"><b>No failures.</b></div>'
        parts = [f'<div class="mixpeek-gallery"><style>{_STYLE}</style>']
        for error, items in sorted(self.groups.items(), key=lambda kv: -len(kv[1])):
            cards = "".join(
                f'<div class="mg-card mg-failed"><div class="mg-media">{self._picture(r.get("source"))}</div>'
                f'<div class="mg-name" title="{html.escape(str(r.get("source") or ""))}">'
                f"{html.escape(str(r.get('source') or r.get('object_id') or '?'))}</div>"
                f'<div class="mg-meta">{html.escape(str(r.get("stage") or ""))}</div></div>'
                for r in items
            )
            parts.append(
                f"<div><b>{html.escape(error)}</b> ({len(items)} item{'s' if len(items) != 1 else ''})</div>"
                f'<div class="mg-grid">{cards}</div>'
            )
        parts.append("</div>")
        return "".join(parts)

    def to_text(self) -> str:
        if not self.groups:
            return "No failures."
        lines = []
        for error, items in sorted(self.groups.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"{error} ({len(items)} item{'s' if len(items) != 1 else ''}):")
            lines += [f"  {r.get('source') or r.get('object_id') or '?'} [{r.get('stage') or ''}]" for r in items]
        return "\n".join(lines)

    __repr__ = to_text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text())


def failure_gallery(result: Any) -> FailureGallery:
    """The failed items of an ``IngestResult`` (``%%ingest -o result``) grouped by error, with pictures."""
    load = getattr(result, "_load_final_tasks_if_done", None)
    if callable(load):
        load()
    return FailureGallery(list(result.failure_records()), getattr(result, "cwd", None))


# -- failed items on the progress board ---------------------------------------------------------------
FAILED_THUMB_PX = 48
#: Thumbnails one board makes at most: it re-renders while the ingest runs, and a saved notebook keeps them.
MAX_FAILED_THUMBNAILS = 24
#: Larger files (or pictures, once a JPEG's draft mode scaled it) get an icon: decoding them would stall the board.
MAX_THUMBNAIL_SOURCE = 16 * 1024 * 1024
MAX_THUMBNAIL_PIXELS = 16_000_000
#: Without Pillow a small image is embedded as it is; larger ones get an icon.
MAX_RAW_THUMBNAIL = 48 * 1024
#: Tiles one task's failed items show at most (the names of the rest are counted), and errors.
MAX_FAILED_TILES = 12
MAX_FAILED_GROUPS = 8

_ICONS = {"image": "🖼", "audio": "🎵", "video": "🎞", "text": "📄", "application/pdf": "📄"}


def _icon(name: str) -> str:
    import mimetypes

    mime = mimetypes.guess_type(name)[0] or ""
    return _ICONS.get(mime) or _ICONS.get(mime.split("/")[0]) or "📦"


class FailedThumbnails:
    """Small JPEG thumbnails (base64 ``data:`` URIs) of failed items that are local image files,
    made in the kernel, once per name, and at most ``limit`` of them. A name is a path, absolute
    or relative to ``base_dir`` (the working directory when made: ``%%ingest`` names its files
    relative to it); object ids, URLs and files that cannot be decoded get ``None`` (an icon)."""

    def __init__(self, base_dir: str | None = None, limit: int = MAX_FAILED_THUMBNAILS, px: int = FAILED_THUMB_PX):
        import os
        import threading

        self.base_dir = base_dir if base_dir is not None else os.getcwd()
        self.limit = limit
        self.px = px
        self.made = 0  # thumbnails made
        self.attempts = 0  # image files opened
        self._cache: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        with self._lock:
            if name in self._cache:
                return self._cache[name]
            # files that cannot be decoded cost as much as those that can: attempts are bounded too
            if self.made >= self.limit or self.attempts >= 2 * self.limit:
                return None
            uri = self._make(name)
            self._cache[name] = uri
            self.made += uri is not None
            return uri

    def _make(self, name: str) -> str | None:
        import base64
        import io
        import os

        if not name or "://" in name:
            return None
        path = name if os.path.isabs(name) else os.path.join(self.base_dir, name)
        mime = _IMAGE_TYPES.get(os.path.splitext(path)[1].lower())
        if mime is None or not os.path.isfile(path):
            return None
        self.attempts += 1
        try:
            size = os.path.getsize(path)
            if size > MAX_THUMBNAIL_SOURCE:
                return None
            try:
                from PIL import Image
            except ImportError:  # Pillow is the local server's extra: a small file is shown as it is
                if size > MAX_RAW_THUMBNAIL:
                    return None
                with open(path, "rb") as fh:
                    return f"data:{mime};base64,{base64.b64encode(fh.read()).decode('ascii')}"
            with Image.open(path) as img:
                img.draft("RGB", (2 * self.px, 2 * self.px))  # JPEG: decode at a fraction of the size
                if img.width * img.height > MAX_THUMBNAIL_PIXELS:
                    return None
                img.thumbnail((self.px, self.px))
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="JPEG", quality=70)
        except Exception:  # unreadable or undecodable (often why it failed): the icon stands for it
            return None
        return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def failed_items_html(
    groups: list[tuple[str, list[str]]],
    thumbnails: FailedThumbnails | None = None,
    max_items: int = MAX_FAILED_TILES,
) -> str:
    """Failed items grouped by error (``[(error, names)]``, as ``tracking.summary.failed_groups``
    gives them): per error its text and count, then a tile per item with its thumbnail (or an
    icon) and its name; at most ``max_items`` tiles. Inline styles only: it is shown in a widget,
    in a saved notebook and in an HTML export alike."""
    esc = html.escape
    px = thumbnails.px if thumbnails is not None else FAILED_THUMB_PX
    box = f"width:{px}px;height:{px}px;margin:0 auto;border-radius:3px;display:block"
    out = ['<div class="mixpeek-failed-items" style="display:flex;flex-direction:column;gap:2px;margin:2px 0">']
    shown = 0
    total = sum(len(names) for _error, names in groups)
    for error, names in groups[:MAX_FAILED_GROUPS]:
        tiles = []
        for name in names[: max(0, max_items - shown)]:
            uri = thumbnails.get(name) if thumbnails is not None else None
            if uri:
                pic = f'<img src="{uri}" alt="" style="{box};object-fit:cover">'
            else:
                pic = (
                    f'<div aria-hidden="true" style="{box};line-height:{px}px;font-size:{px // 2}px;'
                    f'background:rgba(128,128,128,.12)">{_icon(name)}</div>'
                )
            tiles.append(
                f'<div class="mixpeek-failed-item" title="{esc(name)}" style="width:{px + 24}px;'
                f'text-align:center;font-size:11px">{pic}<div style="overflow:hidden;text-overflow:ellipsis;'
                f'white-space:nowrap">{esc(name.rsplit("/", 1)[-1])}</div></div>'
            )
        shown += len(tiles)
        n = len(names)
        out.append(
            f'<div class="mixpeek-failed-error"><b>{esc(error or "no error given")}</b> '
            f"({n} item{'s' if n != 1 else ''})</div>"
        )
        if tiles:
            out.append(f'<div style="display:flex;flex-wrap:wrap;gap:6px">{"".join(tiles)}</div>')
    if total > shown:
        more = len(groups) - MAX_FAILED_GROUPS
        errors = f" ({more} more error{'s' if more != 1 else ''})" if more > 0 else ""
        out.append(f"<div>… and {total - shown} more{errors}</div>")
    out.append("</div>")
    return "".join(out)
