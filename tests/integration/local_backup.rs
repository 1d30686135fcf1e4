//! `spec.backup` on a real local cluster (issue 11, item 1): pgBackRest configured on every
//! member, WAL archived through it (`archive_mode`, `archive_command` owned by pgdba), the
//! stanza created and checked as a planned action; a stanza that goes missing is drift and is
//! planned again, and the archiver failing then is drift too; removing `spec.backup` turns
//! archiving off and leaves the repository.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{TestCluster, wait_for};

fn backup_section(t: &TestCluster) -> String {
    format!(
        "  backup:\n    repository: {{path: {}}}\n    retention: {{full: 2}}\n",
        t.data_dir().join("repo").display()
    )
}

/// `pgbackrest info` of the cluster's stanza, run as a DBA would on member `member`.
fn info(t: &TestCluster, member: &str) -> Value {
    let conf = t.data_dir().join(member).join("pgbackrest.conf");
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", "env"])
        .arg(format!("PGBACKREST_CONFIG={}", conf.display()))
        .args(["pgbackrest", "--stanza=bkup", "--output=json", "info"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn leader(t: &TestCluster) -> String {
    t.patronictl_list()
        .iter()
        .find(|m| m["Role"] == "Leader")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .unwrap()
}

#[test]
fn spec_backup_configures_pgbackrest_archiving_and_the_stanza() {
    let t = TestCluster::new("bkup", 30800);
    t.write_spec_with(1, &[("max_connections", "100")], &backup_section(&t));
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    let changes = plan["data"]["clusters"][0]["changes"].as_array().unwrap();
    let stanza = changes
        .iter()
        .find(|c| c["address"] == "backup.stanza")
        .unwrap_or_else(|| panic!("no stanza in the plan: {plan:#}"));
    assert_eq!(stanza["apply_via"], "provider");
    assert!(
        changes
            .iter()
            .any(|c| c["address"] == "pg_parameter.archive_command")
    );
    t.apply();
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");

    // pgBackRest knows the stanza; WAL reaches the repository.
    let l = leader(&t);
    let port = t.members().into_iter().find(|(n, _)| n == &l).unwrap().1;
    let v = info(&t, &l);
    assert_eq!(v[0]["name"], "bkup", "{v:#}");
    assert_eq!(
        v[0]["status"]["code"], 2,
        "no valid backup yet, but a stanza: {v:#}"
    );
    t.psql(&l, port, "SELECT pg_switch_wal()");
    t.psql(&l, port, "CREATE TABLE t (i int); INSERT INTO t VALUES (1)");
    t.psql(&l, port, "SELECT pg_switch_wal()");
    // (Segments written before the stanza existed failed once and were archived on retry.)
    wait_for("WAL to be archived", Duration::from_secs(60), || {
        let ok = t.psql(
            &l,
            port,
            "SELECT archived_count >= 2 AND (last_failed_time IS NULL OR last_failed_time < last_archived_time) FROM pg_stat_archiver",
        );
        (ok == "t").then_some(())
    });
    let v = info(&t, &l);
    assert!(v[0]["archive"][0]["max"].as_str().is_some(), "{v:#}");

    // health check: no backup yet is crit; a fresh one is ok.
    let age = |t: &TestCluster| -> Value {
        let r = t.run(&["health", "check", "--name", "bkup", "--format", "json"]);
        r.json()["data"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "backup_age")
            .cloned()
            .unwrap_or_else(|| panic!("no backup_age check: {r:?}"))
    };
    assert_eq!(age(&t)["status"], "crit");
    let r = t.run(&[
        "backup",
        "create",
        "--name",
        "bkup",
        "--type",
        "full",
        "--no-verify",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let c = age(&t);
    assert_eq!(c["status"], "ok", "{c:#}");
    assert_eq!(
        c["value"]["backup"],
        r.json()["data"]["backup"]["id"],
        "{c:#}"
    );

    // The stanza gone from the repository (its backups and its archive): dangerous drift, and
    // plan creates it again.
    let repo = t.data_dir().join("repo");
    let moved = repo.join("moved");
    std::fs::create_dir(&moved).unwrap();
    for part in ["backup", "archive"] {
        std::fs::rename(repo.join(part).join("bkup"), moved.join(part)).unwrap();
    }
    let r = t.run(&["drift", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 2, "{r:?}");
    let items = r.json()["data"]["clusters"][0]["drift"].clone();
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["address"] == "backup.stanza" && i["class"] == "dangerous"),
        "{items:#}"
    );
    // WAL written now cannot be archived: the archiver fails, and drift says so.
    t.psql(&l, port, "INSERT INTO t VALUES (2)");
    t.psql(&l, port, "SELECT pg_switch_wal()");
    wait_for("archiving to fail", Duration::from_secs(60), || {
        let failing = t.psql(
            &l,
            port,
            "SELECT last_failed_time > coalesce(last_archived_time, '-infinity') FROM pg_stat_archiver",
        );
        (failing == "t").then_some(())
    });
    let r = t.run(&["drift", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 2, "{r:?}");
    let items = r.json()["data"]["clusters"][0]["drift"].clone();
    let archiver = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == "pg_stat_archiver")
        .unwrap_or_else(|| panic!("no archiver drift: {items:#}"));
    assert_eq!(archiver["class"], "dangerous");
    assert!(
        archiver["message"]
            .as_str()
            .unwrap()
            .starts_with("WAL archiving fails"),
        "{archiver:#}"
    );
    std::fs::remove_dir_all(&moved).unwrap();
    t.apply();
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(info(&t, &l)[0]["status"]["code"], 2);

    // Without spec.backup: archiving off again (a restart), the repository left as it is.
    t.write_spec_with(1, &[("max_connections", "100")], "");
    t.apply();
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    let l = leader(&t);
    let port = t.members().into_iter().find(|(n, _)| n == &l).unwrap().1;
    assert_eq!(t.psql(&l, port, "SHOW archive_mode"), "off");
    assert!(
        t.data_dir()
            .join("repo")
            .join("backup")
            .join("bkup")
            .exists()
    );
}
