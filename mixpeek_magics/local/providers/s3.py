"""S3, S3-compatible stores (MinIO, moto, Wasabi, ...) and Tigris, via boto3.

Paths are ``bucket/prefix`` (``s3://bucket/prefix`` and a leading ``/`` are
accepted too); an empty path means the config's ``bucket`` (the contract's
create-request examples carry one, though ``S3Config`` does not declare it).
A prefix is treated like a folder: ``bucket/videos`` lists ``videos/...`` (and
the single object ``videos`` if there is one), never ``videos2/...``.
"""

from __future__ import annotations

import mimetypes
import posixpath
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.exceptions as bexc
from botocore.config import Config

from .base import ProviderError, ProviderSettings, SourceFile, StorageProvider, run_with_deadline
from .filters import apply_filters

__all__ = ["S3Provider", "TIGRIS_DEFAULT_ENDPOINT", "split_s3_path"]

TIGRIS_DEFAULT_ENDPOINT = "https://fly.storage.tigris.dev"
FOLDER_MIME = "application/x-directory"
FIRST_PAGE_KEYS = 100  # keys on the first listing page (then s3_page_size per page)

_BAD_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "the access key was rejected",
    "SignatureDoesNotMatch": "the secret access key was rejected (signature does not match)",
    "InvalidToken": "the session token was rejected",
    "ExpiredToken": "the session token has expired",
    "TokenRefreshRequired": "the session token has expired",
    "InvalidClientTokenId": "the access key was rejected",
    "UnrecognizedClientException": "the access key was rejected",
    "AuthFailure": "the credentials were rejected",
    "InvalidSecurity": "the credentials were rejected",
}
_ACCESS_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "Forbidden", "403"}


def split_s3_path(path: str | None, default_bucket: str | None = None) -> tuple[str, str]:
    """``"bucket/a/b"`` -> ``("bucket", "a/b")``; empty -> ``(default_bucket, "")``."""
    p = (path or "").strip()
    if p.lower().startswith("s3://"):
        p = p[5:]
    p = p.lstrip("/")
    if not p:
        if not default_bucket:
            raise ProviderError(
                "no bucket given: use a path like 'my-bucket/prefix' (or set 'bucket' in provider_config)",
                "invalid_config",
            )
        return default_bucket, ""
    bucket, _, prefix = p.partition("/")
    return bucket, prefix


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


