"""Content sniffing (magic bytes, text heuristics) and simple features."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

from .._mime import DEFAULT_MIME, guess_mime, is_image_mime, mime_from_name

SNIFF_BYTES = 8192


def sniff_mime(head: bytes, filename: str | None = None) -> str:
    """MIME type from the first bytes of a file and its name: the client's table (layer 0),
    so the server names a file's type as the client that uploaded it did."""
    if not head and not filename:
        return "text/plain"  # an empty blob
    return guess_mime(filename, head) or DEFAULT_MIME


# Control characters other than \b \t \n \f \r and ESC: their share tells binary from text.
_CONTROL_CHARS = re.compile("[\x00-\x07\x0b\x0e-\x1a\x1c-\x1f]")


def is_text(head: bytes) -> bool:
    if not head:
        return True
    if b"\x00" in head:
        return False
    for enc_bom in (codecs.BOM_UTF8,):
        if head.startswith(enc_bom):
            head = head[len(enc_bom) :]
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover
            return False
    if not text:
        return True
    control = len(_CONTROL_CHARS.findall(text))
    return control / len(text) < 0.02


class TextStats:
    """Streaming line / word / character counter."""

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.lines = 0
        self.words = 0
        self.chars = 0
        self._in_word = False
        self._last = ""

    def feed(self, chunk: bytes, final: bool = False) -> None:
        text = self._dec.decode(chunk, final=final)
        if not text:
            return
        if self.chars == 0 and text.startswith("\ufeff"):
            text = text[1:]
        self.chars += len(text)
        self.lines += text.count("\n")
        # str.split() splits on exactly the characters str.isspace() accepts; a
        # word cut by the chunk boundary is counted once.
        self.words += len(text.split()) - (1 if self._in_word and not text[0].isspace() else 0)
        self._in_word = not text[-1].isspace()
        self._last = text[-1]

    def result(self) -> dict[str, int]:
        self.feed(b"", final=True)
        lines = self.lines + (1 if self.chars and self._last != "\n" else 0)
        return {"lines": lines, "words": self.words, "chars": self.chars}


def wants_image(declared_type: str | None, filename: str | None, mime: str) -> bool:
    """Decode as an image: an image type, a blob declared ``image``, or a name an image type goes by."""
    if is_image_mime(mime) or (declared_type or "").lower() == "image":
        return True
    return is_image_mime(mime_from_name(filename))


def image_features(path: Path) -> dict[str, Any]:
    """Width/height/format/mode via Pillow; raises ``ValueError('cannot decode image: ...')``."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover
        raise ValueError(f"cannot decode image: Pillow is not installed ({exc})") from None
    try:
        with Image.open(path) as img:
            fmt = img.format
            width, height = img.size
            mode = img.mode
            frames = getattr(img, "n_frames", 1)
            img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder error means "cannot decode"
        # Pillow names the file it opened: that is this server's storage path,
        # which means nothing to the client and must not leak into responses.
        reason = " ".join(str(exc).replace(repr(str(path)), "").replace(str(path), "").split())
        raise ValueError(f"cannot decode image: {reason}") from None
    return {"width": width, "height": height, "format": fmt, "mode": mode, "frames": frames}
