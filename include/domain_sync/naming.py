"""Names in the domain: sAMAccountName, cn, and RDN/DN escaping.

sAMAccountName (AD rules, MS): at most 20 characters, none of " / \\ [ ] : ; | = , + * ? < >,
unique in the domain across users, groups and computers, compared as Windows AD compares names
(`name_key`: a local "jürgen" holds "jurgen"). Our rule
(docs/design.md, "Names"):
  1. Source: mailNickname for users, displayName for groups.
  2. Fold to ASCII (NFKD, accents dropped), keep letters, digits, '.', '-', '_'; drop the rest;
     no leading or trailing '.'; cut to 20.
  3. Empty result -> "u-" / "g-" + the first 8 hex digits of the tenant object id.
  4. Taken (by any object in the domain, or by another object earlier in this run, objects
     taken in order of their tenant id) -> the name cut to leave room for "-" + the first k hex
     digits of the object id, k = 4..12; then "-" + a counter.
  5. Stable: an object that has a name in the domain keeps it; rules 1 to 4 only name new objects.

cn: the displayName (cut to 64 UTF-16 code units, the schema's limit); when two synced objects of one container, or a
synced and a local one, share it (compared as Windows AD compares names: `name_key`), each synced one gets
" (<8 hex of id>)", or " (<32 hex of id>)" where that is held too (common_name_options), and past that (a name
made to be another's) " (<32 hex of id>-2)", "-3" and so on.

Tenant object ids (Graph's `id`, the anchor of every synced object) are GUIDs in their 8-4-4-4-12 form:
`OBJECT_ID_PATTERN` (for JSON schemas and expectations) and `is_object_id` are the one test of that.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SAM_MAX = 20
CN_MAX = 64
SAM_FORBIDDEN = set('"/\\[]:;|=,+*?<>')
_SAM_KEEP = re.compile(r"[^A-Za-z0-9._-]")
OBJECT_ID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_OBJECT_ID = re.compile(OBJECT_ID_PATTERN)


# Letters NFKD does not decompose into ASCII.
_TRANSLITERATION = str.maketrans({
    "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D",
    "þ": "th", "Þ": "Th", "œ": "oe", "Œ": "OE", "ı": "i",
})


# Katakana to hiragana (Windows compares them as one, NORM_IGNOREKANATYPE).
_KANA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}
_IGNORED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})


def _name_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_TRANSLITERATION))
    return "".join(ch for ch in decomposed if unicodedata.category(ch) not in _IGNORED_CATEGORIES).translate(_KANA)


def name_key(text: str) -> str:
    """Two names a domain may not hold side by side (two cns in one container) have one key. Windows AD
    compares names without case, accents and other marks (Microsoft KB 938447: "Müller" and "Muller", "Meißner"
    and "Meissner" are one name), width (full-width "Ａ" is "A") and kana type; it does not ignore letters
    (Danish "ø" is "o" to it). Samba compares without case alone, and more narrowly than Python's casefold.
    The key folds all of those and more (letters with a stroke, ligatures, format characters): a stricter key
    only gives a suffix where one was not needed, a looser one a write Windows AD refuses."""
    if text.isascii():
        return text.casefold()
    return _name_fold(_name_fold(text))


def utf16_length(text: str) -> int:
    """Length as AD counts it against rangeUpper: UTF-16 code units (a character beyond U+FFFF is two)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def cut_utf16(text: str, limit: int) -> str:
    """The longest prefix of `text` of at most `limit` UTF-16 code units (whole characters only)."""
    if len(text) <= limit // 2 or utf16_length(text) <= limit:
        return text
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return text[:i]
    return text


def is_object_id(value: object) -> bool:
    """A tenant object id: a GUID as Graph writes it (8-4-4-4-12 hex digits, either case), nothing around it."""
    return isinstance(value, str) and _OBJECT_ID.fullmatch(value) is not None


def fold_ascii(text: str) -> str:
    """NFKD without the marks (which are not ASCII either); letters it cannot fold are dropped."""
    return unicodedata.normalize("NFKD", text.translate(_TRANSLITERATION)).encode("ascii", "ignore").decode()


_NOT_HEX = re.compile(r"[^0-9a-f]")


def _hex_of(anchor: str) -> str:
    if len(anchor) == 36 and _OBJECT_ID.fullmatch(anchor):  # a tenant object id: its 32 digits (most anchors)
        return anchor.replace("-", "").lower()
    digits = _NOT_HEX.sub("", anchor.lower())
    if len(digits) < 12:
        digits += hashlib.sha1(anchor.encode("utf-8")).hexdigest()
    return digits


