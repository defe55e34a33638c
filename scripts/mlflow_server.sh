#!/usr/bin/env bash
# `make mlflow-server`: an MLflow tracking server on 127.0.0.1 backed by PostgreSQL, as a lab
# would run it for many workers (here all local, to try the set-up). Settings by environment:
#   PGHOST (127.0.0.1) PGPORT (5432) PGUSER (postgres) MLFLOW_DB (mlflow) PORT (5001)
#   ARTIFACTS (./mlartifacts-server): the artifact root the server serves to every client
set -euo pipefail
BIN=${BIN:-.venv/bin}
PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
MLFLOW_DB=${MLFLOW_DB:-mlflow} PORT=${PORT:-5001} ARTIFACTS=${ARTIFACTS:-./mlartifacts-server}
export PGHOST PGPORT PGUSER MLFLOW_DB

# create the database if it is missing (psql when installed, else psycopg2 from the venv)
if command -v psql >/dev/null; then
    if ! psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$MLFLOW_DB'" | grep -q 1; then
        psql -d postgres -c "CREATE DATABASE \"$MLFLOW_DB\"" >/dev/null
        echo "created database $MLFLOW_DB on $PGHOST:$PGPORT"
    fi
else
    "$BIN/python" - <<'PY'
import os, psycopg2
conn = psycopg2.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"],
                        user=os.environ["PGUSER"], dbname="postgres")
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (os.environ["MLFLOW_DB"],))
    if cur.fetchone() is None:
        cur.execute(f'CREATE DATABASE "{os.environ["MLFLOW_DB"]}"')
        print(f"created database {os.environ['MLFLOW_DB']}")
PY
fi

mkdir -p "$ARTIFACTS"
echo "MLflow server: http://127.0.0.1:$PORT  (store postgresql://$PGUSER@$PGHOST:$PGPORT/$MLFLOW_DB," \
     "artifacts $(cd "$ARTIFACTS" && pwd)); workers use --tracking-uri http://127.0.0.1:$PORT"
exec "$BIN/mlflow" server --host 127.0.0.1 --port "$PORT" \
    --backend-store-uri "postgresql+psycopg2://$PGUSER@$PGHOST:$PGPORT/$MLFLOW_DB" \
    --artifacts-destination "$ARTIFACTS"
