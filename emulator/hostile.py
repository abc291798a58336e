"""Hostile tenants, and seeded batches of tenant changes.

hostile_tenant() writes a tenant that Graph itself would accept but that breaks naive directory code:
display names from the whole Unicode range (astral planes, combining marks, right-to-left text and
bidi controls, invisible characters) and with every character special to DNs, to sAMAccountName and
to LDAP filters; leading and trailing spaces, a leading '#'; values longer than 64 and 256
characters; duplicates among users, among groups and across both; names that differ only by case
or by Unicode normalization, and names Windows AD takes for one another (without accents or width);
mail nicknames and UPNs built so that an account name implied by one object's nickname collides with
another user's UPN in the domain's DNS name; nested groups, a few
large groups, members that are devices, service principals and organizational contacts; manager
chains; soft-deleted users. Every value keeps to Graph's own rules (valid_upn, valid_mail_nickname,
LIMITS). The same arguments give the same document.

random_changes() applies a seeded batch of changes through the admin API (renames into and out of
collisions, Windows AD's among them, UPN changes, soft and hard deletes, restores, membership moves, manager changes).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .admin import AdminError, EmulatorAdmin
from .tenant import CONTACTS, DEVICES, GROUPS, ODATA_TYPE, SERVICE_PRINCIPALS, USERS

ALIAS_DOMAIN = "corpexample.onmicrosoft.com"

DN_SPECIALS = ',+=\\#<>;"'  # RFC 4514, plus a leading space or '#' and a trailing space
SAM_SPECIALS = '"/\\[]:;|=,+*?<>'  # not allowed in sAMAccountName
LDAP_FILTER_SPECIALS = "*()\\\x00"  # escaped in LDAP filters (RFC 4515)
NAME_SPECIALS = "".join(sorted(set(DN_SPECIALS + SAM_SPECIALS + LDAP_FILTER_SPECIALS)))
UPN_SPECIALS = "'.-_!#^~"  # the only characters besides A-Z, a-z, 0-9 Graph allows in a UPN
MAIL_NICKNAME_FORBIDDEN = '@()\\[]";:<>, '  # Graph: ASCII 0-127 except these (and SPACE)
MAIL_NICKNAME_SPECIALS = "".join(
    c for c in map(chr, range(0x21, 0x7F)) if not c.isalnum() and c not in MAIL_NICKNAME_FORBIDDEN
)
LIMITS = {  # Graph's maximum lengths, in UTF-16 code units
    "displayName": 256,
    "givenName": 64,
    "surname": 64,
    "jobTitle": 128,
    "department": 64,
    "city": 128,
    "streetAddress": 1024,
    "description": 1024,
    "mailNickname": 64,
}
UPN_LOCAL_MAX, UPN_DOMAIN_MAX, UPN_MAX = 64, 48, 113

_UPN_LOCAL_RE = re.compile(r"^[A-Za-z0-9'\-_!#^~]+(\.[A-Za-z0-9'\-_!#^~]+)*$")
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# Blocks of assigned characters across the planes (stable for many Unicode versions, so a seed gives the
# same names whatever Python's Unicode database): Latin, Greek, Cyrillic, Hebrew, Arabic, Devanagari,
# Thai, Georgian, kana, CJK, Hangul, private use, full-width Latin, Gothic, mathematical letters,
# emoji, CJK extension B, supplementary private use.
_RANGES = (
    (0x00C0, 0x024F), (0x0391, 0x03A1), (0x03A3, 0x03C9), (0x0410, 0x044F), (0x05D0, 0x05EA),
    (0x0627, 0x064A), (0x0905, 0x0939), (0x0E01, 0x0E30), (0x10D0, 0x10FA), (0x3041, 0x3096),
    (0x30A1, 0x30FA), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0xFF21, 0xFF3A),
    (0x10330, 0x1034A), (0x1D400, 0x1D454), (0x1F600, 0x1F64F), (0x20000, 0x2A6D6), (0xF0000, 0xFFFFD),
)
_ASTRAL_RANGES = tuple(r for r in _RANGES if r[0] > 0xFFFF)
_COMBINING = (0x0300, 0x036F)
_HEBREW, _ARABIC = (0x05D0, 0x05EA), (0x0627, 0x064A)
_BIDI_CONTROLS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_ZERO_WIDTH = "\u200b\u200c\u200d\ufeff\u2060"
_INVISIBLE = _ZERO_WIDTH + "\u00ad\u00a0\u2003\u3000"
_EMOJI = ("\U0001f469\u200d\U0001f4bb", "\U0001f1f3\U0001f1f4", "\U0001f44d\U0001f3fd", "\u2764\ufe0f", "\U0001f600")
_WORDS = (
    "Anna", "José", "Zoë", "Łukasz", "Søren", "Ægir", "Straße", "İlker", "Ωmega", "O'Brien", "Nuñez", "Björk",
    "Đorđe", "Þóra", "Chloé", "Müller", "Dvořák", "Kowalski", "Smith", "Lee", "Ngô", "Ōtani", "Çelik", "Ağa",
)
# pairs whose case folding surprises: different strings, equal case-insensitively to some code and not to other code
_CASE_TRAPS = (("Straße", "STRASSE"), ("İstanbul", "istanbul"), ("ΟΔΟΣ", "οδος"), ("ǅemal", "ǄEMAL"), ("Ǉuba", "ǉuba"))


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def valid_upn(upn: str) -> bool:
    """What Graph accepts as a userPrincipalName: alias@domain, the alias of A-Z a-z 0-9 ' . - _ ! # ^ ~ without
    a leading, trailing or doubled period, at most 64 characters before the @, 48 after, 113 in all."""
    local, at, domain = upn.rpartition("@")
    return (
        bool(at and local and domain)
        and len(local) <= UPN_LOCAL_MAX
        and len(domain) <= UPN_DOMAIN_MAX
        and len(upn) <= UPN_MAX
        and bool(_UPN_LOCAL_RE.match(local))
        and bool(re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", domain))
    )


def valid_mail_nickname(nick: str) -> bool:
    """What Graph accepts as a mailNickname: 1 to 64 ASCII characters, none of @ ( ) \\ [ ] " ; : < > , or space
    (and, as Exchange wants, no leading, trailing or doubled period; no control characters)."""
    return (
        0 < len(nick) <= LIMITS["mailNickname"]
        and all(0x21 <= ord(c) < 0x7F and c not in MAIL_NICKNAME_FORBIDDEN for c in nick)
        and not nick.startswith(".")
        and not nick.endswith(".")
        and ".." not in nick
    )


def cut(text: str, limit: int) -> str:
    """text cut to at most limit UTF-16 code units, never inside a surrogate pair, never blank."""
    out, used = [], 0
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > limit:
            break
        out.append(ch)
        used += size
    result = "".join(out)
    return result if result.strip() else "x"


# --------------------------------------------------------------------------- pieces of names


def _char(rng: random.Random, ranges=_RANGES) -> str:
    lo, hi = rng.choice(ranges)
    return chr(rng.randint(lo, hi))


def _run(rng: random.Random, ranges=_RANGES, lo: int = 1, hi: int = 6) -> str:
    return "".join(_char(rng, ranges) for _ in range(rng.randint(lo, hi)))


def _combining(rng: random.Random) -> str:
    base = rng.choice("aeiouzAEZ")
    return base + "".join(chr(rng.randint(*_COMBINING)) for _ in range(rng.randint(1, 8)))


def _rtl(rng: random.Random) -> str:
    script = rng.choice((_HEBREW, _ARABIC))
    words = " ".join(_run(rng, (script,), 2, 6) for _ in range(rng.randint(1, 3)))
    roll = rng.random()
    if roll < 0.3:
        return f"\u202e{rng.choice(_WORDS)}\u202c"  # right-to-left override around Latin text
    if roll < 0.6:
        return f"\u200f{words}\u200e"
    return words


def _piece(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.30:
        return rng.choice(_WORDS)
    if roll < 0.45:
        return _run(rng)
    if roll < 0.55:
        return _combining(rng)
    if roll < 0.65:
        return _rtl(rng)
    if roll < 0.72:
        return rng.choice(_EMOJI)
    if roll < 0.80:
        return rng.choice(_WORDS) + rng.choice(_INVISIBLE) + rng.choice(_WORDS)
    if roll < 0.95:
        return rng.choice(_WORDS) + rng.choice(NAME_SPECIALS) + rng.choice(_WORDS)
    return rng.choice(_BIDI_CONTROLS) + rng.choice(_WORDS)


def hostile_name(rng: random.Random, limit: int = 256) -> str:
    """A random hostile display name of 1 to 4 pieces, at most limit UTF-16 code units."""
    name = rng.choice((" ", "", "")).join(_piece(rng) for _ in range(rng.randint(1, 4)))
    roll = rng.random()
    if roll < 0.05:
        name = " " + name
    elif roll < 0.10:
        name = name + " "
    elif roll < 0.13:
        name = "#" + name
    return cut(name, limit)


def _long_name(rng: random.Random, length: int) -> str:
    text = ""
    while utf16_len(text) < length:
        text += rng.choice((" ", "")) + _piece(rng).strip()
    text = cut(text, length)
    while utf16_len(text) < length:  # an astral character may have left one unit free
        text += "x"
    return text


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _nick_from(rng: random.Random, text: str, specials: str = MAIL_NICKNAME_SPECIALS) -> str:
    """A valid mail nickname made from text (ASCII-folded), now and then with a special character."""
    base = "".join(c for c in _fold(text) if c.isalnum()) or "n" + str(rng.randint(0, 999))
    if rng.random() < 0.35:
        i = rng.randint(0, len(base))
        base = base[:i] + rng.choice(specials) + base[i:]
    return _tidy_nick(base[: LIMITS["mailNickname"]])


def _tidy_nick(nick: str) -> str:
    nick = re.sub(r"\.{2,}", ".", nick).strip(".")
    return nick or "n"


def _upn_local_from(text: str) -> str:
    local = "".join(c for c in text if c.isascii() and (c.isalnum() or c in UPN_SPECIALS))
    local = re.sub(r"\.{2,}", ".", local).strip(".")[:UPN_LOCAL_MAX].rstrip(".")
    return local or "u"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _date(rng: random.Random, days: int) -> str:
    return (_EPOCH - dt.timedelta(seconds=rng.randrange(days * 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- display names with coverage


Shape = Callable[[list[str]], str]


def _display_shapes(rng: random.Random) -> dict[str, Shape]:
    """Shapes of names that every hostile tenant shows at least once (given enough objects), by name: each
    takes the names so far (for duplicates) and returns a name."""

    def w() -> str:
        return rng.choice(_WORDS)

    shapes: dict[str, Shape] = {f"special {c!r}": (lambda _n, c=c: f"{w()}{c}{w()}") for c in NAME_SPECIALS}
    shapes.update({
        "duplicate": lambda n: n[-1] if n else w(),
        "case variant": lambda n: _case_variant(rng, _cased(n) or w()),
        "leading space": lambda _n: " " + w() + " " + w(),
        "trailing space": lambda _n: w() + " " + w() + " ",
        "leading #": lambda _n: "#" + w(),
        "spaces and #": lambda _n: " #" + w() + " ",
        "astral": lambda _n: w() + " " + _run(rng, _ASTRAL_RANGES, 2, 4),
        "combining": lambda _n: w() + " " + _combining(rng),
        "right-to-left": lambda _n: _rtl(rng) + " " + w(),
        "invisible": lambda _n: w() + rng.choice(_ZERO_WIDTH) + w(),
        "emoji": lambda _n: w() + " " + rng.choice(_EMOJI),
        "long": lambda _n: _long_name(rng, rng.randint(65, 255)),
        "longest": lambda _n: _long_name(rng, LIMITS["displayName"]),
        "case trap": lambda _n: rng.choice(_CASE_TRAPS)[rng.randint(0, 1)],
        "decomposed": lambda _n: unicodedata.normalize("NFD", w() + " " + rng.choice(("Chloé", "Zoë", "Nuñez", "Müller"))),
        # the name before it as Windows AD takes it (equal without accents or width, where Samba sees two names)
        "accent twin": lambda n: _windows_twin(n[-1]) if n else "Jose",
        "width twin": lambda n: _windows_twin(n[-1]) if n else "\uff2a\uff4f\uff53\uff45",
    })
    return shapes


def _windows_twin(name: str) -> str:
    """Another name Windows AD compares equal to `name` (KB 938447: without accents, width): its accents
    dropped, or, when it has none, its ASCII letters and digits in full width, and the other way round."""
    bare = "".join(c for c in unicodedata.normalize("NFD", name) if not unicodedata.combining(c))
    if bare != unicodedata.normalize("NFD", name):
        return unicodedata.normalize("NFC", bare)
    swapped = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else
                      chr(ord(c) - 0xFEE0) if "\uff10" <= c <= "\uff5a" and c.isalnum() else c for c in name)
    return swapped if swapped != name else name + "\u0301"


def _swappable(ch: str) -> bool:
    other = ch.swapcase()
    return len(other) == 1 and other != ch and other.casefold() == ch.casefold()


def _has_case(name: str) -> bool:
    return any(_swappable(ch) for ch in name)


def _case_variant(rng: random.Random, name: str) -> str:
    """The name in other letter case, of the same length: all of it upper or lower case when that keeps
    the length (ß, for one, does not), otherwise one or more letters swapped. An uncased name comes back as is."""
    for variant in (name.upper(), name.lower(), name.swapcase()):
        if variant != name and len(variant) == len(name) and variant.casefold() == name.casefold():
            return variant
    positions = [i for i, ch in enumerate(name) if _swappable(ch)]
    if not positions:
        return name
    chosen = set(rng.sample(positions, rng.randint(1, len(positions))))
    return "".join(ch.swapcase() if i in chosen else ch for i, ch in enumerate(name))


def _cased(names: list[str]) -> str | None:
    """The last of the names that has letters with case."""
    return next((n for n in reversed(names) if _has_case(n)), None)


def _display_names(rng: random.Random, n: int, shapes: list[Shape]) -> list[str]:
    names: list[str] = []
    for i in range(n):
        if i < len(shapes):
            name = shapes[i](names)
        else:
            roll = rng.random()
            if names and roll < 0.10:
                name = rng.choice(names)
            elif names and roll < 0.18:
                name = _case_variant(rng, rng.choice(names)) if _cased(names) else hostile_name(rng)
            else:
                name = hostile_name(rng)
        names.append(cut(name, LIMITS["displayName"]) if name.strip() else "x")
    return names


# --------------------------------------------------------------------------- the tenant


def hostile_tenant(users: int, groups: int, seed: int = 2026, domain: str = "corp.example.test") -> dict[str, Any]:
    """A hostile tenant document (see the module's docstring). domain: the UPN suffix of most users, meant to be
    the DNS name of the domain the tenant is synced into, so that implied UPNs (sAMAccountName@domain) collide.
    With at least 40 users and 12 groups every kind of hostility is present."""
    if len(domain) > UPN_DOMAIN_MAX or not valid_upn(f"x@{domain}"):
        raise ValueError(f"{domain!r} cannot be a UPN suffix (a DNS name of at most {UPN_DOMAIN_MAX} characters)")
    rng = random.Random(seed)
    tenant = {"id": _uuid(rng), "client_id": _uuid(rng), "domain": domain, "displayName": "Hostile Tenant"}
    extra = max(1, users // 50) if users else 0
    others = {kind: _others(rng, kind, extra) for kind in (DEVICES, SERVICE_PRINCIPALS, CONTACTS)}
    user_list = _users(rng, users, domain, others[CONTACTS])
    group_list = _groups(rng, groups, user_list, others)
    return {"tenant": tenant, "users": user_list, **others, "groups": group_list}


def _others(rng: random.Random, kind: str, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        obj: dict[str, Any] = {"id": _uuid(rng), "displayName": hostile_name(rng)}
        if kind == DEVICES:
            obj.update({"deviceId": _uuid(rng), "operatingSystem": rng.choice(("Windows", "iOS", "Android")),
                        "accountEnabled": True})
        elif kind == SERVICE_PRINCIPALS:
            obj.update({"appId": _uuid(rng), "servicePrincipalType": "Application", "accountEnabled": True})
        else:
            nick = _nick_from(rng, obj["displayName"])
            obj.update({"mail": f"{_upn_local_from(nick)}@partner.example", "mailNickname": nick})
        out.append(obj)
    return out


def _nicknames(rng: random.Random, names: list[str]) -> list[str]:
    shapes: list[Shape] = [
        (lambda _n, c=c: _tidy_nick(f"{_fold(rng.choice(_WORDS))}{c}{rng.randint(0, 99)}")) for c in MAIL_NICKNAME_SPECIALS
    ]
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    shapes += [
        lambda _n: "n" + "".join(rng.choice(alphabet) for _ in range(LIMITS["mailNickname"] - 1)),
        lambda n: n[-1] if n else "dup",  # a duplicate
        lambda n: (n[-1].swapcase() if n and n[-1].swapcase() != n[-1] else "CaseOnly"),  # differs only by case
        lambda n: (n[-1] + "+" if n and len(n[-1]) < LIMITS["mailNickname"] else "x+"),  # equal once specials are dropped
    ]
    nicks: list[str] = []
    for i, name in enumerate(names):
        if i < len(shapes):
            nick = shapes[i](nicks)
        elif nicks and rng.random() < 0.08:
            nick = rng.choice(nicks)
        else:
            nick = _nick_from(rng, name)
        nicks.append(nick if valid_mail_nickname(nick) else _tidy_nick("n" + nick.strip(".")))
    return nicks


def _users(rng: random.Random, n: int, domain: str, contacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = _display_names(rng, n, list(_display_shapes(rng).values()))
    nicks = _nicknames(rng, names)
    upns = _upns(rng, nicks, domain)
    soft = _soft_deleted(rng, n)
    users: list[dict[str, Any]] = []
    soft_set = set(soft)
    for i in range(n):
        upn = upns[i]
        mail = upn if rng.random() < 0.8 else None
        street = _long_name(rng, rng.randint(257, LIMITS["streetAddress"])) if i == 2 else (
            cut(hostile_name(rng), 200) if rng.random() < 0.5 else None)
        user: dict[str, Any] = {
            "id": _uuid(rng),
            "accountEnabled": rng.random() >= 0.1,
            "businessPhones": [f"+47 {rng.randrange(10**7, 10**8)}"] if rng.random() < 0.5 else [],
            "city": cut(hostile_name(rng), LIMITS["city"]) if rng.random() < 0.5 else None,
            "department": cut(hostile_name(rng), LIMITS["department"]) if rng.random() < 0.6 else None,
            "displayName": names[i],
            "givenName": cut(hostile_name(rng), LIMITS["givenName"]),
            "jobTitle": cut(hostile_name(rng), LIMITS["jobTitle"]) if rng.random() < 0.6 else None,
            "mail": mail,
            "mailNickname": nicks[i],
            "manager": None,
            "onPremisesSyncEnabled": None,
            "passwordPolicies": "DisablePasswordExpiration" if rng.random() < 0.2 else None,
            "proxyAddresses": [f"SMTP:{mail}"] if mail else [],
            "streetAddress": street,
            "surname": cut(hostile_name(rng), LIMITS["surname"]),
            "userPrincipalName": upn,
            "userType": "Member",
        }
        if i in soft_set:
            user["deletedDateTime"] = _date(rng, 20)
        users.append(user)
    _managers(rng, users, soft, contacts)
    return users


def _upns(rng: random.Random, nicks: list[str], domain: str) -> list[str]:
    """UPNs, unique ignoring case. Some local parts are other users' nicknames (or differ from one only by
    case), so the account name implied by that nickname collides with the UPN in the domain's DNS name."""
    n = len(nicks)
    taken: set[str] = set()
    out: list[str] = []
    forced = [f"{_fold(rng.choice(_WORDS))}{c}{rng.randint(0, 9)}" for c in UPN_SPECIALS if c != "."]
    forced.append("a." + "".join(rng.choice("abcdefghij") for _ in range(UPN_LOCAL_MAX - 2)))
    for i in range(n):
        other = nicks[(i + 1) % n] if n > 1 else nicks[i]
        mode = "forced" if i < len(forced) else ("same", "case", "own", "own")[i % 4]
        if mode == "forced":
            local = forced[i]
        elif mode == "same":
            local = _upn_local_from(other)  # implied-UPN collision with the next user's account name
        elif mode == "case":
            local = _upn_local_from(other).swapcase()  # the same, to a domain that ignores case
        else:
            local = _upn_local_from(nicks[i])
        suffix = domain if mode in ("same", "case") or rng.random() < 0.85 else ALIAS_DOMAIN
        upn = f"{local}@{suffix}"
        k = 1
        while upn.lower() in taken or not valid_upn(upn):
            k += 1
            tail = str(k)
            local = _upn_local_from(local[: UPN_LOCAL_MAX - len(tail)] + tail)
            upn = f"{local}@{suffix}"
        taken.add(upn.lower())
        out.append(upn)
    return out


