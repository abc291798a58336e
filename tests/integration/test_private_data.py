"""After whole syncs under a permissive umask, everything in the data folder is private to the sync's
account: files 0600, folders 0700 (run folders, Parquet files, plans, reports, state, alerts)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.fixtures.sync_env import tenant_group, tenant_user

pytestmark = pytest.mark.integration


def test_every_file_of_a_sync_is_0600_in_0700_folders(sync_env):
    ana, bob = tenant_user("ana", "Ana Lima"), tenant_user("bob", "Bob Stone")
    sync_env.start_tenant({"users": [ana, bob], "groups": [tenant_group("Team", [ana, bob])]})
    old = os.umask(0o022)
    try:
        first = sync_env.run()
        sync_env.emulator.admin.update_user(ana["id"], {"jobTitle": "Engineer"})  # a delta round, a new state
        second = sync_env.run()
    finally:
        os.umask(old)
    assert first["commit"]["committed"] and second["commit"]["committed"]

    data = Path(sync_env.settings.data_dir)
    seen = {"folders": 0, "files": 0}
    wrong = {}
    for folder, _dirs, files in os.walk(data):
        for name, want, kind in [(".", 0o700, "folders")] + [(f, 0o600, "files") for f in files]:
            path = Path(folder) / name
            seen[kind] += 1
            if stat.S_IMODE(os.lstat(path).st_mode) != want:
                wrong[str(path.relative_to(data))] = oct(stat.S_IMODE(os.lstat(path).st_mode))
    assert wrong == {}
    names = {p.name for p in data.rglob("*")}
    assert {"transform.json", "records_users.parquet", "users.parquet", "plan.json", "plan.txt", "results.json",
            "report.json", "000000000001.json", "delta_links.json"} <= names
    assert seen["files"] > 20 and seen["folders"] > 10
