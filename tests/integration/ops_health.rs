//! `health check` and `health report` on a real plain PostgreSQL 15 server (no Patroni, named
//! by `PGDBA_PG_*`): the contract's fields and exit codes, the disk check of a local data
//! directory, a lock wait and an idle transaction seen as they happen, a failing archiver
//! (crit, exit 2), HTML that escapes what the database says, and `UNREACHABLE` when nothing
//! answers. The cluster-side checks (a stopped replica, Patroni, the DCS) are unit-tested in
//! `ops::health` and run on real clusters by the cluster tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{PlainPg, Run, bin, wait_for};

const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

/// Every check a plain primary runs.
const PLAIN_CHECKS: &[&str] = &[
    "reachable",
    "connections",
    "long_transactions",
    "idle_in_transaction",
    "lock_waits",
    "xid_wraparound",
    "table_bloat",
    "checkpoints",
    "pending_restart",
    "checksums",
    "archiver",
    "disk",
];

/// A psql session kept open (its stdin stays open) in `db`, named `app`; its statements run
/// as they are written. Dropping it ends the backend and the process.
struct Session<'a> {
    pg: &'a PlainPg,
    app: String,
    child: Child,
}

impl<'a> Session<'a> {
    fn open(pg: &'a PlainPg, db: &str, app: &str, sql: &str) -> Session<'a> {
        let mut child = Command::new("runuser")
            .args(["-u", "postgres", "--", PSQL, "-XAtq", "-h"])
            .arg(pg.socket_dir())
            .args(["-p", &pg.port.to_string(), "-d"])
            .arg(format!("dbname='{db}' application_name={app}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(sql.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        Session {
            pg,
            app: app.to_owned(),
            child,
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // Not pg.psql: it asserts, and a panic while unwinding aborts.
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", PSQL, "-XAtq", "-h"])
            .arg(self.pg.socket_dir())
            .args(["-p", &self.pg.port.to_string(), "-c"])
            .arg(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
                self.app
            ))
            .output();
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn checks(j: &Value) -> &Vec<Value> {
    j["data"]["checks"].as_array().expect("data.checks[]")
}

fn the_check<'j>(j: &'j Value, name: &str) -> &'j Value {
    checks(j)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {j:#}"))
}

fn health_json(pg: &PlainPg) -> (Run, Value) {
    let run = pg.pgdba(&["health", "check", "--format", "json"]);
    let j = run.json();
    (run, j)
}

#[test]
fn health_check_on_a_healthy_plain_server_is_not_crit_and_has_the_contract_fields() {
    let pg = PlainPg::start(32650, &[]);
    let (run, j) = health_json(&pg);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(j["success"], true);
    assert_eq!(j["command"], "health check");
    let status = j["data"]["status"].as_str().unwrap();
    assert!(status == "ok" || status == "warn", "{j:#}");
    for c in checks(&j) {
        for field in ["name", "member", "status", "value", "threshold", "message"] {
            assert!(c.get(field).is_some(), "check without {field}: {c}");
        }
        assert!(
            ["ok", "warn"].contains(&c["status"].as_str().unwrap()),
            "a healthy server has a crit check: {c}"
        );
        assert!(!c["message"].as_str().unwrap().is_empty(), "{c}");
    }
    for name in PLAIN_CHECKS {
        the_check(&j, name);
    }
    // The data directory is local (data_directory, read as superuser): its disk is measured.
    let disk = the_check(&j, "disk");
    assert_eq!(disk["member"], format!("127.0.0.1:{}", pg.port));
    assert_eq!(
        disk["value"]["path"],
        pg.data_dir().display().to_string(),
        "{disk}"
    );
    let used = disk["value"]["used_pct"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&used), "{disk}");
    assert!(
        disk["threshold"]
            .as_str()
            .unwrap()
            .contains("warn 80%, crit 90%")
    );
    // Archiving is off by default: ok, and said so.
    let archiver = the_check(&j, "archiver");
    assert_eq!(archiver["status"], "ok");
    assert!(
        archiver["message"]
            .as_str()
            .unwrap()
            .contains("archiving off")
    );
    // Our own session is not counted as a long transaction or a lock wait.
    assert_eq!(the_check(&j, "lock_waits")["value"]["waiting"], 0);
    assert_eq!(the_check(&j, "idle_in_transaction")["value"]["sessions"], 0);
    // No Patroni, no DCS, no standby: skipped, each with a reason.
    let skipped = j["data"]["skipped"].as_array().unwrap();
    for name in ["patroni_member", "patroni_leader", "dcs", "replication"] {
        let s = skipped
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in data.skipped: {j:#}"));
        assert!(!s["reason"].as_str().unwrap().is_empty());
    }

    // The same checks for people.
    let table = pg.pgdba(&["health", "check", "--format", "table"]);
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.starts_with("STATUS"), "{table:?}");
    assert!(table.stdout.contains("\nHealth: "), "{table:?}");

    // The report: Markdown by default, HTML, and the JSON data.
    let md = pg.pgdba(&["health", "report"]);
    assert_eq!(md.code, 0, "{md:?}");
    assert!(
        md.stdout.starts_with(&format!(
            "# Health report: PostgreSQL server 127.0.0.1:{}",
            pg.port
        )),
        "{md:?}"
    );
    assert!(
        md.stdout
            .contains("| Status | Check | Member | Message | Threshold |")
    );
    assert!(md.stdout.contains("`disk`"));
    let html = pg.pgdba(&["health", "report", "--format", "html"]);
    assert_eq!(html.code, 0, "{html:?}");
    assert!(html.stdout.starts_with("<!DOCTYPE html>"), "{html:?}");
    assert!(html.stdout.contains("<html") && html.stdout.trim_end().ends_with("</html>"));
    let report = pg.pgdba(&["health", "report", "--format", "json"]);
    assert_eq!(report.code, 0, "{report:?}");
    assert_eq!(report.json()["command"], "health report");
    assert_eq!(
        report.json()["data"]["checks"].as_array().unwrap().len(),
        checks(&j).len()
    );
}

#[test]
fn health_check_shows_a_lock_wait_and_an_idle_transaction_and_html_escapes_their_names() {
    let pg = PlainPg::start(32651, &[]);
    // A database whose name is markup: the report must not let it through.
    let db = "<script>alert(1)</script>";
    pg.psql(&format!("CREATE DATABASE \"{db}\""));
    let create = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            PSQL,
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
        ])
        .arg(pg.socket_dir())
        .args(["-p", &pg.port.to_string(), "-d"])
        .arg(format!("dbname='{db}'"))
        .args(["-c", "CREATE TABLE t (i int)"])
        .output()
        .unwrap();
    assert!(create.status.success(), "{create:?}");

