"""Storage connections of the local server: validation, encryption at rest,
redaction, health bookkeeping, providers and the blob readers of synced files.

A connection row keeps its public document (``doc``: the contract's
``StorageConnectionModel`` with the credentials redacted) next to the whole
``provider_config`` encrypted with :class:`~.secrets.SecretBox` (``secret``).
Secrets never reach a response, a log line or the SQLite file in clear.

Health (the contract's ``StorageConnectionModel``):

- every failed test / sync listing increments ``consecutive_failures`` and sets
  ``last_error``; after :data:`AUTO_DISABLE_AFTER` consecutive failures an
  ACTIVE connection becomes FAILED (``is_active`` false);
- a success resets ``consecutive_failures`` and ``last_error`` and brings a
  FAILED connection back to ACTIVE; successful listings (syncs, folders, files)
  set ``last_used_at``;
- SUSPENDED (by the user, via update) and ARCHIVED (permanent) are only
  changed by the user; ``is_active`` is true exactly when the status is ACTIVE.

The worker reads synced files through :func:`read_connection_blob`
(``s3://bucket/key`` and ``gdrive://<file id>`` URLs): the bytes go from the
provider to the server, never through the client.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from .blobs import BlobCanceled, BlobReadError, ReadContext, register_blob_reader
from .db import dumps, loads
from .errors import APIError, validation_422
from .providers import ProviderError, ProviderSettings, SourceFile, make_provider
from .secrets import REDACTED, SecretBox, is_secret_field, redact_credentials, scrub_text
from .util import new_id

log = logging.getLogger("mixpeek_magics.local.connections")

__all__ = [
    "AUTO_DISABLE_AFTER",
    "PROVIDER_TYPES",
    "SUPPORTED_PROVIDERS",
    "CONNECTION_STATUSES",
    "ConnectionService",
    "ensure_schema",
    "normalize_provider_config",
    "read_connection_blob",
    "READ_RETRIES",
]

AUTO_DISABLE_AFTER = 5
#: the contract's ``StorageProvider`` enum
PROVIDER_TYPES = ("google_drive", "s3", "snowflake", "sharepoint", "tigris", "postgresql")
SUPPORTED_PROVIDERS = ("s3", "tigris", "google_drive")
#: the contract's ``TaskStatusEnum`` (what ``status`` of a connection may hold)
TASK_STATUSES = (
    "PENDING",
    "IN_PROGRESS",
    "PROCESSING",
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "CANCELED",
    "UNKNOWN",
    "SKIPPED",
    "DRAFT",
    "ACTIVE",
    "ARCHIVED",
    "SUSPENDED",
)
#: statuses a connection is given by the server or the user
CONNECTION_STATUSES = ("ACTIVE", "SUSPENDED", "FAILED", "ARCHIVED")
READ_RETRIES = 3  # a failed file read is retried this many times
READ_BACKOFF = 0.2  # seconds before the first retry (doubles; scaled by time_scale)
TIGRIS_ENDPOINT = "https://fly.storage.tigris.dev"
_ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/[\w+=,.@-]+$")

from .db import STORAGE_SCHEMA as SCHEMA  # noqa: E402 - the tables live with the others in db.py


def ensure_schema(store) -> None:
    """Create the tables of connections and syncs (idempotent)."""
    with store.lock:
        store.conn.executescript(SCHEMA)


# -- provider_config validation -------------------------------------------------
def _err(loc: list[Any], msg: str):
    # validation_422 never echoes the input: a secret typed in the wrong field stays private
    return validation_422(["body", *loc], msg)


def _str(
    cfg: Mapping[str, Any],
    key: str,
    loc: list[Any],
    *,
    required: bool,
    min_len: int = 0,
    max_len: int | None = None,
    secret: bool = False,
) -> str | None:
    v = cfg.get(key)
    if v is None or (isinstance(v, str) and not v.strip() and required):
        if required:
            raise _err([*loc, key], "Field required")
        return None
    if not isinstance(v, str):
        raise _err([*loc, key], "Input should be a valid string")
    if len(v) < min_len:
        raise _err(
            [*loc, key],
            f"String should have at least {min_len} characters"
            + (" (a secret access key is 40 characters)" if secret and min_len == 40 else ""),
        )
    if max_len is not None and len(v) > max_len:
        raise _err([*loc, key], f"String should have at most {max_len} characters")
    return v


def _bool(cfg: Mapping[str, Any], key: str, loc: list[Any], default: bool) -> bool:
    v = cfg.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _err([*loc, key], "Input should be a valid boolean")
    return v


def normalize_provider_config(provider_type: str, config: Any, loc: list[Any] | None = None) -> dict[str, Any]:
    """Check ``provider_config`` against the contract's config schema of
    ``provider_type`` (S3Config, TigrisConfig, GoogleDriveConfig); returns a
    normalized copy. Raises a 422 naming the field (never echoing values)."""
    loc = list(loc or ["provider_config"])
    if not isinstance(config, Mapping):
        raise _err(loc, "Input should be a valid dictionary")
    cfg = dict(config)
    declared = cfg.get("provider_type")
    if declared is not None and declared != provider_type:
        raise _err(
            [*loc, "provider_type"],
            f"provider_config.provider_type {declared!r} does not match provider_type {provider_type!r}",
        )
    cfg["provider_type"] = provider_type
    creds = cfg.get("credentials")
    cloc = [*loc, "credentials"]
    if creds is None:
        raise _err(cloc, "Field required")
    if not isinstance(creds, Mapping):
        raise _err(cloc, "Input should be a valid dictionary (an object with a 'type')")
    creds = dict(creds)
    if provider_type == "s3":
        ctype = creds.get("type") or ("iam_role" if "role_arn" in creds else "access_key")
        if ctype == "access_key":
            _str(creds, "access_key_id", cloc, required=True, min_len=16, max_len=128)
            _str(creds, "secret_access_key", cloc, required=True, min_len=40, secret=True)
            _str(creds, "session_token", cloc, required=False)
        elif ctype == "iam_role":
            arn = _str(creds, "role_arn", cloc, required=True)
            if arn and not _ROLE_ARN.match(arn):
                raise _err(
                    [*cloc, "role_arn"], "String should match pattern '^arn:aws:iam::\\d{12}:role/[\\w+=,.@-]+$'"
                )
            _str(creds, "external_id", cloc, required=True, min_len=8, max_len=128)
        else:
            raise _err(
                [*cloc, "type"],
                f"Input tag {ctype!r} found using 'type' does not match any of the "
                "expected tags: 'access_key', 'iam_role'",
            )
        creds["type"] = ctype
        cfg["region"] = _str(cfg, "region", loc, required=True, min_len=1)
        _str(cfg, "endpoint_url", loc, required=False)
        cfg["use_ssl"] = _bool(cfg, "use_ssl", loc, True)
        cfg["verify_ssl"] = _bool(cfg, "verify_ssl", loc, True)
    elif provider_type == "tigris":
        ctype = creds.get("type") or "access_key"
        if ctype != "access_key":
            raise _err([*cloc, "type"], "Input should be 'access_key' (Tigris uses access keys)")
        _str(creds, "access_key_id", cloc, required=True, min_len=1)
        _str(creds, "secret_access_key", cloc, required=True, min_len=1)
        creds["type"] = ctype
        cfg["region"] = _str(cfg, "region", loc, required=False) or "auto"
        cfg["endpoint_url"] = _str(cfg, "endpoint_url", loc, required=False) or TIGRIS_ENDPOINT
    elif provider_type == "google_drive":
        ctype = creds.get("type") or ("oauth" if "refresh_token" in creds else "service_account")
        if ctype == "service_account":
            for k in ("project_id", "private_key_id", "private_key", "client_email", "client_id"):
                _str(creds, k, cloc, required=True, min_len=1)
        elif ctype == "oauth":
            for k in ("client_id", "client_secret", "refresh_token"):
                _str(creds, k, cloc, required=True, min_len=1)
        else:
            raise _err(
                [*cloc, "type"],
                f"Input tag {ctype!r} found using 'type' does not match any of the "
                "expected tags: 'oauth', 'service_account'",
            )
        creds["type"] = ctype
        _str(cfg, "shared_drive_id", loc, required=False)
        _str(cfg, "impersonate_user", loc, required=False)
    else:
        raise APIError(
            400,
            f"provider_type '{provider_type}' is not supported by the local server "
            f"(supported: {', '.join(SUPPORTED_PROVIDERS)})",
            "UnsupportedProviderError",
            {"provider_type": provider_type, "supported": list(SUPPORTED_PROVIDERS)},
        )
    if "bucket" in cfg and cfg["bucket"] is not None and not isinstance(cfg["bucket"], str):
        raise _err([*loc, "bucket"], "Input should be a valid string")
    cfg["credentials"] = creds
    return cfg


def _merge_redacted(new: Any, old: Any) -> Any:
    """``new`` with every ``***REDACTED***`` placeholder replaced by the stored
    secret (a client may send back what it read)."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {
            k: (old.get(k) if v == REDACTED and is_secret_field(k) and k in old else _merge_redacted(v, old.get(k)))
            for k, v in new.items()
        }
    return new


