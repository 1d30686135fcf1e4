//! Backups with pgBackRest (`ops::backup`) against a real PostgreSQL 15 that archives its WAL
//! with pgBackRest into a repository in the test's temp dir: taking backups, reading the
//! repository, and the restore test into a scratch server, passing on a good backup and
//! failing, naming the file, on a damaged one. Ports 30700-30799 (30797-30799 are the unit
//! tests').
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pgdba::ops::Server;
use pgdba::ops::backup::{
    self, Archiver, BackupError, Beside, CheckStatus, CreateOptions, Kind, NewestSource,
    StanzaStatus, VerifyOptions, VerifyStatus,
};
use pgdba::providers::{ProviderError, Ran};
use serde_json::Value;

use super::support::PlainPg;

const STANZA: &str = "plain";

/// A plain server that archives into its own pgBackRest repository, and a runner that runs
/// programs as `postgres` with that repository's configuration, as a provider's `run_beside`
/// does.
struct Archived {
    pg: PlainPg,
    /// The configuration, the repository, pgBackRest's logs and locks, the scratch base.
    dir: tempfile::TempDir,
}

impl Archived {
    fn start(port: u16) -> Archived {
        let dir = tempfile::Builder::new()
            .prefix("pgdba-backup-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["repo", "log", "lock", "scratch"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let config = dir.path().join("pgbackrest.conf");
        let archive = format!(
            "archive_command = 'pgbackrest --config={} --stanza={STANZA} archive-push %p'",
            config.display()
        );
        let pg = PlainPg::start(port, &["archive_mode = on", &archive]);
        std::fs::write(
            &config,
            format!(
                "[global]\nrepo1-path={repo}\nrepo1-retention-full=2\ncompress-type=lz4\nlog-path={log}\nlock-path={lock}\nstart-fast=y\n\n[{STANZA}]\npg1-path={data}\npg1-port={port}\npg1-socket-path={socket}\n",
                repo = dir.path().join("repo").display(),
                log = dir.path().join("log").display(),
                lock = dir.path().join("lock").display(),
                data = pg.data_dir().display(),
                socket = pg.socket_dir().display(),
            ),
        )
        .unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let a = Archived { pg, dir };
        let out = a.pgbackrest(&["stanza-create"]);
        assert!(out.status.success(), "stanza-create: {out:?}");
        a
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("pgbackrest.conf")
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn scratch_base(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    fn pgbackrest(&self, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--", "pgbackrest"])
            .arg(format!("--config={}", self.config().display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args)
            .current_dir("/tmp")
            .output()
            .unwrap()
    }

    fn runner(&self) -> Runuser {
        Runuser {
            config: self.config(),
        }
    }

    /// The primary as pgdba reaches a plain server: TCP with the password.
    fn server(&self) -> Server {
        Server {
            name: format!("127.0.0.1:{}", self.pg.port),
            host: "127.0.0.1".to_owned(),
            port: self.pg.port,
            user: "postgres".to_owned(),
            password: Some(self.pg.password.clone()),
            database: "postgres".to_owned(),
            socket_dir: None,
            data_dir: None,
            api_url: None,
        }
    }

    fn options(&self, port: u16) -> VerifyOptions {
        let mut o = VerifyOptions::new(self.scratch_base(), port);
        o.superuser = "postgres".to_owned();
        o
    }

    /// `pg_stat_archiver` as the window needs it.
    fn archiver(&self) -> Archiver {
        let row = self.pg.psql(
            "SELECT coalesce(last_archived_wal, ''), \
             coalesce(extract(epoch FROM last_archived_time)::bigint, 0), \
             coalesce(extract(epoch FROM last_failed_time)::bigint, 0) FROM pg_stat_archiver",
        );
        let f: Vec<&str> = row.split('|').collect();
        let time = |s: &str| match s.parse::<i64>().unwrap() {
            0 => None,
            n => chrono::DateTime::from_timestamp(n, 0),
        };
        Archiver {
            last_archived_wal: (!f[0].is_empty()).then(|| f[0].to_owned()),
            last_archived_at: time(f[1]),
            last_failed_at: time(f[2]),
        }
    }

    /// The scratch directories left in the scratch base.
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.scratch_base())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// `runuser -u postgres -- env PGBACKREST_CONFIG=... ARGV`, what the local provider's
/// `run_beside` does.
struct Runuser {
    config: PathBuf,
}

#[async_trait::async_trait]
impl Beside for Runuser {
    async fn run(&self, argv: &[String], within: Duration) -> Result<Ran, ProviderError> {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", "env"])
            .arg(format!("PGBACKREST_CONFIG={}", self.config.display()))
            .args(argv)
            .current_dir("/tmp")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(within, c.output())
            .await
            .map_err(|_| ProviderError::Timeout {
                what: argv.join(" "),
                secs: within.as_secs(),
                log: "its output".to_owned(),
                tail: String::new(),
            })?
            .map_err(|e| ProviderError::Spawn {
                program: PathBuf::from(&argv[0]),
                source: e,
            })?;
        Ok(Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn check<'a>(r: &'a backup::VerifyReport, name: &str) -> Vec<&'a backup::RestoreCheck> {
    r.checks.iter().filter(|c| c.name == name).collect()
}

/// Two databases with a table each, the larger in `app`.
fn tables(a: &Archived) {
    a.pg.psql(
        "CREATE TABLE small AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    );
    a.pg.psql("CREATE DATABASE app");
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/psql"])
        .arg("-h")
        .arg(a.pg.socket_dir())
        .args([
            "-p",
            &a.pg.port.to_string(),
            "-d",
            "app",
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
        ])
        .arg(
            "CREATE TABLE orders (id bigint PRIMARY KEY, note text); \
             INSERT INTO orders SELECT g, repeat('x', 100) FROM generate_series(1, 60000) g",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn backups_are_taken_listed_and_a_good_one_passes_its_restore_test() {
    let a = Archived::start(30700);
    let rt = runtime();
    let runner = a.runner();

    let info = rt.block_on(backup::info(&runner, STANZA)).unwrap();
    assert_eq!(info.status, StanzaStatus::NoValidBackup, "{info:?}");
    assert!(backup::window(&info, None).is_none());
    tables(&a);

    // A diff backup with no full one to build on is taken as a full one, and says so.
    let full = rt
        .block_on(backup::create(
            &runner,
            STANZA,
            Kind::Diff,
            &CreateOptions::default(),
            None,
        ))
        .unwrap();
    assert_eq!(full.requested_type, Kind::Diff);
    assert_eq!(full.backup.kind, Kind::Full);
    assert!(
        full.warnings.iter().any(|w| w.contains("changed to full")),
        "{full:?}"
    );
    let v = full.verification.as_ref().unwrap();
    assert!(
        v.verified && v.repository_ok && v.status == "valid",
        "{v:?}"
    );
    assert!(full.backup.size_bytes > 10_000_000, "{full:?}");
    assert!(full.backup.wal_start.is_some() && full.backup.wal_stop.is_some());

    a.pg.psql("INSERT INTO small SELECT g, 'new' FROM generate_series(1, 500) g");
    let incr = rt
        .block_on(backup::create(
            &runner,
            STANZA,
            Kind::Incremental,
            &CreateOptions::default(),
            None,
        ))
        .unwrap();
    assert_eq!(incr.backup.kind, Kind::Incremental);
    assert_eq!(incr.backup.prior.as_deref(), Some(full.backup.id.as_str()));
    assert_eq!(
        incr.backup.references,
        std::slice::from_ref(&full.backup.id)
    );
    assert!(incr.verification.as_ref().unwrap().verified);
    assert!(
        incr.backup.delta_bytes < full.backup.delta_bytes,
        "{incr:?}"
    );
    let json = serde_json::to_value(&incr.backup).unwrap();
    assert_eq!(json["type"], "incremental");

    let info = rt.block_on(backup::info(&runner, STANZA)).unwrap();
    assert_eq!(info.status, StanzaStatus::Ok);
    let ids: Vec<&str> = info.backups.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, [full.backup.id.as_str(), incr.backup.id.as_str()]);
    assert_eq!(info.backups[1], incr.backup);

    // The window: from the full backup's end to the last archived WAL (archiving works).
    a.pg.psql("SELECT pg_switch_wal()");
    let archiver =
        super::support::wait_for("the switched WAL archived", Duration::from_secs(30), || {
            let x = a.archiver();
            (x.last_archived_at
                .is_some_and(|t| t >= incr.backup.stopped_at))
            .then_some(x)
        });
    let info = super::support::wait_for("the archive to list it", Duration::from_secs(30), || {
        let info = rt.block_on(backup::info(&runner, STANZA)).unwrap();
        let max = info.current_archive()?.max.clone()?;
        (archiver.last_archived_wal.as_deref().map(|w| &w[..24]) <= Some(max.as_str()))
            .then_some(info)
    });
    let w = backup::window(&info, Some(&archiver)).unwrap();
    assert_eq!(w.oldest, full.backup.stopped_at);
    assert_eq!(w.newest_source, NewestSource::ArchivedWal, "{w:?}");
    assert_eq!(Some(w.newest), archiver.last_archived_at);

    // The restore test of the latest backup, compared with the primary, which then moves on.
    a.pg.psql("INSERT INTO small SELECT g, 'after' FROM generate_series(1, 7) g");
    let report = rt
        .block_on(backup::verify_restore(
            &runner,
            STANZA,
            None,
            Some(&a.server()),
            &a.options(30710),
            std::future::pending(),
        ))
        .unwrap();
    assert_eq!(report.status, VerifyStatus::Ok, "{report:#?}");
    assert_eq!(report.backup.id, incr.backup.id);
    for name in [
        "restore",
        "start",
        "recovery",
        "amcheck_catalog",
        "amcheck_tables",
    ] {
        let c = check(&report, name);
        assert_eq!(c.len(), 1, "{name}: {report:#?}");
        assert_eq!(c[0].status, CheckStatus::Ok, "{name}: {report:#?}");
    }
    assert!(
        check(&report, "amcheck_tables")[0]
            .message
            .contains("app.public.orders"),
        "{report:#?}"
    );
    let counts = check(&report, "row_count");
    let of = |t: &str| {
        counts
            .iter()
            .find(|c| c.target.as_deref() == Some(t))
            .unwrap_or_else(|| panic!("no count of {t}: {report:#?}"))
    };
    assert_eq!(of("app.public.orders").status, CheckStatus::Ok);
    assert_eq!(of("app.public.orders").value["restored"], 60000);
    // 20,500 rows in the backup, 20,507 on the primary, which wrote since: reported, not failed.
    let small = of("postgres.public.small");
    assert_eq!(small.status, CheckStatus::Warn, "{small:?}");
    assert_eq!(small.value["restored"], 20500);
    assert_eq!(small.value["primary"], 20507);
    assert!(report.cleaned_up, "{report:?}");
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());
    // The scratch server promoted to a new timeline and pushed nothing into the repository.
    let archived: Vec<String> = super::support::all_files(&a.repo().join("archive"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        !archived.iter().any(|f| f.starts_with("00000002")),
        "{archived:?}"
    );

    // What a pgdba killed during its restore test left (its scratch directory), and what a
    // pgdba still running has: the first is removed by the next restore test, the second not.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host: String = host.trim().split('.').next().unwrap().to_owned();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let dead_dir = a
        .scratch_base()
        .join(format!("pgdba-verify.{STANZA}.{host}.{dead}.0123456789ab"));
    let live_dir = a.scratch_base().join(format!(
        "pgdba-verify.{STANZA}.{host}.{}.0123456789ab",
        std::process::id()
    ));
    for d in [&dead_dir, &live_dir] {
        std::fs::create_dir_all(d.join("data")).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(d)
            .status()
            .unwrap();
        assert!(chown.success());
    }

    // A named backup; one that does not exist.
    let report = rt
        .block_on(backup::verify_restore(
            &runner,
            STANZA,
            Some(&full.backup.id),
            None,
            &a.options(30711),
            std::future::pending(),
        ))
        .unwrap();
    assert_eq!(report.status, VerifyStatus::Ok, "{report:#?}");
    assert_eq!(report.backup.id, full.backup.id);
    assert_eq!(check(&report, "row_count")[0].status, CheckStatus::Skipped);
    assert_eq!(
        report.swept,
        [dead_dir.display().to_string()],
        "{report:#?}"
    );
    assert!(!dead_dir.exists());
    assert!(live_dir.exists());
    std::fs::remove_dir_all(&live_dir).unwrap();
    let e = rt
        .block_on(backup::verify_restore(
            &runner,
            STANZA,
            Some("20000101-000000F"),
            None,
            &a.options(30712),
            std::future::pending(),
        ))
        .unwrap_err();
    assert!(matches!(e, BackupError::NoSuchBackup { .. }), "{e:?}");
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());
}

/// The repository file of relation `rel` (`base/5/16384`) in backup `label`, whatever its
/// compression's extension.
fn repo_file(a: &Archived, label: &str, rel: &str) -> PathBuf {
    let path = a
        .repo()
        .join("backup")
        .join(STANZA)
        .join(label)
        .join("pg_data")
        .join(rel);
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .strip_prefix(&name)
                .is_some_and(|r| r.is_empty() || r.starts_with('.'))
        })
        .unwrap_or_else(|| panic!("no {} in {}", name, dir.display()))
}

fn relative(p: &Path, base: &Path) -> String {
    p.strip_prefix(base).unwrap().display().to_string()
}

#[test]
fn a_damaged_backup_fails_its_restore_test_naming_the_file() {
    let a = Archived::start(30720);
    let rt = runtime();
    let runner = a.runner();
    tables(&a);
    let full = rt
        .block_on(backup::create(
            &runner,
            STANZA,
            Kind::Full,
            &CreateOptions::default(),
            None,
        ))
        .unwrap();
    assert!(full.verification.as_ref().unwrap().verified);

    // Truncate the file of the table `small` in the repository.
    let rel = a.pg.psql("SELECT pg_relation_filepath('small')");
    let file = repo_file(&a, &full.backup.id, &rel);
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(100).unwrap();
    drop(f);
    let named = relative(&file, &a.repo().join("backup").join(STANZA));

    let report = rt
        .block_on(backup::verify_restore(
            &runner,
            STANZA,
            None,
            Some(&a.server()),
            &a.options(30721),
            std::future::pending(),
        ))
        .unwrap();
    assert_eq!(report.status, VerifyStatus::Failed, "{report:#?}");
    let restore = check(&report, "restore");
    assert_eq!(restore[0].status, CheckStatus::Failed);
    assert!(restore[0].message.contains(&named), "{named}: {report:#?}");
    // Nothing ran after the restore failed; the scratch is gone.
    assert_eq!(report.checks.len(), 1, "{report:#?}");
    assert!(report.cleaned_up, "{report:?}");
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());

    // pgBackRest's verify of a new backup does not take the old one's damage for its own.
    let second = rt
        .block_on(backup::create(
            &runner,
            STANZA,
            Kind::Full,
            &CreateOptions::default(),
            None,
        ))
        .unwrap();
    let v = second.verification.unwrap();
    assert!(v.verified && !v.repository_ok, "{v:?}");
}

/// A page that was corrupt on the primary's disk when the backup was taken restores as it
/// was; pg_amcheck finds it.
#[test]
fn corruption_carried_into_a_backup_fails_the_amcheck_of_its_table() {
    let a = Archived::start(30740);
    let rt = runtime();
    let runner = a.runner();
    tables(&a);
    a.pg.psql("CHECKPOINT");
    // Overwrite the tuples at the end of the first page of `small` on disk (the primary still
    // has the good page in its buffers; the backup reads the file).
    let file =
        a.pg.data_dir()
            .join(a.pg.psql("SELECT pg_relation_filepath('small')"));
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(8192 - 512)).unwrap();
    std::io::Write::write_all(&mut f, &[0xff; 512]).unwrap();
    drop(f);
    let full = rt
        .block_on(backup::create(
            &runner,
            STANZA,
            Kind::Full,
            &CreateOptions::default(),
            None,
        ))
        .unwrap();
    // pgBackRest's own checks pass: the file is as it was read.
    assert!(full.verification.as_ref().unwrap().verified, "{full:?}");

    let report = rt
        .block_on(backup::verify_restore(
            &runner,
            STANZA,
            None,
            None,
            &a.options(30741),
            std::future::pending(),
        ))
        .unwrap();
    assert_eq!(report.status, VerifyStatus::Failed, "{report:#?}");
    for name in ["restore", "start", "recovery", "amcheck_catalog"] {
        assert_eq!(
            check(&report, name)[0].status,
            CheckStatus::Ok,
            "{name}: {report:#?}"
        );
    }
    let tables = check(&report, "amcheck_tables");
    assert_eq!(tables[0].status, CheckStatus::Failed, "{report:#?}");
    assert!(tables[0].message.contains("small"), "{report:#?}");
    assert!(report.cleaned_up, "{report:?}");
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());

    // Interrupted once the scratch server is starting (Ctrl-C in the CLI): the checks stop,
    // the server is stopped and its directory removed all the same.
    let base = a.scratch_base();
    let starting = async {
        loop {
            let log = std::fs::read_dir(&base)
                .unwrap()
                .any(|e| e.unwrap().path().join("postgres.log").exists());
            if log {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let report = rt
        .block_on(backup::verify_restore(
            &runner,
            STANZA,
            None,
            None,
            &a.options(30742),
            starting,
        ))
        .unwrap();
    assert_eq!(report.status, VerifyStatus::Failed, "{report:#?}");
    assert_eq!(
        report.checks.last().unwrap().name,
        "interrupted",
        "{report:#?}"
    );
    assert!(report.cleaned_up, "{report:?}");
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());
    let running = Command::new("pgrep")
        .args(["-f", &base.display().to_string()])
        .output()
        .unwrap();
    assert!(running.stdout.is_empty(), "{running:?}");
}

/// Through the binary, on a local cluster whose spec has `spec.backup` (pgdba configures
/// pgBackRest on every member, archives through it and creates the stanza): `backup create`,
/// `backup list` and `backup verify-restore` with the contract's fields; `NO_BACKUP` for a
/// spec without it.
#[test]
fn the_cli_backs_up_a_cluster_lists_its_backups_and_proves_one_restores() {
    let t = super::support::TestCluster::new("bk", 30750);
    let repo = t.dir.path().join("repo");
    let scratch = t.dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::create_dir(&repo).unwrap();
    let chown = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&scratch)
        .arg(&repo)
        .status()
        .unwrap();
    assert!(chown.success());
    // The same cluster through a spec without spec.backup: refused before anything runs.
    let params = [("max_connections", "100")];
    t.write_spec(1, &params);
    let plain = t.dir.path().join("plain.yaml");
    std::fs::copy(&t.spec, &plain).unwrap();
    t.write_spec_with(
        1,
        &params,
        &format!("  backup:\n    repository: {{path: {}}}\n", repo.display()),
    );
    t.apply();
    let spec = t.spec_str();

    let r = t.run(&[
        "backup",
        "list",
        "-f",
        plain.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "NO_BACKUP", "{r:?}");

    let r = t.run(&[
        "backup", "create", "--type", "full", "-f", spec, "--format", "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(j["command"], "backup create");
    let b = &j["data"]["backup"];
    for f in [
        "id",
        "type",
        "started_at",
        "stopped_at",
        "size_bytes",
        "wal_start",
        "wal_stop",
        "duration_ms",
    ] {
        assert!(!b[f].is_null(), "{f}: {j:#}");
    }
    assert_eq!(b["type"], "full");
    assert_eq!(b["verified"], true, "{j:#}");
    assert!(
        j["data"]["member"].as_str().unwrap().starts_with("bk-"),
        "{j:#}"
    );
    let id = b["id"].as_str().unwrap().to_owned();

    // An incremental one on top, by the name the state knows.
    let r = t.run(&[
        "backup",
        "create",
        "--type",
        "incremental",
        "--name",
        "bk",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["data"]["backup"]["type"], "incremental");
    assert_eq!(r.json()["data"]["backup"]["prior"], id.as_str());

    // Recorded in the history.
    let history: Value =
        serde_json::from_slice(&std::fs::read(t.state_dir.join("bk.history.json")).unwrap())
            .unwrap();
    let creates: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["command"] == "backup create")
        .collect();
    assert_eq!(creates.len(), 2, "{history:#}");
    assert!(creates.iter().all(|h| h["success"] == true));

    let r = t.run(&["backup", "list", "-f", spec, "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    let backups = j["data"]["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{j:#}");
    assert_eq!(backups[0]["id"], id.as_str());
    assert_eq!(backups[1]["type"], "incremental");
    let w = &j["data"]["window"];
    assert_eq!(w["oldest"], backups[0]["stopped_at"], "{j:#}");
    assert!(
        w["newest_source"] == "archived_wal" || w["newest_source"] == "backup",
        "{j:#}"
    );
    assert!(w["newest"].as_str().unwrap() >= w["oldest"].as_str().unwrap());
    let r = t.run(&["backup", "list", "-f", spec, "--format", "table"]);
    assert!(
        r.stdout.contains(&id) && r.stdout.contains("Recoverable window"),
        "{r:?}"
    );

    let r = t.run(&[
        "backup",
        "verify-restore",
        "-f",
        spec,
        "--scratch-dir",
        scratch.to_str().unwrap(),
        "--scratch-port",
        "30779",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(j["data"]["status"], "ok", "{j:#}");
    assert_eq!(j["data"]["backup"]["id"], backups[1]["id"]);
    let names: Vec<&str> = j["data"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in ["restore", "start", "recovery", "amcheck_catalog"] {
        assert!(names.contains(&n), "{n}: {j:#}");
    }
    assert_eq!(j["data"]["cleaned_up"], true);
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);

    let r = t.run(&[
        "backup",
        "verify-restore",
        "-f",
        spec,
        "--backup-id",
        "20000101-000000F",
        "--scratch-dir",
        scratch.to_str().unwrap(),
        "--scratch-port",
        "30779",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "NOT_FOUND", "{r:?}");
}

/// Without a cluster: a type pgdba does not take is a usage error, an unknown cluster is
/// `NOT_FOUND`; both before anything runs.
#[test]
fn backup_commands_refuse_bad_input_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(super::support::bin());
        c.args(args)
            .env("PGDBA_STATE_DIR", dir.path().join("state"))
            .env_remove("PGDBA_PG_HOST")
            .current_dir(dir.path());
        super::support::run_pgdba(c, args)
    };
    let r = run(&[
        "backup", "create", "--type", "weekly", "--name", "x", "--format", "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "USAGE", "{r:?}");
    // `incr`, pgBackRest's name, is accepted for incremental.
    let r = run(&[
        "backup", "create", "--type", "incr", "--name", "x", "--format", "json",
    ]);
    assert_eq!(r.json()["error"]["code"], "NOT_FOUND", "{r:?}");
    for args in [
        &["backup", "list", "--name", "nosuch", "--format", "json"][..],
        &[
            "backup",
            "verify-restore",
            "--name",
            "nosuch",
            "--format",
            "json",
        ],
    ] {
        let r = run(args);
        assert_eq!(r.code, 1, "{r:?}");
        let j = r.json();
        assert_eq!(j["error"]["code"], "NOT_FOUND", "{r:?}");
        assert_eq!(j["command"], args[..2].join(" "), "{r:?}");
    }
    let r = run(&["backup", "list", "--format", "json"]);
    assert_eq!(r.json()["error"]["code"], "USAGE", "{r:?}");
}
