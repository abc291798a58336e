"""A local Samba AD DC for CORP.EXAMPLE.TEST (or another realm) kept entirely inside one folder (the demo's and
the tests' domain).

    python -m local_domain provision|start|stop|status|connection DIR [--address 127.0.0.1] [--realm REALM]
    (scripts/local-domain runs this with the project's .venv python)

- ``provision``: create the domain in DIR (skipped when DIR is already provisioned); ``--realm``: its realm
  (default CORP.EXAMPLE.TEST; its first label is the NetBIOS domain name, the base DN its DC= components).
- ``start``: start the DC as a daemon and wait until LDAPS on ADDRESS:636 answers with a certificate that
  validates against DIR/private/tls/ca.pem for dc1.<the realm's DNS name>.
- ``stop``: stop the DC (SIGTERM, then SIGKILL of its process group after a timeout).
- ``status``: "running" or "stopped".
- ``connection``: the Airflow connection of the domain (contains the admin password).

Files in DIR: etc/smb.conf, private/ (the directory database, private/tls/ca.pem once started),
admin.password (0600), krb5.conf (realm with kdc = ADDRESS), domain.json (the connection facts with
"password_file" instead of the password), log/log.samba, run/samba.pid.

Addresses: Samba's ports cannot be changed, so each DC needs an address of its own. The DC binds to ADDRESS
only ("interfaces = ADDRESS", "bind interfaces only = yes"). Samba only binds addresses that are configured
on an interface (127.0.0.0/8 being routed to lo is not enough), so ``start`` adds a missing 127.x.y.z address
to lo with ``ip addr add ADDRESS/8 dev lo`` (iproute2, root). Two DCs, for example 127.0.0.1 (demo) and
127.0.0.2 (tests), then run side by side. Address 0.0.0.0 binds every interface (for a container); clients
then use the host's name.

Environment: LOCAL_DOMAIN_ADMIN_PASSWORD (provision: use this password instead of a random one),
LOCAL_DOMAIN_START_TIMEOUT (seconds, default 60), LOCAL_DOMAIN_STOP_TIMEOUT (seconds, default 20).

Standard library only: the module also runs with a bare Debian python3 (the compose file's DC container).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REALM = "CORP.EXAMPLE.TEST"  # the default realm (provision --realm gives another)
HOST_NAME = "dc1"  # at most 15 characters, not the NetBIOS domain name
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class DomainNames:
    """The names a domain of one realm goes by: its NetBIOS name, the DC's name on its TLS certificate, the base
    DN and the administrator's DN."""

    realm: str

    @property
    def dns_name(self) -> str:
        return self.realm.lower()

    @property
    def netbios_domain(self) -> str:
        return self.realm.split(".")[0][:15]

    @property
    def server_name(self) -> str:
        return f"{HOST_NAME}.{self.dns_name}"

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={part}" for part in self.dns_name.split("."))

    @property
    def bind_dn(self) -> str:
        return f"CN=Administrator,CN=Users,{self.base_dn}"


def domain_names(realm: str | None = None) -> DomainNames:
    """The names of `realm` (a DNS name of two labels or more, given in any case; default REALM)."""
    realm = (realm or REALM).strip().rstrip(".").upper()
    labels = realm.split(".")
    if len(labels) < 2 or not all(_DNS_LABEL.match(label) for label in labels) or len(realm) > 253:
        raise LocalDomainError(f"{realm!r} is not a realm: a DNS name of two labels or more (CORP.EXAMPLE.TEST)")
    if labels[0][:15] == HOST_NAME.upper() or labels[0][:1].isdigit():
        raise LocalDomainError(f"{realm!r}: its first label gives the NetBIOS domain name, which may not be the "
                               f"DC's host name {HOST_NAME!r} nor start with a digit")
    return DomainNames(realm)


_DEFAULT_NAMES = DomainNames(REALM)
NETBIOS_DOMAIN = _DEFAULT_NAMES.netbios_domain
SERVER_NAME = _DEFAULT_NAMES.server_name  # the name on the default DC's TLS certificate
BASE_DN = _DEFAULT_NAMES.base_dn
BIND_DN = _DEFAULT_NAMES.bind_dn
LDAP_PORT = 389
LDAPS_PORT = 636
DEFAULT_ADDRESS = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"
COMMANDS = ("provision", "start", "stop", "status", "connection")

