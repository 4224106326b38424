"""The server's state: data directory, database, secret, organizations, tasks."""

from __future__ import annotations

import collections
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .contract.stats import TOTALS as CONTRACT_TOTALS, ContractStats
from .db import Store, dumps, loads
from .errors import APIError
from .settings import LocalSettings
from .util import hash_key, iso, mask_key, new_api_key, new_id

if TYPE_CHECKING:
    from .connections import ConnectionService
    from .sync_runner import SyncRunner
    from .worker import Worker

log = logging.getLogger("mixpeek_magics.local")

TERMINAL = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"})
ACTIVE = frozenset({"PENDING", "QUEUED", "IN_PROGRESS", "PROCESSING"})
DEFAULT_KEY_FILE = "default_api_key"
SECRET_FILE = "server_secret"
DB_FILE = "local-server.sqlite3"
RESTART_REASON = "interrupted by server restart"


@dataclass(frozen=True)
class Caller:
    org_id: str
    read_only: bool
    key_masked: str


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class State:
    def __init__(self, data_dir: Path, settings: LocalSettings | None = None):
        self.data_dir = Path(data_dir).expanduser().resolve()
        for sub in ("", "blobs", "uploads", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.data_dir / sub, 0o700)  # the data dir holds keys and uploads: owner only, even if it existed
        self.uploads_dir = str(self.data_dir / "uploads")  # as a string: joined once per PUT, cheaply
        self.upload_port: int | None = None  # the upload endpoint's, while it runs (presigned URLs name it)
        self.upload_scheme = "http"
        self.settings = settings or LocalSettings()
        self.settings_lock = threading.Lock()
        self.fault_rng = random.Random(self.settings.fault_seed)
        self.store = Store(self.data_dir / DB_FILE)
        self.secret = self._load_secret()
        self.clock_offset = 0.0
        self.request_log: collections.deque[tuple[str, str]] = collections.deque(maxlen=200_000)
        self.contract_stats = ContractStats(parent=CONTRACT_TOTALS)  # LocalServer passes its own
        self.key_created_now = False
        self.default_org_id, self.default_api_key = self._ensure_default_org()
        self.worker: Worker | None = None  # LocalServer starts one right after the state
        self.storage_connections: ConnectionService | None = None  # sync_runner.install()
        self.sync_runner: SyncRunner | None = None  # sync_runner.install()
        self.closed = False

    # -- clock -------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def iso_now(self) -> str:
        return iso(self.now())

    def scaled(self, seconds: float) -> float:
        return max(0.0, float(seconds) * self.settings.time_scale)

    # -- secret / keys ------------------------------------------------------
    def _load_secret(self) -> bytes:
        path = self.data_dir / SECRET_FILE
        if path.exists():
            text = path.read_text().strip()
            if len(text) >= 32:
                return bytes.fromhex(text)
        raw = secrets.token_bytes(32)
        _write_private(path, raw.hex())
        return raw

    def _ensure_default_org(self) -> tuple[str, str]:
        key_path = self.data_dir / DEFAULT_KEY_FILE
        row = self.store.one("SELECT org_id FROM organizations WHERE is_default=1")
        if row is None:
            org_id = self._insert_org("default", is_default=True)
        else:
            org_id = row["org_id"]
        key = key_path.read_text().strip() if key_path.exists() else ""
        if key:
            found = self.store.one("SELECT org_id FROM api_keys WHERE key_hash=?", (hash_key(key),))
            if found is None or found["org_id"] != org_id:
                key = ""
        if not key:
            key = self.create_api_key(org_id)
            _write_private(key_path, key)
            self.key_created_now = True
            log.info("created API key %s for the default organization", mask_key(key))
        return org_id, key

    def _insert_org(self, name: str, is_default: bool = False) -> str:
        org_id = new_id("org")
        now = self.iso_now()
        doc: dict[str, Any] = {
            "organization_id": org_id,
            "organization_name": name,
            "logo_url": None,
            "account_type": "enterprise",
            "credit_count": 1_000_000,
            "metadata": {"local": True},
            "billing_email": None,
            "rate_limits": {"metadata": 1000, "data": 1000, "search": 1000, "upload": 1000, "compute": 1000},
            "created_at": now,
            "updated_at": now,
            "users": [],
        }
        with self.store.tx() as c:
            c.execute(
                "INSERT INTO organizations(org_id, name, is_default, doc) VALUES (?,?,?,?)",
                (org_id, name, 1 if is_default else 0, dumps(doc)),
            )
        return org_id

    def create_organization(self, name: str) -> tuple[str, str]:
        org_id = self._insert_org(name)
        return org_id, self.create_api_key(org_id)

    def resolve_org(self, org: str | None) -> str:
        if org is None:
            return self.default_org_id
        row = self.store.one(
            "SELECT org_id FROM organizations WHERE org_id=? OR name=? ORDER BY is_default DESC, rowid LIMIT 1",
            (org, org),
        )
        if row is None:
            raise KeyError(f"unknown organization {org!r}")
        return row["org_id"]

    def create_api_key(self, org_id: str | None = None, read_only: bool = False) -> str:
        org_id = org_id or self.default_org_id
        key = new_api_key()
        with self.store.tx() as c:
            c.execute(
                "INSERT INTO api_keys(key_hash, org_id, read_only, masked, created_at) VALUES (?,?,?,?,?)",
                (hash_key(key), org_id, 1 if read_only else 0, mask_key(key), self.iso_now()),
            )
        return key

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", "AuthenticationError")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise APIError(401, "malformed Authorization header: expected 'Bearer <key>'", "AuthenticationError")
        row = self.store.one("SELECT org_id, read_only FROM api_keys WHERE key_hash=?", (hash_key(token),))
        if row is None:
            log.debug("rejected invalid API key %s", mask_key(token))
            raise APIError(401, f"invalid API key {mask_key(token)}", "AuthenticationError")
        return Caller(row["org_id"], bool(row["read_only"]), mask_key(token))

    # -- tasks -------------------------------------------------------------
    def create_task(
        self,
        org_id: str,
        task_type: str,
        *,
        inputs: list | None = None,
        additional_data: dict | None = None,
        job: dict | None = None,
        status: str = "PENDING",
        outputs: list | None = None,
        error: str | None = None,
    ) -> str:
        task_id = new_id("task")
        with self.store.tx() as c:
            c.execute(
                "INSERT INTO tasks(task_id, org_id, task_type, status, inputs, outputs, "
                "additional_data, error, job, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    task_id,
                    org_id,
                    task_type,
                    status,
                    dumps(inputs or []),
                    dumps(outputs) if outputs is not None else None,
                    dumps(additional_data or {}),
                    error,
                    dumps(job) if job else None,
                    self.now(),
                ),
            )
        return task_id

    def get_task_row(self, task_id: str, org_id: str | None = None):
        if org_id is None:
            return self.store.one("SELECT * FROM tasks WHERE task_id=?", (task_id,))
        return self.store.one("SELECT * FROM tasks WHERE task_id=? AND org_id=?", (task_id, org_id))

    def task_expiry_cutoff(self) -> float | None:
        """Tasks created before this time have expired (``task_ttl_seconds``); None: none expire."""
        ttl = self.settings.task_ttl_seconds
        return None if ttl is None else self.now() - ttl

    def visible_task_row(self, task_id: str, org_id: str):
        """The organization's task as the API shows it (with ``queue_position``); None
        when there is none or its record expired (the batch keeps what it did)."""
        sql = f"SELECT {task_columns(self)} FROM tasks WHERE task_id=? AND org_id=?"
        params: list[Any] = [task_id, org_id]
        cutoff = self.task_expiry_cutoff()
        if cutoff is not None:
            sql += " AND coalesce(created_at, 0) >= ?"
            params.append(cutoff)
        return self.store.one(sql, params)

    def task_dict(self, task_id: str, org_id: str | None = None) -> dict[str, Any]:
        row = self.store.one(
            f"SELECT {task_columns(self)} FROM tasks WHERE task_id=?" + (" AND org_id=?" if org_id is not None else ""),
            (task_id,) if org_id is None else (task_id, org_id),
        )
        if row is None:
            raise APIError(404, f"task '{task_id}' not found", "NotFoundError")
        return task_row_dict(row)

    def update_task(
        self,
        task_id: str,
        *,
        status: str | None = None,
        outputs: list | None = None,
        additional_data: dict | None = None,
        error: str | None = None,
        only_if_active: bool = True,
        clear_error: bool = False,
    ) -> bool:
        sets: list[str] = []
        params: list[Any] = []
        if status is not None:
            sets.append("status=?")
            params.append(status)
        if outputs is not None:
            sets.append("outputs=?")
            params.append(dumps(outputs))
        if additional_data is not None:
            sets.append("additional_data=?")
            params.append(dumps(additional_data))
        if error is not None or clear_error:
            sets.append("error=?")
            params.append(error)
        if not sets:
            return False
        where = "task_id=?"
        params.append(task_id)
        if only_if_active:
            where += " AND status NOT IN ('COMPLETED','COMPLETED_WITH_ERRORS','FAILED','CANCELED')"
        with self.store.tx() as c:
            cur = c.execute(f"UPDATE tasks SET {', '.join(sets)} WHERE {where}", params)
            return cur.rowcount > 0

    def seed_tasks(
        self, n: int, statuses: Iterable[str] | None = None, task_type: str | None = None, org_id: str | None = None
    ) -> list[str]:
        statuses = list(
            statuses or ["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED", "PENDING", "PROCESSING"]
        )
        task_type = task_type or "api_buckets_batches_process"
        org_id = org_id or self.default_org_id
        prefix = f"task_{secrets.token_hex(4)}"
        start = (self.store.expect_one("SELECT coalesce(max(rowid), 0) AS m FROM tasks")["m"] or 0) + 1
        ids = [f"{prefix}{start + i:010x}" for i in range(n)]
        norm = [st.upper() for st in statuses]
        rows = []
        # Only the documented keys (no batch behind a seeded task); ``object_count`` is
        # the task's index so filters have something to compare. Written as text
        # directly: seeding 100,000 tasks takes ~1 s.
        tmpl = (
            '{"batch_id":null,"bucket_id":null,"namespace_id":null,"current_tier":%s,"total_tiers":1,'
            '"collection_ids":[],"object_count":%d,"sample_object_ids":[]%s}'
        )
        now = self.now()
        for i, task_id in enumerate(ids):
            st = norm[i % len(norm)]
            failed = st == "FAILED"
            ad = tmpl % (
                "null" if st in ("PENDING", "QUEUED") else "0",
                i,
                ',"error":"synthetic failure"' if failed else "",
            )
            rows.append((task_id, org_id, task_type, st, "[]", "[]", ad, "synthetic failure" if failed else None, now))
        with self.store.tx() as c:
            c.executemany(
                "INSERT INTO tasks(task_id, org_id, task_type, status, inputs, outputs, "
                "additional_data, error, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )
        return ids

    def recover_tasks(self) -> list[str]:
        """Tasks left PENDING/PROCESSING by a previous run: re-queue or fail them."""
        rows = self.store.query(
            "SELECT task_id, job, additional_data, status FROM tasks "
            "WHERE status IN ('PENDING','QUEUED','IN_PROGRESS','PROCESSING')"
        )
        requeue: list[str] = []
        for row in rows:
            job = loads(row["job"])
            ad = loads(row["additional_data"]) or {}
            if job and job.get("kind") in ("batch", "confirm_batch"):
                if "current_tier" in ad:
                    ad["current_tier"] = None
                self.update_task(row["task_id"], status="PENDING", outputs=[], additional_data=ad)
                if job.get("kind") == "batch":
                    from .services import requeue_batch

                    requeue_batch(self, job["batch_id"], row["task_id"])
                requeue.append(row["task_id"])
            else:
                ad["error"] = RESTART_REASON
                self.update_task(row["task_id"], status="FAILED", additional_data=ad, error=RESTART_REASON)
        if requeue:
            log.info("re-queued %d task(s) interrupted by the previous run", len(requeue))
        return requeue

    def submit_task(self, task_id: str) -> None:
        """Hand a task to the worker."""
        if self.worker is None:
            raise RuntimeError("the local server's worker is not running")
        self.worker.submit(task_id)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.sync_runner is not None:  # stops scheduling before the worker and the database go
            self.sync_runner.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.storage_connections is not None:
            self.storage_connections.close()
        self.store.close()


def task_columns(state: State) -> str:
    """The columns of a TaskResponse, for ``SELECT``: ``queue_position`` is the
    1-based place of a waiting worker task among those waiting (null when a worker
    is free for it, or when it is not waiting)."""
    workers = int(state.settings.workers)
    return (
        "task_id, task_type, status, inputs, outputs, additional_data, error, "
        "CASE WHEN job IS NOT NULL AND status IN ('PENDING','QUEUED') THEN "
        "(SELECT CASE WHEN w.ahead = 0 AND w.busy < " + str(workers) + " THEN NULL ELSE w.ahead + 1 END FROM "
        "(SELECT (SELECT count(*) FROM tasks q WHERE q.job IS NOT NULL AND q.status IN ('PENDING','QUEUED') "
        "AND q.rowid < tasks.rowid) AS ahead, "
        "(SELECT count(*) FROM tasks q WHERE q.job IS NOT NULL AND q.status IN ('IN_PROGRESS','PROCESSING')) "
        "AS busy) w) END AS queue_position"
    )


def _queue_position(row) -> Any:
    try:
        return row["queue_position"]
    except (IndexError, KeyError):  # a row read without task_columns()
        return None


def task_row_dict(row) -> dict[str, Any]:
    return {
        "task_id": row["task_id"],
        "task_type": row["task_type"],
        "status": row["status"],
        "inputs": loads(row["inputs"]),
        "outputs": loads(row["outputs"]),
        "additional_data": loads(row["additional_data"]),
        "error": row["error"],
        "queue_position": _queue_position(row),
    }


def task_row_json(row) -> str:
    """A TaskResponse as JSON text built from the stored JSON fragments (fast)."""
    import json

    qp = _queue_position(row)
    return (
        '{"task_id":'
        + json.dumps(row["task_id"])
        + ',"task_type":'
        + json.dumps(row["task_type"])
        + ',"status":'
        + json.dumps(row["status"])
        + ',"inputs":'
        + (row["inputs"] or "null")
        + ',"outputs":'
        + (row["outputs"] or "null")
        + ',"additional_data":'
        + (row["additional_data"] or "null")
        + ',"error":'
        + json.dumps(row["error"])
        + ',"queue_position":'
        + ("null" if qp is None else str(int(qp)))
        + "}"
    )
