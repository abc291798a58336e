"""Great Expectations 1.x suites, called directly (one ephemeral context per run), on three layers:

- staged tenant data (extract/*.parquet): required columns present, every row identified;
- the tenant snapshot before mapping (transform/snapshot_*.parquet, the objects to be loaded): ids
  present, unique and GUIDs (Graph object ids; the binary anchor needs one); userPrincipalName
  present, well-formed and unique as Windows AD compares names (naming.name_key: without case, accents,
  width, kana type);
- directory records (transform/records_*.parquet): anchor, cn (present, at most 64), sAMAccountName
  rules, userPrincipalName as written, each mapped value within its schema length (UTF-16 code
  units, one derived column naming the first attribute over its limit), and the cn each
  object gets in the container (after naming) unique across users and groups.
Row-level failures quarantine the object (it is not loaded, the run goes on); a missing required
column, too many failing objects, or a full read far smaller than the previous one is systemic and
stops the run before any write (validate/stage.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from domain_sync.columns import isin, objects, text_lengths
from domain_sync.errors import PermanentError
from domain_sync.naming import (
    CN_MAX,
    OBJECT_ID_PATTERN,
    SAM_FORBIDDEN,
    SAM_MAX,
    common_names_among,
    name_key,
    utf16_length,
)
from domain_sync.records import FIELDS, GROUP, MEMBER_COLUMNS, REMOVED, USER, attr_column
from domain_sync.values import value_shape

__all__ = ["value_shape", "SystemicValidationError", "QuarantineEntry", "SuiteOutcome", "Validator"]

ROW = "_row"
ACCOUNT_NAME_PATTERN = "^[^" + "".join("\\" + c for c in sorted(SAM_FORBIDDEN)) + rf"\x00-\x1f]{{1,{SAM_MAX}}}(?<!\.)$"
UPN_PATTERN = r"^[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
UPN_KEY = "_upn_key"
CN_KEY = "_cn_key"
OVER_LIMIT = "_over_limit"

STAGED_REQUIRED = {
    "users": ["id", "displayName", "mailNickname", "userPrincipalName", "accountEnabled", REMOVED, FIELDS],
    "groups": ["id", "displayName", "securityEnabled", REMOVED, FIELDS],
    "members": MEMBER_COLUMNS,
}
REQUIRED_COLUMNS = {
    USER: ["anchor", "cn", "account_name", "enabled", attr_column("userPrincipalName")],
    GROUP: ["anchor", "cn", "account_name"],
}
TENANT_REQUIRED = {USER: ["id", "userPrincipalName"], GROUP: ["id"]}


class SystemicValidationError(PermanentError):
    """The data set as a whole is unusable; nothing is loaded."""


@dataclass
class QuarantineEntry:
    anchor: str | None
    kind: str
    attribute: str
    rule: str
    value_shape: str
    suite: str = ""


@dataclass
class SuiteOutcome:
    """One suite's run: what it checked, what failed (per row), what it lacked."""

    name: str
    kind: str
    checked: int
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    unidentified_rows: int = 0
    # Expectations that failed without naming rows (an error, or a rule on the whole table)
    failed_without_rows: list[str] = field(default_factory=list)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def _gx_environment() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def _tenant_expectations(kind: str):
    import great_expectations as gx

    e = gx.expectations
    rules = [
        e.ExpectColumnValuesToNotBeNull(column="id"),
        e.ExpectColumnValuesToMatchRegex(column="id", regex=OBJECT_ID_PATTERN),
        e.ExpectColumnValuesToBeUnique(column="id"),
    ]
    if kind == USER:
        rules += [
            e.ExpectColumnValuesToNotBeNull(column="userPrincipalName"),
            e.ExpectColumnValuesToMatchRegex(column="userPrincipalName", regex=UPN_PATTERN),
            e.ExpectColumnValuesToBeUnique(column=UPN_KEY),
        ]
    return rules


def _record_expectations(kind: str, limits: dict[str, int]):
    import great_expectations as gx

    e = gx.expectations
    rules = [
        e.ExpectColumnValuesToNotBeNull(column="anchor"),
        e.ExpectColumnValuesToBeUnique(column="anchor"),
        e.ExpectColumnValuesToNotBeNull(column="cn"),
        e.ExpectColumnValueLengthsToBeBetween(column="cn", min_value=1, max_value=CN_MAX),
        e.ExpectColumnValuesToMatchRegex(column="account_name", regex=ACCOUNT_NAME_PATTERN),
    ]
    if kind == USER:
        upn = attr_column("userPrincipalName")
        rules += [
            e.ExpectColumnValuesToNotBeNull(column=upn),
            e.ExpectColumnValuesToMatchRegex(column=upn, regex=UPN_PATTERN),
            e.ExpectColumnValuesToBeUnique(column=UPN_KEY),
        ]
    if limits:
        rules.append(e.ExpectColumnValuesToBeInSet(column=OVER_LIMIT, value_set=[""]))
    return rules


