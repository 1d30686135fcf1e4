//! What a DBA found trying pgdba (issue 17), on one real 3-member cluster that walks through
//! each case in turn: lowering every "standby must be at least the primary" setting, and
//! `ALTER SYSTEM` overrides of a restart-only parameter (pending, then in effect) and of a
//! reload parameter before any reload. Each ends with every member checked by psql and a plan
//! that exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

use crate::support::TestCluster;

const FLOORS_HIGH: &[(&str, &str)] = &[
    ("max_connections", "100"),
    ("max_worker_processes", "8"),
    ("max_wal_senders", "10"),
    ("max_prepared_transactions", "10"),
    ("max_locks_per_transaction", "64"),
    ("shared_buffers", "128MB"),
    ("work_mem", "4MB"),
];
const FLOORS_LOW: &[(&str, &str)] = &[
    ("max_connections", "50"),
    ("max_worker_processes", "6"),
    ("max_wal_senders", "8"),
    ("max_prepared_transactions", "5"),
    ("max_locks_per_transaction", "48"),
    ("shared_buffers", "128MB"),
    ("work_mem", "4MB"),
];

fn changes(plan: &Value) -> Vec<Value> {
    plan["data"]["clusters"][0]["changes"]
        .as_array()
        .unwrap()
        .clone()
}

fn leader_and_replica(t: &TestCluster) -> ((String, u16), (String, u16)) {
    let list = t.patronictl_list();
    let leader = list
        .iter()
        .find(|m| m["Role"] == "Leader")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .unwrap();
    let members = t.members();
    let l = members.iter().find(|m| m.0 == leader).unwrap().clone();
    let r = members.iter().find(|m| m.0 != leader).unwrap().clone();
    (l, r)
}

fn no_pending_restart(t: &TestCluster) {
    for (name, port) in t.members() {
        assert_eq!(
            t.psql(
                &name,
                port,
                "SELECT count(*) FROM pg_settings WHERE pending_restart"
            ),
            "0",
            "{name} still waits for a restart"
        );
    }
}

