"""Fixtures for the magics: a real IPython shell with the extension loaded, signed in to a local server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.shell import magics_shell, sign_in


@pytest.fixture
def ip(monkeypatch) -> Iterator[Any]:
    with magics_shell(monkeypatch, ("res", "plan", "df", "h_")) as shell:
        yield shell


@pytest.fixture
def signed_in(ip, local_server, monkeypatch, tmp_path) -> Any:
    """Signed in to ``local_server`` in namespace ``demo``; cwd is a temp dir."""
    sign_in(ip, local_server, monkeypatch, tmp_path, "demo")
    return local_server


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def http_files(tmp_path) -> Iterator[tuple[str, Path]]:
    """A static file server on 127.0.0.1 (for URL sources): (base url, its directory)."""
    root = tmp_path / "served"
    root.mkdir()

    def handler(*a: Any, **kw: Any) -> Any:
        return _Quiet(*a, directory=str(root), **kw)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", root
    srv.shutdown()
    srv.server_close()


def posts(server: Any, since: int = 0, contains: str = "") -> list[tuple[str, str]]:
    return [(m, p) for m, p in server.request_log[since:] if m != "GET" and contains in p]
