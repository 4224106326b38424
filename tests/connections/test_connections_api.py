"""Storage connections against the local server over HTTP, with moto's S3 server
and the Drive-v3 fixture: credentials tests, health bookkeeping, list filters,
org isolation, secrets never in answers or in the SQLite file."""

from __future__ import annotations

import itertools
import uuid

import pytest

from mixpeek_magics.client import Mixpeek, errors
from mixpeek_magics.client.credentials import CredentialError
from mixpeek_magics.client.models.connections import (
    GoogleDriveConfig,
    S3AccessKeyCredentials,
    S3Config,
    StorageConnection,
    TigrisConfig,
)
from tests.connections.conftest import RecordingTransport, set_drive
from tests.fixtures.moto_s3 import closed_port


def _db_bytes(server) -> bytes:
    data = b""
    for suffix in ("", "-wal"):
        p = server.state.store.path.with_name(server.state.store.path.name + suffix)
        if p.exists():
            data += p.read_bytes()
    return data


# ----------------------------------------------------------------- create / test
def test_good_credentials_are_saved_redacted_and_testable(server, client, recorder, moto_auth):
    moto_auth.create_bucket("media")
    cfg = moto_auth.provider_config(bucket="media")
    conn = client.connections.create("moto media", "s3", cfg, description="moto", metadata={"team": "ml"})
    assert conn.connection_id.startswith("conn_")
    assert conn.status == "ACTIVE" and conn.is_active is True and conn.consecutive_failures == 0
    assert isinstance(conn.provider_config, S3Config)
    assert conn.provider_config.credentials.access_key_id == moto_auth.access_key_id
    assert conn.credentials_type == "access_key"
    assert client.connections.get(conn.connection_id).name == "moto media"
    assert client.connections.get("moto media").connection_id == conn.connection_id  # by name
    result = client.connections.test(conn.connection_id)
    assert result.success is True and result.message == "Connection test succeeded"
    secret = moto_auth.secret_access_key
    assert secret not in recorder.text()
    assert secret not in repr(conn) and secret not in str(conn.to_dict())
    db = _db_bytes(server)
    assert secret.encode() not in db
    assert moto_auth.access_key_id.encode() in db  # the non-secret id is kept in clear (sanity of the check)


@pytest.mark.parametrize("case", ["wrong_secret", "unknown_key", "denied", "no_bucket", "unreachable"])
def test_bad_credentials_fail_with_the_reason_and_save_nothing(server, client, recorder, moto_auth, case):
    moto_auth.create_bucket("media")
    cfg = moto_auth.provider_config(bucket="media")
    secret = "Z" * 40
    expected = {
        "wrong_secret": "Authentication failed",
        "unknown_key": "Authentication failed",
        "denied": "Permission denied",
        "no_bucket": "Bucket not found",
        "unreachable": "Network error",
    }[case]
    if case == "wrong_secret":
        cfg["credentials"]["secret_access_key"] = secret
    elif case == "unknown_key":
        cfg["credentials"] = {
            "type": "access_key",
            "access_key_id": "AKIAUNKNOWNKEY000000",
            "secret_access_key": secret,
        }
    elif case == "denied":
        secret = moto_auth.denied_secret_access_key
        cfg["credentials"] = {
            "type": "access_key",
            "access_key_id": moto_auth.denied_access_key_id,
            "secret_access_key": secret,
        }
    elif case == "no_bucket":
        secret = moto_auth.secret_access_key
        cfg["bucket"] = "no-such-bucket"
    else:
        secret = moto_auth.secret_access_key
        cfg["endpoint_url"] = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(errors.APIStatusError) as ei:
        client.connections.create(f"bad-{case}", "s3", cfg)
    assert ei.value.status_code == 400
    assert expected in str(ei.value), str(ei.value)
    assert "nothing was saved" in str(ei.value)
    page = client.connections.list(include_total=True)
    assert page.total == 0 and page.items == []
    assert secret not in recorder.text()
    assert secret not in str(ei.value)
    assert secret.encode() not in _db_bytes(server)


