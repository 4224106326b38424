"""Downloading a document's media (thumbnails) from the URL the API gave for it.

Such a URL is presigned (S3, a CDN, the local server's ``/_local/thumbnails/...``):
it is fetched without the API key, over the client's connection pool (its
transport, so tests over ASGI work too). ``data:`` URIs are decoded as they are.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from typing import Any

import httpx

log = logging.getLogger("mixpeek_magics.client")

MAX_MEDIA_BYTES = 8 * 1024 * 1024


class Media:
    """Bytes of a medium and their MIME type."""

    __slots__ = ("data", "mime_type")

    def __init__(self, data: bytes, mime_type: str) -> None:
        self.data = data
        self.mime_type = mime_type

    def data_uri(self) -> str:
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    def __repr__(self) -> str:
        return f"<Media {self.mime_type} {len(self.data)} bytes>"


def _decode_data_uri(uri: str) -> Media | None:
    head, sep, payload = uri.partition(",")
    if not sep:
        return None
    mime = head[5:].split(";")[0] or "application/octet-stream"
    try:
        raw = base64.b64decode(payload) if head.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
    except ValueError:
        return None
    return Media(raw, mime)


def fetch_media(
    client: Any, url: str | None, *, max_bytes: int = MAX_MEDIA_BYTES, timeout: float | None = 10.0
) -> Media | None:
    """The bytes behind ``url`` (http(s) or ``data:``), or None when there is none, it is too
    large, or the download fails (a gallery shows the card without its picture then).
    ``client`` is a sync :class:`~mixpeek_magics.client.Mixpeek`; the API key is never sent."""
    if not url:
        return None
    if url.startswith("data:"):
        return _decode_data_uri(url)
    if not url.startswith(("http://", "https://")):
        return None
    pool = getattr(client, "_http", None)
    own = not isinstance(pool, httpx.Client)
    http: httpx.Client = httpx.Client(timeout=timeout, follow_redirects=True) if own else pool  # type: ignore[assignment]
    try:
        # A bare request: the pool's only default header is the User-Agent; the API key is added
        # per API request (BaseClient._headers), never here.
        with http.stream("GET", url, timeout=timeout) as resp:
            if resp.status_code >= 400:
                log.debug("media download %s -> %s", url.split("?")[0], resp.status_code)
                return None
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    return None
                chunks.append(chunk)
            mime = resp.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
            return Media(b"".join(chunks), mime)
    except httpx.HTTPError as exc:
        log.debug("media download %s failed: %s", url.split("?")[0], type(exc).__name__)
        return None
    finally:
        if own:
            http.close()
