"""Names of buckets and namespaces that survive a round trip.

A name is also how the resource is found again (``GET /v1/buckets/{name}``), so a name
the URL path cannot carry back (``/``, a leading or trailing space, control characters)
would be created and then never found. ``check_name`` refuses those before anything is sent.
"""

from __future__ import annotations

import re

__all__ = ["NAME_RULE", "check_name"]

# letters, digits, "_", "-", "." and inner spaces; starts with a letter or digit
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")
NAME_RULE = "letters, digits, '_', '-', '.' and inner spaces, starting with a letter or digit"
_LIMITS = {"bucket": (1, 255), "namespace": (3, 64)}  # the namespace's are the contract's


def check_name(name: object, kind: str) -> str:
    """``name`` if it can be created and found again, else ``ValueError`` saying why."""
    low, high = _LIMITS.get(kind, (1, 255))
    if not isinstance(name, str):
        raise ValueError(f"{kind} name must be a string (got {type(name).__name__})")
    if not low <= len(name) <= high:
        raise ValueError(f"{kind} name {name!r} must be {low} to {high} characters long (got {len(name)})")
    if name != name.strip() or not _NAME.match(name):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9_.\- ]", c)})
        why = f" ({', '.join(repr(c) for c in bad)} cannot be used)" if bad else ""
        raise ValueError(
            f"{kind} name {name!r} is not usable{why}: use {NAME_RULE}; "
            f"a name is also how the {kind} is found again in URLs"
        )
    return name
