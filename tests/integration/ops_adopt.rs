//! Adopting a Patroni cluster pgdba did not create (issue 10, item 1): a cluster a script
//! builds by hand (its own etcd, three members, hand-written patroni.yml files) is adopted with
//! `cluster connect`; the written spec plans clean; a parameter change through `apply` reaches
//! every member through Patroni's API; `destroy` is refused; `cluster forget` leaves it
//! running; the hand-made cluster is intact afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Run, bin, run_pgdba, wait_for};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/handmade-patroni.sh"
);
const BASE: u16 = 30600;
const SUPERUSER_PASSWORD: &str = "handmade-super";

/// The hand-made cluster; dropping it stops it.
struct Handmade {
    dir: tempfile::TempDir,
}

impl Handmade {
    fn start() -> Handmade {
        let dir = tempfile::Builder::new()
            .prefix("pgdba-handmade-")
            .tempdir()
            .unwrap();
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("start")
            .arg(dir.path().join("cluster"))
            .arg(BASE.to_string())
            .output()
            .unwrap();
        let h = Handmade { dir };
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ready",
            "the hand-made cluster did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        h
    }

    fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    /// `patronictl list` of the hand-made cluster, by its own configuration.
    fn list(&self) -> Vec<Value> {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("status")
            .arg(self.cluster_dir())
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    fn psql(&self, port: u16, sql: &str) -> String {
        let out = Command::new("/usr/lib/postgresql/15/bin/psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-XAtqc",
                sql,
            ])
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .env("PGDATABASE", "postgres")
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn pgdba(&self, args: &[&str], transcript: &mut String) -> Run {
        let mut c = Command::new(bin());
        c.args(args)
            .env("PGDBA_STATE_DIR", self.dir.path().join("state"))
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .env_remove("PGDBA_LOG")
            .current_dir(self.dir.path());
        let run = run_pgdba(c, args);
        transcript.push_str(&run.stdout);
        transcript.push_str(&run.stderr);
        run
    }
}

impl Drop for Handmade {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(self.cluster_dir())
            .output();
    }
}

fn healthy(list: &[Value]) -> bool {
    list.len() == 3
        && list
            .iter()
            .filter(|m| m["Role"] == "Leader" && m["State"] == "running")
            .count()
            == 1
        && list.iter().filter(|m| m["State"] == "streaming").count() == 2
}