def _name_keys(series: pd.Series) -> pd.Series:
    """naming.name_key of each value (None where there is no text): names as Windows AD compares them."""
    values = series.to_numpy(dtype=object)
    return pd.Series([name_key(v) if isinstance(v, str) else None for v in values], index=series.index, dtype=object)


class Validator:
    """Runs the suites of one validation in a single ephemeral Great Expectations context, made (and Great
    Expectations imported, a few seconds) when the first suite has rows to check."""

    def __init__(self) -> None:
        self._gx = None

    def _context(self):
        if self._gx is None:
            _gx_environment()
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.context = gx.get_context(mode="ephemeral")
            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self.source = self.context.data_sources.add_pandas("domain_sync")
            self._gx = gx
        return self._gx

    def run(self, name: str, kind: str, frame: pd.DataFrame, expectations: Callable[[], list], anchor_column: str,
            columns: list[str]) -> SuiteOutcome:
        """Validate `columns` of `frame` (only those: GX hashes the frame it is given) against the
        `expectations()`; every failing row becomes a quarantine entry of its object."""
        outcome = SuiteOutcome(name=name, kind=kind, checked=len(frame))
        if frame.empty:
            return outcome
        gx = self._context()
        expectations = expectations()
        data = frame[[c for c in dict.fromkeys([anchor_column, *columns]) if c in frame.columns]].reset_index(drop=True)
        data[ROW] = range(len(data))
        batch = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        result = batch.get_batch(batch_parameters={"dataframe": data}).validate(
            suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]}
        )
        outcome.report = result.to_json_dict()
        anchors = data[anchor_column].to_numpy(dtype=object)
        for r in result.results:
            config = r.expectation_config
            column = config.kwargs.get("column")
            indexes = [int(i[ROW]) for i in (r.result.get("unexpected_index_list") or [])]
            outcome.expectations.append({"expectation": config.type, "column": column, "success": bool(r.success),
                                         "unexpected": len(indexes)})
            if not r.success and not indexes:
                outcome.failed_without_rows.append(f"{config.type}({column})")
            for index in indexes:
                anchor = anchors[index] if isinstance(anchors[index], str) else None
                value = data.at[index, column] if column in data.columns else None
                attribute = _attribute_name(column)
                if column == OVER_LIMIT:  # the value names the attribute; its shape is in the record
                    attribute, value = str(value), frame.iloc[index].get(attr_column(str(value)))
                outcome.quarantine.append(
                    QuarantineEntry(anchor, kind, attribute, config.type, value_shape(value), name))
        return outcome


def _attribute_name(column: str) -> str:
    if column.startswith("attr:"):
        return column[len("attr:"):]
    return {UPN_KEY: "userPrincipalName", CN_KEY: "cn"}.get(column, column)


def validate_staged(validator: Validator, resource: str, frame: pd.DataFrame) -> SuiteOutcome:
    """Staged tenant changes: required columns, and an id on every row (a row without one cannot be
    applied to any object; transform ignores it)."""
    kind = {"users": USER, "groups": GROUP}.get(resource, "membership")
    missing = [c for c in STAGED_REQUIRED[resource] if c not in frame.columns]
    if missing or resource == "members":
        return SuiteOutcome(f"staged_{resource}", kind, len(frame), missing_columns=missing)
    outcome = validator.run(f"staged_{resource}", kind, frame, _identified_expectations, "id", ["id"])
    outcome.unidentified_rows = len(outcome.quarantine)
    outcome.quarantine = []
    return outcome


def _identified_expectations():
    import great_expectations as gx

    return [gx.expectations.ExpectColumnValuesToNotBeNull(column="id")]


def _unique_name_expectations():
    import great_expectations as gx

    return [gx.expectations.ExpectColumnValuesToBeUnique(column=CN_KEY)]


def rows_to_check(data: pd.DataFrame, anchor_column: str, unique_columns: list[str],
                  only: set[str] | None) -> pd.DataFrame:
    """The rows of `data` a suite must see to find every failure among all of them, when only the objects in
    `only` may fail a rule on the row alone (the others passed it before, unchanged): those rows, and every
    row sharing a value of a uniqueness rule's column with another (a value held twice fails wherever it is,
    a value held once passes). `only` None: every row."""
    if only is None:
        return data
    keep = isin(data[anchor_column], only).copy()
    for column in unique_columns:
        values = objects(data[column])
        keep |= (values.notna() & values.duplicated(keep=False)).to_numpy(dtype=bool)
    return data[keep]


