"""Parser for the body of an ``%%ingest`` cell.

Grammar, one source per line::

    <source> [via <connection>] [<json-object>] [# comment]

* ``<source>`` is a local path / glob / directory, an ``http(s)://`` URL, an
  ``s3://bucket/prefix`` or a ``gdrive://<folder or file id>``. It may contain
  spaces; to put ``#``-after-a-space or `` via `` into a path, double-quote the
  whole source: ``"data/ride via bus/#1.jpg"`` (``\\"`` and ``\\\\`` escape).
* ``via <connection>`` is required for ``s3://`` and ``gdrive://`` and refused
  for files and URLs. The connection is a bare token (``conn_abc123``) or a
  double-quoted name (``"Production S3"``).
* ``<json-object>``: the last balanced ``{...}`` of the line, preceded by
  whitespace, that parses as a JSON object, is the line's metadata. It is never
  interpolated. A trailing whitespace-preceded ``{`` group that starts with a
  quote but is not valid JSON is reported as invalid metadata.
* ``#`` starts a comment when it is at the start of the line or preceded by
  whitespace, and is outside quotes and braces. A ``#`` right after a non-space
  character is part of the token, so ``https://x/a#frag`` keeps its fragment.
* ``{expr}`` in the source and in the connection (bare or quoted: quotes only
  group words, they do not stop interpolation) is evaluated IPython style in
  the ``user_ns`` mapping and inserted as ``str(value)``; ``{{`` and ``}}`` are
  literal braces. Interpolated text is never re-parsed: a value containing
  ``#``, `` via `` or braces stays part of the source.

Every problem of the body is collected; :func:`parse_body` raises one
:class:`IngestSyntaxError` listing them all with 1-based line and column.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "SOURCE_KINDS",
    "SourceLine",
    "ParseError",
    "IngestSyntaxError",
    "parse_body",
    "split_lines",
]

SOURCE_KINDS = ("file", "url", "s3", "gdrive")
_SUPPORTED = (
    "supported sources: local paths/globs/directories, http:// or https:// URLs, "
    "s3://bucket/prefix via <connection>, gdrive://<id> via <connection>"
)
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_GDRIVE_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class SourceLine:
    """One parsed source line of the cell body."""

    line: int
    kind: str  # "file" | "url" | "s3" | "gdrive"
    target: str
    metadata: dict[str, Any] = field(default_factory=dict)
    connection: str | None = None
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "kind": self.kind,
            "target": self.target,
            "metadata": dict(self.metadata),
            "connection": self.connection,
            "raw": self.raw,
        }


@dataclass(frozen=True)
class ParseError:
    """One problem found in the body; ``line`` and ``column`` are 1-based."""

    line: int
    column: int
    message: str
    source_line: str = ""

    def __str__(self) -> str:
        return f"line {self.line}, col {self.column}: {self.message}"


class IngestSyntaxError(ValueError):
    """The ``%%ingest`` body has one or more errors; ``.errors`` lists them all."""

    def __init__(self, errors: list[ParseError]):
        self.errors = list(errors)
        n = len(self.errors)
        head = f"{n} error{'s' if n != 1 else ''} in %%ingest body"
        super().__init__(head + ":\n" + "\n".join("  " + str(e) for e in self.errors))

    def __str__(self) -> str:  # keep str() stable even if args are mutated
        n = len(self.errors)
        head = f"{n} error{'s' if n != 1 else ''} in %%ingest body"
        return head + ":\n" + "\n".join("  " + str(e) for e in self.errors)


class _LineError(Exception):
    def __init__(self, col: int, message: str):
        super().__init__(message)
        self.col = col  # 0-based index into the raw line
        self.message = message


def split_lines(body: str) -> list[str]:
    """The lines of ``body`` as the parser numbers them (split on ``\\n``, ``\\r`` stripped)."""
    return [ln[:-1] if ln.endswith("\r") else ln for ln in body.split("\n")]


# --------------------------------------------------------------------------- scanning


@dataclass
class _Group:
    start: int  # index of "{"
    end: int  # index just past the matching "}"


@dataclass
class _Quote:
    start: int  # index of the opening quote
    end: int  # index just past the closing quote


@dataclass
class _Scan:
    code_end: int  # where the comment starts (or len(line))
    groups: list[_Group]
    quotes: list[_Quote]
    errors: list[_LineError]


def _scan_group(text: str, i: int) -> int:
    """Given text[i] == "{", return the index just past its matching "}" (or -1).

    Tracks nested ``{[(``, and single/double quoted strings with backslash
    escapes, so ``{"a": "}"}`` and ``{d['k}']}`` are one group each.
    """
    depth = 0
    n = len(text)
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _scan_quote(text: str, i: int) -> int:
    """Given text[i] == '"', return the index just past the closing quote (or -1)."""
    n = len(text)
    i += 1
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    return -1


def _scan(line: str) -> _Scan:
    groups: list[_Group] = []
    quotes: list[_Quote] = []
    errors: list[_LineError] = []
    n = len(line)
    i = 0
    while i < n:
        c = line[i]
        at_token_start = i == 0 or line[i - 1].isspace()
        if c == "#" and at_token_start:
            return _Scan(i, groups, quotes, errors)
        if c == '"' and at_token_start:
            end = _scan_quote(line, i)
            if end < 0:
                errors.append(_LineError(i, "unterminated quoted string"))
                return _Scan(n, groups, quotes, errors)
            quotes.append(_Quote(i, end))
            i = end
            continue
        if c == "{":
            if line.startswith("{{", i):
                i += 2
                continue
            end = _scan_group(line, i)
            if end < 0:
                errors.append(_LineError(i, "unclosed '{' (write '{{' for a literal brace)"))
                return _Scan(n, groups, quotes, errors)
            groups.append(_Group(i, end))
            i = end
            continue
        if c == "}":
            if line.startswith("}}", i):
                i += 2
                continue
            errors.append(_LineError(i, "single '}' is not allowed (write '}}' for a literal brace)"))
        i += 1
    return _Scan(n, groups, quotes, errors)


# --------------------------------------------------------------------------- metadata


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _json_object(text: str) -> tuple[dict[str, Any] | None, tuple[int, str] | None]:
    """Parse ``text`` as a JSON object. Returns (obj, None) or (None, (offset, message))."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return None, (exc.pos, exc.msg)
    except (ValueError, RecursionError) as exc:
        return None, (0, str(exc) or type(exc).__name__)
    if not isinstance(obj, dict):  # pragma: no cover - text starts with "{"
        return None, (0, "metadata must be a JSON object")
    return obj, None


def _looks_like_json(inner: str) -> bool:
    s = inner.strip()
    return s == "" or s[0] in "\"'"


# --------------------------------------------------------------------------- interpolation


class _Namespace:
    """The globals ``{expr}`` is evaluated in: a private copy of the user namespace.

    Used as *globals* (not locals) so names also resolve inside comprehensions and
    lambdas, as in IPython; copied so ``eval`` never adds ``__builtins__`` to the
    caller's mapping. Built on first use only.
    """

    def __init__(self, user_ns: Mapping[str, Any] | None):
        self._user_ns = user_ns
        self._globals: dict[str, Any] | None = None

    def globals(self) -> dict[str, Any]:
        if self._globals is None:
            g: dict[str, Any] = {}
            if self._user_ns is not None:
                g.update(self._user_ns)
            g.setdefault("__builtins__", builtins)
            self._globals = g
        return self._globals


_NAME_RE = re.compile(r"name '([^']+)' is not defined")


def _interpolate(text: str, cols: list[int], ns: _Namespace, errors: list[_LineError]) -> str:
    """Expand ``{expr}`` in ``text``; ``cols[k]`` is the raw-line index of ``text[k]``."""
    if "{" not in text and "}" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)

    def col(k: int) -> int:
        if not cols:
            return 0
        return cols[min(max(k, 0), len(cols) - 1)]

    while i < n:
        c = text[i]
        if c == "{":
            if text.startswith("{{", i):
                out.append("{")
                i += 2
                continue
            end = _scan_group(text, i)
            if end < 0:
                errors.append(_LineError(col(i), "unclosed '{' (write '{{' for a literal brace)"))
                return "".join(out)
            expr = text[i + 1 : end - 1]
            value = _evaluate(expr, ns, col(i), errors)
            if value is not None:
                out.append(value)
            i = end
            continue
        if c == "}":
            if text.startswith("}}", i):
                out.append("}")
                i += 2
                continue
            errors.append(_LineError(col(i), "single '}' is not allowed (write '}}' for a literal brace)"))
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _evaluate(expr: str, ns: _Namespace, brace_col: int, errors: list[_LineError]) -> str | None:
    """Evaluate one ``{expr}``; on failure record an error and return None."""
    stripped = expr.strip()
    expr_col = brace_col + 1 + (len(expr) - len(expr.lstrip()))
    if not stripped:
        errors.append(_LineError(brace_col, "empty expression '{}' (write '{{}}' for literal braces)"))
        return None
    try:
        code = compile(stripped, "<ingest>", "eval")
    except SyntaxError as exc:
        offset = (exc.offset or 1) - 1 if exc.lineno in (None, 1) else 0
        msg = exc.msg or "invalid syntax"
        errors.append(
            _LineError(expr_col + max(0, min(offset, len(stripped))), f"invalid expression {{{stripped}}}: {msg}")
        )
        return None
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:
        errors.append(_LineError(expr_col, f"invalid expression {{{stripped}}}: {exc}"))
        return None
    try:
        value = eval(code, ns.globals())  # noqa: S307 - IPython-style {expr} in the user's own namespace
    except NameError as exc:
        name = exc.name
        if not name:
            m = _NAME_RE.search(str(exc))
            name = m.group(1) if m else None
        where = expr_col
        if name:
            m = re.search(r"(?<![\w.])" + re.escape(name) + r"(?!\w)", stripped)
            if m:
                where = expr_col + m.start()
            errors.append(_LineError(where, f"name '{name}' is not defined (in {{{stripped}}})"))
        else:
            errors.append(_LineError(where, f"cannot evaluate {{{stripped}}}: {exc}"))
        return None
    except Exception as exc:  # the user's expression may raise anything
        errors.append(_LineError(expr_col, f"cannot evaluate {{{stripped}}}: {type(exc).__name__}: {exc}"))
        return None
    try:
        return str(value)
    except Exception as exc:
        errors.append(_LineError(expr_col, f"cannot convert {{{stripped}}} to text: {type(exc).__name__}: {exc}"))
        return None


# --------------------------------------------------------------------------- line parsing


def _unquote(line: str, q: _Quote) -> tuple[str, list[int]]:
    """Content of a double-quoted string with ``\\"``/``\\\\`` unescaped, and a column map."""
    out: list[str] = []
    cols: list[int] = []
    i = q.start + 1
    end = q.end - 1
    while i < end:
        c = line[i]
        if c == "\\" and i + 1 < end and line[i + 1] in '"\\':
            out.append(line[i + 1])
            cols.append(i)
            i += 2
            continue
        out.append(c)
        cols.append(i)
        i += 1
    return "".join(out), cols


def _in_any(i: int, spans: Sequence[_Group | _Quote]) -> bool:
    return any(s.start <= i < s.end for s in spans)


_VIA_RE = re.compile(r"(?:(?<=\s)|^)via(?=\s|$)")


def _find_via(line: str, start: int, end: int, scan: _Scan) -> int | None:
    """Index of the last top-level ``via`` keyword in line[start:end], or None."""
    found = None
    for m in _VIA_RE.finditer(line, start, end):
        i = m.start()
        if i > start and not line[i - 1].isspace():
            continue
        if _in_any(i, scan.groups) or _in_any(i, scan.quotes):
            continue
        found = i
    return found


def _classify(source: str, col: int, errors: list[_LineError]) -> tuple[str | None, str]:
    """Return (kind, target) for an interpolated source; kind None when invalid."""
    m = _SCHEME_RE.match(source)
    if not m:
        return "file", source
    scheme = m.group(1).lower()
    rest = source[m.end() :]
    if scheme in ("http", "https"):
        if any(ch.isspace() for ch in source):
            errors.append(_LineError(col, "URL contains whitespace (percent-encode it as %20)"))
            return None, source
        try:
            parts = urlsplit(source)
            host = parts.hostname
        except ValueError as exc:
            errors.append(_LineError(col, f"invalid URL: {exc}"))
            return None, source
        if not host:
            errors.append(_LineError(col, f"URL has no host: {source!r}"))
            return None, source
        return "url", source
    if scheme == "s3":
        bucket = rest.split("/", 1)[0]
        if not bucket or any(ch.isspace() for ch in bucket):
            errors.append(_LineError(col, "s3:// source needs a bucket name: s3://bucket/prefix"))
            return None, source
        return "s3", "s3://" + rest
    if scheme == "gdrive":
        ident = rest.strip("/")
        if not ident or not _GDRIVE_ID_RE.match(ident):
            errors.append(_LineError(col, "gdrive:// source needs a folder or file id: gdrive://<id>"))
            return None, source
        return "gdrive", "gdrive://" + ident
    if scheme == "file":
        try:
            parts = urlsplit(source)
        except ValueError as exc:
            errors.append(_LineError(col, f"invalid file:// URL: {exc}"))
            return None, source
        if parts.netloc not in ("", "localhost"):
            errors.append(_LineError(col, f"file:// URL must be local, got host {parts.netloc!r}"))
            return None, source
        path = unquote(parts.path)
        if not path:
            errors.append(_LineError(col, "file:// URL has no path"))
            return None, source
        return "file", path
    errors.append(_LineError(col, f"unsupported source scheme '{m.group(1)}://'; {_SUPPORTED}"))
    return None, source


_Parsed = tuple[str, str, dict[str, Any], str | None]  # kind, target, metadata, connection


def _parse_line(raw: str, ns: _Namespace, errors: list[_LineError]) -> _Parsed | None:
    """One body line: ``<source> [via <connection>] [<json-object>]``; None for a blank or
    comment-only line and for a line with errors (appended to ``errors``)."""
    scan = _scan(raw)
    errors.extend(scan.errors)
    if scan.errors:
        return None
    span = _code_span(raw, scan)
    if span is None:
        return None  # blank or comment-only line
    first, code_end = span
    split = _split_metadata(raw, scan, first, code_end, errors)
    if split is None:
        return None
    metadata, head_end = split
    via = _split_connection(raw, scan, first, head_end, ns, errors)
    if via is None:
        return None
    connection, src_end, via_at = via
    source = _source(raw, scan, first, src_end, ns, errors)
    if source is None:
        return None
    kind, target = _classify(source, first, errors)
    if kind is None or not _via_fits(kind, via_at, src_end, errors):
        return None
    return kind, target, metadata, connection


def _code_span(raw: str, scan: _Scan) -> tuple[int, int] | None:
    """(first, end) of the line's code without surrounding space and comment; None when empty."""
    code_end = scan.code_end
    while code_end > 0 and raw[code_end - 1].isspace():
        code_end -= 1
    first = 0
    while first < code_end and raw[first].isspace():
        first += 1
    return (first, code_end) if first < code_end else None


def _split_metadata(
    raw: str, scan: _Scan, first: int, code_end: int, errors: list[_LineError]
) -> tuple[dict[str, Any], int] | None:
    """The trailing JSON metadata object (or ``{}``) and where the text before it ends."""
    metadata: dict[str, Any] = {}
    head_end = code_end
    groups = [g for g in scan.groups if g.end <= code_end]
    if groups:
        last = groups[-1]
        preceded_by_space = last.start > 0 and raw[last.start - 1].isspace()
        if last.end == code_end and (preceded_by_space or last.start == first):
            text = raw[last.start : last.end]
            obj, err = _json_object(text)
            if obj is not None:
                if last.start == first:
                    errors.append(_LineError(last.start, "metadata object without a source before it"))
                    return None
                metadata = obj
                head_end = last.start
            elif preceded_by_space and err is not None and _looks_like_json(text[1:-1]):
                offset, msg = err
                errors.append(_LineError(last.start + offset, f"metadata is not valid JSON: {msg}"))
                head_end = last.start  # keep checking the rest of the line
        misplaced = _misplaced_metadata(raw, groups, first, head_end)
        if misplaced is not None:
            errors.append(_LineError(misplaced, "metadata object must be at the end of the line"))
            return None
    while head_end > first and raw[head_end - 1].isspace():
        head_end -= 1
    if head_end <= first:
        errors.append(_LineError(first, "missing source before the metadata"))
        return None
    return metadata, head_end


def _misplaced_metadata(raw: str, groups: list[_Group], first: int, head_end: int) -> int | None:
    """Where a JSON object stands before ``head_end`` (metadata in the wrong place), if one does."""
    for g in groups:
        if g.end > head_end or g.start == first or not raw[g.start - 1].isspace():
            continue
        text = raw[g.start : g.end]
        if _looks_like_json(text[1:-1]) and _json_object(text)[0] is not None:
            return g.start
    return None


def _split_connection(
    raw: str, scan: _Scan, first: int, head_end: int, ns: _Namespace, errors: list[_LineError]
) -> tuple[str | None, int, int | None] | None:
    """(connection, end of the source, where ``via`` is) for the text before the metadata;
    the connection and ``via``'s place are None without ``via``."""
    via_at = _find_via(raw, first, head_end, scan)
    if via_at is None:
        return None, head_end, None
    conn_start = via_at + 3
    while conn_start < head_end and raw[conn_start].isspace():
        conn_start += 1
    if conn_start >= head_end:
        errors.append(_LineError(via_at, "'via' needs a connection name or id after it"))
        return None
    connection = _connection_name(raw, scan, conn_start, head_end, ns, errors)
    if connection is None:
        return None
    if not connection:
        errors.append(_LineError(conn_start, "empty connection name after 'via'"))
        return None
    src_end = via_at
    while src_end > first and raw[src_end - 1].isspace():
        src_end -= 1
    if src_end <= first:
        errors.append(_LineError(first, "missing source before 'via'"))
        return None
    return connection, src_end, via_at


def _connection_name(
    raw: str, scan: _Scan, start: int, end: int, ns: _Namespace, errors: list[_LineError]
) -> str | None:
    """The connection after ``via`` (a bare token or a double-quoted name), interpolated."""
    quote = next((q for q in scan.quotes if q.start == start), None)
    if quote is not None:
        if quote.end != end:
            errors.append(_LineError(quote.end, "unexpected text after the quoted connection name"))
            return None
        text, cols = _unquote(raw, quote)
    else:
        text = raw[start:end]
        if any(ch.isspace() for ch in text):
            errors.append(_LineError(start, 'connection names with spaces must be double-quoted: via "My connection"'))
            return None
        cols = list(range(start, end))
    n_err = len(errors)
    connection = _interpolate(text, cols, ns, errors).strip()
    return connection if len(errors) == n_err else None


def _source(raw: str, scan: _Scan, first: int, src_end: int, ns: _Namespace, errors: list[_LineError]) -> str | None:
    """The source (optionally one double-quoted string), interpolated."""
    src_quote = next((q for q in scan.quotes if q.start == first), None)
    if src_quote is not None and src_quote.end == src_end:
        text, cols = _unquote(raw, src_quote)
    else:
        if src_quote is not None:
            errors.append(_LineError(src_quote.end, "unexpected text after the quoted source"))
            return None
        text, cols = raw[first:src_end], list(range(first, src_end))
    n_err = len(errors)
    source = _interpolate(text, cols, ns, errors)
    if len(errors) > n_err:
        return None
    source = source.strip()
    if not source:
        errors.append(_LineError(first, "source is empty after interpolation"))
        return None
    return source


def _via_fits(kind: str, via_at: int | None, src_end: int, errors: list[_LineError]) -> bool:
    """Syncs need ``via <connection>``; files and URLs refuse it."""
    if kind in ("s3", "gdrive") and via_at is None:
        errors.append(_LineError(src_end, f"{kind}:// sources need a connection: add 'via <connection name or id>'"))
        return False
    if kind in ("file", "url") and via_at is not None:
        where = "URL" if kind == "url" else "local file"
        errors.append(_LineError(via_at, f"'via' only applies to s3:// and gdrive:// sources, not to a {where}"))
        return False
    return True


def parse_body(body: str, user_ns: Mapping[str, Any] | None = None) -> list[SourceLine]:
    """Parse an ``%%ingest`` cell body into :class:`SourceLine` objects.

    ``user_ns`` is the namespace ``{expr}`` is evaluated in (IPython's
    ``shell.user_ns``). Raises :class:`IngestSyntaxError` with every error.
    """
    if not isinstance(body, str):
        raise TypeError(f"body must be str, not {type(body).__name__}")
    ns = _Namespace(user_ns)
    result: list[SourceLine] = []
    all_errors: list[ParseError] = []
    for lineno, raw in enumerate(split_lines(body), start=1):
        errs: list[_LineError] = []
        try:
            parsed = _parse_line(raw, ns, errs)
        except RecursionError:
            errs.append(_LineError(0, "line is too deeply nested to parse"))
            parsed = None
        for e in sorted(errs, key=lambda e: e.col):
            col = min(max(e.col, 0), len(raw)) + 1
            all_errors.append(ParseError(lineno, col, e.message, raw))
        if parsed is not None and not errs:
            kind, target, metadata, connection = parsed
            result.append(SourceLine(lineno, kind, target, metadata, connection, raw))
    if all_errors:
        raise IngestSyntaxError(all_errors)
    return result
