"""Command line: python -m emulator serve | connection | generate."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

DEFAULT_TENANT_ID = "8a1f3c52-6d0e-4b7a-9c21-5e4d3b2a1f00"
DEFAULT_CLIENT_ID = "5b7e9d1c-2f4a-4c6e-8a0b-1d3f5e7a9c20"


def _serve(args: argparse.Namespace) -> int:
    from .certs import ensure_certs
    from .listeners import Emulator
    from .state import ensure_client_secret, remove_state, write_state
    from .tenant import Settings, Tenant

    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    remove_state(state_dir)
    names = [n for n in (*args.cert_name, args.advertise_host, args.host) if n and n not in ("0.0.0.0", "::")]
    certs = ensure_certs(state_dir, extra_names=names)
    secret = ensure_client_secret(state_dir)
    settings = Settings()
    if args.page_size:
        settings.page_size = args.page_size
    if args.members_page_size:
        settings.members_page_size = args.members_page_size
    if args.delta_link_max_age is not None:
        settings.delta_link_max_age_seconds = args.delta_link_max_age
    tenant = Tenant.from_file(args.tenant, settings=settings)
    tenant_id = args.tenant_id or tenant.info.get("id") or DEFAULT_TENANT_ID
    client_id = args.client_id or tenant.info.get("client_id") or DEFAULT_CLIENT_ID
    tenant.info.update({"id": tenant_id, "client_id": client_id})
    emulator = Emulator(
        tenant,
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=secret,
        certs=certs,
        host=args.host,
        graph_port=args.graph_port,
        token_port=args.token_port,
        vault_port=args.vault_port,
        verbose=args.verbose,
        graph_tls=args.graph_tls,
        advertise_host=args.advertise_host,
    )

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emulator.start()
    pid = os.getpid()
    try:
        write_state(
            state_dir,
            {
                "graph_url": emulator.graph_url,
                "authority": emulator.authority,
                "vault_url": emulator.vault_url,
                "tenant_id": tenant_id,
                "client_id": client_id,
                "ca_file": str(certs.ca_file),
                "pid": pid,
            },
        )
        counts = tenant.counts()
        print(
            f"emulator: graph {emulator.graph_url}, token {emulator.authority}, vault {emulator.vault_url}, "
            f"{counts['users']} users, {counts['groups']} groups",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        remove_state(state_dir, pid)
        emulator.stop()
    return 0


def _connection(args: argparse.Namespace) -> int:
    from .state import connection_json

    try:
        print(connection_json(args.state_dir, vault=args.vault))
    except FileNotFoundError:
        print(f"no running emulator in {args.state_dir} (emulator.json is missing)", file=sys.stderr)
        return 1
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .generate import write_tenant

    write_tenant(args.out, users=args.users, groups=args.groups, seed=args.seed, domain=args.domain,
                 hostile=args.hostile, memberships=args.memberships)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Microsoft Graph-compatible tenant emulator")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve a tenant file")
    serve.add_argument("--tenant", required=True, help="tenant file (JSON)")
    serve.add_argument("--state-dir", required=True, help="folder for ca.pem, client_secret, emulator.json")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--graph-port", type=int, default=0, help="0: any free port")
    serve.add_argument("--token-port", type=int, default=0, help="0: any free port")
    serve.add_argument("--vault-port", type=int, default=0, help="Key Vault listener; 0: any free port")
    serve.add_argument("--tenant-id", default=None)
    serve.add_argument("--client-id", default=None)
    serve.add_argument("--page-size", type=int, default=None)
    serve.add_argument("--members-page-size", type=int, default=None)
    serve.add_argument("--delta-link-max-age", type=float, default=None, help="seconds (default 7 days)")
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")
    serve.add_argument("--graph-tls", action="store_true",
                       help="serve Graph over HTTPS too (needed when clients reach it by a name other than localhost)")
    serve.add_argument("--advertise-host", default=None,
                       help="host name written into emulator.json and the links (default: --host; 127.0.0.1 for 0.0.0.0)")
    serve.add_argument("--cert-name", action="append", default=[],
                       help="extra DNS name or IP for the server certificate (repeatable)")
    serve.set_defaults(func=_serve)

    conn = sub.add_parser("connection", help="print the Airflow connection JSON (contains the secret)")
    conn.add_argument("--state-dir", required=True)
    conn.add_argument("--vault", action="store_true",
                      help="the Key Vault connection (conn type azure_key_vault) instead of the Graph one")
    conn.set_defaults(func=_connection)

    gen = sub.add_parser("generate", help="write a tenant file")
    gen.add_argument("--users", type=int, required=True)
    gen.add_argument("--groups", type=int, required=True)
    gen.add_argument("--seed", type=int, default=2026)
    gen.add_argument("--domain", default=None,
                     help="UPN suffix: the tenant domain, and in hostile mode the domain's DNS name (default corp.example.test)")
    gen.add_argument("--memberships", type=int, default=None,
                     help="member values of all groups together: the team groups are resized to reach it (the "
                          "first group always holds every user; default: as drawn)")
    gen.add_argument("--hostile", action="store_true",
                     help="names and shapes that break naive directory code (Unicode, DN/LDAP/sAMAccountName specials, "
                          "duplicates, implied-UPN collisions, nesting, non-user members, soft-deleted users)")
    gen.add_argument("--out", required=True)
    gen.set_defaults(func=_generate)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
