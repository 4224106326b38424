"""The timeline journal: every observed task transition, in SQLite.

The Mixpeek API keeps no timestamps on tasks, so when a task was first seen,
started and finished is what a watcher observed and wrote down here. The file
lives outside the kernel (``_paths.journal_path()``, env ``MIXPEEK_JOURNAL_PATH``)
so it survives kernel restarts and lets a new kernel re-attach to unfinished
tasks. Several kernels may write at once: WAL mode, a busy timeout and short
``BEGIN IMMEDIATE`` transactions.

A row is written only when something changed (status, processed, total,
percentage, error), not on every poll.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mixpeek_magics.client import statuses
from mixpeek_magics.tracking.snapshot import TaskSnapshot

__all__ = ["Journal", "default_journal"]

BUSY_TIMEOUT_MS = 30_000

_NOT_STARTED = frozenset({"PENDING", "QUEUED", "DRAFT"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id        TEXT NOT NULL,
    base_url       TEXT NOT NULL DEFAULT '',
    organization   TEXT,
    namespace      TEXT,
    task_type      TEXT,
    bucket_id      TEXT,
    batch_id       TEXT,
    sync_config_id TEXT,
    label          TEXT,
    first_seen     TEXT NOT NULL,
    started        TEXT,
    finished       TEXT,
    last_seen      TEXT NOT NULL,
    last_status    TEXT NOT NULL,
    processed      INTEGER,
    total          INTEGER,
    percentage     REAL,
    error          TEXT,
    failed_items   TEXT,
    terminal       INTEGER NOT NULL DEFAULT 0,
    gone           INTEGER NOT NULL DEFAULT 0,
    context_json   TEXT,
    PRIMARY KEY (task_id, base_url)
);
CREATE TABLE IF NOT EXISTS transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL,
    base_url    TEXT NOT NULL DEFAULT '',
    observed_at TEXT NOT NULL,
    status      TEXT NOT NULL,
    processed   INTEGER,
    total       INTEGER,
    percentage  REAL,
    error       TEXT
);
CREATE INDEX IF NOT EXISTS transitions_task ON transitions (task_id, base_url, id);
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (terminal, gone, base_url);
"""

_TASK_COLUMNS = (
    "task_id",
    "base_url",
    "organization",
    "namespace",
    "task_type",
    "bucket_id",
    "batch_id",
    "sync_config_id",
    "label",
    "first_seen",
    "started",
    "finished",
    "last_seen",
    "last_status",
    "processed",
    "total",
    "percentage",
    "error",
    "failed_items",
    "terminal",
    "gone",
    "context_json",
)


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _norm_base_url(base_url: str | None) -> str:
    return (base_url or "").strip().rstrip("/")


