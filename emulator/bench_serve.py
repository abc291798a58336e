"""Time a full delta round of a large tenant over HTTP, end to end (prints timings, asserts nothing).

    .venv/bin/python emulator/bench_serve.py [--users 100000] [--groups 10000] [--hook]

Generates the tenant into a temporary folder, starts `python -m emulator serve`, takes a token,
then pages through users/delta and groups/delta with one keep-alive HTTP connection (http.client),
and with --hook also through the Airflow provider's KiotaRequestAdapterHook.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.generate import write_tenant
from emulator.testing import start_emulator


def _token(emu) -> str:
    ctx = ssl.create_default_context(cafile=emu.ca_file)
    parts = urlsplit(emu.authority)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=30)
    body = urlencode(
        {
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
        }
    )
    conn.request("POST", f"/{emu.tenant_id}/oauth2/v2.0/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    conn.close()
    return doc["access_token"]


def _round(emu, token: str, path: str) -> tuple[int, int, int, int, float]:
    parts = urlsplit(emu.graph_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    url = path
    objects = pages = members = size = 0
    start = time.perf_counter()
    while url:
        conn.request("GET", url, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{resp.status}: {raw[:300]!r}")
        size += len(raw)
        doc = json.loads(raw)
        pages += 1
        objects += len(doc["value"])
        members += sum(len(item.get("members@delta", ())) for item in doc["value"])
        nxt = doc.get("@odata.nextLink")
        url = None
        if nxt:
            split = urlsplit(nxt)
            url = f"{split.path}?{split.query}"
    conn.close()
    return objects, pages, members, size, time.perf_counter() - start


async def _hook_round(url: str, select: str) -> tuple[int, int, float]:
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    hook = KiotaRequestAdapterHook(conn_id="tenant_emulator", timeout=60)
    start = time.perf_counter()
    objects = pages = 0
    try:
        resp = await hook.run(url=url, query_parameters={"$select": select})
        while True:
            pages += 1
            objects += len(resp["value"])
            nxt = resp.get("@odata.nextLink")
            if not nxt:
                break
            await hook.assert_allowed_host(nxt)
            resp = await hook.run(url=nxt)
    finally:
        await hook.close()
    return objects, pages, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hook", action="store_true", help="also page users/delta through KiotaRequestAdapterHook")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tenant_file = Path(tmp) / "tenant.json"
        t0 = time.perf_counter()
        write_tenant(tenant_file, users=args.users, groups=args.groups, seed=args.seed)
        print(f"generate {args.users} users / {args.groups} groups: {time.perf_counter() - t0:.1f} s, "
              f"{tenant_file.stat().st_size / 1e6:.0f} MB")
        t0 = time.perf_counter()
        emu = start_emulator(tenant_file, Path(tmp) / "state", timeout=300)
        print(f"emulator start (load + listen): {time.perf_counter() - t0:.1f} s")
        try:
            token = _token(emu)
            select = "id,displayName,givenName,surname,mail,mailNickname,userPrincipalName,accountEnabled,manager"
            for label, path in (
                ("users/delta", f"/v1.0/users/delta?$select={select}"),
                ("users/delta (all properties)", "/v1.0/users/delta"),
                ("groups/delta", "/v1.0/groups/delta?$select=id,displayName,mailNickname,securityEnabled,members"),
            ):
                objects, pages, members, size, secs = _round(emu, token, path)
                print(f"{label}: {objects} objects, {members} members@delta, {pages} pages, "
                      f"{size / 1e6:.1f} MB in {secs:.2f} s ({objects / secs:,.0f} objects/s)")
            if args.hook:
                os.environ.setdefault("AIRFLOW_HOME", str(Path(tmp) / "airflow"))
                os.environ["AIRFLOW_CONN_TENANT_EMULATOR"] = emu.connection_json()
                objects, pages, secs = asyncio.run(_hook_round("users/delta", select))
                print(f"users/delta through KiotaRequestAdapterHook: {objects} objects, {pages} pages in {secs:.2f} s "
                      f"({objects / secs:,.0f} objects/s)")
        finally:
            emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
