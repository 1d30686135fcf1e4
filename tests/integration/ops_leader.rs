//! Leader changes on a real local cluster (issue 10, items 2, 3 and 8): `cluster status`,
//! `switchover --to`, `replica promote`, `failover trigger` and `failover status`, each
//! checked against `patronictl list`, the pre-checks that refuse, the history in `state show`,
//! and a plain PostgreSQL server that has no Patroni.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::Value;

use crate::support::{PlainPg, TestCluster, pid_file, pid_file_json, wait_for};

/// The leader and the streaming replicas as `patronictl list` shows them.
fn patroni_roles(t: &TestCluster) -> (Option<String>, Vec<String>) {
    let list = t.patronictl_list();
    let leader = list
        .iter()
        .find(|m| m["Role"] == "Leader" && m["State"] == "running")
        .map(|m| m["Member"].as_str().unwrap().to_owned());
    let streaming = list
        .iter()
        .filter(|m| m["Role"] != "Leader" && m["State"] == "streaming")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .collect();
    (leader, streaming)
}

/// Wait until one member leads and the two others stream from it.
fn settled(t: &TestCluster) -> (String, Vec<String>) {
    wait_for(
        "a leader and two streaming replicas",
        Duration::from_secs(120),
        || {
            let (l, s) = patroni_roles(t);
            (l.is_some() && s.len() == 2).then(|| (l.unwrap(), s))
        },
    )
}

fn json_of(t: &TestCluster, args: &[&str]) -> (i32, Value) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--format", "json"]);
    let r = t.run(&all);
    (r.code, r.json())
}

fn check_change(v: &Value, from: &str, to: &str, timeline_before: u64) -> u64 {
    let d = &v["data"];
    assert_eq!(d["from"], from, "{v:#}");
    assert_eq!(d["to"], to, "{v:#}");
    let tl = d["timeline"]
        .as_u64()
        .unwrap_or_else(|| panic!("no timeline: {v:#}"));
    assert!(
        tl > timeline_before,
        "timeline {tl} after {timeline_before}: {v:#}"
    );
    assert!(
        d["write_unavailable_ms"].as_u64().is_some(),
        "the outage is measured: {v:#}"
    );
    assert!(d["probe_commits"].as_u64().unwrap() > 1, "{v:#}");
    tl
}

