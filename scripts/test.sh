#!/usr/bin/env bash
# Run the whole test suite: install what is missing (scripts/bootstrap.sh --dev), make sure PostgreSQL
# runs on 127.0.0.1:5432 (installing it from Debian when absent; started by local_domain/postgres.py) and
# Debian's Chromium is there (the status page's browser test),
# then pytest over every tier but the benchmarks, with any arguments passed through. Exits with pytest's code; "no tests collected"
# (pytest's 5) is an error too.
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

if ! "$PY" -m local_domain.postgres installed; then
    say "PostgreSQL is not installed: installing it from Debian"
    apt_install --recommends postgresql
    # The tests connect as postgres over TCP without a password, as on the project's machines.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
        if ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
            say "allowing password-less TCP logins as postgres from 127.0.0.1 and ::1 in $hba"
            as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
        fi
    done
fi
"$PY" -m local_domain.postgres start

# The status page's browser test drives Debian's Chromium with Playwright (requirements-dev.txt).
browser_missing=()
for pkg in chromium chromium-driver; do
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
