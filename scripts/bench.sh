#!/usr/bin/env bash
# Benchmarks (figures, not assertions): the wall time of bringing a 3-member local cluster up
# from nothing with `pgdba apply`, and of `pgdba plan` on the unchanged, converged cluster.
# Targets (issue 2): bring-up under 20 s; plan under 100 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
cargo build --release --quiet
PGDBA="$PWD/target/release/pgdba"
RUNS="${RUNS:-20}"
WORK=$(mktemp -d /tmp/pgdba-bench.XXXXXX)
chmod 755 "$WORK"
trap '"$PGDBA" destroy -f "$WORK/bench.yaml" --confirm --state-dir "$WORK/state" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
cat > "$WORK/bench.yaml" <<SPEC
apiVersion: pgdba/v1
kind: Cluster
metadata: {name: bench}
spec:
  provider:
    local: {data_dir: $WORK/data, pg_port: 26432, api_port: 26008, etcd_port: 26379}
  postgres:
    version: 15
    parameters: {max_connections: 100, shared_buffers: 128MB, work_mem: 4MB}
  replicas: 2
SPEC
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
t=$(date +%s%N)
"$PGDBA" apply -f "$WORK/bench.yaml" --auto-approve --state-dir "$WORK/state" --format json >/dev/null
echo "bring-up (apply from nothing to 1 leader + 2 streaming replicas): $(ms "$t") ms"
times=()
for _ in $(seq "$RUNS"); do
  t=$(date +%s%N)
  "$PGDBA" plan -f "$WORK/bench.yaml" --state-dir "$WORK/state" --format json --detailed-exitcode >/dev/null
  times+=("$(ms "$t")")
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "plan on the converged cluster over $RUNS runs: min ${sorted[0]} ms, median ${sorted[$((RUNS/2))]} ms, max ${sorted[$((RUNS-1))]} ms"