def _trim(name: str, limit: int) -> str:
    return name[:limit].strip(".")


def account_name_base(source: str | None, anchor: str, kind: str) -> str:
    """Rules 1 to 3: the name an object would get if nothing else held it."""
    name = _trim(_SAM_KEEP.sub("", fold_ascii(source or "")).strip("."), SAM_MAX)
    if not name:
        name = f"{kind[0]}-{_hex_of(anchor)[:8]}"
    return name


def is_valid_account_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= SAM_MAX
        and not any(ch in SAM_FORBIDDEN or ord(ch) < 32 for ch in name)
        and not name.endswith(".")
    )


def assign_account_names(
    candidates: Iterable[tuple[str, str]],
    existing: dict[str, str],
    taken: Iterable[str],
    reserved: dict[str, str] | None = None,
) -> dict[str, str]:
    """Rules 4 and 5. `candidates` are (anchor, base name) of every synced object, `existing` maps
    anchors that already have a name in the domain to it, `taken` holds every name in the domain.
    `reserved` maps names (lower case) to the one anchor that may take them: a user's UPN local part in
    the domain's DNS name is its implied UPN, so no other account may be named so.
    Returns anchor -> sAMAccountName for all candidates."""
    used = {name.lower() for name in taken}
    used.update(name.lower() for name in existing.values())
    reserved = {name.lower(): anchor for name, anchor in (reserved or {}).items() if name.lower() not in used}
    result: dict[str, str] = {}
    for anchor, base in sorted(candidates):
        if anchor in existing:
            result[anchor] = existing[anchor]
            continue
        name = next(n for n in account_name_options(anchor, base)
                    if n.lower() not in used and reserved.get(n.lower(), anchor) == anchor)
        used.add(name.lower())
        result[anchor] = name
    return result


def account_name_options(anchor: str, base: str) -> Iterator[str]:
    """Rule 4's names for a new object, in the order they are tried (endless: the counter goes on)."""
    yield base
    digits = _hex_of(anchor)
    for k in range(4, 13):
        suffix = "-" + digits[:k]
        yield _trim(base, SAM_MAX - len(suffix)) + suffix
    counter = 2
    while True:
        suffix = f"-{counter}"
        yield _trim(base, SAM_MAX - len(suffix)) + suffix
        counter += 1


def common_name_options(anchor: str, base: str) -> tuple[str, str, str]:
    """The cns an object of this cn base may have in its container, in the order it takes them: the base, the
    base with the first 8 hex digits of its id, and the base with all of them (where another object holds the
    first two: a tenant object named as another's suffixed cn, or a local one left holding both)."""
    return base, _suffixed_cn(base, anchor), _suffixed_cn(base, anchor, digits=32)


def cn_base(display_name: str | None, fallback: str) -> str:
    """The displayName without control characters, runs of white space as one space, cut to 64
    UTF-16 code units (cn's rangeUpper, as AD counts; Samba does not enforce it, Windows does)."""
    printable = "".join(ch for ch in (display_name or "") if unicodedata.category(ch) not in ("Cc", "Cs"))
    text = " ".join(printable.split()) or fallback
    return cut_utf16(text, CN_MAX).rstrip()


_NOT_CN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACES = re.compile(r"\s+")