# Settings provision does not keep, written into [global] afterwards: only the services an LDAP/Kerberos DC
# needs, simple binds without TLS on 389 (tests), no fsync (a local, disposable domain), and a replaced
# password that stops working at once: Samba (like Windows for NTLM) otherwise accepts the old one in simple
# binds for 60 minutes after a change or reset (smb.conf "old password allowed period"; Kerberos never does).
EXTRA_GLOBAL_SETTINGS = (
    "server services = ldap, cldap, kdc",
    "ldap server require strong auth = no",
    "ldb:nosync = true",
    "old password allowed period = 0",
)


class LocalDomainError(RuntimeError):
    """A local-domain command failed; the message says why."""


def say(message: str) -> None:
    print(f"local-domain: {message}", file=sys.stderr, flush=True)


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise LocalDomainError(f"{name} must be a number of seconds, got {value!r}") from None


def check_address(address: str) -> str:
    """``address`` when it is an IPv4 address, else LocalDomainError."""
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise LocalDomainError(f"--address must be an IPv4 address, got '{address}'") from None
    return address


def connect_address(address: str) -> str:
    """The address clients connect to; 0.0.0.0 (all interfaces) is reached through 127.0.0.1 locally."""
    return DEFAULT_ADDRESS if address == ALL_INTERFACES else address


def port_open(address: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on address:port."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def tls_ready(address: str, ca_file: Path | str, server_name: str = SERVER_NAME, port: int = LDAPS_PORT) -> bool:
    """True when address:port completes a TLS handshake validated against ca_file for server_name."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        with (
            socket.create_connection((address, port), timeout=2) as sock,
            context.wrap_socket(sock, server_hostname=server_name),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def alive(pid: int, group: bool = False) -> bool:
    """True while process pid exists; with group, while any process of the process group pid does
    (samba daemonizes with setsid: its PID is the group of all its workers)."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class DomainFolder:
    """The files of one domain folder."""

    dir: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "dir", Path(os.path.realpath(self.dir)))

    @property
    def smb_conf(self) -> Path:
        return self.dir / "etc" / "smb.conf"

    @property
    def pid_file(self) -> Path:
        return self.dir / "run" / "samba.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / "log.samba"

    @property
    def provision_log(self) -> Path:
        return self.dir / "log" / "provision.log"

    @property
    def ca_file(self) -> Path:
        return self.dir / "private" / "tls" / "ca.pem"

    @property
    def password_file(self) -> Path:
        return self.dir / "admin.password"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def krb5_conf(self) -> Path:
        return self.dir / "krb5.conf"

    @property
    def domain_json(self) -> Path:
        return self.dir / "domain.json"

    @property
    def marker(self) -> Path:
        return self.dir / ".provisioned"

    def is_provisioned(self) -> bool:
        return self.marker.is_file() and self.smb_conf.is_file() and self.domain_json.is_file()

    def require_provisioned(self) -> None:
        if not self.is_provisioned():
            raise LocalDomainError(
                f"{self.dir} is not a provisioned domain folder (run: scripts/local-domain provision {self.dir})"
            )

    @property
    def names(self) -> DomainNames:
        """The names of the realm the folder was provisioned for (domain.json; REALM for older folders)."""
        try:
            realm = json.loads(self.domain_json.read_text()).get("extra", {}).get("realm")
        except (OSError, ValueError):
            realm = None
        return DomainNames(realm or REALM)

    def recorded_address(self) -> str:
        """The address the DC binds: "interfaces = ADDRESS" in smb.conf, 0.0.0.0 when it binds all."""
        match = re.search(r"(?m)^[ \t]*interfaces[ \t]*=(.*)$", self.smb_conf.read_text())
        return "".join(match.group(1).split()) if match else ALL_INTERFACES

    def samba_pid(self) -> int | None:
        """The PID of this folder's running samba, or None."""
        try:
            pid = int("".join(ch for ch in self.pid_file.read_text() if ch.isdigit()))
            exe = os.readlink(f"/proc/{pid}/exe")
        except (OSError, ValueError):
            return None
        return pid if os.path.basename(exe).startswith("samba") else None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_file.is_file():
            return f"(no log file at {self.log_file})"
        tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join([f"---- last lines of {self.log_file} ----", *tail, "----"])


