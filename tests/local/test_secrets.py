"""SecretBox (Fernet key file, 0600) and credential redaction."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from mixpeek_magics.local.secrets import (
    KEY_FILENAME,
    REDACTED,
    SecretBox,
    SecretBoxError,
    SecretDecryptionError,
    redact_credentials,
    scrub_text,
    secret_values,
)

S3_ACCESS = {
    "provider_type": "s3",
    "region": "us-east-1",
    "endpoint_url": "http://localhost:9000",
    "bucket": "media",
    "credentials": {
        "type": "access_key",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "session_token": "FwoGZXIvYXdzEXAMPLESESSIONTOKEN",
    },
}
S3_ROLE = {
    "region": "us-east-1",
    "credentials": {
        "type": "iam_role",
        "role_arn": "arn:aws:iam::123456789012:role/r",
        "external_id": "mixpeek-org_abc123",
    },
}
TIGRIS = {
    "provider_type": "tigris",
    "credentials": {"type": "access_key", "access_key_id": "tid_AzureDiamond", "secret_access_key": "tsec_hunter2xyz"},
}
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
GDRIVE_SA = {
    "shared_drive_id": "0AH-Xabc123",
    "impersonate_user": "admin@example.com",
    "credentials": {
        "type": "service_account",
        "project_id": "mixpeek-prod-456",
        "private_key_id": "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
        "private_key": PEM,
        "client_email": "sync@mixpeek-prod-456.iam.gserviceaccount.com",
        "client_id": "123456789012345678901",
        "token_uri": "https://oauth2.googleapis.com/token",
    },
}
GDRIVE_OAUTH = {
    "credentials": {
        "type": "oauth",
        "client_id": "123-abc.apps.googleusercontent.com",
        "client_secret": "GOCSPX-abc123def456",
        "refresh_token": "1//0abc123def456xyz",
    },
}
# (config, secret values that must vanish, identifying values that must stay)
CASES = [
    (
        S3_ACCESS,
        ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"],
        ["AKIAIOSFODNN7EXAMPLE", "http://localhost:9000", "media", "us-east-1"],
    ),
    (S3_ROLE, [], ["arn:aws:iam::123456789012:role/r", "mixpeek-org_abc123"]),
    (TIGRIS, ["tsec_hunter2xyz"], ["tid_AzureDiamond"]),
    (
        GDRIVE_SA,
        [PEM, "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2"],
        [
            "sync@mixpeek-prod-456.iam.gserviceaccount.com",
            "123456789012345678901",
            "mixpeek-prod-456",
            "https://oauth2.googleapis.com/token",
            "0AH-Xabc123",
        ],
    ),
    (GDRIVE_OAUTH, ["GOCSPX-abc123def456", "1//0abc123def456xyz"], ["123-abc.apps.googleusercontent.com"]),
]


def test_key_file_created_with_mode_0600(tmp_path):
    box = SecretBox(tmp_path / "data")
    key_path = tmp_path / "data" / KEY_FILENAME
    assert box.key_path == key_path
    assert key_path.is_file()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert "secret.key" in repr(box) and key_path.read_text().strip() not in repr(box)
    # no temp files left behind
    assert sorted(p.name for p in key_path.parent.iterdir()) == [KEY_FILENAME]


def test_key_file_mode_is_0600_even_with_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        SecretBox(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / KEY_FILENAME).stat().st_mode) == 0o600


def test_round_trip_and_key_reused(tmp_path):
    box = SecretBox(tmp_path)
    creds = GDRIVE_SA["credentials"]
    token = box.encrypt(creds)
    assert isinstance(token, str)
    assert PEM not in token and "sync@" not in token
    assert box.decrypt(token) == creds
    key_before = (tmp_path / KEY_FILENAME).read_bytes()
    again = SecretBox(tmp_path)  # a restarted server
    assert (tmp_path / KEY_FILENAME).read_bytes() == key_before
    assert again.decrypt(token) == creds
    assert box.encrypt(creds) != token  # Fernet tokens are randomized


def test_concurrent_creation_yields_one_key(tmp_path):
    boxes: list[SecretBox] = []
    threads = [threading.Thread(target=lambda: boxes.append(SecretBox(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    token = boxes[0].encrypt({"a": 1})
    assert all(b.decrypt(token) == {"a": 1} for b in boxes)
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILENAME]


def test_wrong_key_fails_cleanly(tmp_path):
    token = SecretBox(tmp_path / "one").encrypt({"secret_access_key": "s3cr3t-value"})
    other = SecretBox(tmp_path / "two")
    with pytest.raises(SecretDecryptionError) as ei:
        other.decrypt(token)
    msg = str(ei.value)
    assert "cannot decrypt" in msg and "s3cr3t-value" not in msg and token not in msg
    assert ei.value.__cause__ is None and ei.value.__suppress_context__  # no InvalidToken chain in tracebacks


def test_tampered_or_garbage_token_fails_cleanly(tmp_path):
    box = SecretBox(tmp_path)
    token = box.encrypt({"x": "y"})
    tampered = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    for bad in (tampered, "not-a-token", ""):
        with pytest.raises(SecretDecryptionError):
            box.decrypt(bad)


def test_corrupt_key_file_is_reported(tmp_path):
    (tmp_path / KEY_FILENAME).write_text("garbage")
    with pytest.raises(SecretBoxError, match="corrupt"):
        SecretBox(tmp_path)


def test_readable_key_file_is_tightened(tmp_path):
    SecretBox(tmp_path)
    os.chmod(tmp_path / KEY_FILENAME, 0o644)
    SecretBox(tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILENAME).stat().st_mode) == 0o600


def test_encrypt_rejects_non_dict(tmp_path):
    with pytest.raises(TypeError):
        SecretBox(tmp_path).encrypt("AKIA...")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "config,secrets,kept", CASES, ids=["s3-access", "s3-role", "tigris", "gdrive-sa", "gdrive-oauth"]
)
def test_redaction_covers_every_credential_type(config, secrets, kept):
    original = json.dumps(config, sort_keys=True)
    red = redact_credentials(config)
    dumped = json.dumps(red)
    for s in secrets:
        assert s not in dumped
    for k in kept:
        assert k in dumped, k
    assert json.dumps(config, sort_keys=True) == original  # input untouched
    # every secret field shows the marker, the structure is kept
    for field in (
        "secret_access_key",
        "session_token",
        "private_key",
        "private_key_id",
        "client_secret",
        "refresh_token",
    ):
        if field in config["credentials"]:
            assert red["credentials"][field] == REDACTED
    assert red["credentials"]["type"] == config["credentials"]["type"]
    assert sorted(set(secret_values(config))) == sorted(set(secrets))


def test_redaction_catches_unknown_secret_fields_and_pem_values():
    cfg = {
        "credentials": {
            "type": "password",
            "username": "bob",
            "password": "pw-123456",
            "client_secret": "cs",
            "api_key": "k-1",
            "sas_token": "sv=2020",
            "note": PEM,
        },
        "nested": [{"db_password": "dbpw"}],
        "token_uri": "https://x/token",
    }
    red = redact_credentials(cfg)
    dumped = json.dumps(red)
    for s in ("pw-123456", "k-1", "sv=2020", "dbpw", "BEGIN PRIVATE KEY"):
        assert s not in dumped
    assert red["credentials"]["username"] == "bob"
    assert red["token_uri"] == "https://x/token"


def test_raw_json_credentials_string_is_redacted_whole():
    cfg = {"credentials": json.dumps(GDRIVE_SA["credentials"])}
    assert redact_credentials(cfg) == {"credentials": REDACTED}


def test_none_secret_fields_stay_none():
    cfg = {
        "credentials": {
            "type": "access_key",
            "access_key_id": "AKIAX",
            "secret_access_key": "s" * 40,
            "session_token": None,
        }
    }
    red = redact_credentials(cfg)
    assert red["credentials"]["session_token"] is None
    assert red["credentials"]["secret_access_key"] == REDACTED


def test_scrub_text_removes_secret_values():
    text = "failed with key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY for AKIAIOSFODNN7EXAMPLE"
    out = scrub_text(text, S3_ACCESS)
    assert "wJalrXUtnFEMI" not in out and REDACTED in out and "AKIAIOSFODNN7EXAMPLE" in out
