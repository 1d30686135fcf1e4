#!/usr/bin/env bash
# Builds pgdba's Docker node image from nothing (no registry): debootstrap a Debian root
# filesystem with PostgreSQL, etcd, pgBouncer, pgBackRest and the Prometheus exporter, add a
# Patroni venv from wheels downloaded on the host, and `docker import` it.
#
#   deployments/docker/build.sh MAJOR        MAJOR: 15 (Debian 12 bookworm) or 17 (Debian 13 trixie)
#
# Prints only the image tag (pgdba/node:MAJOR-HASH) on stdout; progress goes to stderr. HASH is
# the first 12 hex digits of a sha256 over this recipe (build.sh, packages-MAJOR.txt,
# requirements.txt); when that image exists the script only (re)tags pgdba/node:MAJOR and exits.
# The Debian mirror is the host's own (apt sources), or PGDBA_DEBIAN_MIRROR when set.
set -euo pipefail

usage() { echo "usage: $0 MAJOR   (MAJOR: 15 or 17)" >&2; exit 1; }
[ "$#" -eq 1 ] || usage
MAJOR=$1
case "$MAJOR" in
  15) SUITE=bookworm ;;
  17) SUITE=trixie ;;
  *) echo "build.sh: unsupported PostgreSQL major '$MAJOR' (supported: 15, 17)" >&2; exit 1 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=pgdba/node
PACKAGES_FILE="packages-$MAJOR.txt"

recipe_hash() {
  local files f
  mapfile -t files < <(printf '%s\n' build.sh "$PACKAGES_FILE" requirements.txt | LC_ALL=C sort)
  for f in "${files[@]}"; do
    printf '%s\0' "$f"
    cat "$HERE/$f"
  done | sha256sum | cut -c1-12
}

HASH=$(recipe_hash)
TAG="$REPO:$MAJOR-$HASH"

# Cached path: the image of this recipe exists.
cached() {
  if docker image inspect "$TAG" >/dev/null 2>&1; then
    docker tag "$TAG" "$REPO:$MAJOR"
    echo "$TAG"
    return 0
  fi
  return 1
}
cached && exit 0

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -- "$0" "$MAJOR"
fi

# From here on, stdout belongs to the final tag only: everything else goes to stderr.
exec 3>&1 1>&2

T0=$SECONDS
say() { printf 'node image %s: %s\n' "$MAJOR" "$*" >&2; }

mkdir -p /var/lock
exec 9>"/var/lock/pgdba-node-image-$MAJOR.lock"
if ! flock -n 9; then
  say "waiting for another build of the same major"
  flock 9
fi
# Another build may have finished while this one waited.
if docker image inspect "$TAG" >/dev/null 2>&1; then
  docker tag "$TAG" "$REPO:$MAJOR"
  echo "$TAG" >&3
  exit 0
fi

WORK="/var/tmp/pgdba-node-build-$MAJOR-$$"
ROOTFS="$WORK/rootfs"
LOG="$WORK/build.log"
CURRENT_STEP=setup
STEP_PID=""

# Kill processes that package scripts may have started inside the root filesystem (their root
# directory is ROOTFS); they are this build's own children.
stop_chroot_processes() {
  local p root pids=()
  for p in /proc/[0-9]*; do
    root=$(readlink "$p/root" 2>/dev/null) || continue
    case "$root" in
      "$ROOTFS" | "$ROOTFS"/*) pids+=("${p#/proc/}") ;;
    esac
  done
  [ "${#pids[@]}" -gt 0 ] || return 0
  echo "stopping processes left running in the root filesystem: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  sleep 2
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

# Stop an interrupted step: its process and all of its descendants (children first).
stop_tree() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do stop_tree "$c"; done
  kill -TERM "$1" 2>/dev/null || true
}

mounts_under_work() {
  awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r
}

unmount_work() {
  local m
  for m in $(mounts_under_work); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ]; then
    say "FAILED during '$CURRENT_STEP' (exit $rc) after $((SECONDS - T0)) s; last lines of the log:"
    [ -f "$LOG" ] && tail -n 40 "$LOG" >&2
  fi
  if [ -n "$STEP_PID" ]; then
    stop_tree "$STEP_PID"
    wait "$STEP_PID" 2>/dev/null
  fi
  if [ -d "$WORK" ]; then
    stop_chroot_processes >/dev/null 2>&1
    unmount_work
    if [ -n "$(mounts_under_work)" ]; then
      say "not removing $WORK: something is still mounted under it"
    else
      rm -rf --one-file-system "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK"
: >"$LOG"

# step NAME COMMAND...: runs COMMAND with its output in the build log, then reports the time.
# COMMAND runs in the background and is waited for, so that INT/TERM reach the traps at once
# instead of after a long debootstrap; cleanup stops it (STEP_PID).
step() {
  local t=$SECONDS
  CURRENT_STEP=$1
  shift
  "$@" >>"$LOG" 2>&1 &
  STEP_PID=$!
  wait "$STEP_PID"
  STEP_PID=""
  say "$CURRENT_STEP ... $((SECONDS - t)) s"
}

in_root() {
  chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "$@"
}

# The host's Debian mirror: the first non-security URIs of debian.sources, else sources.list.
debian_mirror() {
  if [ -n "${PGDBA_DEBIAN_MIRROR:-}" ]; then echo "$PGDBA_DEBIAN_MIRROR"; return; fi
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '
      function flush() { if (uri != "" && suites !~ /security/ && found == "") found = uri; uri = ""; suites = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { suites = $0 }
      END { flush(); print found }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1 == "deb" && $0 !~ /security/ {
           for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || { echo "build.sh: no Debian mirror found in the host's apt sources" >&2; return 1; }
  echo "$m"
}

host_tools() {
  local need=()
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  command -v flock >/dev/null 2>&1 || need+=(util-linux)
  if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
}

run_debootstrap() {
  local include
  include=$(grep -v '^[[:space:]]*\(#\|$\)' "$HERE/$PACKAGES_FILE" | paste -sd, -)
  debootstrap --variant=minbase --include="$include" "$SUITE" "$ROOTFS" "$MIRROR"
}

# postgresql-common creates a "main" cluster on install; the image must hold no cluster.
clear_clusters() {
  stop_chroot_processes
  unmount_work
  rm -rf "$ROOTFS"/etc/postgresql/*/main "$ROOTFS"/var/lib/postgresql/*/main \
    "$ROOTFS"/var/log/postgresql/*
  if [ -f "$ROOTFS/etc/postgresql-common/createcluster.conf" ]; then
    sed -i 's/^#\?[[:space:]]*create_main_cluster.*/create_main_cluster = false/' \
      "$ROOTFS/etc/postgresql-common/createcluster.conf"
  fi
}

