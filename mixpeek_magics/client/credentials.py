"""Storage-connection request builders and credential validators (pure Python).

Every builder validates its input first, collects *all* problems as
``{field_name: message}`` and raises :class:`CredentialError` (a ``ValueError``)
if there is any. Otherwise it returns exactly the JSON body of the contract's
``StorageConnectionCreateRequest``::

    {"name": ..., "provider_type": "s3" | "tigris" | "google_drive",
     "provider_config": {"provider_type": ..., "credentials": {"type": ..., ...}, ...},
     "description": ..., "metadata": ..., "test_before_save": True}

``description`` and ``metadata`` are only present when given.

Messages never contain secret values (secret keys, session tokens, private keys,
client secrets, refresh tokens); use :func:`redact` before logging or showing a body.

:func:`sync_request` builds the contract's ``SyncCreateRequest`` body the same way.

Layer 1: stdlib only (``cryptography`` is imported lazily to parse private keys).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

__all__ = [
    "CredentialError",
    "SECRET_FIELDS",
    "TIGRIS_DEFAULT_ENDPOINT",
    "SYNC_MODES",
    "s3_access_key",
    "s3_iam_role",
    "s3_compatible",
    "tigris",
    "gdrive_service_account",
    "gdrive_oauth",
    "sync_request",
    "validate_role_arn",
    "validate_region",
    "validate_url",
    "validate_access_key_id",
    "validate_bucket_name",
    "parse_service_account_json",
    "parse_patterns",
    "parse_size",
    "redact",
    "scrub",
]

#: Credential fields the contract marks as sensitive (encrypted at rest, never returned).
SECRET_FIELDS = frozenset({"secret_access_key", "session_token", "private_key", "client_secret", "refresh_token"})
REDACTED = "***"
TIGRIS_DEFAULT_ENDPOINT = "https://fly.storage.tigris.dev"
SYNC_MODES = ("initial_only", "continuous")


class CredentialError(ValueError):
    """Invalid connection input. ``.fields`` maps a field name to a human message.

    Neither ``str()`` nor ``repr()`` ever contains a secret value: the messages are
    written by this module and never quote what the user typed into a secret field.
    """

    def __init__(self, fields: Mapping[str, str], *, warnings: Mapping[str, str] | None = None):
        self.fields: dict[str, str] = dict(fields)
        self.warnings: dict[str, str] = dict(warnings or {})
        super().__init__(self._message())

    def _message(self) -> str:
        if not self.fields:
            return "invalid storage connection input"
        parts = [f"{k}: {v}" for k, v in self.fields.items()]
        noun = "problem" if len(parts) == 1 else "problems"
        return f"{len(parts)} {noun} with the storage connection input: " + "; ".join(parts)

    def __repr__(self) -> str:
        return f"CredentialError({self.fields!r})"


class _Problems:
    """Collects field problems; raises once at the end."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        if field in self.fields:
            self.fields[field] += "; " + message
        else:
            self.fields[field] = message

    def merge(self, err: CredentialError, prefix: str = "") -> None:
        for k, v in err.fields.items():
            self.add(prefix + k, v)

    def check(self) -> None:
        if self.fields:
            raise CredentialError(self.fields)


# ---------------------------------------------------------------------------
# validators (each returns the cleaned value or raises CredentialError)
# ---------------------------------------------------------------------------

_ARN_GENERAL = re.compile(r"^arn:(?P<partition>aws[-a-z]*):iam::(?P<account>[^:]*):role/(?P<rest>.*)$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]{1,64}$")
_AWS_REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$")
_GENERIC_REGION = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_AWS_KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def validate_role_arn(role_arn: Any, field: str = "role_arn") -> str:
    """Check an IAM role ARN against what the Mixpeek API accepts.

    The contract's pattern is ``arn:aws:iam::<12 digits>:role/<name>`` (commercial
    partition, no role path); anything else gets a message saying what is wrong.
    """
    if _blank(role_arn):
        raise CredentialError({field: "required: the ARN of the IAM role Mixpeek should assume"})
    if not isinstance(role_arn, str):
        raise CredentialError({field: "must be a string like arn:aws:iam::123456789012:role/name"})
    arn = role_arn.strip()
    m = _ARN_GENERAL.match(arn)
    if not m:
        raise CredentialError(
            {field: f"{arn!r} is not an IAM role ARN; expected arn:aws:iam::<12-digit account id>:role/<role name>"}
        )
    problems = []
    if m["partition"] != "aws":
        problems.append(f"partition {m['partition']!r} is not supported by Mixpeek (only 'aws')")
    if not re.fullmatch(r"\d{12}", m["account"]):
        problems.append("the account id must be exactly 12 digits")
    rest = m["rest"]
    if "/" in rest:
        problems.append("role paths are not accepted; use arn:aws:iam::<account>:role/<role name>")
    elif not _ROLE_NAME.match(rest):
        problems.append("the role name must be 1-64 characters of letters, digits and +=,.@_-")
    if problems:
        raise CredentialError({field: f"{arn!r}: " + "; ".join(problems)})
    return arn