def test_s3_compatible_endpoint_without_ssl(server, client, moto):
    moto.create_bucket("plain-http")
    moto.put_object("plain-http", "a.txt", b"x")
    # no scheme in the endpoint: use_ssl=false makes it http://
    cfg = moto.provider_config(endpoint_url=moto.host_port, use_ssl=False, verify_ssl=False, bucket="plain-http")
    conn = client.connections.create(f"minio-like-{uuid.uuid4().hex[:4]}", "s3", cfg)
    assert conn.provider_config.use_ssl is False
    assert client.connections.test(conn.connection_id).success
    # the same endpoint with use_ssl=true speaks TLS to a plain-http server: the test fails clearly
    with pytest.raises(errors.APIStatusError) as ei:
        client.connections.create(f"tls-{uuid.uuid4().hex[:4]}", "s3", dict(cfg, use_ssl=True, verify_ssl=False))
    assert ei.value.status_code == 400
    assert "nothing was saved" in str(ei.value)


def test_untested_bad_connection_health_bookkeeping(server, client, moto_auth):
    cfg = moto_auth.provider_config()
    good_secret = cfg["credentials"]["secret_access_key"]
    cfg["credentials"]["secret_access_key"] = "Y" * 40
    conn = client.connections.create("untested", "s3", cfg, test_before_save=False)
    assert conn.status == "ACTIVE" and conn.last_error is None
    for i in range(1, 6):
        r = client.connections.test("untested")
        assert r.success is False and "Authentication failed" in r.message
        assert r.details["error_code"] == "AUTH_FAILED"
        c = client.connections.get(conn.connection_id)
        assert c.consecutive_failures == i
        assert "Authentication failed" in c.last_error
        assert c.status == ("FAILED" if i >= 5 else "ACTIVE")
        assert c.is_active is (i < 5)
    # new credentials (tested by the server) bring it back
    fixed = client.connections.update(conn.connection_id, provider_config=moto_auth.provider_config())
    assert fixed.status == "ACTIVE" and fixed.is_active and fixed.consecutive_failures == 0 and fixed.last_error is None
    assert client.connections.test(conn.connection_id).success
    # bad replacement credentials are refused and change nothing
    with pytest.raises(errors.APIStatusError) as ei:
        client.connections.update(conn.connection_id, provider_config=cfg)
    assert "not changed" in str(ei.value)
    assert client.connections.test(conn.connection_id).success
    assert good_secret.encode() not in _db_bytes(server)


def test_update_suspend_archive_rename_and_delete(server, client, moto):
    a = client.connections.create("conn-a", "s3", moto.provider_config(), test_before_save=False)
    client.connections.create("conn-b", "s3", moto.provider_config(), test_before_save=False)
    with pytest.raises(errors.ConflictError):
        client.connections.create("conn-a", "s3", moto.provider_config(), test_before_save=False)
    with pytest.raises(errors.ConflictError):
        client.connections.update(a.connection_id, name="conn-b")
    s = client.connections.update(a.connection_id, status="suspended")  # case-insensitive, like the contract's example
    assert s.status == "SUSPENDED" and s.is_active is False
    assert client.connections.update(a.connection_id, is_active=True).status == "ACTIVE"
    assert client.connections.update(a.connection_id, is_active=False).status == "SUSPENDED"
    with pytest.raises(errors.APIStatusError) as ei:
        client.connections.update(a.connection_id, status="ACTIVE", is_active=False)
    assert ei.value.status_code == 400
    r = client.connections.update(a.connection_id, name="renamed", description="d", metadata={"k": 1})
    assert (r.name, r.description, r.metadata) == ("renamed", "d", {"k": 1})
    assert client.connections.update("renamed", status="ARCHIVED").is_active is False
    with pytest.raises(errors.ConflictError):
        client.connections.activate("renamed")
    client.connections.delete("renamed")
    with pytest.raises(errors.NotFoundError):
        client.connections.get(a.connection_id)
    assert [c.name for c in client.connections.iter()] == ["conn-b"]


def test_org_isolation(server, client, moto):
    conn = client.connections.create("mine", "s3", moto.provider_config(), test_before_save=False)
    other = Mixpeek(api_key=server.create_organization("other"), base_url=server.base_url)
    try:
        assert other.connections.list().items == []
        with pytest.raises(errors.NotFoundError):
            other.connections.get(conn.connection_id)
        with pytest.raises(errors.NotFoundError):
            other.connections.test("mine")
        with pytest.raises(errors.NotFoundError):
            other.connections.delete(conn.connection_id)
        # the same name is free in another organization
        other.connections.create("mine", "s3", moto.provider_config(), test_before_save=False)
    finally:
        other.close()
    assert client.connections.get("mine").connection_id == conn.connection_id


