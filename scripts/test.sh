#!/usr/bin/env bash
# Run the whole test suite: install what is missing (scripts/bootstrap.sh --dev), make sure PostgreSQL
# runs on 127.0.0.1:5432 (installed from Debian when absent and started by local_domain/postgres.py) and
# Debian's Chromium is there (the status page's browser test), then pytest over every tier but the
# benchmarks, with any arguments passed through. Exits with pytest's code; "no tests collected" (pytest's 5)
# is an error too.
#
# usage: scripts/test.sh [pytest arguments...]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SCRIPT_NAME=test.sh
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

bash scripts/bootstrap.sh --dev
PY=$ROOT/.venv/bin/python

# PostgreSQL on 127.0.0.1:5432: installed from Debian when absent (trusting postgres's local TCP logins), started.
"$PY" -m local_domain.postgres ensure

# The status page's browser test drives Debian's Chromium with Playwright (requirements-dev.txt), whose
# bundled Node.js driver needs libatomic1 (not on a minimal Debian).
browser_missing=()
for pkg in chromium chromium-driver libatomic1; do
    package_installed "$pkg" || browser_missing+=("$pkg")
done
if [[ ${#browser_missing[@]} -gt 0 ]]; then
    apt_install "${browser_missing[@]}"
fi

# Every tier but the benchmarks (pytest.ini's default is the pure tier alone); a -m given here wins.
say "running: pytest -m 'not benchmark' $*"
status=0
"$PY" -m pytest -m "not benchmark" "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test.sh: error: pytest collected no tests (exit 5); a test run must run tests" >&2
    exit 5
fi
exit "$status"
