#!/usr/bin/env bash
# Benchmark (figures, not assertions) of failover drills on a 3-member local cluster in
# synchronous mode, in one run:
#   - `pgdba chaos drill failover` DRILLS times (default 5) with Patroni's default timings
#     (ttl 30, loop_wait 10, retry_timeout 10), then DRILLS times with shorter ones (ttl 20,
#     loop_wait 2, retry_timeout 5): the median RTO of each, beside the window those timings
#     imply (ttl + loop_wait, the anchor) and their ratio, and the acknowledged commits lost
#     (0 expected: synchronous mode);
#   - `pgdba chaos drill switchover` DRILLS times: the median write outage (target under 3 s).
# The docker provider's drill is tested (tests/integration/docker_cluster.rs) but not timed here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
cargo build --release --quiet
PGDBA="$PWD/target/release/pgdba"
DRILLS="${DRILLS:-5}"
WORK=$(mktemp -d /tmp/pgdba-bench-drill.XXXXXX)
chmod 755 "$WORK"
trap '"$PGDBA" destroy -f "$WORK/dr.yaml" --confirm --state-dir "$WORK/state" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
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
settled() {
  for _ in $(seq 240); do
    if "$PGDBA" cluster status --name dr --format json | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
ok = d["leader"] and sum(m["state"] == "streaming" for m in d["members"]) == 2
sys.exit(0 if ok else 1)'; then return 0; fi
    sleep 0.5
  done
  echo "the cluster did not settle" >&2
  exit 1
}
# One drill; prints "<rto_ms> <rpo> <write_unavailable_ms>".
drill() {
  settled
  "$PGDBA" chaos drill "$1" -f "$WORK/dr.yaml" --i-know-what-i-am-doing --format json |
    python3 -c '
import json, sys
v = json.load(sys.stdin)
if v["error"]:
    sys.exit("the drill failed: " + v["error"]["message"])
d = v["data"]
print(d["rto_ms"], d["rpo_transactions"], d.get("write_unavailable_ms") or 0)'
}
median() { python3 -c 'import statistics,sys; print(int(statistics.median(int(x) for x in sys.argv[1:])))' "$@"; }
run() { # kind ttl loop_wait retry label
  local rtos=() lost=0 outages=()
  for _ in $(seq "$DRILLS"); do
    read -r rto rpo outage < <(drill "$1")
    rtos+=("$rto"); outages+=("$outage"); lost=$((lost + rpo))
  done
  local m window
  m=$(median "${rtos[@]}")
  window=$(( ($2 + $3) * 1000 ))
  if [ "$1" = failover ]; then
    printf '%-44s median RTO %6d ms   window ttl+loop_wait %6d ms   ratio %.2f   commits lost %d   (RTOs: %s)\n' \
      "$5" "$m" "$window" "$(python3 -c "print($m/$window)")" "$lost" "${rtos[*]}"
  else
    printf '%-44s median write outage %6d ms (target < 3000)   commits lost %d   (outages: %s)\n' \
      "$5" "$(median "${outages[@]}")" "$lost" "${outages[*]}"
  fi
}
spec 30 10 10
run failover 30 10 10 "failover, ttl 30 loop_wait 10 retry 10:"
run switchover 30 10 10 "switchover, ttl 30 loop_wait 10 retry 10:"
spec 20 2 5
settled
run failover 20 2 5 "failover, ttl 20 loop_wait 2 retry 5:"
