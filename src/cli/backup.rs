//! `backup create`, `backup list` and `backup verify-restore`: the CLI edge of
//! [`crate::ops::backup`]. pgBackRest runs beside the current leader's PostgreSQL (the
//! provider's `run_beside`), on the stanza named after the cluster, for a cluster whose spec
//! has `spec.backup` (`NO_BACKUP` otherwise). `backup create` holds the cluster's lock and is
//! recorded in its history; `verify-restore` exits 1 with `VERIFY_FAILED` when the restore test
//! fails, its report in `data` all the same.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::{ClusterArg, Known, resolve_cluster};
use crate::ops::Server;
use crate::ops::backup::{
    self, Archiver, Backup, BackupError, CheckStatus, CreateOptions, Info, Kind, OnMember,
    VerifyOptions, VerifyReport, VerifyStatus, Window,
};

/// Where `verify-restore` looks for a port for its scratch server when none is given: it
/// listens on no TCP address, so the port only names its socket.
const SCRATCH_PORTS: std::ops::RangeInclusive<u16> = 25432..=25631;

/// The cluster, its stanza (its name) and the leader pgBackRest runs beside.
struct Target {
    k: Known,
    leader: String,
}

impl Target {
    fn runner(&self) -> OnMember<'_> {
        OnMember::new(self.k.cluster.provider.as_ref(), self.leader.clone())
    }

    fn stanza(&self) -> &str {
        &self.k.name
    }

    fn leader_server(&self) -> Option<&Server> {
        self.k.servers.iter().find(|s| s.name == self.leader)
    }
}

async fn target(g: &Global, c: &ClusterArg) -> Result<Target, Failure> {
    let k = resolve_cluster(g, c).await?;
    if k.spec.spec.backup.is_none() {
        return Err(Failure::new(
            codes::NO_BACKUP,
            format!(
                "cluster {} has no spec.backup: pgdba does not back it up",
                k.name
            ),
        )
        .hint("add `backup: {repository: {path: DIR}}` under `spec:` and apply the spec"));
    }
    let status = super::leader::read_status(&k).await?;
    let Some(leader) = status.leader.clone() else {
        return Err(Failure::new(
            codes::NO_PRIMARY,
            format!(
                "cluster {} has no leader: pgBackRest backs up the primary",
                k.name
            ),
        )
        .hint("`pgdba cluster status` shows the members"));
    };
    Ok(Target { k, leader })
}

/// A [`BackupError`] as the CLI's failure.
fn failure(t: &Target, e: &BackupError) -> Failure {
    let message = format!("cluster {}: {}", t.k.name, crate::error_chain(e));
    match e {
        BackupError::NoStanza { .. } => Failure::new(codes::NO_BACKUP, message)
            .hint("`pgdba apply` creates the stanza of a spec with spec.backup"),
        BackupError::NoBackup { .. } => Failure::new(codes::NO_BACKUP, message)
            .hint("take one with `pgdba backup create --type full`"),
        BackupError::NoSuchBackup { .. } => {
            Failure::new(codes::NOT_FOUND, message).hint("`pgdba backup list` lists the backups")
        }
        _ => Failure::new(codes::BACKUP_FAILED, message),
    }
}

