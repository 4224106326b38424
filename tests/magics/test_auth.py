"""%mixpeek_auth through a real IPython shell against local servers."""

from __future__ import annotations

import http.server
import os
import socket
import stat
import threading
import time

import pytest
from IPython.core.error import UsageError

import mixpeek_magics
from mixpeek_magics.notebook import session
from mixpeek_magics.notebook.magics import options


def _one_line_error(ip, line, capsys):
    """Run the magic as a cell: it must fail, and show a short message (no traceback)."""
    res = ip.run_cell(line)
    assert not res.success
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "File " not in text
    return res.error_in_exec, text


def test_env_key_signs_in_and_shows_one_status_line(ip, local_server, monkeypatch, capsys):
    monkeypatch.setenv("MIXPEEK_API_KEY", local_server.api_key)
    ip.run_line_magic("mixpeek_auth", f"--base-url {local_server.base_url} --namespace demo --create-namespace")
    out = capsys.readouterr()
    lines = [ln for ln in out.out.splitlines() if ln.strip()]
    assert len(lines) == 1, out.out
    line = lines[0]
    assert "organization default" in line and "test key" in line
    assert f"sk_...{local_server.api_key[-4:]}" in line
    assert local_server.base_url in line and "namespace demo (ns_" in line
    assert local_server.api_key not in out.out + out.err
    c = session.signed_in_client()
    assert c.config.namespace.startswith("ns_")
    assert c.organization.get().organization_id == session.current().organization_id


def test_client_before_sign_in_is_a_clear_error(ip):
    with pytest.raises(session.NotSignedInError, match="run %mixpeek_auth first"):
        session.signed_in_client()


def test_package_level_signed_in_client_returns_the_session_client(ip, signed_in):
    import mixpeek_magics.client as subpackage
    from mixpeek_magics import _defaults

    assert not callable(subpackage), "the client subpackage is a plain module (layer 1)"
    assert mixpeek_magics.signed_in_client() is session.signed_in_client()
    assert _defaults.default_client() is session.signed_in_client()  # what the frames ask


def test_inline_key_works_but_warns(ip, local_server, capsys):
    ip.run_line_magic("mixpeek_auth", f"{local_server.api_key} --base-url {local_server.base_url}")
    out = capsys.readouterr()
    assert "now in the notebook source" in out.err and "IPython history" in out.err
    assert "MIXPEEK_API_KEY" in out.err
    assert local_server.api_key not in out.out + out.err
    assert session.current() is not None


def test_inline_key_is_masked_in_the_history(ip, local_server, capsys):
    key = local_server.api_key
    res = ip.run_cell(f"%mixpeek_auth {key} --base-url {local_server.base_url}", store_history=True)
    assert res.success
    hm = ip.history_manager
    assert key not in "".join(hm.input_hist_raw) and key not in "".join(hm.input_hist_parsed)
    assert f"sk_...{key[-4:]}" in hm.input_hist_raw[-1]
    rows = list(hm.db.execute("SELECT source_raw FROM history"))
    assert rows and not any(key in r[0] for r in rows)
    assert key not in str(ip.user_ns.get("_i", "")) + str(ip.user_ns.get("_i1", ""))


def test_status_and_logout(ip, signed_in, capsys):
    capsys.readouterr()
    ip.run_line_magic("mixpeek_auth", "--status")
    assert "Signed in to Mixpeek" in capsys.readouterr().out
    ip.run_line_magic("mixpeek_auth", "--logout")
    assert "Signed out" in capsys.readouterr().out
    ip.run_line_magic("mixpeek_auth", "--status")
    assert "Not signed in" in capsys.readouterr().out
    with pytest.raises(session.NotSignedInError):
        session.signed_in_client()


def test_save_stores_key_0600_and_is_used_later(ip, local_server, monkeypatch, capsys):
    monkeypatch.setenv("MIXPEEK_API_KEY", local_server.api_key)
    ip.run_line_magic("mixpeek_auth", f"--base-url {local_server.base_url} --save")
    path = session.saved_credentials_path()
    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert local_server.api_key not in capsys.readouterr().out
    session.sign_out()
    monkeypatch.delenv("MIXPEEK_API_KEY")
    # no env, no argument: the saved key (and its base URL) are used, no prompt
    ip.run_line_magic("mixpeek_auth", "")
    assert session.current().base_url == local_server.base_url
    ip.run_line_magic("mixpeek_auth", "--logout")
    assert not path.exists()


def test_argument_beats_env_beats_saved(ip, local_server, monkeypatch):
    other = local_server.create_organization("other")
    session.save_key("sk_test_saved_but_wrong_000000", local_server.base_url)
    monkeypatch.setenv("MIXPEEK_API_KEY", other)
    ip.run_line_magic("mixpeek_auth", f"--base-url {local_server.base_url}")
    assert session.current().organization_name == "other"
    ip.run_line_magic("mixpeek_auth", f"{local_server.api_key} --base-url {local_server.base_url}")
    assert session.current().organization_name == "default"


def test_rejected_key_is_one_line_and_keeps_previous_session(ip, signed_in, capsys):
    before = session.current()
    bad = "sk_test_" + "z" * 40
    err, text = _one_line_error(ip, f"%mixpeek_auth {bad} --base-url {signed_in.base_url}", capsys)
    assert isinstance(err, session.AuthError)
    assert "rejected" in str(err) and "401" in str(err)
    assert bad not in text and bad not in str(err)
    assert f"sk_...{bad[-4:]}" in str(err)
    assert len(err._render_traceback_()) == 1
    assert session.current() is before