def normalize_status(value: Any, loc: list[Any]) -> str:
    text = str(getattr(value, "value", value)).strip().upper()
    if text not in TASK_STATUSES:
        raise _err(loc, f"Input should be one of {', '.join(TASK_STATUSES)}")
    return text


# -- read-ahead of synced files -------------------------------------------------------
PREFETCH_THREADS = 10  # boto3's default connection pool holds 10
PREFETCH_WINDOW = 24  # objects of a sync batch fetched ahead of the one being processed
PREFETCH_MAX_ENTRIES = 512


class _Prefetcher:
    """Reads the next files of a sync batch while the worker processes the current
    one (the worker handles a batch's objects one after the other; provider reads
    are I/O-bound). A prefetch is one read attempt: the reader retries what failed."""

    def __init__(self, svc: ConnectionService) -> None:
        from collections import OrderedDict
        from concurrent.futures import ThreadPoolExecutor

        self.svc = svc
        self.pool = ThreadPoolExecutor(PREFETCH_THREADS, thread_name_prefix="mixpeek-local-prefetch")
        self.futures: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self.plans: OrderedDict[str, list[tuple[str, str, str, dict]]] = OrderedDict()  # task -> objects
        self.lock = threading.Lock()
        self.closed = False

    def take(self, connection_id: str, url: str):
        with self.lock:
            return self.futures.pop((connection_id, url), None)

    def _plan(self, task_id: str) -> list[tuple[str, str, str, dict]]:
        with self.lock:
            plan = self.plans.get(task_id)
        if plan is not None:
            return plan
        store = self.svc.state.store
        row = store.one("SELECT job FROM tasks WHERE task_id=?", (task_id,))
        ids = (loads(row["job"]) or {}).get("object_ids", []) if row else []
        docs = {
            r["object_id"]: loads(r["doc"])
            for r in store.query(
                "SELECT object_id, doc FROM objects WHERE object_id IN (SELECT value FROM json_each(?))", (dumps(ids),)
            )
        }
        plan = []
        for oid in ids:
            d = docs.get(oid)
            blobs = (d or {}).get("blobs") or []
            props = (blobs[0].get("properties") or {}) if blobs else {}
            url, cid = props.get("url"), props.get("connection_id")
            if url and cid and url.split("://", 1)[0] in ("s3", "gdrive"):
                plan.append((oid, url, cid, props))
        with self.lock:
            self.plans[task_id] = plan
            while len(self.plans) > 64:
                self.plans.popitem(last=False)
        return plan

    def ahead(self, object_id: str | None) -> None:
        """Start reading the files that follow ``object_id`` in its sync batch."""
        if self.closed or not object_id:
            return
        row = self.svc.state.store.one("SELECT task_id FROM sync_files WHERE object_id=?", (object_id,))
        if row is None or not row["task_id"]:
            return
        plan = self._plan(row["task_id"])
        idx = next((i for i, p in enumerate(plan) if p[0] == object_id), None)
        if idx is None:
            return
        for _oid, url, cid, props in plan[idx + 1 : idx + 1 + PREFETCH_WINDOW]:
            key = (cid, url)
            with self.lock:
                if key in self.futures or self.closed:
                    continue
                self.futures[key] = self.pool.submit(self._fetch, cid, url, props)
                while len(self.futures) > PREFETCH_MAX_ENTRIES:
                    _, old = self.futures.popitem(last=False)
                    old.add_done_callback(_close_result)

    def _fetch(self, cid: str, url: str, props: dict):
        row = self.svc.get_row(cid)
        if row is None:
            raise BlobReadError(f"storage connection {cid} no longer exists")
        provider = self.svc.provider_for(row)
        source = _source_for(url, props, row["provider_type"])
        spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024, dir=str(self.svc.state.data_dir / "tmp"))
        try:
            for chunk in provider.iter_bytes(source):
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def close(self) -> None:
        with self.lock:
            self.closed = True
            futures = list(self.futures.values())
            self.futures.clear()
        for f in futures:
            f.cancel()
            f.add_done_callback(_close_result)
        self.pool.shutdown(wait=False, cancel_futures=True)


