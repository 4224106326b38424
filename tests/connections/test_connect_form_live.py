"""The connection and sync forms driven through their widgets against the REAL
local server and moto's S3 (with signature checks) and the Drive fixture."""

from __future__ import annotations

import json
import uuid

import ipywidgets as widgets

from mixpeek_magics.notebook.connect_form import connect
from tests.connections.conftest import bucket, set_drive


def _widget_text(root) -> str:
    parts, stack, seen = [], [root], set()
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        parts.append(json.dumps(w.get_state(), default=str))
        stack.extend(getattr(w, "children", ()) or ())
    for w in list(widgets.widgets.widget._instances.values()):
        try:
            parts.append(json.dumps(w.get_state(), default=str))
        except Exception:  # noqa: BLE001 - closed widget
            pass
    return "\n".join(parts)


def _fill(form, **values):
    for name, value in values.items():
        form.fields[name].value = value


def test_form_bad_secret_then_good_then_sync(server, client, recorder, moto_auth):
    src = f"form-{uuid.uuid4().hex[:6]}"
    moto_auth.create_bucket(src)
    moto_auth.put_objects(src, {"in/a.txt": b"one", "in/b.txt": b"two", "in/skip.bin": b"three"})
    bkt = bucket(client)
    form = connect(client)
    form.fields["provider"].value = "s3_compatible"
    bad_secret = "B" * 40
    _fill(
        form,
        name="moto via form",
        endpoint_url=moto_auth.endpoint_url,
        access_key_id=moto_auth.access_key_id,
        secret_access_key=bad_secret,
        region="us-east-1",
        bucket=src,
    )
    assert form.fields["use_ssl"].value is False  # follows the http:// endpoint
    assert form.test_and_save() is None
    status = form.status_text()
    assert "nothing was saved" in status and "Authentication failed" in status, status
    assert form.fields["secret_access_key"].value == ""  # secrets cleared
    assert form.fields["access_key_id"].value == moto_auth.access_key_id  # the rest kept
    assert client.connections.list(include_total=True).total == 0
    assert bad_secret not in _widget_text(form) and bad_secret not in status

    form.fields["secret_access_key"].value = moto_auth.secret_access_key
    saved = form.test_and_save()
    assert saved is not None and form.connection_id
    assert "Saved connection" in form.status_text()
    conn = client.connections.get(form.connection_id)
    assert conn.name == "moto via form" and conn.provider_config.endpoint_url  # S3Config has no bucket to read back
    assert form.fields["secret_access_key"].value == ""
    assert moto_auth.secret_access_key not in _widget_text(form)
    assert moto_auth.secret_access_key not in repr(form.connection)

    sync_form = form.sync_form
    assert sync_form is not None
    assert sync_form.fields["source_path"].value == f"{src}/"
    sync_form.fields["bucket"].value = (
        bkt
        if isinstance(sync_form.fields["bucket"], widgets.Text)
        else next(v for label, v in sync_form.fields["bucket"].options if bkt in label or v == bkt)
    )
    sync_form.fields["source_path"].value = f"{src}/in"
    sync_form.fields["sync_mode"].value = "initial_only"
    sync_form.fields["include_patterns"].value = "*.txt"
    sync = sync_form.create()
    assert sync is not None, sync_form.status_text()
    assert "Sync created" in sync_form.status_text()
    done = client.syncs.wait(bkt, sync.sync_config_id, timeout=30, include_tasks=True, poll=0.05)
    assert done.total_files_synced == 2 and done.file_filters.include_patterns == ["*.txt"]
    assert sorted(o.metadata["source_path"] for o in client.objects.iter(bkt)) == ["in/a.txt", "in/b.txt"]
    assert moto_auth.secret_access_key not in recorder.text()


def test_form_drive_folder_picker_against_the_server(server, client, drive):
    set_drive(server, drive)
    sa = drive.add_service_account()
    team = drive.add_folder("root", "Team")
    drive.add_folder(team, "Reports")
    drive.add_file(team, "t.txt", b"team file", "text/plain")
    bkt = bucket(client)
    form = connect(client)
    form.fields["provider"].value = "google_drive"
    _fill(form, name="drive via form", service_account_json=json.dumps(sa))
    assert form.test_and_save() is not None, form.status_text()
    assert form.fields["service_account_json"].value == ""
    sf = form.sync_form
    labels = [label for label, _ in sf.fields["folder"].options]
    assert any("Team" in label for label in labels), labels
    sf.fields["folder"].value = team
    sf.open_selected_folder()
    assert any("Reports" in label for label, _ in sf.fields["folder"].options)
    sf.fields["folder"].value = team  # "this folder"
    sf.fields["bucket"].value = (
        bkt
        if isinstance(sf.fields["bucket"], widgets.Text)
        else next(v for label, v in sf.fields["bucket"].options if bkt in label or v == bkt)
    )
    sf.fields["sync_mode"].value = "initial_only"
    sync = sf.create()
    assert sync is not None, sf.status_text()
    done = client.syncs.wait(bkt, sync.sync_config_id, timeout=30, include_tasks=True, poll=0.05)
    assert done.total_files_synced == 1
    assert [o.metadata["source_path"] for o in client.objects.iter(bkt)] == ["/Team/t.txt"]
    assert sa["private_key"] not in _widget_text(form)