/// `backup create --type T [--no-verify]`.
pub(super) async fn create(
    g: &Global,
    c: &ClusterArg,
    kind: Kind,
    no_verify: bool,
) -> Result<Outcome, Failure> {
    let t = target(g, c).await?;
    // One operation at a time, and none while an apply runs.
    let _lock = t.k.store.lock(&t.k.name, "backup create")?;
    let mut opts = CreateOptions::default();
    if no_verify {
        opts.verify_within = None;
    }
    let runner = t.runner();
    match backup::create(&runner, t.stanza(), kind, &opts).await {
        Ok(done) => {
            let mut b = serde_json::to_value(&done.backup).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut b {
                m.insert("duration_ms".to_owned(), json!(done.duration_ms));
                m.insert(
                    "verified".to_owned(),
                    json!(done.verification.as_ref().map(|v| v.verified)),
                );
                m.insert("requested_type".to_owned(), json!(done.requested_type));
                m.insert("verification".to_owned(), json!(done.verification));
                m.insert("warnings".to_owned(), json!(done.warnings));
            }
            let data = json!({
                "cluster": t.k.name,
                "stanza": t.stanza(),
                "member": t.leader,
                "backup": b,
            });
            let summary = format!(
                "{} backup {} taken on {} in {}",
                done.backup.kind,
                done.backup.id,
                t.leader,
                seconds(done.duration_ms)
            );
            let verified = done.verification.as_ref().is_none_or(|v| v.verified);
            let summary = if verified {
                summary
            } else {
                format!("{summary}, but pgBackRest's verify finds it or a backup it uses damaged")
            };
            t.k.record("backup create", verified, summary, data["backup"].clone());
            let human = created_text(&t, &done);
            if !verified {
                // Taken, but pgBackRest's verify found it damaged: an error, with its data.
                let problems = done
                    .verification
                    .as_ref()
                    .map(|v| v.problems.join("; "))
                    .unwrap_or_default();
                let f = Failure::new(
                    codes::VERIFY_FAILED,
                    format!(
                        "cluster {}: backup {} was taken, but pgBackRest's verify finds it or a backup it uses damaged: {problems}",
                        t.k.name, done.backup.id
                    ),
                )
                .data(data);
                return Ok(with_text(f, human));
            }
            Ok(Outcome::ok(data, human))
        }
        Err(e) => {
            let f = failure(&t, &e);
            t.k.record(
                "backup create",
                false,
                f.message.clone(),
                json!({ "type": kind, "member": t.leader }),
            );
            Err(f)
        }
    }
}

fn created_text(t: &Target, done: &backup::Created) -> String {
    let b = &done.backup;
    let mut out = format!(
        "{} backup {} of cluster {} taken on {} in {}\n",
        b.kind,
        b.id,
        t.k.name,
        t.leader,
        seconds(done.duration_ms)
    );
    for w in &done.warnings {
        let _ = writeln!(out, "  pgBackRest: {w}");
    }
    let _ = writeln!(
        out,
        "  size {} ({} copied, {} in the repository), WAL {} .. {}",
        size(b.size_bytes),
        size(b.delta_bytes),
        size(b.repo_delta_bytes),
        b.wal_start.as_deref().unwrap_or("?"),
        b.wal_stop.as_deref().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "  started {}, stopped {}",
        backup::format_time(&b.started_at),
        backup::format_time(&b.stopped_at)
    );
    match &done.verification {
        None => out.push_str("  not verified (--no-verify)\n"),
        Some(v) if v.verified => {
            let _ = writeln!(
                out,
                "  verified: pgBackRest's verify finds every file of it valid ({}){}",
                seconds(v.duration_ms),
                if v.repository_ok {
                    ""
                } else {
                    "; other backups of the repository have problems"
                }
            );
        }
        Some(v) => {
            let _ = writeln!(
                out,
                "  NOT verified: pgBackRest's verify says it is {}, and finds in it or the backups it uses: {}",
                v.status,
                if v.problems.is_empty() {
                    "(no file named)".to_owned()
                } else {
                    v.problems.join("; ")
                }
            );
        }
    }
    out
}

/// The leader's `pg_stat_archiver`; `None` when it cannot be read.
async fn archiver(server: &Server) -> Option<Archiver> {
    let client = match server.connect(Duration::from_secs(10)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                "cannot read pg_stat_archiver on {}: {}",
                server.name,
                crate::error_chain(&e)
            );
            return None;
        }
    };
    let row = client
        .query_one(
            "SELECT last_archived_wal, extract(epoch FROM last_archived_time)::float8, \
             extract(epoch FROM last_failed_time)::float8 FROM pg_stat_archiver",
            &[],
        )
        .await
        .map_err(|e| tracing::warn!("pg_stat_archiver on {}: {e}", server.name))
        .ok()?;
    let time = |secs: Option<f64>| {
        #[allow(clippy::cast_possible_truncation)]
        secs.and_then(|s| chrono::DateTime::from_timestamp(s.floor() as i64, 0))
    };
    Some(Archiver {
        last_archived_wal: row.get(0),
        last_archived_at: time(row.get(1)),
        last_failed_at: time(row.get(2)),
    })
}

