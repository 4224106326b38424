"""Ingestion planning: turn parsed source lines (or DataFrame rows) into a list of items.

Nothing here talks to the network. :func:`build_plan` expands globs and
directories (sorted, deterministic), stats and sniffs every file, merges
metadata, resolves connection names, and collects *every* problem before
raising one :class:`PlanError`, so nothing is sent when anything is wrong.

Rules:

* Globs: only ``*``, ``?`` and ``**`` (recursive) are wildcards; ``[`` is a literal
  character (file names like ``shot [1].jpg`` are common). Globs match files
  only, and like the shell they skip hidden entries (``.git``, ``.ipynb_checkpoints``,
  ``.DS_Store``) unless the pattern names them literally.
* A directory means every regular file under it, recursively, skipping hidden
  files and directories. An empty directory or a glob that matches nothing is an error.
* Relative paths are relative to ``cwd``; ``~`` is expanded.
* Duplicates (the same resolved file, the same URL, the same sync) appear once,
  at the position of their first occurrence; metadata of later occurrences is
  merged over the earlier one, so ``data/*.jpg`` followed by
  ``data/a.jpg {"label": "x"}`` labels just that one file.
* Metadata: ``default_metadata`` <- line (or row) metadata.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import glob
import hashlib
import math
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mixpeek_magics._mime import blob_type_for, guess_mime

from .parser import SourceLine

__all__ = [
    "PlanItem",
    "Plan",
    "PlanProblem",
    "PlanError",
    "build_plan",
    "plan_from_records",
    "read_digest",
    "sha256_file",
    "SNIFF_BYTES",
]

SNIFF_BYTES = 512
_MAX_LISTED = 10
PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- data types


@dataclass
class PlanItem:
    """One thing to ingest: a local file, a URL, or a server-side sync."""

    source: str  # absolute local path, URL, or s3:// / gdrive:// address
    kind: str  # "file" | "url" | "s3" | "gdrive"
    line: int | None  # body line it came from (None for frame rows)
    size: int | None = None
    mime_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    connection_id: str | None = None
    sha256: str | None = None
    row: Any = None  # frame row label (plan_from_records), else None
    connection: str | None = None  # the connection as written after ``via``

    @property
    def filename(self) -> str:
        """Base name of the file or of the URL path ('' for a bucket root)."""
        if self.kind == "file":
            return os.path.basename(self.source)
        tail = self.source.split("://", 1)[-1].split("?", 1)[0].split("#", 1)[0]
        return tail.rstrip("/").rsplit("/", 1)[-1] if "/" in tail.rstrip("/") else ""

    @property
    def blob_type(self) -> str | None:
        return blob_type_for(self.mime_type)

    @property
    def path(self) -> Path | None:
        return Path(self.source) if self.kind == "file" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "line": self.line,
            "row": self.row,
            "filename": self.filename,
            "size": self.size,
            "mime_type": self.mime_type,
            "blob_type": self.blob_type,
            "metadata": dict(self.metadata),
            "connection": self.connection,
            "connection_id": self.connection_id,
            "sha256": self.sha256,
        }


@dataclass
class Plan:
    """The items to ingest, in body order (files of one glob sorted by path)."""

    items: list[PlanItem] = field(default_factory=list)
    #: later occurrences that were merged into an earlier item: (source, line or row)
    duplicates: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def files(self) -> list[PlanItem]:
        return [i for i in self.items if i.kind == "file"]

    @property
    def urls(self) -> list[PlanItem]:
        return [i for i in self.items if i.kind == "url"]

    @property
    def syncs(self) -> list[PlanItem]:
        return [i for i in self.items if i.kind in ("s3", "gdrive")]

    @property
    def total_bytes(self) -> int:
        return sum(i.size or 0 for i in self.items)

    def to_records(self) -> list[dict[str, Any]]:
        return [i.to_dict() for i in self.items]

    def summary(self) -> str:
        parts = []
        if self.files:
            parts.append(f"{len(self.files)} file{'s' if len(self.files) != 1 else ''} ({_human(self.total_bytes)})")
        if self.urls:
            parts.append(f"{len(self.urls)} URL{'s' if len(self.urls) != 1 else ''}")
        if self.syncs:
            parts.append(f"{len(self.syncs)} sync{'s' if len(self.syncs) != 1 else ''}")
        return ", ".join(parts) or "nothing to ingest"

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[PlanItem]:
        return iter(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass(frozen=True)
class PlanProblem:
    """One problem found while planning; ``line`` (body) or ``row`` (frame) locates it."""

    message: str
    line: int | None = None
    row: Any = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"line {self.line}: {self.message}"
        if self.row is not None:
            return f"row {self.row}: {self.message}"
        return self.message


class PlanError(ValueError):
    """Planning found problems; ``.problems`` lists every one. Nothing was sent."""

    def __init__(self, problems: Sequence[PlanProblem]):
        self.problems = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found, nothing was ingested"
        return head + ":\n" + "\n".join("  " + str(p) for p in self.problems)

    def __str__(self) -> str:
        return self._text()


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


# --------------------------------------------------------------------------- hashing


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk_size`` pieces (constant memory)."""
    return read_digest(path, chunk_size, head_size=0)[1]


