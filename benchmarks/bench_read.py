"""The plan's full read of the domain (plan.observed.observe_domain, as a full reconcile makes it), timed
against a running DC: wall and client CPU seconds, synced objects, member values and names read.

Run it from two checkouts against the same DC (a paused `bench_sync.py --pause FILE` keeps a synced one) to
compare their reads under the same conditions; each run prints one JSON line:

    export AIRFLOW_CONN_LDAP_DOMAIN="$(.venv/bin/python -m local_domain connection DIR)"
    .venv/bin/python benchmarks/bench_read.py --repeat 2

The sync's settings come from the environment as for the stages (DOMAIN_SYNC_*); the ownership marker is
read off a synced object unless DOMAIN_SYNC_OWNER_MARKER names it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]


def owner_marker(conn, settings, container: str) -> str | None:
    """The ownership marker on the first synced object found in the container."""
    from domain_sync.domain import ldap_values, search_entries

    if settings.owner_marker:
        return settings.owner_marker
    query = f"(&(|(objectClass=user)(objectClass=group))({settings.anchor_attribute}=*))"
    for entry in search_entries(conn, container, query, [settings.owner_attribute]):
        values = ldap_values(entry["attributes"].get(settings.owner_attribute))
        if values:
            return values[0]
    return None


def read_once(settings, endpoint) -> dict:
    from domain_sync.domain import connect, disconnect
    from domain_sync.mapping import load_mapping
    from domain_sync.plan.observed import observe_domain
    from domain_sync.plan.stage import container_dn, search_base_dn
    from domain_sync.records import GROUP, USER

    mapping = load_mapping(settings.mapping_file)
    container, search_base = container_dn(settings, endpoint.base_dn), search_base_dn(settings, endpoint.base_dn)
    conn = connect(endpoint, settings.ldap_timeout_seconds)
    try:
        marker = owner_marker(conn, settings, container)
        wall, cpu = time.perf_counter(), time.process_time()
        observed = observe_domain(conn, endpoint.base_dn, container, settings.anchor_attribute,
                                  sorted(set(mapping.targets(USER)) | set(mapping.targets(GROUP))),
                                  search_base=search_base, owner_attribute=settings.owner_attribute,
                                  owner_marker=marker,
                                  connect_more=lambda: connect(endpoint, settings.ldap_timeout_seconds))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        disconnect(conn)
    return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "objects": len(observed.objects),
            "member_values": sum(len(o.members) for o in observed.objects.values()),
            "account_names": len(observed.account_names)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--label", default=os.path.basename(ROOT))
    args = parser.parse_args(argv)
    from domain_sync.config import Settings
    from domain_sync.domain import endpoint_from_airflow

    settings = Settings.from_env()
    endpoint = endpoint_from_airflow(settings.domain_conn_id)
    for n in range(args.repeat):
        print(json.dumps({"label": args.label, "round": n, **read_once(settings, endpoint)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
