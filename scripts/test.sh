#!/usr/bin/env bash
# The whole test suite: install what is missing, then format, lint and test. Tests start real
# etcd, Patroni and PostgreSQL processes on loopback ports each test owns.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
cargo fmt --check
# Every YAML example passes an external JSON Schema validator, not only our own loader.
/opt/pgdba-tools/bin/check-jsonschema --schemafile schemas/cluster.schema.json examples/*.yaml
# The CI examples are valid GitHub Actions workflows.
/opt/pgdba-tools/bin/check-jsonschema --builtin-schema vendor.github-workflows examples/ci/*.yml
cargo clippy --all-targets --quiet -- -D warnings
# Real-cluster tests wait on processes, not on CPU: run more of them than there are cores.
cargo test --quiet -- --test-threads "${PGDBA_TEST_THREADS:-6}"
