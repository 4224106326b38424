"""MIME types, one table for the client and the local server: extensions plus magic bytes.

The table is ours (not the platform's ``/etc/mime.types``) so the result is the
same on every machine. ``guess_mime(name, head)`` prefers what the bytes say
over what the name says, except where the bytes only identify a container
(ZIP, OLE2, MP4/Ogg/WebM audio-vs-video, plain text) and the extension names a
more precise type inside it.

``blob_type_for(mime)`` maps a MIME type to the contract's file-type values of
``BucketSchemaFieldType`` / ``BlobType``: image, video, audio, text, pdf, excel.
``is_image_mime`` / ``is_text_mime`` say what the local server's extractors read
as an image or as text.
"""

from __future__ import annotations

import mimetypes
import os

__all__ = [
    "DEFAULT_MIME",
    "guess_mime",
    "mime_from_name",
    "sniff_mime",
    "blob_type_for",
    "is_image_mime",
    "is_text_mime",
    "FILE_BLOB_TYPES",
]

DEFAULT_MIME = "application/octet-stream"

#: The file types of the contract's ``BucketSchemaFieldType`` (and ``BlobType`` minus ``auto``).
FILE_BLOB_TYPES = ("image", "video", "audio", "text", "pdf", "excel")

_EXT: dict[str, str] = {
    # images
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".jfif": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
    # video
    ".mp4": "video/mp4",
    ".m4v": "video/x-m4v",
    ".mov": "video/quicktime",
    ".qt": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".wmv": "video/x-ms-wmv",
    ".flv": "video/x-flv",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".m2ts": "video/mp2t",
    ".mts": "video/mp2t",
    ".ts": "video/mp2t",
    ".3gp": "video/3gpp",
    ".ogv": "video/ogg",
    # audio
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".aac": "audio/aac",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/opus",
    ".wma": "audio/x-ms-wma",
    ".aiff": "audio/aiff",
    ".aif": "audio/aiff",
    ".weba": "audio/webm",
    ".mid": "audio/midi",
    ".midi": "audio/midi",
    # text
    ".txt": "text/plain",
    ".text": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".rst": "text/x-rst",
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "application/xml",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".srt": "application/x-subrip",
    ".vtt": "text/vtt",
    ".rtf": "application/rtf",
    # documents
    ".pdf": "application/pdf",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    # archives
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tar": "application/x-tar",
}

_ZIP_BASED = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.presentation",
}
_OLE_BASED = {"application/vnd.ms-excel", "application/msword", "application/vnd.ms-powerpoint"}

_SPREADSHEET = {
    "text/csv",
    "text/tab-separated-values",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.spreadsheet",
}
_TEXTUAL_APPLICATION = {
    "application/javascript",
    "application/json",
    "application/xml",
    "application/x-ndjson",
    "application/yaml",
    "application/x-subrip",
    "application/rtf",
}

_GENERIC_TEXT = "text/plain"


def _name_of(path_or_name: str | os.PathLike | None) -> str:
    if path_or_name is None:
        return ""
    name = os.fspath(path_or_name)
    if isinstance(name, bytes):  # pragma: no cover - bytes paths are unusual
        name = name.decode("utf-8", "replace")
    # URLs: ignore query string and fragment
    for sep in ("?", "#"):
        if "://" in name and sep in name:
            name = name.split(sep, 1)[0]
    return name


def mime_from_name(path_or_name: str | os.PathLike | None) -> str | None:
    """MIME type from the file extension (case-insensitive), or None if unknown."""
    name = _name_of(path_or_name)
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    _, ext = os.path.splitext(base.lower())
    if not ext:
        return None
    found = _EXT.get(ext)
    if found:
        return found
    guessed, _enc = mimetypes.guess_type("x" + ext, strict=False)
    return guessed


def _ftyp(head: bytes) -> str | None:
    brand = head[8:12]
    if brand in (b"qt  ",):
        return "video/quicktime"
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return "audio/mp4"
    if brand in (b"M4V ", b"M4VH", b"M4VP"):
        return "video/x-m4v"
    if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"):
        return "image/heic"
    if brand in (b"mif1", b"msf1"):
        return "image/heif"
    if brand in (b"avif", b"avis"):
        return "image/avif"
    if brand.startswith(b"3g"):
        return "video/3gpp"
    return "video/mp4"


