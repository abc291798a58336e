"""Values that fit the domain: every mapped value made valid for its target attribute, column at a time.

The rules (docs/mapping.md, "Values that do not fit"), so that no value ever fails a write:
- text: unpaired surrogates and control characters other than tab, CR and LF are removed; a value
  that is then empty or only white space clears the attribute;
- longer than the attribute's rangeUpper, counted in UTF-16 code units as AD and Samba count
  (checked: eight emoji fill employeeID's 16): cut to fit, never inside a surrogate pair; or, for an
  entry marked `too_long: drop` (addresses, where a cut value would be a wrong one), dropped;
- shorter than rangeLower, or not of the attribute's syntax (an integer attribute given "abc" or a
  number out of range, a printable string given "ø"): dropped;
- multi-valued attributes: each value on its own, then repeats (compared without case, as AD
  compares) removed, keeping the first.
Each cut or dropped value is reported (`Fix`), never quarantined: the object loads without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from domain_sync.columns import objects, text_lengths
from domain_sync.domain_schema import (
    BOOLEAN_SYNTAX,
    INTEGER_SYNTAXES,
    OM_PRINTABLE,
    AttributeSchema,
)
from domain_sync.naming import cut_utf16, name_key, utf16_length
from domain_sync.records import is_missing

CUT = "cut"
DROPPED = "dropped"
TOO_LONG_ACTIONS = (CUT, "drop")

_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SYNTAX_PATTERNS = {
    "printable": re.compile(r"[A-Za-z0-9 '()+,\-./:?]*"),
    "ia5": re.compile(r"[\x00-\x7f]*"),
    "numeric": re.compile(r"[0-9 ]*"),
    "integer": re.compile(r"[+-]?[0-9]+"),
}
_INTEGER_BOUNDS = {"2.5.5.9": (-(2**31), 2**31 - 1), "2.5.5.16": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class Fix:
    """One value changed to fit: row position in the frame, what was done and why."""

    row: int
    attribute: str
    action: str
    reason: str
    shape: str


def value_shape(value: Any) -> str:
    """Describe a value without showing it: length and the kinds of characters in it."""
    if is_missing(value):
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


def clean_text(text: str) -> str:
    return _BAD_CHARS.sub("", text)


def _as_text(value: Any) -> str | None:
    if is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    return str(value)


def _syntax_check(attribute: AttributeSchema) -> tuple[re.Pattern | None, str]:
    if attribute.syntax in INTEGER_SYNTAXES:
        return _SYNTAX_PATTERNS["integer"], "not an integer"
    if attribute.syntax == "2.5.5.5":
        if attribute.om_syntax == OM_PRINTABLE:
            return _SYNTAX_PATTERNS["printable"], "not a printable string"
        return _SYNTAX_PATTERNS["ia5"], "not ASCII"
    if attribute.syntax == "2.5.5.6":
        return _SYNTAX_PATTERNS["numeric"], "not a numeric string"
    return None, ""


def _texts(values: np.ndarray) -> np.ndarray:
    """Object array of str (non-text values rendered as text)."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.astype(object, copy=True)
    return np.array([_as_text(v) for v in values], dtype=object)


def fit_series(values: pd.Series, attribute: AttributeSchema, too_long: str = CUT) -> tuple[pd.Series, list[Fix]]:
    """Fit single values (str or None) to `attribute`; returns the fitted values (same index) and the
    fixes (Fix.row = position). Each distinct value is fitted once (cities, titles and countries
    repeat across a tenant)."""
    codes, uniques = pd.factorize(objects(values), use_na_sentinel=True)
    fitted = _texts(np.asarray(uniques, dtype=object))
    unique_fixes = _fit_distinct(fitted, attribute, too_long)
    out = np.full(len(values), None, dtype=object)
    present = codes >= 0
    out[present] = fitted[codes[present]]
    by_code: dict[int, list[Fix]] = {}
    for f in unique_fixes:
        by_code.setdefault(f.row, []).append(f)
    rows = np.flatnonzero(np.isin(codes, list(by_code))) if by_code else []
    fixes = [Fix(int(row), f.attribute, f.action, f.reason, f.shape) for row in rows for f in by_code[codes[row]]]
    return pd.Series(out, index=values.index, dtype=object), fixes


