//! Synchronous replication on a real local cluster (issue 9, item 9): with
//! `spec.patroni.synchronous_mode: true` Patroni keeps one replica a `Sync Standby`, the primary
//! names it in `synchronous_standby_names`, and a commit is on it when the client hears of it;
//! turning it off is a DCS change, without a restart, after which no member is synchronous.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::Value;

use crate::support::{TestCluster, wait_for};

const PARAMS: &[(&str, &str)] = &[("max_connections", "100"), ("work_mem", "4MB")];

/// The spec with two replicas, synchronous mode on or off.
fn write(t: &TestCluster, synchronous: bool) {
    t.write_spec(2, PARAMS);
    let timing = "patroni: {ttl: 30, loop_wait: 10, retry_timeout: 10}";
    let text = std::fs::read_to_string(&t.spec).unwrap();
    assert!(text.contains(timing), "{text}");
    let patroni = format!(
        "patroni: {{ttl: 30, loop_wait: 10, retry_timeout: 10, synchronous_mode: {synchronous}}}"
    );
    std::fs::write(&t.spec, text.replace(timing, &patroni)).unwrap();
}

fn cluster(plan: &Value) -> &Value {
    &plan["data"]["clusters"][0]
}

/// Members `patronictl list` shows as `Sync Standby`, and the leader.
fn roles(t: &TestCluster) -> (Option<String>, Vec<String>) {
    let list = t.patronictl_list();
    let named = |role: &str| -> Vec<String> {
        list.iter()
            .filter(|m| m["Role"] == role)
            .map(|m| m["Member"].as_str().unwrap().to_owned())
            .collect()
    };
    (named("Leader").into_iter().next(), named("Sync Standby"))
}

fn port_of(t: &TestCluster, member: &str) -> u16 {
    t.members()
        .into_iter()
        .find(|(n, _)| n == member)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no member {member} in the state"))
}

#[test]
fn local_sync_standby_holds_every_commit() {
    let t = TestCluster::new("sync", 32300);
    write(&t, true);
    t.apply();

    // Patroni picks one streaming replica as the synchronous standby; its next HA loop may
    // come a few seconds after apply returned.
    let (leader, sync) = wait_for(
        "patronictl list to show one Sync Standby",
        Duration::from_secs(90),
        || {
            let (leader, sync) = roles(&t);
            (leader.is_some() && sync.len() == 1).then(|| (leader.unwrap(), sync[0].clone()))
        },
    );
    assert_ne!(leader, sync);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "the new cluster matches its spec: {plan:#}");

    // The primary waits for it by name.
    let leader_port = port_of(&t, &leader);
    let names = t.psql(&leader, leader_port, "SHOW synchronous_standby_names");
    assert!(names.contains(&sync), "{names:?} does not name {sync}");

    // A commit acknowledged to the client is on the standby's disk: read its receive position
    // at once, no sleep. `RETURNING` takes the WAL position before the commit record, so the
    // standby has flushed past it when the commit returns.
    let sync_port = port_of(&t, &sync);
    t.psql(&leader, leader_port, "CREATE TABLE orders (id int)");
    let before_commit = t.psql(
        &leader,
        leader_port,
        "INSERT INTO orders VALUES (1) RETURNING pg_current_wal_insert_lsn()",
    );
    let before_commit = before_commit.lines().next().unwrap().to_owned();
    let flushed = t.psql(
        &sync,
        sync_port,
        &format!("SELECT pg_last_wal_receive_lsn() >= '{before_commit}'::pg_lsn"),
    );
    assert_eq!(flushed, "t", "{sync} had not received {before_commit}");
    // With `remote_apply` the same commit also waits for the standby to replay it, so a read
    // there right after sees the row.
    t.psql(
        &leader,
        leader_port,
        "SET synchronous_commit = remote_apply; INSERT INTO orders VALUES (2)",
    );
    let rows = t.psql(&sync, sync_port, "SELECT count(*) FROM orders WHERE id = 2");
    assert_eq!(rows, "1", "the row is not on {sync} right after its commit");

    // Off again: one change in the DCS, applied by Patroni without a restart.
    write(&t, false);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan:#}");
    let changes = cluster(&plan)["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["address"], "patroni.synchronous_mode");
    assert_eq!(changes[0]["before"], true);
    assert_eq!(changes[0]["after"], false);
    assert_eq!(changes[0]["apply_via"], "reload");
    assert_eq!(cluster(&plan)["summary"]["restarts"], 0, "{plan:#}");
    let actions: Vec<(&str, &str)> = cluster(&plan)["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["target"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, vec![("patch_config", "dcs.config")], "{plan:#}");
    let table = t.run(&["plan", "-f", t.spec_str(), "--format", "table"]);
    assert!(
        table.stdout.contains("patroni.synchronous_mode")
            && table.stdout.contains("(via reload)")
            && table.stdout.contains("0 restarts"),
        "{table:?}"
    );
    t.apply();
    wait_for(
        "patronictl list to show no Sync Standby",
        Duration::from_secs(90),
        || roles(&t).1.is_empty().then_some(()),
    );
    wait_for(
        "the primary to stop naming a synchronous standby",
        Duration::from_secs(60),
        || {
            let names = t.psql(&leader, leader_port, "SHOW synchronous_standby_names");
            names.is_empty().then_some(())
        },
    );
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(
        roles(&t).0.as_deref(),
        Some(leader.as_str()),
        "no switchover"
    );

    let r = t.run(&[
        "destroy",
        "-f",
        t.spec_str(),
        "--confirm",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!t.data_dir().exists());
}