def read_digest(path: PathLike, chunk_size: int = 1 << 20, head_size: int = SNIFF_BYTES) -> tuple[int, str, bytes]:
    """Size, hex SHA-256 and first ``head_size`` bytes of a file, from one open and one pass.

    The size is what was read (so it matches the hash, even if the file changes
    meanwhile). The buffer is the smaller of ``chunk_size`` and the file: a bulk
    upload hashes many small files, and zero-filling a 1 MB buffer for each
    cost more than hashing a 100 KB file."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    h = hashlib.sha256()
    head = b""
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(min(chunk_size, os.fstat(f.fileno()).st_size + 1))  # +1: EOF in the same read
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            if size < head_size:
                head += bytes(view[: min(n, head_size - size)])
            h.update(view[:n])
            size += n
    return size, h.hexdigest(), head


# --------------------------------------------------------------------------- file helpers


def _has_magic(s: str) -> bool:
    return "*" in s or "?" in s


def _escape_brackets(s: str) -> str:
    # only * ? ** are wildcards for us: make "[" literal
    return s.replace("[", "[[]")


def _glob_pattern(target: str, cwd: str) -> str:
    """A glob pattern for ``target`` with the non-user parts (cwd, home) escaped."""
    if target == "~" or target.startswith(("~/", "~" + os.sep)):
        home = os.path.expanduser("~")
        return glob.escape(home) + _escape_brackets(target[1:])
    if target.startswith("~"):
        first, sep, rest = target.partition("/")
        expanded = os.path.expanduser(first)
        if expanded != first:
            return glob.escape(expanded) + sep + _escape_brackets(rest)
    if os.path.isabs(target):
        return _escape_brackets(target)
    return os.path.join(glob.escape(cwd), _escape_brackets(target))


def _absolute(target: str, cwd: str) -> str:
    p = os.path.expanduser(target)
    if not os.path.isabs(p):
        p = os.path.join(cwd, p)
    return os.path.normpath(p)


def _walk_dir(root: str) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                found.append(full)
    return sorted(found)


def _read_head(path: str) -> tuple[int | None, bytes | None, str | None]:
    """(size, first bytes, error) of a regular file; never blocks on FIFOs."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, None, "file not found" if not os.path.lexists(path) else "broken symbolic link"
    except OSError as exc:
        return None, None, f"cannot access file: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return None, None, "is a directory"
    if not stat.S_ISREG(st.st_mode):
        return None, None, "not a regular file"
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
            size = os.fstat(f.fileno()).st_size
    except PermissionError:
        return None, None, "cannot read file: permission denied"
    except OSError as exc:
        return None, None, f"cannot read file: {exc.strerror or exc}"
    return size, head, None


# --------------------------------------------------------------------------- builder


class _Builder:
    def __init__(self, default_metadata: Mapping[str, Any] | None, hash_files: bool):
        if default_metadata is not None and not isinstance(default_metadata, Mapping):
            raise TypeError("default_metadata must be a mapping")
        self.default_metadata = dict(default_metadata or {})
        self.hash_files = hash_files
        self.items: list[PlanItem] = []
        self.by_key: dict[tuple[str | None, ...], PlanItem] = {}
        self.duplicates: list[tuple[str, Any]] = []
        self.problems: list[PlanProblem] = []

    def problem(self, message: str, line: int | None = None, row: Any = None) -> None:
        self.problems.append(PlanProblem(message, line, row))

    def _add(self, key: tuple[str | None, ...], item: PlanItem, extra_metadata: Mapping[str, Any]) -> None:
        existing = self.by_key.get(key)
        if existing is not None:
            existing.metadata.update(extra_metadata)
            self.duplicates.append((item.source, item.line if item.line is not None else item.row))
            return
        item.metadata = {**self.default_metadata, **extra_metadata}
        self.by_key[key] = item
        self.items.append(item)

    def add_file(
        self,
        path: str,
        metadata: Mapping[str, Any],
        line: int | None = None,
        row: Any = None,
        shown_as: str | None = None,
    ) -> None:
        where = dict(line=line, row=row)
        size, head, error = _read_head(path)
        if error:
            self.problem(f"{error}: {shown_as or path}", **where)
            return
        key = ("file", os.path.realpath(path))
        if key in self.by_key:
            self._add(key, PlanItem(path, "file", line, row=row), metadata)
            return
        digest = None
        if self.hash_files:
            try:
                digest = sha256_file(path)
            except OSError as exc:
                self.problem(f"cannot read file: {exc.strerror or exc}: {path}", **where)
                return
        item = PlanItem(path, "file", line, size=size, mime_type=guess_mime(path, head), sha256=digest, row=row)
        self._add(key, item, metadata)

    def add_url(self, url: str, metadata: Mapping[str, Any], line: int | None = None, row: Any = None) -> None:
        item = PlanItem(url, "url", line, mime_type=guess_mime(url, default=None), row=row)
        self._add(("url", url), item, metadata)

    def add_sync(self, line: SourceLine, connection_id: str | None) -> None:
        item = PlanItem(line.target, line.kind, line.line, connection_id=connection_id, connection=line.connection)
        self._add((line.kind, line.target, connection_id or line.connection), item, line.metadata)

    def plan(self) -> Plan:
        if self.problems:
            raise PlanError(self.problems)
        return Plan(self.items, self.duplicates)


