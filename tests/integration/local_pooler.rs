//! PgBouncer on the local provider (issue 9, item 10): the spec's roles log in through it with
//! their own passwords, superusers cannot, it follows a switchover, a pooler that died is
//! drift and comes back with apply, and one the spec no longer asks for is removed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{TestCluster, wait_for};

const PARAMS: &[(&str, &str)] = &[("max_connections", "100")];
const APP_SECRET: &str = "pooler-app-secret-0d1f";
const POOLER_PORT: u16 = 32430;

fn extra(pooler: bool) -> String {
    let mut s = "  roles:\n    - name: app\n      login: true\n      password: {env: PGDBA_TEST_POOLER_PW}\n  databases:\n    - name: appdb\n      owner: app\n".to_owned();
    if pooler {
        s.push_str(&format!(
            "  pooler:\n    pgbouncer:\n      port: {POOLER_PORT}\n      pool_mode: transaction\n"
        ));
    }
    s
}

/// `psql` through the pooler as `user`: its output, or its error.
fn through_pooler(user: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(POOLER_PORT.to_string())
        .args(["-U", user, "-d", "appdb", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn leader_port(t: &TestCluster) -> (String, u16) {
    let list = t.patronictl_list();
    let leader = list
        .iter()
        .find(|m| m["Role"] == "Leader")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .expect("a leader");
    let port = t
        .members()
        .into_iter()
        .find(|(n, _)| *n == leader)
        .unwrap()
        .1;
    (leader, port)
}

fn drift(t: &TestCluster) -> (i32, Value) {
    let r = t.run(&["drift", "-f", t.spec_str(), "--format", "json"]);
    assert!(matches!(r.code, 0 | 2), "{r:?}");
    (r.code, r.json())
}

#[test]
fn local_pooler_routes_roles_to_the_leader() {
    let t = TestCluster::new("pool", 32400);
    t.envs
        .borrow_mut()
        .push(("PGDBA_TEST_POOLER_PW".to_owned(), APP_SECRET.to_owned()));
    t.write_spec_with(1, PARAMS, &extra(true));
    let r = t.apply();
    assert_eq!(r.json()["success"], true, "{r:?}");
    let r = t.run(&["state", "show", "pool", "--format", "json"]);
    assert_eq!(
        r.json()["data"]["pooler"],
        serde_json::json!({ "host": "127.0.0.1", "port": POOLER_PORT })
    );

    // The spec's role, with its own password, lands on the leader.
    let (leader, port) = leader_port(&t);
    let got = through_pooler(
        "app",
        APP_SECRET,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1); SELECT inet_server_port() || ',' || count(*) FROM t",
    )
    .unwrap();
    assert_eq!(got, format!("{port},1"));
    let err = through_pooler("app", "wrong", "SELECT 1").unwrap_err();
    assert!(err.contains("authentication failed"), "{err}");
    // A superuser cannot log in through it, even with the right password.
    let su = t.secret("superuser_password").unwrap();
    assert!(through_pooler("postgres", &su, "SELECT 1").is_err());
    assert_eq!(t.plan_json().0, 0);

    // A switchover: the pooler follows without being told.
    let other = t
        .members()
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| *n != leader)
        .unwrap();
    t.patronictl(&[
        "switchover",
        "pool",
        "--leader",
        &leader,
        "--candidate",
        &other,
        "--force",
    ]);
    let (_, new_port) = wait_for("the new leader", Duration::from_secs(60), || {
        let (l, p) = leader_port(&t);
        (l == other).then_some((l, p))
    });
    let got = wait_for(
        "the pooler on the new leader",
        Duration::from_secs(30),
        || {
            through_pooler(
                "app",
                APP_SECRET,
                "INSERT INTO t VALUES (2); SELECT inet_server_port() || ',' || count(*) FROM t",
            )
            .ok()
            .filter(|g| g.starts_with(&format!("{new_port},")))
        },
    );
    assert_eq!(got, format!("{new_port},2"));
    // The old leader rejoins as a replica (a restart): until it streams, a plan refuses, rightly,
    // to trust an observation it did not answer.
    wait_for("the old leader to stream", Duration::from_secs(90), || {
        t.patronictl_list()
            .iter()
            .any(|m| m["Member"] == leader.as_str() && m["State"] == "streaming")
            .then_some(())
    });

    // The pooler dies: dangerous drift, and apply starts it again.
    let pid: Value = serde_json::from_slice(
        &std::fs::read(t.data_dir().join("pgbouncer/pgbouncer.pid")).unwrap(),
    )
    .unwrap();
    let pid = pid["pid"].as_u64().unwrap().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("pgbouncer {}", t.data_dir().display()),
        ])
        .status()
        .unwrap();
    let (code, v) = wait_for("drift of the dead pooler", Duration::from_secs(30), || {
        let (code, v) = drift(&t);
        (code == 2).then_some((code, v))
    });
    assert_eq!(code, 2);
    let items = v["data"]["clusters"][0]["drift"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["address"] == "pooler.pgbouncer" && i["class"] == "dangerous"),
        "{v:#}"
    );
    let r = t.apply();
    assert_eq!(r.json()["success"], true, "{r:?}");
    assert!(through_pooler("app", APP_SECRET, "SELECT 1").is_ok());
    assert_eq!(t.plan_json().0, 0);

    // No pooler in the spec: removed, its port free again.
    t.write_spec_with(1, PARAMS, &extra(false));
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    let changes = plan["data"]["clusters"][0]["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["address"] == "pooler.pgbouncer" && c["action"] == "delete"),
        "{plan:#}"
    );
    let r = t.apply();
    assert_eq!(r.json()["success"], true, "{r:?}");
    assert!(!t.data_dir().join("pgbouncer").exists());
    assert!(std::net::TcpListener::bind(("127.0.0.1", POOLER_PORT)).is_ok());
    assert_eq!(t.plan_json().0, 0);
}