def _soft_deleted(rng: random.Random, n: int) -> list[int]:
    if n < 10:
        return []
    count = max(2, n // 30)
    return sorted(rng.sample(range(10, n), min(count, n - 10)))


def _managers(rng: random.Random, users: list[dict[str, Any]], soft: list[int], contacts: list[dict[str, Any]]) -> None:
    """A chain of managers, random earlier managers for most others, a contact as one user's manager; never a
    soft-deleted manager, never a cycle (a manager always comes earlier in the list)."""
    n = len(users)
    deleted = set(soft)
    alive = [i for i in range(n) if i not in deleted]
    chain = alive[:7] if n >= 20 else []
    for a, b in zip(chain, chain[1:], strict=False):
        users[b]["manager"] = {"id": users[a]["id"]}
    for j, i in enumerate(alive):
        if j < len(chain) or j == 0:
            continue
        if rng.random() < 0.7:
            users[i]["manager"] = {"id": users[alive[rng.randrange(j)]]["id"]}
    if contacts and len(alive) > 8:
        users[alive[8]]["manager"] = {"@odata.type": ODATA_TYPE[CONTACTS], "id": contacts[0]["id"]}


def _groups(
    rng: random.Random, m: int, users: list[dict[str, Any]], others: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    user_names = [u["displayName"] for u in users]
    user_nicks = [u["mailNickname"] for u in users]
    shapes = _display_shapes(rng)
    cross: list[Shape] = [
        lambda _n: rng.choice(user_names) if user_names else "All",  # the same name as a user
        lambda _n: _case_variant(rng, rng.choice([u for u in user_names if _has_case(u)] or ["All"])),
    ]
    picked = ("duplicate", "case variant", "leading #", "leading space", "trailing space", "right-to-left", "astral",
              "special ','", "special '\\\\'", "special '\\x00'", "longest", "decomposed")
    names = _display_names(rng, m, cross + [shapes[k] for k in picked])
    groups: list[dict[str, Any]] = []
    unified_nicks: set[str] = {x.lower() for x in user_nicks}
    for gi in range(m):
        unified = gi % 5 == 4
        if gi in (1, 3) and user_nicks and not unified:
            nick = rng.choice(user_nicks)  # the same nickname as a user: two accounts, one implied name
        elif gi == 5 and groups:
            nick = groups[-1]["mailNickname"]  # the same nickname as another (security) group
        else:
            nick = _nick_from(rng, names[gi])
        if unified:
            while nick.lower() in unified_nicks:  # Microsoft 365 groups need a nickname of their own
                nick = _tidy_nick(nick[: LIMITS["mailNickname"] - 3] + str(rng.randint(100, 999)))
        unified_nicks.add(nick.lower())
        description = None
        if gi == 2:
            description = _long_name(rng, rng.randint(257, LIMITS["description"]))
        elif rng.random() < 0.5:
            description = hostile_name(rng)
        groups.append({
            "id": _uuid(rng),
            "createdDateTime": _date(rng, 900),
            "description": description,
            "displayName": names[gi],
            "groupTypes": ["Unified"] if unified else [],
            "mail": None,
            "mailEnabled": unified,
            "mailNickname": nick,
            "proxyAddresses": [],
            "securityEnabled": not unified,
            "visibility": "Private" if unified else None,
        })
    _memberships(rng, groups, users, others)
    return groups


def _memberships(
    rng: random.Random, groups: list[dict[str, Any]], users: list[dict[str, Any]], others: dict[str, list[dict[str, Any]]]
) -> None:
    """Large groups first (everyone; half of everyone), then a chain of nested groups, groups of devices,
    service principals and contacts, random nesting towards later groups (so no cycles), some empty groups."""
    m, n = len(groups), len(users)
    ref = lambda kind, obj: {"@odata.type": ODATA_TYPE[kind], "id": obj["id"]}  # noqa: E731
    members: list[list[dict[str, Any]]] = [[] for _ in range(m)]
    non_users = [ref(kind, o) for kind in (DEVICES, SERVICE_PRINCIPALS, CONTACTS) for o in others[kind]]
    for gi in range(m):
        if gi == 0:
            members[gi] = [ref(USERS, u) for u in users] + non_users
        elif gi == 1:
            members[gi] = [ref(USERS, users[i]) for i in sorted(rng.sample(range(n), n // 2))]
        elif gi == 6:
            members[gi] = list(non_users)
        elif gi % 7 == 3:
            members[gi] = []  # empty, and left so
        else:
            size = rng.choice((1, 2, 5, 10, 25))
            chosen = sorted(rng.sample(range(n), min(size, n))) if n else []
            members[gi] = [ref(USERS, users[i]) for i in chosen]
            if non_users and rng.random() < 0.3:
                members[gi].append(rng.choice(non_users))
    chain = list(range(7, min(m, 12)))  # 7 > 8 > 9 > 10 > 11
    for a, b in zip(chain, chain[1:], strict=False):
        members[a].append(ref(GROUPS, groups[b]))
    for gi in range(2, m - 1):
        if gi not in chain and gi % 7 != 3 and rng.random() < 0.25:
            for j in sorted(rng.sample(range(gi + 1, m), min(rng.randint(1, 3), m - gi - 1))):
                members[gi].append(ref(GROUPS, groups[j]))
    for gi, group in enumerate(groups):
        group["members"] = members[gi]


# --------------------------------------------------------------------------- a batch of changes

CHANGE_KINDS = (
    "rename_into_collision", "rename_out_of_collision", "upn_change", "soft_delete", "hard_delete", "restore",
    "membership_move", "manager_change", "attribute_change",
)


@dataclass
class Change:
    """One change of a batch: what it did, to which object, with which values, and how the tenant took it
    ("applied", or "refused: <Graph error code>" when the tenant refused it as Graph would)."""

    op: str
    kind: str
    id: str
    values: dict[str, Any] = field(default_factory=dict)
    outcome: str = "applied"


class _Model:
    """What a batch knows of the tenant: present users and groups in a stable order, the soft-deleted ones."""

    def __init__(self, admin: EmulatorAdmin):
        doc = admin.export()
        deleted = admin.deleted_items()
        self.domain = str((doc.get("tenant") or {}).get("domain") or "corp.example.test")
        self.objects: dict[str, dict[str, dict[str, Any]]] = {
            USERS: {u["id"]: u for u in doc.get("users", [])},
            GROUPS: {g["id"]: {k: v for k, v in g.items() if k != "members"} for g in doc.get("groups", [])},
        }
        self.soft: dict[str, dict[str, dict[str, Any]]] = {kind: {o["id"]: o for o in deleted.get(kind, [])}
                                                           for kind in (USERS, GROUPS)}

    def named(self) -> list[tuple[str, dict[str, Any]]]:
        return [(kind, o) for kind in (USERS, GROUPS) for o in self.objects[kind].values()]

    def upns(self) -> set[str]:
        return {str(u.get("userPrincipalName", "")).lower() for u in self.objects[USERS].values()}


def random_changes(admin: EmulatorAdmin, count: int, seed: int) -> list[Change]:
    """Apply count seeded changes to the tenant behind admin (an EmulatorAdmin, e.g. RunningEmulator.admin)
    and return them. The same tenant state and seed give the same changes. A change the tenant refuses (a
    restore whose UPN another user took meanwhile, say) is kept with its outcome; the batch goes on."""
    rng = random.Random(seed)
    model = _Model(admin)
    done: list[Change] = []
    steps = {
        "rename_into_collision": _rename_into, "rename_out_of_collision": _rename_out, "upn_change": _upn_change,
        "soft_delete": _soft_delete, "hard_delete": _hard_delete, "restore": _restore,
        "membership_move": _membership_move, "manager_change": _manager_change,
        "attribute_change": _attribute_change,
    }
    pending = list(CHANGE_KINDS)  # every kind once first, then at random
    attempts = misses = 0
    while len(done) < count and attempts < count * 20:
        attempts += 1
        op = pending[0] if pending else rng.choice(CHANGE_KINDS)
        change = steps[op](rng, admin, model)
        if change is not None:
            done.append(change)
        if pending:
            misses = 0 if change is not None else misses + 1
            if change is not None or misses >= 10:
                pending.pop(0)
                misses = 0
    return done


def _call(change: Change, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except AdminError as exc:
        change.outcome = f"refused: {exc.code}"
        return None


def _rename_into(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    named = model.named()
    if len(named) < 2:
        return None
    (kind, obj), (_k, other) = rng.sample(named, 2)
    roll = rng.random()
    values: dict[str, Any] = {"displayName": other["displayName"] if roll < 0.5 else
                              _case_variant(rng, other["displayName"]) if roll < 0.8 else
                              _windows_twin(other["displayName"])}
    unified = "Unified" in (obj.get("groupTypes") or [])
    if not unified and rng.random() < 0.5 and other.get("mailNickname"):
        values["mailNickname"] = other["mailNickname"]
    return _update(admin, model, "rename_into_collision", kind, obj, values)


def _rename_out(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    named = model.named()
    if not named:
        return None
    seen: dict[str, int] = {}
    for _kind, obj in named:
        key = str(obj.get("displayName")).casefold()
        seen[key] = seen.get(key, 0) + 1
    colliding = [(k, o) for k, o in named if seen[str(o.get("displayName")).casefold()] > 1]
    kind, obj = rng.choice(colliding or named)
    name = f"{hostile_name(rng, 200)} {rng.randrange(10**6)}"
    values = {"displayName": name, "mailNickname": _tidy_nick(_nick_from(rng, name)[:56] + str(rng.randrange(10**6)))}
    return _update(admin, model, "rename_out_of_collision", kind, obj, values)


def _upn_change(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    users = list(model.objects[USERS].values())
    if not users:
        return None
    user = rng.choice(users)
    local, _, suffix = str(user.get("userPrincipalName", "x@" + model.domain)).rpartition("@")
    roll = rng.random()
    if roll < 0.4:
        _k, other = rng.choice(model.named())  # into another account's implied UPN
        local = _upn_local_from(str(other.get("mailNickname") or "x"))
        suffix = model.domain
    elif roll < 0.6:
        local = local.swapcase()  # the same UPN to Graph, another spelling to the domain
    else:
        local = _upn_local_from(_nick_from(rng, hostile_name(rng))) + str(rng.randrange(1000))
        suffix = rng.choice((model.domain, ALIAS_DOMAIN))
    upn = f"{local}@{suffix}"
    if not valid_upn(upn) or (upn.lower() in model.upns() and upn.lower() != str(user["userPrincipalName"]).lower()):
        upn = f"{_upn_local_from(local)[:50]}{rng.randrange(10**6)}@{suffix}"
    return _update(admin, model, "upn_change", USERS, user, {"userPrincipalName": upn})


def _update(admin: EmulatorAdmin, model: _Model, op: str, kind: str, obj: dict[str, Any], values: dict) -> Change:
    change = Change(op, kind, obj["id"], values)
    updated = _call(change, lambda: admin.update_object(kind, obj["id"], values))
    if updated is not None:
        model.objects[kind][obj["id"]] = {k: v for k, v in updated.items() if k != "members"}
    return change


def _soft_delete(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    kind = rng.choice((USERS, USERS, GROUPS))
    if not model.objects[kind]:
        return None
    oid = rng.choice(list(model.objects[kind]))
    change = Change("soft_delete", kind, oid)
    _call(change, lambda: admin.delete_object(kind, oid))
    if change.outcome == "applied":
        model.soft[kind][oid] = model.objects[kind].pop(oid)
    return change


def _hard_delete(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    kind = rng.choice((USERS, GROUPS))
    pool = [(oid, "soft") for oid in model.soft[kind]] + [(oid, "present") for oid in model.objects[kind]]
    if not pool:
        return None
    oid, where = pool[0] if model.soft[kind] and rng.random() < 0.5 else rng.choice(pool)
    change = Change("hard_delete", kind, oid, {"was": where})
    _call(change, lambda: admin.delete_object(kind, oid, permanent=True))
    if change.outcome == "applied":
        (model.soft if where == "soft" else model.objects)[kind].pop(oid, None)
    return change


def _restore(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    kinds = [k for k in (USERS, GROUPS) if model.soft[k]]
    if not kinds:
        return None
    kind = rng.choice(kinds)
    oid = rng.choice(list(model.soft[kind]))
    change = Change("restore", kind, oid)
    restored = _call(change, lambda: admin.restore_object(kind, oid))
    if restored is not None:
        model.soft[kind].pop(oid)
        model.objects[kind][oid] = {k: v for k, v in restored.items() if k != "members"}
    return change


def _membership_move(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    """A member that is not a group (no cycles) leaves one group for another."""
    gids = list(model.objects[GROUPS])
    if len(gids) < 2:
        return None
    source, target = rng.sample(gids, 2)
    candidates = [m for m in admin.members(source) if m["@odata.type"] != ODATA_TYPE[GROUPS]]
    if not candidates:
        return None
    member = rng.choice(candidates)
    if any(m["id"] == member["id"] for m in admin.members(target)):
        return None
    change = Change("membership_move", GROUPS, source, {"member": member, "to": target})
    _call(change, lambda: admin.remove_member(source, member["id"]))
    if change.outcome == "applied":
        _call(change, lambda: admin.add_member(target, member["id"], member["@odata.type"]))
    return change


def _manager_change(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    """A new manager (never the user, never one of the user's reports: no cycles), or none."""
    users = model.objects[USERS]
    if len(users) < 2:
        return None
    uid = rng.choice(list(users))
    manager: dict[str, Any] | None = None
    if rng.random() >= 0.25:
        candidates = [m for m in users if m != uid and not _reports_to(users, m, uid)]
        if not candidates:
            return None
        manager = {"id": rng.choice(candidates)}
    return _update(admin, model, "manager_change", USERS, users[uid], {"manager": manager})


def _attribute_change(rng: random.Random, admin: EmulatorAdmin, model: _Model) -> Change | None:
    """A change that names nothing: a user's job title, department, city, street, phones or enabled state, or
    a group's description; hostile values, sometimes past what the domain holds, sometimes cleared."""
    kind = USERS if rng.random() < 0.75 or not model.objects[GROUPS] else GROUPS
    if not model.objects[kind]:
        return None
    obj = model.objects[kind][rng.choice(list(model.objects[kind]))]
    if kind == GROUPS:
        roll = rng.random()
        values: dict[str, Any] = {"description": None if roll < 0.2 else hostile_name(rng) if roll < 0.8
                                  else _long_name(rng, rng.randint(257, LIMITS["description"]))}
        return _update(admin, model, "attribute_change", kind, obj, values)
    choices = {
        "jobTitle": lambda: cut(hostile_name(rng), LIMITS["jobTitle"]),
        "department": lambda: cut(hostile_name(rng), LIMITS["department"]),
        "city": lambda: cut(hostile_name(rng), LIMITS["city"]),
        "streetAddress": lambda: _long_name(rng, rng.randint(257, LIMITS["streetAddress"])) if rng.random() < 0.2
        else cut(hostile_name(rng), 200),
        "businessPhones": lambda: [f"+47 {rng.randrange(10**7, 10**8)}"],
        "accountEnabled": lambda: not obj.get("accountEnabled", True),
    }
    picked = rng.sample(sorted(choices), rng.randint(1, 3))
    values = {name: (None if name not in ("accountEnabled", "businessPhones") and rng.random() < 0.2
                     else [] if name == "businessPhones" and rng.random() < 0.2 else choices[name]())
              for name in picked}
    return _update(admin, model, "attribute_change", kind, obj, values)


def _reports_to(users: dict[str, dict[str, Any]], uid: str, boss: str) -> bool:
    """Whether boss is uid's manager, or its manager's manager, and so on."""
    seen: list[str] = []
    current = uid
    while current in users and current not in seen:
        seen.append(current)
        manager = users[current].get("manager")
        current = manager.get("id") if isinstance(manager, dict) else None
        if current == boss:
            return True
    return False
