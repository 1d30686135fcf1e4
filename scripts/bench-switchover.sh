#!/usr/bin/env bash
# Benchmark (figures, not assertions) of leader changes on a 3-member local cluster, side by
# side with what a DBA would run instead, in one run:
#   - `pgdba switchover --to M`: its wall time, and the write outage its own probe writer
#     measured (the longest time no write committed). Target (issue 10): under 3 s.
#   - `patronictl switchover --candidate M --force` on the same cluster: its wall time, and the
#     write outage seen by an independent writer (psql committing in a loop), so both tools'
#     outages are measured the same outside way too.
# Each tool hands the lead over ROUNDS times (default 4), alternating between two members;
# the script waits for the cluster to settle (both replicas streaming) between rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
cargo build --release --quiet
PGDBA="$PWD/target/release/pgdba"
ROUNDS="${ROUNDS:-4}"
WORK=$(mktemp -d /tmp/pgdba-bench-sw.XXXXXX)
chmod 755 "$WORK"
trap '"$PGDBA" destroy -f "$WORK/sw.yaml" --confirm --state-dir "$WORK/state" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
cat > "$WORK/sw.yaml" <<SPEC
apiVersion: pgdba/v1
kind: Cluster
metadata: {name: sw}
spec:
  provider:
    local: {data_dir: $WORK/data, pg_port: 26532, api_port: 26108, etcd_port: 26479}
  postgres:
    version: 15
    parameters: {max_connections: 100}
  replicas: 2
SPEC
export PGDBA_STATE_DIR="$WORK/state"
"$PGDBA" apply -f "$WORK/sw.yaml" --auto-approve --format json >/dev/null
PATRONI_CFG="$WORK/data/sw-0/patroni.yml"
secret() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]) or "")' "$WORK/state/sw.secrets.json" "$1"; }
PASSWORD=$(secret superuser_password)
# patronictl as a DBA runs it against pgdba's cluster: etcd and the REST API authenticate.
patronictl() {
  PATRONI_ETCD3_HOSTS=127.0.0.1:26479 PATRONI_ETCD3_USERNAME=root PATRONI_ETCD3_PASSWORD="$(secret etcd_password)" \
    PATRONI_RESTAPI_USERNAME=pgdba PATRONI_RESTAPI_PASSWORD="$(secret restapi_password)" \
    /opt/patroni/bin/patronictl -c "$PATRONI_CFG" "$@"
}
leader() { "$PGDBA" cluster status --name sw --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["leader"] or "")'; }
settled() {
  for _ in $(seq 240); do
    if "$PGDBA" cluster status --name sw --format json | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
ok = d["leader"] and sum(m["state"] == "streaming" for m in d["members"]) == 2
sys.exit(0 if ok else 1)'; then return 0; fi
    sleep 0.5
  done
  echo "the cluster did not settle" >&2; exit 1
}
# An independent writer: commits through libpq's read-write target over all three members,
# printing the time (ms) of each commit; the longest gap between two is the outage it saw.
writer() {
  local conn="host=127.0.0.1,127.0.0.1,127.0.0.1 port=26532,26533,26534 user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=1"
  while :; do
    PGPASSWORD="$PASSWORD" psql "$conn" -XAtq -c 'SELECT pg_current_xact_id()' >/dev/null 2>&1 && date +%s%3N
    sleep 0.02
  done
}
max_gap() { sort -n "$1" | awk 'NR > 1 && $1 - p > m { m = $1 - p } { p = $1 } END { print m + 0 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
settled
pg_wall=(); pg_out=(); pg_probe=(); pc_wall=(); pc_out=()
for round in $(seq "$ROUNDS"); do
  for tool in pgdba patronictl; do
    settled
    from=$(leader)
    to=$("$PGDBA" failover status --name sw --format json | python3 -c 'import json,sys; print([c["name"] for c in json.load(sys.stdin)["data"]["candidates"] if c["eligible"]][0])')
    writer > "$WORK/commits" & wpid=$!
    sleep 1
    t=${EPOCHREALTIME/./}
    if [ "$tool" = pgdba ]; then
      probe=$("$PGDBA" switchover --name sw --to "$to" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["write_unavailable_ms"])')
      pg_wall+=($(( (${EPOCHREALTIME/./} - t) / 1000 ))); pg_probe+=("$probe")
    else
      patronictl switchover --leader "$from" --candidate "$to" --force >/dev/null
      pc_wall+=($(( (${EPOCHREALTIME/./} - t) / 1000 )))
    fi
    sleep 3
    kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null || true
    gap=$(max_gap "$WORK/commits")
    if [ "$tool" = pgdba ]; then pg_out+=("$gap"); else pc_out+=("$gap"); fi
    echo "round $round $tool: $from -> $to" >&2
  done
done
pw=$(printf '%s\n' "${pg_wall[@]}" | median); cw=$(printf '%s\n' "${pc_wall[@]}" | median)
po=$(printf '%s\n' "${pg_out[@]}" | median); co=$(printf '%s\n' "${pc_out[@]}" | median)
pp=$(printf '%s\n' "${pg_probe[@]}" | median)
echo "leader changes over $ROUNDS rounds each (medians):"
echo "  pgdba switchover:      wall $pw ms, write outage $pp ms by its own probe, $po ms by the outside writer"
echo "  patronictl switchover: wall $cw ms, write outage $co ms by the outside writer"
awk -v a="$pw" -v b="$cw" 'BEGIN { printf "  wall-time ratio pgdba / patronictl: %.2f (pgdba also pre-checks, probes and waits for a commit on the new leader)\n", a / b }'
awk -v a="$po" -v b="$co" 'BEGIN { if (b > 0) printf "  write-outage ratio pgdba / patronictl (outside writer): %.2f\n", a / b }'