/// `backup list`: the backups, the stanza's state and the recoverable window.
pub(super) async fn list(g: &Global, c: &ClusterArg) -> Result<Outcome, Failure> {
    let t = target(g, c).await?;
    let runner = t.runner();
    let info = backup::info(&runner, t.stanza())
        .await
        .map_err(|e| failure(&t, &e))?;
    let archiver = match t.leader_server() {
        Some(s) => archiver(s).await,
        None => None,
    };
    let window = backup::window(&info, archiver.as_ref());
    let data = json!({
        "cluster": t.k.name,
        "stanza": {
            "name": info.stanza,
            "status": info.status,
            "message": info.message,
            "backup_running": info.backup_running,
        },
        "backups": info.backups,
        "window": window,
        "archive": info.current_archive(),
        "member": t.leader,
    });
    Ok(Outcome::ok(data, list_text(&t, &info, window.as_ref())))
}

fn list_text(t: &Target, info: &Info, window: Option<&Window>) -> String {
    let mut out = format!(
        "cluster {} (stanza {}: {})\n",
        t.k.name, info.stanza, info.message
    );
    if info.backups.is_empty() {
        out.push_str("No backups.\n");
    } else {
        let rows: Vec<Vec<String>> = info.backups.iter().map(backup_row).collect();
        out.push('\n');
        out.push_str(&crate::output::columns(
            &[
                "ID",
                "TYPE",
                "STARTED",
                "STOPPED",
                "SIZE",
                "REPO",
                "WAL START",
                "WAL STOP",
            ],
            &rows,
        ));
    }
    if let Some(a) = info.current_archive() {
        let _ = writeln!(
            out,
            "\nArchive {}: {} .. {}",
            a.id,
            a.min.as_deref().unwrap_or("(empty)"),
            a.max.as_deref().unwrap_or("(empty)")
        );
    }
    if let Some(w) = window {
        let _ = writeln!(
            out,
            "Recoverable window: {} .. {} ({})",
            backup::format_time(&w.oldest),
            backup::format_time(&w.newest),
            match w.newest_source {
                backup::NewestSource::ArchivedWal => "to the last archived WAL",
                backup::NewestSource::Backup => "to the newest backup's end",
            }
        );
        if let Some(n) = &w.note {
            let _ = writeln!(out, "  ({n})");
        }
    }
    if info.backup_running {
        out.push_str("A backup is running now.\n");
    }
    out
}

fn backup_row(b: &Backup) -> Vec<String> {
    vec![
        b.id.clone(),
        b.kind.as_str().to_owned(),
        backup::format_time(&b.started_at),
        backup::format_time(&b.stopped_at),
        size(b.size_bytes),
        size(b.repo_delta_bytes),
        b.wal_start.clone().unwrap_or_default(),
        b.wal_stop.clone().unwrap_or_default(),
    ]
}

/// `backup verify-restore [--backup-id X]`: restore into a scratch directory beside the
/// leader, start it, check it, compare with the primary, remove it.
pub(super) async fn verify_restore(
    g: &Global,
    c: &ClusterArg,
    backup_id: Option<&str>,
    scratch_dir: &Path,
    scratch_port: Option<u16>,
) -> Result<Outcome, Failure> {
    let t = target(g, c).await?;
    let avoid: Vec<u16> = t.k.servers.iter().map(|s| s.port).collect();
    let port = match scratch_port {
        Some(p) if avoid.contains(&p) => {
            return Err(Failure::new(
                codes::USAGE,
                format!(
                    "--scratch-port {p} is a port of cluster {}: give another",
                    t.k.name
                ),
            ));
        }
        Some(p) => p,
        None => backup::free_port(SCRATCH_PORTS, &avoid).ok_or_else(|| {
            Failure::new(
                codes::PORT_IN_USE,
                format!(
                    "no free port in {}-{} for the scratch server",
                    SCRATCH_PORTS.start(),
                    SCRATCH_PORTS.end()
                ),
            )
            .hint("give one with --scratch-port")
        })?,
    };
    let opts = VerifyOptions::new(scratch_dir, port);
    let runner = t.runner();
    let report = backup::verify_restore(
        &runner,
        t.stanza(),
        backup_id,
        t.leader_server(),
        &opts,
        interrupted(),
    )
    .await
    .map_err(|e| failure(&t, &e))?;
    let mut data = serde_json::to_value(&report).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut data {
        m.insert("cluster".to_owned(), json!(t.k.name));
        m.insert("member".to_owned(), json!(t.leader));
    }
    let human = verify_text(&t, &report);
    if report.status == VerifyStatus::Failed {
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        let f = Failure::new(
            codes::VERIFY_FAILED,
            format!(
                "cluster {}: the restore test of backup {} failed: {}",
                t.k.name,
                report.backup.id,
                failed.join("; ")
            ),
        )
        .data(data);
        return Ok(with_text(f, human));
    }
    Ok(Outcome::ok(data, human))
}

