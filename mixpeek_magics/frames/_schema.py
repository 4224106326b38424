"""Column names and dtypes of the task history frame, and small array helpers.

pandas is imported inside the functions only (``import mixpeek_magics.frames``
stays light).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from mixpeek_magics.client import statuses

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

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
    values = values if hasattr(values, "__len__") else list(values)
    column = StatusColumn(len(values))
    column.add(0, values)
    return column.categorical()


class StatusColumn:
    """The status codes of ``status_categorical``, filled chunk by chunk.

    Unknown values get their category at their first appearance; later chunks
    find it in ``index`` (the same code the one-shot pass gives them)."""

    def __init__(self, n: int) -> None:
        import numpy as np

        self.order = list(statuses.LIFECYCLE_ORDER)
        self.index = {s: i for i, s in enumerate(self.order)}
        self.codes = np.empty(n, dtype=np.int32)

    def add(self, lo: int, values: Sequence[Any]) -> None:
        import numpy as np

        index, k = self.index, len(values)
        if k > 1:
            try:  # every status known (the usual case): the chunk in one C-level lookup
                self.codes[lo : lo + k] = np.fromiter(itemgetter(*values)(index), dtype=np.int32, count=k)
                return
            except (KeyError, TypeError):  # an unknown or unhashable status: one by one
                pass
        try:
            codes = np.fromiter(map(index.get, values, repeat(-2)), dtype=np.int32, count=k)
        except TypeError:  # an unhashable status value: use its text
            values = [None if v is None else statuses.normalize(v) for v in values]
            codes = np.fromiter(map(index.get, values, repeat(-2)), dtype=np.int32, count=k)
        bad = np.flatnonzero(codes == -2)
        if len(bad):
            _add_unknown(values, codes, bad, self.order, index)
        self.codes[lo : lo + k] = codes

    def categorical(self):
        import pandas as pd

        return pd.Categorical.from_codes(self.codes, categories=pd.Index(self.order), ordered=True)


def _add_unknown(values, codes, bad, order, index) -> None:
    """Codes for the values at ``bad`` by their normalized text; new texts
    are appended to ``order`` (and ``index``)."""
    for i in bad.tolist():
        v = values[i]
        key = statuses.normalize(v)
        code = index.get(key)
        if code is None:
            code = index[key] = len(order)
            order.append(key)
        codes[i] = code


def _missing_str(n: int):
    import numpy as np
    import pandas as pd

    return pd.array(np.array([], dtype=object), dtype="str").take(np.full(n, -1, dtype=np.intp), allow_fill=True)


def str_array(values: Sequence[Any]):
    """pandas' ``str`` dtype. Missing values are handled apart: converting them
    one by one is the slow part of pandas' own conversion."""
    import numpy as np

    if isinstance(values, np.ndarray):
        return _str_of_objects(values if values.dtype == object else values.astype(object))
    values = values if isinstance(values, list) else list(values)
    column = TextColumn(len(values))
    if values:
        column.add(0, values)
    return column.array()


def _str_of_objects(obj):
    """``str_array`` of an object array (None for missing)."""
    is_none = obj == None  # noqa: E711 (elementwise)
    missing = int(is_none.sum())
    try:
        if missing == 0:
            return _to_str(obj, copy=True)  # the caller's array: not shared
        if missing == len(obj):
            return _missing_str(len(obj))
        return _str_with_missing(obj, is_none)
    except (TypeError, ValueError):
        return _str_fallback(obj)


def _str_of_list(values: list):
    """``str_array`` of a list, the general way (``TextColumn`` is the fast
    way to the same result)."""
    import numpy as np
    import pandas as pd

    n, missing = len(values), values.count(None)
    try:
        if missing == 0:
            return pd.array(values, dtype="str")
        if missing == n:
            return _missing_str(n)
        obj = np.fromiter(values, dtype=object, count=n)
        return _str_with_missing(obj, obj == None)  # noqa: E711 (elementwise)
    except (TypeError, ValueError):
        return _str_fallback(values)


def _to_str(obj, copy: bool = False):
    """An object array without None as ``str``: one validating pass; no copy
    (unless asked) when every value is already text."""
    import pandas as pd

    return pd.array(obj, dtype="str", copy=copy)


def _str_with_missing(obj, is_none):
    """Only the present values go through pandas' conversion; the missing ones
    are filled in by ``take``."""
    import numpy as np

    present = np.flatnonzero(~is_none)
    sub = _to_str(obj[present])
    take = np.full(len(obj), -1, dtype=np.intp)
    take[present] = np.arange(len(present), dtype=np.intp)
    return sub.take(take, allow_fill=True)


