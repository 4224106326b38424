"""Google Drive (v3 REST protocol) with google-auth and requests.

Credentials (``provider_config.credentials``):

- ``service_account``: the JSON key file's fields. The access token comes
  from the key's own ``token_uri`` (default Google's); ``impersonate_user``
  becomes the JWT ``subject`` (domain-wide delegation).
- ``oauth``: ``client_id``, ``client_secret``, ``refresh_token`` (plus an
  optional ``token_uri``; the ``google_token_uri`` setting overrides the
  default ``https://oauth2.googleapis.com/token``).

Paths: ``/`` (My Drive, or the shared drive when ``shared_drive_id`` is set),
``/Marketing/Assets`` (folder names walked from the root), or a folder id.
``SourceFile.key`` is the Drive path (``/Marketing/Assets/a.png``); Drive
allows duplicate names, so ``file_id`` / ``uri`` is the unique identity.
Google-native documents (Docs, Sheets, ...) and shortcuts have no binary
content and are skipped by ``iter_files``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlparse

import requests

from .base import ProviderError, ProviderSettings, SourceFile, StorageProvider, run_with_deadline
from .filters import apply_filters

__all__ = [
    "GoogleDriveProvider",
    "FOLDER_MIME",
    "DRIVE_READONLY_SCOPE",
    "DEFAULT_TOKEN_URI",
    "validate_service_account_info",
]

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
DRIVE_READONLY_SCOPE = "https://www.googleapis.com/auth/drive.readonly"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
LIST_FIELDS = "nextPageToken, files(id, name, mimeType, size, md5Checksum, modifiedTime, parents, driveId, trashed)"
SA_REQUIRED = ("project_id", "private_key_id", "private_key", "client_email", "client_id")
OAUTH_REQUIRED = ("client_id", "client_secret", "refresh_token")
_RETRY_STATUS = {429, 500, 502, 503, 504}
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "backendError"}


def _parse_rfc3339(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _q_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def validate_service_account_info(info: Any) -> dict[str, Any]:
    """Check a service-account key (dict or JSON text); returns a normalized copy.

    Raises ``ProviderError(kind="invalid_config")`` naming what is wrong.
    """
    if isinstance(info, (str, bytes)):
        try:
            info = json.loads(info)
        except ValueError:
            raise ProviderError(
                "service_account credentials are not valid JSON (paste the whole JSON key file)", "invalid_config"
            ) from None
    if not isinstance(info, dict):
        raise ProviderError(
            "service_account credentials must be a JSON object (the key file's fields)", "invalid_config"
        )
    info = dict(info)
    if info.get("type", "service_account") != "service_account":
        raise ProviderError(
            f"credentials.type is {info.get('type')!r}; a JSON key file has type 'service_account'", "invalid_config"
        )
    info["type"] = "service_account"
    missing = [k for k in SA_REQUIRED if not isinstance(info.get(k), str) or not info.get(k).strip()]
    if missing:
        raise ProviderError(
            f"the service account key is missing {', '.join(missing)} "
            "(use the JSON key file downloaded from Google Cloud Console > IAM > Service accounts > Keys)",
            "invalid_config",
        )
    if "@" not in info["client_email"]:
        raise ProviderError("credentials.client_email is not an email address", "invalid_config")
    pem = info["private_key"]
    if "\\n" in pem and "\n" not in pem.strip():
        pem = pem.replace("\\n", "\n")  # pasted with escaped newlines
    info["private_key"] = pem
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnicodeError):
        raise ProviderError(
            "credentials.private_key is not a valid PEM private key: paste the key file's whole 'private_key' "
            "value, including the -----BEGIN PRIVATE KEY----- and -----END PRIVATE KEY----- lines",
            "invalid_config",
        ) from None
    except Exception as exc:  # unsupported key algorithms, etc.
        raise ProviderError(
            f"credentials.private_key cannot be used ({exc.__class__.__name__})", "invalid_config"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ProviderError(
            "credentials.private_key must be an RSA key (Google service-account keys are RSA)", "invalid_config"
        )
    token_uri = info.get("token_uri")
    if token_uri is not None:
        parsed = urlparse(str(token_uri))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ProviderError(f"credentials.token_uri {token_uri!r} is not an http(s) URL", "invalid_config")
    return info


class _TimeoutRequest:
    """google-auth transport with our (connect, read) timeouts (its default is 120 s)."""

    def __init__(self, session: requests.Session, timeout: tuple[float, float]):
        from google.auth.transport.requests import Request

        self._inner = Request(session)
        self._timeout = timeout

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        return self._inner(url, method=method, body=body, headers=headers, timeout=self._timeout, **kwargs)


class GoogleDriveProvider(StorageProvider):
    provider_type = "google_drive"

    def __init__(
        self, provider_config: dict[str, Any], *, settings: ProviderSettings | None = None, api_root: str | None = None
    ):
        self.settings = settings or ProviderSettings()
        cfg = dict(provider_config or {})
        creds = cfg.get("credentials")
        if isinstance(creds, (str, bytes)):
            creds = validate_service_account_info(creds)
        if not isinstance(creds, dict):
            raise ProviderError("provider_config.credentials is required (service_account or oauth)", "invalid_config")
        ctype = creds.get("type") or (
            "service_account" if "private_key" in creds else "oauth" if "refresh_token" in creds else None
        )
        if ctype not in ("service_account", "oauth"):
            raise ProviderError(
                f"provider_config.credentials.type {creds.get('type')!r} is not supported; "
                "use 'service_account' (JSON key file) or 'oauth' (client_id, client_secret, refresh_token)",
                "invalid_config",
            )
        self.credentials_type = ctype
        self.shared_drive_id: str | None = cfg.get("shared_drive_id") or None
        self.impersonate_user: str | None = cfg.get("impersonate_user") or None
        self.api_root = (api_root or self.settings.google_drive_api_root).rstrip("/")
        self._timeout = (float(self.settings.connect_timeout), float(self.settings.read_timeout))
        self._session = requests.Session()
        self._auth_request = _TimeoutRequest(self._session, self._timeout)
        self._token_lock = threading.Lock()

        if ctype == "service_account":
            info = validate_service_account_info(creds)
            info["token_uri"] = info.get("token_uri") or self.settings.google_token_uri or DEFAULT_TOKEN_URI
            from google.oauth2 import service_account

            try:
                self._creds = service_account.Credentials.from_service_account_info(
                    info, scopes=[DRIVE_READONLY_SCOPE], subject=self.impersonate_user
                )
            except (ValueError, KeyError) as exc:
                raise ProviderError(
                    f"the service account key cannot be used ({exc.__class__.__name__})", "invalid_config"
                ) from None
            self.token_uri = info["token_uri"]
            self.principal = info["client_email"]
        else:
            missing = [k for k in OAUTH_REQUIRED if not creds.get(k)]
            if missing:
                raise ProviderError(
                    f"provider_config.credentials (oauth) is missing {', '.join(missing)}", "invalid_config"
                )
            if self.impersonate_user:
                raise ProviderError("impersonate_user works only with service_account credentials", "invalid_config")
            from google.oauth2.credentials import Credentials

            self.token_uri = creds.get("token_uri") or self.settings.google_token_uri or DEFAULT_TOKEN_URI
            self._creds = Credentials(
                token=None,
                refresh_token=creds["refresh_token"],
                token_uri=self.token_uri,
                client_id=creds["client_id"],
                client_secret=creds["client_secret"],
                scopes=[DRIVE_READONLY_SCOPE],
            )
            self.principal = "the OAuth user"

    def __repr__(self) -> str:
        return (
            f"GoogleDriveProvider(credentials={self.credentials_type!r}, api_root={self.api_root!r}, "
            f"shared_drive_id={self.shared_drive_id!r})"
        )

    # -- auth -------------------------------------------------------------
    def _host_label(self, url: str) -> str:
        host = urlparse(url).hostname or url
        if host.endswith("googleapis.com") or host.endswith("google.com"):
            return f"Google ({host})"
        return host

    def _refresh_token(self) -> None:
        from google.auth import exceptions as gexc

        try:
            self._creds.refresh(self._auth_request)
        except gexc.RefreshError as exc:
            data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
            code = str(data.get("error") or "")
            desc = str(data.get("error_description") or "")
            if getattr(exc, "retryable", False):
                raise ProviderError(
                    f"the token endpoint {self._host_label(self.token_uri)} is failing; try again later",
                    "other",
                    provider_code=code or None,
                ) from None
            what = (
                "the service account key"
                if self.credentials_type == "service_account"
                else "the OAuth client or refresh token"
            )
            detail = f"{code}: {desc}" if code and desc else (code or desc or str(exc.args[0] if exc.args else exc))
            kind = "access_denied" if code in ("unauthorized_client", "access_denied") else "bad_credentials"
            raise ProviderError(
                f"{self._host_label(self.token_uri)} rejected {what} ({detail})", kind, provider_code=code or None
            ) from None
        except gexc.TransportError:
            raise ProviderError(
                f"cannot reach {self._host_label(self.token_uri)}: check the network", "unreachable"
            ) from None
        except (ValueError, TypeError) as exc:  # e.g. signing fails
            raise ProviderError(f"cannot sign the token request ({exc.__class__.__name__})", "invalid_config") from None

    def _ensure_token(self, force: bool = False) -> str:
        with self._token_lock:
            if force or not self._creds.valid:
                run_with_deadline(
                    self._refresh_token, self.settings.overall_test_timeout, self._host_label(self.token_uri)
                )
            return self._creds.token

    # -- HTTP -------------------------------------------------------------
    def _request(
        self, path: str, params: dict[str, Any] | None = None, *, stream: bool = False, what: str = ""
    ) -> requests.Response:
        url = f"{self.api_root}/{path.lstrip('/')}"
        attempts = max(1, int(self.settings.max_attempts)) + 1
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._ensure_token()
            try:
                resp = self._session.get(
                    url,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self._timeout,
                    stream=stream,
                )
            except (requests.ConnectionError, requests.Timeout):
                raise ProviderError(
                    f"cannot reach {self._host_label(self.api_root)}: check the network", "unreachable"
                ) from None
            if resp.status_code < 300:
                return resp
            reason, message = self._error_info(resp)
            resp.close()
            if resp.status_code == 401 and not refreshed:
                refreshed = True
                self._ensure_token(force=True)
                continue
            retryable = resp.status_code in _RETRY_STATUS or (resp.status_code == 403 and reason in _RATE_REASONS)
            if retryable and attempt < attempts:
                delay = min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                ra = resp.headers.get("Retry-After")
                if ra and ra.isdigit():
                    delay = min(float(ra), 10.0)
                time.sleep(delay)
                continue
            raise self._http_error(resp.status_code, reason, message, what)

    @staticmethod
    def _error_info(resp: requests.Response) -> tuple[str, str]:
        try:
            body = resp.json()
        except ValueError:
            return "", resp.reason or ""
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            errors = err.get("errors") or [{}]
            reason = str((errors[0] or {}).get("reason") or err.get("status") or "")
            return reason, str(err.get("message") or "")
        return "", str(err or "")

    def _http_error(self, status: int, reason: str, message: str, what: str) -> ProviderError:
        target = what or "the requested item"
        if status == 401:
            return ProviderError(
                "Google Drive rejected the access token",
                "bad_credentials",
                provider_code=reason or None,
                status_code=status,
            )
        if status == 404:
            return ProviderError(
                f"{target} was not found, or is not shared with {self.principal}",
                "not_found",
                provider_code=reason or "notFound",
                status_code=status,
            )
        if status == 403:
            if reason == "fileNotDownloadable":
                return ProviderError(
                    f"{target} has no binary content (a Google Docs/Sheets/Slides file)",
                    "other",
                    provider_code=reason,
                    status_code=status,
                )
            return ProviderError(
                f"{self.principal} may not access {target} ({reason or message})",
                "access_denied",
                provider_code=reason or None,
                status_code=status,
            )
        if status == 400:
            return ProviderError(
                f"Google Drive refused the request: {message or reason}",
                "invalid_config",
                provider_code=reason or None,
                status_code=status,
            )
        return ProviderError(
            f"Google Drive answered HTTP {status}: {message or reason}",
            "other",
            provider_code=reason or None,
            status_code=status,
        )

    def _drive_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
        if self.shared_drive_id:
            p.update(corpora="drive", driveId=self.shared_drive_id)
        return p

    def _list_pages(
        self, q: str, *, page_size: int | None = None, fields: str = LIST_FIELDS, what: str = ""
    ) -> Iterator[dict[str, Any]]:
        params = self._drive_params()
        params.update(
            q=q, fields=fields, pageSize=str(min(1000, max(1, int(page_size or self.settings.drive_page_size))))
        )
        token: str | None = None
        while True:
            if token:
                params["pageToken"] = token
            resp = self._request("files", dict(params), what=what)
            try:
                body = resp.json()
            except ValueError:
                raise ProviderError("Google Drive sent an unreadable file list", "other") from None
            yield from body.get("files", []) or []
            token = body.get("nextPageToken")
            if not token:
                return

    def _get_meta(self, file_id: str, what: str = "") -> dict[str, Any]:
        resp = self._request(
            f"files/{quote(file_id, safe='')}",
            {"supportsAllDrives": "true", "fields": "id, name, mimeType, driveId, parents, trashed"},
            what=what or f"folder {file_id!r}",
        )
        return resp.json()

    # -- paths ------------------------------------------------------------
    @property
    def root_id(self) -> str:
        return self.shared_drive_id or "root"

    def resolve(self, path: str | None) -> tuple[str, str]:
        """``(folder id, display path)`` for ``/``, ``/A/B`` or a folder id."""
        p = (path or "").strip()
        if p.lower().startswith("gdrive://"):
            p = p[9:]
        if p in ("", "/", "root", self.shared_drive_id or "\0"):
            return self.root_id, "/"
        if "/" not in p:
            try:
                meta = self._get_meta(p)
            except ProviderError as err:
                if err.kind != "not_found":
                    raise
                meta = None
            if meta is not None:
                if meta.get("mimeType") != FOLDER_MIME:
                    raise ProviderError(f"{p!r} is a file ({meta.get('name')!r}), not a folder", "invalid_config")
                return meta["id"], "/" + meta.get("name", p)
        parts = [seg for seg in p.strip("/").split("/") if seg]
        folder, shown = self.root_id, ""
        for seg in parts:
            q = (
                f"{_q_literal(folder)} in parents and name = {_q_literal(seg)} "
                f"and mimeType = '{FOLDER_MIME}' and trashed = false"
            )
            found = next(iter(self._list_pages(q, page_size=10, what=f"folder '{shown}/{seg}'")), None)
            if found is None:
                raise ProviderError(
                    f"folder '/{'/'.join(parts)}' not found: no folder {seg!r} in '{shown or '/'}' "
                    f"(or it is not shared with {self.principal})",
                    "not_found",
                )
            folder, shown = found["id"], f"{shown}/{seg}"
        return folder, shown or "/"

    # -- StorageProvider --------------------------------------------------
    def test(self, path: str | None = None) -> None:
        """Fetch a token, then list one item of the root (or of ``path``)."""
        self._ensure_token()
        folder = self.root_id
        if path:
            folder, _ = self.resolve(path)
        q = f"{_q_literal(folder)} in parents and trashed = false"
        next(
            iter(self._list_pages(q, page_size=1, fields="nextPageToken, files(id)", what=f"folder {path or '/'!r}")),
            None,
        )

    def iter_files(self, path: str, filters: Any = None) -> Iterator[SourceFile]:
        from .filters import parse_filters

        ff = parse_filters(filters)  # validate before any network call
        return apply_filters(self._walk(path), ff)

    def _walk(self, path: str) -> Iterator[SourceFile]:
        folder_id, shown = self.resolve(path)
        base = "" if shown == "/" else shown
        queue: deque[tuple[str, str]] = deque([(folder_id, "")])
        seen = {folder_id}
        while queue:
            fid, rel_dir = queue.popleft()
            q = f"{_q_literal(fid)} in parents and trashed = false"
            for item in self._list_pages(q, what=f"folder '{base}/{rel_dir}'"):
                name = item.get("name", "")
                rel = f"{rel_dir}{name}"
                mime = item.get("mimeType") or ""
                if mime == FOLDER_MIME:
                    if item["id"] not in seen:
                        seen.add(item["id"])
                        queue.append((item["id"], rel + "/"))
                    continue
                if mime.startswith("application/vnd.google-apps.") or "size" not in item and "md5Checksum" not in item:
                    continue  # Docs/Sheets/shortcuts: no binary content
                size = item.get("size")
                yield SourceFile(
                    key=f"{base}/{rel}",
                    name=name,
                    size=int(size) if size is not None else None,
                    etag_or_md5=item.get("md5Checksum"),
                    modified=_parse_rfc3339(item.get("modifiedTime")),
                    mime_type=mime or None,
                    file_id=item["id"],
                    relative_path=rel,
                    provider_type=self.provider_type,
                    extra={"drive_id": item["driveId"]} if item.get("driveId") else {},
                )

    def iter_bytes(self, file: SourceFile, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        if not file.file_id:
            raise ProviderError(f"{file.key!r} has no Drive file id", "invalid_config")
        resp = self._request(
            f"files/{quote(file.file_id, safe='')}",
            {"alt": "media", "supportsAllDrives": "true"},
            stream=True,
            what=f"file {file.key!r}",
        )
        return self._stream(resp, chunk_size, file)

    def _stream(self, resp: requests.Response, chunk_size: int, file: SourceFile) -> Iterator[bytes]:
        try:
            for chunk in resp.iter_content(chunk_size):
                if chunk:
                    yield chunk
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
            raise ProviderError(f"download of {file.key!r} was interrupted", "unreachable") from None
        finally:
            resp.close()

    def list_folders(self, path: str = "/") -> list[dict[str, str]]:
        folder_id, shown = self.resolve(path)
        base = "" if shown == "/" else shown
        q = f"{_q_literal(folder_id)} in parents and mimeType = '{FOLDER_MIME}' and trashed = false"
        return [
            {
                "id": it["id"],
                "name": it.get("name", ""),
                "path": f"{base}/{it.get('name', '')}",
                "mime_type": FOLDER_MIME,
            }
            for it in self._list_pages(q, fields="nextPageToken, files(id, name, mimeType)", what=f"folder {shown!r}")
        ]

    def close(self) -> None:
        self._session.close()
