//! `backup restore --to-cluster NEW`: point-in-time recovery of a real local cluster with
//! `spec.backup` into a new cluster (Patroni's custom bootstrap from the source's pgBackRest
//! repository), which has what was written before the target and not after, streams to its
//! replica and plans clean, while the source keeps everything; and a target before the window
//! refused before anything is written. `backup restore --in-place`: the cluster itself recovered
//! to the target (A and not B), on a new timeline archived into its own stanza, every replica
//! streaming again and the spec planning clean; refused without the flag and outside the
//! window, with every member still running. Ports 30900-30999.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::{TestCluster, wait_for};

fn backup_section(t: &TestCluster) -> String {
    format!(
        "  backup:\n    repository: {{path: {}}}\n    retention: {{full: 2}}\n",
        t.data_dir().join("repo").display()
    )
}

fn leader_port(t: &TestCluster) -> (String, u16) {
    let members = t.patronictl_list();
    let l = members
        .iter()
        .find(|m| m["Role"] == "Leader")
        .unwrap_or_else(|| panic!("no leader: {members:?}"));
    let name = l["Member"].as_str().unwrap().to_owned();
    let port = t
        .members()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p)
        .unwrap();
    (name, port)
}

/// The new cluster as a `TestCluster` of the source's state dir: its helpers reach it, and
/// dropping it destroys it (before the source, declared after it).
fn new_cluster(source: &TestCluster, name: &str, port_base: u16) -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix(&format!("pgdba-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    TestCluster {
        name: name.to_owned(),
        spec: dir.path().join(format!("{name}.yaml")),
        state_dir: source.state_dir.clone(),
        pg_port: port_base,
        api_port: port_base + 10,
        etcd_port: port_base + 20,
        dir,
        transcript: Default::default(),
        envs: Default::default(),
    }
}

