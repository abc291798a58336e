#!/usr/bin/env bash
# The main job, end to end on this machine: install what is missing (scripts/bootstrap.sh), then
# local_domain/demo.py: start a local Samba AD DC and the Graph emulator with a tenant, prepare an Airflow
# home (SQLite), run the sync DAG once through Airflow, and print what it did and how to reach the domain.
# Everything lives in .local/ (git-ignored); running it again reuses what is installed and running. Stop
# the services with scripts/stop.sh.
#
# usage: scripts/demo.sh [TENANT_FILE] [--serve]     (default: emulator/tenants/demo.json; --serve leaves
#        the Airflow UI, scheduler and dag-processor running)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/bootstrap.sh
PYTHONPATH=$ROOT/include:$ROOT exec "$ROOT/.venv/bin/python" -m local_domain.demo run "$@"
