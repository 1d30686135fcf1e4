#!/usr/bin/env bash
# Benchmark (figures, not assertions) of failover drills on a 3-member local cluster in
# synchronous mode, in one run:
#   - `pgdba chaos drill failover` DRILLS times (default 5) with Patroni's default timings
#     (ttl 30, loop_wait 10, retry_timeout 10), then DRILLS times with shorter ones (ttl 20,
#     loop_wait 2, retry_timeout 5): the median RTO of each, beside the window those timings
#     imply (ttl + loop_wait, the anchor) and their ratio, and the acknowledged commits lost
#     (0 expected: synchronous mode);
#   - `pgdba chaos drill switchover` DRILLS times: the median write outage (target under 3 s);
#   - when Docker and the node image are here, on a 2-member docker cluster in synchronous mode
#     with the default timings: DRILLS failover drills (median RTO, also through PgBouncer) and
#     DRILLS partition drills (median RTO, and how long the cut-off leader still took writes).
#     DOCKER=0 skips them, LOCAL=0 the local ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
cargo build --release --quiet
PGDBA="$PWD/target/release/pgdba"
DRILLS="${DRILLS:-5}"
WORK=$(mktemp -d /tmp/pgdba-bench-drill.XXXXXX)
chmod 755 "$WORK"
trap '"$PGDBA" destroy -f "$WORK/dr.yaml" --confirm >/dev/null 2>&1 || true; "$PGDBA" destroy -f "$WORK/dd.yaml" --confirm >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
export PGDBA_STATE_DIR="$WORK/state"
spec() {
  cat > "$WORK/dr.yaml" <<SPEC
apiVersion: pgdba/v1
kind: Cluster
metadata: {name: dr, labels: {env: bench}}
spec:
  provider:
    local: {data_dir: $WORK/data, pg_port: 26732, api_port: 26742, etcd_port: 26752}
  postgres:
    version: 15
    parameters: {max_connections: 100}
  replicas: 2
  patroni: {ttl: $1, loop_wait: $2, retry_timeout: $3, synchronous_mode: true}
SPEC
  "$PGDBA" apply -f "$WORK/dr.yaml" --auto-approve --format json >/dev/null
}
settled() { # cluster (dr: 3 members, dd: 2)
  local want=2
  [ "${1:-dr}" = dd ] && want=1
  for _ in $(seq 240); do
    if "$PGDBA" cluster status --name "${1:-dr}" --format json | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
ok = d["leader"] and sum(m["state"] == "streaming" for m in d["members"]) == int(sys.argv[1])
sys.exit(0 if ok else 1)' "$want"; then return 0; fi
    sleep 0.5
  done
  echo "the cluster did not settle" >&2
  exit 1
}
# One drill; prints "<rto_ms> <rpo> <write_unavailable_ms> <pooled rto_ms> <isolated writable ms>".
drill() {
  settled "${2:-dr}"
  "$PGDBA" chaos drill "$1" -f "$WORK/${2:-dr}.yaml" --i-know-what-i-am-doing --format json |
    python3 -c '
import json, sys
v = json.load(sys.stdin)
if v["error"]:
    sys.exit("the drill failed: " + v["error"]["message"])
d = v["data"]
pooled = d.get("via_pooler") or {}
lost = d["rpo_transactions"] + (pooled.get("rpo_transactions") or 0)
print(d["rto_ms"], lost, d.get("write_unavailable_ms") or 0, pooled.get("rto_ms") or 0,
      (d.get("isolated") or {}).get("writable_after_cut_ms") or 0)'
}
median() { python3 -c 'import statistics,sys; print(int(statistics.median(int(x) for x in sys.argv[1:])))' "$@"; }
run() { # kind ttl loop_wait retry label [cluster]
  local rtos=() lost=0 outages=() pooled=() writable=()
  for _ in $(seq "$DRILLS"); do
    read -r rto rpo outage prto iso < <(drill "$1" "${6:-dr}")
    rtos+=("$rto"); outages+=("$outage"); lost=$((lost + rpo)); pooled+=("$prto"); writable+=("$iso")
  done
  local m window
  m=$(median "${rtos[@]}")
  window=$(( ($2 + $3) * 1000 ))
  case "$1" in
  failover)
    printf '%-44s median RTO %6d ms   window ttl+loop_wait %6d ms   ratio %.2f   commits lost %d   (RTOs: %s)\n' \
      "$5" "$m" "$window" "$(python3 -c "print($m/$window)")" "$lost" "${rtos[*]}"
    if [ "${6:-dr}" = dd ]; then
      printf '%-44s median RTO %6d ms through PgBouncer, which follows the new leader a moment later   (RTOs: %s)\n' "" "$(median "${pooled[@]}")" "${pooled[*]}"
    fi ;;
  partition)
    printf '%-44s median RTO %6d ms   the cut-off leader took writes %6d ms after the cut (median)   commits lost %d   (RTOs: %s)\n' \
      "$5" "$m" "$(median "${writable[@]}")" "$lost" "${rtos[*]}" ;;
  *)
    printf '%-44s median write outage %6d ms (target < 3000)   commits lost %d   (outages: %s)\n' \
      "$5" "$(median "${outages[@]}")" "$lost" "${outages[*]}" ;;
  esac
}
if [ "${LOCAL:-1}" != 0 ]; then
  spec 30 10 10
  run failover 30 10 10 "failover, ttl 30 loop_wait 10 retry 10:"
  run switchover 30 10 10 "switchover, ttl 30 loop_wait 10 retry 10:"
  spec 20 2 5
  settled
  run failover 20 2 5 "failover, ttl 20 loop_wait 2 retry 5:"
  "$PGDBA" destroy -f "$WORK/dr.yaml" --confirm >/dev/null
fi
if [ "${DOCKER:-1}" != 0 ] && docker info >/dev/null 2>&1 && docker image inspect pgdba/node:15 >/dev/null 2>&1; then
  cat > "$WORK/dd.yaml" <<SPEC
apiVersion: pgdba/v1
kind: Cluster
metadata: {name: dd, labels: {env: bench}}
spec:
  provider: {docker: {}}
  postgres:
    version: 15
    parameters: {max_connections: 100}
  replicas: 1
  patroni: {ttl: 30, loop_wait: 10, retry_timeout: 10, synchronous_mode: true}
SPEC
  "$PGDBA" apply -f "$WORK/dd.yaml" --auto-approve --format json >/dev/null
  run failover 30 10 10 "docker failover, ttl 30 loop_wait 10:" dd
  run partition 30 10 10 "docker partition, ttl 30 loop_wait 10:" dd
else
  echo "docker drills skipped: Docker or the image pgdba/node:15 is not here (DOCKER=0 skips them too)"
fi
