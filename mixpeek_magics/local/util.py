"""Small helpers: ids, clock, filename checks, key masking."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import datetime, timezone
from typing import Any


def iso(ts: float | None = None) -> str:
    ts = time.time() if ts is None else ts
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """The timestamp of an ``iso()`` string."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(7)}"


def new_api_key() -> str:
    return "sk_test_" + secrets.token_hex(24)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def mask_key(key: str | None) -> str:
    """``sk_...abcd`` at most: never more than the last four characters."""
    if not key:
        return "<none>"
    return f"sk_...{key[-4:]}" if len(key) > 12 else "sk_..."


_DRIVE = re.compile(r"^[A-Za-z]:")


_CONTROL = re.compile(r"[\x00-\x1f]")


def check_filename(name: str, what: str = "filename") -> str:
    """Reject path traversal, absolute paths, backslashes and NUL bytes.

    Relative names with ``/`` separators (``folder/file.txt``) are allowed.
    Returns the name unchanged; raises ``ValueError`` with a clear message.
    """
    if not isinstance(name, str) or name == "":
        raise ValueError(f"{what} must be a non-empty string")
    if "\x00" in name:
        raise ValueError(f"{what} must not contain NUL bytes")
    if "\\" in name:
        raise ValueError(f"{what} must not contain backslashes ('\\'): {name!r}")
    if name.startswith("/") or _DRIVE.match(name) or name.startswith("~"):
        raise ValueError(f"{what} must be a relative name, not an absolute path: {name!r}")
    if ".." in name.split("/"):
        raise ValueError(f"{what} must not contain '..' path components: {name!r}")
    if _CONTROL.search(name):
        raise ValueError(f"{what} must not contain control characters: {name!r}")
    return name


def select_fields(doc: dict[str, Any], fields: list[str], keep: tuple[str, ...]) -> dict[str, Any]:
    """The ``select`` of a list request: the ``keep`` keys plus each dotted field path present."""
    out = {k: doc[k] for k in keep}
    for f in fields:
        cur: Any = doc
        parts = f.split(".")
        for p in parts:
            cur = cur.get(p) if isinstance(cur, dict) else None
        if cur is None:
            continue
        tgt = out
        for p in parts[:-1]:
            tgt = tgt.setdefault(p, {})
        tgt[parts[-1]] = cur
    return out