#[test]
fn restore_to_a_new_cluster_recovers_to_the_target_time() {
    let src = TestCluster::new("rsrc", 30900);
    src.write_spec_with(1, &[("max_connections", "100")], &backup_section(&src));
    src.apply();
    let (leader, port) = leader_port(&src);
    let r = src.run(&[
        "backup",
        "create",
        "--type",
        "full",
        "--no-verify",
        "-f",
        src.spec_str(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup create: {r:?}");
    src.psql(
        &leader,
        port,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')",
    );
    let at = src.psql(
        &leader,
        port,
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(1500));
    src.psql(&leader, port, "INSERT INTO t VALUES ('B')");
    let wal = src.psql(&leader, port, "SELECT pg_walfile_name(pg_switch_wal())");
    wait_for(
        "the WAL with row B archived",
        Duration::from_secs(60),
        || {
            let last = src.psql(
                &leader,
                port,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            );
            (last.as_str() >= wal.as_str()).then_some(())
        },
    );

    let new = new_cluster(&src, "rnew", 30940);
    // A target before the window's oldest point: refused, nothing written.
    let r = src.run(&[
        "backup",
        "restore",
        "-f",
        src.spec_str(),
        "--to-cluster",
        "rnew",
        "--target-time",
        "2020-01-01T00:00:00Z",
        "--out",
        new.spec_str(),
        "--data-dir",
        new.data_dir().to_str().unwrap(),
        "--pg-port",
        "30940",
        "--api-port",
        "30950",
        "--etcd-port",
        "30960",
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    let j = r.json();
    assert_eq!(j["error"]["code"], "OUTSIDE_WINDOW", "{j:#}");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recoverable window is"),
        "{j:#}"
    );
    assert!(!new.spec.exists());
    assert!(!new.data_dir().exists());
    assert!(!src.state_dir.join("rnew.json").exists());

    // The restore to T.
    let r = src.run(&[
        "backup",
        "restore",
        "-f",
        src.spec_str(),
        "--to-cluster",
        "rnew",
        "--target-time",
        &at,
        "--out",
        new.spec_str(),
        "--data-dir",
        new.data_dir().to_str().unwrap(),
        "--pg-port",
        "30940",
        "--api-port",
        "30950",
        "--etcd-port",
        "30960",
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup restore: {r:?}");
    let j = r.json();
    assert_eq!(j["data"]["source"], "rsrc");
    assert_eq!(j["data"]["cluster"], "rnew");
    assert_eq!(j["data"]["target"]["type"], "time");
    assert!(j["data"]["backup"]["id"].as_str().unwrap().ends_with('F'));
    assert!(j["data"]["apply"].is_object());
    let text = std::fs::read_to_string(&new.spec).unwrap();
    assert!(text.contains("restore_from"), "{text}");
    assert!(!text.contains("archive_command"), "{text}");

    // A and not B; the replica streams; the spec plans clean.
    let (nleader, nport) = leader_port(&new);
    assert_eq!(
        new.psql(
            &nleader,
            nport,
            "SELECT string_agg(v, ',' ORDER BY v) FROM t"
        ),
        "A"
    );
    wait_for(
        "the new replica streaming",
        Duration::from_secs(120),
        || {
            let members = new.patronictl_list();
            (members.len() == 2
                && members
                    .iter()
                    .any(|m| m["Role"] == "Replica" && m["State"] == "streaming"))
            .then_some(())
        },
    );
    let (code, plan) = new.plan_json();
    assert_eq!(
        code, 0,
        "the restored cluster does not plan clean: {plan:#}"
    );
    // Nothing of the new cluster went into the source's stanza: its archive has the
    // source's timeline only.
    let archived = std::fs::read_dir(src.data_dir().join("repo/archive/rsrc/15-1"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(
        archived.iter().all(|n| !n.ends_with(".history")),
        "a timeline history in the source's archive: {archived:?}"
    );

    // The source still has both rows.
    assert_eq!(
        src.psql(&leader, port, "SELECT string_agg(v, ',' ORDER BY v) FROM t"),
        "A,B"
    );
}

/// The rows of `t` on the cluster's leader.
fn rows(t: &TestCluster) -> String {
    let (leader, port) = leader_port(t);
    t.psql(&leader, port, "SELECT string_agg(v, ',' ORDER BY v) FROM t")
}

#[test]
fn restore_in_place_recovers_the_cluster_itself_to_the_target_time() {
    let t = TestCluster::new("rinp", 30970);
    t.write_spec_with(2, &[("max_connections", "100")], &backup_section(&t));
    t.apply();
    let (leader, port) = leader_port(&t);
    let r = t.run(&[
        "backup",
        "create",
        "--type",
        "full",
        "--no-verify",
        "-f",
        t.spec_str(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup create: {r:?}");
    t.psql(
        &leader,
        port,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')",
    );
    let at = t.psql(
        &leader,
        port,
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(1500));
    t.psql(&leader, port, "INSERT INTO t VALUES ('B')");
    let wal = t.psql(&leader, port, "SELECT pg_walfile_name(pg_switch_wal())");
    wait_for(
        "the WAL with row B archived",
        Duration::from_secs(60),
        || {
            let last = t.psql(
                &leader,
                port,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            );
            (last.as_str() >= wal.as_str()).then_some(())
        },
    );
    let before = t.patronictl_list();

    // Without the flag, and outside the window: refused, the cluster untouched.
    let r = t.run(&["backup", "restore", "-f", t.spec_str(), "--in-place"]);
    assert_ne!(r.code, 0, "{r:?}");
    let r = t.run(&[
        "backup",
        "restore",
        "-f",
        t.spec_str(),
        "--in-place",
        "--i-know-what-i-am-doing",
        "--target-time",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "OUTSIDE_WINDOW", "{r:?}");
    let after = t.patronictl_list();
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        after
            .iter()
            .all(|m| m["State"] == "running" || m["State"] == "streaming"),
        "{after:?}"
    );
    assert_eq!(
        before
            .iter()
            .find(|m| m["Role"] == "Leader")
            .map(|m| &m["Member"]),
        after
            .iter()
            .find(|m| m["Role"] == "Leader")
            .map(|m| &m["Member"])
    );
    assert_eq!(rows(&t), "A,B");

    // The restore to T, in place.
    let r = t.run(&[
        "backup",
        "restore",
        "-f",
        t.spec_str(),
        "--in-place",
        "--i-know-what-i-am-doing",
        "--target-time",
        &at,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup restore --in-place: {r:?}");
    let j = r.json();
    assert_eq!(j["data"]["cluster"], "rinp");
    assert_eq!(j["data"]["target"]["type"], "time");
    assert_eq!(j["data"]["safety_backup"]["taken"], true, "{j:#}");
    assert_eq!(j["data"]["removed"].as_array().unwrap().len(), 3, "{j:#}");
    assert!(j["data"]["apply"].is_object(), "{j:#}");
    assert!(!t.state_dir.join("rinp.restore.yaml").exists());

    // A and not B, on a new timeline; every replica streams from the restored leader.
    assert_eq!(rows(&t), "A");
    wait_for("both replicas streaming", Duration::from_secs(180), || {
        let members = t.patronictl_list();
        (members.len() == 3
            && members
                .iter()
                .filter(|m| m["Role"] == "Replica" && m["State"] == "streaming")
                .count()
                == 2)
            .then_some(())
    });
    let members = t.patronictl_list();
    assert!(
        members.iter().all(|m| m["TL"].as_u64().unwrap_or(0) >= 2),
        "not on a new timeline: {members:?}"
    );
    let (code, plan) = t.plan_json();
    assert_eq!(
        code, 0,
        "the restored cluster does not plan clean: {plan:#}"
    );
    // The new timeline archives into the same stanza.
    wait_for(
        "the new timeline's history archived",
        Duration::from_secs(60),
        || {
            std::fs::read_dir(t.data_dir().join("repo/archive/rinp/15-1"))
                .ok()?
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".history"))
                .then_some(())
        },
    );
    // What is written after the restore reaches the replicas.
    let (leader, port) = leader_port(&t);
    t.psql(&leader, port, "INSERT INTO t VALUES ('C')");
    for (m, p) in t.members() {
        if m != leader {
            wait_for(&format!("row C on {m}"), Duration::from_secs(30), || {
                (t.psql(&m, p, "SELECT string_agg(v, ',' ORDER BY v) FROM t") == "A,C")
                    .then_some(())
            });
        }
    }
}
