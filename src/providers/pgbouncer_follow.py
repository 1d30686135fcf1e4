#!/usr/bin/python3
"""pgdba's PgBouncer supervisor: runs PgBouncer and keeps its [databases] on Patroni's leader.

Usage: pgbouncer-follow.py CONFIG_DIR API_URL [API_URL ...]

CONFIG_DIR holds pgbouncer.base.ini (everything but [databases]) and userlist.txt, which pgdba
wrote. Once a Patroni REST API (GET /cluster, no authentication) names a leader, this writes
CONFIG_DIR/pgbouncer.ini (the base, then `* = host=LEADER port=PORT`) and starts PgBouncer on it.
Every second it asks again; when the leader moves (a switchover, a failover) it rewrites the file
and reloads PgBouncer (SIGHUP): clients stay connected, new server connections go to the new
leader. It learns the REST APIs of members added later from the answers. It exits with
PgBouncer's exit status, and stops PgBouncer on SIGTERM or SIGINT. $PGBOUNCER names PgBouncer's
executable when it is not on $PATH.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

conf_dir = sys.argv[1]
apis = list(dict.fromkeys(a.rstrip("/") for a in sys.argv[2:]))
base = os.path.join(conf_dir, "pgbouncer.base.ini")
ini = os.path.join(conf_dir, "pgbouncer.ini")


def log(msg):
    print("pgbouncer-follow: " + msg, flush=True)


def leader():
    for api in list(apis):
        try:
            with urllib.request.urlopen(api + "/cluster", timeout=2) as r:
                cluster = json.load(r)
        except Exception:
            continue
        found = None
        for m in cluster.get("members", []):
            url = m.get("api_url", "")
            if url.endswith("/patroni"):
                url = url[: -len("/patroni")]
            if url and url not in apis:
                apis.append(url)
            if m.get("role") in ("leader", "standby_leader") and m.get("host"):
                found = (m["host"], int(m.get("port", 5432)))
        if found:
            return found
    return None


def write(target):
    with open(base) as f:
        text = f.read()
    text += "\n[databases]\n* = host=%s port=%d\n" % target
    tmp = ini + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, ini)


child = None


def stop(signum, _frame):
    if child is not None and child.poll() is None:
        child.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
    else:
        sys.exit(0)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

current = None
while current is None:
    current = leader()
    if current is None:
        time.sleep(1)
write(current)
log("leader %s:%d" % current)
child = subprocess.Popen([os.environ.get("PGBOUNCER", "pgbouncer"), ini])
while child.poll() is None:
    time.sleep(1)
    now = leader()
    if now is not None and now != current:
        current = now
        write(current)
        child.send_signal(signal.SIGHUP)
        log("leader moved to %s:%d; reloaded" % current)
sys.exit(child.returncode)
