#!/usr/bin/env bash
# Test hosts for the SSH provider: each a network namespace with an address of its own on a
# bridge this script makes, a root filesystem of its own (an overlay over this machine's `/` in a
# private mount namespace: the packages are there, nothing is configured, as on a freshly
# provisioned server) and its own sshd that accepts only the key this script generates.
#
#   testhosts.sh up SET N      N hosts of set SET (a number 1-200) at 10.231.SET.10 ...; prints
#                              one line per host: NAME ADDRESS, and the key's path
#   testhosts.sh down SET      kills every process of the set's hosts, removes its namespaces,
#                              bridge, firewall rule and files
#   testhosts.sh stop SET I    host I stops answering on the network (its link goes down)
#   testhosts.sh start SET I   and comes back
#   testhosts.sh rekey SET I   host I gets a new host key (as a reinstalled server has)
#
# Every host of a set mounts the set's directory shared/ at /srv/pgdba-shared (as NFS would).
# Both root and the user admin (who may run anything through sudo) log in with the key.
#
# The addresses 10.231.SET.0/24 are these hosts' and nothing else's. Needs root, iproute2,
# util-linux (unshare) and openssh-server.
set -euo pipefail

cmd="${1:?usage: testhosts.sh up|down|stop|start|rekey SET [N|I]}"
set_id="${2:?the number of the host set}"
case "$set_id" in '' | *[!0-9]*) echo "testhosts: SET must be a number" >&2; exit 1 ;; esac
[ "$set_id" -ge 1 ] && [ "$set_id" -le 200 ] || { echo "testhosts: SET must be 1-200" >&2; exit 1; }

root="/tmp/pgdba-testhosts/$set_id"
bridge="pgth$set_id"
net="10.231.$set_id"
ns() { echo "pgth$set_id-$1"; }

fw_rule() { # $1: -I or -D
  command -v iptables >/dev/null 2>&1 || return 0
  # Docker sets FORWARD's policy to DROP, which a bridge's traffic meets when br_netfilter is on.
  if [ "$1" = -D ]; then
    while iptables -D FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null; do :; done
  else
    iptables -C FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null \
      || iptables -I FORWARD -i "$bridge" -o "$bridge" -j ACCEPT
  fi
}

down() {
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^pgth$set_id-" || true); do
    for _ in 1 2 3 4 5; do
      pids=$(ip netns pids "$n" 2>/dev/null || true)
      [ -z "$pids" ] && break
      kill -9 $pids 2>/dev/null || true
      sleep 0.2
    done
    ip netns delete "$n" 2>/dev/null || true
  done
  # A namespace can outlive its name for a while (the kernel frees it later): its veth pair
  # goes now, with the end left here.
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^pgth$set_id-" || true); do
    ip link delete "$l" 2>/dev/null || true
  done
  ip link delete "$bridge" 2>/dev/null || true
  fw_rule -D
  rm -rf "$root"
}