def _needing_care(texts: np.ndarray) -> np.ndarray:
    """Positions of texts with characters to remove, or only white space (one regex pass over all
    of them joined by line feeds, which are kept)."""
    if not len(texts):
        return np.array([], dtype=np.int64)
    lengths = text_lengths(texts)
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    joined = "\n".join(texts)
    bad = [m.start() for m in _BAD_CHARS.finditer(joined)]
    flagged = np.zeros(len(texts), dtype=bool)
    if bad:
        flagged[np.searchsorted(starts, bad, side="right") - 1] = True
    flagged |= lengths == 0
    flagged |= np.fromiter(map(str.isspace, texts), dtype=bool, count=len(texts))
    return np.flatnonzero(flagged)


def _fit_distinct(out: np.ndarray, attribute: AttributeSchema, too_long: str) -> list[Fix]:
    """Fit the values of `out` (str, no None) in place; a value that cannot fit becomes None."""
    fixes: list[Fix] = []
    name = attribute.name

    def drop(i: int, reason: str) -> None:
        fixes.append(Fix(int(i), name, DROPPED, reason, value_shape(out[i])))
        out[i] = None

    if attribute.syntax == BOOLEAN_SYNTAX:
        for i, text in enumerate(out):
            if text.strip().upper() in ("TRUE", "FALSE"):
                out[i] = text.strip().upper()
            else:
                drop(i, "not a boolean")
        return fixes

    for i in _needing_care(out):
        out[i] = clean_text(out[i])
        if not out[i].strip():
            out[i] = None
    live = np.flatnonzero(out != None)  # noqa: E711 - element-wise on an object array

    pattern, reason = _syntax_check(attribute)
    if attribute.syntax in INTEGER_SYNTAXES:
        low, high = _INTEGER_BOUNDS[attribute.syntax]
        low = max(low, attribute.range_lower) if attribute.range_lower is not None else low
        high = min(high, attribute.range_upper) if attribute.range_upper is not None else high
        for i in live:
            text = out[i].strip()
            if not pattern.fullmatch(text):
                drop(i, reason)
            elif not low <= int(text) <= high:
                drop(i, f"outside {low}..{high}")
            else:
                out[i] = str(int(text))
        return fixes
    if pattern is not None:
        for i in live:
            if not pattern.fullmatch(out[i]):
                drop(i, reason)
        live = live[out[live] != None]  # noqa: E711

    upper, lower = attribute.range_upper, attribute.range_lower
    if upper is not None and len(live):
        for i in live[text_lengths(out[live]) > upper // 2]:
            if utf16_length(out[i]) <= upper:
                continue
            if too_long == CUT:
                shape = value_shape(out[i])
                out[i] = cut_utf16(out[i], upper).rstrip() or None
                fixes.append(Fix(int(i), name, CUT, f"longer than {upper}", shape))
            else:
                drop(i, f"longer than {upper}")
    if lower is not None and lower > 1:
        for i in live:
            if out[i] is not None and utf16_length(out[i]) < lower:
                drop(i, f"shorter than {lower}")
    return fixes


def fit_multi_series(values: pd.Series, attribute: AttributeSchema, too_long: str = CUT) -> tuple[pd.Series, list[Fix]]:
    """Fit lists of values (or None) to a multi-valued attribute; repeats removed as Windows AD compares
    strings (naming.name_key: without case, accents, width), which refuses a repeat so (code 20)."""
    flat = objects(values).explode()
    flat = flat[flat.notna()]
    out = np.full(len(values), None, dtype=object)
    if flat.empty:
        return pd.Series(out, index=values.index, dtype=object), []
    positions = flat.index.to_numpy()
    fitted, item_fixes = fit_series(pd.Series(flat.to_numpy(dtype=object), dtype=object), attribute, too_long)
    fixes = [Fix(int(positions[f.row]), f.attribute, f.action, f.reason, f.shape) for f in item_fixes]
    fitted = fitted.to_numpy(dtype=object)
    keep = fitted != None  # noqa: E711
    positions, fitted = positions[keep], fitted[keep]
    keys = pd.DataFrame({"row": positions, "key": [name_key(v) for v in fitted]})
    first = ~keys.duplicated().to_numpy()
    positions, fitted = positions[first], fitted[first]
    if len(positions):
        bounds = np.flatnonzero(np.diff(positions)) + 1
        for row, chunk in zip(positions[np.r_[0, bounds]], np.split(fitted, bounds), strict=True):
            out[row] = chunk.tolist()
    return pd.Series(out, index=values.index, dtype=object), fixes


def fit_one(attribute: AttributeSchema, value: Any, too_long: str = CUT, multi: bool = False) -> Any:
    """One value fitted (for callers outside the frame path)."""
    series = pd.Series([value], dtype=object)
    fitted, _ = (fit_multi_series if multi else fit_series)(series, attribute, too_long)
    return fitted.iloc[0]
