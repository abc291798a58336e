#!/usr/bin/env bash
# Run the whole test suite: install what is missing (scripts/bootstrap.sh --dev), make sure PostgreSQL
# runs on 127.0.0.1:5432 (installing it from Debian when absent), then pytest with any arguments passed
# through. Exits with pytest's code; "no tests collected" (pytest's 5) is an error too.
#
# usage: scripts/test.sh [pytest arguments...]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { echo "test.sh: $*"; }
die() { echo "test.sh: error: $*" >&2; exit 1; }

bash scripts/bootstrap.sh --dev

PY=$ROOT/.venv/bin/python

postgres_ready() {
    "$PY" - <<'PY' >/dev/null 2>&1
import psycopg2
psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3).close()
PY
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else die "need root for: $*"; fi
}

install_postgres() {
    say "PostgreSQL is not installed: installing it from Debian"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 0755 "$policy"
        created=1
    fi
    local status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql || status=$?
    if [[ $created -eq 1 ]]; then as_root rm -f "$policy"; fi
    [[ $status -eq 0 ]] || die "apt-get install postgresql failed"
    # The tests connect as postgres over TCP without a password, as on the project's machines.
    local hba
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
        if ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
            say "allowing password-less TCP logins as postgres from 127.0.0.1 and ::1 in $hba"
            as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
        fi
    done
}

start_postgres() {
    local version
    for version in $(ls /etc/postgresql); do
        say "starting PostgreSQL $version (cluster main)"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    local deadline=$((SECONDS + 60))
    until postgres_ready; do
        ((SECONDS < deadline)) || die "PostgreSQL does not accept connections as postgres on 127.0.0.1:5432"
        sleep 0.5
    done
}

if postgres_ready; then
    say "PostgreSQL answers on 127.0.0.1:5432"
else
    if [[ ! -d /etc/postgresql ]] || [[ -z $(ls -A /etc/postgresql 2>/dev/null) ]]; then
        install_postgres
    fi
    start_postgres
fi

say "running: pytest $*"
status=0
"$PY" -m pytest "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test.sh: error: pytest collected no tests (exit 5); a test run must run tests" >&2
    exit 5
fi
exit "$status"
