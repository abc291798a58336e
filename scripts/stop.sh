#!/usr/bin/env bash
# Stop what scripts/demo.sh left running: the local Samba AD DC and the Graph emulator.
# Their data stays in .local/ for the next start.
# usage: scripts/stop.sh [--emulator-only]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EMULATOR_DIR=$ROOT/.local/emulator
if [[ -f $EMULATOR_DIR/emulator.json ]]; then
    pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$EMULATOR_DIR/emulator.json")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
        echo "stop: emulator stopped"
    fi
    rm -f "$EMULATOR_DIR/emulator.json"
fi
[[ ${1:-} == --emulator-only ]] && exit 0
if [[ -d $ROOT/.local/domain ]]; then
    bash "$ROOT/scripts/local-domain" stop "$ROOT/.local/domain"
fi