class Journal:
    """SQLite journal of observed task timelines.

    ``Journal()`` uses ``_paths.journal_path()``; ``Journal(path)`` any file
    (``":memory:"`` is not supported: the point is to outlive the process).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from mixpeek_magics import _paths

            path = _paths.journal_path()
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._ready = False

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    # ------------------------------------------------------------ connection
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not self._ready:
            with self._lock:
                if not self._ready:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    self._ready = True
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    # ------------------------------------------------------------ writing
    def record(
        self,
        snapshot: TaskSnapshot,
        context: Mapping[str, Any] | None = None,
        *,
        base_url: str | None = None,
        organization: str | None = None,
        namespace: str | None = None,
        meta: Mapping[str, Any] | None = None,
        gone: bool = False,
    ) -> bool:
        """Record one observation; returns whether a transition was written."""
        return (
            self.record_many(
                [(snapshot, meta or {}, gone)],
                context,
                base_url=base_url,
                organization=organization,
                namespace=namespace,
            )
            == 1
        )

    def record_many(
        self,
        items: Iterable[tuple[TaskSnapshot, Mapping[str, Any], bool]],
        context: Mapping[str, Any] | None = None,
        *,
        base_url: str | None = None,
        organization: str | None = None,
        namespace: str | None = None,
    ) -> int:
        """Record several observations in one transaction: ``(snapshot, meta, gone)``.

        ``meta`` may carry ``bucket_id``, ``batch_id``, ``sync_config_id``,
        ``namespace_id``. Returns how many transitions were written (an
        observation equal to the last recorded state writes nothing).
        """
        items = list(items)
        if not items:
            return 0
        base = _norm_base_url(base_url)
        ctx_json = json.dumps(dict(context), default=str, sort_keys=True) if context else None
        written = 0
        with self._write() as conn:
            for snap, meta, gone in items:
                written += self._record_one(
                    conn, snap, dict(meta or {}), bool(gone), base, organization, namespace, ctx_json
                )
        return written

    def _record_one(
        self,
        conn: sqlite3.Connection,
        snap: TaskSnapshot,
        meta: dict[str, Any],
        gone: bool,
        base: str,
        organization: str | None,
        namespace: str | None,
        ctx_json: str | None,
    ) -> int:
        status = statuses.normalize(snap.status)
        observed = _iso(snap.observed_at)
        terminal = 1 if statuses.is_terminal(status) else 0
        failed_items = json.dumps(list(snap.failed_items)) if snap.failed_items else None
        row = conn.execute(
            "SELECT last_status, processed, total, percentage, error, gone, started, finished, context_json "
            "FROM tasks WHERE task_id=? AND base_url=?",
            (snap.task_id, base),
        ).fetchone()
        started = observed if status not in _NOT_STARTED else None
        finished = observed if terminal else None
        namespace = namespace or meta.get("namespace_id")
        if row is None:
            conn.execute(
                "INSERT INTO tasks (task_id, base_url, organization, namespace, task_type, bucket_id, batch_id,"
                " sync_config_id, label, first_seen, started, finished, last_seen, last_status, processed, total,"
                " percentage, error, failed_items, terminal, gone, context_json)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    snap.task_id,
                    base,
                    organization,
                    namespace,
                    snap.task_type,
                    meta.get("bucket_id"),
                    meta.get("batch_id"),
                    meta.get("sync_config_id"),
                    snap.label,
                    _iso(snap.first_seen) or observed,
                    started,
                    finished,
                    observed,
                    status,
                    snap.processed,
                    snap.total,
                    snap.percentage,
                    snap.error,
                    failed_items,
                    terminal,
                    1 if gone else 0,
                    ctx_json,
                ),
            )
        else:
            same = (
                row["last_status"] == status
                and row["processed"] == snap.processed
                and row["total"] == snap.total
                and _same_float(row["percentage"], snap.percentage)
                and row["error"] == snap.error
                and bool(row["gone"]) == gone
            )
            if same:
                return 0
            conn.execute(
                "UPDATE tasks SET last_seen=?, last_status=?, processed=?, total=?, percentage=?, error=?,"
                " failed_items=COALESCE(?, failed_items), terminal=?, gone=?,"
                " started=COALESCE(started, ?), finished=COALESCE(finished, ?),"
                " task_type=COALESCE(?, task_type), organization=COALESCE(organization, ?),"
                " namespace=COALESCE(namespace, ?), bucket_id=COALESCE(bucket_id, ?),"
                " batch_id=COALESCE(batch_id, ?), sync_config_id=COALESCE(sync_config_id, ?),"
                " label=COALESCE(label, ?), context_json=COALESCE(context_json, ?)"
                " WHERE task_id=? AND base_url=?",
                (
                    observed,
                    status,
                    snap.processed,
                    snap.total,
                    snap.percentage,
                    snap.error,
                    failed_items,
                    terminal,
                    1 if gone else 0,
                    started,
                    finished,
                    snap.task_type,
                    organization,
                    namespace,
                    meta.get("bucket_id"),
                    meta.get("batch_id"),
                    meta.get("sync_config_id"),
                    snap.label,
                    ctx_json,
                    snap.task_id,
                    base,
                ),
            )
        conn.execute(
            "INSERT INTO transitions (task_id, base_url, observed_at, status, processed, total, percentage, error)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (snap.task_id, base, observed, status, snap.processed, snap.total, snap.percentage, snap.error),
        )
        return 1

    def forget(self, task_ids: Sequence[str], base_url: str | None = None) -> int:
        """Delete these tasks and their transitions; returns how many tasks."""
        if not task_ids:
            return 0
        marks = ",".join("?" * len(task_ids))
        args: list[Any] = list(task_ids)
        where = f"task_id IN ({marks})"
        if base_url is not None:
            where += " AND base_url=?"
            args.append(_norm_base_url(base_url))
        with self._write() as conn:
            conn.execute(f"DELETE FROM transitions WHERE {where}", args)
            return conn.execute(f"DELETE FROM tasks WHERE {where}", args).rowcount

    # ------------------------------------------------------------ reading
    def unfinished(self, base_url: str | None = None) -> list[str]:
        """Ids of tasks last seen not terminal (and not gone), oldest first."""
        sql = "SELECT task_id FROM tasks WHERE terminal=0 AND gone=0"
        args: list[Any] = []
        if base_url is not None:
            sql += " AND base_url=?"
            args.append(_norm_base_url(base_url))
        with self._read() as conn:
            return [r[0] for r in conn.execute(sql + " ORDER BY first_seen, task_id", args)]

    def timeline(self, task_id: str, base_url: str | None = None) -> list[dict[str, Any]]:
        """Every recorded transition of ``task_id``, oldest first."""
        sql = (
            "SELECT task_id, base_url, observed_at, status, processed, total, percentage, error "
            "FROM transitions WHERE task_id=?"
        )
        args: list[Any] = [task_id]
        if base_url is not None:
            sql += " AND base_url=?"
            args.append(_norm_base_url(base_url))
        with self._read() as conn:
            return [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]

    def tasks(
        self,
        *,
        base_url: str | None = None,
        task_ids: Sequence[str] | None = None,
        status: str | None = None,
        unfinished: bool | None = None,
        since: datetime | str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per task (oldest first): ids, where, first_seen / started /
        finished / last_seen (ISO UTC), last_status, progress, error,
        ``context`` (dict or None), ``failed_items`` (list)."""
        clauses: list[str] = []
        args: list[Any] = []
        if base_url is not None:
            clauses.append("base_url=?")
            args.append(_norm_base_url(base_url))
        if task_ids is not None:
            ids = list(task_ids)
            if not ids:
                return []
            clauses.append(f"task_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if status is not None:
            clauses.append("last_status=?")
            args.append(statuses.normalize(status))
        if unfinished is not None:
            clauses.append("terminal=0 AND gone=0" if unfinished else "(terminal=1 OR gone=1)")
        if since is not None:
            clauses.append("first_seen>=?")
            args.append(since if isinstance(since, str) else _iso(since))
        sql = f"SELECT {', '.join(_TASK_COLUMNS)} FROM tasks"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY first_seen, task_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = []
        with self._read() as conn:
            for r in conn.execute(sql, args):
                d = dict(r)
                d["terminal"] = bool(d["terminal"])
                d["gone"] = bool(d["gone"])
                d["context"] = json.loads(d.pop("context_json")) if d.get("context_json") else None
                d["failed_items"] = json.loads(d["failed_items"]) if d.get("failed_items") else []
                out.append(d)
        return out

    def known(self, task_ids: Sequence[str], base_url: str | None = None) -> dict[str, dict[str, Any]]:
        """``{task_id: task dict}`` for the ids already in the journal."""
        rows = self.tasks(base_url=base_url, task_ids=task_ids)
        result: dict[str, dict[str, Any]] = {}
        for row in rows:
            result.setdefault(row["task_id"], row)
        return result


def _same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) < 1e-9


_default: Journal | None = None
_default_path: Path | None = None
_default_lock = threading.Lock()


def default_journal() -> Journal:
    """The process-wide journal at ``_paths.journal_path()`` (re-read on env change)."""
    global _default, _default_path
    from mixpeek_magics import _paths

    path = _paths.journal_path()
    with _default_lock:
        if _default is None or _default_path != path:
            _default, _default_path = Journal(path), path
        return _default
