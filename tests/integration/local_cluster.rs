//! The engine end to end against real etcd, Patroni and PostgreSQL processes on this machine:
//! apply from nothing, plans with and without changes, reload and rolling-restart parameters,
//! scaling down and up, stale saved plans, concurrent applies, destroy, and no secret in any
//! output. One cluster walks through these states in order (each step starts from the state the
//! last one left, as a DBA's cluster would), checked with patronictl, psql and pg_settings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::support::{TestCluster, all_files, wait_for};
use serde_json::Value;

const PARAMS: &[(&str, &str)] = &[
    ("max_connections", "100"),
    ("shared_buffers", "128MB"),
    ("work_mem", "4MB"),
];

fn with(params: &[(&str, &'static str)], key: &str, value: &'static str) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                if *k == key {
                    value.to_string()
                } else {
                    v.to_string()
                },
            )
        })
        .collect()
}

fn write(t: &TestCluster, replicas: u32, params: &[(String, String)]) {
    let p: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    t.write_spec(replicas, &p);
}

fn clusters(plan: &Value) -> &Value {
    &plan["data"]["clusters"][0]
}

fn action_ids(plan: &Value) -> Vec<String> {
    clusters(plan)["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Leader name and the names of streaming replicas, from `patronictl list`.
fn topology(t: &TestCluster) -> (Option<String>, Vec<String>, usize) {
    let list = t.patronictl_list();
    let leader = list
        .iter()
        .find(|m| m["Role"] == "Leader")
        .map(|m| m["Member"].as_str().unwrap().to_owned());
    let streaming = list
        .iter()
        .filter(|m| m["Role"] == "Replica" && m["State"] == "streaming")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .collect();
    (leader, streaming, list.len())
}

/// `topology` once Patroni's own listing has caught up: its member keys are rewritten once
/// per loop_wait, so right after apply (which waits on each member's live status) a streaming
/// replica may still be listed as `running` for a few seconds.
fn settled(t: &TestCluster, members: usize) -> (Option<String>, Vec<String>, usize) {
    wait_for(
        "patronictl list to show every replica streaming",
        Duration::from_secs(60),
        || {
            let (leader, streaming, n) = topology(t);
            (leader.is_some() && n == members && streaming.len() == members - 1)
                .then_some((leader, streaming, n))
        },
    )
}

fn show_everywhere(t: &TestCluster, setting: &str) -> Vec<String> {
    t.members()
        .iter()
        .map(|(name, port)| t.psql(name, *port, &format!("SHOW {setting}")))
        .collect()
}

#[test]
fn local_cluster_lifecycle() {
    let t = TestCluster::new("life", 31400);
    t.write_spec(2, PARAMS);

    // Apply from nothing: one leader, two streaming replicas, as Patroni itself reports.
    let r = t.apply();
    assert_eq!(r.json()["success"], true);
    let (leader, streaming, n) = settled(&t, 3);
    assert_eq!(n, 3);
    assert!(leader.is_some());
    assert_eq!(streaming.len(), 2, "{:?}", t.patronictl_list());

    // Right after apply, nothing to do.
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    assert!(clusters(&plan)["changes"].as_array().unwrap().is_empty());
    let table = t.run(&["plan", "-f", t.spec_str(), "--format", "table"]);
    assert!(
        table
            .stdout
            .contains("No changes. The cluster matches the spec."),
        "{table:?}"
    );

    // work_mem: one change via reload, no restart. Two applies at once: the second one is
    // refused with STATE_LOCKED, naming the holder, while the first proceeds.
    write(&t, 2, &with(PARAMS, "work_mem", "8MB"));
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    let changes = clusters(&plan)["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["address"], "pg_parameter.work_mem");
    assert_eq!(changes[0]["apply_via"], "reload");
    assert_eq!(clusters(&plan)["summary"]["restarts"], 0);
    let args = [
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ];
    let first = t.spawn(&args);
    let lock = t.state_dir.join("life.lock");
    wait_for("the first apply's lock", Duration::from_secs(30), || {
        lock.exists().then_some(())
    });
    let second = t.run(&args);
    assert_eq!(second.code, 1, "{second:?}");
    let err = &second.json()["error"];
    assert_eq!(err["code"], "STATE_LOCKED");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", first.id())),
        "{err}"
    );
    let first = t.finish(&args, first);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(show_everywhere(&t, "work_mem"), vec!["8MB"; 3]);
    assert_eq!(t.plan_json().0, 0);

    // A saved plan, then an out-of-band change to what it touches: refused as stale.
    write(&t, 2, &with(PARAMS, "work_mem", "16MB"));
    let saved = t.dir.path().join("work_mem.plan");
    let r = t.run(&[
        "plan",
        "-f",
        t.spec_str(),
        "--out",
        saved.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    t.patronictl(&[
        "edit-config",
        "--force",
        "-s",
        "postgresql.parameters.work_mem=32MB",
    ]);
    let r = t.run(&["apply", saved.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "STALE_PLAN");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pg_parameter.work_mem")
    );
    // A fresh plan sees the out-of-band value and restores the spec's.
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(clusters(&plan)["changes"][0]["before"], "32MB");
    let r = t.run(&[
        "plan",
        "-f",
        t.spec_str(),
        "--out",
        saved.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0);
    let r = t.run(&["apply", saved.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(show_everywhere(&t, "work_mem"), vec!["16MB"; 3]);
    // The same saved plan again: the state's serial moved.
    let r = t.run(&["apply", saved.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.json()["error"]["code"], "STALE_PLAN", "{r:?}");

    // shared_buffers: a rolling restart, replicas one at a time, a switchover, then the old primary.
    let params = with(PARAMS, "work_mem", "16MB");
    let params: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| {
            if k == "shared_buffers" {
                (k, "256MB".to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    write(&t, 2, &params);
    let (leader, _, _) = topology(&t);
    let leader = leader.unwrap();
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(clusters(&plan)["changes"][0]["apply_via"], "restart");
    let ids = action_ids(&plan);
    let pos = |id: &str| {
        ids.iter()
            .position(|x| x == id)
            .unwrap_or_else(|| panic!("{id} not in {ids:?}"))
    };
    let replicas: Vec<String> = t
        .members()
        .into_iter()
        .map(|m| m.0)
        .filter(|m| *m != leader)
        .collect();
    assert!(
        pos(&format!("restart_member:{}", replicas[0]))
            < pos(&format!("restart_member:{}", replicas[1]))
    );
    assert!(pos(&format!("restart_member:{}", replicas[1])) < pos(&format!("switchover:{leader}")));
    assert!(pos(&format!("switchover:{leader}")) < pos(&format!("restart_member:{leader}")));
    t.apply();
    assert_eq!(show_everywhere(&t, "shared_buffers"), vec!["256MB"; 3]);
    for (name, port) in t.members() {
        assert_eq!(
            t.psql(
                &name,
                port,
                "SELECT count(*) FROM pg_settings WHERE pending_restart"
            ),
            "0",
            "{name}"
        );
    }
    assert!(t.patronictl_list().iter().all(|m| {
        m.get("Pending restart")
            .is_none_or(|v| v == "" || v.is_null())
    }));
    let (new_leader, streaming, _) = settled(&t, 3);
    assert_ne!(
        new_leader.as_deref(),
        Some(leader.as_str()),
        "the leader moved during the rolling restart"
    );
    assert_eq!(streaming.len(), 2);
    assert_eq!(t.plan_json().0, 0);

    // replicas 2 -> 1: one member removed; back to 2: one added that streams.
    write(&t, 1, &params);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(clusters(&plan)["summary"]["destroy"], 1, "{plan:#}");
    t.apply();
    let (_, _, n) = settled(&t, 2);
    assert_eq!(n, 2, "{:?}", t.patronictl_list());
    assert_eq!(t.plan_json().0, 0);
    write(&t, 2, &params);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(clusters(&plan)["summary"]["add"], 1);
    // The plan was saved; then the new member's PostgreSQL port is taken. Applying the saved
    // plan, that action fails, its gate is skipped, the apply exits 1 naming both, and the next
    // plan shows exactly what remains.
    let saved = t.dir.path().join("scale.plan");
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
    let squatter = std::net::TcpListener::bind(("127.0.0.1", t.pg_port + 2)).unwrap();
    let r = t.run(&["apply", saved, "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let env = r.json();
    assert_eq!(env["error"]["code"], "APPLY_FAILED");
    assert_eq!(
        env["data"]["result"]["failed"],
        serde_json::json!(["create_member:life-2"])
    );
    assert_eq!(
        env["data"]["result"]["skipped"],
        serde_json::json!(["await_healthy:life-2/created"])
    );
    let message = env["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "port {} (member life-2 PostgreSQL) is already in use",
            t.pg_port + 2
        )),
        "{message}"
    );
    // While the port is taken, plan says so, and who holds it (this test's own process).
    let r = t.run(&["plan", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "PORT_IN_USE");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&format!(
            "port {} (member life-2 PostgreSQL) is already in use by pid {}",
            t.pg_port + 2,
            std::process::id()
        )),
        "{message}"
    );
    drop(squatter);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(
        clusters(&plan)["changes"].as_array().unwrap().len(),
        1,
        "{plan:#}"
    );
    assert_eq!(clusters(&plan)["changes"][0]["address"], "member.life-2");
    assert_eq!(clusters(&plan)["changes"][0]["action"], "create");
    t.apply();
    let (_, streaming, n) = settled(&t, 3);
    assert_eq!((n, streaming.len()), (3, 2), "{:?}", t.patronictl_list());
    assert_eq!(t.plan_json().0, 0);

    // Verbose runs log, and no output, state file, saved plan or config holds a secret.
    let r = t.run(&["plan", "-f", t.spec_str(), "-vv", "--format", "table"]);
    assert_eq!(r.code, 0);
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(t.state_dir.join("life.secrets.json")).unwrap())
            .unwrap();
    let passwords: Vec<String> = secrets
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_str())
        .map(str::to_owned)
        .filter(|s| s.len() >= 16)
        .collect();
    assert_eq!(passwords.len(), 6, "{secrets}");
    let mut texts = vec![("transcript".to_owned(), t.transcript.borrow().clone())];
    for f in all_files(t.dir.path()) {
        let name = f.display().to_string();
        // Skipped: the 0600 secrets file itself; Patroni's own pgpass (0600, the run-as user's),
        // which libpq needs to clone and rewind; PostgreSQL's binary relation and WAL files.
        let skip = name.ends_with("secrets.json")
            || f.file_name().is_some_and(|n| n == "pgpass")
            || crate::support::is_pg_binary(&f);
        if skip {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&f) {
            texts.push((name, text));
        }
    }
    for (name, text) in &texts {
        for p in &passwords {
            assert!(
                !text.contains(p.as_str()),
                "a generated password appears in clear in {name}"
            );
        }
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(t.state_dir.join("life.secrets.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // Destroy: refused without --confirm, then everything is gone.
    let r = t.run(&["destroy", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["error"]["code"], "CONFIRMATION_REQUIRED");
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
    assert!(!t.state_dir.join("life.json").exists());
    let (code, plan) = t.plan_json();
    assert_eq!(
        code, 2,
        "after destroy the plan creates everything again: {plan:#}"
    );
}
