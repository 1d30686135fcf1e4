#!/usr/bin/env bash
# Installs what pgdba and its tests need, idempotently; fast when everything is already there.
# Debian 12: PostgreSQL 15 (preinstalled), etcd, Patroni (PyPI, in a venv of Debian's python).
set -euo pipefail

log() { printf 'install: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need_apt+=(etcd-server)
dpkg -s python3-venv >/dev/null 2>&1 || need_apt+=(python3-venv)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client-15)
[ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
command -v pgbackrest >/dev/null 2>&1 || need_apt+=(pgbackrest)
# The ssh provider's test hosts (scripts/testhosts.sh): sshd in network namespaces.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keyscan >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts sshd as a service on install; the tests run their own in their test hosts.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now ssh >/dev/null 2>&1 || true; fi
# Debian starts etcd as a service on install; pgdba runs its own etcd per cluster.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true; fi
pkill -x etcd -u etcd >/dev/null 2>&1 || true
# Likewise PgBouncer: pgdba runs one per cluster that asks for a pooler.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now pgbouncer >/dev/null 2>&1 || true; fi
pkill -u postgres -f '/etc/pgbouncer/pgbouncer.ini$' >/dev/null 2>&1 || true

PATRONI_VENV="${PGDBA_PATRONI_VENV:-/opt/patroni}"
if ! "$PATRONI_VENV/bin/patroni" --version >/dev/null 2>&1; then
  log "creating the Patroni venv in $PATRONI_VENV"
  $SUDO /usr/bin/python3 -m venv "$PATRONI_VENV"
  $SUDO "$PATRONI_VENV/bin/pip" install -q "patroni[etcd3]>=4,<5" "psycopg[binary]>=3"
fi

# Tools the test suite uses: check-jsonschema validates the example specs against the schema.
TOOLS_VENV="${PGDBA_TOOLS_VENV:-/opt/pgdba-tools}"
if ! "$TOOLS_VENV/bin/check-jsonschema" --version >/dev/null 2>&1; then
  log "creating the tools venv in $TOOLS_VENV"
  $SUDO /usr/bin/python3 -m venv "$TOOLS_VENV"
  $SUDO "$TOOLS_VENV/bin/pip" install -q "check-jsonschema>=0.29"
fi

# An S3-compatible server for the S3 backup repository test (tests/integration/local_backup_s3.rs):
# moto run plain, behind Debian's nginx terminating TLS (pgBackRest speaks S3 over TLS only), with
# a certificate openssl makes. The test starts its own nginx with its own configuration.
MOTO_VENV="${PGDBA_MOTO_VENV:-/opt/moto}"
if ! [ -x "$MOTO_VENV/bin/moto_server" ]; then
  log "creating the moto venv in $MOTO_VENV"
  $SUDO /usr/bin/python3 -m venv "$MOTO_VENV"
  $SUDO "$MOTO_VENV/bin/pip" install -q "moto[server]>=5"
fi
need_apt=()
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts nginx as a service on install; the test runs its own.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true; fi
  if [ -s /run/nginx.pid ]; then $SUDO kill "$(cat /run/nginx.pid)" >/dev/null 2>&1 || true; fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  log "cargo is missing: install a Rust toolchain (rustup) first"; exit 1
fi

# --- Docker node images (deployments/docker) -----------------------------------------------------
# The Docker provider's tests run containers of pgdba/node:MAJOR, built from nothing by
# deployments/docker/build.sh and cached by recipe hash (instant when the image exists).
# PGDBA_NODE_IMAGES lists the majors to build (default "15"; e.g. "15 17").
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  node_image_build="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deployments/docker/build.sh"
  for node_major in ${PGDBA_NODE_IMAGES:-15}; do
    node_tag=$("$node_image_build" "$node_major")
    log "docker node image $node_tag"
  done
else
  log "docker is not available: the Docker provider tests will be skipped"
fi
# --- end of Docker node images ---------------------------------------------------------------------

log "ok: postgres $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}'), etcd $(/usr/bin/etcd --version 2>/dev/null | head -1 | awk '{print $3}'), patroni $("$PATRONI_VENV/bin/patroni" --version | awk '{print $2}')"
