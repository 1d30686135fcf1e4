//! When something is broken, pgdba says so (issue 19): faults injected into a real 3-member
//! cluster by the test, one after the other, each checked by exit code and message, and each
//! followed, once the fault is removed, by an apply that converges and a plan that exits 0.
//!
//! - a replica frozen (SIGSTOP on its Patroni and PostgreSQL): plan and apply refuse with
//!   UNREACHABLE naming it, drift calls it dangerous, and the state records nothing;
//! - etcd frozen: the same, naming the DCS;
//! - a replica's data directory unreadable (PostgreSQL down behind a live Patroni);
//! - split brain (a replica's PostgreSQL promoted behind Patroni's back);
//! - a replica that cannot start: the gate fails at once, and plan offers to rebuild it;
//! - everything killed, as a reboot would;
//! - the secrets file or the state lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{TestCluster, pid_file, pid_file_json, wait_for};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn params(
    work_mem: &'static str,
    shared_buffers: &'static str,
) -> Vec<(&'static str, &'static str)> {
    vec![
        ("max_connections", "100"),
        ("shared_buffers", shared_buffers),
        ("work_mem", work_mem),
    ]
}

fn signal(pids: &[i32], sig: &str) {
    for pid in pids {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }
}

/// `plan --detailed-exitcode` as it is, whatever the exit code.
fn plan(t: &TestCluster) -> (i32, Value) {
    let r = t.run(&[
        "plan",
        "-f",
        t.spec_str(),
        "--format",
        "json",
        "--detailed-exitcode",
    ]);
    (r.code, r.json())
}

fn drift(t: &TestCluster) -> (i32, Value) {
    let r = t.run(&["drift", "-f", t.spec_str(), "--format", "json"]);
    (r.code, r.json())
}

