"""Reading the tracking journal for the frames: one dict lookup per task."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def open_journal(journal: Any, *, create: bool = False) -> Any | None:
    """``journal`` as a ``tracking.Journal``: ``None`` is the default journal
    (``_paths.journal_path()``), a str/Path a journal file; an object with a
    ``tasks()`` method is used as is. Returns None when the file does not exist
    (reading never creates a journal as a side effect) unless ``create``."""
    from mixpeek_magics.tracking.journal import Journal

    if journal is None:
        from mixpeek_magics import _paths

        journal = _paths.journal_path()
    if isinstance(journal, (str, Path)):
        path = Path(journal).expanduser()
        if not create and not path.exists():
            return None
        return Journal(path)
    if not hasattr(journal, "tasks"):
        raise TypeError(f"journal must be a tracking.Journal or a path, got {type(journal).__name__}")
    return journal


def format_provenance(prov: Any) -> str | None:
    """``{"notebook": "a.ipynb", "cell": 12, "source": "%%ingest ..."}`` ->
    ``"a.ipynb [12] %%ingest ..."`` (first source line); a plain string is kept;
    a ``{"provenance": {...}}`` wrapper is looked into."""
    if prov is None:
        return None
    if type(prov) is not dict:
        if isinstance(prov, str):
            return prov or None
        if not isinstance(prov, Mapping):
            return str(prov)
    get = prov.get
    inner = get("provenance")
    if inner is not None and isinstance(inner, (dict, str, Mapping)):
        return format_provenance(inner)
    explicit = get("source_cell")
    if isinstance(explicit, str):
        return explicit
    parts = []
    nb = get("notebook")
    if nb:
        parts.append(str(nb))
    cell = get("cell")
    if cell is None:
        cell = get("execution_count")
    if cell is not None and cell != "":
        parts.append(f"[{cell}]")
    src = get("source") or get("line")
    if src:
        src = str(src).strip()
        if "\n" in src:
            src = src.split("\n", 1)[0].rstrip() + " ..."
        parts.append(src)
    return " ".join(parts) or None


class JournalIndex:
    """The journal's per-task times as arrays, for a vectorised join.

    ``pos[task_id]`` is the row of that task in ``first_seen`` / ``started`` /
    ``finished`` (int64 epoch ns, NaT as -2**63), ``cells`` (object array of
    provenance text or None) and the last observed ``processed`` / ``total`` /
    ``percentage`` (float64, NaN when unknown) and sync id.
    """

    __slots__ = (
        "pos",
        "first_seen",
        "started",
        "finished",
        "cells",
        "has_cells",
        "cell_codes",
        "cell_values",
        "processed",
        "total",
        "percentage",
        "syncs",
    )

    def __init__(
        self, pos, first_seen, started, finished, cells, processed=None, total=None, percentage=None, syncs=None
    ) -> None:
        import numpy as np

        self.pos = pos
        self.first_seen = first_seen
        self.started = started
        self.finished = finished
        n = len(first_seen)
        nan = np.full(n, np.nan)
        self.processed = nan if processed is None else np.asarray(processed, dtype=np.float64)
        self.total = nan.copy() if total is None else np.asarray(total, dtype=np.float64)
        self.percentage = nan.copy() if percentage is None else np.asarray(percentage, dtype=np.float64)
        self.syncs = np.full(n, None, dtype=object) if syncs is None else np.fromiter(syncs, dtype=object, count=n)
        cells = list(cells)
        self.has_cells = cells.count(None) != len(cells)
        self.cells = np.fromiter(cells, dtype=object, count=len(cells))
        # few distinct cells (one per notebook cell): codes into the distinct values
        values = [c for c in dict.fromkeys(cells) if c is not None]
        code = {c: k for k, c in enumerate(values)}
        code[None] = -1
        self.cell_values = values
        self.cell_codes = np.fromiter(map(code.__getitem__, cells), dtype=np.intp, count=len(cells))

    def __len__(self) -> int:
        return len(self.pos)

    def observed(self, rows, hit=None):
        """The journal's last observed processed / total (Int64), percentage
        (Float64) and sync id (str) at ``rows`` (``hit``: which rows are real)."""
        import numpy as np
        import pandas as pd

        from mixpeek_magics.frames import _schema

        def gather(values):
            out = values[rows]
            if hit is not None:
                out = np.where(hit, out, np.nan)
            return out

        def ints(values):
            missing = np.isnan(values)
            return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)

        processed, total, percentage = gather(self.processed), gather(self.total), gather(self.percentage)
        syncs = self.syncs[rows]
        if hit is not None:
            syncs = np.where(hit, syncs, None)
        return (
            ints(processed),
            ints(total),
            pd.arrays.FloatingArray(np.where(np.isnan(percentage), 0.0, percentage), np.isnan(percentage)),
            _schema.str_array(list(syncs)),
        )

    @classmethod
    def empty(cls) -> JournalIndex:
        import numpy as np

        z = np.empty(0, dtype=np.int64)
        return cls({}, z, z, z, [])

    @classmethod
    def from_rows(cls, rows: list[Mapping[str, Any]]) -> JournalIndex:
        """From dicts with task_id, first_seen, started, finished (ISO text,
        datetimes or None) and optional context / source_cell."""
        import numpy as np

        if not rows:
            return cls.empty()
        pos = {r["task_id"]: k for k, r in enumerate(rows)}
        cells = []
        memo: dict = {}  # many tasks share one cell's context: format each once
        for r in rows:
            cell = r.get("source_cell")
            ctx = r.get("context")
            if cell is None and ctx and (type(ctx) is dict or isinstance(ctx, Mapping)) and _has_provenance(ctx):
                key = None
                if "provenance" not in ctx:
                    key = tuple(map(ctx.get, _PROVENANCE_KEYS))
                    try:
                        cell = memo.get(key, memo)
                    except TypeError:  # unhashable values
                        key, cell = None, memo
                    if cell is not memo:
                        cells.append(cell)
                        continue
                cell = format_provenance(ctx)
                if key is not None:
                    memo[key] = cell
            cells.append(cell)
        return cls(
            pos,
            np.asarray(_to_ns([r.get("first_seen") for r in rows]), dtype=np.int64),
            np.asarray(_to_ns([r.get("started") for r in rows]), dtype=np.int64),
            np.asarray(_to_ns([r.get("finished") for r in rows]), dtype=np.int64),
            cells,
            [_num(r.get("processed")) for r in rows],
            [_num(r.get("total")) for r in rows],
            [_num(r.get("percentage")) for r in rows],
            [r.get("sync_config_id") for r in rows],
        )


def journal_index(journal: Any, base_url: str | None = None) -> JournalIndex:
    """One read of the journal (``journal.tasks()``) as a :class:`JournalIndex`.
    When a task id was journaled against several servers, the row of
    ``base_url`` wins."""
    if journal is None:
        return JournalIndex.empty()
    if isinstance(journal, JournalIndex):
        return journal
    rows = journal.tasks()
    base = (base_url or "").strip().rstrip("/")
    keep: dict[str, Mapping] = {}
    for row in rows:
        tid = row.get("task_id")
        if tid is None:
            continue
        prev = keep.get(tid)
        if prev is not None and ((prev.get("base_url") or "") == base or (row.get("base_url") or "") != base):
            continue
        keep[tid] = row
    return JournalIndex.from_rows(list(keep.values()))


def _num(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _to_ns(values: list) -> list:
    """ISO text / datetimes / None -> epoch ns ints, NaT as -2**63 (one vectorised parse)."""
    import pandas as pd

    try:
        parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    except (TypeError, ValueError):
        parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="mixed", errors="coerce")
    ns = parsed.dt.as_unit("ns").array.asi8.tolist()
    return ns


_PROVENANCE_KEYS = ("source_cell", "notebook", "cell", "execution_count", "source", "line")


def _has_provenance(ctx: Mapping) -> bool:
    return "provenance" in ctx or any(k in ctx for k in _PROVENANCE_KEYS)
