"""Parsing of ``since`` / ``until`` values: relative spans, ISO text, datetimes."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*(?:ago)?\s*$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_when(value: Any, *, name: str = "since", now: datetime | None = None) -> datetime | None:
    """A point in time as an aware UTC datetime.

    Accepts ``None``; relative spans back from now such as ``"30m"``, ``"2h"``,
    ``"1d"``, ``"1w"``, ``"90 seconds"`` or a ``timedelta``; ISO 8601 text
    (``"2024-05-01"``, ``"2024-05-01T12:00:00Z"``); ``datetime``/``date`` and
    pandas ``Timestamp`` objects; epoch seconds as int/float. Naive values are
    taken as UTC (the journal records UTC).
    """
    if value is None:
        return None
    now = now or utcnow()
    if isinstance(value, timedelta):
        return now - value
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a datetime, an ISO timestamp or a span like '2h', got {value!r}")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc)
    if isinstance(value, datetime):  # includes pandas.Timestamp
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        m = _RELATIVE.match(text)
        if m:
            unit = m.group(2).lower()
            if unit not in _UNITS:
                raise ValueError(
                    f"{name}={value!r}: unknown unit {m.group(2)!r}; use s, m, h, d or w (e.g. '30m', '2h', '1d')"
                )
            return now - timedelta(seconds=float(m.group(1)) * _UNITS[unit])
        iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
        try:
            dt = datetime.fromisoformat(iso)
        except ValueError:
            raise ValueError(
                f"{name}={value!r} is not understood: use a span back from now like '30m', '2h', '1d', "
                "an ISO timestamp like '2024-05-01T12:00:00Z', or a datetime"
            ) from None
    else:
        raise TypeError(
            f"{name}: expected a datetime, an ISO timestamp or a span like '2h', got {type(value).__name__}"
        )
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def to_ns(value: Any) -> int | None:
    """Epoch nanoseconds of a datetime / ISO string / epoch-seconds number, or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        # exact integer arithmetic (no float rounding of microseconds)
        delta = dt - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(round(float(value) * 1e6)) * 1000
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
        try:
            return to_ns(datetime.fromisoformat(iso))
        except ValueError:
            return None
    ts = getattr(value, "value", None)  # pandas Timestamp
    return int(ts) if isinstance(ts, int) else None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
