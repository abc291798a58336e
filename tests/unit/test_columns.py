"""Column helpers: lower-cased values of Arrow-backed and object columns, missing values as None."""

from __future__ import annotations

import io

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from domain_sync.columns import isin, isin_lowered, lowered

# Without the two characters whose lower case Python's str.lower takes from their context or writes as two
# code points ('İ' -> 'i̇', a final 'Σ' -> 'ς'), where Arrow's (lowered's) gives 'i' and 'σ': str.lower is then
# an exact oracle. Text that encodes as UTF-8 (no lone surrogates), as st.text's default is and as every value
# in the pipeline's columns is: transform removes unpaired surrogates (domain_sync.values).
values = st.lists(st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_characters="\u0130\u03a3"),
                                               max_size=8)),
                  max_size=20)


def through_parquet(series: pd.Series) -> pd.Series:
    buffer = io.BytesIO()
    pd.DataFrame({"v": series}).to_parquet(buffer, index=False)
    return pd.read_parquet(io.BytesIO(buffer.getvalue()))["v"]


@given(values)
def test_lowered_is_each_value_lower_cased_whatever_the_column_type(items):
    expected = [v.lower() if v is not None else None for v in items]
    for column in (pd.Series(items, dtype=object), through_parquet(pd.Series(items, dtype=object))):
        assert lowered(column).tolist() == expected
        wanted = {v for v in expected[:3] if v is not None}
        assert isin(lowered(column), wanted).tolist() == [v in wanted for v in expected]


@given(values, st.sets(st.text(max_size=8), max_size=6), st.booleans())
def test_isin_is_the_same_for_arrow_and_object_columns(items, members, mixed):
    wanted = set(members) | ({1} if mixed else set())  # a member that is not a string: the object path
    expected = [v is not None and v in wanted for v in items]  # a missing value is in no set of ids
    for column in (pd.Series(items, dtype=object), through_parquet(pd.Series(items, dtype=object))):
        assert isin(column, wanted).tolist() == expected


@given(values, st.sets(st.text(max_size=8), max_size=6), st.booleans())
def test_isin_lowered_is_isin_of_the_lowered_values_whatever_the_column_type(items, members, mixed):
    wanted = {m.lower() for m in members} | {v.lower() for v in items[:2] if v is not None}
    wanted |= {1} if mixed else set()  # a member that is not a string: the object path
    # lowered's case rules (Arrow's: 'İ' becomes 'i', where Python's str.lower gives two code points)
    expected = [v is not None and v in wanted for v in lowered(pd.Series(items, dtype=object))]
    for column in (pd.Series(items, dtype=object), through_parquet(pd.Series(items, dtype=object))):
        assert isin_lowered(column, wanted).tolist() == expected
        assert isin_lowered(column, wanted).tolist() == isin(lowered(column), wanted).tolist()
    assert isin_lowered(pd.Series(items, dtype=object).to_numpy(), wanted).tolist() == expected


@given(st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=6)), st.booleans(),
                          st.one_of(st.none(), st.lists(st.text(max_size=3), max_size=2))), max_size=12))
def test_record_rows_are_to_dicts_rows(rows):
    import numpy as np

    from domain_sync.columns import record_rows

    frame = pd.DataFrame(rows, columns=["name", "enabled", "proxies"])
    for table in (frame, through_parquet_frame(frame)):

        def plain(row):
            return {k: (None if isinstance(v, float) and v != v else list(v) if isinstance(v, np.ndarray) else v)
                    for k, v in row.items()}

        assert [plain(r) for r in record_rows(table)] == [plain(r) for r in table.to_dict("records")]
        assert [type(r["enabled"]) for r in record_rows(table)] == [bool] * len(table)
        # equal names are one object
        names = [r["name"] for r in record_rows(table) if isinstance(r["name"], str)]
        assert len({id(n) for n in names}) == len(set(names))


def through_parquet_frame(frame: pd.DataFrame) -> pd.DataFrame:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return pd.read_parquet(io.BytesIO(buffer.getvalue()))
