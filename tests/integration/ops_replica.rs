//! `replica add`, `replica remove` and `cluster init` on real local clusters (issue 10, items
//! 2 and 4): the spec file is edited as a person would (only `replicas` changes, comments
//! stay), the cluster follows, the plan is clean afterwards, a member that is not the
//! highest-numbered is refused, a leader is switched away from before it is removed, and
//! `cluster init` writes a spec that brings a cluster up and that `destroy` takes down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{TestCluster, wait_for};

/// The leader and the streaming replicas as `patronictl list` shows them, once there are
/// `members` members, one leading and the others streaming.
fn settled(t: &TestCluster, members: usize) -> (String, Vec<String>) {
    wait_for(
        &format!("{members} members: a leader and the others streaming"),
        Duration::from_secs(180),
        || {
            let list = t.patronictl_list();
            let leader = list
                .iter()
                .find(|m| m["Role"] == "Leader" && m["State"] == "running")
                .map(|m| m["Member"].as_str().unwrap().to_owned())?;
            let streaming: Vec<String> = list
                .iter()
                .filter(|m| m["Role"] != "Leader" && m["State"] == "streaming")
                .map(|m| m["Member"].as_str().unwrap().to_owned())
                .collect();
            (list.len() == members && streaming.len() == members - 1).then_some((leader, streaming))
        },
    )
}

fn run_json(t: &TestCluster, args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let r = t.run(&all);
    (r.code, r.json())
}

fn spec_text(t: &TestCluster) -> String {
    std::fs::read_to_string(&t.spec).unwrap()
}