def cn_bases(display_names: pd.Series, fallbacks: pd.Series) -> pd.Series:
    """cn_base of each row, computed column-wise (the same results, for 100,000s of rows)."""
    import pandas as pd

    text = pd.Series(display_names.to_numpy(dtype=object), dtype=object).fillna("")
    text = text.str.replace(_NOT_CN, "", regex=True).str.replace(_SPACES, " ", regex=True).str.strip()
    text = text.where(text != "", pd.Series(fallbacks.to_numpy(dtype=object), dtype=object))
    return text.map(lambda t: cut_utf16(t, CN_MAX).rstrip() if len(t) > CN_MAX // 2 else t)


def account_name_bases(sources: pd.Series, anchors: pd.Series, kind: str) -> pd.Series:
    """account_name_base of each row, computed column-wise."""
    import pandas as pd

    text = pd.Series(sources.to_numpy(dtype=object), dtype=object).fillna("").astype(str)
    # Python's own NFKD, as fold_ascii: pandas' Arrow-backed strings normalize with a newer Unicode version
    # than the interpreter's, which folds some new characters (e.g. U+1CCD6) where the row rule does not.
    folded = (text.str.translate(_TRANSLITERATION).map(partial(unicodedata.normalize, "NFKD"))
              .str.encode("ascii", "ignore").str.decode("ascii"))
    names = folded.str.replace(_SAM_KEEP, "", regex=True).str.strip(".").str[:SAM_MAX].str.strip(".")
    empty = names == ""
    if empty.any():
        ids = pd.Series(anchors.to_numpy(dtype=object), dtype=object)[empty]
        names[empty] = [f"{kind[0]}-{_hex_of(str(a))[:8]}" for a in ids]
    return names


def _suffixed_cn(base: str, anchor: str, digits: int = 8, counter: int | None = None) -> str:
    suffix = f" ({_hex_of(anchor)[:digits]}{'' if counter is None else f'-{counter}'})"
    return cut_utf16(base, CN_MAX - len(suffix)).rstrip() + suffix


_COUNTED_SUFFIX = re.compile(r" \([0-9a-f]+-([0-9]+)\)$")


def is_common_name_of(anchor: str, base: str, cn: str) -> bool:
    """Whether `cn` is one of the cns assign_common_names may give the object (common_name_options, or a
    counted whole-id form)."""
    if cn in common_name_options(anchor, base):
        return True
    counted = _COUNTED_SUFFIX.search(cn)
    return counted is not None and cn == _suffixed_cn(base, anchor, digits=32, counter=int(counted.group(1)))


def _suffixed_cns(anchor: str, base: str) -> Iterator[str]:
    """The suffixed cns of an object in the order it takes them: its suffixed common_name_options, then (where a
    tenant display name or a local object holds even the whole-id form) that form with "-2", "-3" and so on."""
    yield from common_name_options(anchor, base)[1:]
    counter = 2
    while True:
        yield _suffixed_cn(base, anchor, digits=32, counter=counter)
        counter += 1


def common_names_among(anchors: list[str], bases: list[str]) -> list[str]:
    """Each object's cn among these objects alone, as assign_common_names(zip(anchors, bases), []) gives it
    (a base held twice under name_key gets every holder's suffix), in the order given; for 100,000s of
    objects. Where a suffixed cn meets another object's base or another suffixed cn, or an anchor comes twice,
    the order of assignment matters: assign_common_names gives them."""
    keys = [name_key(base) for base in bases]
    counts = Counter(keys)
    names = [(_suffixed_cn(base, anchor) if counts[key] > 1 else base)
             for anchor, base, key in zip(anchors, bases, keys, strict=True)]
    suffixed = [name_key(name) for name, key in zip(names, keys, strict=True) if counts[key] > 1]
    distinct = set(suffixed)
    if (len(set(anchors)) != len(anchors) or len(distinct) != len(suffixed)
            or any(counts[key] == 1 and key in distinct for key in keys)):
        assigned = assign_common_names(zip(anchors, bases, strict=True), [])
        return [assigned[anchor] for anchor in anchors]
    return names


def assign_common_names(
    candidates: Iterable[tuple[str, str]], local_names: Iterable[str], existing: dict[str, str] | None = None,
) -> dict[str, str]:
    """cn for each (anchor, cn base) of one container. Stable: an object whose current cn (`existing`)
    is one of its common_name_options keeps that form, in the base's current spelling (a case-only
    change of the display name reaches the cn); newcomers sharing a name taken by a local object, an
    existing one or another newcomer get the first suffixed form no other object holds (_suffixed_cns)."""
    candidates = list(candidates)
    existing = existing or {}
    claimed = {name_key(name) for name in local_names}
    result: dict[str, str] = {}
    for anchor, base in candidates:
        current = existing.get(anchor)
        if current is None:
            continue
        for option in common_name_options(anchor, base):
            if current.casefold() == option.casefold() and name_key(option) not in claimed:
                result[anchor] = option
                claimed.add(name_key(option))
                break
    rest = [(anchor, base) for anchor, base in candidates if anchor not in result]
    counts = Counter(name_key(base) for _, base in rest)
    for anchor, base in rest:
        key = name_key(base)
        if counts[key] > 1 or key in claimed:
            name = next(option for option in _suffixed_cns(anchor, base) if name_key(option) not in claimed)
        else:
            name = base
        result[anchor] = name
        claimed.add(name_key(name))
    return result
