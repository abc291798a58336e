"""Column helpers for 100,000-row frames.

pandas 3 reads Parquet strings into Arrow-backed columns, on which `isin` with a Python collection
and element-wise maps are slow (0.3 s per 100,000 ids, checked); as object arrays the same work
takes milliseconds. Missing values come out as None.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd


def objects(values: pd.Series | np.ndarray | list) -> pd.Series:
    """The values as an object Series with a fresh 0..n-1 index, missing values as None."""
    array = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    array = array.copy()
    array[pd.isna(array)] = None
    return pd.Series(array, dtype=object)


def record_rows(frame: pd.DataFrame) -> list[dict]:
    """The rows as dicts, as frame.to_dict("records") gives them, with each column made an object array first:
    to_dict iterates an Arrow string column value by value (half its time for 100,000 records). Equal strings
    of a column are one object (100,000 users share a few departments, offices and flags: a full plan holds
    every row at once)."""
    rows = frame.astype(object)
    for position in range(rows.shape[1]):
        column = rows.iloc[:, position].to_numpy()
        if pd.api.types.infer_dtype(column, skipna=True) != "string":
            continue
        codes, uniques = pd.factorize(column)
        if len(uniques) < len(column):
            shared = np.where(codes >= 0, np.asarray(uniques, dtype=object).take(codes), column)
            rows.isetitem(position, pd.Series(shared, index=rows.index, dtype=object))  # not inferred as strings
    return rows.to_dict("records")


def lowered(values: pd.Series) -> np.ndarray:
    """Strings lower-cased, as an object array (missing values as None): to iterate, zip or test with isin."""
    return objects(values.astype("string").str.lower()).to_numpy()


def isin(values: pd.Series | np.ndarray, members: Collection) -> np.ndarray:
    """Boolean array: which values are in `members`. A column of Arrow strings (as read from Parquet) with
    string members is tested by Arrow itself (pyarrow.compute.is_in: a third of the time of hashing its values
    as Python objects, and none of the conversion); anything else as objects."""
    return _isin(values, members, lower=False)


def isin_lowered(values: pd.Series | np.ndarray, members: Collection) -> np.ndarray:
    """Boolean array: which values, lower-cased as `lowered` does, are in `members` (lower case). A column of
    Arrow strings is lower-cased and tested by Arrow (a fifth of the time of `isin(lowered(values), ...)` on
    500,000 values: no Python string is made)."""
    return _isin(values, members, lower=True)


def _isin(values: pd.Series | np.ndarray, members: Collection, *, lower: bool) -> np.ndarray:
    if not members:
        return np.zeros(len(values), dtype=bool)
    if isinstance(values, pd.Series) and hasattr(values.array, "__arrow_array__"):
        import pyarrow as pa
        import pyarrow.compute as pc

        arrow = pa.array(values.array)
        if pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type):
            try:
                wanted = pa.array(list(members), type=arrow.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # members that are not all strings
                wanted = None
            if wanted is not None:
                found = pc.is_in(pc.utf8_lower(arrow) if lower else arrow, value_set=wanted, skip_nulls=True)
                return found.fill_null(False).to_numpy(zero_copy_only=False).astype(bool, copy=False)
    if lower:
        values = lowered(values if isinstance(values, pd.Series) else pd.Series(values, dtype=object))
    array = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    return pd.Series(array, dtype=object).isin(members).to_numpy(dtype=bool)


def text_lengths(texts: np.ndarray) -> np.ndarray:
    return np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
