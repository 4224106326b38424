"""The IPython magics: ``%load_ext mixpeek_magics`` registers all of them.

* ``%mixpeek_auth``        sign in (key / env / saved key / prompt / ``--local``)
* ``%%ingest``             files, URLs, S3 and Google Drive folders into a bucket
* ``%mixpeek_watch``       live board for existing tasks (``--unfinished`` after a restart)
* ``%mixpeek_tasks``       the task history DataFrame
* ``%mixpeek_connect``     the storage-connection form
* ``%mixpeek_connections`` the connections DataFrame with actions
* ``%mixpeek_search``      search a collection; the hits as a gallery
* ``%mixpeek_documents``   a collection's documents as a DataFrame with thumbnails
* ``%config MixpeekMagics.<option>`` their settings

Each magic's ``%name?`` shows its help with examples.
"""

from __future__ import annotations

from typing import Any

from mixpeek_magics._extras import require

# Every magic module imports IPython and traitlets at its top.
require("notebook", "IPython", "traitlets")

from IPython.core.magic import Magics  # noqa: E402 - after the check, for a clear error

__all__ = ["load_ipython_extension", "unload_ipython_extension", "MAGIC_CLASSES"]


def _classes() -> list[type[Magics]]:
    from mixpeek_magics.notebook.magics.auth import AuthMagics
    from mixpeek_magics.notebook.magics.connections import ConnectionMagics
    from mixpeek_magics.notebook.magics.ingest import IngestMagics
    from mixpeek_magics.notebook.magics.search import SearchMagics
    from mixpeek_magics.notebook.magics.tasks import TaskMagics

    return [AuthMagics, IngestMagics, TaskMagics, ConnectionMagics, SearchMagics]


MAGIC_CLASSES = ("AuthMagics", "IngestMagics", "TaskMagics", "ConnectionMagics", "SearchMagics")


def load_ipython_extension(ipython: Any) -> None:
    from mixpeek_magics.notebook.magics import options

    options.install(ipython)
    for cls in _classes():
        ipython.register_magics(cls)


def unload_ipython_extension(ipython: Any) -> None:
    from mixpeek_magics.notebook.magics import options

    manager = ipython.magics_manager
    for cls in _classes():
        instance = manager.registry.get(cls.__name__)
        for kind, names in (cls.magics or {}).items():
            for name in names:
                manager.magics.get(kind, {}).pop(name, None)
        if instance is not None:
            manager.registry.pop(cls.__name__, None)
    options.uninstall(ipython)