fn dangerous(v: &Value, address: &str) -> Value {
    v["data"]["clusters"][0]["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["address"] == address && i["class"] == "dangerous")
        .cloned()
        .unwrap_or_else(|| panic!("no dangerous {address} in {v:#}"))
}

fn state_bytes(t: &TestCluster) -> Vec<u8> {
    std::fs::read(t.state_dir.join(format!("{}.json", t.name))).unwrap()
}

/// Plan until it exits 0 (a member Patroni brings back by itself may need a loop or two).
fn converged(t: &TestCluster) {
    wait_for("plan to exit 0", Duration::from_secs(90), || {
        let (code, _) = plan(t);
        if code == 2 {
            let r = t.run(&[
                "apply",
                "-f",
                t.spec_str(),
                "--auto-approve",
                "--allow-data-loss",
                "--format",
                "json",
            ]);
            assert!(matches!(r.code, 0 | 1), "{r:?}");
        }
        (code == 0).then_some(())
    });
}

fn leader_and_replica(t: &TestCluster) -> (String, String) {
    let list = t.patronictl_list();
    let leader = list
        .iter()
        .find(|m| m["Role"] == "Leader")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .unwrap();
    let replica = list
        .iter()
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .filter(|m| *m != leader)
        .max()
        .unwrap();
    (leader, replica)
}

fn patroni_state(t: &TestCluster, member: &str) -> String {
    let port = t.api_port + member.rsplit('-').next().unwrap().parse::<u16>().unwrap();
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/patroni"))
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn faults_are_reported_as_they_are_and_converge_once_removed() {
    let t = TestCluster::new("faults", 32100);
    t.write_spec(2, &params("4MB", "128MB"));
    t.apply();
    let (_, replica) = leader_and_replica(&t);
    let member_dir = t.data_dir().join(&replica);
    let data = member_dir.join("data");

    // 1. A frozen replica: no "no changes", no apply, nothing recorded.
    let frozen = [
        pid_file_json(&member_dir.join("patroni.pid")),
        pid_file(&data.join("postmaster.pid")),
    ];
    signal(&frozen, "STOP");
    let (code, v) = plan(&t);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "UNREACHABLE");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("member.{replica}")), "{message}");
    let (code, v) = drift(&t);
    assert_eq!(code, 2, "{v:#}");
    dangerous(&v, &format!("member.{replica}"));
    // Item 2: an apply that cannot see the cluster does nothing and records nothing.
    t.write_spec(2, &params("8MB", "128MB"));
    let before = state_bytes(&t);
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "UNREACHABLE");
    assert_eq!(state_bytes(&t), before, "the state records nothing");
    signal(&frozen, "CONT");
    t.apply();
    assert_eq!(plan(&t).0, 0);
    for (name, port) in t.members() {
        assert_eq!(t.psql(&name, port, "SHOW work_mem"), "8MB", "{name}");
    }

    // 2. A frozen etcd.
    let etcd = [pid_file_json(&t.data_dir().join("etcd/etcd.pid"))];
    signal(&etcd, "STOP");
    let (code, v) = plan(&t);
    assert_eq!(code, 1, "{v:#}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("dcs.etcd"),
        "{v:#}"
    );
    let (code, v) = drift(&t);
    assert_eq!(code, 2, "{v:#}");
    dangerous(&v, "dcs.etcd");
    // Item 7: who accepts writes, as the members say, not as the DCS last heard.
    let notes = v["data"]["clusters"][0]["notes"].to_string();
    assert!(notes.contains("the DCS cannot be read"), "{notes}");
    signal(&etcd, "CONT");
    converged(&t);

    // 3. PostgreSQL down behind a live Patroni (its data directory unreadable).
    let chmod = |mode: &str| {
        assert!(
            Command::new("chmod")
                .args([mode, data.to_str().unwrap()])
                .status()
                .unwrap()
                .success()
        );
    };
    chmod("000");
    wait_for(
        "Patroni to report the replica's PostgreSQL down",
        Duration::from_secs(90),
        || (patroni_state(&t, &replica) != "running").then_some(()),
    );
    let (code, v) = plan(&t);
    assert_eq!(code, 1, "{v:#}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("member.{replica}")) && message.contains("PostgreSQL"),
        "{message}"
    );
    let (code, v) = drift(&t);
    assert_eq!(code, 2, "{v:#}");
    dangerous(&v, &format!("member.{replica}"));
    chmod("700");
    converged(&t);

    // 4. Split brain: the replica's Patroni dies and its PostgreSQL is promoted by hand.
    signal(&[pid_file_json(&member_dir.join("patroni.pid"))], "KILL");
    let promote = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            &format!("{PG_BIN}/pg_ctl"),
            "promote",
            "-w",
            "-D",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(promote.status.success(), "{promote:?}");
    let (code, v) = plan(&t);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "SPLIT_BRAIN", "{v:#}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&replica) && message.contains("accept writes"),
        "{message}"
    );
    let (code, v) = drift(&t);
    assert_eq!(code, 2, "{v:#}");
    let item = dangerous(&v, "patroni.leader");
    assert!(
        item["message"].as_str().unwrap().starts_with("split brain"),
        "{item}"
    );
    let stop = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            &format!("{PG_BIN}/pg_ctl"),
            "stop",
            "-m",
            "fast",
            "-D",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(stop.status.success(), "{stop:?}");
    // Its Patroni is started again, rewinds it onto the leader's timeline, and it streams.
    converged(&t);
    wait_for("three members streaming", Duration::from_secs(90), || {
        let list = t.patronictl_list();
        (list.len() == 3
            && list
                .iter()
                .filter(|m| m["Role"] == "Replica")
                .all(|m| m["State"] == "streaming"))
        .then_some(())
    });

    // 5. A replica that cannot start. Its PostgreSQL gets a library that does not exist (in
    // its own postgresql.auto.conf, which pgdba does not manage for this parameter); the
    // rolling restart the spec asks for then fails at that member at once, not after the
    // whole gate timeout, and plan offers to rebuild it.
    let (_, replica) = leader_and_replica(&t);
    let rport = t.members().into_iter().find(|m| m.0 == replica).unwrap().1;
    t.psql(
        &replica,
        rport,
        "ALTER SYSTEM SET shared_preload_libraries = 'no_such_library'",
    );
    t.write_spec(2, &params("8MB", "256MB"));
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("will not recover by waiting"), "{message}");
    let (code, v) = plan(&t);
    assert_eq!(code, 2, "{v:#}");
    let rebuild = v["data"]["clusters"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == format!("member.{replica}") && c["operation"] == "reinit")
        .cloned()
        .unwrap_or_else(|| panic!("no rebuild of {replica} in {v:#}"));
    assert!(
        rebuild["data_loss"]
            .as_str()
            .unwrap()
            .contains("cloned again from the leader")
    );
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.json()["error"]["code"], "DATA_LOSS", "{r:?}");
    converged(&t);
    for (name, port) in t.members() {
        assert_eq!(
            t.psql(&name, port, "SHOW shared_buffers"),
            "256MB",
            "{name}"
        );
    }

    // 6. Everything killed, as a reboot would: plan starts it all again, drift says how bad.
    let _ = Command::new("pkill")
        .args(["-9", "-f", t.data_dir().to_str().unwrap()])
        .status();
    wait_for("every process gone", Duration::from_secs(30), || {
        let left = Command::new("pgrep")
            .args(["-f", t.data_dir().to_str().unwrap()])
            .output()
            .unwrap();
        left.stdout.is_empty().then_some(())
    });
    // Connections the killed processes had open linger in the kernel (FIN_WAIT) for up to
    // tcp_fin_timeout, and while they do their ports cannot be bound: plan says PORT_IN_USE
    // then, which is true. A reboot would have cleared them; here, wait until they are gone.
    let ports: Vec<u16> = (0..3)
        .flat_map(|i| [t.pg_port + i, t.api_port + i])
        .chain([t.etcd_port, t.etcd_port + 1])
        .collect();
    wait_for(
        "the killed processes' ports free",
        Duration::from_secs(90),
        || {
            ports
                .iter()
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
                .then_some(())
        },
    );
    let (code, v) = plan(&t);
    assert_eq!(code, 2, "{v:#}");
    let (code, v) = drift(&t);
    assert_eq!(code, 2, "{v:#}");
    dangerous(&v, "dcs.etcd");
    t.apply();
    converged(&t);

    // Issue 8, item 10: SIGTERM during an apply: no new action starts, the running one ends,
    // the state records what was done, and the lock is released at once.
    t.write_spec(2, &params("16MB", "128MB"));
    let args = [
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ];
    let child = t.spawn(&args);
    wait_for(
        "the rolling restart to begin",
        Duration::from_secs(60),
        || {
            t.members()
                .iter()
                .any(|(name, port)| {
                    t.try_psql(name, *port, "SHOW work_mem").as_deref() == Some("16MB")
                })
                .then_some(())
        },
    );
    signal(&[i32::try_from(child.id()).unwrap()], "TERM");
    let r = t.finish(&args, child);
    assert_eq!(r.code, 1, "{r:?}");
    let skipped = r.json()["data"]["result"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["message"] == "the apply was interrupted before it started")
        .count();
    assert!(skipped > 0, "{r:?}");
    let lock = t.run(&["state", "show", "faults", "--format", "json"]);
    assert!(lock.json()["data"]["lock"].is_null(), "{lock:?}");
    let state: Value = serde_json::from_slice(&state_bytes(&t)).unwrap();
    assert!(
        state["partial_applies"][0]["done"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "pg_parameter.shared_buffers"),
        "the state records what was done: {state:#}"
    );
    converged(&t);

    // 7. The secrets file lost: refused, never replaced by new passwords.
    let secrets = t.state_dir.join("faults.secrets.json");
    let kept = std::fs::read(&secrets).unwrap();
    std::fs::remove_file(&secrets).unwrap();
    for args in [
        vec!["plan", "-f", t.spec_str(), "--format", "json"],
        vec![
            "apply",
            "-f",
            t.spec_str(),
            "--auto-approve",
            "--format",
            "json",
        ],
    ] {
        let r = t.run(&args);
        assert_eq!(r.code, 1, "{r:?}");
        assert_eq!(r.json()["error"]["code"], "SECRETS_MISSING", "{r:?}");
    }
    assert!(!secrets.exists(), "no new secrets file was made");
    std::fs::write(&secrets, &kept).unwrap();
    std::fs::set_permissions(
        &secrets,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    // 8. The state lost while the cluster runs: no new lineage; the previous state is kept.
    let state = t.state_dir.join("faults.json");
    let prev = t.state_dir.join("faults.json.prev");
    assert!(prev.exists());
    let r = t.run(&["state", "show", "faults", "--format", "json"]);
    assert_eq!(r.json()["data"]["backup"]["path"], prev.to_str().unwrap());
    let kept = std::fs::read(&state).unwrap();
    std::fs::remove_file(&state).unwrap();
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "EXISTS_UNMANAGED", "{r:?}");
    assert!(
        r.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("faults.json.prev"),
        "{r:?}"
    );
    assert!(!state.exists(), "no new state was started");
    std::fs::write(&state, &kept).unwrap();
    let (code, p) = plan(&t);
    assert_eq!(code, 0, "{p}");
}

