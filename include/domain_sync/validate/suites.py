"""Great Expectations 1.x suites for directory records, called directly (ephemeral context).

Row-level failures quarantine the object (it is not loaded, the run goes on); a missing required
column or too many failing objects is systemic and stops the run before any write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from domain_sync.records import GROUP, USER, attr_column
from domain_sync.transform.naming import SAM_FORBIDDEN, SAM_MAX

ROW = "_row"
ACCOUNT_NAME_PATTERN = "^[^" + "".join("\\" + c for c in sorted(SAM_FORBIDDEN)) + r"\x00-\x1f]{1,%d}(?<!\.)$" % SAM_MAX
UPN_PATTERN = r"^[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"

REQUIRED_COLUMNS = {
    USER: ["anchor", "cn", "account_name", "enabled", attr_column("userPrincipalName")],
    GROUP: ["anchor", "cn", "account_name"],
}


class SystemicValidationError(RuntimeError):
    """The data set as a whole is unusable; nothing is loaded."""


@dataclass
class QuarantineEntry:
    anchor: str | None
    kind: str
    attribute: str
    rule: str
    value_shape: str


@dataclass
class ValidationOutcome:
    kind: str
    checked: int
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def quarantined_anchors(self) -> set[str]:
        return {q.anchor for q in self.quarantine if q.anchor}


def value_shape(value: Any) -> str:
    """Describe a value without showing it: length and the kinds of characters in it."""
    if value is None or (isinstance(value, float) and value != value):
        return "empty"
    text = str(value)
    kinds = []
    if any(c.isalpha() and c.isascii() for c in text):
        kinds.append("ascii letters")
    if any(c.isalpha() and not c.isascii() for c in text):
        kinds.append("non-ascii letters")
    if any(c.isdigit() for c in text):
        kinds.append("digits")
    if any(c.isspace() for c in text):
        kinds.append("spaces")
    if any(not (c.isalnum() or c.isspace()) for c in text):
        kinds.append("symbols")
    return f"length {len(text)}; " + (", ".join(kinds) or "no printable characters")


def _expectations(kind: str):
    import great_expectations as gx

    e = gx.expectations
    rules = [
        e.ExpectColumnValuesToNotBeNull(column="anchor"),
        e.ExpectColumnValuesToBeUnique(column="anchor"),
        e.ExpectColumnValuesToNotBeNull(column="cn"),
        e.ExpectColumnValuesToMatchRegex(column="account_name", regex=ACCOUNT_NAME_PATTERN),
    ]
    if kind == USER:
        upn = attr_column("userPrincipalName")
        rules += [
            e.ExpectColumnValuesToNotBeNull(column=upn),
            e.ExpectColumnValuesToMatchRegex(column=upn, regex=UPN_PATTERN),
            e.ExpectColumnValuesToBeUnique(column=upn),
        ]
    return rules


def validate_records(frame: pd.DataFrame, kind: str) -> ValidationOutcome:
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    missing = [c for c in REQUIRED_COLUMNS[kind] if c not in frame.columns]
    outcome = ValidationOutcome(kind=kind, checked=len(frame), missing_columns=missing)
    if missing or frame.empty:
        return outcome
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas(f"{kind}_records").add_dataframe_asset(kind)
    batch_definition = asset.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{kind}_records", expectations=_expectations(kind)))
    data = frame.reset_index(drop=True).copy()
    data[ROW] = range(len(data))
    result = batch_definition.get_batch(batch_parameters={"dataframe": data}).validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]}
    )
    outcome.report = result.to_json_dict()
    for r in result.results:
        if r.success:
            continue
        column = r.expectation_config.kwargs.get("column")
        rule = r.expectation_config.type
        for index in r.result.get("unexpected_index_list") or []:
            row = data.iloc[int(index[ROW])]
            anchor = row["anchor"] if isinstance(row["anchor"], str) else None
            attribute = column[len("attr:"):] if column.startswith("attr:") else column
            outcome.quarantine.append(QuarantineEntry(anchor, kind, attribute, rule, value_shape(row[column])))
    return outcome
