#!/usr/bin/env bash
# The whole test suite: install what is missing, then format, lint and test. Tests start real
# etcd, Patroni and PostgreSQL processes on loopback ports each test owns.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The Docker provider's tests skip themselves only when Docker is not available here. When it
# is, install.sh has built the node image; if that image is missing, fail rather than let those
# tests skip in silence.
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 &&
  ! docker image inspect pgdba/node:15 >/dev/null 2>&1; then
  echo "test.sh: Docker works but the image pgdba/node:15 is missing: the Docker provider tests would be skipped; build it with deployments/docker/build.sh 15" >&2
  exit 1
fi
cargo fmt --check
# Every YAML example passes an external JSON Schema validator, not only our own loader.
/opt/pgdba-tools/bin/check-jsonschema --schemafile schemas/cluster.schema.json examples/*.yaml
# The CI examples are valid GitHub Actions workflows.
/opt/pgdba-tools/bin/check-jsonschema --builtin-schema vendor.github-workflows examples/ci/*.yml
cargo clippy --all-targets --quiet -- -D warnings
# Real-cluster tests wait on processes, not on CPU: run more of them than there are cores.
cargo test --quiet -- --test-threads "${PGDBA_TEST_THREADS:-6}"