def validate_region(
    region: Any,
    *,
    allow_auto: bool = False,
    aws: bool = True,
    field: str = "region",
) -> str:
    """AWS region code (``us-east-1``, ``us-gov-west-1`` ...); ``auto`` when allowed
    (Tigris); any simple lowercase token when ``aws=False`` (S3-compatible stores use
    their own values, e.g. ``nyc3``)."""
    if _blank(region):
        raise CredentialError({field: "required, e.g. us-east-1"})
    if not isinstance(region, str):
        raise CredentialError({field: "must be a string such as us-east-1"})
    r = region.strip()
    if allow_auto and r == "auto":
        return r
    if aws:
        if not _AWS_REGION.match(r):
            hint = " or 'auto'" if allow_auto else ""
            raise CredentialError(
                {field: f"{r!r} is not an AWS region code; expected e.g. us-east-1, eu-central-1{hint}"}
            )
    elif not _GENERIC_REGION.match(r):
        raise CredentialError({field: f"{r!r} is not a region name; use lowercase letters, digits and dashes"})
    return r


def validate_url(url: Any, field: str = "endpoint_url") -> str:
    """An http(s) endpoint with a host; returned without a trailing slash.

    Embedded credentials (``https://user:pass@host``) are refused and never echoed.
    """
    if _blank(url):
        raise CredentialError({field: "required, e.g. https://minio.example.com"})
    if not isinstance(url, str):
        raise CredentialError({field: "must be a string URL"})
    u = url.strip()
    try:
        parts = urlsplit(u)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise CredentialError({field: "is not a valid URL (bad host or port)"}) from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise CredentialError({field: "must not contain a user name or password; put credentials in their own fields"})
    if parts.scheme not in ("http", "https"):
        raise CredentialError({field: f"{u!r} must start with http:// or https://"})
    if not parts.hostname:
        raise CredentialError({field: f"{u!r} has no host"})
    if parts.query or parts.fragment:
        raise CredentialError({field: "must not have a query string or fragment (it would be sent with every request)"})
    del port
    return u.rstrip("/")


def validate_access_key_id(key_id: Any, *, aws: bool = True, min_length: int = 16, field: str = "access_key_id") -> str:
    """AWS key ids are ``AKIA``/``ASIA`` + 16 upper-case letters or digits; S3-compatible
    stores (MinIO, moto ...) use arbitrary ids, so only the contract's length applies."""
    if _blank(key_id):
        raise CredentialError({field: "required"})
    if not isinstance(key_id, str):
        raise CredentialError({field: "must be a string"})
    k = key_id.strip()
    if aws:
        if not _AWS_KEY_ID.match(k):
            raise CredentialError(
                {field: "an AWS access key id is 20 characters: AKIA or ASIA followed by 16 upper-case letters/digits"}
            )
    elif len(k) < min_length:
        raise CredentialError({field: f"must be at least {min_length} characters (got {len(k)})"})
    elif len(k) > 128:
        raise CredentialError({field: "must be at most 128 characters"})
    elif any(c.isspace() for c in k):
        raise CredentialError({field: "must not contain whitespace"})
    return k


def _validate_secret(value: Any, field: str, *, min_length: int = 1, what: str = "value") -> str:
    # never quote the value itself
    if _blank(value):
        raise CredentialError({field: "required"})
    if not isinstance(value, str):
        raise CredentialError({field: f"must be a string {what}"})
    v = value.strip()
    if len(v) < min_length:
        raise CredentialError({field: f"must be at least {min_length} characters (got {len(v)})"})
    if any(c.isspace() for c in v):
        raise CredentialError({field: "must not contain whitespace (check for a pasting accident)"})
    from mixpeek_magics.client.errors import register_secret

    register_secret(v)  # whatever a server echoes of it, no error message carries it
    return v