def _looks_textual(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is still text
        if exc.start < len(head) - 3:
            return False
    return True


def sniff_mime(head: bytes) -> str | None:
    """MIME type from the first bytes of a file, or None if nothing matches."""
    if not head:
        return None
    h = bytes(head[:512])
    if h.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if h.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if h.startswith(b"RIFF") and len(h) >= 12:
        kind = h[8:12]
        if kind == b"WEBP":
            return "image/webp"
        if kind == b"WAVE":
            return "audio/wav"
        if kind == b"AVI ":
            return "video/x-msvideo"
    if h.startswith(b"BM") and len(h) >= 14 and h[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    if h.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if h.startswith(b"%PDF-"):
        return "application/pdf"
    if len(h) >= 12 and h[4:8] == b"ftyp":
        return _ftyp(h)
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in h[:64] else "video/x-matroska"
    if h.startswith(b"OggS"):
        return "video/ogg" if b"theora" in h[:128] else "audio/ogg"
    if h.startswith(b"fLaC"):
        return "audio/flac"
    if h.startswith(b"ID3"):
        return "audio/mpeg"
    if len(h) >= 2 and h[0] == 0xFF and (h[1] & 0xF6) == 0xF0:
        return "audio/aac"  # ADTS
    if len(h) >= 2 and h[0] == 0xFF and (h[1] & 0xE0) == 0xE0:
        return "audio/mpeg"  # MPEG audio frame sync
    if h.startswith(b"FORM") and h[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if h.startswith(b"\x00\x00\x01\xba") or h.startswith(b"\x00\x00\x01\xb3"):
        return "video/mpeg"
    if h.startswith(b"PK\x03\x04"):
        return "application/zip"
    if h.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "application/x-ole-storage"
    if h.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if h.startswith(b"{\\rtf"):
        return "application/rtf"
    if _looks_textual(h):
        text = h.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n").lower()
        if text.startswith("<svg") or (text.startswith("<?xml") and "<svg" in text):
            return "image/svg+xml"
        if text.startswith(("<!doctype html", "<html")):
            return "text/html"
        if text.startswith("<?xml"):
            return "application/xml"
        return _GENERIC_TEXT
    return None


def _av_subtype(mime: str) -> str | None:
    top, _, sub = mime.partition("/")
    if top in ("audio", "video"):
        return sub.replace("x-", "")
    return None


def guess_mime(
    path_or_name: str | os.PathLike | None,
    head: bytes | None = None,
    default: str | None = DEFAULT_MIME,
) -> str | None:
    """Best MIME type for a file name (or URL) and, when given, its first bytes.

    Returns ``default`` (``application/octet-stream``) when nothing is known.
    """
    by_name = mime_from_name(path_or_name)
    sniffed = sniff_mime(head) if head else None
    if sniffed is None:
        return by_name or default
    if by_name is None:
        return sniffed if sniffed != "application/x-ole-storage" else default
    if sniffed == "application/zip" and by_name in _ZIP_BASED:
        return by_name
    if sniffed == "application/x-ole-storage":
        return by_name if by_name in _OLE_BASED else default
    if sniffed == _GENERIC_TEXT:
        # bytes only say "text": the extension says which kind (csv, json, md, ...)
        return (
            by_name
            if (by_name.startswith("text/") or by_name in _TEXTUAL_APPLICATION or by_name == "image/svg+xml")
            else sniffed
        )
    if sniffed in ("application/xml", "text/html") and (by_name.startswith("text/") or by_name in _TEXTUAL_APPLICATION):
        return by_name
    # same container, audio vs video decided by the extension (.m4a in an mp4 box, .oga, .weba)
    s_sub, n_sub = _av_subtype(sniffed), _av_subtype(by_name)
    if s_sub and n_sub and (s_sub == n_sub or {s_sub, n_sub} <= {"mp4", "m4v", "m4a"}):
        return by_name
    if sniffed == "audio/mpeg" and by_name.startswith(("audio/", "video/")):
        # MPEG frame sync is a weak signal (two bytes); trust a media extension
        return by_name
    return sniffed


def _essence(mime: str | None) -> str:
    """``type/subtype`` in lower case, without parameters (``; charset=...``)."""
    return (mime or "").split(";", 1)[0].strip().lower()


def is_image_mime(mime: str | None) -> bool:
    """A raster image type: ``image/*`` except SVG (markup, not pixels)."""
    m = _essence(mime)
    return m.startswith("image/") and m != "image/svg+xml"


def is_text_mime(mime: str | None) -> bool:
    """``text/*``, or an application type that is text (JSON, XML, YAML, NDJSON, JavaScript, ...)."""
    m = _essence(mime)
    return m.startswith("text/") or m in _TEXTUAL_APPLICATION


def blob_type_for(mime: str | None) -> str | None:
    """The contract's file type (image, video, audio, text, pdf, excel) for a MIME type.

    Returns None when no file type fits (archives, Word documents, octet-stream).
    GIFs are ``image`` (the service's default for GIF under ``auto``).
    """
    if not mime:
        return None
    m = _essence(mime)
    if m in _SPREADSHEET:
        return "excel"
    if m == "application/pdf":
        return "pdf"
    top = m.partition("/")[0]
    if top in ("image", "video", "audio"):
        return top
    if is_text_mime(m):
        return "text"
    return None
