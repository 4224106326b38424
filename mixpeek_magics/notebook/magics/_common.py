"""Helpers shared by the magics: argument parsing that never echoes a key, provenance."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring

_KEY_RE = re.compile(r"sk_[A-Za-z0-9_\-]{4,}")


def scrub_keys(text: str) -> str:
    """Replace anything that looks like an API key by its mask (``sk_...abcd``)."""
    from mixpeek_magics.client.errors import redact_key

    return _KEY_RE.sub(lambda m: redact_key(m.group(0)), text)


def parse(magic: Callable[..., Any], line: str) -> Any:
    """``parse_argstring`` whose UsageError never contains an API key typed on the line."""
    try:
        args = parse_argstring(magic, line)
    except UsageError as exc:
        raise UsageError(scrub_keys(str(exc))) from None
    except SystemExit:  # argparse on --help and friends
        raise UsageError(f"bad arguments; see %{magic.__name__}?") from None
    # IPython splits the line non-POSIX style: quotes stay on the values. Take them off.
    for name, value in vars(args).items():
        if isinstance(value, str):
            setattr(args, name, unquote(value))
        elif isinstance(value, list):
            setattr(args, name, [unquote(v) if isinstance(v, str) else v for v in value])
    return args


def summarize(lines: list[str], limit: int = 20, indent: str = "  ", more_hint: str = "") -> str:
    """The first ``limit`` lines, then one "... and N more" line: a long list stays readable."""
    shown = [indent + line for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"{indent}... and {len(lines) - limit} more{more_hint}")
    return "\n".join(shown)


def strict_args(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--strict`` / ``--no-strict`` on a waiting magic (default: ``%config MixpeekMagics.strict``)."""
    from IPython.core.magic_arguments import argument

    func = argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="Only warn about partly failed, unknown or vanished work (interactive default).",
    )(func)
    return argument(
        "--strict",
        dest="strict",
        action="store_true",
        default=None,
        help="Raise (after binding -o VAR) when work ended with errors, or a task is unknown "
        "or vanished (default when headless: %%config MixpeekMagics.strict).",
    )(func)


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def user_var(shell: Any, name: str, what: str) -> Any:
    if not name.isidentifier():
        raise UsageError(f"{what}: {name!r} is not a Python variable name")
    try:
        return shell.user_ns[name]
    except KeyError:
        raise UsageError(f"{what}: no variable named {name!r} in the notebook") from None


def bind(shell: Any, name: str | None, value: Any) -> None:
    if not name:
        return
    if not name.isidentifier():
        raise UsageError(f"-o: {name!r} is not a valid Python variable name")
    shell.user_ns[name] = value


def notebook_path(shell: Any) -> str | None:
    """The notebook file where known (VS Code, Jupyter server env, or the kernel's session)."""
    ns = getattr(shell, "user_ns", {}) or {}
    for candidate in (ns.get("__vsc_ipynb_file__"), os.environ.get("JPY_SESSION_NAME")):
        if isinstance(candidate, str) and candidate:
            return candidate
    kernel = getattr(shell, "kernel", None)
    session = getattr(kernel, "session", None)
    for attr in ("notebook_path", "path"):
        value = getattr(session, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def provenance(shell: Any, magic_line: str) -> dict[str, Any]:
    """Where a batch / task came from: notebook, cell execution count, magic line."""
    cell = getattr(shell, "execution_count", None)
    return {
        "notebook": notebook_path(shell),
        "cell": cell,
        "source": scrub_keys(magic_line.strip())[:500],
        "client": "mixpeek-magics",
    }