def validate_bucket_name(bucket: Any, field: str = "bucket") -> str:
    """S3 bucket naming rules (3-63 lowercase letters, digits, dots, dashes)."""
    if _blank(bucket):
        raise CredentialError({field: "required"})
    if not isinstance(bucket, str):
        raise CredentialError({field: "must be a string"})
    b = bucket.strip()
    if not _BUCKET.match(b) or ".." in b or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", b):
        raise CredentialError(
            {field: f"{b!r} is not a valid bucket name: 3-63 lowercase letters, digits, dots and dashes"}
        )
    return b


def _validate_email(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise CredentialError({field: f"{value!r} is not an email address"})
    return value.strip()


# ---------------------------------------------------------------------------
# Google service-account key files
# ---------------------------------------------------------------------------

_SA_REQUIRED = ("type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "token_uri")
# key-file fields forwarded to the API (the contract's five plus the ones google-auth uses)
_SA_FORWARDED = (
    "project_id",
    "private_key_id",
    "private_key",
    "client_email",
    "client_id",
    "auth_uri",
    "token_uri",
    "auth_provider_x509_cert_url",
    "client_x509_cert_url",
    "universe_domain",
)


def _check_private_key(pem: str) -> str | None:
    """None when ``pem`` is a usable unencrypted RSA private key, else a message
    (which never includes key material)."""
    if "-----BEGIN" not in pem or "PRIVATE KEY-----" not in pem:
        return "is not a PEM private key (expected -----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----)"
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError:  # pragma: no cover - cryptography is a dependency of the dev/local extras
        return None
    try:
        key = load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:
        return "is encrypted with a password; Google key files contain an unencrypted key"
    except Exception:  # noqa: BLE001 - the library message may echo key material; don't forward it
        return "could not be parsed as a PEM private key (is the file truncated or were the \\n escapes lost?)"
    if not isinstance(key, rsa.RSAPrivateKey):
        return "must be an RSA private key"
    return None


def parse_service_account_json(data: str | bytes | bytearray | Mapping[str, Any]) -> dict[str, Any]:
    """Parse and check a Google service-account JSON key file.

    Accepts the file's text, bytes or an already-parsed mapping. Returns the contract's
    ``GoogleDriveServiceAccountCredentials`` object (``type: service_account`` plus the
    key file's fields). Problems are reported under ``service_account.<key>`` (or
    ``service_account`` for the file as a whole); key material is never quoted.
    """
    field = "service_account"
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CredentialError(
                {field: "the key file is not UTF-8 text (did you pick the .p12 file? use the JSON key)"}
            ) from None
    if isinstance(data, str):
        if not data.strip():
            raise CredentialError({field: "required: upload or paste the service account's JSON key file"})
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            # exc.msg/lineno/colno only: never the document itself
            raise CredentialError(
                {field: f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"}
            ) from None
    if not isinstance(data, Mapping):
        raise CredentialError({field: "must be a JSON object (the service account's key file)"})
    if "installed" in data or "web" in data:
        raise CredentialError(
            {
                field: "this is an OAuth client file, not a service-account key; "
                "choose OAuth or download a service-account key"
            }
        )
    p = _Problems()
    missing = [k for k in _SA_REQUIRED if _blank(data.get(k))]
    if missing:
        p.add(field, "missing key(s): " + ", ".join(missing))
    t = data.get("type")
    if not _blank(t) and t != "service_account":
        p.add(f"{field}.type", f"must be 'service_account', got {t!r}")
    for k in _SA_FORWARDED:
        v = data.get(k)
        if v is not None and not isinstance(v, str):
            p.add(f"{field}.{k}", "must be a string")
    email = data.get("client_email")
    if isinstance(email, str) and email and not _EMAIL.match(email):
        p.add(f"{field}.client_email", f"{email!r} is not an email address")
    cid = data.get("client_id")
    if isinstance(cid, str) and cid and not cid.isdigit():
        p.add(f"{field}.client_id", "must be the numeric service-account id from the key file")
    for k in ("token_uri", "auth_uri"):
        v = data.get(k)
        if isinstance(v, str) and v:
            try:
                validate_url(v, field=f"{field}.{k}")
            except CredentialError as e:
                p.merge(e)
    pk = data.get("private_key")
    if isinstance(pk, str) and "\\n" in pk and "\n" not in pk.strip():
        # pasted with its JSON escapes still in place: restore the line breaks
        pk = pk.replace("\\n", "\n")
        data = {**data, "private_key": pk}
    if isinstance(pk, str) and pk.strip():
        msg = _check_private_key(pk)
        if msg:
            p.add(f"{field}.private_key", msg)
    p.check()
    creds: dict[str, Any] = {"type": "service_account"}
    for k in _SA_FORWARDED:
        if isinstance(data.get(k), str) and data[k]:
            creds[k] = data[k] if k == "private_key" else data[k].strip()
    from mixpeek_magics.client.errors import register_secret

    register_secret(creds.get("private_key"))
    return creds


# ---------------------------------------------------------------------------
# common parts
# ---------------------------------------------------------------------------


def _common(
    p: _Problems,
    name: Any,
    description: Any,
    metadata: Any,
    test_before_save: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if _blank(name):
        p.add("name", "required: 1-100 characters, unique in the organization")
    elif not isinstance(name, str):
        p.add("name", "must be a string")
    elif len(name.strip()) > 100:
        p.add("name", f"must be at most 100 characters (got {len(name.strip())})")
    else:
        body["name"] = name.strip()
    if description is not None and not (isinstance(description, str) and not description.strip()):
        if not isinstance(description, str):
            p.add("description", "must be a string")
        elif len(description) > 500:
            p.add("description", f"must be at most 500 characters (got {len(description)})")
        else:
            body["description"] = description.strip()
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            p.add("metadata", "must be a JSON object (a dict of key/value pairs)")
        else:
            try:
                body["metadata"] = json.loads(json.dumps(dict(metadata)))
            except (TypeError, ValueError):
                p.add("metadata", "values must be JSON-serialisable")
    if not isinstance(test_before_save, bool):
        p.add("test_before_save", "must be true or false")
    body["test_before_save"] = bool(test_before_save)
    return body


def _assemble(common: dict[str, Any], provider_type: str, config: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": common["name"], "provider_type": provider_type, "provider_config": config}
    for k in ("description", "metadata"):
        if k in common:
            body[k] = common[k]
    body["test_before_save"] = common["test_before_save"]
    return body


def _try(p: _Problems, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    try:
        return fn(*args, **kwargs)
    except CredentialError as e:
        p.merge(e)
        return None


def _access_key_creds(
    p: _Problems,
    access_key_id: Any,
    secret_access_key: Any,
    session_token: Any,
    *,
    aws: bool,
    tigris_: bool = False,
) -> dict[str, Any]:
    creds: dict[str, Any] = {"type": "access_key"}
    if tigris_:
        kid = _try(p, validate_access_key_id, access_key_id, aws=False, min_length=1)
        secret = _try(p, _validate_secret, secret_access_key, "secret_access_key")
    else:
        kid = _try(p, validate_access_key_id, access_key_id, aws=aws)
        secret = _try(p, _validate_secret, secret_access_key, "secret_access_key", min_length=40)
    creds["access_key_id"] = kid
    creds["secret_access_key"] = secret
    if not _blank(session_token):
        creds["session_token"] = _try(p, _validate_secret, session_token, "session_token", min_length=16)
    elif aws and isinstance(kid, str) and kid.startswith("ASIA"):
        p.add("session_token", "required for temporary (ASIA...) credentials")
    return creds


def _s3_config(
    p: _Problems,
    creds: dict[str, Any],
    region: Any,
    bucket: Any,
    *,
    aws: bool,
    endpoint_url: Any = None,
    use_ssl: Any = None,
    verify_ssl: Any = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {"provider_type": "s3", "credentials": creds}
    config["region"] = _try(p, validate_region, region, aws=aws)
    if endpoint_url is not None or not aws:
        url = _try(p, validate_url, endpoint_url)
        config["endpoint_url"] = url
        scheme_ssl = url.startswith("https://") if isinstance(url, str) else None
        if use_ssl is None:
            use_ssl = scheme_ssl if scheme_ssl is not None else True
        elif not isinstance(use_ssl, bool):
            p.add("use_ssl", "must be true or false")
        elif scheme_ssl is not None and use_ssl != scheme_ssl:
            if use_ssl:
                p.add("use_ssl", "is on but the endpoint is http://; use an https:// endpoint or turn use_ssl off")
            else:
                p.add("use_ssl", "is off but the endpoint is https://; turn use_ssl on or use an http:// endpoint")
    elif use_ssl is None:
        use_ssl = True
    if verify_ssl is None:
        verify_ssl = bool(use_ssl)
    elif not isinstance(verify_ssl, bool):
        p.add("verify_ssl", "must be true or false")
    config["use_ssl"] = bool(use_ssl)
    config["verify_ssl"] = bool(verify_ssl)
    if not _blank(bucket):
        config["bucket"] = _try(p, validate_bucket_name, bucket)
    return config


# ---------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------


def s3_access_key(
    name: str,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    *,
    bucket: str | None = None,
    session_token: str | None = None,
    use_ssl: bool | None = None,
    verify_ssl: bool | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    test_before_save: bool = True,
) -> dict[str, Any]:
    """Amazon S3 with an access key (``provider_type: s3``, credentials ``access_key``).

    ``bucket`` is optional: the contract's ``S3Config`` has no bucket field (a sync names
    its bucket in ``source_path``), but the create-request example carries one in
    ``provider_config``, so it is sent there when given.
    """
    p = _Problems()
    common = _common(p, name, description, metadata, test_before_save)
    creds = _access_key_creds(p, access_key_id, secret_access_key, session_token, aws=True)
    config = _s3_config(p, creds, region, bucket, aws=True, use_ssl=use_ssl, verify_ssl=verify_ssl)
    p.check()
    return _assemble(common, "s3", config)


def s3_iam_role(
    name: str,
    role_arn: str,
    external_id: str,
    region: str,
    *,
    bucket: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    test_before_save: bool = True,
) -> dict[str, Any]:
    """Amazon S3 through IAM role assumption (credentials ``iam_role``)."""
    p = _Problems()
    common = _common(p, name, description, metadata, test_before_save)
    creds: dict[str, Any] = {"type": "iam_role", "role_arn": _try(p, validate_role_arn, role_arn)}
    if _blank(external_id):
        p.add("external_id", "required: 8-128 characters, must match the sts:ExternalId in the role's trust policy")
    elif not isinstance(external_id, str):
        p.add("external_id", "must be a string")
    elif not 8 <= len(external_id.strip()) <= 128:
        p.add("external_id", f"must be 8-128 characters (got {len(external_id.strip())})")
    else:
        creds["external_id"] = external_id.strip()
    config = _s3_config(p, creds, region, bucket, aws=True)
    p.check()
    return _assemble(common, "s3", config)


def s3_compatible(
    name: str,
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    region: str = "us-east-1",
    *,
    bucket: str | None = None,
    session_token: str | None = None,
    use_ssl: bool | None = None,
    verify_ssl: bool | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    test_before_save: bool = True,
) -> dict[str, Any]:
    """An S3-compatible store (MinIO, Wasabi, DigitalOcean Spaces, moto ...):
    ``provider_type: s3`` with ``endpoint_url``. ``use_ssl`` defaults to the URL's
    scheme and must agree with it; ``verify_ssl`` defaults to ``use_ssl``."""
    p = _Problems()
    common = _common(p, name, description, metadata, test_before_save)
    creds = _access_key_creds(p, access_key_id, secret_access_key, session_token, aws=False)
    config = _s3_config(
        p, creds, region, bucket, aws=False, endpoint_url=endpoint_url, use_ssl=use_ssl, verify_ssl=verify_ssl
    )
    p.check()
    return _assemble(common, "s3", config)


def tigris(
    name: str,
    access_key_id: str,
    secret_access_key: str,
    region: str = "auto",
    *,
    endpoint_url: str = TIGRIS_DEFAULT_ENDPOINT,
    bucket: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    test_before_save: bool = True,
) -> dict[str, Any]:
    """Tigris (``provider_type: tigris``): ``TigrisAccessKeyCredentials`` (type
    ``access_key``, no session token), region ``auto`` by default."""
    p = _Problems()
    common = _common(p, name, description, metadata, test_before_save)
    creds = _access_key_creds(p, access_key_id, secret_access_key, None, aws=False, tigris_=True)
    config: dict[str, Any] = {"provider_type": "tigris", "credentials": creds}
    config["region"] = _try(p, validate_region, region, allow_auto=True)
    config["endpoint_url"] = _try(
        p, validate_url, endpoint_url if not _blank(endpoint_url) else TIGRIS_DEFAULT_ENDPOINT
    )
    if not _blank(bucket):
        config["bucket"] = _try(p, validate_bucket_name, bucket)
    p.check()
    return _assemble(common, "tigris", config)


def _drive_config(p: _Problems, creds: dict[str, Any], shared_drive_id: Any, impersonate_user: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"provider_type": "google_drive", "credentials": creds}
    if not _blank(shared_drive_id):
        if not isinstance(shared_drive_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", shared_drive_id.strip()):
            p.add("shared_drive_id", "must be the drive id from the shared drive's URL (letters, digits, - and _)")
        else:
            config["shared_drive_id"] = shared_drive_id.strip()
    if not _blank(impersonate_user):
        v = _try(p, _validate_email, impersonate_user, "impersonate_user")
        if v:
            config["impersonate_user"] = v
    return config


def gdrive_service_account(
    name: str,
    service_account_json: str | bytes | Mapping[str, Any],
    *,
    shared_drive_id: str | None = None,
    impersonate_user: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    test_before_save: bool = True,
) -> dict[str, Any]:
    """Google Drive with a service-account JSON key (text, bytes or dict)."""
    p = _Problems()
    common = _common(p, name, description, metadata, test_before_save)
    creds = _try(p, parse_service_account_json, service_account_json) or {"type": "service_account"}
    config = _drive_config(p, creds, shared_drive_id, impersonate_user)
    p.check()
    return _assemble(common, "google_drive", config)


def gdrive_oauth(
    name: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    *,
    shared_drive_id: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    test_before_save: bool = True,
) -> dict[str, Any]:
    """Google Drive with an OAuth client and a user's refresh token."""
    p = _Problems()
    common = _common(p, name, description, metadata, test_before_save)
    creds: dict[str, Any] = {"type": "oauth"}
    if _blank(client_id):
        p.add("client_id", "required: the OAuth client id ({id}.apps.googleusercontent.com)")
    elif not isinstance(client_id, str) or any(c.isspace() for c in client_id.strip()):
        p.add("client_id", "must be a single token without spaces")
    else:
        creds["client_id"] = client_id.strip()
    creds["client_secret"] = _try(p, _validate_secret, client_secret, "client_secret")
    creds["refresh_token"] = _try(p, _validate_secret, refresh_token, "refresh_token")
    config = _drive_config(p, creds, shared_drive_id, None)
    p.check()
    return _assemble(common, "google_drive", config)


# ---------------------------------------------------------------------------
# sync requests
# ---------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "ki": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "mi": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "gi": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
    "ti": 1024**4,
}


def parse_size(value: Any, field: str = "size") -> int | None:
    """``None``/``""`` -> None; ints as bytes; strings like ``"10MB"``, ``"1.5 GiB"``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise CredentialError({field: "must be a size in bytes"})
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str):
        m = _SIZE.match(value)
        unit = (m.group(2) or "").lower() if m else None
        if not m or unit not in _UNITS:
            raise CredentialError({field: f"{value!r} is not a size; use bytes or e.g. 10MB, 1.5GiB"})
        n = int(float(m.group(1)) * _UNITS[unit])
    else:
        raise CredentialError({field: "must be a size in bytes"})
    if n < 0:
        raise CredentialError({field: "must not be negative"})
    return n


def parse_patterns(value: Any, field: str = "patterns") -> list[str] | None:
    """Comma-separated globs (or an iterable of them) -> list, or None when empty."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [s.strip() for s in value.split(",")]
    elif isinstance(value, Iterable):
        items = []
        for s in value:
            if not isinstance(s, str):
                raise CredentialError({field: "patterns must be strings"})
            items.append(s.strip())
    else:
        raise CredentialError({field: "must be comma-separated glob patterns"})
    items = [s for s in items if s]
    return items or None


def sync_request(
    connection_id: str,
    source_path: str,
    *,
    sync_mode: str = "continuous",
    polling_interval_seconds: int | None = None,
    include_patterns: str | Iterable[str] | None = None,
    exclude_patterns: str | Iterable[str] | None = None,
    min_size_bytes: int | str | None = None,
    max_size_bytes: int | str | None = None,
    batch_size: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract's ``SyncCreateRequest`` body (``POST /v1/buckets/{bucket_id}/syncs``).

    ``polling_interval_seconds`` (30-900) only applies to ``continuous`` syncs.
    Filters go to ``file_filters`` (``include_patterns``, ``exclude_patterns``,
    ``min_size_bytes``, ``max_size_bytes``).
    """
    p = _Problems()
    body: dict[str, Any] = {}
    if _blank(connection_id) or not isinstance(connection_id, str):
        p.add("connection_id", "required: save the connection first")
    else:
        body["connection_id"] = connection_id.strip()
    if _blank(source_path) or not isinstance(source_path, str):
        p.add("source_path", "required: bucket/prefix for S3 and Tigris, a folder for Google Drive")
    else:
        body["source_path"] = source_path.strip()
    if sync_mode not in SYNC_MODES:
        p.add("sync_mode", f"must be one of {', '.join(SYNC_MODES)} (got {sync_mode!r})")
    else:
        body["sync_mode"] = sync_mode
    if polling_interval_seconds is not None and sync_mode == "continuous":
        if isinstance(polling_interval_seconds, bool) or not isinstance(polling_interval_seconds, int):
            p.add("polling_interval_seconds", "must be a whole number of seconds")
        elif not 30 <= polling_interval_seconds <= 900:
            p.add("polling_interval_seconds", f"must be between 30 and 900 seconds (got {polling_interval_seconds})")
        else:
            body["polling_interval_seconds"] = polling_interval_seconds
    filters: dict[str, Any] = {}
    inc = _try(p, parse_patterns, include_patterns, "include_patterns")
    exc = _try(p, parse_patterns, exclude_patterns, "exclude_patterns")
    lo = _try(p, parse_size, min_size_bytes, "min_size_bytes")
    hi = _try(p, parse_size, max_size_bytes, "max_size_bytes")
    if lo is not None and hi is not None and lo > hi:
        p.add("max_size_bytes", f"must be at least the minimum size ({lo} bytes)")
    for k, v in (("include_patterns", inc), ("exclude_patterns", exc), ("min_size_bytes", lo), ("max_size_bytes", hi)):
        if v is not None:
            filters[k] = v
    if filters:
        body["file_filters"] = filters
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 100:
            p.add("batch_size", "must be a whole number between 1 and 100")
        else:
            body["batch_size"] = batch_size
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            p.add("metadata", "must be a JSON object")
        else:
            body["metadata"] = dict(metadata)
    p.check()
    return body


# ---------------------------------------------------------------------------
# redaction
# ---------------------------------------------------------------------------


def redact(body: Any) -> Any:
    """A deep copy of ``body`` with every secret field's value replaced by ``"***"``."""
    if isinstance(body, Mapping):
        return {k: (REDACTED if k in SECRET_FIELDS and v is not None else redact(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [redact(v) for v in body]
    if isinstance(body, tuple):
        return tuple(redact(v) for v in body)
    return copy.copy(body)


def _secret_values(body: Any) -> list[str]:
    out: list[str] = []
    if isinstance(body, Mapping):
        for k, v in body.items():
            if k in SECRET_FIELDS and isinstance(v, str) and v:
                out.append(v)
            else:
                out.extend(_secret_values(v))
    elif isinstance(body, (list, tuple)):
        for v in body:
            out.extend(_secret_values(v))
    return out


def scrub(text: str, body: Any = None, extra: Iterable[str] = ()) -> str:
    """Replace any secret of ``body`` (and the ``extra`` strings) occurring in ``text``
    by ``"***"``: a last line of defence before showing a provider's error message.
    PEM blocks are always removed."""
    secrets = [s for s in (*_secret_values(body), *extra) if isinstance(s, str) and len(s) >= 4]
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, REDACTED)
        # a PEM key may be echoed with its line breaks escaped
        esc = s.replace("\n", "\\n")
        if esc != s:
            text = text.replace(esc, REDACTED)
    return re.sub(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
        REDACTED,
        text,
        flags=re.DOTALL,
    )
