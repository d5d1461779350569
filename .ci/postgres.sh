#!/usr/bin/env bash
# Start the local PostgreSQL cluster (Debian layout) and create the test role and database. Idempotent.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$ver main"; then
    pg_createcluster "$ver" main >/dev/null
fi
pg_ctlcluster "$ver" main start 2>/dev/null || true
for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='deconstruct'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE deconstruct LOGIN PASSWORD 'deconstruct' CREATEDB\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='deconstruct_test'\"" | grep -q 1 ||
    su postgres -c "createdb -O deconstruct deconstruct_test"
echo "postgres $ver ready on 127.0.0.1:5432"
