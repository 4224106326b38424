"""Column names and dtypes of the task history frame, and small array helpers.

pandas is imported inside the functions only (``import mixpeek_magics.frames``
stays light).
"""
from __future__ import annotations

from itertools import repeat
from typing import Any, Sequence

from mixpeek_magics.client import statuses

NAT = -(2**63)  # numpy's NaT as int64

#: column -> dtype name ("status" is the lifecycle Categorical)
TASK_COLUMNS: dict[str, str] = {
    "task_id": "str",
    "task_type": "str",
    "status": "category",
    "is_terminal": "bool",
    "first_seen": "datetime64[ns, UTC]",
    "started": "datetime64[ns, UTC]",
    "finished": "datetime64[ns, UTC]",
    "duration": "timedelta64[ns]",
    "processed": "Int64",
    "total": "Int64",
    "percentage": "Float64",
    "error": "str",
    "batch_id": "str",
    "bucket_id": "str",
    "namespace_id": "str",
    "sync_config_id": "str",
    "source_cell": "str",
    "inputs_count": "Int64",
    "outputs_count": "Int64",
}

TIMELINE_COLUMNS: dict[str, str] = {
    "observed_at": "datetime64[ns, UTC]",
    "status": "category",
    "processed": "Int64",
    "total": "Int64",
    "percentage": "Float64",
    "error": "str",
}


def status_categorical(values: Sequence[Any]):
    """A Categorical of statuses in lifecycle order; unknown values are kept
    as extra categories after the known ones (in order of appearance).
    ``None`` counts as UNKNOWN."""
    import numpy as np
    import pandas as pd

    order = list(statuses.LIFECYCLE_ORDER)
    index = {s: i for i, s in enumerate(order)}
    try:
        codes = np.array(list(map(index.get, values, repeat(-2))), dtype=np.int32)
    except TypeError:  # an unhashable status value: use its text
        values = [None if v is None else statuses.normalize(v) for v in values]
        codes = np.array(list(map(index.get, values, repeat(-2))), dtype=np.int32)
    bad = np.flatnonzero(codes == -2)
    if len(bad):
        codes, order = _add_unknown(values, codes, bad, order, index)
    return pd.Categorical.from_codes(codes, categories=order, ordered=True)


def _add_unknown(values, codes, bad, order, index):
    order = list(order)
    for i in bad.tolist():
        v = values[i]
        key = statuses.normalize(v)
        code = index.get(key)
        if code is None:
            code = index[key] = len(order)
            order.append(key)
        codes[i] = code
    return codes, order


def _missing_str(n: int):
    import numpy as np
    import pandas as pd

    return pd.array(np.array([], dtype=object), dtype="str").take(np.full(n, -1, dtype=np.intp), allow_fill=True)


def str_array(values: Sequence[Any]):
    """pandas' ``str`` dtype. Missing values are handled apart: converting them
    one by one is the slow part of pandas' own conversion."""
    import numpy as np
    import pandas as pd

    if isinstance(values, np.ndarray):
        obj = values if values.dtype == object else values.astype(object)
        is_none = obj == None  # noqa: E711 (elementwise)
        n, missing, values = len(obj), int(is_none.sum()), obj
    else:
        values = values if isinstance(values, list) else list(values)
        n, missing, obj, is_none = len(values), values.count(None), None, None
    try:
        if missing == 0:
            return pd.array(values, dtype="str")
        if missing == n:
            return _missing_str(n)
        if obj is None:
            obj = np.fromiter(values, dtype=object, count=n)
            is_none = obj == None  # noqa: E711 (elementwise)
        present = np.flatnonzero(~is_none)
        sub = pd.array(obj[present], dtype="str")
        take = np.full(n, -1, dtype=np.intp)
        take[present] = np.arange(len(present), dtype=np.intp)
        return sub.take(take, allow_fill=True)
    except (TypeError, ValueError):
        return pd.array([None if v is None else str(v) for v in list(values)], dtype="str")


def _numeric(values: Sequence[Any]):
    """Plain int/float values without None as a numpy array, else None (slow path)."""
    import numpy as np

    if not isinstance(values, list) or not values:
        return None
    try:
        arr = np.array(values)  # with a None in it this is an object array: slow path
    except (TypeError, ValueError, OverflowError):
        return None
    return arr if arr.ndim == 1 and arr.dtype.kind in "iuf" else None


def int_array(values: Sequence[Any]):
    import numpy as np
    import pandas as pd

    arr = _numeric(values)
    if arr is not None and arr.dtype.kind in "iu":
        return pd.arrays.IntegerArray(arr.astype(np.int64, copy=False), np.zeros(len(arr), dtype=bool))
    try:
        return pd.array(values, dtype="Int64")
    except (TypeError, ValueError):
        return pd.array(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").round(), dtype="Int64")


def float_array(values: Sequence[Any]):
    import numpy as np
    import pandas as pd

    arr = _numeric(values)
    if arr is not None:
        return pd.arrays.FloatingArray(arr.astype(np.float64, copy=False), np.zeros(len(arr), dtype=bool))
    try:
        return pd.array(values, dtype="Float64")
    except (TypeError, ValueError):
        return pd.array(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype="Float64")


def datetime_array(ns_values):
    """int64 epoch-ns (NAT for missing) -> tz-aware UTC datetime array."""
    import numpy as np
    import pandas as pd

    arr = np.asarray(ns_values, dtype=np.int64).view("M8[ns]")
    return pd.DatetimeIndex(arr).tz_localize("UTC").array


def timedelta_array(ns_values):
    import numpy as np
    import pandas as pd

    return pd.array(np.asarray(ns_values, dtype=np.int64).view("m8[ns]"), dtype="timedelta64[ns]")


def empty_frame(columns: dict[str, str]):
    import pandas as pd

    data = {}
    for name, dtype in columns.items():
        if dtype == "category":
            data[name] = status_categorical([])
        elif dtype.startswith("datetime64"):
            data[name] = datetime_array([])
        elif dtype.startswith("timedelta64"):
            data[name] = timedelta_array([])
        else:
            data[name] = pd.array([], dtype=dtype)
    return pd.DataFrame(data)
