"""SQLite persistence of the local server (WAL mode, one connection, one lock).

Resources are stored as JSON documents (``doc``) next to the columns used for
scoping, filtering and keyset pagination (``rowid``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS organizations (
    rowid INTEGER PRIMARY KEY,
    org_id TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    rowid INTEGER PRIMARY KEY,
    key_hash TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    read_only INTEGER NOT NULL DEFAULT 0,
    masked TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS namespaces (
    rowid INTEGER PRIMARY KEY,
    namespace_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_ns_org_name ON namespaces(org_id, name);
CREATE TABLE IF NOT EXISTS buckets (
    rowid INTEGER PRIMARY KEY,
    bucket_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    namespace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_bkt_ns_name ON buckets(namespace_id, name);
CREATE TABLE IF NOT EXISTS objects (
    rowid INTEGER PRIMARY KEY,
    object_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    namespace_id TEXT NOT NULL,
    bucket_id TEXT NOT NULL,
    status TEXT NOT NULL,
    sha256 TEXT,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    idempotency_key TEXT
);
CREATE INDEX IF NOT EXISTS ix_obj_bucket ON objects(bucket_id, rowid);
CREATE INDEX IF NOT EXISTS ix_obj_sha ON objects(bucket_id, sha256);
CREATE TABLE IF NOT EXISTS uploads (
    rowid INTEGER PRIMARY KEY,
    upload_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    namespace_id TEXT NOT NULL,
    bucket_id TEXT NOT NULL,
    status TEXT NOT NULL,
    file_hash TEXT,
    received_size INTEGER,
    received_sha256 TEXT,
    received_md5 TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_upl_bucket ON uploads(bucket_id, rowid);
CREATE INDEX IF NOT EXISTS ix_upl_hash ON uploads(bucket_id, file_hash);
CREATE TABLE IF NOT EXISTS batches (
    rowid INTEGER PRIMARY KEY,
    batch_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    namespace_id TEXT NOT NULL,
    bucket_id TEXT NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_btch_bucket ON batches(bucket_id, rowid);
CREATE TABLE IF NOT EXISTS tasks (
    rowid INTEGER PRIMARY KEY,
    task_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    task_type TEXT NOT NULL,
    status TEXT NOT NULL,
    inputs TEXT,
    outputs TEXT,
    additional_data TEXT,
    error TEXT,
    job TEXT,
    created_at REAL
);
CREATE INDEX IF NOT EXISTS ix_task_org ON tasks(org_id, rowid);
CREATE INDEX IF NOT EXISTS ix_task_org_status ON tasks(org_id, status, rowid);
CREATE INDEX IF NOT EXISTS ix_task_org_type ON tasks(org_id, task_type, rowid);
CREATE INDEX IF NOT EXISTS ix_task_status ON tasks(status);
"""
# Created after the migrations (an older database gains tasks.created_at first).
LATE_SCHEMA = """
-- the worker's queue: a waiting task's queue_position counts the worker tasks ahead of it
CREATE INDEX IF NOT EXISTS ix_task_queue ON tasks(status) WHERE job IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_task_created ON tasks(org_id, created_at);
-- CreateObjectRequest.idempotency_key: one object per key and bucket
CREATE UNIQUE INDEX IF NOT EXISTS ix_obj_idem ON objects(bucket_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
"""

