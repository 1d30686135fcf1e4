#!/usr/bin/env bash
# Benchmark (figures, not assertions) of backups on a local cluster with spec.backup, side by
# side in one run with what a DBA would run instead:
#   - full backup: `pgdba backup create --type full --no-verify` (pgBackRest, lz4) against
#     `pg_basebackup -X stream -c fast` of the same cluster, in MB/s of database size;
#   - restore: the restore step of `pgdba backup verify-restore` (pgBackRest restoring into a
#     scratch directory) against copying pg_basebackup's plain-format copy into place
#     (`cp -a`), in MB/s.
# The database is filled with pgbench to at least SIZE_GB (default 1) first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
cargo build --release --quiet
PGDBA="$PWD/target/release/pgdba"
SCALE=$(( ${SIZE_GB:-1} * 70 ))
WORK=$(mktemp -d /tmp/pgdba-bench-bk.XXXXXX)
chmod 755 "$WORK"
export PGDBA_STATE_DIR="$WORK/state"
trap '"$PGDBA" destroy -f "$WORK/bb.yaml" --confirm >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
cat > "$WORK/bb.yaml" <<SPEC
apiVersion: pgdba/v1
kind: Cluster
metadata: {name: bb}
spec:
  provider:
    local: {data_dir: $WORK/data, pg_port: 26732, api_port: 26208, etcd_port: 26579}
  postgres:
    version: 15
    parameters: {max_connections: 100, max_wal_size: 4GB}
  replicas: 0
  backup:
    repository: {path: $WORK/data/repo}
SPEC
"$PGDBA" apply -f "$WORK/bb.yaml" --auto-approve --format json >/dev/null
SOCK="$WORK/data/bb-0/run"
PGB=/usr/lib/postgresql/15/bin
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$PGB/pgbench" -h "$SOCK" -p 26732 -i -q -s "$SCALE" postgres >/dev/null 2>&1
as_pg "$PGB/psql" -h "$SOCK" -p 26732 -XAtqc "CHECKPOINT" postgres
BYTES=$(as_pg "$PGB/psql" -h "$SOCK" -p 26732 -XAtqc "SELECT sum(pg_database_size(oid)) FROM pg_database" postgres)
MB=$(( BYTES / 1048576 ))
echo "database: $MB MB (pgbench scale $SCALE)"
rate() { awk -v mb="$1" -v ms="$2" 'BEGIN { printf "%.0f", mb / (ms / 1000) }'; }
sync
t=${EPOCHREALTIME/./}
"$PGDBA" backup create --name bb --type full --no-verify --format json >/dev/null
pg_ms=$(( (${EPOCHREALTIME/./} - t) / 1000 ))
mkdir -p "$WORK/basebackup" && chown postgres: "$WORK/basebackup"
sync
t=${EPOCHREALTIME/./}
# As a DBA would: pgdba's replication role over TCP (HBA admits it there), its password from the
# secrets file.
REPL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["replication_password"])' "$WORK/state/bb.secrets.json")
PGPASSWORD="$REPL" as_pg env PGPASSWORD="$REPL" "$PGB/pg_basebackup" -h 127.0.0.1 -p 26732 -U replicator -D "$WORK/basebackup/data" -X stream -c fast
bb_ms=$(( (${EPOCHREALTIME/./} - t) / 1000 ))
echo "full backup:  pgdba (pgBackRest, lz4) $pg_ms ms = $(rate "$MB" "$pg_ms") MB/s; pg_basebackup $bb_ms ms = $(rate "$MB" "$bb_ms") MB/s; ratio pgdba / pg_basebackup (time) $(awk -v a="$pg_ms" -v b="$bb_ms" 'BEGIN { printf "%.2f", a / b }')"
sync
restore_ms=$("$PGDBA" backup verify-restore --name bb --format json | python3 -c '
import json, sys
v = json.load(sys.stdin)
if not v["success"]:
    sys.exit("verify-restore failed: %s" % v["error"])
print(next(c["duration_ms"] for c in v["data"]["checks"] if c["name"] == "restore"))')
sync
t=${EPOCHREALTIME/./}
as_pg cp -a "$WORK/basebackup/data" "$WORK/basebackup/copy"
cp_ms=$(( (${EPOCHREALTIME/./} - t) / 1000 ))
echo "restore:      pgdba (pgbackrest restore) $restore_ms ms = $(rate "$MB" "$restore_ms") MB/s; pg_basebackup's copy put in place (cp -a) $cp_ms ms = $(rate "$MB" "$cp_ms") MB/s; ratio $(awk -v a="$restore_ms" -v b="$cp_ms" 'BEGIN { printf "%.2f", a / b }')"
