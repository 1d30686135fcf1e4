#!/usr/bin/env bash
# Benchmarks of the docker provider (figures, not assertions), issue 9:
#   (a) the node image pgdba/node:15: with --cold, its build from nothing (the image is removed
#       first); otherwise the cached call of deployments/docker/build.sh;
#   (b) bring-up from nothing with the image cached: `pgdba apply` of a 3-member docker spec
#       (3 etcd + 3 members), wall time, target under 60 s;
#   (c) `pgdba plan` on the converged cluster, median of RUNS runs (default 20), target under
#       100 ms, side by side with what a user would run instead, `docker exec <leader> patronictl
#       list`: the two run in turn (A B A B ...) and the ratio is taken pair by pair;
#   (d) `pgdba destroy`, wall time.
# It cleans up after itself (pgdba destroy, then anything left with the cluster's label).
#
#   scripts/bench-docker.sh [--cold]
#
# --cold removes pgdba/node:15 to time a build from nothing (about 3 minutes): meanwhile every
# other use of the image on this Docker host fails, so it refuses while any container uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
COLD=0
case "${1:-}" in
  --cold) COLD=1 ;;
  "") ;;
  *) echo "usage: $0 [--cold]" >&2; exit 1 ;;
esac
docker info >/dev/null 2>&1 || { echo "bench-docker: the Docker engine is not available" >&2; exit 1; }
bash scripts/install.sh
cargo build --release --quiet
PGDBA="$PWD/target/release/pgdba"
RUNS="${RUNS:-20}"
NAME=dockbench
LABEL="io.pgdba.cluster=$NAME"
IMAGE=pgdba/node:15
WORK=$(mktemp -d /tmp/pgdba-bench-docker.XXXXXX)
sweep() {
  local ids
  ids=$(docker ps -aq --filter "label=$LABEL"); [ -z "$ids" ] || docker rm -f -v $ids >/dev/null
  ids=$(docker volume ls -q --filter "label=$LABEL"); [ -z "$ids" ] || docker volume rm -f $ids >/dev/null
  ids=$(docker network ls -q --filter "label=$LABEL"); [ -z "$ids" ] || docker network rm $ids >/dev/null
}
cleanup() {
  if [ -f "$WORK/state/$NAME.json" ]; then
    "$PGDBA" destroy -f "$WORK/$NAME.yaml" --confirm --state-dir "$WORK/state" >/dev/null 2>&1 || true
  fi
  sweep || true
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ -n "$(docker ps -aq --filter "label=$LABEL")" ]; then
  echo "bench-docker: containers of a cluster named $NAME exist (an earlier run?): removing them" >&2
  sweep
fi
cat > "$WORK/$NAME.yaml" <<SPEC
apiVersion: pgdba/v1
kind: Cluster
metadata: {name: $NAME}
spec:
  provider:
    docker: {}
  postgres:
    version: 15
    parameters: {max_connections: 100, shared_buffers: 128MB, work_mem: 4MB}
  replicas: 2
SPEC
ms() { echo $(( (${EPOCHREALTIME/./} - $1) / 1000 )); }

# (a) The node image.
if [ "$COLD" -eq 1 ]; then
  users=$(docker ps -aq --filter "ancestor=$IMAGE")
  if [ -n "$users" ]; then
    echo "bench-docker: --cold would remove $IMAGE, which these containers use: $(docker ps -a --filter "ancestor=$IMAGE" --format '{{.Names}}' | paste -sd' ')" >&2
    exit 1
  fi
  for tag in $(docker images --format '{{.Repository}}:{{.Tag}}' pgdba/node | grep '^pgdba/node:15'); do
    docker rmi "$tag" >/dev/null
  done
  t=${EPOCHREALTIME/./}
  tag=$(deployments/docker/build.sh 15)
  echo "(a) node image $tag built from nothing (not cached): $(ms "$t") ms"
else
  t=${EPOCHREALTIME/./}
  tag=$(deployments/docker/build.sh 15 2>/dev/null)
  echo "(a) node image $tag, cached call of build.sh (--cold times a build from nothing): $(ms "$t") ms"
fi

# (b) Bring-up from nothing, the image cached.
t=${EPOCHREALTIME/./}
"$PGDBA" apply -f "$WORK/$NAME.yaml" --auto-approve --state-dir "$WORK/state" --format json >/dev/null
up=$(ms "$t")
running=$(docker ps --filter "label=$LABEL" --filter status=running -q | wc -l)
echo "(b) bring-up (apply from nothing to 3 etcd + 1 leader + 2 streaming replicas, $running containers running): $up ms (target < 60000 ms)"

# (c) plan on the converged cluster, beside `docker exec <leader> patronictl list`.
leader=$("$PGDBA" state show "$NAME" --state-dir "$WORK/state" --format json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["leader"])')
PLAN=("$PGDBA" plan -f "$WORK/$NAME.yaml" --state-dir "$WORK/state" --format json --detailed-exitcode)
LIST=(docker exec "pgdba-$leader" patronictl -c /etc/pgdba/patroni.yml list)
# Let Patroni's member keys settle (the replicas report `streaming` one loop_wait after apply).
sleep 2
# One untimed warm-up of each; then RUNS pairs. Each must exit 0: a plan that finds changes
# means the cluster is not converged and the figures are not valid.
"${PLAN[@]}" >/dev/null
"${LIST[@]}" >/dev/null
a=() b=() ratios=()
for _ in $(seq "$RUNS"); do
  t=${EPOCHREALTIME/./}
  code=0; "${PLAN[@]}" >/dev/null || code=$?
  ta=$(( ${EPOCHREALTIME/./} - t ))
  [ "$code" -eq 0 ] || { echo "bench-docker: plan exited $code: not converged; the figures are not valid" >&2; exit 1; }
  t=${EPOCHREALTIME/./}
  code=0; "${LIST[@]}" >/dev/null || code=$?
  tb=$(( ${EPOCHREALTIME/./} - t ))
  [ "$code" -eq 0 ] || { echo "bench-docker: patronictl list exited $code" >&2; exit 1; }
  a+=("$ta") b+=("$tb") ratios+=("$(( ta * 1000 / tb ))")
done
# min, median, max of microsecond figures, printed in ms.
stats() {
  local s=($(printf '%s\n' "$@" | sort -n)) n=$#
  printf 'min %d ms, median %d ms, max %d ms' $(( s[0] / 1000 )) $(( s[n / 2] / 1000 )) $(( s[n - 1] / 1000 ))
}
median() { local s=($(printf '%s\n' "$@" | sort -n)); echo "${s[$(( $# / 2 ))]}"; }
echo "(c) pgdba plan on the converged cluster over $RUNS runs: $(stats "${a[@]}") (target: median < 100 ms)"
echo "    docker exec pgdba-$leader patronictl list, same runs in turn: $(stats "${b[@]}")"
r=$(median "${ratios[@]}")
echo "    plan / patronictl list, median of the pairwise ratios: $(( r / 1000 )).$(printf '%03d' $(( r % 1000 )))"

# (d) destroy.
t=${EPOCHREALTIME/./}
"$PGDBA" destroy -f "$WORK/$NAME.yaml" --confirm --state-dir "$WORK/state" --format json >/dev/null
gone=$(ms "$t")
left=$(( $(docker ps -aq --filter "label=$LABEL" | wc -l) + $(docker volume ls -q --filter "label=$LABEL" | wc -l) + $(docker network ls -q --filter "label=$LABEL" | wc -l) ))
echo "(d) destroy (3 members, 3 etcd, their volumes and the network): $gone ms; objects left with the cluster's label: $left"
