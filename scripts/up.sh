#!/usr/bin/env bash
# The main job: install what is missing, build pgdba, bring up the example local cluster
# from examples/local-3node.yaml and show its status.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC="${1:-examples/local-3node.yaml}"
bash scripts/install.sh
cargo build --release --quiet
PGDBA=target/release/pgdba
"$PGDBA" apply -f "$SPEC" --auto-approve --format table
echo
"$PGDBA" plan -f "$SPEC" --format table
echo
# Patroni's own view of the cluster.
CONFIG=$("$PGDBA" state show "$(awk '/^  name:/{print $2; exit}' "$SPEC")" --format json \
  | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["members"][0]["data_dir"].rsplit("/",1)[0] + "/patroni.yml")')
# patronictl reads etcd, which authenticates: give it the credentials pgdba generated (0600 file).
NAME=$(awk '/^  name:/{print $2; exit}' "$SPEC")
STATE_DIR="${PGDBA_STATE_DIR:-./state}"
export PATRONI_ETCD3_USERNAME=root
PATRONI_ETCD3_PASSWORD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("etcd_password",""))' "$STATE_DIR/$NAME.secrets.json")
export PATRONI_ETCD3_PASSWORD
PATRONI_ETCD3_HOSTS=$("$PGDBA" state show "$NAME" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["dcs"]["endpoints"][0].split("//")[1])')
export PATRONI_ETCD3_HOSTS
# Patroni's listing is built from member keys rewritten once per loop_wait: give it the few
# seconds it may need to show the replicas that already stream as `streaming`.
for _ in $(seq 60); do
  /opt/patroni/bin/patronictl -c "$CONFIG" list -f json | python3 -c '
import json, sys
m = json.load(sys.stdin)
sys.exit(0 if any(x["Role"] == "Leader" for x in m) and all(x["State"] == "streaming" for x in m if x["Role"] != "Leader") else 1)
' && break
  sleep 1
done
/opt/patroni/bin/patronictl -c "$CONFIG" list