class TextColumn:
    """A ``str`` column filled chunk by chunk: each chunk's values go into one
    object array while they are still in the CPU cache, with a mask and a count
    of the None among them, so the conversion at the end needs no other pass
    to find the missing values.

    Cheap tests settle most chunks: a chunk that starts with None is counted
    with ``list.count`` (fast on None; a chunk of None only is not copied at
    all: the arrays are made at the first value); otherwise all values truthy
    (``np.count_nonzero``) means no None, with no comparison per value. A
    value that cannot be tested (an array, ``pd.NA``) marks the column
    ``odd``: it then goes through ``_str_of_list`` at the end."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.obj: NDArray[np.object_] | None = None  # None where missing (made at the first value)
        self.none: NDArray[np.bool_] | None = None  # the None in obj (made with obj, unless odd)
        self.missing = 0
        self.odd = False

    def add(self, lo: int, values: list) -> None:
        import numpy as np

        k = len(values)
        hi = lo + k
        if not self.odd:
            try:
                if values[0] is None:
                    missing = values.count(None)
                    if missing == k:  # nothing to copy: obj holds None already
                        if self.none is not None:
                            self.none[lo:hi] = True
                        self.missing += k
                        return
                else:
                    missing = -1
                chunk = np.fromiter(values, dtype=object, count=k)
                if missing < 0:
                    missing = 0 if np.count_nonzero(chunk) == k else values.count(None)
                none = False if missing == 0 else chunk == None  # noqa: E711 (elementwise)
            except (TypeError, ValueError):
                self.odd = True
            else:
                obj, mask = self.obj, self.none
                if obj is None or mask is None:  # the first value (an odd column never comes here)
                    obj = self.obj = np.empty(self.n, dtype=object)  # None everywhere
                    mask = self.none = np.ones(self.n, dtype=bool)
                obj[lo:hi] = chunk
                mask[lo:hi] = none
                self.missing += missing
                return
        if self.obj is None:
            self.obj = np.empty(self.n, dtype=object)
        self.obj[lo:hi] = np.fromiter(values, dtype=object, count=k)

    def objects(self):
        """The values as an object array (None for missing)."""
        import numpy as np

        return self.obj if self.obj is not None else np.empty(self.n, dtype=object)

    def array(self, missing: MissingText | None = None):
        """The ``str`` array; ``missing`` hands out the all-missing arrays
        (one made, copies for the others)."""
        n = self.n
        if self.odd:
            return _str_of_list(self.objects().tolist())
        if self.missing == n:
            return missing.get() if missing is not None else _missing_str(n)
        obj = self.objects()
        try:
            if self.missing == 0:
                return _to_str(obj)
            return _str_with_missing(obj, self.none)
        except (TypeError, ValueError):
            return _str_fallback(obj)


class MissingText:
    """All-missing ``str`` arrays of one length: the first is made, the
    others are copies of it (cheaper than ``_missing_str`` again)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._first = None

    def get(self):
        if self._first is None:
            self._first = _missing_str(self.n)
            return self._first
        return self._first.copy()


def _str_fallback(values: Sequence[Any]):
    import pandas as pd

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


class NumberColumn:
    """An Int64 (``kind="int"``) or Float64 (``kind="float"``) column filled
    chunk by chunk, or the counts of ``len()`` (``kind="count"``: ints or
    None).

    A chunk of plain numbers (every value an ``int``, or a ``float`` for a
    float column; ``len()`` results for counts) goes straight into one array.
    From the first chunk that is anything else (a None, a float in an int
    column, text, ...), the values are kept as a list and the column goes
    through ``int_array`` / ``float_array`` at the end, exactly as the whole
    list would. The values already stored come back from the array by
    ``tolist()`` as the same ints / floats: the exact type check is what makes
    that faithful (a bool or a numpy scalar would come back as an int or a
    float, and pandas may treat a list holding those differently)."""

    def __init__(self, n: int, kind: str) -> None:
        import numpy as np

        self.kind = kind
        self.data = np.empty(n, dtype=np.float64 if kind == "float" else np.int64)
        self.rest: list | None = None

    def add(self, lo: int, values: list) -> None:
        if self.rest is None:
            arr = self._plain(values)
            if arr is not None:
                self.data[lo : lo + len(values)] = arr
                return
            self.rest = self.data[:lo].tolist()
        self.rest += values

    def _plain(self, values: list):
        import numpy as np

        k = len(values)
        # len() results ("count") need no check: ints, or None (TypeError below)
        if self.kind != "count" and list(map(type, values)).count(float if self.kind == "float" else int) != k:
            return None
        try:
            return np.fromiter(values, dtype=self.data.dtype, count=k)
        except (TypeError, ValueError, OverflowError):  # a None; an int beyond int64
            return None

    def array(self):
        import numpy as np
        import pandas as pd

        if self.rest is not None:
            return float_array(self.rest) if self.kind == "float" else int_array(self.rest)
        mask = np.zeros(len(self.data), dtype=bool)
        if self.kind == "float":  # astype(copy=False): the array itself, typed as what it is
            return pd.arrays.FloatingArray(self.data.astype(np.float64, copy=False), mask)
        return pd.arrays.IntegerArray(self.data.astype(np.int64, copy=False), mask)


def datetime_array(ns_values, copy: bool = True):
    """int64 epoch-ns (NAT for missing) -> tz-aware UTC datetime array.
    ``copy=False``: a view of ``ns_values`` (an int64 array the caller hands
    over)."""
    import numpy as np
    import pandas as pd

    ns = np.array(ns_values, dtype=np.int64) if copy else np.asarray(ns_values, dtype=np.int64)
    naive = pd.array(ns.view("M8[ns]"), copy=False)
    try:
        # epoch ns are UTC already: viewing them as UTC is what tz_localize("UTC")
        # gives, without its copy
        return naive.view(pd.DatetimeTZDtype("ns", "UTC"))
    except (TypeError, ValueError):  # a pandas without that view
        return pd.DatetimeIndex(naive).tz_localize("UTC").array


def timedelta_array(ns_values, copy: bool = True):
    import numpy as np
    import pandas as pd

    ns = np.array(ns_values, dtype=np.int64) if copy else np.asarray(ns_values, dtype=np.int64)
    return pd.array(ns.view("m8[ns]"), dtype="timedelta64[ns]", copy=False)


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
        else:  # a Series takes a dtype named at run time (pd.array's stubs want a literal name)
            data[name] = pd.Series([], dtype=dtype).array
    return pd.DataFrame(data)
