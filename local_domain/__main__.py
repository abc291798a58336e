"""python -m local_domain provision|start|stop|status|connection DIR [--address ADDRESS] [--realm REALM] (see the
package's docstring).

Exit codes: 0 done (status: running), 1 failed, 2 bad arguments, 3 status: stopped.
"""

from __future__ import annotations

import argparse
import sys

import local_domain
from local_domain import LocalDomainError, say

STOPPED = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local-domain",
        description=f"Manage a local Samba AD DC (default realm {local_domain.REALM}) kept entirely inside one folder.",
    )
    parser.add_argument("command", choices=local_domain.COMMANDS)
    parser.add_argument("dir", metavar="DIR", help="the domain folder")
    parser.add_argument(
        "--address",
        type=_address,
        help=f"the IPv4 address the DC binds (provision; default {local_domain.DEFAULT_ADDRESS}, "
        f"{local_domain.ALL_INTERFACES} for all); start checks it against the provisioned one",
    )
    parser.add_argument("--realm", help=f"the domain's realm (provision; default {local_domain.REALM})")
    return parser


def _address(value: str) -> str:
    try:
        return local_domain.check_address(value)
    except LocalDomainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if args.command == "provision":
        local_domain.provision(args.dir, args.address, realm=args.realm)
    elif args.command == "start":
        local_domain.start(args.dir, args.address)
    elif args.command == "stop":
        local_domain.stop(args.dir)
    elif args.command == "status":
        state = local_domain.status(args.dir)
        if state == "stopped" and not local_domain.DomainFolder(args.dir).is_provisioned():
            say(f"{args.dir} is not provisioned")
        print(state)
        return 0 if state == "running" else STOPPED
    elif args.command == "connection":
        sys.stdout.write(local_domain.connection_json(local_domain.connection(args.dir)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except LocalDomainError as exc:
        print(f"local-domain: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
