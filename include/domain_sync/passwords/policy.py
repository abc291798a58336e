"""Passwords the sync sets in the domain: the domain's own policy, random passwords that meet it, and
the rule that a password only ever travels over an encrypted connection.

The policy is read from the domain: the domain object's minPwdLength, pwdProperties (bit 1: complexity)
and pwdHistoryLength, which AD keeps equal to the Default Domain Policy, and every fine-grained password
policy (msDS-PasswordSettings in CN=Password Settings Container,CN=System) the account may read; the
strictest of them all applies, since a new account may fall under any PSO once it joins its groups.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from domain_sync.domain import entry_exists, ldap_values, read_entry, search_entries
from domain_sync.errors import PermanentError

DOMAIN_PASSWORD_COMPLEX = 0x1  # pwdProperties (MS-ADTS 3.1.1.3.1.1.1 / MS-SAMR DOMAIN_PASSWORD_COMPLEX)
# Long enough to be safe whatever the domain asks; the domain's minimum wins when it is longer.
DEFAULT_LENGTH = 20
# No quotes (unicodePwd is the quoted password), no spaces, no look-alikes a helpdesk would misread.
UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
LOWER = "abcdefghijkmnopqrstuvwxyz"
DIGITS = "23456789"
SYMBOLS = "!#%+-.:=?@_"
# Windows splits the display name at these to find the tokens a complex password may not contain.
_NAME_DELIMITERS = re.compile(r"[,.\-_#\t ]+")


class DomainPolicyUnreadable(PermanentError):
    """The domain does not say where its password policy is (no default naming context, no domain object)."""


class InsecureConnection(PermanentError):
    """A password was about to go over an LDAP connection that is neither LDAPS nor StartTLS."""


def is_encrypted(conn) -> bool:
    """True for an LDAPS connection or one whose StartTLS has started."""
    return bool(getattr(getattr(conn, "server", None), "ssl", False) or getattr(conn, "tls_started", False))


def require_encrypted(conn, what: str) -> None:
    """Refuse to send a password in clear text, whatever the server would accept (Samba takes unicodePwd
    over plain 389; Windows AD does not)."""
    if not is_encrypted(conn):
        raise InsecureConnection(f"{what}: refused to send a password over an unencrypted LDAP connection; use LDAPS "
                                 f"(port 636) or start_tls in the domain connection")


def unicode_pwd(password: str) -> bytes:
    """The value AD takes for unicodePwd: the password in double quotes, UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 7
    complexity: bool = True
    history_length: int = 24
    # where the numbers came from: "domain" or "domain+N PSOs" (read_policy), "defaults" (not read: tests)
    source: str = "defaults"

    def to_json(self) -> dict:
        return asdict(self)


def _int(values: list[str], default: int) -> int:
    try:
        return int(values[0]) if values else default
    except ValueError:
        return default


def read_policy(conn, base_dn: str | None = None) -> PasswordPolicy:
    """The strictest of the domain's policy and the fine-grained policies the connection may read.

    Fails closed: a read that does not complete raises DomainReadError (domain_sync.domain), and a domain
    entry that is not there raises DomainPolicyUnreadable; passwords are never made for a policy that
    was not read. Only an attribute the domain does not hold takes its default (AD's own)."""
    if base_dn is None:
        root = read_entry(conn, "", ["defaultNamingContext"]) or {}
        base_dn = next(iter(ldap_values(root.get("defaultNamingContext"))), None)
        if base_dn is None:
            raise DomainPolicyUnreadable("the domain's root DSE names no defaultNamingContext: its password policy "
                                         "cannot be read")
    domain = read_entry(conn, base_dn, ["minPwdLength", "pwdProperties", "pwdHistoryLength"])
    if domain is None:
        raise DomainPolicyUnreadable(f"the domain object {base_dn!r} does not exist (noSuchObject): its password "
                                     f"policy (minPwdLength, pwdProperties, pwdHistoryLength) cannot be read")
    domain = {k.lower(): v for k, v in domain.items()}
    min_length = _int(ldap_values(domain.get("minpwdlength")), 7)
    complexity = bool(_int(ldap_values(domain.get("pwdproperties")), 1) & DOMAIN_PASSWORD_COMPLEX)
    history = _int(ldap_values(domain.get("pwdhistorylength")), 24)
    psos = 0
    container = f"CN=Password Settings Container,CN=System,{base_dn}"
    # A domain without the container (before Windows Server 2008's schema) has no fine-grained policies.
    found = search_entries(conn, container, "(objectClass=msDS-PasswordSettings)", scope="LEVEL", attributes=[
        "msDS-MinimumPasswordLength", "msDS-PasswordComplexityEnabled", "msDS-PasswordHistoryLength"]
    ) if entry_exists(conn, container) else []
    for entry in found:
        attrs = {k.lower(): v for k, v in entry["attributes"].items()}
        psos += 1
        min_length = max(min_length, _int(ldap_values(attrs.get("msds-minimumpasswordlength")), 0))
        complexity = complexity or ldap_values(attrs.get("msds-passwordcomplexityenabled"))[:1] == ["TRUE"]
        history = max(history, _int(ldap_values(attrs.get("msds-passwordhistorylength")), 0))
    return PasswordPolicy(min_length, complexity, history, f"domain+{psos} PSOs" if psos else "domain")


def forbidden_parts(names: Iterable[str | None]) -> list[str]:
    """What a complex password may not contain (Windows' rule): the account name when it has 3 or more
    characters, and each token of 3 or more characters of the display name (lower case)."""
    parts = []
    for i, name in enumerate(names):
        if not name:
            continue
        tokens = [name] if i == 0 else _NAME_DELIMITERS.split(name)
        parts.extend(t.lower() for t in tokens if len(t) >= 3)
    return parts


def generate_password(policy: PasswordPolicy, account_name: str | None = None, display_name: str | None = None,
                      length: int = DEFAULT_LENGTH) -> str:
    """A random password meeting `policy`: at least its minimum length (and `length`), one character of each
    class (upper, lower, digit, symbol: more than complexity's three of five), never containing the
    account name or a display-name token. From `secrets`; never stored, logged or returned by a stage."""
    length = max(length, policy.min_length, 4)
    avoid = forbidden_parts([account_name, display_name])
    alphabet = UPPER + LOWER + DIGITS + SYMBOLS
    while True:
        chars = [secrets.choice(UPPER), secrets.choice(LOWER), secrets.choice(DIGITS), secrets.choice(SYMBOLS)]
        chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        password = "".join(chars)
        if not any(part in password.lower() for part in avoid):
            return password