def _resolve_connection(name: str, known: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(connection_id, error) for a name or id given after ``via``."""
    if name in known:
        return known[name], None
    folded = [k for k in known if k.casefold() == name.casefold()]
    if len(folded) == 1:
        return known[folded[0]], None
    if len(folded) > 1:
        return None, f"connection name {name!r} is ambiguous: matches {', '.join(repr(k) for k in sorted(folded))}"
    if name in set(known.values()):
        return name, None
    names = sorted(known)
    msg = f"unknown connection {name!r}"
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    elif names:
        shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
        more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
        msg += f"; known connections: {shown}{more}"
    else:
        msg += "; no storage connections exist yet (create one first)"
    return None, msg


def build_plan(
    lines: Iterable[SourceLine],
    cwd: PathLike | None = None,
    default_metadata: Mapping[str, Any] | None = None,
    known_connections: Mapping[str, str] | None = None,
    hash_files: bool = False,
) -> Plan:
    """Expand parsed source lines into a :class:`Plan`, or raise :class:`PlanError` listing every problem.

    ``known_connections`` maps connection names *and/or* ids to connection ids;
    ``None`` skips the check (``connection_id`` is then the text after ``via``).
    """
    base = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
    b = _Builder(default_metadata, hash_files)
    for ln in lines:
        if ln.kind == "url":
            b.add_url(ln.target, ln.metadata, line=ln.line)
        elif ln.kind in ("s3", "gdrive"):
            conn_id: str | None = ln.connection
            if known_connections is not None and ln.connection is not None:
                conn_id, error = _resolve_connection(ln.connection, known_connections)
                if error:
                    b.problem(error, line=ln.line)
                    continue
            b.add_sync(ln, conn_id)
        elif ln.kind == "file":
            _plan_file_line(b, ln, base)
        else:
            b.problem(f"unknown source kind {ln.kind!r}", line=ln.line)
    return b.plan()


def _plan_file_line(b: _Builder, ln: SourceLine, base: str) -> None:
    target = ln.target
    if _has_magic(target):
        pattern = _glob_pattern(target, base)
        try:
            matches = sorted(os.path.normpath(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        except (OSError, ValueError) as exc:  # pragma: no cover - exotic patterns
            b.problem(f"cannot expand {target!r}: {exc}", line=ln.line)
            return
        if not matches:
            b.problem(
                f"no files match {target!r} (relative to {base})"
                if not os.path.isabs(os.path.expanduser(target))
                else f"no files match {target!r}",
                line=ln.line,
            )
            return
        for p in matches:
            b.add_file(p, ln.metadata, line=ln.line)
        return
    path = _absolute(target, base)
    if os.path.isdir(path):
        files = _walk_dir(path)
        if not files:
            b.problem(f"directory has no (non-hidden) files: {target!r}", line=ln.line)
            return
        for p in files:
            b.add_file(p, ln.metadata, line=ln.line)
        return
    b.add_file(path, ln.metadata, line=ln.line, shown_as=target if target == path else f"{target!r} ({path})")


# --------------------------------------------------------------------------- frames

_MISSING = object()
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(value != value)  # numpy NaN scalars
    except Exception:
        return False


def _jsonable(value: Any) -> Any:
    """Convert a cell value to a JSON value; raise TypeError when impossible."""
    if _is_missing(value):
        return None
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isinf(value):
            raise TypeError("infinite numbers are not valid JSON")
        return value
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    for conv in ("tolist", "item"):  # numpy arrays and scalars, without importing numpy
        fn = getattr(value, conv, None)
        if callable(fn):
            try:
                converted = fn()
            except Exception:
                continue
            if converted is not value:
                return _jsonable(converted)
    if hasattr(value, "isoformat"):  # pandas Timestamp, Period-like
        try:
            return value.isoformat()
        except Exception:
            pass
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serialisable")


def plan_from_records(
    records: Iterable[Mapping[str, Any]],
    path_col: str,
    metadata_cols: Sequence[str] | str | None = None,
    cwd: PathLike | None = None,
    *,
    default_metadata: Mapping[str, Any] | None = None,
    hash_files: bool = False,
    index: Sequence[Any] | None = None,
) -> Plan:
    """Plan one item per row (``--frame DF --path-col path --metadata-cols a,b``).

    ``records`` are row mappings (``df.to_dict("records")``). The ``path_col``
    value is a local file path (relative to ``cwd``, ``~`` expanded, no globs) or
    an http(s) URL. ``metadata_cols``: list of columns (or a comma-separated
    string) copied into each item's metadata; ``None`` or ``[]`` means none,
    ``"*"`` means every column except ``path_col``. Missing values (None, NaN,
    NaT) become null. Problems name the row (``index[i]`` when ``index`` is
    given, else the 0-based position).
    """
    base = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
    cols = _metadata_columns(metadata_cols)
    b = _Builder(default_metadata, hash_files)
    labels = list(index) if index is not None else None
    for pos, rec in enumerate(records):
        label = labels[pos] if labels is not None and pos < len(labels) else pos
        _plan_record(b, rec, label, path_col, cols, base)
    return b.plan()


def _metadata_columns(metadata_cols: Sequence[str] | str | None) -> list[str] | None:
    """The metadata columns asked for; None for every column (``"*"``)."""
    if isinstance(metadata_cols, str):
        if metadata_cols.strip() == "*":
            return None
        return [c.strip() for c in metadata_cols.split(",") if c.strip()]
    return list(metadata_cols or [])


def _plan_record(b: _Builder, rec: Any, label: Any, path_col: str, cols: list[str] | None, base: str) -> None:
    """One row: its metadata columns, then its path or URL (every problem of the row reported)."""
    if not isinstance(rec, Mapping):
        b.problem(f"expected a mapping of column -> value, got {type(rec).__name__}", row=label)
        return
    raw = rec.get(path_col, _MISSING)
    if raw is _MISSING:
        b.problem(f"no column {path_col!r} (columns: {', '.join(map(str, list(rec)[:_MAX_LISTED]))})", row=label)
        return
    names = [c for c in rec if c != path_col] if cols is None else cols
    metadata = _record_metadata(b, rec, names, label)
    if _is_missing(raw) or (isinstance(raw, str) and not raw.strip()):
        b.problem(f"empty {path_col!r}", row=label)
        return
    if not isinstance(raw, (str, os.PathLike)):
        b.problem(f"{path_col!r} must be a path or URL, got {type(raw).__name__}", row=label)
        return
    value = os.fspath(raw)
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if metadata is not None:
        _add_record_target(b, value.strip(), metadata, label, path_col, base)


def _record_metadata(b: _Builder, rec: Mapping[str, Any], names: Sequence[Any], label: Any) -> dict[str, Any] | None:
    """The row's metadata as JSON values; None when a column is missing or not JSON-serialisable."""
    ok = True
    metadata: dict[str, Any] = {}
    for col in names:
        if col not in rec:
            b.problem(f"no metadata column {col!r}", row=label)
            ok = False
            continue
        try:
            metadata[str(col)] = _jsonable(rec[col])
        except (TypeError, ValueError, RecursionError) as exc:
            b.problem(f"column {col!r}: {exc}", row=label)
            ok = False
    return metadata if ok else None


def _add_record_target(b: _Builder, value: str, metadata: dict[str, Any], label: Any, path_col: str, base: str) -> None:
    """A row's path (plain or ``file://``) or http(s) URL into the plan."""
    lower = value.lower()
    if lower.startswith(("http://", "https://")):
        b.add_url(value, metadata, row=label)
    elif lower.startswith("file://"):
        b.add_file(_absolute(unquote(urlsplit(value).path), base), metadata, row=label, shown_as=value)
    elif _SCHEME_RE.match(value):
        b.problem(
            f"unsupported {path_col!r} {value!r}: a frame row must hold a local path or an http(s) URL", row=label
        )
    else:
        path = _absolute(value, base)
        b.add_file(path, metadata, row=label, shown_as=value if value == path else f"{value!r} ({path})")
