#!/usr/bin/env bash
# Stop what scripts/demo.sh left running: the Airflow services of --serve, the local Samba AD DC and the Graph
# emulator.
# Their data stays in .local/ for the next start.
# usage: scripts/stop.sh [--emulator-only]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT_NAME=stop
source "$ROOT/scripts/lib.sh"
PYTHONPATH=$ROOT exec "$(project_python)" -m local_domain.demo stop "$@"
