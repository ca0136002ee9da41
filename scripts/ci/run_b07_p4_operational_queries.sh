#!/usr/bin/env bash
# Run the P4 operational SQL dashboards into CSVs.
#   scripts/ci/run_b07_p4_operational_queries.sh DSN PROBE_JSON OUTDIR
# DSN: an ops_reader (BYPASSRLS, read-only) DSN, or `-` to take it from $OPS_DATABASE_URL, which keeps
# the password off every command line (ps shows them to any user). Either way the DSN reaches the
# Python step by environment only. PROBE_JSON: the runtime_db_probe.json of the run; it must exist
# and show the runtime identity was app_user, or the dashboards prove nothing.
# Exit codes: 0 pass, 1 the probe shows a privileged runtime, 2 usage or environment error.
set -euo pipefail
if [ "$#" -ne 3 ]; then
  echo "usage: $0 DSN PROBE_JSON OUTDIR" >&2
  exit 2
fi
dsn=$1 probe=$2 outdir=$3
if [ "$dsn" = "-" ]; then
  dsn=${OPS_DATABASE_URL:-}
  if [ -z "$dsn" ]; then
    echo "error: DSN '-' needs OPS_DATABASE_URL set" >&2
    exit 2
  fi
fi
here=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python}
if [ ! -s "$probe" ]; then
  echo "error: probe $probe is missing or empty (run scripts/identity/assert_runtime_identity.py --output)" >&2
  exit 2
fi
"$python" - "$probe" <<'PY' || exit $?
import json, sys
identity = json.load(open(sys.argv[1])).get("identity", {})
if identity.get("db_user") != "app_user" or identity.get("rolsuper") or identity.get("rolbypassrls"):
    print(f"error: runtime identity in the probe is not an unprivileged app_user: {identity}", file=sys.stderr)
    sys.exit(1)
PY
OPS_DATABASE_URL=$dsn exec "$python" "$here/scripts/ops/sql_to_csv.py" --out-dir "$outdir" "$here"/docs/ops/b07_p4/sql/0*.sql
