"""Encryption at rest and redaction of storage-connection credentials.

``SecretBox(data_dir)`` keeps one Fernet key in ``<data_dir>/secret.key``
(mode 0600, created atomically the first time, reused afterwards) and turns a
credentials dict into an opaque token and back.

``redact_credentials(provider_config)`` returns a copy safe to put in a server
response: every secret field is replaced by ``REDACTED`` (the contract shows
redacted credentials as ``"secret_access_key": "***REDACTED***"``).
"""

from __future__ import annotations

import copy
import json
import os
import secrets as _pysecrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

__all__ = [
    "REDACTED",
    "SECRET_FIELDS",
    "KEY_FILENAME",
    "SecretBox",
    "SecretBoxError",
    "SecretDecryptionError",
    "is_secret_field",
    "redact_credentials",
    "secret_values",
    "scrub_text",
]

REDACTED = "***REDACTED***"
KEY_FILENAME = "secret.key"

# Field names that hold secrets in any provider's credentials (S3/Tigris access
# keys, STS sessions, Google service-account keys and OAuth clients, database
# passwords, SharePoint/Azure secrets, ...). ``is_secret_field`` also catches
# look-alikes by suffix, so new credential types are redacted by default.
SECRET_FIELDS = frozenset(
    {
        "secret_access_key",
        "session_token",
        "private_key",
        "private_key_id",
        "private_key_passphrase",
        "client_secret",
        "refresh_token",
        "access_token",
        "id_token",
        "token",
        "password",
        "passphrase",
        "api_key",
        "account_key",
        "sas_token",
        "connection_string",
        "secret",
    }
)
# Fields that look secret by their suffix but are not (kept as they are).
_NOT_SECRET = frozenset({"token_uri", "external_id", "access_key_id", "client_id", "client_email"})
_SECRET_SUFFIXES = ("_secret", "_password", "_token", "_private_key", "_passphrase", "_api_key")


class SecretBoxError(Exception):
    """The key file is unusable or a token cannot be decrypted."""


class SecretDecryptionError(SecretBoxError):
    """The token was not produced with this data dir's key (or was altered)."""


class SecretBox:
    """Fernet encryption with a per-data-dir key file (mode 0600)."""

    def __init__(self, data_dir: str | os.PathLike[str]):
        self.data_dir = Path(data_dir)
        self.key_path = self.data_dir / KEY_FILENAME
        self._fernet = Fernet(self._load_or_create_key())

    def __repr__(self) -> str:  # never shows the key
        return f"SecretBox(key_path={str(self.key_path)!r})"

    # -- key file ---------------------------------------------------------
    def _load_or_create_key(self) -> bytes:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.key_path.exists():
            self._create_key_file()
        return self._read_key_file()

    def _create_key_file(self) -> None:
        # Write the key into a private temp file created with O_EXCL and 0600,
        # then hard-link it into place: the link fails if another process won
        # the race, and nobody ever sees a half-written key file.
        key = Fernet.generate_key()
        tmp = self.data_dir / f".{KEY_FILENAME}.{os.getpid()}.{_pysecrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, self.key_path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError:
            # file systems without hard links: fall back to O_EXCL on the target
            try:
                fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                try:
                    os.fchmod(fd, 0o600)
                    os.write(fd, key)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def _read_key_file(self) -> bytes:
        try:
            mode = self.key_path.stat().st_mode & 0o777
            if mode & 0o077:
                os.chmod(self.key_path, 0o600)  # tighten a key file others can read
            key = self.key_path.read_bytes().strip()
        except OSError as exc:
            raise SecretBoxError(f"cannot read the credentials key file {self.key_path}: {exc.strerror}") from None
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise SecretBoxError(
                f"the credentials key file {self.key_path} is corrupt (not a Fernet key); "
                "restore it from a backup, or delete it and re-create the storage connections"
            ) from None
        return key

    # -- API --------------------------------------------------------------
    def encrypt(self, data: dict[str, Any]) -> str:
        if not isinstance(data, dict):
            raise TypeError(f"SecretBox.encrypt takes a dict, not {type(data).__name__}")
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
        return self._fernet.encrypt(payload).decode("ascii")

    def decrypt(self, token: str | bytes) -> dict[str, Any]:
        raw = token.encode("ascii") if isinstance(token, str) else token
        try:
            payload = self._fernet.decrypt(raw)
        except (InvalidToken, ValueError, TypeError):
            raise SecretDecryptionError(
                f"cannot decrypt stored credentials with the key in {self.key_path}: "
                "the key file was replaced or the stored value was altered; re-create the connection"
            ) from None
        data = json.loads(payload.decode("utf-8"))
        if not isinstance(data, dict):
            raise SecretDecryptionError("decrypted credentials are not a JSON object")
        return data


def is_secret_field(name: str) -> bool:
    n = name.lower()
    if n in _NOT_SECRET:
        return False
    return n in SECRET_FIELDS or n.endswith(_SECRET_SUFFIXES)


def _looks_like_secret_value(value: Any) -> bool:
    return isinstance(value, str) and "PRIVATE KEY-----" in value


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_field(k) and v is not None:
                out[k] = REDACTED
            else:
                out[k] = _redact(v)
        return out
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if _looks_like_secret_value(value):
        return REDACTED
    return copy.copy(value)


def redact_credentials(provider_config: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``provider_config`` with every secret replaced by ``REDACTED``.

    Non-secret identifying fields (``access_key_id``, ``client_email``,
    ``client_id``, ``role_arn``, ``external_id``, ``project_id``, ``region``,
    ``endpoint_url`` ...) are kept so a user can tell connections apart.
    ``credentials`` given as a raw string (e.g. a pasted JSON key file) is
    redacted as a whole.
    """
    if provider_config is None:
        return {}
    out = _redact(provider_config)
    creds = out.get("credentials") if isinstance(out, dict) else None
    if isinstance(creds, str) and creds:
        out["credentials"] = REDACTED
    return out


def secret_values(provider_config: Any) -> list[str]:
    """Every secret string in ``provider_config`` (for scrubbing messages)."""
    found: list[str] = []

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, secret or (isinstance(k, str) and is_secret_field(k)))
        elif isinstance(value, list):
            for v in value:
                walk(v, secret)
        elif isinstance(value, str) and value and (secret or _looks_like_secret_value(value)):
            found.append(value)

    walk(provider_config, False)
    if isinstance(provider_config, dict) and isinstance(provider_config.get("credentials"), str):
        found.append(provider_config["credentials"])
    return found


def scrub_text(text: str, provider_config: Any) -> str:
    """``text`` with every secret value of ``provider_config`` replaced by ``REDACTED``."""
    for value in sorted(secret_values(provider_config), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, REDACTED)
    return text
