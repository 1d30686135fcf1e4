#!/usr/bin/env bash
# Benchmarks (figures, not assertions): the wall time of bringing a 3-member local cluster up
# from nothing with `pgdba apply`, and of `pgdba plan` on the unchanged, converged cluster.
# Targets (issue 2): bring-up under 20 s; plan under 100 ms. Then (issue 3) the plan of a
# converged single-member cluster with 1,000 roles and 200 databases: target under 300 ms.
# Then (issue 4) `pgdba drift` over a fleet of N = 1 and N = 4 clusters: target N = 4 under
# twice N = 1 (clusters are checked concurrently).
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
# Measured loops start after the disk has caught up with what the setup wrote (200 databases
# are 1.5 GB): they measure pgdba, not the kernel's writeback.
settle() { sync; sleep 2; }
# CPU time in clock ticks: of this shell's finished children (pgdba), and of the whole machine
# (pgdba and every server the clusters run: PostgreSQL, Patroni, etcd).
TICK_MS=$((1000 / $(getconf CLK_TCK)))
children_ticks() { local s; s=$(< "/proc/$$/stat"); s=${s##*) }; set -- $s; echo $(( ${14} + ${15} )); }
busy_ticks() { local _c u n s i w q sq st; read -r _c u n s i w q sq st _ < /proc/stat; echo $(( u + n + s + q + sq + st )); }
# Runs "$@" RUNS times; each run must exit 0 (the cluster is converged), else the figures are
# not valid and the script stops. The loop forks nothing but the command, so that the CPU figures
# are the command's (EPOCHREALTIME, not date). Sets RESULT (min, median, max) and MEDIAN, in ms, and
# CPU_OWN / CPU_ALL: the CPU time per run of pgdba and of the whole machine, in ms.
measure() {
  local times=() t code own0 all0
  own0=$(children_ticks); all0=$(busy_ticks)
  for _ in $(seq "$RUNS"); do
    t=${EPOCHREALTIME/./}
    code=0
    "$@" >/dev/null || code=$?
    times+=($(( (${EPOCHREALTIME/./} - t) / 1000 )))
    [ "$code" -eq 0 ] || { echo "$2 $3 exited $code: not converged; the figures are not valid" >&2; exit 1; }
  done
  CPU_OWN=$(( ($(children_ticks) - own0) * TICK_MS / RUNS ))
  CPU_ALL=$(( ($(busy_ticks) - all0) * TICK_MS / RUNS ))
  local sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  MEDIAN=${sorted[$((RUNS / 2))]}
  RESULT="min ${sorted[0]} ms, median $MEDIAN ms, max ${sorted[$((RUNS - 1))]} ms"
}
t=$(date +%s%N)
"$PGDBA" apply -f "$WORK/bench.yaml" --auto-approve --state-dir "$WORK/state" --format json >/dev/null
echo "bring-up (apply from nothing to 1 leader + 2 streaming replicas): $(ms "$t") ms"
settle
measure "$PGDBA" plan -f "$WORK/bench.yaml" --state-dir "$WORK/state" --format json --detailed-exitcode
echo "plan on the converged cluster over $RUNS runs: $RESULT"

# Issues 3 and 8: 1,000 roles, 200 of them with a password (each checked against its SCRAM
# verifier: 4096 PBKDF2 rounds, about a millisecond, on every core), and 200 databases.
"$PGDBA" destroy -f "$WORK/bench.yaml" --confirm --state-dir "$WORK/state" --format json >/dev/null
mkdir -p "$WORK/pw"
python3 - "$WORK" <<'PY'
import os, secrets, sys
work = sys.argv[1]
def role(i):
    if i < 200:
        path = f"{work}/pw/role{i:04d}"
        with open(path, "w") as f:
            f.write(secrets.token_urlsafe(24))
        os.chmod(path, 0o600)
        return f"    - {{name: role{i:04d}, login: true, in_roles: [group{i % 10}], password: {{file: {path}}}}}"
    return f"    - {{name: role{i:04d}, login: true, in_roles: [group{i % 10}]}}"
roles = "\n".join(role(i) for i in range(1000))
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
settle
measure "$PGDBA" plan -f "$WORK/many.yaml" --state-dir "$WORK/state" --format json --detailed-exitcode
many=$MEDIAN
echo "plan with 1,010 roles (200 with passwords) and 200 databases, converged, over $RUNS runs: $RESULT"
# Side by side (issue 8): what a Terraform user waits for on 1,000 resources that do nothing.
if command -v terraform >/dev/null 2>&1; then
  mkdir -p "$WORK/tf"
  python3 -c 'print("\n".join(f"resource \"terraform_data\" \"r{i}\" {{ input = {i} }}" for i in range(1000)))' > "$WORK/tf/main.tf"
  (cd "$WORK/tf" && terraform init -input=false >/dev/null && terraform apply -auto-approve -input=false >/dev/null)
  measure terraform -chdir="$WORK/tf" plan -input=false -detailed-exitcode
  echo "terraform plan on 1,000 no-op terraform_data resources: $RESULT; pgdba/terraform median ratio $(python3 -c "print(round($many / max($MEDIAN, 1), 3))") (target: pgdba at least 10x faster, ratio <= 0.1)"
else
  echo "terraform is not installed on this machine (no registry here provides it): the side-by-side comparison with terraform plan is skipped"
fi

# Issue 4: drift over a fleet of 1 and of 4 two-member clusters.
"$PGDBA" destroy -f "$WORK/many.yaml" --confirm --state-dir "$WORK/state" --format json >/dev/null
mkdir -p "$WORK/fleet1" "$WORK/fleet4"
for i in 0 1 2 3; do
  cat > "$WORK/fleet4/f$i.yaml" <<SPEC
apiVersion: pgdba/v1
kind: Cluster
metadata: {name: fleet$i}
spec:
  provider:
    local: {data_dir: $WORK/fleet$i, pg_port: $((27432 + i * 10)), api_port: $((28008 + i * 10)), etcd_port: $((29379 + i * 10))}
  postgres:
    parameters: {work_mem: 4MB}
  replicas: 1
SPEC
  "$PGDBA" apply -f "$WORK/fleet4/f$i.yaml" --auto-approve --state-dir "$WORK/state" --format json >/dev/null
done
cp "$WORK/fleet4/f0.yaml" "$WORK/fleet1/"
trap 'for f in "$WORK"/fleet4/*.yaml; do "$PGDBA" destroy -f "$f" --confirm --state-dir "$WORK/state" >/dev/null 2>&1 || true; done; rm -rf "$WORK"' EXIT
settle
measure "$PGDBA" drift -f "$WORK/fleet1" --state-dir "$WORK/state" --format json
one=$MEDIAN own1=$CPU_OWN all1=$CPU_ALL
measure "$PGDBA" drift -f "$WORK/fleet4" --state-dir "$WORK/state" --format json
four=$MEDIAN own4=$CPU_OWN all4=$CPU_ALL
echo "drift over a fleet, median of $RUNS runs: N=1 ${one} ms, N=4 ${four} ms (ratio $(python3 -c "print(round($four / max($one, 1), 2))"))"
# Where the time goes: the clusters run on this machine, so their servers' CPU shares its cores
# with pgdba. N=4's wall time cannot be less than all the CPU it takes spread over every core.
cores=$(nproc)
echo "  CPU per drift run: N=1 ${all1} ms (pgdba ${own1} ms), N=4 ${all4} ms (pgdba ${own4} ms); on $cores cores N=4 takes at least $((all4 / cores)) ms"
