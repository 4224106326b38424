"""Runtime settings of the local server: pacing, time scale, fault injection.

Every field can come from the environment as ``MIXPEEK_LOCAL_<FIELD>`` (upper
case), from CLI flags of ``python -m mixpeek_magics.local serve`` and from
``LocalServer.update_settings(**fields)`` at runtime.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

ENV_PREFIX = "MIXPEEK_LOCAL_"


@dataclass
class LocalSettings:
    #: seconds spent on each object of a batch (demos show visible progress)
    pace_seconds: float = 0.0
    #: seconds between refreshes of a running batch's ``progress`` (the real service: about 10;
    #: every object while ``pace_seconds`` is on, so demos show each step)
    progress_refresh_seconds: float = 1.0
    #: seconds after a batch ends before its ``documents_resolvable`` turns true (the real
    #: service confirms the documents are queryable after a batch completes)
    resolvable_delay_seconds: float = 0.0
    #: seconds a sync run spends on each batch of files before submitting it (the service
    #: discovers, downloads and submits batch by batch, so a run's tasks appear over time)
    sync_batch_seconds: float = 0.0
    #: seconds a task record lives (GET answers 404 and lists skip it after); None: forever
    #: (the real service keeps them about 24 h; the batch keeps everything)
    task_ttl_seconds: float | None = None
    #: multiplies every server-side wait (pace, latency); tests use small values
    time_scale: float = 1.0
    #: fnmatch patterns on an object's filename: matching objects fail processing
    fail_filenames: list[str] = field(default_factory=list)
    #: share (0..1) of API answers replaced by 429 Too Many Requests
    fault_rate_429: float = 0.0
    #: share (0..1) of API answers replaced by 503 Service Unavailable
    fault_rate_503: float = 0.0
    #: value of the Retry-After header on injected 429/503 answers (seconds)
    retry_after_seconds: float = 1.0
    #: latency added to each API request (milliseconds, scaled by time_scale)
    latency_ms: float = 0.0
    #: latency added to each presigned PUT (milliseconds, scaled by time_scale): an S3-like round trip
    upload_latency_ms: float = 0.0
    #: serve the upload endpoint over HTTPS with a self-signed test certificate (read at start;
    #: clients trust it through ``LocalServer.upload_ca_file``)
    upload_tls: bool = False
    #: seed of the fault-injection random generator (None: random)
    fault_seed: int | None = None
    #: number of worker threads processing tasks
    workers: int = 2
    #: largest inline (data URI / base64) blob accepted, in bytes
    max_inline_bytes: int = 50 * 1024 * 1024
    #: timeout of the worker's http(s) downloads, seconds
    fetch_timeout_seconds: float = 30.0
    #: largest request body the API accepts, in bytes (larger: 413 before the rest is read)
    max_request_bytes: int = 10 * 1024 * 1024
    #: longest pause while a request body arrives, seconds (longer: 408; 0: no limit)
    body_read_timeout_seconds: float = 10.0
    #: Google Drive v3 API root used by google_drive connections (None: Google's)
    google_drive_api_root: str | None = None
    #: OAuth token endpoint for google_drive oauth credentials without one (None: Google's)
    google_token_uri: str | None = None
    #: check every JSON answer against its contract schema (costs CPU; projection and
    #: request validation happen either way)
    contract_check: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if isinstance(self.fail_filenames, str):
            self.fail_filenames = [p for p in self.fail_filenames.split(",") if p.strip()]
        self.fail_filenames = [str(p).strip() for p in self.fail_filenames]
        for name in ("fault_rate_429", "fault_rate_503"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {v}")
            setattr(self, name, v)
        if self.fault_rate_429 + self.fault_rate_503 > 1.0:
            raise ValueError("fault_rate_429 + fault_rate_503 must not exceed 1")
        for name in (
            "pace_seconds",
            "time_scale",
            "retry_after_seconds",
            "latency_ms",
            "upload_latency_ms",
            "fetch_timeout_seconds",
            "progress_refresh_seconds",
            "body_read_timeout_seconds",
            "resolvable_delay_seconds",
            "sync_batch_seconds",
        ):
            v = float(getattr(self, name))
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
            setattr(self, name, v)
        if self.task_ttl_seconds is not None:
            self.task_ttl_seconds = float(self.task_ttl_seconds)
            if self.task_ttl_seconds < 0:
                raise ValueError(f"task_ttl_seconds must be >= 0 or None, got {self.task_ttl_seconds}")
        self.workers = int(self.workers)
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        self.max_inline_bytes = int(self.max_inline_bytes)
        self.max_request_bytes = int(self.max_request_bytes)
        if self.max_request_bytes < 1:
            raise ValueError("max_request_bytes must be >= 1")
        self.upload_tls = bool(self.upload_tls)
        if self.fault_seed is not None:
            self.fault_seed = int(self.fault_seed)

    # -- helpers -------------------------------------------------------
    def replace(self, **changes: Any) -> LocalSettings:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown LocalSettings field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> LocalSettings:
        """Settings from ``MIXPEEK_LOCAL_*`` variables, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse(name: str, raw: str) -> Any:
    if name in ("google_drive_api_root", "google_token_uri"):
        return raw
    if name in ("contract_check", "upload_tls"):
        return raw.strip().lower() not in ("0", "false", "no", "off")
    if name == "task_ttl_seconds" and raw.strip().lower() in ("none", "null", "off"):
        return None
    if name == "fail_filenames":
        return [p.strip() for p in raw.split(",") if p.strip()]
    if name in ("workers", "max_inline_bytes", "max_request_bytes", "fault_seed"):
        return int(raw)
    return float(raw)