    // One session takes the table's lock and stays idle in its transaction; another waits.
    let holder = Session::open(
        &pg,
        db,
        "health_holder",
        "BEGIN;\nLOCK TABLE t IN ACCESS EXCLUSIVE MODE;",
    );
    let holder_pid: i64 = wait_for(
        "the holder idle in its transaction",
        Duration::from_secs(30),
        || {
            pg.psql(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'health_holder' \
             AND state = 'idle in transaction'",
            )
            .parse()
            .ok()
        },
    );
    let waiter = Session::open(&pg, db, "health_waiter", "SELECT count(*) FROM t;");
    wait_for(
        "the waiter to wait for the lock",
        Duration::from_secs(30),
        || {
            (pg.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'health_waiter' \
             AND wait_event_type = 'Lock'",
            ) == "1")
                .then_some(())
        },
    );

    let (run, j) = health_json(&pg);
    assert!(run.code == 0 || run.code == 2, "{run:?}");
    assert_eq!(j["success"], true);

    let locks = the_check(&j, "lock_waits");
    assert_eq!(locks["value"]["waiting"], 1, "{locks}");
    assert_eq!(locks["value"]["database"], db, "{locks}");
    let blockers: Vec<i64> = locks["value"]["blocked_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    assert_eq!(blockers, vec![holder_pid], "{locks}");
    assert!(
        locks["message"]
            .as_str()
            .unwrap()
            .contains("wait for a lock")
    );
    assert!(
        locks["threshold"]
            .as_str()
            .unwrap()
            .contains("warn 10 s, crit 60 s")
    );

    let idle = the_check(&j, "idle_in_transaction");
    assert_eq!(idle["value"]["sessions"], 1, "{idle}");
    assert_eq!(idle["value"]["pid"], holder_pid, "{idle}");
    assert_eq!(idle["value"]["database"], db, "{idle}");

    // Both are open transactions; the waiter's is not idle, and neither is old yet.
    let long = the_check(&j, "long_transactions");
    assert!(long["value"]["open"].as_i64().unwrap() >= 1, "{long}");
    assert_eq!(long["status"], "ok", "{long}");

    // The HTML report escapes the database's name wherever it appears.
    let html = pg.pgdba(&["health", "report", "--format", "html"]);
    assert!(html.code == 0 || html.code == 2, "{html:?}");
    assert!(html.stdout.contains("<html"), "{html:?}");
    assert!(
        !html.stdout.contains("<script"),
        "unescaped: {}",
        html.stdout
    );
    assert!(
        html.stdout
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    let md = pg.pgdba(&["health", "report", "--format", "markdown"]);
    assert!(md.code == 0 || md.code == 2, "{md:?}");
    assert!(!md.stdout.contains("<script"), "unescaped: {}", md.stdout);
    assert!(md.stdout.contains("`lock_waits`"));

    drop(waiter);
    drop(holder);
    let (_, j) = health_json(&pg);
    assert_eq!(the_check(&j, "lock_waits")["value"]["waiting"], 0);
}

#[test]
fn health_check_is_crit_and_exits_2_when_archiving_fails() {
    // archive_command `false` fails every time, and nothing was ever archived.
    let pg = PlainPg::start(32652, &["archive_mode = on", "archive_command = 'false'"]);
    pg.psql("CREATE TABLE filler AS SELECT g FROM generate_series(1, 1000) g");
    pg.psql("SELECT pg_switch_wal()");
    wait_for("the archiver to fail", Duration::from_secs(60), || {
        (pg.psql("SELECT failed_count FROM pg_stat_archiver") != "0").then_some(())
    });
    let (run, j) = health_json(&pg);
    assert_eq!(run.code, 2, "{run:?}");
    // Crit is a finding, not an error: the envelope says success.
    assert_eq!(j["success"], true);
    assert!(j["error"].is_null());
    assert_eq!(j["data"]["status"], "crit");
    let archiver = the_check(&j, "archiver");
    assert_eq!(archiver["status"], "crit", "{archiver}");
    assert_eq!(archiver["value"]["failing"], true);
    assert!(
        archiver["message"]
            .as_str()
            .unwrap()
            .contains("nothing was ever archived"),
        "{archiver}"
    );
    let md = pg.pgdba(&["health", "report"]);
    assert_eq!(md.code, 2, "{md:?}");
    assert!(md.stdout.contains("**Status: CRIT**"), "{md:?}");
    assert!(md.stdout.contains("## Needs attention"), "{md:?}");
}

#[test]
fn health_check_fails_unreachable_when_no_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["health", "check", "--format", "json"])
        .env("PGDBA_PG_HOST", "127.0.0.1")
        .env("PGDBA_PG_PORT", "32699")
        .env("PGDBA_PG_USER", "postgres")
        .env("PGDBA_PG_PASSWORD", "none")
        .env("PGDBA_STATE_DIR", dir.path().join("state"))
        .env_remove("PGDBA_LOG")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let j: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["success"], false);
    assert_eq!(j["error"]["code"], "UNREACHABLE");
    // The checks that ran still say what failed, for the member.
    let reach = the_check(&j, "reachable");
    assert_eq!(reach["status"], "crit");
    assert_eq!(reach["member"], "127.0.0.1:32699");
    assert!(
        reach["message"]
            .as_str()
            .unwrap()
            .contains("does not answer")
    );
}