def test_unreachable_server_fails_fast(ip, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    err, text = _one_line_error(ip, f"%mixpeek_auth sk_test_{'a' * 30} --base-url http://127.0.0.1:{port}", capsys)
    assert time.monotonic() - t0 < 8
    assert isinstance(err, session.AuthError) and "cannot reach" in str(err)
    assert "sk_test_aaaa" not in text


class _Html(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        body = b"<html><body>Welcome to nginx</body></html>"
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("status, expected", [(200, "did not answer JSON"), (404, "404 Not Found")])
def test_wrong_url_is_a_clear_error(ip, capsys, status, expected):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    srv.status = status
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        err, _ = _one_line_error(
            ip, f"%mixpeek_auth sk_test_{'b' * 30} --base-url http://127.0.0.1:{srv.server_address[1]}", capsys
        )
    finally:
        srv.shutdown()
        srv.server_close()
    assert isinstance(err, session.AuthError)
    assert "is not a Mixpeek API" in str(err) and expected in str(err) and "--base-url" in str(err)


@pytest.mark.parametrize("env", [{}, {"CI": "true"}, {"MIXPEEK_MAGICS_HEADLESS": "1"}])
def test_headless_never_prompts(ip, monkeypatch, capsys, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # pytest's stdin is not a TTY and this is not a kernel: nobody can answer a prompt
    err, text = _one_line_error(ip, "%mixpeek_auth", capsys)
    assert isinstance(err, session.HeadlessError)
    assert "MIXPEEK_API_KEY" in str(err)


def test_unknown_namespace_lists_available_then_create(ip, local_server, monkeypatch, capsys):
    monkeypatch.setenv("MIXPEEK_API_KEY", local_server.api_key)
    ip.run_line_magic("mixpeek_auth", f"--base-url {local_server.base_url} --namespace alpha --create-namespace")
    err, _ = _one_line_error(ip, f"%mixpeek_auth --base-url {local_server.base_url} --namespace beta", capsys)
    assert "namespace 'beta' not found" in str(err) and "'alpha'" in str(err) and "--create-namespace" in str(err)
    assert session.current().namespace_name == "alpha"  # unchanged
    ip.run_line_magic("mixpeek_auth", f"--base-url {local_server.base_url} --namespace beta --create-namespace")
    assert session.current().namespace_name == "beta"
    # by id works too
    ns_id = session.current().namespace_id
    ip.run_line_magic("mixpeek_auth", f"--base-url {local_server.base_url} --namespace {ns_id}")
    assert session.current().namespace_name == "beta"


def test_default_namespace_from_config(ip, local_server, monkeypatch):
    monkeypatch.setenv("MIXPEEK_API_KEY", local_server.api_key)
    ip.run_line_magic("mixpeek_auth", f"--base-url {local_server.base_url} --namespace cfgns --create-namespace")
    ip.run_line_magic("config", "MixpeekMagics.default_namespace = 'cfgns'")
    session.sign_out()
    ip.run_line_magic("mixpeek_auth", f"--base-url {local_server.base_url}")
    assert session.current().namespace_name == "cfgns"


def test_local_starts_and_reuses_embedded_server(ip, capsys):
    try:
        ip.run_line_magic("mixpeek_auth", "--local --namespace demo --create-namespace")
        first = session.current()
        assert first.key_kind == "local" and first.local
        assert "local key" in capsys.readouterr().out
        ip.run_line_magic("mixpeek_auth", "--local --namespace demo")
        assert session.current().base_url == first.base_url
        assert session.local_server().running
        with pytest.raises(UsageError):
            ip.run_line_magic("mixpeek_auth", "--local --base-url http://127.0.0.1:1")
    finally:
        session.sign_out()
        session.stop_local_server()


def test_bad_arguments_are_usage_errors_without_the_key(ip, capsys):
    key2 = "sk_test_" + "q" * 30
    res = ip.run_cell(f"%mixpeek_auth sk_test_{'p' * 30} {key2}")
    assert isinstance(res.error_in_exec, UsageError)
    assert key2 not in str(res.error_in_exec)
    out = capsys.readouterr()
    assert key2 not in out.out + out.err


def test_help_has_examples_for_every_magic(ip):
    for kind, name, must in [
        ("line", "mixpeek_auth", "--local"),
        ("cell", "ingest", "--dry-run"),
        ("line", "mixpeek_watch", "--unfinished"),
        ("line", "mixpeek_tasks", "--since"),
        ("line", "mixpeek_connect", "Example"),
        ("line", "mixpeek_connections", "--provider"),
    ]:
        fn = ip.find_magic(name, kind)
        assert fn is not None, name
        doc = fn.__doc__
        assert "Example" in doc and must in doc, name
    info = ip.object_inspect("%mixpeek_auth")
    assert info["found"] and "--create-namespace" in info["docstring"]


def test_config_options(ip):
    ip.run_line_magic("config", "MixpeekMagics.concurrency = 3")
    ip.run_line_magic("config", "MixpeekMagics.default_bucket = 'shots'")
    ip.run_line_magic("config", "MixpeekMagics.widgets = False")
    ip.run_line_magic("config", "MixpeekMagics.poll_max_interval = 5.0")
    opts = options.current()
    assert (opts.concurrency, opts.default_bucket, opts.widgets, opts.poll_max_interval) == (3, "shots", False, 5.0)
    assert opts.display_mode() == "text" and opts.poll_policy().maximum == 5.0
    assert any(type(c).__name__ == "MixpeekMagics" for c in ip.configurables)
    ip.run_cell("%config MixpeekMagics.concurrency = 0")  # IPython logs the TraitError
    assert options.current().concurrency == 3