# Storage connections (provider_config encrypted in ``secret``) and bucket syncs
# (``sync_files``: what each sync ingested, by source key and version).
STORAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS storage_connections (
    rowid INTEGER PRIMARY KEY,
    connection_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    provider_type TEXT NOT NULL,
    status TEXT NOT NULL,
    is_active INTEGER NOT NULL,
    secret TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_conn_org_name ON storage_connections(org_id, name);
CREATE INDEX IF NOT EXISTS ix_conn_org ON storage_connections(org_id, rowid);
CREATE TABLE IF NOT EXISTS sync_configs (
    rowid INTEGER PRIMARY KEY,
    sync_config_id TEXT UNIQUE NOT NULL,
    org_id TEXT NOT NULL,
    namespace_id TEXT NOT NULL,
    bucket_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    status TEXT NOT NULL,
    is_active INTEGER NOT NULL,
    next_run_at REAL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sync_bucket ON sync_configs(bucket_id, rowid);
CREATE INDEX IF NOT EXISTS ix_sync_conn ON sync_configs(connection_id);
CREATE TABLE IF NOT EXISTS sync_files (
    sync_config_id TEXT NOT NULL,
    source_key TEXT NOT NULL,
    version TEXT NOT NULL,
    object_id TEXT,
    task_id TEXT,
    status TEXT NOT NULL,
    size_bytes INTEGER,
    error TEXT,
    PRIMARY KEY (sync_config_id, source_key)
);
CREATE INDEX IF NOT EXISTS ix_syncfile_obj ON sync_files(object_id);
CREATE INDEX IF NOT EXISTS ix_syncfile_status ON sync_files(status, task_id);
CREATE TABLE IF NOT EXISTS sync_jobs (
    rowid INTEGER PRIMARY KEY,
    sync_job_id TEXT UNIQUE NOT NULL,
    sync_config_id TEXT NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_syncjob_sync ON sync_jobs(sync_config_id, rowid);
"""
SCHEMA += STORAGE_SCHEMA


def _regexp(pattern: str | None, value: Any) -> int:
    if pattern is None or value is None:
        return 0
    flags = 0
    if pattern.startswith("(?i)"):
        flags = re.IGNORECASE
        pattern = pattern[4:]
    try:
        return 1 if re.search(pattern, str(value), flags) else 0
    except re.error:
        return 0


class Store:
    """A SQLite database shared by the request threads and the worker threads.

    Everything goes through one connection under ``lock``, so a read waits
    for another thread's open transaction and then sees it (a worker handed a
    task inside a transaction finds its row). ``read_one`` is for lookups of
    rows committed before the request came (a presigned PUT's upload): it uses
    a connection per thread, a WAL reader that sees the last commit and never
    waits for the lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.RLock()
        self._owner: int | None = None  # the thread whose transaction is open
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # created 0600 first: SQLite gives its -wal/-shm files the database file's mode
        os.close(os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0)
        self.conn.row_factory = sqlite3.Row
        self.conn.create_function("REGEXP", 2, _regexp, deterministic=True)
        with self.lock:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=OFF")
            self.conn.executescript(SCHEMA)
            self._migrate()
            self.conn.executescript(LATE_SCHEMA)
            self.conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        self._depth = 0

    def _migrate(self) -> None:
        """Columns added since a database was created (data directories outlive versions)."""
        cols = {r["name"] for r in self.conn.execute("PRAGMA table_info(tasks)")}
        if "created_at" not in cols:
            self.conn.execute("ALTER TABLE tasks ADD COLUMN created_at REAL")
        if "idempotency_key" not in {r["name"] for r in self.conn.execute("PRAGMA table_info(objects)")}:
            self.conn.execute("ALTER TABLE objects ADD COLUMN idempotency_key TEXT")

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (nested calls join the outer one)."""
        with self.lock:
            if self._depth == 0:
                self.conn.execute("BEGIN IMMEDIATE")
                self._owner = threading.get_ident()
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self.conn.execute("COMMIT")

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's reading connection; None inside this thread's transaction."""
        if self._owner == threading.get_ident():
            return None  # this thread's own changes are on the writing connection
        conn = getattr(self._local, "reader", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0)
            conn.row_factory = sqlite3.Row
            conn.create_function("REGEXP", 2, _regexp, deterministic=True)
            conn.execute("PRAGMA query_only=ON")
            with self._readers_lock:
                if self._readers is None:  # closed meanwhile
                    conn.close()
                    raise sqlite3.ProgrammingError("the store is closed")
                self._readers.append(conn)
            self._local.reader = conn
        return conn

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        with self.lock:
            return self.conn.execute(sql, params).fetchone()

    def expect_one(self, sql: str, params: Any = ()) -> sqlite3.Row:
        """``one`` for a row that must be there: an aggregate's, or one the caller found or wrote."""
        row = self.one(sql, params)
        if row is None:
            raise LookupError(f"no row where one must be: {sql}")
        return row

    def read_one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        """``one`` from the last commit, without waiting for the lock (see the class doc)."""
        reader = self._reader()
        if reader is None:
            return self.one(sql, params)
        cur = reader.execute(sql, params)
        try:
            return cur.fetchone()
        finally:
            cur.close()  # no read transaction left open (it would hold back checkpoints)

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, params)

    def meta_get(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key=?", (key,))
        return row["value"] if row else None

    def meta_set(self, key: str, value: str) -> None:
        self.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, None  # type: ignore[assignment]
        for conn in readers or ():
            try:
                conn.close()
            except sqlite3.Error:
                pass
        with self.lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self.conn.close()


def dumps_bytes(obj: Any) -> bytes:
    """Compact JSON, UTF-8 (ASCII escapes: a lone surrogate, from a filename
    decoded with surrogateescape, has no UTF-8)."""
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


def dumps(obj: Any) -> str:
    """Compact JSON text (what the ``doc`` columns hold)."""
    return dumps_bytes(obj).decode()


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
