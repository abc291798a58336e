#!/usr/bin/env bash
# Run the whole test suite: install what is missing (scripts/bootstrap.sh --dev), make sure PostgreSQL
# runs on 127.0.0.1:5432 (installed from Debian when absent and started by local_domain/postgres.py), Redis
# on 127.0.0.1:6379 (the Celery test's broker; likewise) and Debian's Chromium is there (the status page's
# browser test), then pytest over every tier but the benchmarks, with any arguments passed through. Exits
# with pytest's code; "no tests collected" (pytest's 5) is an error too.
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

# Redis on 127.0.0.1:6379, the Celery test's broker: started (memory only) unless it answers, installed from
# Debian when absent.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || apt_install redis-server
    say "starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 50); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
        sleep 0.2
    done
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || die "redis-server does not answer on 127.0.0.1:6379"
fi

# The status page's browser test drives Debian's Chromium with Playwright (requirements-dev.txt), whose
# bundled Node.js driver needs libatomic1 (not on a minimal Debian).
browser_missing=()
for pkg in chromium chromium-driver libatomic1; do
    package_installed "$pkg" || browser_missing+=("$pkg")
done
if [[ ${#browser_missing[@]} -gt 0 ]]; then
    apt_install "${browser_missing[@]}"
fi

# Every tier but the benchmarks (pytest.ini's default is the pure tier alone); a -m given here wins. The 25
# slowest tests are listed at the end, to keep the whole suite under its 30 minutes.
say "running: pytest -m 'not benchmark' --durations=25 $*"
status=0
"$PY" -m pytest -m "not benchmark" --durations=25 "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test.sh: error: pytest collected no tests (exit 5); a test run must run tests" >&2
    exit 5
fi
exit "$status"
