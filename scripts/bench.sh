#!/usr/bin/env bash
# Benchmarks (figures, not assertions): the wall time of bringing a 3-member local cluster up
# from nothing with `pgdba apply`, and of `pgdba plan` on the unchanged, converged cluster.
# Targets (issue 2): bring-up under 20 s; plan under 100 ms. Then (issue 3) the plan of a
# converged single-member cluster with 1,000 roles and 200 databases: target under 300 ms.
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
  code=0
  "$PGDBA" plan -f "$WORK/bench.yaml" --state-dir "$WORK/state" --format json --detailed-exitcode >/dev/null || code=$?
  times+=("$(ms "$t")")
  [ "$code" -eq 0 ] || { echo "plan exited $code: the cluster is not converged; the figures below are not valid" >&2; exit 1; }
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "plan on the converged cluster over $RUNS runs: min ${sorted[0]} ms, median ${sorted[$((RUNS/2))]} ms, max ${sorted[$((RUNS-1))]} ms"

# Issue 3: 1,000 roles and 200 databases. Roles have no password here: checking one against
# its SCRAM verifier costs 4096 PBKDF2 rounds (about a millisecond, by design of SCRAM).
"$PGDBA" destroy -f "$WORK/bench.yaml" --confirm --state-dir "$WORK/state" --format json >/dev/null
python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
roles = "\n".join(f"    - {{name: role{i:04d}, login: true, in_roles: [group{i % 10}]}}" for i in range(1000))
groups = "\n".join(f"    - {{name: group{i}}}" for i in range(10))
dbs = "\n".join(f"    - {{name: db{i:03d}, owner: role{i:04d}}}" for i in range(200))
open(f"{work}/many.yaml", "w").write(f"""apiVersion: pgdba/v1
kind: Cluster
metadata: {{name: many}}
spec:
  provider:
    local: {{data_dir: {work}/many, pg_port: 26532, api_port: 26108, etcd_port: 26479}}
  postgres:
    parameters: {{max_connections: 100}}
  replicas: 0
  roles:
{groups}
{roles}
  databases:
{dbs}
""")
PY
trap '"$PGDBA" destroy -f "$WORK/many.yaml" --confirm --state-dir "$WORK/state" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
t=$(date +%s%N)
"$PGDBA" apply -f "$WORK/many.yaml" --auto-approve --state-dir "$WORK/state" --format json >/dev/null
echo "apply of 1,010 roles and 200 databases on a new single-member cluster: $(ms "$t") ms"
times=()
for _ in $(seq "$RUNS"); do
  t=$(date +%s%N)
  code=0
  "$PGDBA" plan -f "$WORK/many.yaml" --state-dir "$WORK/state" --format json --detailed-exitcode >/dev/null || code=$?
  times+=("$(ms "$t")")
  [ "$code" -eq 0 ] || { echo "plan exited $code: the cluster is not converged; the figures below are not valid" >&2; exit 1; }
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "plan with 1,010 roles and 200 databases, converged, over $RUNS runs: min ${sorted[0]} ms, median ${sorted[$((RUNS/2))]} ms, max ${sorted[$((RUNS-1))]} ms"
