//! `pgdba drift` against a real cluster: read-only (the state files stay byte-identical, no lock
//! is taken, the DCS configuration is not rewritten and PostgreSQL logs no write), what it
//! reports for changes made outside pgdba and how it classifies them, and fleets with an
//! unreachable cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::support::{TestCluster, all_files, wait_for};

/// `log_statement: mod` makes PostgreSQL log every statement that writes: the proof that drift
/// sends none.
const PARAMS: &[(&str, &str)] = &[
    ("max_connections", "100"),
    ("work_mem", "4MB"),
    ("log_statement", "mod"),
];

fn drift(t: &TestCluster, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["drift", "-f", t.spec_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let r = t.run(&args);
    assert!(matches!(r.code, 0 | 2), "{r:?}");
    (r.code, r.json())
}

fn items(v: &Value) -> Vec<Value> {
    v["data"]["clusters"][0]["drift"]
        .as_array()
        .unwrap()
        .clone()
}

fn snapshot(dir: &std::path::Path) -> BTreeMap<PathBuf, Vec<u8>> {
    all_files(dir)
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect()
}

/// mod_revision of the cluster's DCS config key in etcd: changes on any write to it.
fn config_revision(t: &TestCluster) -> i64 {
    crate::support::dcs_config(t).1
}

/// Lines PostgreSQL logged for writing statements, across members.
fn logged_writes(t: &TestCluster) -> usize {
    all_files(&t.data_dir())
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "patroni.log"))
        .map(|f| {
            String::from_utf8_lossy(&std::fs::read(f).unwrap())
                .matches("statement: ")
                .count()
        })
        .sum()
}

