"""The storage-connection form in JupyterLab, used like a user does: pick a provider in
the dropdown, watch the fields switch, choose IAM role, type a bad role ARN, click
"Test & save" and read the message under the field; then fix it and save."""

from __future__ import annotations

import re
import textwrap

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

FORM = textwrap.dedent(
    """
    from mixpeek_magics.notebook.connect_form import connect
    calls = []
    def submit(body):
        calls.append(body)
        return {"connection_id": "conn_browser_1", "name": body["name"], "provider_type": body["provider_type"]}
    form = connect(submit=submit)
    form
    """
)
STATE = (
    'print("provider:", form.provider, "| visible:", ",".join(sorted(form.visible_fields())), "| calls:", len(calls))'
)


def _text(form, label: str):
    """The ipywidgets Text (or Password / Textarea) whose description is ``label``."""
    return form.locator(".widget-inline-hbox", has=form.page.locator(f"label.widget-label:text-is('{label}')")).first


def test_connection_form_switches_fields_and_shows_errors_next_to_them(lab, scratch_notebook):
    path = scratch_notebook("connect_form", [FORM, STATE])
    lab.open_notebook(path)
    lab.run_cell(0)
    form = lab.panel().locator(".jp-OutputArea-output .widget-vbox", has_text="Connect a storage provider").first
    expect(form).to_be_visible()
    provider = form.locator(".widget-dropdown:has(label:text-is('Provider')) select")
    endpoint = _text(form, "Endpoint URL")
    sa_json = _text(form, "…or paste JSON")
    access_key = _text(form, "Access key ID")
    role_arn = _text(form, "Role ARN")

    # Amazon S3 (default): access key fields, no endpoint, no Drive fields
    expect(provider).to_have_value(re.compile(r".+"))
    expect(access_key).to_be_visible()
    expect(endpoint).to_be_hidden()
    expect(sa_json).to_be_hidden()
    expect(role_arn).to_be_hidden()

    # S3-compatible: the endpoint URL and the SSL checkboxes appear
    provider.select_option(label="S3-compatible (MinIO, …)")
    expect(endpoint).to_be_visible()
    expect(form.locator(".widget-checkbox", has_text="Use SSL (https)")).to_be_visible()
    expect(sa_json).to_be_hidden()
    lab.screenshot("s3-compatible", form)

    # Google Drive: the service-account fields replace the S3 ones
    provider.select_option(label="Google Drive")
    expect(sa_json).to_be_visible()
    expect(endpoint).to_be_hidden()
    expect(access_key).to_be_hidden()
    auth = form.locator(".widget-toggle-buttons")
    expect(auth.locator("button", has_text="Service account")).to_be_visible()
    expect(auth.locator("button", has_text="OAuth")).to_be_visible()
    lab.screenshot("google-drive", form)
    # the kernel's form agrees with what the browser shows
    out = lab.run_cell(1)
    assert "provider: google_drive" in out, out
    assert "service_account_json" in out and "endpoint_url" not in out, out

    # back to Amazon S3, IAM role, a bad ARN
    provider.select_option(label="Amazon S3")
    expect(access_key).to_be_visible()
    auth.locator("button", has_text="IAM role").click()
    expect(role_arn).to_be_visible()
    expect(access_key).to_be_hidden()
    _text(form, "Name").locator("input").fill("browser test")
    _text(form, "External ID").locator("input").fill("external-id-1234")
    role_arn.locator("input").fill("arn:aws:s3:::not-a-role")
    save = form.locator("button.jupyter-button.widget-button", has_text="Test & save")
    save.click()

    # the message sits under the Role ARN input, in the same field box, and nothing was sent
    field_box = form.locator(".widget-vbox", has=lab.page.locator("label.widget-label:text-is('Role ARN')")).last
    message = field_box.locator(".widget-html", has_text="⚠")
    expect(message).to_be_visible(timeout=15_000)
    expect(message).to_contain_text("not an IAM role ARN")
    input_box, msg_box = role_arn.bounding_box(), message.bounding_box()
    assert msg_box["y"] >= input_box["y"] + input_box["height"] - 1, (input_box, msg_box)
    assert msg_box["y"] - (input_box["y"] + input_box["height"]) < 40, (input_box, msg_box)
    # only that field is flagged
    expect(form.locator(".widget-html:visible", has_text="⚠")).to_have_count(1)
    expect(form).to_contain_text("Nothing was sent")
    lab.screenshot("bad-role-arn", field_box)
    out = lab.run_cell(1)
    assert "provider: s3" in out and "role_arn" in out and "calls: 0" in out, out

    # fixed: saved through submit(), the error is gone
    role_arn.locator("input").fill("arn:aws:iam::123456789012:role/mixpeek-storage-sync-role")
    save.click()
    expect(form).to_contain_text("Saved connection 'browser test' (conn_browser_1)", timeout=15_000)
    expect(message).to_be_hidden()
    out = lab.run_cell(1)
    assert "calls: 1" in out, out
    assert lab.error_outputs() == []
    lab.screenshot("saved", form)