def _close_result(fut) -> None:
    try:
        if not fut.cancelled() and fut.exception() is None:
            fut.result().close()
    except Exception:  # noqa: BLE001
        pass


def _source_for(url: str, props: dict, provider_type: str) -> SourceFile:
    if url.lower().startswith("gdrive://"):
        file_id = url[len("gdrive://") :].split("/", 1)[0]
        return SourceFile(
            key=props.get("source_key") or file_id,
            name=props.get("source_name") or file_id,
            size=None,
            etag_or_md5=None,
            modified=None,
            file_id=file_id,
            provider_type="google_drive",
        )
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket or not key:
        raise BlobReadError(f"invalid S3 URL {url!r}: expected s3://bucket/key")
    return SourceFile(
        key=key,
        name=key.rsplit("/", 1)[-1],
        size=None,
        etag_or_md5=None,
        modified=None,
        bucket=bucket,
        provider_type=provider_type,
    )


# -- the service --------------------------------------------------------------------
class ConnectionService:
    """Connections of one server state (``state.storage_connections``)."""

    def __init__(self, state) -> None:
        self.state = state
        ensure_schema(state.store)
        self.box = SecretBox(state.data_dir)
        self._providers: dict[str, tuple[str, Any, tuple[str, str]]] = {}  # cid -> version, provider, row text
        self._lock = threading.Lock()
        self.prefetcher = _Prefetcher(self)

    # -- providers ----------------------------------------------------------
    def provider_settings(self) -> ProviderSettings:
        return ProviderSettings.from_any(self.state.settings)

    def build_provider(self, provider_type: str, config: dict[str, Any]):
        return make_provider(provider_type, config, settings=self.provider_settings())

    def provider_for(self, row) -> Any:
        """The (cached) provider of a connection row; rebuilt when the row changes."""
        cid = row["connection_id"]
        with self._lock:
            cached = self._providers.get(cid)
        # Called once per object read: the same row text skips the JSON parse.
        if cached is not None and cached[2] == (row["doc"], row["secret"]):
            return cached[1]
        version = loads(row["doc"]).get("updated_at", "") + "|" + str(hash(row["secret"]))
        if cached is not None and cached[0] == version:
            with self._lock:
                self._providers[cid] = (version, cached[1], (row["doc"], row["secret"]))
            return cached[1]
        provider = self.build_provider(row["provider_type"], self.box.decrypt(row["secret"]))
        with self._lock:
            old = self._providers.get(cid)
            self._providers[cid] = (version, provider, (row["doc"], row["secret"]))
        if old is not None and old[1] is not provider:
            _close_quietly(old[1])
        return provider

    def forget(self, connection_id: str) -> None:
        with self._lock:
            old = self._providers.pop(connection_id, None)
        if old is not None:
            _close_quietly(old[1])

    def close(self) -> None:
        self.prefetcher.close()
        with self._lock:
            items = list(self._providers.values())
            self._providers.clear()
        for entry in items:
            _close_quietly(entry[1])

    def test_config(self, provider_type: str, config: dict[str, Any]) -> dict[str, Any]:
        """``StorageConnectionTestResponse`` for an unsaved configuration."""
        try:
            provider = self.build_provider(provider_type, config)
        except ProviderError as err:
            return _failure(err, config)
        try:
            return self._probe(provider, config.get("bucket"), config)
        finally:
            _close_quietly(provider)

    def _probe(self, provider, path: str | None, config: dict[str, Any]) -> dict[str, Any]:
        try:
            provider.test(path or None)
        except ProviderError as err:
            return _failure(err, config)
        except Exception as exc:  # noqa: BLE001 - never a 500 for a provider's surprise
            log.debug("provider test crashed", exc_info=True)
            return _failure(ProviderError(f"unexpected error: {type(exc).__name__}", "other"), config)
        return {"success": True, "message": "Connection test succeeded", "details": {"result": "success"}}

    # -- rows ---------------------------------------------------------------
    def find(self, org_id: str, ident: str):
        row = self.state.store.one(
            "SELECT * FROM storage_connections WHERE org_id=? AND (connection_id=? OR name=?) "
            "ORDER BY (connection_id=?) DESC LIMIT 1",
            (org_id, ident, ident, ident),
        )
        if row is None:
            raise APIError(
                404,
                f"storage connection '{ident}' not found",
                "NotFoundError",
                {"resource": "connection", "identifier": ident},
            )
        return row

    def get_row(self, connection_id: str):
        return self.state.store.one("SELECT * FROM storage_connections WHERE connection_id=?", (connection_id,))

    def create(
        self,
        org_id: str,
        *,
        name: str,
        provider_type: str,
        provider_config: dict[str, Any],
        description: str | None,
        metadata: dict[str, Any] | None,
        test_before_save: bool,
        created_by: str,
    ) -> dict[str, Any]:
        state = self.state
        self._check_name_free(org_id, name)
        if test_before_save:
            result = self.test_config(provider_type, provider_config)
            if not result["success"]:
                raise APIError(
                    400,
                    f"Connection test failed, nothing was saved: {result['message']}",
                    "ConnectionTestFailedError",
                    result["details"],
                )
        now = state.iso_now()
        cid = new_id("conn")
        doc = {
            "connection_id": cid,
            "internal_id": org_id,
            "provider_type": provider_type,
            "provider_config": redact_credentials(provider_config),
            "name": name,
            "description": description,
            "status": "ACTIVE",
            "is_active": True,
            "last_used_at": None,
            "last_error": None,
            "consecutive_failures": 0,
            "created_at": now,
            "updated_at": now,
            "created_by_user_id": created_by,
            "metadata": metadata or {},
            "last_tested_at": now if test_before_save else None,
        }
        secret = self.box.encrypt(provider_config)
        try:
            with state.store.tx() as c:
                c.execute(
                    "INSERT INTO storage_connections(connection_id, org_id, name, provider_type, status, "
                    "is_active, secret, doc) VALUES (?,?,?,?,?,?,?,?)",
                    (cid, org_id, name, provider_type, "ACTIVE", 1, secret, dumps(doc)),
                )
        except Exception as exc:  # unique index race
            if "UNIQUE" in str(exc):
                raise self._name_taken(name) from None
            raise
        return doc

    def _name_taken(self, name: str) -> APIError:
        return APIError(
            409,
            f"a storage connection named '{name}' already exists in this organization; "
            "pick another name or update the existing connection",
            "ConflictError",
            {"name": name},
        )

    def _check_name_free(self, org_id: str, name: str, except_id: str | None = None) -> None:
        row = self.state.store.one(
            "SELECT connection_id FROM storage_connections WHERE org_id=? AND name=?", (org_id, name)
        )
        if row is not None and row["connection_id"] != except_id:
            raise self._name_taken(name)

    def save(self, row, doc: dict[str, Any], secret: str | None = None) -> None:
        doc["is_active"] = doc["status"] == "ACTIVE"
        with self.state.store.tx() as c:
            c.execute(
                "UPDATE storage_connections SET name=?, status=?, is_active=?, secret=?, doc=? WHERE connection_id=?",
                (
                    doc["name"],
                    doc["status"],
                    1 if doc["is_active"] else 0,
                    secret if secret is not None else row["secret"],
                    dumps(doc),
                    row["connection_id"],
                ),
            )

    def update(self, row, changes: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        doc = loads(row["doc"])
        secret = None
        if "name" in changes and changes["name"] is not None and changes["name"] != doc["name"]:
            self._check_name_free(row["org_id"], changes["name"], row["connection_id"])
            doc["name"] = changes["name"]
        if "description" in changes and changes["description"] is not None:
            doc["description"] = changes["description"] or None
        if "metadata" in changes and changes["metadata"] is not None:
            doc["metadata"] = dict(changes["metadata"])
        status = changes.get("status")
        is_active = changes.get("is_active")
        if status is not None or is_active is not None:
            if status is None:
                status = "ACTIVE" if is_active else "SUSPENDED"
            status = normalize_status(status, ["status"])
            if status not in CONNECTION_STATUSES:
                raise _err(["status"], f"a connection's status is one of {', '.join(CONNECTION_STATUSES)}")
            if is_active is not None and bool(is_active) != (status == "ACTIVE"):
                raise APIError(
                    400,
                    f"is_active={str(bool(is_active)).lower()} contradicts status {status}: "
                    "is_active is true exactly when the status is ACTIVE",
                    "BadRequestError",
                )
            if doc["status"] == "ARCHIVED" and status != "ARCHIVED":
                raise APIError(409, "an ARCHIVED connection cannot be reactivated; create a new one", "ConflictError")
            if status == "ACTIVE" and doc["status"] != "ACTIVE":
                doc["consecutive_failures"] = 0
            doc["status"] = status
        if changes.get("provider_config") is not None:
            old_cfg = self.box.decrypt(row["secret"])
            merged = _merge_redacted(dict(changes["provider_config"]), old_cfg)
            cfg = normalize_provider_config(row["provider_type"], merged)
            result = self.test_config(row["provider_type"], cfg)
            if not result["success"]:
                raise APIError(
                    400,
                    f"Connection test failed, the connection was not changed: {result['message']}",
                    "ConnectionTestFailedError",
                    result["details"],
                )
            secret = self.box.encrypt(cfg)
            doc["provider_config"] = redact_credentials(cfg)
            doc["last_error"] = None
            doc["consecutive_failures"] = 0
            doc["last_tested_at"] = state.iso_now()
            if doc["status"] == "FAILED":
                doc["status"] = "ACTIVE"
        doc["updated_at"] = state.iso_now()
        self.save(row, doc, secret)
        self.forget(row["connection_id"])
        return doc

    def delete(self, row) -> None:
        n = self.state.store.one(
            "SELECT count(*) AS n FROM sync_configs WHERE connection_id=?", (row["connection_id"],)
        )["n"]
        if n:
            raise APIError(
                409,
                f"storage connection '{row['name']}' is used by {n} bucket sync(s): delete those syncs first",
                "ConflictError",
                {"connection_id": row["connection_id"], "sync_count": n},
            )
        self.state.store.execute("DELETE FROM storage_connections WHERE connection_id=?", (row["connection_id"],))
        self.forget(row["connection_id"])

    # -- health -------------------------------------------------------------
    def record(
        self, connection_id: str, ok: bool, error: str | None = None, *, used: bool = False, tested: bool = False
    ) -> dict[str, Any] | None:
        """Health bookkeeping after a test or a provider operation."""
        state = self.state
        with state.store.tx():
            row = self.get_row(connection_id)
            if row is None:
                return None
            doc = loads(row["doc"])
            now = state.iso_now()
            if ok:
                doc["consecutive_failures"] = 0
                doc["last_error"] = None
                if doc["status"] == "FAILED":
                    doc["status"] = "ACTIVE"
                if used:
                    doc["last_used_at"] = now
            else:
                doc["consecutive_failures"] = int(doc.get("consecutive_failures") or 0) + 1
                doc["last_error"] = (error or "unknown error")[:1000]
                if doc["status"] == "ACTIVE" and doc["consecutive_failures"] >= AUTO_DISABLE_AFTER:
                    doc["status"] = "FAILED"
            if tested:
                doc["last_tested_at"] = now
            doc["updated_at"] = doc.get("updated_at") or now
            self.save(row, doc)
        return doc

    def test_saved(self, row) -> dict[str, Any]:
        config = self.box.decrypt(row["secret"])
        try:
            provider = self.provider_for(row)
        except ProviderError as err:
            result = _failure(err, config)
        else:
            result = self._probe(provider, config.get("bucket"), config)
        self.record(row["connection_id"], result["success"], result["message"], tested=True)
        return result


def _failure(err: ProviderError, config: Mapping[str, Any]) -> dict[str, Any]:
    details = err.to_dict()
    message = scrub_text(err.full_message, config)
    details["error"] = scrub_text(str(details.get("error", "")), config)
    return {"success": False, "message": message, "details": details}


def _close_quietly(provider) -> None:
    try:
        provider.close()
    except Exception:  # noqa: BLE001
        pass


# -- blob readers: the worker reads synced files through their connection ----------
def _service(ctx: ReadContext) -> ConnectionService:
    svc = getattr(ctx.state, "storage_connections", None)
    if svc is None:
        raise BlobReadError("storage connections are not enabled on this server")
    return svc


def _blob_props(ctx: ReadContext, url: str) -> dict[str, Any]:
    known = ctx.extra.get("blob_properties")  # the worker has the object in hand: no re-read
    if known is not None and known.get("url") == url:
        return known
    if ctx.state is None or not ctx.object_id:
        return {}
    row = ctx.state.store.one("SELECT doc FROM objects WHERE object_id=?", (ctx.object_id,))
    if row is None:
        return {}
    for b in loads(row["doc"]).get("blobs", []):
        props = b.get("properties") or {}
        if props.get("url") == url:
            return props
    return {}


def _connection_for(ctx: ReadContext, url: str, scheme: str):
    svc = _service(ctx)
    props = _blob_props(ctx, url)
    cid = props.get("connection_id")
    store = ctx.state.store
    if cid:
        row = store.one("SELECT * FROM storage_connections WHERE connection_id=? AND org_id=?", (cid, ctx.org_id))
        if row is None:
            raise BlobReadError(f"storage connection {cid} no longer exists")
        return svc, row, props
    if scheme != "s3":
        raise BlobReadError(f"{scheme}:// blobs need the storage connection they come from")
    # an s3:// URL given by a user: the organization's S3 connection for that bucket
    bucket = url[5:].split("/", 1)[0]
    rows = store.query(
        "SELECT * FROM storage_connections WHERE org_id=? AND provider_type IN ('s3','tigris') "
        "AND status='ACTIVE' ORDER BY rowid DESC",
        (ctx.org_id,),
    )
    same = [r for r in rows if (loads(r["doc"]).get("provider_config") or {}).get("bucket") == bucket]
    if same:
        return svc, same[0], props
    if len(rows) == 1:
        return svc, rows[0], props
    if not rows:
        raise BlobReadError(
            f"no active S3 storage connection can read s3://{bucket}/: create one "
            "(POST /v1/organizations/connections) or sync the bucket"
        )
    raise BlobReadError(
        f"{len(rows)} S3 storage connections could read s3://{bucket}/: set 'bucket' in the "
        "provider_config of the right one, or sync the files instead"
    )


def read_connection_blob(url: str, ctx: ReadContext):
    """Blob reader of ``s3://bucket/key`` and ``gdrive://<file id>`` URLs.

    A failed read is retried :data:`READ_RETRIES` times (backoff scaled by the
    server's ``time_scale``); the content is spooled, so a download broken in
    the middle is restarted cleanly. Returns a binary file object.
    """
    scheme = url.split("://", 1)[0].lower()
    svc, row, props = _connection_for(ctx, url, scheme)
    if row["status"] in ("SUSPENDED", "ARCHIVED"):
        raise BlobReadError(f"storage connection '{loads(row['doc'])['name']}' is {row['status']}")
    source = _source_for(url, props, row["provider_type"])
    shown = source.key if scheme == "gdrive" else url
    attempts = READ_RETRIES + 1
    first = 0
    last: Exception | None = None
    pending = svc.prefetcher.take(row["connection_id"], url)
    svc.prefetcher.ahead(ctx.object_id)
    if pending is not None:  # read ahead: that was the first attempt
        while True:
            ctx.check_cancel()
            try:
                return pending.result(timeout=0.2)
            except FutureTimeout:
                continue
            except BlobCanceled:
                raise
            except Exception as exc:  # noqa: BLE001 - retried below
                last = exc
                first = 1
                break
    try:
        provider = svc.provider_for(row)
    except ProviderError as err:
        raise BlobReadError(err.full_message) from None
    tmp_dir = (ctx.data_dir / "tmp") if ctx.data_dir is not None else None
    for attempt in range(first, attempts):
        if attempt:
            delay = READ_BACKOFF * (2 ** (attempt - 1))
            if ctx.state is not None:
                delay = ctx.state.scaled(delay)
            if ctx.cancel is not None:
                ctx.cancel.wait(delay)
            else:
                time.sleep(delay)
        ctx.check_cancel()
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, dir=str(tmp_dir) if tmp_dir else None)
        try:
            for chunk in provider.iter_bytes(source):
                ctx.check_cancel()
                spool.write(chunk)
            spool.seek(0)
            return spool
        except BlobCanceled:
            spool.close()
            raise
        except ProviderError as err:
            last = err
        except Exception as exc:  # noqa: BLE001 - transport surprises are retried too
            last = exc
        spool.close()
    msg = last.full_message if isinstance(last, ProviderError) else f"{type(last).__name__}: {last}"
    raise BlobReadError(f"cannot read {shown} after {attempts} attempts ({READ_RETRIES} retries): {msg}")


register_blob_reader("s3", read_connection_blob)
register_blob_reader("gdrive", read_connection_blob)
