"""The contract's ``FileFilters`` applied to :class:`SourceFile` (pure functions).

All filters are optional and combined with AND logic:

- ``include_patterns`` / ``exclude_patterns``: glob patterns (``*``, ``?``,
  ``[abc]``; ``*`` also crosses ``/``), case-sensitive. A pattern matches a
  file when it matches its path below the listed root, its full key/path, or
  (for patterns without ``/``) its name. A file must match at least one
  include pattern (when given) and no exclude pattern.
- ``extensions`` (documented on ``SyncCreateRequest.file_filters``):
  ``[".mp4", "jpg"]``, case-insensitive, dot optional.
- ``min_size_bytes`` / ``max_size_bytes``: inclusive bounds.
- ``modified_after`` / ``modified_before``: ISO 8601 datetimes, strict
  comparisons; naive datetimes are taken as UTC.
- ``mime_types``: exact types or wildcards (``video/*``); a file without a
  provider MIME type is judged by the type guessed from its name.

A file whose size (or modified time) is unknown fails a size (or time) filter.
"""

from __future__ import annotations

import fnmatch
import mimetypes
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .base import SourceFile

__all__ = ["FileFilters", "FilterError", "parse_filters", "matches", "apply_filters", "rejection_reason"]


class FilterError(ValueError):
    """A ``file_filters`` value is malformed; ``field`` names the culprit."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"file_filters.{field}: {message}")


@dataclass(frozen=True)
class FileFilters:
    include_patterns: tuple[str, ...] | None = None
    exclude_patterns: tuple[str, ...] | None = None
    extensions: tuple[str, ...] | None = None
    min_size_bytes: int | None = None
    max_size_bytes: int | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    mime_types: tuple[str, ...] | None = None

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in self.__dataclass_fields__)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if v is None:
                continue
            out[name] = v.isoformat() if isinstance(v, datetime) else (list(v) if isinstance(v, tuple) else v)
        return out


_FIELDS = tuple(FileFilters.__dataclass_fields__)


def _str_list(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise FilterError(name, f"must be a list of strings, got {type(value).__name__}")
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise FilterError(f"{name}[{i}]", "must be a non-empty string")
        out.append(v.strip())
    return tuple(out)


def _size(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise FilterError(name, f"must be a whole number of bytes, got {value!r}")
    if value < 0:
        raise FilterError(name, "must be >= 0")
    return value


def _when(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise FilterError(
                name, f"must be an ISO 8601 datetime (e.g. 2024-01-31T00:00:00Z), got {value!r}"
            ) from None
    else:
        raise FilterError(name, f"must be an ISO 8601 datetime string, got {type(value).__name__}")
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _norm_ext(e: str) -> str:
    e = e.lower()
    return e if e.startswith(".") else "." + e


def parse_filters(filters: Any) -> FileFilters:
    """A validated :class:`FileFilters` from a dict (the contract's JSON), an
    existing ``FileFilters``, any object with those attributes (e.g. a pydantic
    model), or None. Unknown keys raise :class:`FilterError` (a typo must not
    silently sync everything)."""
    if filters is None:
        return FileFilters()
    if isinstance(filters, FileFilters):
        return filters
    if not isinstance(filters, Mapping):
        dump = getattr(filters, "model_dump", None) or getattr(filters, "dict", None)
        if callable(dump):
            filters = dump()
        else:
            filters = {k: getattr(filters, k) for k in _FIELDS if hasattr(filters, k)}
    unknown = sorted(set(filters) - set(_FIELDS))
    if unknown:
        raise FilterError(unknown[0], f"unknown filter; supported filters: {', '.join(_FIELDS)}")
    ff = FileFilters(
        include_patterns=_str_list("include_patterns", filters.get("include_patterns")),
        exclude_patterns=_str_list("exclude_patterns", filters.get("exclude_patterns")),
        extensions=(lambda t: tuple(_norm_ext(e) for e in t) if t else t)(
            _str_list("extensions", filters.get("extensions"))
        ),
        min_size_bytes=_size("min_size_bytes", filters.get("min_size_bytes")),
        max_size_bytes=_size("max_size_bytes", filters.get("max_size_bytes")),
        modified_after=_when("modified_after", filters.get("modified_after")),
        modified_before=_when("modified_before", filters.get("modified_before")),
        mime_types=(lambda t: tuple(m.lower() for m in t) if t else t)(
            _str_list("mime_types", filters.get("mime_types"))
        ),
    )
    if ff.min_size_bytes is not None and ff.max_size_bytes is not None and ff.min_size_bytes > ff.max_size_bytes:
        raise FilterError(
            "min_size_bytes", f"({ff.min_size_bytes}) is larger than max_size_bytes ({ff.max_size_bytes})"
        )
    if ff.modified_after and ff.modified_before and ff.modified_after >= ff.modified_before:
        raise FilterError("modified_after", "must be earlier than modified_before")
    return ff


def _candidates(f: SourceFile) -> list[str]:
    rel = f.relative_path or f.key
    out = [rel, f.key, f.key.lstrip("/"), rel.lstrip("/")]
    return list(dict.fromkeys(x for x in out if x))


def _pattern_matches(pattern: str, f: SourceFile) -> bool:
    if any(fnmatch.fnmatchcase(c, pattern) for c in _candidates(f)):
        return True
    if "/" not in pattern and fnmatch.fnmatchcase(f.name, pattern):
        return True
    # "*/drafts/*" should also match "drafts/x" at the top of the listed root
    if pattern.startswith("*/"):
        return any(fnmatch.fnmatchcase(c, pattern[2:]) for c in _candidates(f))
    return False


def _mime_of(f: SourceFile) -> str | None:
    if f.mime_type:
        return f.mime_type.split(";")[0].strip().lower()
    guessed, _ = mimetypes.guess_type(f.name)
    return guessed.lower() if guessed else None


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def rejection_reason(f: SourceFile, filters: Any) -> str | None:
    """None when ``f`` passes ``filters``, else a short reason (first failing filter)."""
    ff = parse_filters(filters)
    if ff.include_patterns is not None and not any(_pattern_matches(p, f) for p in ff.include_patterns):
        return "include_patterns"
    if ff.exclude_patterns and any(_pattern_matches(p, f) for p in ff.exclude_patterns):
        return "exclude_patterns"
    if ff.extensions is not None:
        name = f.name.lower()
        if not any(name.endswith(e) for e in ff.extensions):
            return "extensions"
    if ff.min_size_bytes is not None and (f.size is None or f.size < ff.min_size_bytes):
        return "min_size_bytes"
    if ff.max_size_bytes is not None and (f.size is None or f.size > ff.max_size_bytes):
        return "max_size_bytes"
    if ff.modified_after is not None and (f.modified is None or not _aware(f.modified) > ff.modified_after):
        return "modified_after"
    if ff.modified_before is not None and (f.modified is None or not _aware(f.modified) < ff.modified_before):
        return "modified_before"
    if ff.mime_types is not None:
        mime = _mime_of(f)
        if mime is None or not any(fnmatch.fnmatchcase(mime, m) for m in ff.mime_types):
            return "mime_types"
    return None


def matches(f: SourceFile, filters: Any) -> bool:
    return rejection_reason(f, filters) is None


def apply_filters(files: Iterable[SourceFile], filters: Any) -> Iterator[SourceFile]:
    """Lazily yield the files passing ``filters``; the filters are validated
    right away (a malformed filter raises here, not at the first ``next``)."""
    ff = parse_filters(filters)
    if ff.is_empty:
        return iter(files)
    return (f for f in files if rejection_reason(f, ff) is None)
