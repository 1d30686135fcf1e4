//! `backup create`, `backup list` and `backup verify-restore`: the CLI edge of
//! [`crate::ops::backup`]. pgBackRest runs beside the current leader's PostgreSQL (the
//! provider's `run_beside`; `backup create` beside a streaming replica with
//! `spec.backup.from_standby`), on the stanza named after the cluster, for a cluster whose spec
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
pub(super) struct Target {
    pub k: Known,
    pub leader: String,
    /// The cluster as Patroni shows it now.
    status: crate::ops::cluster::ClusterStatus,
}

impl Target {
    pub fn runner(&self) -> OnMember<'_> {
        OnMember::new(self.k.cluster.provider.as_ref(), self.leader.clone())
    }

    /// Where `backup create` runs pgBackRest: the leader, or with `spec.backup.from_standby`
    /// a streaming replica (the least behind), whose pgBackRest configuration lists it first
    /// (`pg1`) and the other members after it, so pgBackRest copies its files and only starts
    /// and stops the backup on the primary.
    fn backup_member(&self) -> Result<String, Failure> {
        if !self
            .k
            .spec
            .spec
            .backup
            .as_ref()
            .is_some_and(|b| b.from_standby)
        {
            return Ok(self.leader.clone());
        }
        self.status
            .members
            .iter()
            .filter(|m| m.name != self.leader && m.role != "leader" && m.state == "streaming")
            .min_by_key(|m| (m.lag_bytes.unwrap_or(u64::MAX), m.name.clone()))
            .map(|m| m.name.clone())
            .ok_or_else(|| {
                Failure::new(
                    codes::NO_REPLICA,
                    format!(
                        "cluster {}: spec.backup.from_standby, and no replica streams from {} to back up from",
                        self.k.name, self.leader
                    ),
                )
                .hint("`pgdba cluster status` shows the members; `pgdba plan` starts a stopped one")
            })
    }

    pub fn stanza(&self) -> &str {
        &self.k.name
    }

    pub fn leader_server(&self) -> Option<&Server> {
        self.k.servers.iter().find(|s| s.name == self.leader)
    }
}

pub(super) async fn target(g: &Global, c: &ClusterArg) -> Result<Target, Failure> {
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
    Ok(Target { k, leader, status })
}

/// A [`BackupError`] as the CLI's failure.
pub(super) fn failure(t: &Target, e: &BackupError) -> Failure {
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
    format: crate::output::Format,
    c: &ClusterArg,
    kind: Kind,
    no_verify: bool,
) -> Result<Outcome, Failure> {
    use std::io::IsTerminal as _;
    let t = target(g, c).await?;
    // One operation at a time, and none while an apply runs.
    let _lock = t.k.store.lock(&t.k.name, "backup create")?;
    let member = t.backup_member()?;
    let mut opts = CreateOptions::default();
    if no_verify {
        opts.verify_within = None;
    }
    let runner = OnMember::new(t.k.cluster.provider.as_ref(), member.clone());
    // A bar of the bytes copied, on a terminal.
    let bar =
        (format == crate::output::Format::Table && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(format!("{} backup of {}", kind.as_str(), t.k.name));
            bar
        });
    let report = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let progress: Option<&(dyn Fn(u64, u64) + Send + Sync)> =
        if bar.is_some() { Some(&report) } else { None };
    let result = backup::create(&runner, t.stanza(), kind, &opts, progress).await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match result {
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
                "member": member,
                "backup": b,
            });
            let summary = format!(
                "{} backup {} taken on {} in {}",
                done.backup.kind,
                done.backup.id,
                member,
                seconds(done.duration_ms)
            );
            let verified = done.verification.as_ref().is_none_or(|v| v.verified);
            let summary = if verified {
                summary
            } else {
                format!("{summary}, but pgBackRest's verify finds it or a backup it uses damaged")
            };
            t.k.record("backup create", verified, summary, data["backup"].clone());
            let human = created_text(&t, &member, &done);
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
                json!({ "type": kind, "member": member }),
            );
            Err(f)
        }
    }
}

fn created_text(t: &Target, member: &str, done: &backup::Created) -> String {
    let b = &done.backup;
    let mut out = format!(
        "{} backup {} of cluster {} taken on {} in {}\n",
        b.kind,
        b.id,
        t.k.name,
        member,
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
pub(super) async fn archiver(server: &Server) -> Option<Archiver> {
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
    // Logical backups beside the physical ones, oldest first; not part of the window.
    let logical = super::logical::listed(&t).await;
    let mut backups: Vec<Value> = info
        .backups
        .iter()
        .map(|b| serde_json::to_value(b).unwrap_or(Value::Null))
        .collect();
    let (manifests, unfinished, logical_error) = match logical {
        Ok((m, u)) => (m, u, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e)),
    };
    backups.extend(manifests.iter().map(super::logical::backup_json));
    backups.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
    let data = json!({
        "cluster": t.k.name,
        "stanza": {
            "name": info.stanza,
            "status": info.status,
            "message": info.message,
            "backup_running": info.backup_running,
        },
        "backups": backups,
        "window": window,
        "archive": info.current_archive(),
        "member": t.leader,
        "logical_unfinished": unfinished,
        "logical_error": logical_error,
    });
    let mut human = list_text(&t, &info, &manifests, window.as_ref());
    if !unfinished.is_empty() {
        let _ = writeln!(
            human,
            "Logical backup directories without a manifest (a backup that did not finish; the next logical backup removes them): {}",
            unfinished.join(", ")
        );
    }
    if let Some(e) = &logical_error {
        let _ = writeln!(human, "Logical backups could not be listed: {e}");
    }
    Ok(Outcome::ok(data, human))
}

fn list_text(
    t: &Target,
    info: &Info,
    logical: &[crate::ops::logical::Manifest],
    window: Option<&Window>,
) -> String {
    let mut out = format!(
        "cluster {} (stanza {}: {})\n",
        t.k.name, info.stanza, info.message
    );
    if info.backups.is_empty() && logical.is_empty() {
        out.push_str("No backups.\n");
    } else {
        let mut rows: Vec<Vec<String>> = info.backups.iter().map(backup_row).collect();
        rows.extend(logical.iter().map(|m| {
            vec![
                m.id.clone(),
                "logical".to_owned(),
                backup::format_time(&m.started_at),
                backup::format_time(&m.stopped_at),
                size(m.size_bytes),
                size(m.size_bytes),
                m.lsn_start.clone().unwrap_or_default(),
                m.lsn_stop.clone().unwrap_or_default(),
            ]
        }));
        // By start time (the third column, RFC 3339 in UTC).
        rows.sort_by(|a, b| a[2].cmp(&b[2]));
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
pub(super) fn with_text(f: Failure, text: String) -> Outcome {
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
}