def validate_tenant(validator: Validator, kind: str, snapshot: pd.DataFrame,
                    only: set[str] | None = None) -> SuiteOutcome:
    """The tenant objects to be loaded, before mapping (`only`: rows_to_check)."""
    missing = [c for c in TENANT_REQUIRED[kind] if c not in snapshot.columns]
    if missing:
        return SuiteOutcome(f"tenant_{kind}s", kind, len(snapshot), missing_columns=missing)
    data = snapshot
    columns = ["id"]
    if kind == USER:
        data = snapshot.assign(**{UPN_KEY: _name_keys(snapshot["userPrincipalName"])})
        columns += ["userPrincipalName", UPN_KEY]
    data = rows_to_check(data, "id", ["id", *([UPN_KEY] if kind == USER else [])], only)
    return validator.run(f"tenant_{kind}s", kind, data, partial(_tenant_expectations, kind), "id", columns)


def validate_records(validator: Validator, kind: str, frame: pd.DataFrame,
                     limits: dict[str, int] | None = None, only: set[str] | None = None) -> SuiteOutcome:
    """Directory records of one kind; `limits` maps single-valued attr: columns to their rangeUpper
    (`only`: rows_to_check)."""
    missing = [c for c in REQUIRED_COLUMNS[kind] if c not in frame.columns]
    if missing:
        return SuiteOutcome(f"{kind}_records", kind, len(frame), missing_columns=missing)
    limits = {c: v for c, v in (limits or {}).items() if c in frame.columns}
    unique = ["anchor"]
    data = frame
    columns = ["anchor", "cn", "account_name", *([OVER_LIMIT] if limits else [])]
    if kind == USER:
        upn = attr_column("userPrincipalName")
        data = data.assign(**{UPN_KEY: _name_keys(frame[upn])})
        columns += [upn, UPN_KEY]
        unique.append(UPN_KEY)
    data = rows_to_check(data, "anchor", unique, only)
    if limits:
        data = data.assign(**{OVER_LIMIT: over_limit(data, limits)})
    return validator.run(f"{kind}_records", kind, data, partial(_record_expectations, kind, limits), "anchor",
                         columns)


def validate_names(validator: Validator, users: pd.DataFrame, groups: pd.DataFrame,
                   only: set[str] | None = None) -> SuiteOutcome:
    """The cn each object gets in the shared container (naming's suffix rule applied) must be unique as
    Windows AD compares names (naming.name_key) across users and groups, or two objects would claim one DN
    (`only`: rows_to_check; the names are given among all objects)."""
    frame = pd.concat([users[["anchor", "kind", "cn"]], groups[["anchor", "kind", "cn"]]], ignore_index=True)
    frame = frame[frame["anchor"].notna() & frame["cn"].notna()]
    names = common_names_among(frame["anchor"].tolist(), frame["cn"].tolist())
    frame = frame.assign(**{CN_KEY: [name_key(name) for name in names]})
    frame = rows_to_check(frame, "anchor", [CN_KEY], only)
    outcome = validator.run("container_names", "object", frame, _unique_name_expectations, "anchor", ["kind", CN_KEY])
    kinds = dict(zip(frame["anchor"], frame["kind"], strict=True))
    for entry in outcome.quarantine:
        entry.kind = kinds.get(entry.anchor, entry.kind)
    return outcome


def over_limit(frame: pd.DataFrame, limits: dict[str, int]) -> np.ndarray:
    """Per row, the first attribute whose value is longer than its limit (UTF-16 code units, as AD
    counts), or "": one column for the suite instead of one per attribute."""
    out = np.full(len(frame), "", dtype=object)
    for column, limit in sorted(limits.items()):
        values = objects(frame[column]).to_numpy()
        texts = np.flatnonzero([isinstance(v, str) for v in values])
        long = texts[text_lengths(values[texts]) > limit // 2]
        for i in long:
            if not out[i] and utf16_length(values[i]) > limit:
                out[i] = column[len("attr:"):]
    return out


def length_limits(target_schema: dict[str, Any], columns: list[str]) -> dict[str, int]:
    """attr: columns of single-valued string targets with a rangeUpper, from transform/target_schema.json."""
    from domain_sync.domain_schema import STRING_SYNTAXES

    limits = {}
    for facts in (target_schema or {}).get("attributes", {}).values():
        column = attr_column(facts["name"])
        if (column in columns and facts.get("single_valued") and facts.get("range_upper")
                and facts.get("syntax") in STRING_SYNTAXES):
            limits[column] = int(facts["range_upper"])
    return limits
