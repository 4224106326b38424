"""Optional dependencies: one clear error naming the extra that installs them.

``require("local", "fastapi", "uvicorn")`` raises ``MissingDependencyError``
(an ``ImportError``) when one of the modules cannot be found, e.g.::

    MissingDependencyError: No module named 'fastapi': it is needed for the embedded local
    server (%mixpeek_auth --local, LocalServer). Install it with: pip install "mixpeek-magics[local]"

It only looks modules up (``importlib.util.find_spec``), it imports none, so a
check costs microseconds and importing a package stays light.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["EXTRAS", "MissingDependencyError", "install_command", "require"]

DIST = "mixpeek-magics"

# extra -> what it brings (the README's Install section says the same)
EXTRAS = {
    "local": "the embedded local server (%mixpeek_auth --local, LocalServer)",
    "notebook": "the notebook magics, widgets and DataFrames",
    "plot": "plots",
    "all": "everything",
}


def install_command(extra: str) -> str:
    # Quoted: zsh would expand the brackets of an unquoted mixpeek-magics[local].
    return f'pip install "{DIST}[{extra}]"'


class MissingDependencyError(ImportError):
    """An optional dependency is missing; the message names it, the extra and the install command.

    ``reason``: why an installed module cannot be imported (a broken install), if so.
    """

    def __init__(self, module: str, extra: str, reason: str | None = None) -> None:
        self.module = module
        self.extra = extra
        self.command = install_command(extra)
        what = EXTRAS.get(extra, f"the {extra!r} extra")
        problem = f"No module named {module!r}" if reason is None else f"{module!r} cannot be imported ({reason})"
        super().__init__(f"{problem}: it is needed for {what}. Install it with: {self.command}", name=module)

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback through the library: one short block.
        return [f"{type(self).__name__}: {self}"]


def _missing(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is None  # None: an import of it was blocked on purpose
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a missing parent package, or a broken module spec
        return True


def require(extra: str, *modules: str) -> None:
    """Raise ``MissingDependencyError`` for the first of ``modules`` that is not installed."""
    for module in modules:
        if _missing(module):
            raise MissingDependencyError(module, extra)
