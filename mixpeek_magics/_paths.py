"""Where mixpeek-magics keeps files on this machine.

Every location can be overridden by an environment variable so tests, CI and
several kernels can be pointed at throw-away directories.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "mixpeek-magics"


def _platform_dir(kind: str) -> Path:
    import platformdirs

    if kind == "data":
        return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """Root for the journal, the local server's data and other state."""
    env = os.environ.get("MIXPEEK_MAGICS_DATA_DIR")
    return Path(env).expanduser() if env else _platform_dir("data")


def config_dir() -> Path:
    """Root for user configuration such as a saved API key (``--save``)."""
    env = os.environ.get("MIXPEEK_MAGICS_CONFIG_DIR")
    return Path(env).expanduser() if env else _platform_dir("config")


def local_server_dir() -> Path:
    """Default data directory of the embedded local server."""
    env = os.environ.get("MIXPEEK_LOCAL_DATA_DIR")
    return Path(env).expanduser() if env else data_dir() / "local-server"


def journal_path() -> Path:
    """SQLite file of the task timeline journal."""
    env = os.environ.get("MIXPEEK_JOURNAL_PATH")
    return Path(env).expanduser() if env else data_dir() / "journal.sqlite3"