class S3Provider(StorageProvider):
    """A bucket store spoken to with the S3 protocol."""

    def __init__(
        self, provider_config: dict[str, Any], *, settings: ProviderSettings | None = None, provider_type: str = "s3"
    ):
        self.provider_type = provider_type
        self.settings = settings or ProviderSettings()
        cfg = dict(provider_config or {})
        creds = cfg.get("credentials")
        if not isinstance(creds, dict):
            raise ProviderError("provider_config.credentials is required (an object with a 'type')", "invalid_config")
        ctype = creds.get("type") or ("iam_role" if "role_arn" in creds else "access_key")
        if ctype not in ("access_key", "iam_role"):
            raise ProviderError(
                f"provider_config.credentials.type {ctype!r} is not supported; use 'access_key' or 'iam_role'",
                "invalid_config",
            )
        if provider_type == "tigris" and ctype != "access_key":
            raise ProviderError("Tigris supports only 'access_key' credentials", "invalid_config")
        if ctype == "access_key":
            missing = [k for k in ("access_key_id", "secret_access_key") if not creds.get(k)]
        else:
            missing = [k for k in ("role_arn", "external_id") if not creds.get(k)]
        if missing:
            raise ProviderError(
                f"provider_config.credentials ({ctype}) is missing {', '.join(missing)}", "invalid_config"
            )
        self._creds = dict(creds)
        self._creds["type"] = ctype
        self.credentials_type = ctype

        region = cfg.get("region")
        if provider_type == "tigris":
            region = region or "auto"
        elif not region:
            if cfg.get("endpoint_url"):
                region = "us-east-1"  # S3-compatible stores mostly ignore the region
            else:
                raise ProviderError(
                    "provider_config.region is required for AWS S3 (e.g. 'us-east-1')", "invalid_config"
                )
        self.region = str(region)
        self.use_ssl = bool(cfg.get("use_ssl", True))
        self.verify_ssl = bool(cfg.get("verify_ssl", True))
        endpoint = cfg.get("endpoint_url") or (TIGRIS_DEFAULT_ENDPOINT if provider_type == "tigris" else None)
        if endpoint:
            endpoint = str(endpoint).strip().rstrip("/")
            if "://" not in endpoint:
                endpoint = ("https://" if self.use_ssl else "http://") + endpoint
            parsed = urlparse(endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ProviderError(
                    f"provider_config.endpoint_url {endpoint!r} is not an http(s) URL like https://minio.example.com",
                    "invalid_config",
                )
        self.endpoint_url: str | None = endpoint
        self.bucket: str | None = cfg.get("bucket") or None
        self._client = None
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------
    @property
    def endpoint_display(self) -> str:
        if self.endpoint_url:
            return self.endpoint_url
        return f"https://s3.{self.region}.amazonaws.com"

    def __repr__(self) -> str:
        return (
            f"S3Provider(provider_type={self.provider_type!r}, endpoint={self.endpoint_display!r}, "
            f"region={self.region!r}, credentials={self.credentials_type!r})"
        )

    def _config(self, **extra: Any) -> Config:
        kw: dict[str, Any] = dict(
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            retries={"max_attempts": max(1, int(self.settings.max_attempts)), "mode": "standard"},
            user_agent_extra="mixpeek-local",
            **extra,
        )
        try:
            return Config(
                request_checksum_calculation="when_required", response_checksum_validation="when_required", **kw
            )
        except TypeError:  # older botocore
            return Config(**kw)

    def _session(self) -> boto3.session.Session:
        c = self._creds
        if c["type"] == "access_key":
            return boto3.session.Session(
                aws_access_key_id=c["access_key_id"],
                aws_secret_access_key=c["secret_access_key"],
                aws_session_token=c.get("session_token") or None,
                region_name=self.region,
            )
        return self._assume_role_session()

    def _assume_role_session(self) -> boto3.session.Session:
        from botocore.credentials import RefreshableCredentials
        from botocore.session import get_session

        s = self.settings
        base = boto3.session.Session(
            aws_access_key_id=s.sts_access_key_id,
            aws_secret_access_key=s.sts_secret_access_key,
            aws_session_token=s.sts_session_token,
            region_name=self.region,
        )
        sts = base.client(
            "sts",
            endpoint_url=s.sts_endpoint_url or self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify_ssl,
            config=self._config(),
        )
        role_arn = self._creds["role_arn"]
        external_id = self._creds["external_id"]

        def fetch() -> dict[str, str]:
            try:
                resp = sts.assume_role(
                    RoleArn=role_arn, RoleSessionName=s.sts_session_name, ExternalId=external_id, DurationSeconds=3600
                )
            except bexc.NoCredentialsError:
                raise ProviderError(
                    "iam_role credentials need the local server's own AWS credentials to call STS AssumeRole, "
                    "and none were found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for the server)",
                    "invalid_config",
                ) from None
            except bexc.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in _BAD_CREDENTIAL_CODES:
                    raise ProviderError(
                        f"the server's AWS credentials used to assume {role_arn} were rejected ({code})",
                        "bad_credentials",
                        provider_code=code,
                    ) from None
                if code in _ACCESS_DENIED_CODES:
                    raise ProviderError(
                        f"not allowed to assume role {role_arn}: check the role's trust policy and external_id",
                        "access_denied",
                        provider_code=code,
                    ) from None
                raise self._map_error(exc) from None
            except Exception as exc:
                raise self._map_error(exc) from None
            cr = resp["Credentials"]
            exp = cr["Expiration"]
            return {
                "access_key": cr["AccessKeyId"],
                "secret_key": cr["SecretAccessKey"],
                "token": cr["SessionToken"],
                "expiry_time": exp.isoformat() if isinstance(exp, datetime) else str(exp),
            }

        creds = RefreshableCredentials.create_from_metadata(
            metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
        )
        bs = get_session()
        bs._credentials = creds
        return boto3.session.Session(botocore_session=bs, region_name=self.region)

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                extra = {"s3": {"addressing_style": "path"}} if self.endpoint_url else {}
                self._client = self._session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    use_ssl=self.use_ssl,
                    verify=self.verify_ssl if self.use_ssl else False,
                    config=self._config(signature_version="s3v4", **extra),
                )
            return self._client

    def _map_error(self, exc: BaseException, *, bucket: str | None = None, key: str | None = None) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        where = self.endpoint_display
        if isinstance(exc, bexc.ClientError):
            err = exc.response.get("Error", {}) or {}
            code = str(err.get("Code", "") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _BAD_CREDENTIAL_CODES:
                return ProviderError(
                    _BAD_CREDENTIAL_CODES[code] + f" ({code})",
                    "bad_credentials",
                    provider_code=code,
                    status_code=status,
                )
            if code == "NoSuchBucket" or (code in ("404", "NotFound") and bucket and not key):
                return ProviderError(
                    f"bucket {bucket or err.get('BucketName') or ''!r} does not exist at {where}",
                    "no_such_bucket",
                    provider_code=code or "NoSuchBucket",
                    status_code=status,
                )
            if code in ("NoSuchKey", "404", "NotFound"):
                return ProviderError(
                    f"object {key!r} not found in bucket {bucket!r}",
                    "not_found",
                    provider_code=code,
                    status_code=status,
                )
            if code in _ACCESS_DENIED_CODES or status == 403:
                target = f"bucket {bucket!r}" if bucket else "the requested resource"
                return ProviderError(
                    f"the credentials are not allowed to access {target} ({code or status})",
                    "access_denied",
                    provider_code=code,
                    status_code=status,
                )
            if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
                return ProviderError(
                    f"bucket {bucket!r} is in another region than {self.region!r} ({code}); fix provider_config.region",
                    "invalid_config",
                    provider_code=code,
                    status_code=status,
                )
            if code == "InvalidBucketName":
                return ProviderError(
                    f"{bucket!r} is not a valid bucket name", "invalid_config", provider_code=code, status_code=status
                )
            msg = str(err.get("Message") or code or exc)
            return ProviderError(f"S3 error {code or status}: {msg}", "other", provider_code=code, status_code=status)
        if isinstance(exc, bexc.SSLError):
            return ProviderError(
                f"cannot reach {where}: TLS/SSL error ({exc.__class__.__name__}); check use_ssl/verify_ssl",
                "unreachable",
            )
        if isinstance(exc, (bexc.ConnectTimeoutError, bexc.ReadTimeoutError)):
            return ProviderError(f"cannot reach {where}: timed out", "unreachable")
        if isinstance(exc, (bexc.ConnectionError, bexc.HTTPClientError)):
            return ProviderError(f"cannot reach {where}: connection failed", "unreachable")
        if isinstance(exc, (bexc.NoCredentialsError, bexc.PartialCredentialsError)):
            return ProviderError("no usable credentials", "invalid_config")
        if isinstance(exc, bexc.ParamValidationError):
            return ProviderError(f"invalid request: {exc}", "invalid_config")
        if isinstance(exc, bexc.BotoCoreError):
            return ProviderError(f"S3 client error: {exc.__class__.__name__}", "other")
        return ProviderError(f"unexpected error: {exc.__class__.__name__}: {exc}", "other")

    # -- StorageProvider --------------------------------------------------
    def test(self, path: str | None = None) -> None:
        """Credentials can list the bucket of ``path`` (or the config's bucket);
        with no bucket at all, that they can list buckets."""
        bucket, prefix = (None, "")
        if path or self.bucket:
            bucket, prefix = split_s3_path(path, self.bucket)

        def probe() -> None:
            try:
                if bucket:
                    self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
                else:
                    self.client.list_buckets()
            except Exception as exc:
                raise self._map_error(exc, bucket=bucket) from None

        run_with_deadline(probe, self.settings.overall_test_timeout, self.endpoint_display)

    def iter_files(self, path: str, filters: Any = None) -> Iterator[SourceFile]:
        bucket, prefix = split_s3_path(path, self.bucket)
        return apply_filters(self._list(bucket, prefix), filters)

    def _list(self, bucket: str, prefix: str) -> Iterator[SourceFile]:
        folder = prefix if (not prefix or prefix.endswith("/")) else prefix + "/"
        found = False
        for f in self._list_prefix(bucket, folder, folder):
            found = True
            yield f
        if not found and folder != prefix:
            # "bucket/path/file.ext": no folder of that name, maybe one object
            for f in self._list_prefix(bucket, prefix, "", page_size=1):
                if f.key == prefix:
                    yield f
                break

    def _pages(self, bucket: str, prefix: str, limit: int | None) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages. The first page is short so a sync's first batch
        starts processing at once rather than after a full page of 1,000 keys;
        later pages are full. ``limit``: one page of at most that many keys."""
        size = max(1, int(limit or self.settings.s3_page_size))
        first = size if limit else min(size, FIRST_PAGE_KEYS)
        kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": first}
        while True:
            page = self.client.list_objects_v2(**kw)
            yield page
            token = page.get("NextContinuationToken")
            if limit or not page.get("IsTruncated") or not token:
                return
            kw = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": size, "ContinuationToken": token}

    def _list_prefix(self, bucket: str, prefix: str, folder: str, page_size: int | None = None) -> Iterator[SourceFile]:
        try:
            for page in self._pages(bucket, prefix, page_size):
                for obj in page.get("Contents", ()) or ():
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # "directory marker" objects
                    name = posixpath.basename(key)
                    rel = key[len(folder) :] if folder and key.startswith(folder) else name
                    etag = obj.get("ETag")
                    yield SourceFile(
                        key=key,
                        name=name,
                        size=obj.get("Size"),
                        etag_or_md5=etag.strip('"') if etag else None,
                        modified=_parse_dt(obj.get("LastModified")),
                        mime_type=mimetypes.guess_type(name)[0],
                        bucket=bucket,
                        relative_path=rel if folder else key,
                        provider_type=self.provider_type,
                        extra={"storage_class": obj.get("StorageClass")} if obj.get("StorageClass") else {},
                    )
        except ProviderError:
            raise
        except Exception as exc:
            raise self._map_error(exc, bucket=bucket) from None

    def iter_bytes(self, file: SourceFile, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        bucket = file.bucket or self.bucket
        if not bucket:
            raise ProviderError(f"{file.key!r} has no bucket", "invalid_config")
        try:
            resp = self.client.get_object(Bucket=bucket, Key=file.key)
        except Exception as exc:
            raise self._map_error(exc, bucket=bucket, key=file.key) from None
        return self._stream(resp["Body"], chunk_size, bucket, file.key)

    def _stream(self, body, chunk_size: int, bucket: str, key: str) -> Iterator[bytes]:
        try:
            for chunk in body.iter_chunks(chunk_size):
                if chunk:
                    yield chunk
        except Exception as exc:
            raise self._map_error(exc, bucket=bucket, key=key) from None
        finally:
            body.close()

    def list_folders(self, path: str = "/") -> list[dict[str, str]]:
        p = (path or "").strip()
        if p.lower().startswith("s3://"):
            p = p[5:]
        if not p.strip("/") and not self.bucket:
            try:
                buckets = self.client.list_buckets().get("Buckets", [])
            except Exception as exc:
                raise self._map_error(exc) from None
            return [
                {"id": b["Name"], "name": b["Name"], "path": "/" + b["Name"], "mime_type": FOLDER_MIME} for b in buckets
            ]
        bucket, prefix = split_s3_path(p, self.bucket)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        out: list[dict[str, str]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket,
                Prefix=prefix,
                Delimiter="/",
                PaginationConfig={"PageSize": max(1, int(self.settings.s3_page_size))},
            )
            for page in pages:
                for cp in page.get("CommonPrefixes", ()) or ():
                    sub = cp["Prefix"].rstrip("/")
                    ident = f"{bucket}/{sub}"
                    out.append(
                        {"id": ident, "name": posixpath.basename(sub), "path": "/" + ident, "mime_type": FOLDER_MIME}
                    )
        except Exception as exc:
            raise self._map_error(exc, bucket=bucket) from None
        return out

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                except Exception:
                    pass
                self._client = None