#[test]
fn leader_changes_are_prechecked_measured_and_recorded() {
    let t = TestCluster::new("lead", 32500);
    t.write_spec(2, &[("max_connections", "100")]);
    t.apply();
    let (leader, replicas) = settled(&t);

    // cluster status: the contract's fields, and what patronictl says.
    let (code, st) = json_of(&t, &["cluster", "status", "-f", t.spec_str()]);
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(st["data"]["leader"], leader.as_str(), "{st:#}");
    let members = st["data"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{st:#}");
    for m in members {
        for f in [
            "name",
            "host",
            "port",
            "role",
            "state",
            "timeline",
            "lag_bytes",
            "pending_restart",
        ] {
            assert!(m.get(f).is_some(), "member without {f}: {m:#}");
        }
        let role = m["role"].as_str().unwrap();
        if m["name"] == leader.as_str() {
            assert_eq!(role, "leader");
        } else {
            assert!(role == "replica" || role == "sync_standby", "{m:#}");
            assert_eq!(m["state"], "streaming", "{m:#}");
            assert!(m["lag_seconds"].as_f64().is_some(), "{m:#}");
        }
    }
    assert_eq!(st["data"]["dcs_healthy"], true, "{st:#}");
    let tl0 = members
        .iter()
        .find(|m| m["name"] == leader.as_str())
        .unwrap()["timeline"]
        .as_u64()
        .unwrap();

    // Pre-checks refuse with a sentence naming what failed.
    let (code, v) = json_of(&t, &["switchover", "-f", t.spec_str(), "--to", &leader]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "PRECHECK_FAILED", "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already leads"),
        "{v:#}"
    );
    let (code, v) = json_of(&t, &["switchover", "--name", "lead", "--to", "lead-9"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "PRECHECK_FAILED", "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a member"),
        "{v:#}"
    );

    // switchover --to: the leader moves, patronictl agrees, the outage is measured.
    let to = replicas[0].clone();
    let (code, v) = json_of(&t, &["switchover", "-f", t.spec_str(), "--to", &to]);
    assert_eq!(code, 0, "{v:#}");
    let tl1 = check_change(&v, &leader, &to, tl0);
    let (now, _) = settled(&t);
    assert_eq!(now, to, "patronictl list agrees");

    // replica promote --member: a switchover to it.
    let next = replicas[1].clone();
    let (code, v) = json_of(
        &t,
        &["replica", "promote", "--name", "lead", "--member", &next],
    );
    assert_eq!(code, 0, "{v:#}");
    let tl2 = check_change(&v, &to, &next, tl1);
    let (now, _) = settled(&t);
    assert_eq!(now, next);

    // failover trigger --target: forced, to the first leader again.
    let (code, v) = json_of(
        &t,
        &["failover", "trigger", "--name", "lead", "--target", &leader],
    );
    assert_eq!(code, 0, "{v:#}");
    check_change(&v, &next, &leader, tl2);
    let (now, _) = settled(&t);
    assert_eq!(now, leader);

    // switchover --at: scheduled, shown by failover status, and it blocks another until it is
    // cancelled (Patroni's `flush`).
    let at = (chrono_now() + 3600).to_string();
    let at = rfc3339(&at);
    let (code, v) = json_of(
        &t,
        &["switchover", "--name", "lead", "--to", &next, "--at", &at],
    );
    assert_eq!(code, 0, "{v:#}");
    assert!(v["data"]["scheduled_at"].as_str().is_some(), "{v:#}");
    let (_, v) = json_of(&t, &["failover", "status", "--name", "lead"]);
    assert!(!v["data"]["scheduled_switchover"].is_null(), "{v:#}");
    let (code, v) = json_of(&t, &["switchover", "--name", "lead", "--to", &next]);
    assert_eq!(code, 1, "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already scheduled"),
        "{v:#}"
    );
    let out = t.patronictl(&["flush", "lead", "switchover", "--force"]);
    assert!(out.status.success(), "{out:?}");
    let (code, v) = json_of(
        &t,
        &[
            "switchover",
            "--name",
            "lead",
            "--to",
            &leader,
            "--at",
            "2001-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "USAGE", "a time that has passed: {v:#}");

    // failover status: who leads, who could take over, the last operation.
    let (code, v) = json_of(&t, &["failover", "status", "--name", "lead"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["data"]["leader"], leader.as_str(), "{v:#}");
    assert_eq!(
        v["data"]["candidates"].as_array().unwrap().len(),
        2,
        "{v:#}"
    );
    assert_eq!(
        v["data"]["last_operation"]["command"], "switchover",
        "{v:#}"
    );

    // The history lists every operation, refusals too; recording them did not change the
    // state's serial.
    let (code, v) = json_of(&t, &["state", "show", "lead"]);
    assert_eq!(code, 0, "{v:#}");
    let commands: Vec<&str> = v["data"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "switchover",
            "switchover",
            "switchover",
            "replica promote",
            "failover trigger",
            "switchover",
            "switchover"
        ],
        "{v:#}"
    );
    assert_eq!(
        v["data"]["serial"].as_u64(),
        Some(serial_after_apply(&t)),
        "{v:#}"
    );

    // A leader elsewhere is expected: the spec still plans clean.
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");

    // cluster list knows it.
    let (code, v) = json_of(&t, &["cluster", "list"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["data"]["clusters"][0]["name"], "lead", "{v:#}");
    assert_eq!(
        v["data"]["clusters"][0]["members"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // health check: ok (or warn) on the healthy cluster; health serve answers for it.
    let (code, v) = json_of(&t, &["health", "check", "--name", "lead"]);
    assert_eq!(code, 0, "{v:#}");
    assert_ne!(v["data"]["status"], "crit", "{v:#}");
    let serve_args = [
        "health",
        "serve",
        "--name",
        "lead",
        "--listen",
        "127.0.0.1:32590",
        "--interval",
        "1",
        "--format",
        "json",
    ];
    let mut serve = Stray(Some(t.spawn(&serve_args)));
    wait_for(
        "health serve to answer 200",
        Duration::from_secs(30),
        || (http_status("/health") == Some(200)).then_some(()),
    );
    let replica = replicas[0].clone();
    assert_eq!(http_status(&format!("/primary/{leader}")), Some(200));
    assert_eq!(http_status(&format!("/replica/{leader}")), Some(503));
    assert_eq!(http_status(&format!("/replica/{replica}")), Some(200));
    assert_eq!(http_status("/primary"), Some(200));

    // A replica stopped (its Patroni and PostgreSQL killed): crit, naming it; 503.
    let member_dir = t.data_dir().join(&replica);
    for pid in [
        pid_file_json(&member_dir.join("patroni.pid")),
        pid_file(&member_dir.join("data").join("postmaster.pid")),
    ] {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let (code, v) = wait_for("health check to say crit", Duration::from_secs(60), || {
        let (code, v) = json_of(&t, &["health", "check", "--name", "lead"]);
        (code == 2).then_some((code, v))
    });
    assert_eq!(v["data"]["status"], "crit", "{code} {v:#}");
    assert!(
        v["data"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "crit" && c["member"] == replica.as_str()),
        "a crit check names {replica}: {v:#}"
    );
    wait_for(
        "health serve to answer 503",
        Duration::from_secs(30),
        || (http_status("/health") == Some(503)).then_some(()),
    );
    assert_eq!(http_status(&format!("/replica/{replica}")), Some(503));
    let child = serve.0.take().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let r = t.finish(&serve_args, child);
    assert_eq!(r.code, 0, "health serve stops cleanly on SIGTERM: {r:?}");

    // No secret in anything pgdba printed.
    let transcript = t.transcript.borrow().clone();
    for field in [
        "superuser_password",
        "replication_password",
        "restapi_password",
    ] {
        if let Some(secret) = t.secret(field) {
            assert!(!transcript.contains(&secret), "{field} printed");
        }
    }
}

/// The serial the state has had since the apply (leader changes do not bump it).
fn serial_after_apply(t: &TestCluster) -> u64 {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(t.state_dir.join("lead.json")).unwrap())
            .unwrap();
    state["serial"].as_u64().unwrap()
}

#[test]
fn plain_postgres_has_no_patroni_to_switch_over() {
    let pg = PlainPg::start(32545, &[]);
    for args in [
        vec!["switchover", "--to", "x", "--format", "json"],
        vec!["failover", "trigger", "--target", "x", "--format", "json"],
        vec!["cluster", "status", "--format", "json"],
    ] {
        let r = pg.pgdba(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        let v = r.json();
        assert_eq!(v["error"]["code"], "NO_PATRONI", "{args:?}: {v:#}");
        assert!(
            !r.stdout.contains(&pg.password),
            "the password is not printed"
        );
    }
}

/// The status code of `GET path` on the health server.
fn http_status(path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect("127.0.0.1:32590").ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// A child that must not outlive a failed test (it would hold its port for the next run).
struct Stray(Option<std::process::Child>);

impl Drop for Stray {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn chrono_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Seconds since the epoch as RFC3339 UTC.
fn rfc3339(epoch: &str) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
