#!/usr/bin/env bash
# The main job, end to end on this machine: install what is missing, start a local Samba AD DC and
# the Graph emulator with a tenant, prepare an Airflow home (SQLite), run the sync DAG once through
# Airflow, and print what it did and how to reach the domain. Everything lives in .local/ (git-ignored);
# running it again reuses what is installed and running. Stop the services with scripts/stop.sh.
#
# usage: scripts/demo.sh [TENANT_FILE]     (default: emulator/tenants/demo.json)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TENANT=${1:-emulator/tenants/demo.json}
[[ -f $TENANT ]] || { echo "demo: tenant file $TENANT not found" >&2; exit 2; }
TENANT=$(cd "$(dirname "$TENANT")" && pwd)/$(basename "$TENANT")
LOCAL=$ROOT/.local
DOMAIN_DIR=$LOCAL/domain
EMULATOR_DIR=$LOCAL/emulator
say() { echo "demo: $*"; }

bash scripts/bootstrap.sh
PY=$ROOT/.venv/bin/python
export PYTHONPATH=$ROOT/include:$ROOT

say "local domain in .local/domain (127.0.0.1)"
bash scripts/local-domain provision "$DOMAIN_DIR" --address 127.0.0.1
bash scripts/local-domain start "$DOMAIN_DIR" --address 127.0.0.1

# The emulator: reuse it when it runs with the same tenant file, else (re)start it.
RESYNC=false
running_tenant=""
if [[ -f $EMULATOR_DIR/emulator.json && -f $EMULATOR_DIR/tenant-file ]]; then
    pid=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$EMULATOR_DIR/emulator.json")
    if kill -0 "$pid" 2>/dev/null; then running_tenant=$(cat "$EMULATOR_DIR/tenant-file"); fi
fi
if [[ $running_tenant != "$TENANT" ]]; then
    if [[ -n $running_tenant || -f $EMULATOR_DIR/tenant-file ]]; then
        bash scripts/stop.sh --emulator-only
    fi
    mkdir -p "$EMULATOR_DIR"
    rm -f "$EMULATOR_DIR/emulator.json"
    say "starting the Graph emulator with $(basename "$TENANT")"
    nohup "$PY" -m emulator serve --tenant "$TENANT" --state-dir "$EMULATOR_DIR" \
        >>"$EMULATOR_DIR/emulator.log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do [[ -f $EMULATOR_DIR/emulator.json ]] && break; sleep 0.5; done
    [[ -f $EMULATOR_DIR/emulator.json ]] || { tail -20 "$EMULATOR_DIR/emulator.log" >&2; exit 1; }
    echo "$TENANT" > "$EMULATOR_DIR/tenant-file"
fi

export AIRFLOW_HOME=$LOCAL/airflow
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export DOMAIN_SYNC_DATA_DIR=$LOCAL/data
export TQDM_DISABLE=1 GX_ANALYTICS_ENABLED=False
AIRFLOW_CONN_MSGRAPH_TENANT=$("$PY" -m emulator connection --state-dir "$EMULATOR_DIR")
AIRFLOW_CONN_LDAP_DOMAIN=$(bash scripts/local-domain connection "$DOMAIN_DIR")
export AIRFLOW_CONN_MSGRAPH_TENANT AIRFLOW_CONN_LDAP_DOMAIN

say "Airflow home in .local/airflow (SQLite)"
"$ROOT/.venv/bin/airflow" db migrate >"$LOCAL/airflow-migrate.log" 2>&1 || { tail -30 "$LOCAL/airflow-migrate.log" >&2; exit 1; }
export DOMAIN_SYNC_APPLY_POOL=domain_writes
"$ROOT/.venv/bin/airflow" pools set domain_writes 1 "writers to the domain" >>"$LOCAL/airflow-migrate.log" 2>&1

# The tenant file of the last successful sync: another one means a full resync that replaces it.
SYNCED_TENANT=$LOCAL/synced-tenant
if [[ -f $SYNCED_TENANT && $(cat "$SYNCED_TENANT") != "$TENANT" ]]; then RESYNC=true; fi
CONF='{}'
if [[ $RESYNC == true ]]; then
    say "the tenant file changed: full resync, objects of the previous tenant are deleted"
    CONF='{"full_resync": true, "approve_deletions": true}'
    # A different tenant is expected to be smaller or larger than the last one: no broken-read check.
    export DOMAIN_SYNC_MIN_FULL_READ_SHARE=0
fi
say "running the tenant_to_domain_sync DAG (log: .local/last-run.log)"
status=0
"$ROOT/.venv/bin/airflow" dags test tenant_to_domain_sync -c "$CONF" >"$LOCAL/last-run.log" 2>&1 || status=$?

echo
"$PY" -m domain_sync.summary "$DOMAIN_SYNC_DATA_DIR" || true
if [[ $status -ne 0 ]] || grep -q "state=failed\|DagRunState.FAILED" "$LOCAL/last-run.log"; then
    echo "demo: the DAG run failed; see .local/last-run.log" >&2
    exit 1
fi
echo "$TENANT" > "$SYNCED_TENANT"
cat <<INFO

The domain (left running):
  LDAPS     ldaps://127.0.0.1:636  (certificate name dc1.corp.example.test)
  CA file   $DOMAIN_DIR/private/tls/ca.pem
  bind DN   CN=Administrator,CN=Users,DC=corp,DC=example,DC=test
  password  in $DOMAIN_DIR/admin.password
  synced    OU=AADDC Users,DC=corp,DC=example,DC=test
  e.g.      LDAPTLS_CACERT=$DOMAIN_DIR/private/tls/ca.pem ldapsearch -H ldaps://dc1.corp.example.test \\
              -D 'CN=Administrator,CN=Users,DC=corp,DC=example,DC=test' -y $DOMAIN_DIR/admin.password \\
              -b 'OU=AADDC Users,DC=corp,DC=example,DC=test' '(objectClass=user)' cn
            (needs "127.0.0.1 dc1.corp.example.test" in /etc/hosts, or use -H ldaps://127.0.0.1 with
             LDAPTLS_REQCERT=allow)
The tenant emulator (left running): $(cat "$EMULATOR_DIR/emulator.json" | tr -d '\n' | cut -c1-200)
Stop both with: bash scripts/stop.sh
INFO