fn add_parameter(spec: &Path, name: &str, value: &str) {
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    doc["spec"]["postgres"]["parameters"][name] = serde_yaml::Value::String(value.to_owned());
    std::fs::write(spec, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

#[test]
fn a_hand_made_patroni_cluster_is_adopted_managed_and_never_destroyed() {
    let hm = Handmade::start();
    let mut transcript = String::new();
    let spec = hm.dir.path().join("hm.yaml");
    let spec_s = spec.to_str().unwrap();
    let url = format!("http://127.0.0.1:{}", BASE + 10);

    // A wrong password fails the pre-flight, naming PostgreSQL; nothing is recorded.
    let out = Command::new(bin())
        .args([
            "cluster",
            "connect",
            "--patroni-url",
            &url,
            "--name",
            "hm",
            "--format",
            "json",
        ])
        .args(["--write-spec", spec_s])
        .env("PGDBA_STATE_DIR", hm.dir.path().join("state"))
        .env("PGPASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "UNREACHABLE", "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pre-flight"),
        "{v:#}"
    );
    assert!(!spec.exists());

    // Adopt.
    let r = hm.pgdba(
        &[
            "cluster",
            "connect",
            "--patroni-url",
            &url,
            "--name",
            "hm",
            "--write-spec",
            spec_s,
            "--format",
            "json",
        ],
        &mut transcript,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["data"]["adopted"], true, "{v:#}");
    assert_eq!(v["data"]["members"].as_array().unwrap().len(), 3, "{v:#}");
    assert!(
        v["data"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "app_owner"),
        "{v:#}"
    );
    assert!(
        v["data"]["databases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "appdb"),
        "{v:#}"
    );

    // The written spec plans clean.
    let r = hm.pgdba(
        &[
            "plan",
            "-f",
            spec_s,
            "--detailed-exitcode",
            "--format",
            "json",
        ],
        &mut transcript,
    );
    assert_eq!(
        r.code,
        0,
        "the adopted cluster's spec plans clean: {r:?}\n{}",
        std::fs::read_to_string(&spec).unwrap()
    );

    // state show and cluster list say it is adopted; cluster status reads it.
    let r = hm.pgdba(
        &["state", "show", "hm", "--format", "json"],
        &mut transcript,
    );
    assert_eq!(r.json()["data"]["provider"], "adopted", "{r:?}");
    let r = hm.pgdba(
        &["cluster", "status", "--name", "hm", "--format", "json"],
        &mut transcript,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["data"]["members"].as_array().unwrap().len(), 3);

    // A parameter change through apply reaches every member, through Patroni's API.
    add_parameter(&spec, "work_mem", "8MB");
    let r = hm.pgdba(
        &[
            "plan",
            "-f",
            spec_s,
            "--detailed-exitcode",
            "--format",
            "json",
        ],
        &mut transcript,
    );
    assert_eq!(r.code, 2, "{r:?}");
    let r = hm.pgdba(
        &["apply", "-f", spec_s, "--auto-approve", "--format", "json"],
        &mut transcript,
    );
    assert_eq!(r.code, 0, "{r:?}");
    for port in [BASE, BASE + 1, BASE + 2] {
        wait_for(
            "work_mem 8MB on every member",
            Duration::from_secs(60),
            || (hm.psql(port, "SHOW work_mem") == "8MB").then_some(()),
        );
    }

    // config apply: parameters from a file written into the spec, then planned and applied.
    let params = hm.dir.path().join("params.yaml");
    std::fs::write(&params, "maintenance_work_mem: 96MB\n").unwrap();
    let r = hm.pgdba(
        &[
            "config",
            "apply",
            "-f",
            spec_s,
            "--from",
            params.to_str().unwrap(),
            "--auto-approve",
            "--format",
            "json",
        ],
        &mut transcript,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(
        v["data"]["parameters"]["maintenance_work_mem"]["after"], "96MB",
        "{v:#}"
    );
    for port in [BASE, BASE + 1, BASE + 2] {
        wait_for(
            "maintenance_work_mem 96MB on every member",
            Duration::from_secs(60),
            || (hm.psql(port, "SHOW maintenance_work_mem") == "96MB").then_some(()),
        );
    }
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.contains("maintenance_work_mem: 96MB"), "{text}");
    let r = hm.pgdba(
        &[
            "plan",
            "-f",
            spec_s,
            "--detailed-exitcode",
            "--format",
            "json",
        ],
        &mut transcript,
    );
    assert_eq!(r.code, 0, "{r:?}");

    // destroy is refused, whatever the flags.
    let r = hm.pgdba(
        &[
            "destroy",
            "-f",
            spec_s,
            "--confirm",
            "--allow-production",
            "--format",
            "json",
        ],
        &mut transcript,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "ADOPTED", "{r:?}");

    // The password is only in the 0600 secrets file.
    for f in crate::support::all_files(&hm.dir.path().join("state")) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        if f.to_string_lossy().ends_with(".secrets.json") {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
            continue;
        }
        assert!(
            !text.contains(SUPERUSER_PASSWORD),
            "{} holds the password",
            f.display()
        );
    }

    // forget: out of the state, the cluster untouched.
    let r = hm.pgdba(
        &["cluster", "forget", "hm", "--format", "json"],
        &mut transcript,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = hm.pgdba(
        &["state", "show", "hm", "--format", "json"],
        &mut transcript,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        healthy(&hm.list()),
        "the hand-made cluster is intact: {:#?}",
        hm.list()
    );
    assert_eq!(
        hm.psql(
            BASE,
            "SELECT count(*) FROM pg_database WHERE datname = 'appdb'"
        ),
        "1"
    );

    assert!(
        !transcript.contains(SUPERUSER_PASSWORD),
        "the superuser's password was printed"
    );
}