host_up() { # $1: index
  local i=$1 n h addr
  n=$(ns "$i")
  h="$root/h$i"
  addr="$net.$((10 + i))"
  mkdir -p "$h/mnt"
  ip netns add "$n"
  ip link add "pgth$set_id-$i" type veth peer name eth0 netns "$n"
  ip link set "pgth$set_id-$i" master "$bridge" up
  ip -n "$n" addr add "$addr/24" dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" link set lo up
  ip -n "$n" route add default via "$net.1"
  # The host's filesystem: an overlay over `/` whose upper layer is a tmpfs of the host's
  # private mount namespace (it goes with the namespace's last process).
  ip netns exec "$n" unshare --mount --uts --propagation private /bin/sh -ec '
    h="$1"; key="$2"; name="$3"
    mount -t tmpfs -o size=2g,mode=0755 "host-$name" "$h/mnt"
    mkdir -p "$h/mnt/upper" "$h/mnt/work" "$h/mnt/root"
    mount -t overlay "host-$name" -o "lowerdir=/,upperdir=$h/mnt/upper,workdir=$h/mnt/work" "$h/mnt/root"
    r="$h/mnt/root"
    mount -t proc proc "$r/proc"
    mount -t sysfs sysfs "$r/sys"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs -o mode=0755 run "$r/run"
    mount -t tmpfs -o mode=1777 tmp "$r/tmp"
    # Storage every host of the set mounts at the same path, as an NFS share would be: what
    # a backup repository on a path every host reaches needs.
    mkdir -p "$r/srv/pgdba-shared"
    mount --bind "$h/../shared" "$r/srv/pgdba-shared"
    echo "$name" > "$r/etc/hostname"
    hostname "$name"
    # As on a provisioned server, the host resolves its own name; and a lookup of any other
    # fails at once (no resolver answers on the host itself) instead of waiting for the
    # resolver of this machine, which the host cannot reach.
    printf "127.0.0.1 localhost\n127.0.1.1 %s\n" "$name" > "$r/etc/hosts"
    rm -f "$r/etc/resolv.conf"
    printf "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n" > "$r/etc/resolv.conf"
    rm -f "$r"/etc/ssh/ssh_host_*
    chroot "$r" ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
    # Root of a fresh server: Debian default shell startup files, not those of this machine.
    for f in .bashrc .profile; do cp "/etc/skel/$f" "$r/root/$f"; done
    mkdir -p "$r/root/.ssh" "$r/run/sshd"
    chmod 700 "$r/root/.ssh"
    cp "$key.pub" "$r/root/.ssh/authorized_keys"
    chmod 600 "$r/root/.ssh/authorized_keys"
    # And a user that is not root but may run anything through sudo without a password.
    chroot "$r" useradd -m -s /bin/bash -p "*" admin
    mkdir -p "$r/home/admin/.ssh"
    cp "$key.pub" "$r/home/admin/.ssh/authorized_keys"
    chroot "$r" chown -R admin: /home/admin/.ssh
    chmod 700 "$r/home/admin/.ssh"
    chmod 600 "$r/home/admin/.ssh/authorized_keys"
    mkdir -p "$r/etc/sudoers.d"
    echo "admin ALL=(ALL) NOPASSWD: ALL" > "$r/etc/sudoers.d/admin"
    chmod 440 "$r/etc/sudoers.d/admin"
    cat > "$r/etc/ssh/sshd_config" <<EOF
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
MaxSessions 64
MaxStartups 64
UseDNS no
Subsystem sftp internal-sftp
EOF
    exec chroot "$r" /usr/sbin/sshd -D -e -o PidFile=/run/sshd.pid
  ' sh "$h" "$root/id_ed25519" "$n" >"$h/sshd.log" 2>&1 &
  echo $! >"$h/launcher.pid"
}

wait_ssh() { # $1: address
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/$1/22") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "testhosts: sshd on $1 did not answer" >&2
  return 1
}

case "$cmd" in
  up)
    count="${3:?how many hosts}"
    down
    mkdir -p "$root"
    chmod 700 "$root"
    mkdir -p "$root/shared"
    chmod 755 "$root/shared"
    ssh-keygen -q -t ed25519 -N "" -C "pgdba-testhosts-$set_id" -f "$root/id_ed25519"
    ip link add "$bridge" type bridge
    ip addr add "$net.1/24" dev "$bridge"
    ip link set "$bridge" up
    fw_rule -I
    for i in $(seq 0 $((count - 1))); do host_up "$i"; done
    for i in $(seq 0 $((count - 1))); do wait_ssh "$net.$((10 + i))"; done
    for i in $(seq 0 $((count - 1))); do echo "$(ns "$i") $net.$((10 + i))"; done
    echo "key $root/id_ed25519"
    ;;
  down) down ;;
  stop) ip link set "pgth$set_id-${3:?host}" down ;;
  start) ip link set "pgth$set_id-${3:?host}" up ;;
  rekey)
    i="${3:?host}"
    # `ip netns exec`, unshare, sh and chroot each exec the next: the launcher is sshd.
    pid=$(cat "$root/h$i/launcher.pid")
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ] || { echo "testhosts: no sshd on host $i" >&2; exit 1; }
    r="/proc/$pid/root"
    rm -f "$r/etc/ssh/ssh_host_ed25519_key" "$r/etc/ssh/ssh_host_ed25519_key.pub"
    ssh-keygen -q -t ed25519 -N "" -f "$r/etc/ssh/ssh_host_ed25519_key"
    kill -HUP "$pid"
    ;;
  *) echo "testhosts: unknown command $cmd" >&2; exit 1 ;;
esac
