//! Logical backups and backup schedules (issue 11): `backup create --type logical` on a real
//! local cluster (a primary and a replica, spec.backup), its dumps restored by hand as a DBA
//! would, listed beside pgBackRest's backups, kept to `retention.logical`, and a dump cut short
//! found damaged, naming the file; `backup schedule` printing systemd units and cron lines that
//! systemd itself accepts, installing them under a temporary root and removing them again; a
//! schedule cron cannot run refused by `validate`, naming the field. Ports 31100-31199.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{TestCluster, all_files, bin, fixture};

fn leader(t: &TestCluster) -> (String, u16) {
    let l = t
        .patronictl_list()
        .iter()
        .find(|m| m["Role"] == "Leader")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .unwrap();
    let port = t.members().into_iter().find(|(n, _)| n == &l).unwrap().1;
    (l, port)
}

/// psql on database `db` as the `postgres` OS user over the leader's socket.
fn psql_db(t: &TestCluster, member: &str, port: u16, db: &str, sql: &str) -> String {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-h"])
        .arg(t.socket_dir(member))
        .args(["-p", &port.to_string(), "-d", db, "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql on {member}/{db}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn create_logical(t: &TestCluster, extra: &[&str]) -> Value {
    let mut args = vec![
        "backup",
        "create",
        "-f",
        t.spec_str(),
        "--type",
        "logical",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let r = t.run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()["data"]["backup"].clone()
}

fn logical_rows(t: &TestCluster) -> Vec<Value> {
    let r = t.run(&["backup", "list", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()["data"]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "logical")
        .cloned()
        .collect()
}

#[test]
fn logical_backup_restores_lists_expires_and_finds_a_cut_dump() {
    let t = TestCluster::new("lgc", 31100);
    let repo = t.data_dir().join("repo");
    t.write_spec_with(
        1,
        &[("max_connections", "100")],
        &format!(
            "  backup:\n    repository: {{path: {}}}\n    retention: {{full: 2, logical: 2}}\n    schedule: {{logical: \"30 2 * * *\", verify_restore: \"0 5 * * 0\"}}\n",
            repo.display()
        ),
    );
    t.apply();
    let (l, port) = leader(&t);
    t.psql(&l, port, "CREATE DATABASE app");
    psql_db(
        &t,
        &l,
        port,
        "app",
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 5000) g",
    );

    // Every database but the templates, one dump each, read back whole.
    let b = create_logical(&t, &[]);
    assert_eq!(b["type"], "logical", "{b:#}");
    assert_eq!(b["verified"], true, "{b:#}");
    assert_eq!(
        b["databases"],
        serde_json::json!(["app", "postgres"]),
        "{b:#}"
    );
    let id = b["id"].as_str().unwrap().to_owned();
    assert!(id.ends_with('L') && id.len() == 16, "{id}");
    for field in [
        "started_at",
        "stopped_at",
        "duration_ms",
        "size_bytes",
        "lsn_start",
    ] {
        assert!(!b[field].is_null(), "{field} in {b:#}");
    }
    assert!(b.get("wal_start").is_some() && b.get("wal_stop").is_some());
    let dir = repo.join("logical").join("lgc").join(&id);
    let dump = dir.join("app.dump");
    assert!(dump.is_file() && dir.join("postgres.dump").is_file());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["id"], id.as_str());
    assert_eq!(
        manifest["databases"][0]["size_bytes"].as_u64().unwrap(),
        std::fs::metadata(&dump).unwrap().len()
    );

    // Restored by hand into a new database of the same cluster: the same rows.
    t.psql(&l, port, "CREATE DATABASE app_copy");
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", "pg_restore", "--no-owner", "-h"])
        .arg(t.socket_dir(&l))
        .args(["-p", &port.to_string(), "-d", "app_copy"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore: {out:?}");
    assert_eq!(
        psql_db(&t, &l, port, "app_copy", "SELECT count(*) FROM orders"),
        "5000"
    );
    t.psql(&l, port, "DROP DATABASE app_copy");

    // Listed beside pgBackRest's backups (none here), outside the recoverable window.
    let r = t.run(&["backup", "list", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    let rows = v["data"]["backups"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v:#}");
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["type"], "logical");
    assert!(v["data"]["window"].is_null(), "{v:#}");
    let table = t.run(&["backup", "list", "-f", t.spec_str(), "--format", "table"]);
    assert!(
        table.stdout.contains(&format!("{id}  logical")),
        "{table:?}"
    );

    // One database only; a database that does not exist is named.
    let one = create_logical(&t, &["--database", "app"]);
    assert_eq!(one["databases"], serde_json::json!(["app"]));
    let r = t.run(&[
        "backup",
        "create",
        "-f",
        t.spec_str(),
        "--type",
        "logical",
        "--database",
        "nope",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "NOT_FOUND");
    assert!(r.stdout.contains("no database nope"), "{r:?}");

    // retention.logical: 2. A third backup removes the first, and a directory a backup that
    // died left (no manifest) goes too.
    let dead = repo.join("logical").join("lgc").join("20200101-000000L");
    std::fs::create_dir(&dead).unwrap();
    let third = create_logical(&t, &[]);
    assert_eq!(
        third["expired"],
        serde_json::json!(["20200101-000000L", id.as_str()]),
        "{third:#}"
    );
    assert!(!dir.exists() && !dead.exists());
    let kept: Vec<String> = logical_rows(&t)
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kept,
        [
            one["id"].as_str().unwrap().to_owned(),
            third["id"].as_str().unwrap().to_owned()
        ]
    );

    // The newest verifies; cut its app dump short and it no longer does, the file named.
    let third_id = third["id"].as_str().unwrap();
    let r = t.run(&["backup", "verify", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["data"]["verified"], true);
    let cut = repo
        .join("logical")
        .join("lgc")
        .join(third_id)
        .join("app.dump");
    let len = std::fs::metadata(&cut).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&cut).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let r = t.run(&[
        "backup",
        "verify",
        "-f",
        t.spec_str(),
        "--backup-id",
        third_id,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["code"], "VERIFY_FAILED", "{v:#}");
    let path = cut.display().to_string();
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&path),
        "{v:#}"
    );
    assert_eq!(v["data"]["verified"], false);
    let damaged: Vec<&Value> = v["data"]["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["ok"] == false)
        .collect();
    assert_eq!(damaged.len(), 1, "{v:#}");
    assert_eq!(damaged[0]["database"], "app");
    // The same cut past the table of contents, with the manifest's size and hash out of the
    // way: pg_restore reading the data finds it (--list alone would not).
    let manifest_path = cut.with_file_name("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let sha = Command::new("sha256sum").arg(&cut).output().unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    for d in m["databases"].as_array_mut().unwrap() {
        if d["database"] == "app" {
            d["size_bytes"] = Value::from(len / 2);
            d["sha256"] = Value::from(sha.clone());
        }
    }
    std::fs::write(&manifest_path, serde_json::to_string(&m).unwrap()).unwrap();
    let r = t.run(&[
        "backup",
        "verify",
        "-f",
        t.spec_str(),
        "--backup-id",
        third_id,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&path) && message.contains("pg_restore cannot read its data"),
        "{message}"
    );

    // An id that is not there is named, with the ones that are.
    let r = t.run(&[
        "backup",
        "verify",
        "-f",
        t.spec_str(),
        "--backup-id",
        "20200101-000000F",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "NOT_FOUND");

    // The cluster's history records each logical backup.
    let history = std::fs::read_to_string(t.state_dir.join("lgc.history.json")).unwrap();
    assert!(
        history.contains(&format!("logical backup {third_id} of 2 database(s)")),
        "{history}"
    );

    // An installed schedule (under a temporary root, for cron) that goes missing is drift.
    let root = t.data_dir().join("schedule-root");
    std::fs::create_dir_all(&root).unwrap();
    t.envs.borrow_mut().extend([
        ("PGDBA_SCHEDULE_ROOT".to_owned(), root.display().to_string()),
        ("PGDBA_SCHEDULE_INIT".to_owned(), "cron".to_owned()),
    ]);
    let schedule_drift = |t: &TestCluster| -> (i32, Vec<Value>) {
        let r = t.run(&["drift", "-f", t.spec_str(), "--format", "json"]);
        assert!(r.code == 0 || r.code == 2, "{r:?}");
        let items = r.json()["data"]["clusters"][0]["drift"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["address"] == "backup.schedule")
            .cloned()
            .collect();
        (r.code, items)
    };
    let install = |t: &TestCluster, flag: &str| {
        let r = t.run(&[
            "backup",
            "schedule",
            "-f",
            t.spec_str(),
            flag,
            "--format",
            "json",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()
    };
    let v = install(&t, "--install");
    let types: Vec<&str> = v["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["logical", "verify-restore"], "{v:#}");
    let cron = root.join("etc/cron.d/pgdba-backup-lgc");
    let text = std::fs::read_to_string(&cron).unwrap();
    assert!(text.contains("backup verify-restore -f"), "{text}");
    assert!(schedule_drift(&t).1.is_empty());
    std::fs::remove_file(&cron).unwrap();
    let (code, items) = schedule_drift(&t);
    assert_eq!(code, 2);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["class"], "dangerous");
    assert_eq!(items[0]["before"], "/etc/cron.d/pgdba-backup-lgc");
    install(&t, "--install");
    assert!(schedule_drift(&t).1.is_empty());
    install(&t, "--uninstall");
    assert!(!t.state_dir.join("lgc.schedule.json").exists());
    assert!(!cron.exists());
    assert!(schedule_drift(&t).1.is_empty());
}

/// A spec with a schedule, for the tests that need no cluster.
fn schedule_spec(dir: &Path, schedule: &str) -> PathBuf {
    let spec = dir.join("sched.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {{name: sched}}\nspec:\n  provider:\n    local: {{data_dir: {data}, pg_port: 31150, api_port: 31160, etcd_port: 31170}}\n  postgres: {{version: 15}}\n  replicas: 1\n  backup:\n    repository: {{path: {data}/repo}}\n    schedule:\n{schedule}",
            data = dir.join("data").display()
        ),
    )
    .unwrap();
    spec
}

fn pgdba(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> (i32, Value) {
    let mut c = Command::new(bin());
    c.args(args)
        .env("PGDBA_STATE_DIR", dir.join("state"))
        .env_remove("PGDBA_SCHEDULE_ROOT")
        .env_remove("PGDBA_SCHEDULE_INIT")
        .current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 101, "panicked: {out:?}");
    let v =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
    (code, v)
}

#[test]
fn backup_schedule_prints_installs_and_uninstalls_units_and_cron_lines() {
    let dir = tempfile::tempdir().unwrap();
    let spec = schedule_spec(
        dir.path(),
        "      full: \"0 1 * * 0\"\n      incremental: \"0 1 * * 1-6\"\n      logical: \"30 3 1,15 * mon\"\n",
    );
    let spec_s = spec.to_str().unwrap();
    let (code, v) = pgdba(
        dir.path(),
        &["backup", "schedule", "-f", spec_s, "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{v:#}");
    let entries = v["data"]["entries"].as_array().unwrap();
    let types: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["full", "incremental", "logical"]);
    assert_eq!(entries[0]["cron"], "0 1 * * 0");
    assert_eq!(
        entries[0]["on_calendar"],
        serde_json::json!(["Sun *-*-* 01:00:00"])
    );
    assert_eq!(
        entries[2]["on_calendar"],
        serde_json::json!(["*-*-01,15 03:30:00", "Mon *-*-* 03:30:00"])
    );
    let spec_abs = std::fs::canonicalize(&spec).unwrap();
    let command: Vec<&str> = entries[1]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(Path::new(command[0]).is_absolute(), "{command:?}");
    assert_eq!(
        &command[1..],
        [
            "backup",
            "create",
            "-f",
            spec_abs.to_str().unwrap(),
            "--type",
            "incremental",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "--format",
            "json"
        ]
    );
    // systemd reads every OnCalendar= the way cron reads the expression.
    for e in entries {
        for c in e["on_calendar"].as_array().unwrap() {
            let out = Command::new("systemd-analyze")
                .args(["calendar", c.as_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "systemd-analyze calendar {c}: {out:?}"
            );
        }
    }
    let units = entries[0]["units"].as_array().unwrap();
    assert_eq!(
        units[0]["path"],
        "/etc/systemd/system/pgdba-backup-sched-full.service"
    );
    assert!(
        units[1]["content"]
            .as_str()
            .unwrap()
            .contains("OnCalendar=Sun *-*-* 01:00:00\nPersistent=true\n")
    );
    let cron = v["data"]["cron_file"]["content"].as_str().unwrap();
    assert!(cron.contains(&format!(
        "0 1 * * 0 root {} backup create -f {} --type full",
        command[0],
        spec_abs.display()
    )));

    // Installed under a temporary root, for cron (as on a machine systemd does not run).
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let env: [(&str, &Path); 2] = [
        ("PGDBA_SCHEDULE_ROOT", &root),
        ("PGDBA_SCHEDULE_INIT", Path::new("cron")),
    ];
    let install = |env: &[(&str, &Path)], flag: &str| {
        pgdba(
            dir.path(),
            &["backup", "schedule", "-f", spec_s, flag, "--format", "json"],
            env,
        )
    };
    let (code, v) = install(&env, "--install");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["data"]["init"], "cron");
    assert_eq!(
        v["data"]["files"],
        serde_json::json!([{"path": "/etc/cron.d/pgdba-backup-sched", "action": "written"}])
    );
    assert_eq!(
        v["data"]["entries"][0]["files"],
        serde_json::json!(["/etc/cron.d/pgdba-backup-sched"])
    );
    let written = std::fs::read_to_string(root.join("etc/cron.d/pgdba-backup-sched")).unwrap();
    assert_eq!(written, cron);
    let (code, v) = install(&env, "--install");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["data"]["files"][0]["action"], "unchanged");

    // For systemd instead: the units come, the cron.d file goes; systemctl is not run under
    // another root.
    let env_systemd: [(&str, &Path); 2] = [
        ("PGDBA_SCHEDULE_ROOT", &root),
        ("PGDBA_SCHEDULE_INIT", Path::new("systemd")),
    ];
    let (code, v) = install(&env_systemd, "--install");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["data"]["systemctl"], serde_json::json!([]));
    let actions: Vec<(String, String)> = v["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(actions.len(), 7, "{actions:?}");
    assert!(actions.contains(&(
        "/etc/systemd/system/pgdba-backup-sched-logical.timer".to_owned(),
        "written".to_owned()
    )));
    assert!(actions.contains(&(
        "/etc/cron.d/pgdba-backup-sched".to_owned(),
        "removed".to_owned()
    )));
    let timer =
        std::fs::read_to_string(root.join("etc/systemd/system/pgdba-backup-sched-logical.timer"))
            .unwrap();
    assert!(timer.contains("OnCalendar=*-*-01,15 03:30:00\nOnCalendar=Mon *-*-* 03:30:00\n"));

    // --uninstall leaves nothing.
    let (code, v) = install(&env, "--uninstall");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["data"]["files"].as_array().unwrap().len(), 6, "{v:#}");
    let left: Vec<PathBuf> = all_files(&root);
    assert!(left.is_empty(), "{left:?}");

    // No schedule: nothing to install, said so.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    let spec = schedule_spec(&bare, "      {}\n");
    let (code, v) = pgdba(
        &bare,
        &[
            "backup",
            "schedule",
            "-f",
            spec.to_str().unwrap(),
            "--install",
            "--format",
            "json",
        ],
        &env,
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "USAGE");
}

#[test]
fn a_schedule_cron_cannot_run_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = schedule_spec(
        dir.path(),
        "      full: \"0 1 * * 0\"\n      diff: \"0 25 * * *\"\n      logical: \"@reboot\"\n",
    );
    let (code, v) = pgdba(
        dir.path(),
        &["validate", "-f", spec.to_str().unwrap(), "--format", "json"],
        &[],
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["error"]["code"], "INVALID_SPEC");
    let text = v.to_string();
    assert!(
        text.contains(
            "spec.backup.schedule.diff: hour `25`: 25 is out of range: hour takes 0 to 23"
        ),
        "{v:#}"
    );
    assert!(
        text.contains("spec.backup.schedule.logical: @reboot is not a time of day"),
        "{v:#}"
    );
    // file:line:column of the value.
    assert!(text.contains("sched.yaml:14:"), "{v:#}");
}

/// A spec is written in YAML or KDL alike: `spec.backup.schedule` and `retention.logical` too.
#[test]
fn the_schedule_reads_the_same_in_yaml_and_kdl() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("s.yaml");
    std::fs::write(
        &yaml,
        "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: bk}\nspec:\n  provider:\n    local: {}\n  postgres: {version: 15}\n  replicas: 1\n  backup:\n    repository: {path: /var/lib/pgdba/backups}\n    retention: {full: 3, logical: 14}\n    schedule: {full: \"0 1 * * 0\", logical: \"30 3 * * *\"}\n",
    )
    .unwrap();
    let kdl = dir.path().join("s.kdl");
    std::fs::write(
        &kdl,
        "apiVersion \"pgdba/v1\"\nkind Cluster\nmetadata {\n    name bk\n}\nspec {\n    provider {\n        local {}\n    }\n    postgres {\n        version 15\n    }\n    replicas 1\n    backup {\n        repository path=\"/var/lib/pgdba/backups\"\n        retention full=3 logical=14\n        schedule full=\"0 1 * * 0\" logical=\"30 3 * * *\"\n    }\n}\n",
    )
    .unwrap();
    let y = pgdba::spec::load_file(&yaml).unwrap();
    let k = pgdba::spec::load_file(&kdl).unwrap();
    assert_eq!(y.spec, k.spec);
    let b = y.spec.spec.backup.unwrap();
    assert_eq!(b.retention.logical, 14);
    let s = b.schedule.unwrap();
    assert_eq!(s.full.as_deref(), Some("0 1 * * 0"));
    assert_eq!(s.logical.as_deref(), Some("30 3 * * *"));
    assert_eq!(s.diff, None);
    // Without `logical`, seven logical backups are kept.
    let d = pgdba::spec::load_file(&fixture("good/backup.yaml")).unwrap();
    assert_eq!(d.spec.spec.backup.unwrap().retention.logical, 7);
}
