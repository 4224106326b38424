"""Storage connections (``/v1/organizations/connections``), from the v0.81 contract.

Provider configurations are typed: ``S3Config``, ``TigrisConfig`` and
``GoogleDriveConfig``, whose ``credentials`` are a union discriminated by
``type`` exactly as in the contract (``access_key`` / ``iam_role`` for S3,
``access_key`` for Tigris, ``service_account`` / ``oauth`` for Google Drive).

Secret fields (``secret_access_key``, ``session_token``, ``private_key``,
``client_secret``, ``refresh_token``) are :class:`pydantic.SecretStr`: reprs
and ``str()`` show ``**********``; only the JSON dump of a request body (what
is sent to the API) carries the value.

Built by you (a request), a model checks the contract's constraints
(required secrets, lengths, the role ARN pattern). Read from a response (the
server never returns secrets; it redacts or omits them), the same models are
lenient: parse them with ``context={"response": True}`` (the resources do).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, PlainSerializer, SecretStr, ValidationInfo, field_validator, model_validator

from mixpeek_magics.client.models._base import MixpeekModel, Status

__all__ = [
    "Secret",
    "S3AccessKeyCredentials",
    "S3RoleCredentials",
    "S3Credentials",
    "S3Config",
    "TigrisAccessKeyCredentials",
    "TigrisConfig",
    "GoogleDriveServiceAccountCredentials",
    "GoogleDriveOAuthCredentials",
    "GoogleDriveCredentials",
    "GoogleDriveConfig",
    "ProviderConfig",
    "StorageConnection",
    "ConnectionTestResult",
    "FolderItem",
    "FolderList",
    "DriveFile",
    "DriveFileList",
    "PROVIDER_TYPES",
    "parse_provider_config",
    "RESPONSE",
]

PROVIDER_TYPES = ("google_drive", "s3", "snowflake", "sharepoint", "tigris", "postgresql")
RESPONSE = {"response": True}
_SECRETISH = re.compile(r"secret|token|password|private|passphrase|api_key", re.IGNORECASE)
_ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/[\w+=,.@-]+$")


def _reveal(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


#: A secret string: masked in reprs, revealed only in JSON dumps (request bodies).
Secret = Annotated[SecretStr, PlainSerializer(_reveal, return_type=str, when_used="json")]


def _lenient(info: ValidationInfo) -> bool:
    ctx = info.context
    return bool(ctx and ctx.get("response"))


class _Checked(MixpeekModel):
    """Contract constraints, checked on models built for a request only."""

    # pydantic's messages quote the input otherwise, and the input holds secrets
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=(), hide_input_in_errors=True)

    _required: ClassVar[tuple[str, ...]] = ()
    _lengths: ClassVar[dict[str, tuple[int, int | None]]] = {}

    # extra fields that look secret are masked too
    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if isinstance(value, str) and _SECRETISH.search(name or ""):
                value = "**********"
            yield name, value

    @model_validator(mode="after")
    def _contract(self, info: ValidationInfo) -> Any:
        if _lenient(info):
            return self
        problems = []
        for name in self._required:
            if getattr(self, name, None) in (None, ""):
                problems.append(f"{name}: Field required")
        for name, (lo, hi) in self._lengths.items():
            v = _reveal(getattr(self, name, None))
            if v is None:
                continue
            if len(v) < lo:
                problems.append(f"{name}: String should have at least {lo} characters")
            if hi is not None and len(v) > hi:
                problems.append(f"{name}: String should have at most {hi} characters")
        if problems:
            raise ValueError("; ".join(problems))  # never quotes a value
        return self


# -- S3 ---------------------------------------------------------------------------
class S3AccessKeyCredentials(_Checked):
    type: Literal["access_key"] = "access_key"
    access_key_id: str | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None

    _required = ("access_key_id", "secret_access_key")
    _lengths = {"access_key_id": (16, 128), "secret_access_key": (40, None)}


class S3RoleCredentials(_Checked):
    type: Literal["iam_role"] = "iam_role"
    role_arn: str | None = None
    external_id: str | None = None

    _required = ("role_arn", "external_id")
    _lengths = {"external_id": (8, 128)}

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not _lenient(info) and not _ROLE_ARN.match(v):
            raise ValueError("must look like arn:aws:iam::<12-digit account id>:role/<role name>")
        return v


S3Credentials = Annotated[S3AccessKeyCredentials | S3RoleCredentials, Field(discriminator="type")]


class S3Config(_Checked):
    """Amazon S3 or an S3-compatible store (``endpoint_url``, ``use_ssl``, ``verify_ssl``).
    ``bucket`` (not in the contract's S3Config but in its create example) is kept as given."""

    provider_type: Literal["s3"] = "s3"
    credentials: S3Credentials
    region: str | None = None
    endpoint_url: str | None = None
    use_ssl: bool = True
    verify_ssl: bool = True
    bucket: str | None = None

    _required = ("region",)


# -- Tigris -----------------------------------------------------------------------
class TigrisAccessKeyCredentials(_Checked):
    type: Literal["access_key"] = "access_key"
    access_key_id: str | None = None
    secret_access_key: Secret | None = None

    _required = ("access_key_id", "secret_access_key")
    _lengths = {"access_key_id": (1, None), "secret_access_key": (1, None)}


class TigrisConfig(_Checked):
    provider_type: Literal["tigris"] = "tigris"
    credentials: TigrisAccessKeyCredentials
    region: str = "auto"
    endpoint_url: str = "https://fly.storage.tigris.dev"
    bucket: str | None = None


# -- Google Drive -----------------------------------------------------------------
class GoogleDriveServiceAccountCredentials(_Checked):
    """The JSON key file's fields (extra fields such as ``token_uri`` are kept)."""

    type: Literal["service_account"] = "service_account"
    project_id: str | None = None
    private_key_id: Secret | None = None
    private_key: Secret | None = None
    client_email: str | None = None
    client_id: str | None = None

    _required = ("project_id", "private_key_id", "private_key", "client_email", "client_id")


class GoogleDriveOAuthCredentials(_Checked):
    type: Literal["oauth"] = "oauth"
    client_id: str | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None

    _required = ("client_id", "client_secret", "refresh_token")


GoogleDriveCredentials = Annotated[
    GoogleDriveServiceAccountCredentials | GoogleDriveOAuthCredentials, Field(discriminator="type")
]


class GoogleDriveConfig(_Checked):
    provider_type: Literal["google_drive"] = "google_drive"
    credentials: GoogleDriveCredentials
    shared_drive_id: str | None = None
    impersonate_user: str | None = None


ProviderConfig = Annotated[S3Config | TigrisConfig | GoogleDriveConfig, Field(discriminator="provider_type")]
_CONFIGS: dict[str, type[_Checked]] = {"s3": S3Config, "tigris": TigrisConfig, "google_drive": GoogleDriveConfig}


def parse_provider_config(provider_type: str, config: Any, *, response: bool = False) -> Any:
    """``config`` (dict or model) as the typed config of ``provider_type``; dicts of
    providers this client has no model for are returned unchanged."""
    cls = _CONFIGS.get(provider_type)
    if cls is None or isinstance(config, cls):
        return config
    if isinstance(config, MixpeekModel):
        config = config.model_dump(mode="json", exclude_none=True)
    if not isinstance(config, dict):
        raise TypeError("provider_config must be a dict or a provider config model")
    data = dict(config)
    data.setdefault("provider_type", provider_type)
    creds = data.get("credentials")
    if isinstance(creds, dict) and "type" not in creds:  # the contract's defaults
        creds = dict(creds)
        if provider_type == "s3":
            creds["type"] = "iam_role" if "role_arn" in creds else "access_key"
        elif provider_type == "tigris":
            creds["type"] = "access_key"
        else:
            creds["type"] = "oauth" if "refresh_token" in creds else "service_account"
        data["credentials"] = creds
    return cls.model_validate(data, context=RESPONSE if response else None)


# -- responses ----------------------------------------------------------------------
class StorageConnection(MixpeekModel):
    """``StorageConnectionModel``. ``provider_config`` is the typed config with the
    secrets redacted by the server (or a dict for providers without a model here)."""

    connection_id: str | None = None
    internal_id: str | None = None
    provider_type: str
    provider_config: Any = None
    name: str
    description: str | None = None
    status: Status = None
    is_active: bool | None = None
    last_used_at: str | None = None
    last_error: str | None = None
    consecutive_failures: int | None = None
    created_at: str | None = None
    updated_at: str | None = None
    created_by_user_id: str | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("provider_config", mode="before")
    @classmethod
    def _config(cls, v: Any, info: ValidationInfo) -> Any:
        ptype = (info.data or {}).get("provider_type")
        if isinstance(v, dict) and ptype in _CONFIGS:
            try:
                return parse_provider_config(ptype, v, response=True)
            except ValueError:
                return v  # an unexpected shape stays readable as a dict
        return v

    @classmethod
    def from_response(cls, data: Any) -> StorageConnection:
        return cls.model_validate(data, context=RESPONSE)

    @property
    def credentials_type(self) -> str | None:
        creds = getattr(self.provider_config, "credentials", None)
        if creds is None and isinstance(self.provider_config, dict):
            creds = self.provider_config.get("credentials")
        return creds.get("type") if isinstance(creds, dict) else getattr(creds, "type", None)


class ConnectionTestResult(MixpeekModel):
    """``StorageConnectionTestResponse``."""

    success: bool
    message: str
    details: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.success)


class FolderItem(MixpeekModel):
    id: str
    name: str
    path: str
    mime_type: str | None = None


class FolderList(MixpeekModel):
    """``ListFoldersResponse``: iterate it for the folders."""

    results: list[FolderItem] = Field(default_factory=list)
    parent_path: str = "/"

    # iterating a listing gives its folders, not pydantic's (field, value) pairs
    def __iter__(self) -> Iterator[FolderItem]:  # type: ignore[override]
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


class DriveFile(MixpeekModel):
    id: str | None = None
    name: str | None = None
    path: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None
    md5_checksum: str | None = None
    modified_time: str | None = None


class DriveFileList(MixpeekModel):
    """Answer of ``GET .../files`` (a free-form object in the contract)."""

    files: list[DriveFile] = Field(default_factory=list)
    path: str | None = None
    has_more: bool | None = None

    # iterating a listing gives its files, not pydantic's (field, value) pairs
    def __iter__(self) -> Iterator[DriveFile]:  # type: ignore[override]
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)
