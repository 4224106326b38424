"""Root fixtures: isolation from the user's files, and local servers.

* Session-wide (autouse): ``MIXPEEK_MAGICS_DATA_DIR``, ``MIXPEEK_MAGICS_CONFIG_DIR``,
  ``MIXPEEK_JOURNAL_PATH`` and ``MIXPEEK_LOCAL_DATA_DIR`` point at temp dirs and
  ``MIXPEEK_API_KEY``, ``MIXPEEK_BASE_URL``, ``MIXPEEK_NAMESPACE`` are removed, so
  tests never touch the user's configuration, journal or server data.
* ``local_server``: a fresh LocalServer per test (data in ``tmp_path``), started
  over real HTTP on 127.0.0.1.
* The contract report (tests/contract_report.py): a summary line of what every local
  server's contract middleware saw, and a failed session on any response violation.
* ``local_server_factory(settings=None, data_dir=None, **setting_fields)``: start
  several servers, or restart one on the same ``data_dir``; all are stopped at
  the end of the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The session's contract report: every local server's stats, one summary line, and a
# failed session when an answer broke its contract schema (see tests/contract_report.py).
from tests.contract_report import (  # noqa: F401
    EXCEPT_PID_ENV,
    REPORT_ENV,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
)

_REMOVED_ENV = ("MIXPEEK_API_KEY", "MIXPEEK_BASE_URL", "MIXPEEK_NAMESPACE")


@pytest.fixture(autouse=True, scope="session")
def _isolate_user_files(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("mixpeek-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MIXPEEK_MAGICS_DATA_DIR", str(home / "data"))
    mp.setenv("MIXPEEK_MAGICS_CONFIG_DIR", str(home / "config"))
    mp.setenv("MIXPEEK_JOURNAL_PATH", str(home / "data" / "journal.sqlite3"))
    mp.setenv("MIXPEEK_LOCAL_DATA_DIR", str(home / "local-server"))
    for name in _REMOVED_ENV:
        mp.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("MIXPEEK_LOCAL_") and name not in ("MIXPEEK_LOCAL_DATA_DIR", REPORT_ENV, EXCEPT_PID_ENV):
            mp.delenv(name, raising=False)
    yield home
    mp.undo()


@pytest.fixture
def local_server_factory(tmp_path: Path) -> Callable[..., Any]:
    from mixpeek_magics.local import LocalServer, LocalSettings

    servers: list[LocalServer] = []

    def factory(
        settings: LocalSettings | None = None, data_dir: str | Path | None = None, **setting_fields: Any
    ) -> LocalServer:
        if settings is None:
            settings = LocalSettings(**setting_fields)
        elif setting_fields:
            settings = settings.replace(**setting_fields)
        if data_dir is None:
            data_dir = tmp_path / f"local-server-{len(servers)}"
        srv = LocalServer(data_dir=data_dir, port=0, settings=settings)
        servers.append(srv)
        return srv.start()

    yield factory
    for srv in reversed(servers):
        srv.stop()


@pytest.fixture
def local_server(local_server_factory):
    return local_server_factory()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "invalid_request: sends a request the contract refuses on purpose (not checked by the "
        "request recorder of tests/fixtures/request_recorder.py)",
    )