def _require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise LocalDomainError(f"'{command}' needs root (Samba's AD DC runs as root)")


def _require_command(name: str) -> str:
    """The path of command ``name`` (also looked for in the sbin folders), or LocalDomainError."""
    path = shutil.which(name, path=os.environ.get("PATH", os.defpath) + ":/usr/sbin:/sbin")
    if path is None:
        raise LocalDomainError(f"{name} is missing: run scripts/bootstrap.sh")
    return path


def _run(args: list[str], log: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run args; its output is appended to log when given, else returned."""
    if log is None:
        return subprocess.run(args, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    with log.open("a") as out:
        return subprocess.run(args, check=False, stdout=out, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


def connection_facts(folder: DomainFolder, address: str, with_password: bool,
                     names: DomainNames | None = None) -> dict[str, Any]:
    """The Airflow connection of the domain; "password_file" instead of the password unless with_password.
    `names`: the realm's (default: the one the folder records)."""
    names = names or folder.names
    conn: dict[str, Any] = {"conn_type": "ldap", "host": address, "port": LDAPS_PORT, "login": names.bind_dn}
    if with_password:
        conn["password"] = folder.password
    else:
        conn["password_file"] = str(folder.password_file)
    conn["extra"] = {
        "base_dn": names.base_dn,
        "ca_file": str(folder.ca_file),
        "tls_server_name": names.server_name,
        "realm": names.realm,
    }
    return conn


def connection_json(conn: dict[str, Any]) -> str:
    return json.dumps(conn, indent=2) + "\n"


def krb5_conf_text(kdc: str, names: DomainNames = _DEFAULT_NAMES) -> str:
    """A krb5.conf naming the DC as KDC (the one provision writes relies on DNS, which this DC does not serve)."""
    realm, domain = names.realm, names.dns_name
    return (
        f"[libdefaults]\n\tdefault_realm = {realm}\n\tdns_lookup_realm = false\n\tdns_lookup_kdc = false\n\n"
        f"[realms]\n\t{realm} = {{\n\t\tkdc = {kdc}\n\t\tkpasswd_server = {kdc}\n\t}}\n\n"
        f"[domain_realm]\n\t.{domain} = {realm}\n\t{domain} = {realm}\n"
    )


def add_global_settings(smb_conf_text: str) -> str:
    """smb.conf with EXTRA_GLOBAL_SETTINGS at the top of [global], replacing the "server services" line."""
    text = re.sub(r"(?m)^[ \t]*server services[ \t]*=.*\n", "", smb_conf_text)
    extra = "".join(f"\t{line}\n" for line in EXTRA_GLOBAL_SETTINGS)
    text, count = re.subn(r"(?m)^\[global\][ \t]*\n", lambda m: m.group(0) + extra, text, count=1)
    if count != 1:
        raise LocalDomainError("no [global] section in smb.conf")
    return text


def new_admin_password() -> str:
    """Upper, lower, digit and symbol: meets the domain's complexity rules."""
    return "Dc1-" + secrets.token_urlsafe(24) + "-x9"


# ---------------------------------------------------------------- provision
def provision(directory: Path | str, address: str | None = None, admin_password: str | None = None,
              realm: str | None = None) -> DomainFolder:
    """Create the domain of ``realm`` (default REALM) in ``directory`` bound to ``address`` (default 127.0.0.1);
    nothing when already there.

    The admin password is ``admin_password``, else LOCAL_DOMAIN_ADMIN_PASSWORD, else a random one.
    """
    folder = DomainFolder(Path(directory))
    if address is not None:
        check_address(address)
    names = domain_names(realm)
    if folder.is_provisioned():
        recorded = folder.recorded_address()
        if address is not None and address != recorded:
            raise LocalDomainError(f"{folder.dir} is already provisioned for address {recorded}, not {address}")
        if realm is not None and names != folder.names:
            raise LocalDomainError(f"{folder.dir} is already provisioned for realm {folder.names.realm}, not {names.realm}")
        say(f"{folder.dir} is already provisioned (address {recorded}); nothing to do")
        return folder
    address = address or DEFAULT_ADDRESS
    _require_root("provision")
    samba_tool = _require_command("samba-tool")
    if folder.dir.is_dir() and any(folder.dir.iterdir()):
        raise LocalDomainError(f"{folder.dir} is not empty but holds no finished provision; remove it and run again")
    folder.dir.mkdir(parents=True, exist_ok=True)
    folder.dir.chmod(0o700)
    for sub in ("log", "run"):
        (folder.dir / sub).mkdir(exist_ok=True)

    password = admin_password or os.environ.get("LOCAL_DOMAIN_ADMIN_PASSWORD") or new_admin_password()
    fd = os.open(folder.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)
    folder.password_file.chmod(0o600)

    d = folder.dir
    options = [
        f"--option=log file={folder.log_file}",
        f"--option=pid directory={d / 'run'}",
        f"--option=ncalrpc dir={d / 'run' / 'ncalrpc'}",
        f"--option=winbindd socket directory={d / 'run' / 'winbindd'}",
        f"--option=ntp signd socket directory={d / 'run' / 'ntp_signd'}",
        f"--option=usershare path={d / 'state' / 'usershares'}",
        f"--option=smb passwd file={d / 'private' / 'smbpasswd'}",
    ]
    if address != ALL_INTERFACES:
        options += [f"--option=interfaces={address}", "--option=bind interfaces only=yes"]

    say(f"provisioning {names.realm} in {d} (address {address})")
    started = time.monotonic()
    folder.provision_log.write_text("")
    result = _run(
        [
            samba_tool, "domain", "provision",
            f"--targetdir={d}",
            f"--realm={names.realm}",
            f"--domain={names.netbios_domain}",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--backend-store=mdb",
            f"--host-name={HOST_NAME}",
            f"--host-ip={connect_address(address)}",
            f"--adminpass={password}",
            *options,
        ],
        log=folder.provision_log,
    )
    if result.returncode != 0:
        tail = "\n".join(folder.provision_log.read_text(errors="replace").splitlines()[-30:])
        raise LocalDomainError(f"{tail}\nsamba-tool domain provision failed (full output: {folder.provision_log})")

    # The Administrator's password would otherwise expire after 42 days and lock a long-lived demo out.
    result = _run(
        [samba_tool, "user", "setexpiry", "Administrator", "--noexpiry",
         "-H", str(d / "private" / "sam.ldb"), "-s", str(folder.smb_conf)],
        log=folder.provision_log,
    )
    if result.returncode != 0:
        raise LocalDomainError("could not disable password expiry of Administrator")

    folder.smb_conf.write_text(add_global_settings(folder.smb_conf.read_text()))
    folder.krb5_conf.write_text(krb5_conf_text(connect_address(address), names))
    folder.domain_json.write_text(connection_json(connection_facts(folder, connect_address(address), with_password=False,
                                                                   names=names)))
    folder.marker.touch()
    say(f"provisioned in {time.monotonic() - started:.0f} s; admin password in {folder.password_file}")
    return folder


# ---------------------------------------------------------------- start
def _ensure_address(address: str) -> None:
    """Add a missing 127.x.y.z address to lo; fail for other addresses not configured on an interface."""
    if address == ALL_INTERFACES:
        return
    ip = _require_command("ip")
    listing = _run([ip, "-o", "-4", "addr", "show"]).stdout
    if re.search(rf"inet {re.escape(address)}/", listing):
        return
    if not address.startswith("127."):
        raise LocalDomainError(f"{address} is not configured on any interface")
    say(f"adding {address} to the loopback interface (ip addr add {address}/8 dev lo)")
    result = _run([ip, "addr", "add", f"{address}/8", "dev", "lo"])
    if result.returncode != 0:
        raise LocalDomainError(f"could not add {address} to lo (needs root and CAP_NET_ADMIN): {result.stderr.strip()}")


def _wait_until_ready(folder: DomainFolder, pid: int, address: str, timeout: float) -> None:
    target = connect_address(address)
    deadline = time.monotonic() + timeout
    while True:
        if folder.ca_file.is_file() and tls_ready(target, folder.ca_file, folder.names.server_name):
            return
        if not alive(pid):
            raise LocalDomainError(
                f"{folder.log_tail()}\nsamba (pid {pid}) exited before LDAPS answered on {target}:{LDAPS_PORT}"
            )
        if time.monotonic() >= deadline:
            raise LocalDomainError(
                f"{folder.log_tail()}\nLDAPS on {target}:{LDAPS_PORT} did not answer a TLS handshake validated "
                f"against {folder.ca_file} for {folder.names.server_name} within {timeout:g}s"
            )
        time.sleep(0.2)


def start(directory: Path | str, address: str | None = None, timeout: float | None = None) -> int:
    """Start the DC (nothing when it runs) and wait until LDAPS validates; its PID.

    ``address``, when given, must be the one the folder was provisioned for.
    """
    folder = DomainFolder(Path(directory))
    folder.require_provisioned()
    timeout = _env_seconds("LOCAL_DOMAIN_START_TIMEOUT", 60) if timeout is None else timeout
    recorded = folder.recorded_address()
    if address is not None and check_address(address) != recorded:
        raise LocalDomainError(f"{folder.dir} was provisioned for address {recorded}, not {address}")
    pid = folder.samba_pid()
    if pid is not None:
        _wait_until_ready(folder, pid, recorded, timeout)
        say(f"already running (pid {pid}) on {recorded}")
        return pid
    _require_root("start")
    samba = _require_command("samba")
    _ensure_address(recorded)
    target = connect_address(recorded)
    if port_open(target, LDAPS_PORT):
        raise LocalDomainError(f"another process already listens on {target}:{LDAPS_PORT} (another DC on the same address?)")
    for sub in ("log", "run"):
        (folder.dir / sub).mkdir(exist_ok=True)
    folder.pid_file.unlink(missing_ok=True)
    started = time.monotonic()
    # samba daemonizes itself (new session, PID written to run/samba.pid).
    # -l keeps samba from creating a log file under /var/log/samba before it reads smb.conf.
    result = _run([samba, "-s", str(folder.smb_conf), "-l", str(folder.dir / "log")], log=folder.dir / "log" / "samba.stdout")
    if result.returncode != 0:
        raise LocalDomainError(f"{folder.log_tail()}\nsamba failed to start")
    deadline = time.monotonic() + 10
    while (pid := folder.samba_pid()) is None:
        if time.monotonic() >= deadline:
            raise LocalDomainError(f"{folder.log_tail()}\nsamba wrote no PID file at {folder.pid_file}")
        time.sleep(0.1)
    _wait_until_ready(folder, pid, recorded, timeout)
    say(f"started (pid {pid}) on {recorded}; LDAPS ready after {time.monotonic() - started:.0f} s")
    return pid


# ---------------------------------------------------------------- stop / status / connection
def stop(directory: Path | str, timeout: float | None = None) -> None:
    """Stop the DC: SIGTERM, then SIGKILL of its process group after ``timeout`` (default 20 s)."""
    folder = DomainFolder(Path(directory))
    timeout = _env_seconds("LOCAL_DOMAIN_STOP_TIMEOUT", 20) if timeout is None else timeout
    pid = folder.samba_pid()
    if pid is None:
        say("not running")
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while alive(pid, group=True):
        if time.monotonic() >= deadline:
            say(f"samba (pid {pid}) did not stop within {timeout:g}s; sending SIGKILL")
            for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except ProcessLookupError:
                    pass
            kill_deadline = time.monotonic() + 10
            while alive(pid, group=True) and time.monotonic() < kill_deadline:
                time.sleep(0.1)
            break
        time.sleep(0.1)
    if alive(pid, group=True):
        raise LocalDomainError(f"samba (pid {pid}) is still running")
    folder.pid_file.unlink(missing_ok=True)
    say("stopped")


def status(directory: Path | str) -> str:
    """ "running" or "stopped"."""
    return "running" if DomainFolder(Path(directory)).samba_pid() is not None else "stopped"


def connection(directory: Path | str) -> dict[str, Any]:
    """The Airflow connection of the domain, with the admin password."""
    folder = DomainFolder(Path(directory))
    folder.require_provisioned()
    if not os.access(folder.password_file, os.R_OK):
        raise LocalDomainError(f"cannot read {folder.password_file}")
    return connection_facts(folder, connect_address(folder.recorded_address()), with_password=True)
