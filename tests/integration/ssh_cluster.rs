//! The `ssh` provider against real hosts: three test hosts made by `scripts/testhosts.sh`, each
//! a network namespace with an address of its own, a root filesystem of its own (an overlay
//! over this machine's `/`: the packages are there, nothing is configured) and its own sshd
//! that accepts only the key the script generates. pgdba logs in with russh; the test looks at
//! the hosts as a DBA would, with OpenSSH's client, `patronictl` and `psql`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{TestCluster, all_files, wait_for};

/// A set of test hosts; dropping it kills everything on them and removes them.
struct TestHosts {
    set: u32,
    addresses: Vec<String>,
    key: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testhosts.sh")
}

impl TestHosts {
    /// `set` is the test's own (its hosts are 10.231.<set>.10 ...).
    fn up(set: u32, count: u32) -> TestHosts {
        let out = Command::new("bash")
            .arg(script())
            .args(["up", &set.to_string(), &count.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "testhosts.sh up: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut addresses = Vec::new();
        let mut key = PathBuf::new();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("key", k)) => key = PathBuf::from(k),
                Some((_, a)) => addresses.push(a.to_owned()),
                None => {}
            }
        }
        TestHosts {
            set,
            addresses,
            key,
        }
    }

    fn control(&self, verb: &str, host: usize) {
        let out = Command::new("bash")
            .arg(script())
            .args([verb, &self.set.to_string(), &host.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "testhosts.sh {verb}: {out:?}");
    }

    /// Run `cmd` on host `i` as root, with OpenSSH's client (as a DBA would).
    fn ssh(&self, i: usize, cmd: &str) -> std::process::Output {
        Command::new("ssh")
            .args([
                "-i",
                self.key.to_str().unwrap(),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=5",
                &format!("root@{}", self.addresses[i]),
                cmd,
            ])
            .output()
            .unwrap()
    }

    fn ssh_ok(&self, i: usize, cmd: &str) -> String {
        let out = self.ssh(i, cmd);
        assert!(out.status.success(), "on host {i}: {cmd}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The host's current key, as `ssh-keyscan` reads it (a `known_hosts` line); sshd may be
    /// restarting (after a new key).
    fn keyscan(&self, i: usize) -> String {
        wait_for("ssh-keyscan", Duration::from_secs(30), || {
            let out = Command::new("ssh-keyscan")
                .args(["-t", "ed25519", &self.addresses[i]])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("ssh-ed25519").then_some(text)
        })
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["down", &self.set.to_string()])
            .output();
    }
}

const APP_SECRET: &str = "ssh-app-Secret-3141";

fn write_spec(t: &TestCluster, hosts: &TestHosts, params: &str, known_hosts: Option<&Path>) {
    // The last host is logged in to as a user that is not root, through sudo.
    let list: Vec<String> = hosts
        .addresses
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let user = if i + 1 == hosts.addresses.len() {
                "admin"
            } else {
                "root"
            };
            format!(
                "        - {{address: {a}, user: {user}, key: {{file: {}}}}}",
                hosts.key.display()
            )
        })
        .collect();
    let known = known_hosts.map_or_else(String::new, |k| {
        format!("      known_hosts: {}\n", k.display())
    });
    let text = format!(
        "apiVersion: pgdba/v1\nkind: Cluster\nmetadata:\n  name: {name}\n  labels: {{env: test}}\nspec:\n  provider:\n    ssh:\n      sudo: true\n{known}      hosts:\n{list}\n  postgres:\n    version: 15\n    parameters: {{{params}}}\n  replicas: 2\n  patroni: {{ttl: 30, loop_wait: 10, retry_timeout: 10}}\n  pooler:\n    pgbouncer: {{pool_mode: transaction}}\n  roles:\n    - name: app\n      login: true\n      password: {{env: SSH_APP_PASSWORD}}\n  databases:\n    - {{name: appdb, owner: app}}\n  hba:\n    - {{type: host, database: appdb, user: app, address: samenet, method: scram-sha-256}}\n  backup:\n    repository: {{path: /srv/pgdba-shared/repo}}\n",
        name = t.name,
        list = list.join("\n"),
    );
    std::fs::write(&t.spec, text).unwrap();
}

/// `psql` on member `i`'s host as `postgres` over its socket.
fn psql_on(hosts: &TestHosts, t: &TestCluster, i: usize, sql: &str) -> String {
    let socket = format!("/var/lib/pgdba/{}/{}-{i}/run", t.name, t.name);
    hosts
        .ssh_ok(
            i,
            &format!(
                "setpriv --reuid=postgres --regid=postgres --init-groups -- /usr/lib/postgresql/15/bin/psql -h {socket} -p 5432 -XAtq -c \"{sql}\""
            ),
        )
        .trim()
        .to_owned()
}