/// A failure that carries a report: the report's text for people, then the error.
fn with_text(f: Failure, text: String) -> Outcome {
    let mut o = f.into_outcome();
    o.human = format!("{text}\n{}", o.human);
    o
}

/// Completes on Ctrl-C or SIGTERM: the restore test stops, and its scratch server is stopped
/// and removed before pgdba exits.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn verify_text(t: &Target, r: &VerifyReport) -> String {
    let rows: Vec<Vec<String>> = r
        .checks
        .iter()
        .map(|c| {
            vec![
                c.status.as_str().to_owned(),
                c.name.to_owned(),
                c.target.clone().unwrap_or_else(|| "-".to_owned()),
                c.message.replace('\n', " "),
            ]
        })
        .collect();
    let mut out = format!(
        "Restore test of backup {} ({}, {}) of cluster {}, beside {}:\n\n",
        r.backup.id,
        r.backup.kind,
        backup::format_time(&r.backup.stopped_at),
        t.k.name,
        t.leader
    );
    out.push_str(&crate::output::columns(
        &["STATUS", "CHECK", "TARGET", "MESSAGE"],
        &rows,
    ));
    if !r.cleaned_up {
        let _ = writeln!(
            out,
            "\nThe scratch directory {} could not be cleaned up: {}",
            r.scratch,
            r.cleanup_error.as_deref().unwrap_or("?")
        );
    }
    let _ = writeln!(
        out,
        "\nRestore test: {} ({})",
        match r.status {
            VerifyStatus::Ok => "OK",
            VerifyStatus::Failed => "FAILED",
        },
        seconds(r.duration_ms)
    );
    out
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// A size as `pg_size_pretty` writes it.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_pg_size_pretty_does() {
        assert_eq!(super::size(512), "512 bytes");
        assert_eq!(super::size(2048), "2.0 kB");
        assert_eq!(super::size(41_711_628), "40 MB");
        assert_eq!(super::seconds(4200), "4.2 s");
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn restore_targets_read_as_postgresql_reads_them() {
        assert_eq!(super::lsn_value("0/3000060"), Some(0x0300_0060));
        assert_eq!(super::lsn_value("1/0"), Some(1 << 32));
        assert_eq!(super::lsn_value("x/1"), None);
        assert_eq!(super::lsn_value("3000060"), None);
        let parse = crate::spec::model::parse_target_time;
        let rfc = parse("2026-12-02T06:50:00.5Z").unwrap();
        assert_eq!(parse("2026-12-02 06:50:00.5+00"), Some(rfc));
        assert_eq!(parse("2026-12-02 08:50:00.5+02:00"), Some(rfc));
        assert_eq!(parse("2026-12-02 06:50:00.5+00:00"), Some(rfc));
        assert_eq!(parse("yesterday"), None);
    }
}

/// `backup restore`'s recovery target, as given.
#[derive(Debug, Clone)]
pub(super) enum RestoreTarget {
    Time(String),
    Lsn(String),
    Xid(String),
}

/// `backup restore --to-cluster NEW`: the new cluster, and where it runs.
#[derive(Debug, Clone)]
pub(super) struct RestoreTo {
    pub name: String,
    pub out: Option<std::path::PathBuf>,
    pub data_dir: Option<std::path::PathBuf>,
    pub pg_port: Option<u16>,
    pub api_port: Option<u16>,
    pub etcd_port: Option<u16>,
}

/// A WAL location (`0/3000060`) as a number.
fn lsn_value(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some((hi << 32) | lo)
}

/// Whether a backup ends before the restore's target.
type EndsBefore = Box<dyn Fn(&Backup) -> bool>;

