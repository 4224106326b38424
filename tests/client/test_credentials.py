"""Storage-connection builders: bodies match the contract, bad input is explained, secrets never leak."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mixpeek_magics.client import credentials as cr
from mixpeek_magics.client.credentials import (
    CredentialError,
    gdrive_oauth,
    gdrive_service_account,
    parse_service_account_json,
    redact,
    s3_access_key,
    s3_compatible,
    s3_iam_role,
    sync_request,
    tigris,
    validate_region,
    validate_role_arn,
    validate_url,
)

# The vendored v0.82 contract (scripts/vendor_contract.py): operations and schemas, as facts.
SPEC_PATH = Path(__file__).resolve().parents[2] / "mixpeek_magics/local/contract/mixpeek-v0.82.json"
SPEC = json.loads(SPEC_PATH.read_text())
SCHEMAS = SPEC["schemas"]

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # 40 chars
SESSION = "FwoGZXIvYXdzEXAMPLESESSIONTOKENabcdef0123456789"
CLIENT_SECRET = "GOCSPX-oauthclientsecretvalue"
REFRESH = "1//0refresh-token-value-xyz"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    return jsonschema.Draft202012Validator(schema)


def assert_valid(instance: dict, name: str) -> None:
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def assert_known_fields(obj: dict, schema_name: str, extra: set[str] = frozenset()) -> None:
    props = set(SCHEMAS[schema_name]["properties"])
    unknown = set(obj) - props - set(extra)
    assert not unknown, f"{schema_name} has no field(s) {unknown}"
    missing = set(SCHEMAS[schema_name].get("required", [])) - set(obj)
    assert not missing, f"{schema_name} requires {missing}"


def check_connection_body(body: dict, config_schema: str, creds_schema: str, *, config_extra=(), creds_extra=()):
    assert_valid(body, "StorageConnectionCreateRequest")
    assert_known_fields(body, "StorageConnectionCreateRequest")
    assert_valid(body["provider_config"], config_schema)
    assert_known_fields(body["provider_config"], config_schema, set(config_extra))
    assert_valid(body["provider_config"]["credentials"], creds_schema)
    assert_known_fields(body["provider_config"]["credentials"], creds_schema, set(creds_extra))
    # the discriminator value names the credentials schema (v0.82: the default of its `type`)
    kind = SCHEMAS[creds_schema]["properties"]["type"]
    assert body["provider_config"]["credentials"]["type"] == kind.get("const", kind.get("default"))
    assert body["provider_config"]["provider_type"] == body["provider_type"]
    assert body["provider_type"] in SCHEMAS["StorageProvider"]["enum"]


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def sa_info(rsa_pem) -> dict:
    return {
        "type": "service_account",
        "project_id": "my-project-123",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": rsa_pem,
        "client_email": "sync@my-project-123.iam.gserviceaccount.com",
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/sync",
        "universe_domain": "googleapis.com",
    }


# --------------------------------------------------------------------- contract


def test_s3_access_key_body_matches_contract():
    body = s3_access_key("Prod S3", AWS_KEY, AWS_SECRET, "us-east-1", description="videos", metadata={"team": "ml"})
    check_connection_body(body, "S3Config", "S3AccessKeyCredentials")
    assert body == {
        "name": "Prod S3",
        "provider_type": "s3",
        "provider_config": {
            "provider_type": "s3",
            "credentials": {"type": "access_key", "access_key_id": AWS_KEY, "secret_access_key": AWS_SECRET},
            "region": "us-east-1",
            "use_ssl": True,
            "verify_ssl": True,
        },
        "description": "videos",
        "metadata": {"team": "ml"},
        "test_before_save": True,
    }


def test_s3_access_key_with_session_token_and_bucket():
    body = s3_access_key(
        "tmp", "ASIAIOSFODNN7EXAMPLE", AWS_SECRET, "eu-central-1", session_token=SESSION, bucket="media-bucket"
    )
    # S3Config defines no bucket; the create request's own example carries it in provider_config
    check_connection_body(body, "S3Config", "S3AccessKeyCredentials", config_extra={"bucket"})
    assert body["provider_config"]["credentials"]["session_token"] == SESSION
    assert body["provider_config"]["bucket"] == "media-bucket"
    assert "description" not in body and "metadata" not in body


def test_s3_iam_role_body_matches_contract():
    arn = "arn:aws:iam::123456789012:role/mixpeek-storage-sync-role"
    body = s3_iam_role("Role", arn, "mixpeek-org_abc123", "us-gov-west-1", test_before_save=False)
    check_connection_body(body, "S3Config", "S3RoleCredentials")
    assert body["provider_config"]["credentials"] == {
        "type": "iam_role",
        "role_arn": arn,
        "external_id": "mixpeek-org_abc123",
    }
    assert body["test_before_save"] is False


def test_s3_compatible_body_matches_contract():
    body = s3_compatible("MinIO", "http://127.0.0.1:9000/", "minio-access-key-0001", "m" * 40, region="us-east-1")
    check_connection_body(body, "S3Config", "S3AccessKeyCredentials")
    cfg = body["provider_config"]
    assert cfg["endpoint_url"] == "http://127.0.0.1:9000"  # no trailing slash
    assert cfg["use_ssl"] is False and cfg["verify_ssl"] is False  # derived from the scheme
    https = s3_compatible("Spaces", "https://nyc3.digitaloceanspaces.com", "DO00EXAMPLEKEY123", "s" * 40, "nyc3")
    check_connection_body(https, "S3Config", "S3AccessKeyCredentials")
    assert https["provider_config"]["use_ssl"] is True
    assert https["provider_config"]["region"] == "nyc3"


def test_tigris_body_matches_contract():
    body = tigris("Tigris", "tid_abc", "tsec_xyz", bucket="cdn-assets")
    check_connection_body(body, "TigrisConfig", "TigrisAccessKeyCredentials", config_extra={"bucket"})
    cfg = body["provider_config"]
    assert body["provider_type"] == "tigris"
    assert cfg["region"] == "auto"
    assert cfg["endpoint_url"] == "https://fly.storage.tigris.dev"
    assert cfg["credentials"] == {"type": "access_key", "access_key_id": "tid_abc", "secret_access_key": "tsec_xyz"}
    assert tigris("T", "a", "b", region="eu-west-1")["provider_config"]["region"] == "eu-west-1"


def test_gdrive_service_account_body_matches_contract(sa_info):
    for form in (sa_info, json.dumps(sa_info), json.dumps(sa_info).encode()):
        body = gdrive_service_account(
            "Drive", form, shared_drive_id="0AH-Xabc123", impersonate_user="alice@example.com"
        )
        # the key file's google-auth fields (token_uri ...) ride along; the contract allows extra fields
        check_connection_body(
            body,
            "GoogleDriveConfig",
            "GoogleDriveServiceAccountCredentials",
            creds_extra={
                "auth_uri",
                "token_uri",
                "auth_provider_x509_cert_url",
                "client_x509_cert_url",
                "universe_domain",
            },
        )
        creds = body["provider_config"]["credentials"]
        assert creds["private_key"] == sa_info["private_key"]
        assert creds["client_email"] == sa_info["client_email"]
        assert body["provider_config"]["shared_drive_id"] == "0AH-Xabc123"
        assert body["provider_config"]["impersonate_user"] == "alice@example.com"


def test_gdrive_oauth_body_matches_contract():
    body = gdrive_oauth("Mine", "123-abc.apps.googleusercontent.com", CLIENT_SECRET, REFRESH)
    check_connection_body(body, "GoogleDriveConfig", "GoogleDriveOAuthCredentials")
    assert body["provider_config"]["credentials"] == {
        "type": "oauth",
        "client_id": "123-abc.apps.googleusercontent.com",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH,
    }


def test_sync_request_matches_contract():
    body = sync_request(
        "conn_1",
        "media-bucket/videos",
        sync_mode="continuous",
        polling_interval_seconds=60,
        include_patterns="*.mp4, *.mov,",
        exclude_patterns=["*/drafts/*"],
        min_size_bytes="1KiB",
        max_size_bytes=10_000_000,
    )
    assert_valid(body, "SyncCreateRequest")
    assert_known_fields(body, "SyncCreateRequest")
    assert_valid(body["file_filters"], "FileFilters")
    assert_known_fields(body["file_filters"], "FileFilters")
    assert body == {
        "connection_id": "conn_1",
        "source_path": "media-bucket/videos",
        "sync_mode": "continuous",
        "polling_interval_seconds": 60,
        "file_filters": {
            "include_patterns": ["*.mp4", "*.mov"],
            "exclude_patterns": ["*/drafts/*"],
            "min_size_bytes": 1024,
            "max_size_bytes": 10_000_000,
        },
    }
    once = sync_request("conn_1", "b", sync_mode="initial_only", polling_interval_seconds=60)
    assert once == {"connection_id": "conn_1", "source_path": "b", "sync_mode": "initial_only"}
    assert_valid(once, "SyncCreateRequest")
    assert set(cr.SYNC_MODES) == set(SCHEMAS["SyncMode"]["enum"])


def test_sync_request_problems():
    with pytest.raises(CredentialError) as ei:
        sync_request("", "", sync_mode="weekly", min_size_bytes="10MB", max_size_bytes="1MB", include_patterns=5)
    f = ei.value.fields
    assert set(f) >= {"connection_id", "source_path", "sync_mode", "max_size_bytes", "include_patterns"}
    with pytest.raises(CredentialError) as ei:
        sync_request("c", "p", polling_interval_seconds=10)
    assert "between 30 and 900" in ei.value.fields["polling_interval_seconds"]
    with pytest.raises(CredentialError) as ei:
        sync_request("c", "p", min_size_bytes="ten")
    assert "is not a size" in ei.value.fields["min_size_bytes"]


# ------------------------------------------------------------------- validators


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:role/mixpeek-storage-sync-role",
        "arn:aws:iam::000000000000:role/a+b=c,d.e@f_g-h",
    ],
)
def test_good_arns(arn):
    assert validate_role_arn(arn) == arn
    assert validate_role_arn(f"  {arn} ") == arn


@pytest.mark.parametrize(
    "arn, expected",
    [
        ("", "required"),
        ("not-an-arn", "is not an IAM role ARN"),
        ("arn:aws:iam::12345:role/x", "exactly 12 digits"),
        ("arn:aws:iam::12345678901a:role/x", "exactly 12 digits"),
        ("arn:aws:s3:::my-bucket", "is not an IAM role ARN"),
        ("arn:aws:iam::123456789012:user/bob", "is not an IAM role ARN"),
        ("arn:aws:iam::123456789012:role/path/to/name", "role paths are not accepted"),
        ("arn:aws-us-gov:iam::123456789012:role/x", "partition 'aws-us-gov'"),
        ("arn:aws:iam::123456789012:role/bad name", "role name"),
        ("arn:aws:iam::123456789012:role/", "role name"),
    ],
)
def test_bad_arns(arn, expected):
    with pytest.raises(CredentialError) as ei:
        validate_role_arn(arn)
    assert expected in ei.value.fields["role_arn"]


def test_arn_validator_agrees_with_contract_pattern():
    # v0.82 keeps the role ARN's pattern in the official SDK's model (a validator), not in the schema
    from mixpeek.models.s3_role_credentials import S3RoleCredentials

    def contract_accepts(arn: str) -> bool:
        try:
            S3RoleCredentials.model_validate({"role_arn": arn, "external_id": "mixpeek-external-id"})
        except ValueError:
            return False
        return True

    samples = [
        "arn:aws:iam::123456789012:role/ok",
        "arn:aws:iam::123456789012:role/a/b",
        "arn:aws-cn:iam::123456789012:role/ok",
        "arn:aws:iam::1234567890123:role/ok",
        "arn:aws:iam::123456789012:role/x y",
    ]
    assert contract_accepts(samples[0]) and not contract_accepts(samples[-1])
    for s in samples:
        try:
            validate_role_arn(s)
            ours = True
        except CredentialError:
            ours = False
        assert ours == contract_accepts(s), s


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "us-gov-west-1", "ap-southeast-2", "cn-north-1"])
def test_good_regions(region):
    assert validate_region(region) == region


@pytest.mark.parametrize("region", ["US-EAST-1", "us-east", "useast1", "mars-1", "us_east_1", "auto", ""])
def test_bad_regions(region):
    with pytest.raises(CredentialError) as ei:
        validate_region(region)
    assert "region" in ei.value.fields


def test_region_auto_only_when_allowed():
    assert validate_region("auto", allow_auto=True) == "auto"
    with pytest.raises(CredentialError) as ei:
        validate_region("nowhere", allow_auto=True)
    assert "'auto'" in ei.value.fields["region"]
    assert validate_region("nyc3", aws=False) == "nyc3"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("", "required"),
        ("ftp://host", "http:// or https://"),
        ("minio.local:9000", "http:// or https://"),
        ("http://", "no host"),
        ("http://host:99999", "not a valid URL"),
        ("https://host/?x=1", "query string"),
        ("https://user:pw@host", "must not contain a user name or password"),
    ],
)
def test_bad_urls(url, expected):
    with pytest.raises(CredentialError) as ei:
        validate_url(url)
    msg = ei.value.fields["endpoint_url"]
    assert expected in msg
    assert "pw" not in str(ei.value)


def test_url_normalised():
    assert validate_url(" https://minio.example.com/ ") == "https://minio.example.com"
    assert validate_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


def test_use_ssl_must_agree_with_scheme():
    with pytest.raises(CredentialError) as ei:
        s3_compatible("m", "http://127.0.0.1:9000", "minio-access-key-0001", "m" * 40, use_ssl=True)
    assert "http://" in ei.value.fields["use_ssl"]
    with pytest.raises(CredentialError) as ei:
        s3_compatible("m", "https://minio.example.com", "minio-access-key-0001", "m" * 40, use_ssl=False)
    assert "https://" in ei.value.fields["use_ssl"]
    ok = s3_compatible("m", "https://minio.example.com", "minio-access-key-0001", "m" * 40, verify_ssl=False)
    assert ok["provider_config"]["use_ssl"] is True and ok["provider_config"]["verify_ssl"] is False


def test_access_key_shape_only_enforced_for_aws():
    with pytest.raises(CredentialError) as ei:
        s3_access_key("n", "minioadmin-minioadmin", AWS_SECRET, "us-east-1")
    assert "AKIA or ASIA" in ei.value.fields["access_key_id"]
    with pytest.raises(CredentialError) as ei:
        s3_access_key("n", "AKIAshort", AWS_SECRET, "us-east-1")
    assert "AKIA or ASIA" in ei.value.fields["access_key_id"]
    # MinIO/moto ids are arbitrary, only the contract's minimum length (16) applies
    body = s3_compatible("n", "http://localhost:9000", "minioadmin-minioadmin", AWS_SECRET)
    assert body["provider_config"]["credentials"]["access_key_id"] == "minioadmin-minioadmin"
    with pytest.raises(CredentialError) as ei:
        s3_compatible("n", "http://localhost:9000", "short", AWS_SECRET)
    assert "at least 16" in ei.value.fields["access_key_id"]


def test_collects_all_problems_at_once():
    with pytest.raises(CredentialError) as ei:
        s3_access_key("", "", "", "Mars", metadata=["not", "a", "dict"], description="x" * 501)
    assert set(ei.value.fields) == {"name", "access_key_id", "secret_access_key", "region", "metadata", "description"}
    with pytest.raises(CredentialError) as ei:
        s3_iam_role("n", "arn:aws:iam::1:role/x", "short", "")
    assert set(ei.value.fields) == {"role_arn", "external_id", "region"}
    with pytest.raises(CredentialError) as ei:
        gdrive_oauth("", "", "", "")
    assert set(ei.value.fields) == {"name", "client_id", "client_secret", "refresh_token"}


def test_temporary_key_needs_session_token():
    with pytest.raises(CredentialError) as ei:
        s3_access_key("n", "ASIAIOSFODNN7EXAMPLE", AWS_SECRET, "us-east-1")
    assert "session_token" in ei.value.fields


def test_secret_too_short_message_has_no_secret():
    secret = "tooShortSecret9"
    with pytest.raises(CredentialError) as ei:
        s3_access_key("n", AWS_KEY, secret, "us-east-1")
    assert "at least 40" in ei.value.fields["secret_access_key"]
    assert secret not in str(ei.value) and secret not in repr(ei.value)


# ----------------------------------------------------------- service accounts


def test_parse_service_account_ok(sa_info):
    creds = parse_service_account_json(json.dumps(sa_info))
    assert creds["type"] == "service_account"
    assert set(SCHEMAS["GoogleDriveServiceAccountCredentials"]["required"]) <= set(creds)


def test_sa_not_json(sa_info):
    text = json.dumps(sa_info)[:-5]  # truncated file
    with pytest.raises(CredentialError) as ei:
        parse_service_account_json(text)
    assert "not valid JSON" in ei.value.fields["service_account"]
    assert "PRIVATE KEY" not in str(ei.value)
    assert ei.value.__cause__ is None and ei.value.__suppress_context__


def test_sa_missing_keys_and_wrong_type(sa_info):
    bad = {k: v for k, v in sa_info.items() if k not in ("client_email", "token_uri")}
    bad["type"] = "authorized_user"
    with pytest.raises(CredentialError) as ei:
        parse_service_account_json(bad)
    f = ei.value.fields
    assert "client_email" in f["service_account"] and "token_uri" in f["service_account"]
    assert "service_account" in f["service_account.type"]
    assert sa_info["private_key"] not in str(ei.value)


def test_sa_oauth_client_file_is_recognised():
    with pytest.raises(CredentialError) as ei:
        parse_service_account_json({"installed": {"client_id": "x", "client_secret": "y"}})
    assert "OAuth client file" in ei.value.fields["service_account"]


def test_sa_bad_private_key(sa_info):
    broken = dict(sa_info, private_key=sa_info["private_key"].replace("\n", "")[:400] + "\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CredentialError) as ei:
        parse_service_account_json(broken)
    msg = ei.value.fields["service_account.private_key"]
    assert "could not be parsed" in msg
    assert broken["private_key"][40:80] not in str(ei.value)

    not_pem = dict(sa_info, private_key="hello")
    with pytest.raises(CredentialError) as ei:
        parse_service_account_json(not_pem)
    assert "not a PEM private key" in ei.value.fields["service_account.private_key"]


def test_sa_private_key_must_be_rsa_and_unencrypted(sa_info):
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(CredentialError) as ei:
        parse_service_account_json(dict(sa_info, private_key=ec_pem))
    assert "RSA" in ei.value.fields["service_account.private_key"]
    enc = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        .decode()
    )
    with pytest.raises(CredentialError) as ei:
        parse_service_account_json(dict(sa_info, private_key=enc))
    assert "encrypted" in ei.value.fields["service_account.private_key"]


def test_sa_bytes_not_utf8():
    with pytest.raises(CredentialError) as ei:
        parse_service_account_json(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in ei.value.fields["service_account"]


def test_gdrive_service_account_problems(sa_info):
    with pytest.raises(CredentialError) as ei:
        gdrive_service_account("", "", impersonate_user="not-an-email", shared_drive_id="bad id!")
    assert set(ei.value.fields) == {"name", "service_account", "impersonate_user", "shared_drive_id"}


# ------------------------------------------------------------------ redaction


def test_redact_replaces_every_secret(sa_info):
    bodies = [
        s3_access_key("n", "ASIAIOSFODNN7EXAMPLE", AWS_SECRET, "us-east-1", session_token=SESSION),
        gdrive_service_account("d", sa_info),
        gdrive_oauth("o", "cid", CLIENT_SECRET, REFRESH),
        tigris("t", "tid", "tigris-secret-value"),
    ]
    for body in bodies:
        red = redact(body)
        text = json.dumps(red)
        for secret in (AWS_SECRET, SESSION, sa_info["private_key"], CLIENT_SECRET, REFRESH, "tigris-secret-value"):
            assert secret not in text
            assert json.dumps(secret)[1:-1] not in text
        creds = red["provider_config"]["credentials"]
        for k in cr.SECRET_FIELDS & set(creds):
            assert creds[k] == "***"
        # non-secrets stay, and the original is untouched
        assert red["name"] == body["name"]
        assert body["provider_config"]["credentials"] != creds


def test_contract_secret_fields_are_all_redacted():
    # the sensitive fields are properties of the contract's credentials schemas
    credential_fields = {
        p for name, schema in SCHEMAS.items() if name.endswith("Credentials") for p in schema.get("properties", {})
    }
    for name in ("private_key", "secret_access_key", "client_secret", "refresh_token", "session_token"):
        assert name in credential_fields
        assert name in cr.SECRET_FIELDS


def test_scrub_removes_secrets_from_messages(sa_info):
    body = gdrive_service_account("d", sa_info)
    msg = f"provider said: bad key {json.dumps(sa_info['private_key'])} and raw {sa_info['private_key']}"
    out = cr.scrub(msg, body)
    assert "PRIVATE KEY" not in out and sa_info["private_key"][60:90] not in out
    assert cr.scrub(f"denied for {AWS_SECRET}", {"secret_access_key": AWS_SECRET}) == "denied for ***"


def test_error_str_never_contains_secret_values(sa_info):
    cases = [
        lambda: s3_access_key("", AWS_KEY, AWS_SECRET + " x", "nowhere", session_token="sess token with space"),
        lambda: gdrive_oauth("", "c", CLIENT_SECRET + " \n", "tok en"),
        lambda: gdrive_service_account("", dict(sa_info, client_email="nope")),
        lambda: s3_compatible("", "https://u:" + AWS_SECRET + "@host", AWS_KEY, AWS_SECRET),
    ]
    for make in cases:
        with pytest.raises(CredentialError) as ei:
            make()
        text = str(ei.value) + repr(ei.value) + repr(ei.value.fields)
        for secret in (AWS_SECRET, "sess token", CLIENT_SECRET, "tok en", sa_info["private_key"][30:60]):
            assert secret not in text


def test_sa_private_key_with_literal_backslash_n_is_repaired(sa_info):
    escaped = sa_info["private_key"].replace("\n", "\\n")
    creds = parse_service_account_json(dict(sa_info, private_key=escaped))
    assert creds["private_key"] == sa_info["private_key"]


# ------------------------------------------------------------------ properties

from hypothesis import (  # noqa: E402
    given,
    settings,
    strategies as st,  # noqa: E402
)

_secret_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=60).map(
    lambda s: "ZQX" + s
)


@settings(max_examples=200, deadline=None)
@given(
    secret=_secret_text,
    token=_secret_text,
    region=st.sampled_from(["us-east-1", "bad region", ""]),
    key_id=st.sampled_from([AWS_KEY, "nope", ""]),
)
def test_property_errors_and_redaction_never_show_secrets(secret, token, region, key_id):
    try:
        body = s3_access_key("n", key_id, secret, region, session_token=token)
    except CredentialError as e:
        text = str(e) + repr(e)
        assert secret not in text and token not in text
    else:
        text = json.dumps(redact(body))
        assert secret not in text and token not in text
    for make in (lambda: gdrive_oauth("", "cid", secret, token), lambda: tigris("", "k", secret, region)):
        try:
            make()
        except CredentialError as e:
            assert secret not in str(e) and token not in str(e)


@settings(max_examples=100, deadline=None)
@given(
    value=st.one_of(
        st.none(),
        st.integers(min_value=0, max_value=10**15),
        st.tuples(st.integers(0, 10**6), st.sampled_from(["", "B", "KB", "kib", "MB", "GiB"])),
    )
)
def test_property_parse_size(value):
    if isinstance(value, tuple):
        n, unit = value
        factor = {"": 1, "B": 1, "KB": 1000, "kib": 1024, "MB": 10**6, "GiB": 1024**3}[unit]
        assert cr.parse_size(f"{n} {unit}") == n * factor
    else:
        assert cr.parse_size(value) == value