#[test]
fn drift_is_read_only_and_classifies_out_of_band_changes() {
    let t = TestCluster::new("drift", 31600);
    t.write_spec(1, PARAMS);
    t.apply();
    let (code, v) = drift(&t, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert!(items(&v).is_empty());

    // Read-only: the state is byte-identical, no lock appears, the DCS config is not
    // rewritten, PostgreSQL logs no write. First show the last check can see a write at all.
    let (leader, leader_port) = t.members()[0].clone();
    let writes = logged_writes(&t);
    t.psql(&leader, leader_port, "CREATE TABLE drift_probe (id int)");
    wait_for(
        "the probe write in the log",
        std::time::Duration::from_secs(10),
        || (logged_writes(&t) > writes).then_some(()),
    );
    let state = snapshot(&t.state_dir);
    let revision = config_revision(&t);
    let writes = logged_writes(&t);
    for extra in [&[][..], &["-vv"][..], &["--fail-on", "dangerous"][..]] {
        drift(&t, extra);
    }
    t.run(&["drift", "-f", t.spec_str(), "--format", "table"]);
    assert_eq!(
        snapshot(&t.state_dir),
        state,
        "drift changed a file under the state dir"
    );
    assert_eq!(
        config_revision(&t),
        revision,
        "drift wrote the DCS configuration"
    );
    assert_eq!(
        logged_writes(&t),
        writes,
        "drift sent a writing statement to PostgreSQL"
    );

    // The DCS changed with patronictl edit-config: dangerous, source "Patroni DCS".
    t.patronictl(&[
        "edit-config",
        "--force",
        "-s",
        "postgresql.parameters.work_mem=32MB",
    ]);
    let (code, v) = drift(&t, &[]);
    assert_eq!(code, 2, "{v:#}");
    let i = &items(&v)[0];
    assert_eq!(i["address"], "pg_parameter.work_mem");
    assert_eq!(i["source"], "Patroni DCS");
    assert_eq!(i["class"], "dangerous");
    assert_eq!(
        (i["before"].as_str(), i["after"].as_str()),
        (Some("4MB"), Some("32MB"))
    );
    t.apply();
    assert_eq!(drift(&t, &[]).0, 0);

    // ALTER SYSTEM on the replica: named with its member and postgresql.auto.conf; plan restores it.
    let (replica, replica_port) = t.members()[1].clone();
    t.psql(&replica, replica_port, "ALTER SYSTEM SET work_mem = '64MB'");
    t.psql(&replica, replica_port, "SELECT pg_reload_conf()");
    let (code, v) = drift(&t, &[]);
    assert_eq!(code, 2, "{v:#}");
    let i = &items(&v)[0];
    assert_eq!(i["source"], "postgresql.auto.conf");
    assert_eq!(i["member"], replica.as_str());
    assert_eq!(i["address"], format!("override.{replica}.work_mem"));
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(
        plan["data"]["clusters"][0]["changes"][0]["address"],
        format!("override.{replica}.work_mem")
    );
    t.apply();
    assert_eq!(t.psql(&replica, replica_port, "SHOW work_mem"), "4MB");
    assert_eq!(drift(&t, &[]).0, 0);

    // A benign change counts for --fail-on any, not for --fail-on dangerous.
    t.patronictl(&["edit-config", "--force", "-s", "ttl=40"]);
    let (code, v) = drift(&t, &[]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(items(&v)[0]["class"], "benign");
    assert_eq!(drift(&t, &["--fail-on", "dangerous"]).0, 0);
    t.apply();

    // A switchover by hand: expected drift, exit 0; pgdba does not switch back.
    t.patronictl(&[
        "switchover",
        "--leader",
        &leader,
        "--candidate",
        &replica,
        "--force",
    ]);
    wait_for("the new leader", std::time::Duration::from_secs(60), || {
        let list = t.patronictl_list();
        let ok = list
            .iter()
            .any(|m| m["Member"] == replica.as_str() && m["Role"] == "Leader")
            && list
                .iter()
                .any(|m| m["Member"] == leader.as_str() && m["State"] == "streaming");
        ok.then_some(())
    });
    let (code, v) = drift(&t, &[]);
    assert_eq!(code, 0, "{v:#}");
    let i = &items(&v)[0];
    assert_eq!(i["class"], "expected");
    assert_eq!(
        (i["before"].as_str(), i["after"].as_str()),
        (Some(leader.as_str()), Some(replica.as_str()))
    );
    assert_eq!(t.plan_json().0, 0, "plan does not switch back either");

    // A fleet: a second cluster that nothing answers for is reported; this one is still checked.
    let fleet = t.dir.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::copy(&t.spec, fleet.join("drift.yaml")).unwrap();
    let ghost_spec = std::fs::read_to_string(&t.spec)
        .unwrap()
        .replace("name: drift", "name: ghost")
        .replace(
            &t.data_dir().display().to_string(),
            &t.dir.path().join("ghost").display().to_string(),
        )
        .replace(&format!("pg_port: {}", t.pg_port), "pg_port: 31700")
        .replace(&format!("api_port: {}", t.api_port), "api_port: 31710")
        .replace(&format!("etcd_port: {}", t.etcd_port), "etcd_port: 31720");
    std::fs::write(fleet.join("ghost.yaml"), &ghost_spec).unwrap();
    let mut ghost: Value =
        serde_json::from_slice(&std::fs::read(t.state_dir.join("drift.json")).unwrap()).unwrap();
    ghost["cluster"] = "ghost".into();
    ghost["applied_spec"]["metadata"]["name"] = "ghost".into();
    ghost["applied_spec"]["spec"]["provider"]["local"]["data_dir"] =
        t.dir.path().join("ghost").display().to_string().into();
    std::fs::write(
        t.state_dir.join("ghost.json"),
        serde_json::to_vec_pretty(&ghost).unwrap(),
    )
    .unwrap();
    let r = t.run(&["drift", "-f", fleet.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["code"], "UNREACHABLE");
    assert_eq!(v["data"]["errors"][0]["cluster"], "ghost");
    assert_eq!(v["data"]["clusters"][0]["name"], "drift");
    std::fs::remove_file(t.state_dir.join("ghost.json")).unwrap();
}
