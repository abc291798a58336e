"""Distinguished names: escaping, parsing and building, the one place DNs are handled (RFC 4514).

Nothing else splits a DN as text: "Smith, John" is an ordinary display name, and `OU=Sales\\, EMEA`
an ordinary container. The parser reads what AD-compatible servers send back, which is more than
RFC 4514 requires: Samba escapes characters such as `?` (`CN=Star \\?`), servers emit hex escapes
(`\\2C`, multi-byte UTF-8 as `\\C3\\A9`), attribute types in any case, spaces around separators.
A DN it still cannot read raises `DNError` (a PermanentError) naming the DN.

Objects are addressed for writes by their objectGUID (`guid_dn`): AD and Samba accept `<GUID=...>`
wherever a DN is expected, so a write lands on the object that was observed, whatever its name is now.
"""

from __future__ import annotations

import functools
import re
import uuid

from domain_sync.errors import PermanentError

# '#' is escaped everywhere, not only in front: RFC 4514 allows it and ldap3's parser demands it.
_RDN_SPECIAL = set(',+"\\<>;=#')
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_ATTRIBUTE_TYPE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)$")

# One attribute-value assertion (type, unescaped value); an RDN is one or more ('+'), a DN a sequence.
AVA = tuple[str, str]
RDN = tuple[AVA, ...]


class DNError(PermanentError):
    """A DN that cannot be read; the message names it."""


_NEEDS_ESCAPE = re.compile(r'[,+"\\<>;=#\x00-\x1f\x7f]|^ | $')


def escape_rdn_value(value: str) -> str:
    """Escape an attribute value for use in a DN (RFC 4514 section 2.4)."""
    if not _NEEDS_ESCAPE.search(value):
        return value
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


@functools.lru_cache(maxsize=1 << 18)
def parse_dn(dn: str) -> tuple[RDN, ...]:
    """The RDNs of `dn`, each a tuple of (attribute type, unescaped value), first RDN first (remembered: a
    plan reads the same DNs many times)."""
    if dn is None:
        raise DNError("no DN")
    if "\\" not in dn and ";" not in dn and "#" not in dn:  # nothing escaped: split it as text
        plain = _parse_plain(dn)
        if plain is not None:
            return plain
    return _parse_escaped(dn)


def _parse_plain(dn: str) -> tuple[RDN, ...] | None:
    """parse_dn of a DN without escapes or ';' or '#' (None: not one it can read; the full parser says why)."""
    if not dn.strip():
        return ()
    rdns = []
    for rdn_text in dn.split(","):
        avas = []
        for ava in rdn_text.split("+"):
            attribute, sep, value = ava.partition("=")
            attribute = attribute.strip()
            if not sep or not _ATTRIBUTE_TYPE.match(attribute):
                return None
            avas.append((attribute, value.lstrip(" ").rstrip(" ")))
        rdns.append(tuple(avas))
    return tuple(rdns)


def _parse_escaped(dn: str) -> tuple[RDN, ...]:
    rdns: list[RDN] = []
    avas: list[AVA] = []
    i, n = 0, len(dn)
    if not dn.strip():
        return ()
    while True:
        # attribute type
        eq = dn.find("=", i)
        if eq < 0:
            raise DNError(f"DN {dn!r}: no '=' after position {i}")
        attribute = dn[i:eq].strip()
        if not _ATTRIBUTE_TYPE.match(attribute):
            raise DNError(f"DN {dn!r}: {attribute!r} is not an attribute type")
        i = eq + 1
        while i < n and dn[i] == " ":
            i += 1
        value, i = _read_value(dn, i)
        avas.append((attribute, value))
        if i >= n:
            rdns.append(tuple(avas))
            return tuple(rdns)
        sep = dn[i]
        i += 1
        if sep == "+":
            continue
        rdns.append(tuple(avas))
        avas = []
        while i < n and dn[i] == " ":
            i += 1