fn patronictl_list(hosts: &TestHosts, t: &TestCluster, i: usize) -> Vec<Value> {
    let out = hosts.ssh_ok(
        i,
        &format!(
            "/opt/patroni/bin/patronictl -c /var/lib/pgdba/{n}/{n}-{i}/patroni.yml list -f json",
            n = t.name
        ),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("patronictl list: {e}: {out}"))
}

/// The lifecycle on three hosts: TOFU host keys shown in the plan and recorded by the
/// apply, `patronictl list` on a host, plan exits 0, a reload change, a rolling restart, a role
/// through PgBouncer, drift of a file changed by hand on a host, a stopped host named in plan
/// and drift, a replaced host key refused, destroy leaving the hosts as they were, and no
/// secret on any host's command lines or in pgdba's output and state.
#[test]
fn ssh_lifecycle_on_three_hosts() {
    let hosts = TestHosts::up(41, 3);
    // Its ports are the hosts' own (the spec's defaults): none on this machine's loopback.
    let t = TestCluster::new("sshlife", 0);
    t.envs
        .borrow_mut()
        .push(("SSH_APP_PASSWORD".to_owned(), APP_SECRET.to_owned()));
    write_spec(&t, &hosts, "work_mem: 4MB", None);
    let spec = t.spec.to_str().unwrap().to_owned();

    // The first plan shows each host's key, to be trusted on first use.
    let r = t.run(&["plan", "-f", &spec, "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let keys = r.json()["data"]["clusters"][0]["host_keys"].clone();
    let keys = keys.as_object().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(keys.len(), 3, "{keys:?}");
    let r = t.run(&["plan", "-f", &spec, "--format", "table"]);
    assert!(
        r.stdout.contains("host_key.10.231.41.10:22  SHA256:"),
        "{r:?}"
    );

    // A host that lacks a package, then one whose port is taken: the apply refuses before it
    // makes anything, naming the host and what is wrong.
    hosts.ssh_ok(0, "mv /usr/sbin/pgbouncer /usr/sbin/pgbouncer.off");
    let r = t.run(&["apply", "-f", &spec, "--auto-approve", "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "PREFLIGHT_FAILED", "{r:?}");
    assert!(
        r.stdout.contains("host 10.231.41.10:22 lacks PgBouncer"),
        "{r:?}"
    );
    hosts.ssh_ok(0, "mv /usr/sbin/pgbouncer.off /usr/sbin/pgbouncer");
    hosts.ssh_ok(
        1,
        "setsid /usr/bin/python3 -c 'import socket, time; s = socket.socket(); s.bind((\"0.0.0.0\", 8008)); s.listen(); time.sleep(600)' >/dev/null 2>&1 < /dev/null & sleep 1",
    );
    let r = t.run(&["apply", "-f", &spec, "--auto-approve", "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "PORT_IN_USE", "{r:?}");
    assert!(
        r.stdout
            .contains("host 10.231.41.11:22: port 8008 (Patroni REST API)"),
        "{r:?}"
    );
    hosts.ssh_ok(1, "pkill -f 'socket.*[8]008'; sleep 0.5");
    for i in 0..3 {
        assert_eq!(
            hosts.ssh_ok(
                i,
                &format!("ls -d /var/lib/pgdba/{} 2>/dev/null || true", t.name)
            ),
            "",
            "nothing made on host {i}"
        );
    }

    let r = t.run(&["apply", "-f", &spec, "--auto-approve", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let state: Value = serde_json::from_slice(
        &std::fs::read(t.state_dir.join(format!("{}.json", t.name))).unwrap(),
    )
    .unwrap();
    assert_eq!(state["provider"], "ssh");
    assert_eq!(state["host_keys"].as_object().unwrap().len(), 3, "{state}");
    for (endpoint, line) in state["host_keys"].as_object().unwrap() {
        let i = hosts
            .addresses
            .iter()
            .position(|a| endpoint.starts_with(&format!("{a}:")))
            .unwrap();
        let scanned = hosts.keyscan(i);
        assert!(
            scanned.contains(line.as_str().unwrap().split(' ').nth(1).unwrap()),
            "the recorded key of {endpoint} is the host's: {scanned}"
        );
    }

    // As a DBA sees it: one leader, two streaming replicas, on their hosts.
    let list = patronictl_list(&hosts, &t, 1);
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(
        list.iter().filter(|m| m["Role"] == "Leader").count(),
        1,
        "{list:?}"
    );
    for m in &list {
        let i: usize = m["Member"]
            .as_str()
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(m["Host"], hosts.addresses[i].as_str(), "{list:?}");
    }
    wait_for("two streaming replicas", Duration::from_secs(60), || {
        let l = patronictl_list(&hosts, &t, 0);
        (l.iter().filter(|m| m["State"] == "streaming").count() == 2).then_some(())
    });
    let r = t.run(&[
        "plan",
        "-f",
        &spec,
        "--detailed-exitcode",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "converged: {r:?}");
    let r = t.run(&["state", "show", &t.name, "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("10.231.41.12"),
        "state show gives each member's address: {r:?}"
    );

    // Backups: the stanza was made by the apply; a full backup into the repository every host
    // mounts at the same path, seen from another host.
    let r = t.run(&[
        "backup", "create", "--type", "full", "-f", &spec, "--format", "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let b = &r.json()["data"]["backup"];
    assert_eq!(b["verified"], true, "{b:#}");
    let id = b["id"].as_str().unwrap().to_owned();
    let r = t.run(&["backup", "list", "-f", &spec, "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&id), "{r:?}");
    hosts.ssh_ok(
        2,
        &format!("test -d /srv/pgdba-shared/repo/backup/{}/{id}", t.name),
    );

    // A reload change.
    write_spec(&t, &hosts, "work_mem: 8MB", None);
    let r = t.run(&["apply", "-f", &spec, "--auto-approve", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    for i in 0..3 {
        assert_eq!(psql_on(&hosts, &t, i, "SHOW work_mem"), "8MB");
    }

    // A restart change rolls: replicas first, a switchover, then the old primary.
    write_spec(&t, &hosts, "work_mem: 8MB, shared_buffers: 256MB", None);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan}");
    let kinds: Vec<String> = plan["data"]["clusters"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(kinds.iter().any(|k| k == "switchover"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "restart_member").count(),
        3,
        "{kinds:?}"
    );
    let r = t.run(&["apply", "-f", &spec, "--auto-approve", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    for i in 0..3 {
        assert_eq!(psql_on(&hosts, &t, i, "SHOW shared_buffers"), "256MB");
    }
    let r = t.run(&[
        "plan",
        "-f",
        &spec,
        "--detailed-exitcode",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");

    // The application's role through PgBouncer on the first host, from this machine.
    let out = Command::new("/usr/lib/postgresql/15/bin/psql")
        .args([
            "-h",
            &hosts.addresses[0],
            "-p",
            "6432",
            "-U",
            "app",
            "-d",
            "appdb",
            "-XAtq",
            "-c",
            "SELECT current_user || ' ' || pg_is_in_recovery()",
        ])
        .env("PGPASSWORD", APP_SECRET)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app false");

    // Chaos on the hosts: a replica's processes killed over SSH (apply starts it again), then a
    // partition drill that cuts the leader's host off with its firewall.
    let settled = || {
        wait_for(
            "a leader and two streaming replicas",
            Duration::from_secs(90),
            || {
                let l = patronictl_list(&hosts, &t, 0);
                let leader = l.iter().find(|m| m["Role"] == "Leader")?;
                let replicas: Vec<String> = l
                    .iter()
                    .filter(|m| m["State"] == "streaming")
                    .map(|m| m["Member"].as_str().unwrap().to_owned())
                    .collect();
                (replicas.len() == 2)
                    .then(|| (leader["Member"].as_str().unwrap().to_owned(), replicas))
            },
        )
    };
    let (leader, replicas) = settled();
    let r = t.run(&[
        "chaos",
        "kill-node",
        "--member",
        &replicas[0],
        "-f",
        &spec,
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = t.run(&["apply", "-f", &spec, "--auto-approve", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    settled();
    let r = t.run(&[
        "chaos",
        "drill",
        "partition",
        "-f",
        &spec,
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let d = r.json()["data"].clone();
    assert_eq!(d["old_leader"], leader.as_str(), "{d:#}");
    assert_ne!(d["new_leader"], leader.as_str(), "{d:#}");
    assert_eq!(d["rpo_transactions"], 0, "{d:#}");
    assert_eq!(d["isolated"]["two_writable_leaders"], false, "{d:#}");
    assert!(d["rto_ms"].as_u64().unwrap() > 0, "{d:#}");
    settled();
    let r = t.run(&[
        "plan",
        "-f",
        &spec,
        "--detailed-exitcode",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");

    // A file changed by hand on a host is drift, and the next apply puts it back.
    hosts.ssh_ok(
        2,
        &format!(
            "sed -i 's/nofailover: false/nofailover: true/' /var/lib/pgdba/{n}/{n}-2/patroni.yml",
            n = t.name
        ),
    );
    let r = t.run(&["drift", "-f", &spec, "--format", "json"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(&format!("member.{}-2", t.name)), "{r:?}");
    let r = t.run(&["apply", "-f", &spec, "--auto-approve", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = t.run(&["drift", "-f", &spec, "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");

    // A replica's host stopped: the plan notes it (what runs there is as Patroni's keys in
    // etcd say, which the other two etcd nodes answer), and drift names it as dangerous. (A
    // stopped leader's host is another matter: nothing is known of its PostgreSQL, and with
    // spec.backup of its stanza either, so nothing is concluded: UNREACHABLE.)
    let (_, replicas) = settled();
    let down: usize = replicas[0].rsplit('-').next().unwrap().parse().unwrap();
    let endpoint = format!("host {}:22 is unreachable", hosts.addresses[down]);
    hosts.control("stop", down);
    let r = t.run(&["plan", "-f", &spec, "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let notes = r.json()["data"]["clusters"][0]["notes"].to_string();
    assert!(
        notes.contains(&format!("member.{} (SSH): {endpoint}", replicas[0])),
        "{r:?}"
    );
    let r = t.run(&["drift", "-f", &spec, "--format", "json"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&endpoint), "{r:?}");
    hosts.control("start", down);
    wait_for("the host back", Duration::from_secs(60), || {
        let r = t.run(&[
            "plan",
            "-f",
            &spec,
            "--detailed-exitcode",
            "--format",
            "json",
        ]);
        (r.code == 0).then_some(())
    });

    // A replaced host key refuses every command, with both fingerprints.
    let old = hosts.keyscan(2);
    hosts.control("rekey", 2);
    let new = hosts.keyscan(2);
    assert_ne!(old, new);
    for args in [
        vec!["plan", "-f", &spec, "--format", "json"],
        vec!["cluster", "status", "-f", &spec, "--format", "json"],
        vec!["drift", "-f", &spec, "--format", "json"],
        vec!["destroy", "-f", &spec, "--confirm", "--format", "json"],
    ] {
        let r = t.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        // drift checks a fleet: its error is per cluster, under `errors`.
        let code = if args[0] == "drift" {
            r.json()["data"]["errors"][0]["code"].clone()
        } else {
            r.json()["error"]["code"].clone()
        };
        assert_eq!(code, "HOST_KEY_CHANGED", "{args:?}: {r:?}");
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(message.matches("SHA256:").count(), 2, "{r:?}");
    }
    // The DBA checks the new key and lists it in a known_hosts file the spec names.
    let known = t.dir.path().join("known_hosts");
    std::fs::write(&known, &new).unwrap();
    write_spec(
        &t,
        &hosts,
        "work_mem: 8MB, shared_buffers: 256MB",
        Some(&known),
    );
    let r = t.run(&["apply", "-f", &spec, "--auto-approve", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");

    // No secret on any host's command lines or environment, in pgdba's output or its state.
    let generated: Vec<String> = [
        "superuser_password",
        "replication_password",
        "rewind_password",
        "restapi_password",
        "etcd_password",
        "pooler_password",
    ]
    .iter()
    .filter_map(|f| t.secret(f))
    .collect();
    assert_eq!(generated.len(), 6);
    let mut texts = vec![("pgdba's output".to_owned(), t.transcript.borrow().clone())];
    for f in all_files(&t.state_dir) {
        if f.display().to_string().ends_with(".secrets.json") {
            continue;
        }
        texts.push((
            f.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned(),
        ));
    }
    // `[s]shlife`: the pattern does not match the shell that runs pgrep.
    let pattern = format!("/var/lib/pgdba/[{}]{}", &t.name[..1], &t.name[1..]);
    for i in 0..3 {
        texts.push((
            format!("command lines on host {i}"),
            hosts.ssh_ok(
                i,
                &format!(
                    "for p in $(pgrep -f {pattern}); do tr '\\0' ' ' < /proc/$p/cmdline; echo; tr '\\0' '\\n' < /proc/$p/environ; done 2>/dev/null"
                ),
            ),
        ));
    }
    for (what, text) in &texts {
        assert!(
            !text.contains(APP_SECRET),
            "the role's secret appears in {what}"
        );
        for p in &generated {
            assert!(
                !text.contains(p.as_str()),
                "a generated password appears in {what}"
            );
        }
    }

    // Destroy leaves the hosts as they were: no directory, no process of the cluster.
    let r = t.run(&["destroy", "-f", &spec, "--confirm", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    for i in 0..3 {
        let left = hosts.ssh_ok(
            i,
            &format!("ls -d {pattern} 2>/dev/null; pgrep -af {pattern} || true"),
        );
        assert_eq!(left.trim(), "", "host {i}: {left}");
    }
}