def test_validation_errors_never_echo_secrets(server, client, recorder, moto):
    secret = "short-secret-value"
    with pytest.raises(CredentialError) as ei:  # checked before sending
        client.connections.create(
            "x",
            "s3",
            {
                "credentials": {
                    "type": "access_key",
                    "access_key_id": "AKIA1234567890ABCDEF",
                    "secret_access_key": secret,
                },
                "region": "us-east-1",
            },
        )
    assert "provider_config.credentials.secret_access_key" in ei.value.fields
    assert secret not in str(ei.value) and secret not in repr(ei.value)
    with pytest.raises(Exception) as ei2:
        S3AccessKeyCredentials(access_key_id="AKIA1234567890ABCDEF", secret_access_key=secret)
    assert secret not in str(ei2.value)
    # sent anyway (raw HTTP): the server's 422 does not echo it either
    import httpx

    r = httpx.post(
        server.base_url + "/v1/organizations/connections",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json={
            "name": "x",
            "provider_type": "s3",
            "provider_config": {
                "credentials": {
                    "type": "access_key",
                    "access_key_id": "AKIA1234567890ABCDEF",
                    "secret_access_key": secret,
                },
                "region": "us-east-1",
            },
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"]["errors"][0]["loc"] == [
        "body",
        "provider_config",
        "credentials",
        "secret_access_key",
    ]
    assert secret not in r.text
    r = httpx.post(
        server.base_url + "/v1/organizations/connections",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json={"name": "x", "provider_type": "snowflake", "provider_config": {"credentials": {}}},
    )
    assert r.status_code == 400 and "not supported by the local server" in r.text
    assert client.connections.list().items == []
    # request models never show secrets in their repr
    cfg = S3Config(
        credentials=S3AccessKeyCredentials(
            access_key_id="AKIA1234567890ABCDEF", secret_access_key="S" * 40, session_token="T" * 20
        ),
        region="us-east-1",
    )
    assert "S" * 40 not in repr(cfg) and "T" * 20 not in repr(cfg) and "S" * 40 not in str(cfg)
    assert cfg.model_dump(mode="json")["credentials"]["secret_access_key"] == "S" * 40  # what is sent


def test_drive_service_account_and_folders(server, client, recorder, drive):
    set_drive(server, drive)
    sa = drive.add_service_account()
    mk = drive.add_folder("root", "Marketing")
    drive.add_folder(mk, "Assets")
    drive.add_folder("root", "Sales")
    drive.add_file(mk, "brief.txt", b"hello", "text/plain")
    conn = client.connections.create("drive", "google_drive", {"credentials": dict(sa, type="service_account")})
    assert isinstance(conn.provider_config, GoogleDriveConfig)
    assert conn.provider_config.credentials.client_email == sa["client_email"]
    folders = client.connections.list_folders("drive", path="/")
    assert sorted(f.name for f in folders) == ["Marketing", "Sales"]
    assert folders.parent_path == "/"
    sub = client.connections.folders(conn.connection_id, path="/Marketing")
    assert [(f.name, f.path, f.mime_type) for f in sub] == [
        ("Assets", "/Marketing/Assets", "application/vnd.google-apps.folder")
    ]
    files = client.connections.list_files("drive", path="/Marketing")
    assert [f.name for f in files] == ["brief.txt"] and files.files[0].size_bytes == 5
    assert client.connections.get("drive").last_used_at is not None
    with pytest.raises(errors.NotFoundError):
        client.connections.list_folders("drive", path="/Nope")
    # a key the token endpoint does not know: refused, nothing saved
    from tests.fixtures.drive_server import make_service_account_info

    stranger = make_service_account_info(drive.token_uri)
    with pytest.raises(errors.APIStatusError) as ei:
        client.connections.create("stranger", "google_drive", {"credentials": stranger})
    assert "Authentication failed" in str(ei.value)
    assert [c.name for c in client.connections.iter()] == ["drive"]
    text = recorder.text()
    for value in (sa["private_key"], stranger["private_key"], sa["private_key_id"]):
        assert value not in text
        assert value.encode() not in _db_bytes(server)
    pem_line = sa["private_key"].splitlines()[1]
    assert pem_line not in text and pem_line.encode() not in _db_bytes(server)


def test_folders_are_only_for_drive(server, client, moto):
    client.connections.create("s3only", "s3", moto.provider_config(), test_before_save=False)
    with pytest.raises(errors.APIStatusError) as ei:
        client.connections.list_folders("s3only")
    assert ei.value.status_code == 400 and "google_drive" in str(ei.value)


def test_list_filters_every_combination(server, client, recorder, moto, drive):
    set_drive(server, drive)
    sa = drive.add_service_account()
    dead = f"http://127.0.0.1:{closed_port()}"
    tigris_cfg = {
        "credentials": {"type": "access_key", "access_key_id": "tid", "secret_access_key": "tsecret-value"},
        "endpoint_url": dead,
    }
    made = {}
    made["s3-active"] = client.connections.create("s3-active", "s3", moto.provider_config())
    made["s3-suspended"] = client.connections.create("s3-suspended", "s3", moto.provider_config())
    client.connections.suspend("s3-suspended")
    made["s3-failed"] = client.connections.create(
        "s3-failed", "s3", moto.provider_config(endpoint_url=dead), test_before_save=False
    )
    made["tigris-active"] = client.connections.create(
        "tigris-active", "tigris", TigrisConfig.model_validate(tigris_cfg), test_before_save=False
    )
    made["tigris-failed"] = client.connections.create("tigris-failed", "tigris", tigris_cfg, test_before_save=False)
    for name in ("s3-failed", "tigris-failed"):
        for _ in range(5):
            assert client.connections.test(name).success is False
    made["drive-active"] = client.connections.create("drive-active", "google_drive", {"credentials": sa})
    made["drive-archived"] = client.connections.create("drive-archived", "google_drive", {"credentials": sa})
    client.connections.update("drive-archived", status="ARCHIVED")
    state = {c.name: (c.provider_type, str(c.status), c.is_active) for c in client.connections.iter(limit=2)}
    assert state == {
        "s3-active": ("s3", "ACTIVE", True),
        "s3-suspended": ("s3", "SUSPENDED", False),
        "s3-failed": ("s3", "FAILED", False),
        "tigris-active": ("tigris", "ACTIVE", True),
        "tigris-failed": ("tigris", "FAILED", False),
        "drive-active": ("google_drive", "ACTIVE", True),
        "drive-archived": ("google_drive", "ARCHIVED", False),
    }
    providers = [None, "s3", "tigris", "google_drive", "snowflake"]
    statuses = [None, "ACTIVE", "SUSPENDED", "FAILED", "ARCHIVED", "PENDING"]
    checked = 0
    for ptype, status, active in itertools.product(providers, statuses, [None, True, False]):
        expected = sorted(
            n
            for n, (p, s, a) in state.items()
            if (ptype is None or p == ptype) and (status is None or s == status) and (active is None or a is active)
        )
        page = client.connections.list(
            provider_type=ptype, status=status, is_active=active, limit=3, include_total=True
        )
        got = sorted(
            c.name for c in client.connections.iter(provider_type=ptype, status=status, is_active=active, limit=2)
        )
        assert got == expected, (ptype, status, active)
        assert page.total == len(expected) and len(page.items) == min(3, len(expected))
        checked += 1
    assert checked == 90
    # newest first, and lower-case status values are accepted (the contract's examples use them)
    names = [c.name for c in client.connections.list(status="failed")]
    assert names == ["tigris-failed", "s3-failed"]
    with pytest.raises(ValueError, match="not a task status"):  # refused before anything is sent
        client.connections.list(status="NOT_A_STATUS")
    for secret in (moto.secret_access_key, "tsecret-value", sa["private_key"]):
        assert secret not in recorder.text()
        assert secret.encode() not in _db_bytes(server)


def test_response_models_are_lenient_about_redaction():
    c = StorageConnection.from_response(
        {
            "connection_id": "conn_x",
            "internal_id": "int_1",
            "name": "n",
            "created_by_user_id": "u",
            "provider_type": "s3",
            "status": "active",
            "provider_config": {
                "credentials": {"access_key_id": "AKIA..."},
                "provider_type": "s3",
                "region": "us-east-1",
            },
        }
    )
    assert isinstance(c.provider_config, S3Config) and c.provider_config.credentials.secret_access_key is None
    assert c.status == "ACTIVE"
    odd = StorageConnection.from_response(
        {"name": "n", "provider_type": "snowflake", "provider_config": {"a": 1}, "status": "QUEUED"}
    )
    assert odd.provider_config == {"a": 1} and odd.status == "QUEUED"


def test_recording_transport_sees_bodies(server):
    rec = RecordingTransport()
    with Mixpeek(api_key=server.api_key, base_url=server.base_url, transport=rec) as c:
        c.connections.list()
    assert '"results"' in rec.text()