def _read_value(dn: str, i: int) -> tuple[str, int]:
    """Read one value from position i up to an unescaped ',' '+' ';' (or the end); return it unescaped."""
    n = len(dn)
    if i < n and dn[i] == "#":  # a BER-encoded value (RFC 4514 2.4): kept as written
        j = i + 1
        while j < n and dn[j] not in ",+;":
            j += 1
        return dn[i:j].rstrip(), j
    out = bytearray()
    trailing_plain_spaces = 0
    while i < n:
        ch = dn[i]
        if ch == "\\":
            if i + 1 >= n:
                raise DNError(f"DN {dn!r}: ends with a lone backslash")
            pair = dn[i + 1:i + 3]
            if _HEX2.fullmatch(pair):
                out += bytes.fromhex(pair)
                i += 3
            else:  # any escaped character stands for itself (Samba escapes more than RFC 4514 asks)
                out += dn[i + 1].encode("utf-8")
                i += 2
            trailing_plain_spaces = 0
            continue
        if ch in ",+;":
            break
        out += ch.encode("utf-8")
        trailing_plain_spaces = trailing_plain_spaces + 1 if ch == " " else 0
        i += 1
    if trailing_plain_spaces:
        out = out[:-trailing_plain_spaces]
    try:
        return out.decode("utf-8"), i
    except UnicodeDecodeError:
        raise DNError(f"DN {dn!r}: an escaped value is not UTF-8") from None


def build_dn(rdns: tuple[RDN, ...] | list[RDN]) -> str:
    """The DN text of parsed RDNs, escaped canonically."""
    return ",".join("+".join(f"{a}={escape_rdn_value(v)}" for a, v in rdn) for rdn in rdns)


def child_dn(attribute: str, value: str, parent: str) -> str:
    rdn = f"{attribute}={escape_rdn_value(value)}"
    return f"{rdn},{parent}" if parent else rdn


def first_rdn(dn: str) -> str:
    """The first RDN as text (what a modify-DN request takes as the new RDN)."""
    return build_dn(parse_dn(dn)[:1])


_AFTER_FIRST_RDN = re.compile(r"(?:[^\\,]|\\.)*,(.*)", re.DOTALL)


def parent_text(dn: str) -> str | None:
    """The text after a DN's first RDN (after its first comma not escaped), not parsed: for DNs as the DC
    returns them or normalize_dn writes them (escaped with backslashes, never quoted), where parsing every one
    would cost; None for a single RDN."""
    if "\\" not in dn:
        _, comma, rest = dn.partition(",")
        return rest if comma else None
    match = _AFTER_FIRST_RDN.match(dn)
    return match.group(1) if match else None


def parent_dn(dn: str) -> str:
    """The DN of the entry that holds `dn` ("" for a naming context's root)."""
    return build_dn(parse_dn(dn)[1:])


def rdn_value(dn: str) -> str:
    """The unescaped value of a DN's first RDN."""
    return parse_dn(dn)[0][0][1]


def rdn_attribute(dn: str) -> str:
    return parse_dn(dn)[0][0][0]


def ancestors(dn: str, down_to: str) -> list[str]:
    """The DNs from `dn` up to, not including, `down_to` (an ancestor of `dn`), outermost first."""
    rdns = parse_dn(dn)
    stop = len(parse_dn(down_to))
    return [build_dn(rdns[i:]) for i in range(len(rdns) - stop - 1, -1, -1)]


@functools.lru_cache(maxsize=1 << 18)
def normalize_dn(dn: str) -> str:
    """A comparison key for DNs: attribute types and values without case, escaping made canonical."""
    return ",".join("+".join(sorted(f"{a.lower()}={escape_rdn_value(v).casefold()}" for a, v in rdn))
                    for rdn in parse_dn(dn))


def dn_key(dn: str) -> str | None:
    """normalize_dn, or None for a DN that does not parse or encode (as the DC may return one: it names no
    object the sync can address)."""
    try:
        return normalize_dn(dn)
    except (DNError, UnicodeError):
        return None


def same_dn(a: str, b: str) -> bool:
    return normalize_dn(a) == normalize_dn(b)


def is_within(dn: str, base: str) -> bool:
    """Whether `dn` is `base` or below it."""
    key, base_key = normalize_dn(dn), normalize_dn(base)
    return key == base_key or key.endswith("," + base_key)


def dns_domain_name(dn: str) -> str:
    """The DNS name spelt by a DN's DC= components ("DC=corp,DC=example,DC=test" -> corp.example.test)."""
    return ".".join(v for rdn in parse_dn(dn) for a, v in rdn if a.lower() == "dc").lower()


def guid_dn(guid: str) -> str:
    """The extended DN AD and Samba resolve to the object with this objectGUID, wherever it is."""
    return f"<GUID={uuid.UUID(guid)}>"


def member_key(value: str) -> str:
    """A comparison key for a member value: a DN, or the `<GUID=...>` form the plan names members by."""
    return value.lower() if value.startswith("<") else normalize_dn(value)


def guid_from_bytes(raw: bytes) -> str:
    """objectGUID as the domain stores it (16 bytes, little-endian fields) -> its string form."""
    return str(uuid.UUID(bytes_le=bytes(raw)))
