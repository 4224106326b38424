"""The storage-connection form, driven through its widgets (no kernel, no server)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import ipywidgets as widgets
import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mixpeek_magics.notebook.connect_form import ConnectionForm, SyncForm, connect

# The vendored v0.82 contract (scripts/vendor_contract.py): operations and schemas, as facts.
SPEC = json.loads(
    (Path(__file__).resolve().parents[2] / "mixpeek_magics/local/contract/mixpeek-v0.82.json").read_text()
)

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789"
CLIENT_SECRET = "GOCSPX-client-secret-value"
REFRESH = "1//0refresh-token-value-xyz"


def validate(instance: dict, schema_name: str) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": SPEC["schemas"]}}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    assert not errors, [e.message for e in errors]


@pytest.fixture(scope="module")
def sa_info() -> dict:
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    return {
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "abc123def4567890abc123def4567890abc123de",
        "private_key": pem,
        "client_email": "sync@proj-1.iam.gserviceaccount.com",
        "client_id": "123456789012345678901",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


class Recorder:
    def __init__(self, result=None, error: Exception | None = None):
        self.calls: list[dict] = []
        self.result = result if result is not None else {"connection_id": "conn_123", "name": "x"}
        self.error = error
        self.disabled_during_call: list[bool] = []
        self.form: ConnectionForm | None = None

    def __call__(self, body: dict):
        self.calls.append(json.loads(json.dumps(body)))
        if self.form is not None:
            self.disabled_during_call.append(self.form.save_button.disabled)
        if self.error is not None:
            raise self.error
        return self.result


def make_form(**kw) -> tuple[ConnectionForm, Recorder]:
    rec = kw.pop("recorder", None) or Recorder()
    form = connect(submit=rec, **kw)
    rec.form = form
    return form, rec


def fill(form: ConnectionForm, **values) -> None:
    for name, value in values.items():
        form.fields[name].value = value


def all_widgets(root: widgets.Widget):
    seen, stack = set(), [root]
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        yield w
        for attr in ("children",):
            stack.extend(getattr(w, attr, ()) or ())


def state_dump(root: widgets.Widget) -> str:
    parts = []
    for w in all_widgets(root):
        state = w.get_state()
        value = state.get("value")
        if isinstance(value, (list, tuple)):  # FileUpload: serialised files with memoryview content
            for f in value:
                if isinstance(f, dict) and isinstance(f.get("content"), memoryview):
                    parts.append(f["content"].tobytes().decode("latin-1"))
        parts.append(json.dumps(state, default=str))
        parts.append(repr(w))
    # every widget alive in the process, too
    instances = widgets.widgets.widget._instances
    for w in list(instances.values()):
        try:
            parts.append(json.dumps(w.get_state(), default=str))
        except Exception:  # closed widget
            pass
    return "\n".join(parts)


def upload_value(data: bytes, name: str = "key.json") -> tuple:
    return (
        {
            "name": name,
            "type": "application/json",
            "size": len(data),
            "content": memoryview(data),
            "last_modified": dt.datetime.now(dt.timezone.utc),
        },
    )


# ------------------------------------------------------------------ switching


def test_is_a_vbox_and_repr_is_short():
    form, _ = make_form()
    assert isinstance(form, widgets.VBox)
    assert repr(form).startswith("<ConnectionForm provider='s3'")


def test_fields_switch_with_provider_and_credential_type():
    form, _ = make_form()
    common = {"provider", "name", "description", "metadata"}

    assert set(form.visible_fields()) == common | {
        "credential_type",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "region",
        "bucket",
    }
    form.fields["credential_type"].value = "iam_role"
    assert set(form.visible_fields()) == common | {"credential_type", "role_arn", "external_id", "region", "bucket"}

    form.fields["provider"].value = "s3_compatible"
    assert set(form.visible_fields()) == common | {
        "access_key_id",
        "secret_access_key",
        "session_token",
        "region",
        "bucket",
        "endpoint_url",
        "use_ssl",
        "verify_ssl",
    }
    form.fields["provider"].value = "tigris"
    assert set(form.visible_fields()) == common | {
        "access_key_id",
        "secret_access_key",
        "region",
        "bucket",
        "endpoint_url",
    }
    assert form.fields["region"].value == "auto"
    assert form.fields["endpoint_url"].value == "https://fly.storage.tigris.dev"

    form.fields["provider"].value = "google_drive"
    assert set(form.visible_fields()) == common | {
        "credential_type",
        "service_account_file",
        "service_account_json",
        "impersonate_user",
        "shared_drive_id",
    }
    form.fields["credential_type"].value = "oauth"
    assert set(form.visible_fields()) == common | {
        "credential_type",
        "client_id",
        "client_secret",
        "refresh_token",
        "shared_drive_id",
    }
    form.fields["provider"].value = "s3"
    assert form.credential_type == "access_key"
    assert form.fields["region"].value == "us-east-1"
    assert form.fields["endpoint_url"].value == ""
    # the hidden ones are really hidden in the widget tree
    assert form._fields["client_secret"].box.layout.display == "none"
    assert form._fields["secret_access_key"].box.layout.display != "none"


def test_use_ssl_follows_endpoint_scheme():
    form, _ = make_form()
    form.fields["provider"].value = "s3_compatible"
    form.fields["endpoint_url"].value = "http://127.0.0.1:9000"
    assert form.fields["use_ssl"].value is False
    form.fields["endpoint_url"].value = "https://minio.example.com"
    assert form.fields["use_ssl"].value is True


# ----------------------------------------------------------------- validation


def test_bad_arn_and_missing_fields_are_shown_next_to_fields_and_nothing_is_sent():
    form, rec = make_form()
    form.fields["credential_type"].value = "iam_role"
    fill(form, role_arn="arn:aws:iam::123:role/x", external_id="", region="us-east-1")
    form.save_button.click()
    assert rec.calls == []
    errors = form.field_errors()
    assert set(errors) == {"name", "role_arn", "external_id"}
    assert "12 digits" in errors["role_arn"]
    # rendered under the field
    err_widget = form._fields["role_arn"].error
    assert "12 digits" in err_widget.value and err_widget.layout.display != "none"
    assert form._fields["region"].error.layout.display == "none"
    assert "Nothing was sent" in form.status_text()
    assert form.sync_form is None

    # fixing them clears the messages and submits
    fill(form, name="Role conn", role_arn="arn:aws:iam::123456789012:role/sync", external_id="mixpeek-org_1")
    form.save_button.click()
    assert form.field_errors() == {}
    assert len(rec.calls) == 1


def test_bad_metadata_json_is_reported():
    form, rec = make_form()
    fill(form, name="n", access_key_id=AWS_KEY, secret_access_key=AWS_SECRET, metadata="{not json")
    form.save_button.click()
    assert rec.calls == []
    assert "not valid JSON" in form.field_errors()["metadata"]
    fill(form, metadata="[1, 2]", secret_access_key=AWS_SECRET)
    form.save_button.click()
    assert "JSON object" in form.field_errors()["metadata"]
    assert rec.calls == []


def test_service_account_problems_go_under_the_input_used(sa_info):
    form, rec = make_form()
    fill(form, provider="google_drive", name="d")
    form.fields["service_account_json"].value = json.dumps(dict(sa_info, private_key="garbage"))
    form.save_button.click()
    assert rec.calls == []
    err = form.field_errors()["service_account_json"]
    assert "private_key" in err and "PEM" in err
    assert form.fields["service_account_json"].value == ""  # secrets cleared even on validation failure

    form.fields["service_account_file"].value = upload_value(b"{oops")
    form.save_button.click()
    assert "not valid JSON" in form.field_errors()["service_account_file"]
    assert form.fields["service_account_file"].value == ()


# --------------------------------------------------------------------- submit


def test_successful_s3_submit_sends_contract_body_and_clears_secrets():
    saved = []
    form, rec = make_form(on_saved=saved.append)
    fill(
        form,
        name="Prod S3",
        description="videos",
        access_key_id="ASIAIOSFODNN7EXAMPLE",
        secret_access_key=AWS_SECRET,
        session_token=SESSION,
        region="eu-central-1",
        bucket="media-bucket",
        metadata='{"team": "ml"}',
    )
    form.save_button.click()
    assert len(rec.calls) == 1
    body = rec.calls[0]
    validate(body, "StorageConnectionCreateRequest")
    validate(body["provider_config"], "S3Config")
    assert body == {
        "name": "Prod S3",
        "provider_type": "s3",
        "provider_config": {
            "provider_type": "s3",
            "credentials": {
                "type": "access_key",
                "access_key_id": "ASIAIOSFODNN7EXAMPLE",
                "secret_access_key": AWS_SECRET,
                "session_token": SESSION,
            },
            "region": "eu-central-1",
            "use_ssl": True,
            "verify_ssl": True,
            "bucket": "media-bucket",
        },
        "description": "videos",
        "metadata": {"team": "ml"},
        "test_before_save": True,
    }
    assert rec.disabled_during_call == [True]
    assert form.save_button.disabled is False
    assert form.fields["secret_access_key"].value == ""
    assert form.fields["session_token"].value == ""
    assert form.fields["access_key_id"].value == "ASIAIOSFODNN7EXAMPLE"  # not a secret: kept
    assert form.connection_id == "conn_123"
    assert saved == [{"connection_id": "conn_123", "name": "x"}]
    assert "Saved connection" in form.status_text()
    assert isinstance(form.sync_form, SyncForm) and form.sync_form in form.children
    assert form.sync_form.fields["source_path"].value == "media-bucket/"
    dump = state_dump(form) + repr(form)
    assert AWS_SECRET not in dump and SESSION not in dump


def test_successful_s3_compatible_and_tigris_submits():
    form, rec = make_form()
    fill(
        form,
        provider="s3_compatible",
        name="MinIO",
        endpoint_url="http://127.0.0.1:9000",
        access_key_id="minio-access-key-01",
        secret_access_key="m" * 40,
        region="us-east-1",
    )
    form.save_button.click()
    body = rec.calls[-1]
    validate(body["provider_config"], "S3Config")
    assert body["provider_config"]["endpoint_url"] == "http://127.0.0.1:9000"
    assert body["provider_config"]["use_ssl"] is False
    assert form.fields["secret_access_key"].value == ""

    form2, rec2 = make_form()
    fill(form2, provider="tigris", name="T", access_key_id="tid_1", secret_access_key="tsec_1")
    form2.save_button.click()
    body = rec2.calls[-1]
    validate(body["provider_config"], "TigrisConfig")
    assert body["provider_type"] == "tigris"
    assert body["provider_config"]["region"] == "auto"
    assert body["provider_config"]["credentials"] == {
        "type": "access_key",
        "access_key_id": "tid_1",
        "secret_access_key": "tsec_1",
    }


def test_drive_service_account_upload_submit(sa_info):
    form, rec = make_form()
    fill(form, provider="google_drive", name="Drive", shared_drive_id="0AH-Xabc123", impersonate_user="a@b.co")
    raw = json.dumps(sa_info).encode()
    form.fields["service_account_file"].value = upload_value(raw)
    form.save_button.click()
    assert form.field_errors() == {}, form.field_errors()
    body = rec.calls[-1]
    validate(body["provider_config"], "GoogleDriveConfig")
    creds = body["provider_config"]["credentials"]
    assert creds["type"] == "service_account" and creds["private_key"] == sa_info["private_key"]
    assert body["provider_config"]["shared_drive_id"] == "0AH-Xabc123"
    assert body["provider_config"]["impersonate_user"] == "a@b.co"
    assert form.fields["service_account_file"].value == ()
    dump = state_dump(form) + repr(form)
    key_body = sa_info["private_key"].splitlines()[3]
    assert key_body not in dump and "PRIVATE KEY" not in dump


def test_drive_oauth_pasted_submit_and_no_secrets_left():
    form, rec = make_form()
    fill(form, provider="google_drive")
    form.fields["credential_type"].value = "oauth"
    fill(
        form,
        name="Mine",
        client_id="1-abc.apps.googleusercontent.com",
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH,
    )
    form.save_button.click()
    body = rec.calls[-1]
    validate(body["provider_config"], "GoogleDriveConfig")
    assert body["provider_config"]["credentials"] == {
        "type": "oauth",
        "client_id": "1-abc.apps.googleusercontent.com",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH,
    }
    dump = state_dump(form) + repr(form)
    assert CLIENT_SECRET not in dump and REFRESH not in dump
    assert form.fields["client_id"].value == "1-abc.apps.googleusercontent.com"


def test_failing_submit_shows_message_keeps_fields_and_clears_secrets(sa_info):
    class ProviderError(Exception):
        pass

    rec = Recorder(error=ProviderError(f"AccessDenied: signature mismatch for key {AWS_SECRET}"))
    saved = []
    form, rec = make_form(recorder=rec, on_saved=saved.append)
    fill(form, name="Prod", access_key_id=AWS_KEY, secret_access_key=AWS_SECRET, region="us-west-2", description="d")
    form.save_button.click()
    assert len(rec.calls) == 1
    status = form.status_text()
    assert "AccessDenied: signature mismatch" in status and "nothing was saved" in status
    assert AWS_SECRET not in status and AWS_SECRET not in form.status.value
    assert form.fields["name"].value == "Prod"
    assert form.fields["access_key_id"].value == AWS_KEY
    assert form.fields["region"].value == "us-west-2"
    assert form.fields["description"].value == "d"
    assert form.fields["secret_access_key"].value == ""
    assert form.connection is None and form.sync_form is None and saved == []
    assert form.save_button.disabled is False
    assert AWS_SECRET not in state_dump(form)

    # retry with the secret re-entered succeeds
    rec.error = None
    form.fields["secret_access_key"].value = AWS_SECRET
    form.save_button.click()
    assert len(rec.calls) == 2 and form.connection_id == "conn_123"


def test_failing_drive_submit_clears_every_secret_widget(sa_info):
    rec = Recorder(error=RuntimeError("invalid_grant: Invalid JWT Signature."))
    form, rec = make_form(recorder=rec)
    fill(form, provider="google_drive", name="D")
    form.fields["service_account_json"].value = json.dumps(sa_info)
    # a secret typed earlier into a now-hidden field is cleared as well
    form.fields["secret_access_key"].value = AWS_SECRET
    form.save_button.click()
    assert len(rec.calls) == 1
    assert "invalid_grant" in form.status_text()
    assert form.fields["service_account_json"].value == ""
    assert form.fields["secret_access_key"].value == ""
    dump = state_dump(form)
    assert "PRIVATE KEY" not in dump and AWS_SECRET not in dump


def test_api_validation_fields_are_mapped_to_form_fields():
    from mixpeek_magics.client import errors

    exc = errors.ValidationError(
        422,
        "request validation failed",
        fields=[
            ("body.provider_config.region", "bad region for this account"),
            ("body.provider_config.credentials.secret_access_key", "String should have at least 40 characters"),
        ],
    )
    form, rec = make_form(recorder=Recorder(error=exc))
    fill(form, name="n", access_key_id=AWS_KEY, secret_access_key=AWS_SECRET)
    form.save_button.click()
    assert form.field_errors() == {
        "region": "bad region for this account",
        "secret_access_key": "String should have at least 40 characters",
    }


def test_without_submit_or_client_the_error_is_clear():
    form = ConnectionForm()
    fill(form, name="n", access_key_id=AWS_KEY, secret_access_key=AWS_SECRET)
    form.save_button.click()
    assert "submit=" in form.status_text()
    assert form.fields["secret_access_key"].value == ""


def test_default_submit_uses_client_connections_create():
    got = []

    class Connections:
        def create(self, **body):
            got.append(body)
            return {"connection_id": "conn_c"}

    class Client:
        connections = Connections()

    form = connect(Client())
    fill(form, name="n", access_key_id=AWS_KEY, secret_access_key=AWS_SECRET)
    form.save_button.click()
    assert got and got[0]["provider_type"] == "s3" and form.connection_id == "conn_c"


# ----------------------------------------------------------------------- sync


def saved_form(provider="s3", **kw) -> ConnectionForm:
    form, rec = make_form(**kw)
    if provider == "google_drive":
        fill(form, provider="google_drive")
        form.fields["credential_type"].value = "oauth"
        fill(form, name="D", client_id="cid", client_secret=CLIENT_SECRET, refresh_token=REFRESH)
    else:
        fill(form, name="S", access_key_id=AWS_KEY, secret_access_key=AWS_SECRET, bucket="media-bucket")
    form.save_button.click()
    assert form.sync_form is not None, form.status_text()
    return form


def test_sync_form_builds_sync_create_request():
    created, calls = [], []

    def create_sync(bucket, body):
        calls.append((bucket, body))
        return {"sync_config_id": "sync_1", **body}

    form = saved_form(
        create_sync=create_sync,
        on_sync_created=created.append,
        list_buckets=lambda: [
            {"bucket_id": "bkt_1", "bucket_name": "videos"},
            {"bucket_id": "bkt_2", "bucket_name": "images"},
        ],
    )
    sf = form.sync_form
    assert isinstance(sf.fields["bucket"], widgets.Dropdown)
    assert sf.fields["bucket"].options == (("videos (bkt_1)", "bkt_1"), ("images (bkt_2)", "bkt_2"))
    assert "source_path" in sf.visible_fields() and "folder" not in sf.visible_fields()
    sf.fields["bucket"].value = "bkt_2"
    sf.fields["source_path"].value = "media-bucket/raw/2024"
    sf.fields["sync_mode"].value = "continuous"
    sf.fields["polling_interval_seconds"].value = 120
    sf.fields["include_patterns"].value = "*.mp4, *.mov"
    sf.fields["exclude_patterns"].value = "*/drafts/*"
    sf.fields["min_size_bytes"].value = "1KB"
    sf.fields["max_size_bytes"].value = "2GB"
    sf.create_button.click()
    assert sf.field_errors() == {}
    assert len(calls) == 1
    bucket, body = calls[0]
    assert bucket == "bkt_2"
    validate(body, "SyncCreateRequest")
    validate(body["file_filters"], "FileFilters")
    assert body == {
        "connection_id": "conn_123",
        "source_path": "media-bucket/raw/2024",
        "sync_mode": "continuous",
        "polling_interval_seconds": 120,
        "file_filters": {
            "include_patterns": ["*.mp4", "*.mov"],
            "exclude_patterns": ["*/drafts/*"],
            "min_size_bytes": 1000,
            "max_size_bytes": 2_000_000_000,
        },
    }
    assert created == [{"sync_config_id": "sync_1", **body}]
    assert "sync_1" in sf.status_text()


def test_sync_mode_initial_only_hides_polling_and_omits_it():
    calls = []
    form = saved_form(create_sync=lambda b, body: calls.append(body) or {"sync_config_id": "s"})
    sf = form.sync_form
    assert isinstance(sf.fields["bucket"], widgets.Text)
    assert "polling_interval_seconds" in sf.visible_fields()
    sf.fields["sync_mode"].value = "initial_only"
    assert "polling_interval_seconds" not in sf.visible_fields()
    sf.fields["bucket"].value = "bkt_1"
    sf.create_button.click()
    assert calls == [{"connection_id": "conn_123", "source_path": "media-bucket", "sync_mode": "initial_only"}]


def test_sync_validation_errors_nothing_sent():
    calls = []
    form = saved_form(create_sync=lambda b, body: calls.append(body))
    sf = form.sync_form
    sf.fields["source_path"].value = "Bad_Bucket/x"
    sf.fields["polling_interval_seconds"].value = 5
    sf.fields["min_size_bytes"].value = "5MB"
    sf.fields["max_size_bytes"].value = "1MB"
    sf.create_button.click()
    assert calls == []
    errs = sf.field_errors()
    assert set(errs) == {"bucket", "source_path", "polling_interval_seconds", "max_size_bytes"}
    assert "between 30 and 900" in errs["polling_interval_seconds"]
    assert "bucket name" in errs["source_path"]
    assert "⚠" in sf._fields["bucket"].error.value


def test_sync_create_failure_is_shown():
    def boom(bucket, body):
        raise RuntimeError("404 bucket not found")

    form = saved_form(create_sync=boom)
    sf = form.sync_form
    sf.fields["bucket"].value = "nope"
    sf.create_button.click()
    assert "404 bucket not found" in sf.status_text()
    assert sf.sync is None and sf.create_button.disabled is False


def test_drive_folder_picker_is_fed_by_list_folders():
    tree = {
        "/": [
            {
                "id": "f_mkt",
                "name": "Marketing",
                "path": "/Marketing",
                "mime_type": "application/vnd.google-apps.folder",
            },
            {"id": "f_sales", "name": "Sales", "path": "/Sales", "mime_type": "application/vnd.google-apps.folder"},
        ],
        "/Marketing": [
            {
                "id": "f_assets",
                "name": "Assets",
                "path": "/Marketing/Assets",
                "mime_type": "application/vnd.google-apps.folder",
            }
        ],
        "/Marketing/Assets": [],
    }
    asked, calls = [], []

    def list_folders(connection_id, path):
        asked.append((connection_id, path))
        resp = {"results": tree[path], "parent_path": path}
        validate(resp, "ListFoldersResponse")
        return resp

    form = saved_form(
        "google_drive",
        list_folders=list_folders,
        create_sync=lambda b, body: calls.append((b, body)) or {"sync_config_id": "s"},
    )
    sf = form.sync_form
    assert asked == [("conn_123", "/")]
    assert "folder" in sf.visible_fields() and "source_path" not in sf.visible_fields()
    picker = sf.fields["folder"]
    assert [v for _, v in picker.options] == ["/", "f_mkt", "f_sales"]
    picker.value = "f_mkt"
    sf.open_button.click()
    assert asked[-1] == ("conn_123", "/Marketing")
    assert [v for _, v in picker.options] == ["f_mkt", "f_assets"]
    assert picker.value == "f_mkt"
    picker.value = "f_assets"
    sf.fields["bucket"].value = "bkt_docs"
    sf.fields["sync_mode"].value = "initial_only"
    sf.create_button.click()
    assert calls == [
        ("bkt_docs", {"connection_id": "conn_123", "source_path": "f_assets", "sync_mode": "initial_only"})
    ]
    sf.up_button.click()
    assert asked[-1] == ("conn_123", "/") and picker.value == "/"


def test_drive_folder_listing_error_is_shown_next_to_picker():
    def list_folders(cid, path):
        raise RuntimeError("403 insufficient permissions")

    form = saved_form("google_drive", list_folders=list_folders)
    assert "403 insufficient permissions" in form.sync_form.field_errors()["folder"]