/// The backup a restore to `target` starts from: the one asked for (which must end before a
/// time or LSN target), else the newest that ends before the target (the newest for an XID or
/// no target). Refused with `OUTSIDE_WINDOW` when the target is outside the window.
fn pick_backup<'a>(
    info: &'a Info,
    window: &Window,
    target: Option<&RestoreTarget>,
    backup_id: Option<&str>,
    cluster: &str,
) -> Result<(&'a Backup, Option<String>), Failure> {
    let span = format!(
        "{} .. {}",
        window
            .oldest
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        window
            .newest
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    let outside = |what: String| {
        Failure::new(
            codes::OUTSIDE_WINDOW,
            format!("cluster {cluster}: {what}; the recoverable window is {span}"),
        )
        .hint("`pgdba backup list` shows the backups and the window")
        .data(json!({ "window": window }))
    };
    let chosen = match backup_id {
        Some(id) => Some(info.backup(id).ok_or_else(|| {
            Failure::new(
                codes::NOT_FOUND,
                format!("cluster {cluster} has no backup {id}"),
            )
            .hint("`pgdba backup list` lists the backups")
        })?),
        None => None,
    };
    // The target as PostgreSQL and pgBackRest read it.
    let (ends_before, normalized): (EndsBefore, Option<String>) = match target {
        None => (Box::new(|_| true), None),
        Some(RestoreTarget::Xid(x)) => {
            if x.is_empty() || !x.chars().all(|c| c.is_ascii_digit()) {
                return Err(Failure::new(
                    codes::USAGE,
                    format!("--target-xid {x} is not a transaction id"),
                ));
            }
            (Box::new(|_| true), Some(x.clone()))
        }
        Some(RestoreTarget::Time(t)) => {
            let at = crate::spec::model::parse_target_time(t).ok_or_else(|| {
                Failure::new(
                    codes::USAGE,
                    format!(
                        "--target-time {t} is not a time: RFC 3339 (2026-12-02T06:50:00Z) or PostgreSQL's form (2026-12-02 06:50:00+00)"
                    ),
                )
            })?;
            if at < window.oldest || at > window.newest {
                return Err(outside(format!(
                    "--target-time {} is outside the window",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                )));
            }
            (
                Box::new(move |b: &Backup| b.stopped_at <= at),
                Some(at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()),
            )
        }
        Some(RestoreTarget::Lsn(l)) => {
            let at = lsn_value(l).ok_or_else(|| {
                Failure::new(
                    codes::USAGE,
                    format!("--target-lsn {l} is not a WAL location (0/3000060)"),
                )
            })?;
            let oldest = info
                .backups
                .iter()
                .filter_map(|b| b.lsn_stop.as_deref().and_then(lsn_value))
                .min();
            if oldest.is_some_and(|o| at < o) {
                return Err(outside(format!(
                    "--target-lsn {l} is before the oldest backup's end"
                )));
            }
            (
                Box::new(move |b: &Backup| {
                    b.lsn_stop
                        .as_deref()
                        .and_then(lsn_value)
                        .is_some_and(|s| s <= at)
                }),
                Some(l.clone()),
            )
        }
    };
    let backup = match chosen {
        Some(b) if ends_before(b) => b,
        Some(b) => {
            return Err(outside(format!(
                "backup {} ends after the target; pick an older one",
                b.id
            )));
        }
        None => info
            .backups
            .iter()
            .filter(|b| ends_before(b))
            .max_by_key(|b| b.stopped_at)
            .ok_or_else(|| outside("no backup ends before the target".to_owned()))?,
    };
    Ok((backup, normalized))
}

/// The new cluster's local ports: those given, the others the source's moved up in steps of
/// 10 until nothing listens on them and no cluster of the state holds them.
fn restore_ports(
    g: &Global,
    source: &crate::spec::model::LocalProvider,
    to: &RestoreTo,
    members: u32,
) -> Result<(u16, u16, u16), Failure> {
    use crate::providers::local::layout::{DEFAULT_API_PORT, DEFAULT_ETCD_PORT, DEFAULT_PG_PORT};
    let store = crate::state::StateStore::new(&g.state_dir);
    let mut held: Vec<u16> = Vec::new();
    for s in store.list()? {
        if let Some(spec) = store
            .load(&s.cluster)?
            .as_ref()
            .and_then(super::cluster::last_applied)
        {
            let c = super::cluster::Cluster::new(&spec);
            for claim in c.provider.claims() {
                if let crate::providers::Claim::Port(p, _) = claim {
                    held.push(p);
                }
            }
        }
    }
    let pg0 = source.pg_port.unwrap_or(DEFAULT_PG_PORT);
    let api0 = source.api_port.unwrap_or(DEFAULT_API_PORT);
    let etcd0 = source.etcd_port.unwrap_or(DEFAULT_ETCD_PORT);
    let span = u16::try_from(members).unwrap_or(u16::MAX);
    let free = |p: u16| !held.contains(&p) && crate::providers::local::process::port_free(p);
    for step in 1..=100u16 {
        let at = |given: Option<u16>, base: u16| {
            given.or_else(|| base.checked_add(step.checked_mul(10)?))
        };
        let (Some(pg), Some(api), Some(etcd)) = (
            at(to.pg_port, pg0),
            at(to.api_port, api0),
            at(to.etcd_port, etcd0),
        ) else {
            break;
        };
        let all_given = to.pg_port.is_some() && to.api_port.is_some() && to.etcd_port.is_some();
        let mut ports = vec![etcd, etcd.saturating_add(1)];
        for i in 0..span {
            ports.push(pg.saturating_add(i));
            ports.push(api.saturating_add(i));
        }
        if all_given || ports.iter().all(|p| free(*p)) {
            return Ok((pg, api, etcd));
        }
    }
    Err(Failure::new(
        codes::PORT_IN_USE,
        "no free ports for the new cluster above the source's, in steps of 10",
    )
    .hint("give them with --pg-port, --api-port and --etcd-port"))
}

/// `backup restore --to-cluster NEW [--target-time T | --target-lsn L | --target-xid X]
/// [--backup-id ID]`: point-in-time recovery into a new cluster. The target is checked
/// against the recoverable window before anything is written; then NEW's spec (the source's,
/// renamed, on its own directory and ports, without `spec.backup`, with `spec.restore_from`
/// naming the source's repository, stanza and the backup) is written and applied.
pub(super) async fn restore(
    g: &Global,
    format: crate::output::Format,
    c: &ClusterArg,
    to: RestoreTo,
    wanted: Option<RestoreTarget>,
    backup_id: Option<&str>,
    auto_approve: bool,
) -> Result<Outcome, Failure> {
    use crate::spec::model::{BACKUP_PARAMETERS, Provider, RestoreFrom};
    super::replica::require_approval(auto_approve, "backup restore")?;
    let t = self::target(g, c).await?;
    let target = wanted;
    let Provider::Local(source_local) = t.k.spec.spec.provider.clone() else {
        return Err(Failure::new(
            codes::REFUSED,
            format!(
                "cluster {}: backup restore --to-cluster works on the local provider so far",
                t.k.name
            ),
        ));
    };
    let Some(source_backup) = t.k.spec.spec.backup.clone() else {
        return Err(Failure::new(codes::NO_BACKUP, "no spec.backup"));
    };
    let runner = t.runner();
    let info = backup::info(&runner, t.stanza())
        .await
        .map_err(|e| failure(&t, &e))?;
    let archiver = match t.leader_server() {
        Some(s) => archiver(s).await,
        None => None,
    };
    let Some(window) = backup::window(&info, archiver.as_ref()) else {
        return Err(Failure::new(
            codes::NO_BACKUP,
            format!("cluster {} has no backup to restore", t.k.name),
        )
        .hint("take one with `pgdba backup create --type full`"));
    };
    let (chosen, normalized) = pick_backup(&info, &window, target.as_ref(), backup_id, &t.k.name)?;
    let name = to.name.clone();
    let out = to.out.clone().unwrap_or_else(|| {
        let dir = c
            .file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        dir.join(format!("{name}.yaml"))
    });
    if !matches!(
        out.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    ) {
        return Err(Failure::new(
            codes::USAGE,
            format!(
                "--out {}: backup restore writes a YAML spec (.yaml)",
                out.display()
            ),
        ));
    }
    if std::fs::symlink_metadata(&out).is_ok() {
        return Err(Failure::new(
            codes::EXISTS,
            format!(
                "{} already exists; backup restore does not overwrite it",
                out.display()
            ),
        )
        .hint("give another --out or --to-cluster"));
    }
    let store = crate::state::StateStore::new(&g.state_dir);
    if name == t.k.name || store.load(&name)?.is_some() {
        return Err(Failure::new(
            codes::EXISTS,
            format!("{} already has a cluster {name}", store.dir().display()),
        )
        .hint("pick another --to-cluster"));
    }
    // NEW's spec: the source's, renamed, on its own directory and ports.
    let mut spec = t.k.spec.clone();
    spec.metadata.name = name.clone();
    spec.spec.backup = None;
    for p in BACKUP_PARAMETERS {
        spec.spec.postgres.parameters.remove(p);
    }
    let members = spec.spec.replicas.saturating_add(1);
    let (pg, api, etcd) = restore_ports(g, &source_local, &to, members)?;
    let mut local = source_local.clone();
    let source_root = crate::providers::local::layout::Layout::new(&t.k.spec, &source_local).root;
    let data_dir = match &to.data_dir {
        Some(d) => std::path::absolute(d)
            .map_err(|e| Failure::new(codes::USAGE, format!("--data-dir {}: {e}", d.display())))?,
        None => source_root
            .parent()
            .map(|p| p.join(&name))
            .unwrap_or_else(|| std::path::PathBuf::from(&name)),
    };
    local.data_dir = Some(data_dir.clone());
    local.pg_port = Some(pg);
    local.api_port = Some(api);
    local.etcd_port = Some(etcd);
    spec.spec.provider = Provider::Local(local);
    if let Some(p) = spec.spec.pooler.as_mut().and_then(|p| p.pgbouncer.as_mut()) {
        // The source's pooler port is the source's.
        p.port = Some(pg.saturating_add(u16::try_from(members).unwrap_or(0)));
    }
    let (target_time, target_lsn, target_xid) = match &target {
        Some(RestoreTarget::Time(_)) => (normalized.clone(), None, None),
        Some(RestoreTarget::Lsn(_)) => (None, normalized.clone(), None),
        Some(RestoreTarget::Xid(_)) => (None, None, normalized.clone()),
        None => (None, None, None),
    };
    spec.spec.restore_from = Some(RestoreFrom {
        repository: source_backup.repository.clone(),
        stanza: t.stanza().to_owned(),
        backup_id: Some(chosen.id.clone()),
        target_time,
        target_lsn,
        target_xid,
    });
    // Through JSON: serde_yaml would write the provider's enum as a YAML tag.
    let body = serde_json::to_value(&spec)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_yaml::to_string(&v).map_err(|e| e.to_string()))
        .map_err(|e| Failure::new(codes::INTERNAL, format!("the new spec: {e}")))?;
    let text = format!(
        "# Written by `pgdba backup restore` from cluster {} (backup {}).\n# spec.restore_from is read only when the cluster is first made.\n{body}",
        t.k.name, chosen.id
    );
    crate::spec::edit::create_file(&out, &text).map_err(|e| match e {
        crate::spec::edit::EditError::Exists { .. } => Failure::new(
            codes::EXISTS,
            format!(
                "{} already exists; backup restore does not overwrite it",
                out.display()
            ),
        ),
        crate::spec::edit::EditError::Invalid { .. } => {
            Failure::new(codes::INVALID_SPEC, crate::error_chain(&e))
        }
        _ => Failure::new(codes::IO_ERROR, crate::error_chain(&e)),
    })?;
    let target_json = match &target {
        None => json!({ "type": "end_of_archive" }),
        Some(RestoreTarget::Time(_)) => json!({ "type": "time", "value": normalized }),
        Some(RestoreTarget::Lsn(_)) => json!({ "type": "lsn", "value": normalized }),
        Some(RestoreTarget::Xid(_)) => json!({ "type": "xid", "value": normalized }),
    };
    let mut data = serde_json::Map::new();
    data.insert("source".to_owned(), json!(t.k.name));
    data.insert("cluster".to_owned(), json!(name));
    data.insert("spec".to_owned(), json!(out.display().to_string()));
    data.insert("target".to_owned(), target_json.clone());
    data.insert("backup".to_owned(), json!(chosen));
    data.insert("window".to_owned(), json!(window));
    let wrote = format!(
        "Wrote {}: cluster {name}, restored from backup {} of cluster {} ({}).\n",
        out.display(),
        chosen.id,
        t.k.name,
        match &normalized {
            Some(v) => format!("to {v}"),
            None => "to the end of the archived WAL".to_owned(),
        }
    );
    t.k.record(
        "backup restore",
        true,
        format!(
            "restore of backup {} into new cluster {name} started",
            chosen.id
        ),
        json!({ "cluster": name, "backup": chosen.id, "target": target_json }),
    );
    drop(t);
    let result =
        super::apply::apply_spec(g, format, &out, auto_approve, super::apply::Allow::NOTHING).await;
    super::apply::ending_in_apply(result, data, wrote, |_, _| {
        format!(
            "the spec stays at {}: `pgdba apply -f {}` goes on from there, `pgdba destroy -f {} --confirm` removes what was made",
            out.display(),
            out.display(),
            out.display()
        )
    })
}