#[test]
fn what_a_dba_found() {
    let t = TestCluster::new("dba", 31900);
    t.write_spec(2, FLOORS_HIGH);
    t.apply();

    // Item 10: the state's tables for people: a header, and no YAML.
    let r = t.run(&["state", "list", "--format", "table"]);
    assert!(
        r.stdout
            .starts_with("CLUSTER  SERIAL  MEMBERS  UPDATED\ndba "),
        "{r:?}"
    );
    let r = t.run(&["state", "show", "dba", "--format", "table"]);
    assert!(
        r.stdout.starts_with("cluster dba (local provider)\n"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("\nMEMBER  HOST       PORT   API_URL"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("lineage:"), "{r:?}");

    // 1. Lowering every floor setting at once: the primary restarts first, each replica only
    // once it has replayed the primary's parameter-change record, in one apply.
    t.write_spec(2, FLOORS_LOW);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan:#}");
    let ids: Vec<String> = plan["data"]["clusters"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids.iter()
            .filter(|i| i.starts_with("await_replay:"))
            .count(),
        2,
        "{ids:?}"
    );
    let r = t.apply();
    assert_eq!(r.json()["success"], true);
    // Item 9: what ran, counted from the actions: three restarts, no switchover.
    let applied = &r.json()["data"]["applied"];
    assert_eq!(
        (&applied["restarts"], &applied["switchovers"]),
        (&3.into(), &0.into()),
        "{applied}"
    );
    assert_eq!(applied["change"], 5, "{applied}");
    for (name, port) in t.members() {
        for (guc, want) in FLOORS_LOW {
            if *guc == "shared_buffers" || *guc == "work_mem" {
                continue;
            }
            assert_eq!(
                &t.psql(&name, port, &format!("SHOW {guc}")),
                want,
                "{guc} on {name}"
            );
        }
    }
    no_pending_restart(&t);
    assert_eq!(t.plan_json().0, 0);

    // 2a. ALTER SYSTEM of a restart-only parameter on a replica, reloaded: not in effect yet,
    // but seen at once, and reset without restarting anything.
    let (_, (replica, rport)) = leader_and_replica(&t);
    t.psql(&replica, rport, "ALTER SYSTEM SET shared_buffers = '512MB'");
    t.psql(&replica, rport, "SELECT pg_reload_conf()");
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan:#}");
    let c = changes(&plan);
    assert_eq!(c.len(), 1, "{plan:#}");
    assert_eq!(
        c[0]["address"],
        format!("override.{replica}.shared_buffers")
    );
    assert_eq!(c[0]["apply_via"], "sql");
    assert_eq!(plan["data"]["clusters"][0]["summary"]["restarts"], 0);
    // Item 9: resetting an override changes a member's configuration; it destroys nothing.
    assert_eq!(plan["data"]["clusters"][0]["summary"]["destroy"], 0);
    assert_eq!(plan["data"]["clusters"][0]["summary"]["change"], 1);
    t.apply();
    assert_eq!(t.psql(&replica, rport, "SHOW shared_buffers"), "128MB");
    assert_eq!(
        t.psql(
            &replica,
            rport,
            "SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%auto.conf'"
        ),
        "0"
    );
    no_pending_restart(&t);
    assert_eq!(t.plan_json().0, 0);

    // 2b. The same override, now in effect (the member was restarted into it): reset and the
    // member restarted, converging in one apply.
    t.psql(&replica, rport, "ALTER SYSTEM SET shared_buffers = '512MB'");
    t.patronictl(&["restart", "--force", &t.name, &replica]);
    crate::support::wait_for(
        "the replica to run with the override",
        std::time::Duration::from_secs(60),
        || {
            (t.psql(&replica, rport, "SHOW shared_buffers") == "512MB"
                && t.psql(&replica, rport, "SELECT pg_is_in_recovery()") == "t")
                .then_some(())
        },
    );
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan:#}");
    let c = changes(&plan);
    assert_eq!(c.len(), 1, "{plan:#}");
    assert_eq!(c[0]["apply_via"], "restart", "{plan:#}");
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "table",
        "-v",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    // Item 9: "1 restart", said of what ran; item 10: no terminal colours in a log that is
    // not a terminal.
    assert!(
        r.stdout.contains("1 restart ") || r.stdout.contains("1 restart,"),
        "{r:?}"
    );
    assert!(
        !r.stderr.contains('\u{1b}'),
        "ANSI escapes in a non-terminal log: {r:?}"
    );
    assert_eq!(t.psql(&replica, rport, "SHOW shared_buffers"), "128MB");
    no_pending_restart(&t);
    assert_eq!(t.plan_json().0, 0, "one apply converges");

    // Issue 16, item 2 for overrides: an ALTER SYSTEM without any reload is in the next plan.
    t.psql(&replica, rport, "ALTER SYSTEM SET work_mem = '64MB'");
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan:#}");
    let c = changes(&plan);
    assert_eq!(c[0]["address"], format!("override.{replica}.work_mem"));
    assert_eq!(c[0]["before"], "64MB");
    t.apply();
    assert_eq!(t.plan_json().0, 0);
    assert_eq!(t.psql(&replica, rport, "SHOW work_mem"), "4MB");

    // 11. A parameter set in the DCS by hand that the spec does not manage: information in
    // plan and drift, left as is.
    t.patronictl(&[
        "edit-config",
        "--force",
        "-s",
        "postgresql.parameters.log_min_duration_statement=1s",
    ]);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(
        plan["data"]["clusters"][0]["unmanaged_parameters"]["log_min_duration_statement"],
        "1s"
    );
    let r = t.run(&["drift", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()["data"]["clusters"][0]["unmanaged_parameters"]["log_min_duration_statement"],
        "1s"
    );

    // Issue 19: the watchdog lives in each member's patroni.yml. Changing it in the spec is a
    // planned reconfiguration of every member (the file rewritten, Patroni reloaded).
    let text = std::fs::read_to_string(&t.spec).unwrap();
    assert!(text.contains("retry_timeout: 10}"));
    std::fs::write(
        &t.spec,
        text.replace("retry_timeout: 10}", "retry_timeout: 10, watchdog: off}"),
    )
    .unwrap();
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan:#}");
    let ops: Vec<&str> = plan["data"]["clusters"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["operation"].as_str())
        .collect();
    assert_eq!(ops, vec!["reconfigure"; 3], "{plan:#}");
    t.apply();
    assert_eq!(t.plan_json().0, 0);
    for i in 0..3 {
        let yml = std::fs::read_to_string(t.member_config(i)).unwrap();
        assert!(yml.contains("mode: off"), "{yml}");
    }
}

fn drift(t: &TestCluster) -> (i32, Value) {
    let r = t.run(&["drift", "-f", t.spec_str(), "--format", "json"]);
    assert!(matches!(r.code, 0 | 2), "{r:?}");
    (r.code, r.json())
}

/// Apply a plan saved before `port` was taken: the action that needs the port fails, the
/// others complete.
fn apply_with_port_taken(t: &TestCluster, port: u16) {
    let saved = t.dir.path().join("saved.plan");
    let saved = saved.to_str().unwrap();
    let r = t.run(&[
        "plan",
        "-f",
        t.spec_str(),
        "--out",
        saved,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let r = t.run(&["apply", saved, "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "APPLY_FAILED", "{r:?}");
    drop(squatter);
}

/// Items 4-6: drift after applies that stopped part-way names only what changed outside
/// pgdba; a password that does not match says which secret; plan refuses a port in use (with
/// its holder) and another cluster's directory.
#[test]
fn drift_after_a_failed_apply_and_plan_refusals() {
    let t = TestCluster::new("half", 32000);
    t.envs.borrow_mut().push((
        "HALF_APP_PASSWORD".to_owned(),
        "half-app-Secret-1f2e".to_owned(),
    ));
    let roles = "  roles:\n    - {name: app, login: true, password: {env: HALF_APP_PASSWORD}}\n";
    t.write_spec_with(1, &[("work_mem", "4MB")], roles);

    // The first apply stops part-way: the primary is created, the replica is not. Drift reports
    // no member "gone" that never existed, and one consistent note.
    apply_with_port_taken(&t, t.pg_port + 1);
    let (code, v) = drift(&t);
    assert_eq!(code, 0, "{v:#}");
    let c = &v["data"]["clusters"][0];
    assert_eq!(c["drift"], serde_json::json!([]), "{v:#}");
    let notes: Vec<&str> = c["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("stopped part-way")),
        "{notes:?}"
    );
    assert!(
        !notes.iter().any(|n| n.contains("no applied spec")),
        "{notes:?}"
    );
    t.apply();
    assert_eq!(t.plan_json().0, 0);

    // A later apply writes work_mem to the DCS, then stops at a member it cannot create:
    // pgdba's own write is not drift.
    t.write_spec_with(2, &[("work_mem", "8MB")], roles);
    apply_with_port_taken(&t, t.pg_port + 2);
    let (code, v) = drift(&t);
    assert_eq!(code, 0, "{v:#}");
    // Someone else's write still is, measured from what pgdba last did.
    t.patronictl(&[
        "edit-config",
        "--force",
        "-s",
        "postgresql.parameters.work_mem=32MB",
    ]);
    let (code, v) = drift(&t);
    assert_eq!(code, 2, "{v:#}");
    let items = v["data"]["clusters"][0]["drift"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 1, "{v:#}");
    assert_eq!(items[0]["address"], "pg_parameter.work_mem");
    assert_eq!(items[0]["class"], "dangerous");
    assert_eq!(
        (&items[0]["before"], &items[0]["after"]),
        (&serde_json::json!("8MB"), &serde_json::json!("32MB"))
    );
    t.apply();

    // Item 5: a password changed by hand names the secret it no longer matches.
    let (leader, port) = t.members()[0].clone();
    t.psql(&leader, port, "ALTER ROLE app PASSWORD 'changed-by-hand'");
    let (code, v) = drift(&t);
    assert_eq!(code, 2, "{v:#}");
    let items = v["data"]["clusters"][0]["drift"]
        .as_array()
        .unwrap()
        .clone();
    let app = items.iter().find(|i| i["address"] == "role.app").unwrap();
    let message = app["message"].as_str().unwrap();
    assert!(
        message.contains("does not match the one in environment variable HALF_APP_PASSWORD"),
        "{message}"
    );
    assert!(!message.contains("half-app-Secret"), "{message}");
    t.apply();
    assert_eq!(drift(&t).0, 0);

    // Item 6: a second cluster in the same state dir pointing at this one's directory is
    // refused by plan, naming this cluster, before anything is created.
    let other = t.dir.path().join("other.yaml");
    let text = std::fs::read_to_string(&t.spec)
        .unwrap()
        .replace("name: half", "name: other")
        .replace(&format!("pg_port: {}", t.pg_port), "pg_port: 32050")
        .replace(&format!("api_port: {}", t.api_port), "api_port: 32060")
        .replace(&format!("etcd_port: {}", t.etcd_port), "etcd_port: 32070");
    std::fs::write(&other, text).unwrap();
    let r = t.run(&["plan", "-f", other.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "IN_USE_BY_ANOTHER_CLUSTER");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("cluster half's"), "{message}");
    assert!(!t.state_dir.join("other.json").exists());
}