#[test]
fn replica_add_and_remove_edit_only_replicas_and_the_cluster_follows() {
    let t = TestCluster::new("oprep", 30400);
    t.write_spec(1, &[("max_connections", "100")]);
    // What a DBA leaves in a spec, which the edits must keep byte for byte.
    let original = spec_text(&t).replace(
        "  replicas: 1\n",
        "  # one standby for now; more before the launch\n  replicas:   1    # standbys\n",
    );
    std::fs::write(&t.spec, &original).unwrap();
    let with = |n: u32| original.replace("replicas:   1 ", &format!("replicas:   {n} "));
    t.apply();
    settled(&t, 2);

    // Add: the spec says 2, three members run, the plan is clean.
    let (code, v) = run_json(
        &t,
        &["replica", "add", "-f", t.spec_str(), "--auto-approve"],
    );
    assert_eq!(code, 0, "{v:#}");
    let d = &v["data"];
    assert_eq!(d["replicas_before"], 1, "{v:#}");
    assert_eq!(d["replicas_after"], 2, "{v:#}");
    assert_eq!(d["member"], "oprep-2", "{v:#}");
    assert_eq!(d["spec"], t.spec_str(), "{v:#}");
    assert_eq!(d["apply"]["cluster"], "oprep", "{v:#}");
    assert!(d["apply"]["result"].is_object(), "{v:#}");
    assert_eq!(spec_text(&t), with(2), "only the value changed");
    let (leader, streaming) = settled(&t, 3);
    assert_eq!(streaming.len(), 2, "{leader} {streaming:?}");
    assert_eq!(t.plan_json().0, 0, "the cluster matches the edited spec");

    // Naming a member that is not the highest-numbered is refused, and nothing changes.
    let (code, v) = run_json(
        &t,
        &[
            "replica",
            "remove",
            "-f",
            t.spec_str(),
            "--member",
            "oprep-1",
            "--auto-approve",
        ],
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "REFUSED", "{v:#}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("numbered") && message.contains("oprep-2"),
        "{message}"
    );
    assert_eq!(spec_text(&t), with(2));
    // Without --auto-approve and no terminal to ask on: refused before anything.
    let (code, v) = run_json(&t, &["replica", "remove", "-f", t.spec_str()]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "APPROVAL_REQUIRED", "{v:#}");
    assert_eq!(spec_text(&t), with(2));
    // A spec with another change pending: refused, and the file is left as it was.
    let pending = with(2).replace("max_connections: 100", "max_connections: 120");
    std::fs::write(&t.spec, &pending).unwrap();
    let (code, v) = run_json(
        &t,
        &["replica", "add", "-f", t.spec_str(), "--auto-approve"],
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "PENDING_CHANGES", "{v:#}");
    assert!(
        v["data"]["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "pg_parameter.max_connections"),
        "{v:#}"
    );
    assert_eq!(spec_text(&t), pending);
    std::fs::write(&t.spec, with(2)).unwrap();

    // The member to remove leads: the leader moves first, measured, then it goes.
    let (code, v) = run_json(&t, &["switchover", "--to", "oprep-2", "-f", t.spec_str()]);
    assert_eq!(code, 0, "{v:#}");
    let (leader, _) = settled(&t, 3);
    assert_eq!(leader, "oprep-2");
    let port = t
        .members()
        .into_iter()
        .find(|(n, _)| n == "oprep-2")
        .unwrap()
        .1;
    let host = format!("127.0.0.1:{port}");
    let (code, v) = run_json(
        &t,
        &[
            "replica",
            "remove",
            "-f",
            t.spec_str(),
            "--host",
            &host,
            "--auto-approve",
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    let d = &v["data"];
    assert_eq!(d["member"], "oprep-2", "{v:#}");
    assert_eq!(d["replicas_after"], 1, "{v:#}");
    assert_eq!(d["switchover"]["from"], "oprep-2", "{v:#}");
    assert!(
        d["switchover"]["write_unavailable_ms"].as_u64().is_some(),
        "{v:#}"
    );
    let new_leader = d["switchover"]["to"].as_str().unwrap().to_owned();
    assert_eq!(spec_text(&t), original, "back to the file as it was");
    let (leader, streaming) = settled(&t, 2);
    assert_eq!(leader, new_leader);
    assert!(!streaming.contains(&"oprep-2".to_owned()), "{streaming:?}");
    assert!(
        !t.data_dir().join("oprep-2").exists(),
        "the removed member's directory is deleted"
    );
    assert_eq!(t.plan_json().0, 0);
}

#[test]
fn cluster_init_writes_a_spec_that_brings_a_cluster_up() {
    let t = TestCluster::new("opinit", 30500);
    let data_dir = t.data_dir();
    let init = |extra: &[&str]| -> (i32, Value) {
        let mut args = vec![
            "cluster",
            "init",
            "--provider",
            "local",
            "--replicas",
            "1",
            "--name",
            "opinit",
            "--out",
            t.spec_str(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--pg-port",
            "30500",
            "--api-port",
            "30510",
            "--etcd-port",
            "30520",
        ];
        args.extend_from_slice(extra);
        run_json(&t, &args)
    };
    // No terminal to ask on and no --auto-approve: nothing is written.
    let (code, v) = init(&[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "APPROVAL_REQUIRED", "{v:#}");
    assert!(!t.spec.exists());

    let (code, v) = init(&["--auto-approve"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["data"]["spec"], t.spec_str(), "{v:#}");
    assert_eq!(v["data"]["cluster"], "opinit", "{v:#}");
    assert!(v["data"]["apply"]["result"].is_object(), "{v:#}");
    let spec = pgdba::spec::load_file(&t.spec).unwrap().spec;
    assert_eq!(spec.spec.replicas, 1);
    assert_eq!(spec.spec.postgres.version, 15);
    assert_eq!(
        spec.spec.patroni,
        pgdba::spec::model::PatroniSettings::default()
    );
    let checker = Path::new("/opt/pgdba-tools/bin/check-jsonschema");
    if checker.exists() {
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/cluster.schema.json");
        let out = std::process::Command::new(checker)
            .arg("--schemafile")
            .arg(schema)
            .arg(&t.spec)
            .output()
            .unwrap();
        assert!(out.status.success(), "check-jsonschema: {out:?}");
    }

    let (leader, streaming) = settled(&t, 2);
    assert_eq!(streaming.len(), 1, "{leader} {streaming:?}");
    let members = t.members();
    assert_eq!(
        members,
        vec![
            ("opinit-0".to_owned(), 30500),
            ("opinit-1".to_owned(), 30501)
        ]
    );
    let port = members.iter().find(|(n, _)| *n == leader).unwrap().1;
    assert_eq!(t.psql(&leader, port, "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(t.plan_json().0, 0, "the written spec plans clean");

    // Never over an existing file.
    let before = spec_text(&t);
    let (code, v) = init(&["--auto-approve"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "REFUSED", "{v:#}");
    assert_eq!(spec_text(&t), before);

    let r = t.run(&[
        "destroy",
        "-f",
        t.spec_str(),
        "--confirm",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!t.state_dir.join("opinit.json").exists());
    assert!(wait_for(
        "the ports to be free",
        Duration::from_secs(30),
        || {
            std::net::TcpListener::bind(("127.0.0.1", 30500))
                .is_ok()
                .then_some(true)
        }
    ));
}
