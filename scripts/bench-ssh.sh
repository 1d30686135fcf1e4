#!/usr/bin/env bash
# Benchmarks of the ssh provider (figures, not assertions), issue 13, on three test hosts of
# scripts/testhosts.sh (network namespaces with their own sshd; set 60, 10.231.60.0/24):
#   (a) bring-up of 3 hosts from provisioned-but-unconfigured to streaming: `pgdba apply` of the
#       example spec switched to the hosts (3 etcd, 3 members, PgBouncer), wall time, target
#       under 60 s;
#   (b) `pgdba plan` on the converged cluster, median of RUNS runs (default 20), target under
#       300 ms, side by side with what a DBA would run instead, `ssh <host> patronictl list`
#       (OpenSSH's client): the two run in turn (A B A B ...) and the ratio is taken pair by pair;
#   (c) `pgdba destroy`, wall time.
# It removes the hosts afterwards.
#
#   scripts/bench-ssh.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-ssh: the test hosts need root (network namespaces)" >&2; exit 1; }
bash scripts/install.sh
cargo build --release --quiet
PGDBA="$PWD/target/release/pgdba"
RUNS="${RUNS:-20}"
SET=60
NAME=sshbench
WORK=$(mktemp -d /tmp/pgdba-bench-ssh.XXXXXX)
cleanup() {
  if [ -f "$WORK/state/$NAME.json" ]; then
    "$PGDBA" destroy -f "$WORK/$NAME.yaml" --confirm --state-dir "$WORK/state" >/dev/null 2>&1 || true
  fi
  bash scripts/testhosts.sh down "$SET" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
out=$(bash scripts/testhosts.sh up "$SET" 3)
KEY=$(echo "$out" | awk '$1 == "key" {print $2}')
mapfile -t ADDR < <(echo "$out" | awk '$1 != "key" {print $2}')
# The example spec, its hosts switched to the test hosts.
python3 - "$WORK/$NAME.yaml" "$KEY" "${ADDR[@]}" <<'PY'
import re, sys
out, key, addrs = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open("examples/ssh-3host.yaml").read().replace("name: sshdemo", "name: sshbench")
text = text.replace("/var/lib/pgdba/sshdemo", "/var/lib/pgdba/sshbench")
for old, new in zip(["192.0.2.10", "192.0.2.11", "192.0.2.12"], addrs):
    text = text.replace(old, new)
text = text.replace("/root/.ssh/id_ed25519", key)
open(out, "w").write(text)
PY
ms() { echo $(( (${EPOCHREALTIME/./} - $1) / 1000 )); }
SSH=(ssh -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)

# (a) Bring-up: the first plan shows the hosts' keys; apply trusts them, checks the hosts and
# makes everything.
t=${EPOCHREALTIME/./}
"$PGDBA" apply -f "$WORK/$NAME.yaml" --auto-approve --state-dir "$WORK/state" --format json >/dev/null
up=$(ms "$t")
list() { "${SSH[@]}" "root@${ADDR[0]}" "/opt/patroni/bin/patronictl -c /var/lib/pgdba/$NAME/$NAME-0/patroni.yml list -f json"; }
streaming() { list | python3 -c 'import json, sys; print(sum(m["State"] == "streaming" for m in json.load(sys.stdin)))'; }
n=$(streaming)
for _ in $(seq 30); do [ "$n" -eq 2 ] && break; sleep 1; n=$(streaming); done
stream=$(ms "$t")
echo "(a) bring-up (apply from nothing to 3 etcd + 1 leader + 2 replicas + PgBouncer on 3 hosts): $up ms; both replicas streaming (patronictl list) at $stream ms (target < 60000 ms)"

# (b) plan on the converged cluster, beside `ssh <host> patronictl list`.
PLAN=("$PGDBA" plan -f "$WORK/$NAME.yaml" --state-dir "$WORK/state" --format json --detailed-exitcode)
sleep 2
"${PLAN[@]}" >/dev/null
list >/dev/null
a=() b=() ratios=()
for _ in $(seq "$RUNS"); do
  t=${EPOCHREALTIME/./}
  code=0; "${PLAN[@]}" >/dev/null || code=$?
  ta=$(( ${EPOCHREALTIME/./} - t ))
  [ "$code" -eq 0 ] || { echo "bench-ssh: plan exited $code: not converged; the figures are not valid" >&2; exit 1; }
  t=${EPOCHREALTIME/./}
  list >/dev/null
  tb=$(( ${EPOCHREALTIME/./} - t ))
  a+=("$ta") b+=("$tb") ratios+=("$(( ta * 1000 / tb ))")
done
stats() {
  local s=($(printf '%s\n' "$@" | sort -n)) n=$#
  printf 'min %d ms, median %d ms, max %d ms' $(( s[0] / 1000 )) $(( s[n / 2] / 1000 )) $(( s[n - 1] / 1000 ))
}
median() { local s=($(printf '%s\n' "$@" | sort -n)); echo "${s[$(( $# / 2 ))]}"; }
echo "(b) pgdba plan on the converged cluster over $RUNS runs: $(stats "${a[@]}") (target: median < 300 ms)"
echo "    ssh ${ADDR[0]} patronictl list, same runs in turn: $(stats "${b[@]}")"
r=$(median "${ratios[@]}")
echo "    plan / (ssh + patronictl list), median of the pairwise ratios: $(( r / 1000 )).$(printf '%03d' $(( r % 1000 )))"

# (c) destroy.
t=${EPOCHREALTIME/./}
"$PGDBA" destroy -f "$WORK/$NAME.yaml" --confirm --state-dir "$WORK/state" --format json >/dev/null
gone=$(ms "$t")
left=0
for a in "${ADDR[@]}"; do
  "${SSH[@]}" "root@$a" "test -e /var/lib/pgdba/$NAME" && left=$((left + 1))
done
echo "(c) destroy (PgBouncer, 3 members, 3 etcd and their directories): $gone ms; hosts with anything left: $left"