host_pip() {
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip "$@"
  else
    [ -x "$WORK/pip-venv/bin/pip" ] || python3 -m venv "$WORK/pip-venv"
    "$WORK/pip-venv/bin/pip" "$@"
  fi
}

# PyPI is reachable from the host only: download the pinned closure for the image's Python.
download_wheels() {
  local pyver
  pyver=$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  echo "image python: $pyver"
  mkdir -p "$ROOTFS/wheels"
  cp "$HERE/requirements.txt" "$ROOTFS/wheels/requirements.txt"
  host_pip download --disable-pip-version-check --no-deps --prefer-binary \
    --python-version "$pyver" -d "$ROOTFS/wheels" -r "$HERE/requirements.txt"
}

install_patroni() {
  in_root sh -ec '
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_CACHE_DIR=1
    python3 -m venv /opt/patroni
    /opt/patroni/bin/pip install --no-index --find-links /wheels -r /wheels/requirements.txt \
      "patroni[etcd3]>=4,<5" "psycopg[binary]>=3"
    /opt/patroni/bin/pip check'
  rm -rf "$ROOTFS/wheels"
}

configure_node() {
  local b bin="/usr/lib/postgresql/$MAJOR/bin"
  for b in postgres pg_ctl initdb pg_basebackup pg_rewind pg_controldata; do
    [ -x "$ROOTFS$bin/$b" ] || { echo "missing $bin/$b"; return 1; }
    ln -sfn "$bin/$b" "$ROOTFS/usr/local/bin/$b"
  done
  for b in patroni patronictl; do
    ln -sfn "/opt/patroni/bin/$b" "$ROOTFS/usr/local/bin/$b"
  done
  # Debian names the exporter prometheus-postgres-exporter; offer the upstream name too.
  ln -sfn /usr/bin/prometheus-postgres-exporter "$ROOTFS/usr/local/bin/postgres_exporter"
  # PostgreSQL's default socket directory (the image has no tmpfiles.d run at boot).
  in_root install -d -o postgres -g postgres -m 2775 /run/postgresql
  # debootstrap copies the host's resolver and name; Docker provides its own at run time.
  : >"$ROOTFS/etc/resolv.conf"
  echo pgdba-node >"$ROOTFS/etc/hostname"

  local pg patroni etcd pgbouncer pgbackrest exporter python
  pg=$(in_root postgres --version | awk '{print $3}')
  patroni=$(in_root patroni --version | awk '{print $2}')
  etcd=$(in_root etcd --version | awk 'NR == 1 {print $3}')
  pgbouncer=$(in_root pgbouncer --version | awk 'NR == 1 {print $2}')
  pgbackrest=$(in_root pgbackrest version | awk '{print $2}')
  exporter=$(in_root postgres_exporter --version 2>&1 | awk 'NR == 1 {print $3}')
  python=$(in_root python3 --version | awk '{print $2}')
  cat >"$ROOTFS/etc/pgdba-node-release" <<EOF
major=$MAJOR
debian=$SUITE $(cat "$ROOTFS/etc/debian_version")
recipe=$HASH
image=$TAG
postgres=$pg
patroni=$patroni
etcd=$etcd
pgbouncer=$pgbouncer
pgbackrest=$pgbackrest
postgres_exporter=$exporter
python=$python
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
  cat "$ROOTFS/etc/pgdba-node-release"
}

slim() {
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/lintian "$ROOTFS"/usr/share/postgresql/*/man \
    "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/root/.cache
  find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  du -sh "$ROOTFS"
}

import_image() {
  [ -z "$(mounts_under_work)" ] || { echo "mounts left under $WORK"; return 1; }
  tar -C "$ROOTFS" --numeric-owner --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* -c . |
    docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'ENV LANG=C.UTF-8' \
      -c "LABEL org.pgdba.node.major=$MAJOR org.pgdba.node.recipe=$HASH" \
      -c 'CMD ["/bin/bash"]' \
      - "$TAG"
  docker tag "$TAG" "$REPO:$MAJOR"
}

MIRROR=$(debian_mirror)
say "building $TAG (debian $SUITE from $MIRROR)"
step "host tools" host_tools
step "debootstrap $SUITE" run_debootstrap
step "remove auto-created clusters" clear_clusters
step "download python wheels" download_wheels
step "patroni venv" install_patroni
step "configure node" configure_node
step "slim" slim
step "docker import" import_image
say "built $TAG in $((SECONDS - T0)) s"
echo "$TAG" >&3
