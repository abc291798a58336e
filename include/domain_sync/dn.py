"""Distinguished names: escaping, parsing and building, the one place DNs are handled (RFC 4514)."""

from __future__ import annotations

import re

# '#' is escaped everywhere, not only in front: RFC 4514 allows it and ldap3's parser demands it.
_RDN_SPECIAL = set(',+"\\<>;=#')


def escape_rdn_value(value: str) -> str:
    """Escape an attribute value for use in a DN (RFC 4514 section 2.4)."""
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in _RDN_SPECIAL or (i == 0 and ch == " ") or (i == last and ch == " "):
            out.append("\\" + ch)
        elif ord(ch) < 32 or ch == "\x7f":
            out.append("".join(f"\\{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def child_dn(attribute: str, value: str, parent: str) -> str:
    return f"{attribute}={escape_rdn_value(value)},{parent}"


def normalize_dn(dn: str) -> str:
    """A comparison key for DNs: attribute types and values without case, no spaces around ',' '='."""
    from ldap3.utils.dn import parse_dn

    parts = []
    for attr, value, _sep in parse_dn(dn, escape=False, strip=False):
        parts.append(f"{attr.strip().lower()}={_unescape(value).casefold()}")
    return ",".join(parts)


def _unescape(value: str) -> str:
    out = bytearray()
    i = 0
    raw = value
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1 : i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", nxt):
                out += bytes.fromhex(nxt)
                i += 3
                continue
            out += raw[i + 1].encode("utf-8")
            i += 2
            continue
        out += ch.encode("utf-8")
        i += 1
    return out.decode("utf-8", "replace")


def rdn_value(dn: str) -> str:
    """The unescaped value of a DN's first RDN."""
    from ldap3.utils.dn import parse_dn

    return _unescape(parse_dn(dn, escape=False, strip=False)[0][1])