/// Issue 8, item 7: the `postgres` user owns the member directories and can plant symbolic
/// links there; pgdba, which runs as root, writes nothing through them. The planted links
/// point at root-owned files outside, which stay untouched; the cluster's root directory is
/// root's, so no link can be planted in place of a member directory.
#[test]
fn links_planted_by_the_postgres_user_are_not_followed() {
    let t = TestCluster::new("planted", 32200);
    t.write_spec(0, &params("4MB", "128MB"));
    t.apply();
    let member = t.data_dir().join("planted-0");
    let as_postgres = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .output()
            .unwrap()
    };
    // The root is root's: postgres cannot put a link where a member directory would go.
    let planted = t.data_dir().join("planted-1");
    let o = as_postgres(&["ln", "-s", "/etc", planted.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "postgres could write in the cluster's root"
    );
    let meta = std::fs::metadata(t.data_dir()).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);

    // Stop the member's Patroni (it stops PostgreSQL), then plant links where pgdba writes
    // when it starts the member: its log and its pidfile.
    signal(&[pid_file_json(&member.join("patroni.pid"))], "TERM");
    wait_for("the member to stop", Duration::from_secs(60), || {
        let left = Command::new("pgrep")
            .args(["-f", member.to_str().unwrap()])
            .output()
            .unwrap();
        left.stdout.is_empty().then_some(())
    });
    let outside = tempfile::tempdir().unwrap();
    let mut targets = Vec::new();
    for name in ["patroni.log", "patroni.pid"] {
        let target = outside.path().join(format!("{name}.target"));
        std::fs::write(&target, b"untouched\n").unwrap();
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        let link = member.join(name);
        let _ = std::fs::remove_file(&link);
        let o = as_postgres(&["ln", "-s", target.to_str().unwrap(), link.to_str().unwrap()]);
        assert!(o.status.success(), "{o:?}");
        targets.push(target);
    }
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "pgdba wrote through a planted link: {r:?}");
    for target in &targets {
        assert_eq!(
            std::fs::read_to_string(target).unwrap(),
            "untouched\n",
            "{} was written through a link",
            target.display()
        );
    }
    // Links gone, the member starts again.
    for name in ["patroni.log", "patroni.pid"] {
        std::fs::remove_file(member.join(name)).unwrap();
    }
    t.apply();
    assert_eq!(plan(&t).0, 0);
}
