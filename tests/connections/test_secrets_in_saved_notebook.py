"""Storage secrets never reach a saved notebook: a real kernel (nbclient) connects
S3-compatible storage through the form and through the API (including a failing
attempt whose traceback is saved), shows the connection, its repr and the
connections frame; the saved .ipynb (outputs, tracebacks, widget state) is then
searched for every secret. The secrets reach the kernel through environment
variables, so the cell sources do not contain them either."""

from __future__ import annotations

import secrets
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.fixtures.moto_s3 import moto_s3_server

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_no_storage_secret_in_the_saved_notebook(local_server, tmp_path, monkeypatch):
    with moto_s3_server() as moto:
        moto.create_bucket("leak-check")
        moto.put_objects("leak-check", {"a.txt": b"one"})
        form_secret = "F" + secrets.token_hex(24)
        api_secret = "A" + secrets.token_hex(24)
        bad_secret = "B" + secrets.token_hex(24)
        session_token = "S" + secrets.token_hex(24)
        for name, value in {
            "FORM_SECRET": form_secret,
            "API_SECRET": api_secret,
            "BAD_SECRET": bad_secret,
            "SESSION_TOKEN": session_token,
            "MOTO_URL": moto.endpoint_url,
            "MIXPEEK_API_KEY": local_server.api_key,
            "MIXPEEK_BASE_URL": local_server.base_url,
        }.items():
            monkeypatch.setenv(name, value)
        cells = [
            textwrap.dedent("""
                import os
                from mixpeek_magics import Mixpeek
                from mixpeek_magics.client.credentials import s3_compatible
                from mixpeek_magics.notebook.connect_form import connect
                client = Mixpeek()
                form = connect(client)
                form.fields["provider"].value = "s3_compatible"
                for name, value in dict(name="via form", endpoint_url=os.environ["MOTO_URL"],
                                        access_key_id="form-access-key-1234", region="us-east-1",
                                        bucket="leak-check", secret_access_key=os.environ["FORM_SECRET"],
                                        session_token=os.environ["SESSION_TOKEN"]).items():
                    form.fields[name].value = value
                form.test_and_save()
                print(form.status_text())
                form
            """),
            textwrap.dedent("""
                body = s3_compatible("via api", os.environ["MOTO_URL"], "api-access-key-12345",
                                     os.environ["API_SECRET"], bucket="leak-check")
                conn = client.connections.create(**body)
                print(conn)
                print(body["provider_config"]["credentials"].keys())
                conn
            """),
            "client.connections.list(provider_type='s3')",
            textwrap.dedent("""
                from mixpeek_magics.frames import connections_frame
                connections_frame(client)
            """),
            # a bad endpoint: the create fails and its traceback is saved in the notebook
            textwrap.dedent("""
                client.connections.create(**s3_compatible("broken", "http://127.0.0.1:9", "bad-access-key-12345",
                                                          os.environ["BAD_SECRET"], bucket="leak-check"))
            """),
        ]
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            allow_errors=True,
            store_widget_state=True,
            resources={"metadata": {"path": str(REPO_ROOT)}},
        ).execute()
        saved = tmp_path / "connections.ipynb"
        nbformat.write(nb, saved)

    text = saved.read_text()
    # the notebook really did the work: both connections saved, the bad one refused with a traceback
    assert "Saved connection 'via form'" in text
    assert "via api" in text
    errors = [o for o in nb.cells[4].outputs if o.output_type == "error"]
    assert errors and "127.0.0.1:9" in "".join(errors[0].traceback)
    assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    for secret in (form_secret, api_secret, bad_secret, session_token, local_server.api_key):
        assert secret not in text
