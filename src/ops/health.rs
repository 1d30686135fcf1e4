//! `health check`: every check of one cluster (or of one plain PostgreSQL server), each `ok`,
//! `warn` or `crit`, with the value it measured, the threshold it was held to and a message for
//! people. [`run`] takes the servers, an optional Patroni part and the [`Thresholds`], and
//! returns a [`Report`]; the CLI prints it (`health check`, `health report`) or serves it
//! (`health serve`).
//!
//! What runs where:
//! - on every member that answers: `connections`, `long_transactions`, `idle_in_transaction`,
//!   `lock_waits`, `pending_restart`, `checkpoints`, and `disk` (also for a member that does not
//!   answer, when its data directory is on this machine);
//! - once, on the leader (the first server that answers when no leader does): `replication` (each
//!   replica, by its row in `pg_stat_replication` on whichever server it streams from),
//!   `xid_wraparound`, `table_bloat`, `archiver`;
//! - with Patroni: `patroni_member` for each member, `patroni_leader`, `patroni_paused`,
//!   `scheduled_switchover` and `dcs`.
//!
//! **Architecture Invariant:** the engine only reads: `SELECT`s on PostgreSQL's statistics
//! views, `GET /patroni`, `statvfs`. It never writes and never prints.
//!
//! **Architecture Invariant:** nothing is left out silently. A member whose PostgreSQL does not
//! answer is `crit` for that member (`reachable`, and `replication` for a replica); a check that
//! cannot run (no privilege, a view this version lacks) is `warn` saying why; a check that does
//! not apply (no Patroni, a data directory on another machine) is in [`Report::skipped`] with
//! the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Server;
use crate::patroni::Reader;

/// How long one check's statement may run.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `statvfs` may take (a hung network file system must not hang the check).
const STATVFS_TIMEOUT: Duration = Duration::from_secs(5);

/// The most databases `table_bloat` reads, and how many at once.
const BLOAT_MAX_DATABASES: usize = 100;
const BLOAT_PARALLEL: usize = 4;

/// Transaction IDs (and multixact IDs) are 32 bits, compared modulo 2^32: a database must be
/// frozen before its oldest XID is 2^31 transactions old, or PostgreSQL stops accepting writes.
pub const XID_LIMIT: f64 = 2_147_483_648.0;

/// The limits the checks are held to. Every field is optional (in YAML, as
/// `spec.health.thresholds`); what is left out keeps its default. Percentages are 0 to 100,
/// durations seconds, sizes bytes; a check is at a level when its value is at or above that
/// level's limit. An optional `crit` left out means the check never goes beyond `warn`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Client backends as a percentage of `max_connections` (default 80).
    pub connections_warn_pct: f64,
    /// Default 95.
    pub connections_crit_pct: f64,
    /// A replica's replay lag (`pg_stat_replication.replay_lag`), seconds (default 30).
    pub replication_lag_warn_seconds: f64,
    /// Default 60.
    pub replication_lag_crit_seconds: f64,
    /// The oldest open transaction of a client session that is not idle (`xact_start`),
    /// seconds (default 300).
    pub long_transaction_warn_seconds: f64,
    /// Default 1800.
    pub long_transaction_crit_seconds: f64,
    /// The longest a session has been idle in a transaction, seconds (default 60).
    pub idle_in_transaction_warn_seconds: f64,
    /// No default: idle transactions are at most `warn` (their age counts in
    /// `long_transaction_*` too).
    pub idle_in_transaction_crit_seconds: Option<f64>,
    /// The longest a session has waited for a lock, seconds (default 10).
    pub lock_wait_warn_seconds: f64,
    /// Default 60.
    pub lock_wait_crit_seconds: f64,
    /// The oldest database's `age(datfrozenxid)` (or multixact age) as a percentage of 2^31,
    /// the wraparound limit (default 50).
    pub xid_age_warn_pct: f64,
    /// Default 75.
    pub xid_age_crit_pct: f64,
    /// A table's dead tuples as a percentage of its live and dead tuples (default 20).
    pub dead_tuples_warn_pct: f64,
    /// Default 50.
    pub dead_tuples_crit_pct: f64,
    /// Tables smaller than this (`pg_table_size`) are left out of `table_bloat`, bytes
    /// (default 10 MiB).
    pub dead_tuples_min_table_bytes: u64,
    /// Checkpoints requested (WAL reached `max_wal_size`, or a `CHECKPOINT`) as a percentage of
    /// all checkpoints since the statistics were reset (default 20).
    pub checkpoints_requested_warn_pct: f64,
    /// No default: checkpoint pressure is at most `warn`.
    pub checkpoints_requested_crit_pct: Option<f64>,
    /// Fewer requested checkpoints than this never warn (a young server, a few base backups)
    /// (default 10).
    pub checkpoints_requested_min: u64,
    /// Archiving that fails now is `crit` when the last WAL file archived successfully is
    /// older than this (or none ever was), seconds; `warn` before (default 300).
    pub archive_failing_crit_seconds: f64,
    /// The file system of a data directory, percentage used (default 80).
    pub disk_used_warn_pct: f64,
    /// Default 90.
    pub disk_used_crit_pct: f64,
    /// With `spec.backup`: the newest backup is older than this, seconds (default 93600,
    /// a daily backup and two hours' grace).
    pub backup_age_warn_seconds: f64,
    /// Default 187200 (twice the warning's).
    pub backup_age_crit_seconds: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            connections_warn_pct: 80.0,
            connections_crit_pct: 95.0,
            replication_lag_warn_seconds: 30.0,
            replication_lag_crit_seconds: 60.0,
            long_transaction_warn_seconds: 300.0,
            long_transaction_crit_seconds: 1800.0,
            idle_in_transaction_warn_seconds: 60.0,
            idle_in_transaction_crit_seconds: None,
            lock_wait_warn_seconds: 10.0,
            lock_wait_crit_seconds: 60.0,
            xid_age_warn_pct: 50.0,
            xid_age_crit_pct: 75.0,
            dead_tuples_warn_pct: 20.0,
            dead_tuples_crit_pct: 50.0,
            dead_tuples_min_table_bytes: 10 * 1024 * 1024,
            checkpoints_requested_warn_pct: 20.0,
            checkpoints_requested_crit_pct: None,
            checkpoints_requested_min: 10,
            archive_failing_crit_seconds: 300.0,
            disk_used_warn_pct: 80.0,
            disk_used_crit_pct: 90.0,
            backup_age_warn_seconds: 93_600.0,
            backup_age_crit_seconds: Some(187_200.0),
        }
    }
}

impl Thresholds {
    /// What is wrong with these thresholds (a negative limit, a percentage over 100, a `warn`
    /// above its `crit`), every problem at once; empty when they can be used.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let pairs: [(&str, f64, Option<f64>, bool); 10] = [
            (
                "backup_age",
                self.backup_age_warn_seconds,
                self.backup_age_crit_seconds,
                false,
            ),
            (
                "connections",
                self.connections_warn_pct,
                Some(self.connections_crit_pct),
                true,
            ),
            (
                "replication_lag",
                self.replication_lag_warn_seconds,
                Some(self.replication_lag_crit_seconds),
                false,
            ),
            (
                "long_transaction",
                self.long_transaction_warn_seconds,
                Some(self.long_transaction_crit_seconds),
                false,
            ),
            (
                "idle_in_transaction",
                self.idle_in_transaction_warn_seconds,
                self.idle_in_transaction_crit_seconds,
                false,
            ),
            (
                "lock_wait",
                self.lock_wait_warn_seconds,
                Some(self.lock_wait_crit_seconds),
                false,
            ),
            (
                "xid_age",
                self.xid_age_warn_pct,
                Some(self.xid_age_crit_pct),
                true,
            ),
            (
                "dead_tuples",
                self.dead_tuples_warn_pct,
                Some(self.dead_tuples_crit_pct),
                true,
            ),
            (
                "checkpoints_requested",
                self.checkpoints_requested_warn_pct,
                self.checkpoints_requested_crit_pct,
                true,
            ),
            (
                "disk_used",
                self.disk_used_warn_pct,
                Some(self.disk_used_crit_pct),
                true,
            ),
        ];
        for (name, warn, crit, pct) in pairs {
            let unit = if pct { "pct" } else { "seconds" };
            for (level, v) in [("warn", Some(warn)), ("crit", crit)] {
                let Some(v) = v else { continue };
                if !v.is_finite() || v < 0.0 {
                    out.push(format!("{name}_{level}_{unit}: {v} is not a number >= 0"));
                } else if pct && v > 100.0 {
                    out.push(format!("{name}_{level}_{unit}: {v} is over 100"));
                }
            }
            if let Some(c) = crit
                && warn > c
            {
                out.push(format!(
                    "{name}_warn_{unit} ({warn}) is above {name}_crit_{unit} ({c})"
                ));
            }
        }
        let a = self.archive_failing_crit_seconds;
        if !a.is_finite() || a < 0.0 {
            out.push(format!(
                "archive_failing_crit_seconds: {a} is not a number >= 0"
            ));
        }
        out
    }

    fn connections(&self) -> Limits {
        Limits::pct(self.connections_warn_pct, Some(self.connections_crit_pct))
    }
    fn replication_lag(&self) -> Limits {
        Limits::seconds(
            self.replication_lag_warn_seconds,
            Some(self.replication_lag_crit_seconds),
        )
    }
    fn long_transaction(&self) -> Limits {
        Limits::seconds(
            self.long_transaction_warn_seconds,
            Some(self.long_transaction_crit_seconds),
        )
    }
    fn idle_in_transaction(&self) -> Limits {
        Limits::seconds(
            self.idle_in_transaction_warn_seconds,
            self.idle_in_transaction_crit_seconds,
        )
    }
    fn lock_wait(&self) -> Limits {
        Limits::seconds(
            self.lock_wait_warn_seconds,
            Some(self.lock_wait_crit_seconds),
        )
    }
    fn xid_age(&self) -> Limits {
        Limits::pct(self.xid_age_warn_pct, Some(self.xid_age_crit_pct))
    }
    fn dead_tuples(&self) -> Limits {
        Limits::pct(self.dead_tuples_warn_pct, Some(self.dead_tuples_crit_pct))
    }
    fn checkpoints(&self) -> Limits {
        Limits::pct(
            self.checkpoints_requested_warn_pct,
            self.checkpoints_requested_crit_pct,
        )
    }
    fn disk(&self) -> Limits {
        Limits::pct(self.disk_used_warn_pct, Some(self.disk_used_crit_pct))
    }
}

/// A check's level. Ordered: `Ok` < `Warn` < `Crit`, so the worst is the maximum.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ok,
    Warn,
    Crit,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Crit => "crit",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a check looks at; its `name` in the JSON. Declared in the order a report lists them:
/// availability first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Does the member's PostgreSQL answer?
    Reachable,
    /// The member as Patroni sees it (`GET /patroni`): running, streaming, stopped, failed.
    PatroniMember,
    /// Does the cluster have exactly one leader?
    PatroniLeader,
    /// Is Patroni paused (maintenance mode: no automatic failover)?
    PatroniPaused,
    /// Is a switchover scheduled?
    ScheduledSwitchover,
    /// Does the DCS (etcd) answer?
    Dcs,
    /// Each replica: streaming, and its replay lag.
    Replication,
    /// Client backends against `max_connections`.
    Connections,
    /// The oldest open transaction of a session that is not idle.
    LongTransactions,
    /// Sessions idle in a transaction.
    IdleInTransaction,
    /// Sessions waiting for a lock.
    LockWaits,
    /// Transaction ID wraparound: the oldest database's frozen XID age.
    XidWraparound,
    /// Dead tuples of the largest offenders (an estimate of bloat).
    TableBloat,
    /// Checkpoints requested (WAL filled `max_wal_size`) against timed ones.
    Checkpoints,
    /// Settings waiting for a restart.
    PendingRestart,
    /// Pages whose data checksum did not match when read (`pg_stat_database`).
    Checksums,
    /// WAL archiving failures.
    Archiver,
    /// The file system of the data directory.
    Disk,
    /// With `spec.backup`: how old the newest backup is.
    BackupAge,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Reachable => "reachable",
            CheckKind::PatroniMember => "patroni_member",
            CheckKind::PatroniLeader => "patroni_leader",
            CheckKind::PatroniPaused => "patroni_paused",
            CheckKind::ScheduledSwitchover => "scheduled_switchover",
            CheckKind::Dcs => "dcs",
            CheckKind::Replication => "replication",
            CheckKind::Connections => "connections",
            CheckKind::LongTransactions => "long_transactions",
            CheckKind::IdleInTransaction => "idle_in_transaction",
            CheckKind::LockWaits => "lock_waits",
            CheckKind::XidWraparound => "xid_wraparound",
            CheckKind::TableBloat => "table_bloat",
            CheckKind::Checkpoints => "checkpoints",
            CheckKind::PendingRestart => "pending_restart",
            CheckKind::Checksums => "checksums",
            CheckKind::Archiver => "archiver",
            CheckKind::Disk => "disk",
            CheckKind::BackupAge => "backup_age",
        }
    }
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The age of the newest backup (`newest`: its id and when it ended) against the thresholds;
/// `crit` when there is none.
pub fn backup_age(
    newest: Option<(&str, chrono::DateTime<chrono::Utc>)>,
    now: chrono::DateTime<chrono::Utc>,
    t: &Thresholds,
) -> Check {
    let threshold = match t.backup_age_crit_seconds {
        Some(c) => format!(
            "warn over {:.0} h, crit over {:.0} h since the newest backup ended",
            t.backup_age_warn_seconds / 3600.0,
            c / 3600.0
        ),
        None => format!(
            "warn over {:.0} h since the newest backup ended",
            t.backup_age_warn_seconds / 3600.0
        ),
    };
    let Some((id, at)) = newest else {
        return Check {
            name: CheckKind::BackupAge,
            member: None,
            status: Status::Crit,
            value: Value::Null,
            threshold,
            message: "the repository holds no backup of the cluster: nothing can be restored (`pgdba backup create --type full`)".to_owned(),
        };
    };
    #[allow(clippy::cast_precision_loss)]
    let age = (now - at).num_seconds().max(0) as f64;
    let status = if t.backup_age_crit_seconds.is_some_and(|c| age >= c) {
        Status::Crit
    } else if age >= t.backup_age_warn_seconds {
        Status::Warn
    } else {
        Status::Ok
    };
    Check {
        name: CheckKind::BackupAge,
        member: None,
        status,
        value: serde_json::json!({ "backup": id, "age_seconds": age }),
        threshold,
        message: format!("the newest backup, {id}, ended {:.1} h ago", age / 3600.0),
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: CheckKind,
    /// The member it is about; `None` for a check of the whole cluster.
    pub member: Option<String>,
    pub status: Status,
    /// What it measured (an object, a number, or null when it could not measure).
    pub value: Value,
    /// The limits it was held to, for people (`warn 80%, crit 95% of max_connections`).
    pub threshold: String,
    pub message: String,
}

/// A check that does not apply here, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub name: CheckKind,
    pub member: Option<String>,
    pub reason: String,
}

/// Every check of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The worst of the checks' statuses (`ok` when there is none).
    pub status: Status,
    /// In [`CheckKind`] order, then in the servers' order.
    pub checks: Vec<Check>,
    pub skipped: Vec<Skipped>,
    /// How many of the servers' PostgreSQL answered.
    pub answered: usize,
    /// How many servers there are.
    pub servers: usize,
}

impl Report {
    /// Add a check made outside [`run`] (the backup's age); the status stays the worst.
    pub fn push(&mut self, check: Check) {
        self.status = self.status.max(check.status);
        self.checks.push(check);
    }

    /// No server answered at all: the checks could not run.
    pub fn none_answered(&self) -> bool {
        self.answered == 0
    }

    /// How many checks are at `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// What [`run`] checks.
pub struct Input<'a> {
    pub servers: &'a [Server],
    /// The cluster's Patroni, when Patroni runs it; `None` for a plain PostgreSQL server (the
    /// Patroni and DCS checks are then in `skipped`).
    pub patroni: Option<PatroniInput<'a>>,
    pub thresholds: &'a Thresholds,
}

/// The Patroni side of a cluster.
pub struct PatroniInput<'a> {
    pub reader: &'a Reader,
    /// Each member's name and REST API URL.
    pub members: Vec<ApiMember>,
    /// Whether the DCS answers, as the caller found out; `None` when it could not ask (the
    /// `dcs` check is then in `skipped`).
    pub dcs_healthy: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiMember {
    pub name: String,
    pub api_url: String,
}

impl<'a> PatroniInput<'a> {
    /// The members of `servers` that have a REST API URL.
    pub fn from_servers(
        reader: &'a Reader,
        servers: &[Server],
        dcs_healthy: Option<bool>,
    ) -> PatroniInput<'a> {
        PatroniInput {
            reader,
            members: servers
                .iter()
                .filter_map(|s| {
                    s.api_url.as_ref().map(|u| ApiMember {
                        name: s.name.clone(),
                        api_url: u.clone(),
                    })
                })
                .collect(),
            dcs_healthy,
        }
    }
}

/// Runs every check that applies, concurrently across servers.
pub async fn run(input: &Input<'_>) -> Report {
    let t = input.thresholds;
    let (sessions, statuses) = tokio::join!(
        join_all(input.servers.iter().map(open)),
        patroni_statuses(input.patroni.as_ref()),
    );
    let probes: Vec<Probe<'_>> = input
        .servers
        .iter()
        .zip(sessions)
        .map(|(server, session)| Probe { server, session })
        .collect();
    let mut checks = Vec::new();
    let mut skipped = Vec::new();

    for p in &probes {
        checks.push(reachable_check(p));
    }

    // Patroni's view, and the leader it names.
    let mut patroni_leader = None;
    match (&input.patroni, &statuses) {
        (Some(pi), Some(statuses)) => {
            for (name, status) in statuses {
                checks.push(patroni_member_check(name, status));
            }
            checks.extend(patroni_cluster_checks(statuses));
            patroni_leader = leader_of(statuses);
            match dcs_check(pi.dcs_healthy) {
                Ok(c) => checks.push(c),
                Err(s) => skipped.push(s),
            }
        }
        _ => {
            for kind in [
                CheckKind::PatroniMember,
                CheckKind::PatroniLeader,
                CheckKind::PatroniPaused,
                CheckKind::ScheduledSwitchover,
                CheckKind::Dcs,
            ] {
                skipped.push(Skipped {
                    name: kind,
                    member: None,
                    reason: "a plain PostgreSQL server: no Patroni, no DCS".to_owned(),
                });
            }
        }
    }
    let patroni_pending: BTreeMap<&str, bool> = statuses
        .iter()
        .flatten()
        .filter_map(|(name, s)| {
            s.as_ref()
                .ok()
                .map(|v| (name.as_str(), crate::patroni::pending_restart(v).0))
        })
        .collect();

    // Each member's own checks, concurrently.
    let per_member = join_all(probes.iter().map(|p| {
        let pending = patroni_pending.get(p.server.name.as_str()).copied();
        member_checks(p, t, pending)
    }))
    .await;
    for (c, s) in per_member {
        checks.extend(c);
        skipped.extend(s);
    }

    // The leader: Patroni's, or the server that is not in recovery.
    let leader = leader_probe(&probes, patroni_leader.as_deref());
    let seen: Vec<Seen<'_>> = probes
        .iter()
        .map(|p| Seen {
            name: &p.server.name,
            facts: p.session.as_ref().map(|s| &s.facts).map_err(String::as_str),
        })
        .collect();
    let (c, s) = replication_checks(&seen, leader.map(|p| p.server.name.as_str()), t);
    checks.extend(c);
    skipped.extend(s);

    // The cluster's own checks, once: on the leader, or on the first server that answers.
    let target = leader
        .filter(|p| p.session.is_ok())
        .or_else(|| probes.iter().find(|p| p.session.is_ok()));
    match target {
        Some(p) => {
            if let Ok(session) = &p.session {
                let note = match leader {
                    Some(l) if std::ptr::eq(l, p) => String::new(),
                    _ => format!(" (read on {}: no leader answers)", p.server.name),
                };
                checks.extend(cluster_checks(p.server, session, t, &note).await);
            }
        }
        None => {
            for kind in [
                CheckKind::XidWraparound,
                CheckKind::TableBloat,
                CheckKind::Archiver,
            ] {
                skipped.push(Skipped {
                    name: kind,
                    member: None,
                    reason: "no server's PostgreSQL answers".to_owned(),
                });
            }
        }
    }

    // In kind order, then in the servers' order (the sort is stable).
    checks.sort_by_key(|c| c.name);
    skipped.sort_by_key(|s| s.name);
    Report {
        status: checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok),
        checks,
        skipped,
        answered: probes.iter().filter(|p| p.session.is_ok()).count(),
        servers: probes.len(),
    }
}

// ---------------------------------------------------------------------------------------------
// Limits and their classification (pure).

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Pct,
    Seconds,
}

/// A check's levels: at or above `warn` is `Warn`, at or above `crit` is `Crit`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Limits {
    warn: f64,
    crit: Option<f64>,
    unit: Unit,
}

impl Limits {
    fn pct(warn: f64, crit: Option<f64>) -> Limits {
        Limits {
            warn,
            crit,
            unit: Unit::Pct,
        }
    }

    fn seconds(warn: f64, crit: Option<f64>) -> Limits {
        Limits {
            warn,
            crit,
            unit: Unit::Seconds,
        }
    }

    fn status(&self, value: f64) -> Status {
        if self.crit.is_some_and(|c| value >= c) {
            Status::Crit
        } else if value >= self.warn {
            Status::Warn
        } else {
            Status::Ok
        }
    }

    fn show(&self, v: f64) -> String {
        match self.unit {
            Unit::Pct => format!("{}%", number(v)),
            Unit::Seconds => duration(v),
        }
    }

    /// `warn 80%, crit 95%`, followed by `of`.
    fn describe(&self, of: &str) -> String {
        let mut s = format!("warn {}", self.show(self.warn));
        if let Some(c) = self.crit {
            s.push_str(&format!(", crit {}", self.show(c)));
        }
        if !of.is_empty() {
            s.push(' ');
            s.push_str(of);
        }
        s
    }
}

/// `80`, `12.5`.
fn number(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A duration for people: `0.4 s`, `42 s`, `5 min`, `12 min 3 s`, `2 h 5 min`, `3 d 4 h`.
fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return format!("{secs} s");
    }
    if secs < 10.0 && (secs - secs.round()).abs() >= 0.05 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    match s {
        0..120 => format!("{s} s"),
        120..7200 if s.is_multiple_of(60) => format!("{} min", s / 60),
        120..7200 => format!("{} min {} s", s / 60, s % 60),
        7200..172_800 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// A size as `pg_size_pretty` writes it: `512 bytes`, `12 kB`, `3 MB`, `1.5 GB`.
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
    format!("{} {unit}", number(v))
}

fn pct_of(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        0.0
    } else {
        part * 100.0 / whole
    }
}

/// `checkpoints`: requested checkpoints as a share of all; at most `warn` unless a `crit` is
/// set, and never below `checkpoints_requested_min` requested ones.
fn checkpoint_status(timed: i64, requested: i64, t: &Thresholds) -> (Status, f64) {
    let total = (timed + requested).max(0) as f64;
    let pct = pct_of(requested.max(0) as f64, total);
    if requested.max(0) as u64 <= t.checkpoints_requested_min.saturating_sub(1) {
        return (Status::Ok, pct);
    }
    (t.checkpoints().status(pct), pct)
}

/// `pg_stat_archiver` and `archive_mode`, as read.
#[derive(Debug, Clone, Default, PartialEq)]
struct ArchiverFacts {
    mode: String,
    in_recovery: bool,
    archived: i64,
    failed: i64,
    last_archived_wal: Option<String>,
    last_archived_time: Option<String>,
    last_failed_wal: Option<String>,
    last_failed_time: Option<String>,
    /// Seconds since the last WAL file was archived.
    since_archived: Option<f64>,
    /// The last attempt failed (a failure after the last success).
    failing: bool,
}

fn archiver_status(f: &ArchiverFacts, t: &Thresholds) -> (Status, String) {
    if f.mode == "off" {
        return (Status::Ok, "archiving off (archive_mode = off)".to_owned());
    }
    if f.in_recovery && f.mode != "always" {
        return (
            Status::Ok,
            format!(
                "a standby with archive_mode = {}: it archives once promoted",
                f.mode
            ),
        );
    }
    if f.failing {
        let wal = f.last_failed_wal.as_deref().unwrap_or("?");
        let when = f.last_failed_time.as_deref().unwrap_or("?");
        return match (f.since_archived, &f.last_archived_time) {
            (Some(since), Some(at)) if since < t.archive_failing_crit_seconds => (
                Status::Warn,
                format!(
                    "archiving fails: {wal} failed at {when} ({} failures since the statistics were reset); the last success was {} ago, at {at}",
                    f.failed,
                    duration(since)
                ),
            ),
            (Some(since), Some(at)) => (
                Status::Crit,
                format!(
                    "archiving fails: {wal} failed at {when}, and nothing was archived for {} (since {at}); WAL piles up in pg_wal and point-in-time recovery stops at the last archived file",
                    duration(since)
                ),
            ),
            _ => (
                Status::Crit,
                format!(
                    "archiving fails and nothing was ever archived: {wal} failed at {when} ({} failures); check archive_command and the archive's storage",
                    f.failed
                ),
            ),
        };
    }
    let message = match (&f.last_archived_wal, f.failed) {
        (None, _) => format!("archive_mode = {}: no WAL file archived yet", f.mode),
        (Some(wal), 0) => format!(
            "{} WAL files archived, the last {wal}{}",
            f.archived,
            f.since_archived
                .map(|s| format!(" {} ago", duration(s)))
                .unwrap_or_default()
        ),
        (Some(wal), n) => format!(
            "{} WAL files archived, the last {wal}; {n} failures earlier (the last at {}), archiving works since",
            f.archived,
            f.last_failed_time.as_deref().unwrap_or("?")
        ),
    };
    (Status::Ok, message)
}

/// Space on one file system, as `df` counts it: used against what is usable (the blocks
/// reserved for root left out).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    total: u64,
    used: u64,
    available: u64,
    fsid: u64,
}

impl Usage {
    fn used_pct(&self) -> f64 {
        pct_of(self.used as f64, (self.used + self.available) as f64)
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions.

struct Probe<'a> {
    server: &'a Server,
    session: Result<Session, String>,
}

/// An open session on one server, and what every check needs to know about it.
struct Session {
    client: tokio_postgres::Client,
    facts: Facts,
}

impl std::ops::Deref for Session {
    type Target = Facts;
    fn deref(&self) -> &Facts {
        &self.facts
    }
}

/// What the first queries of a session tell about its server.
#[derive(Debug, Clone, PartialEq)]
struct Facts {
    version_num: i32,
    version: String,
    in_recovery: bool,
    /// Has the privileges of `pg_read_all_stats`: sees other roles' sessions.
    sees_all: bool,
    user: String,
    /// `data_directory`, when the role may read it.
    data_directory: Option<String>,
    /// The WAL receiver's status, on a standby.
    wal_receiver: Option<String>,
    /// Its `pg_stat_replication`.
    replication: Result<Vec<ReplRow>, String>,
}

/// One server as the replication check sees it: its facts, or why its PostgreSQL does not
/// answer.
#[derive(Clone, Copy)]
struct Seen<'a> {
    name: &'a str,
    facts: Result<&'a Facts, &'a str>,
}

/// One row of `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq)]
struct ReplRow {
    /// The server it streams from.
    upstream: String,
    application_name: String,
    client_addr: Option<String>,
    state: Option<String>,
    sync_state: Option<String>,
    lag_bytes: Option<i64>,
    lag_seconds: Option<f64>,
}

fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => crate::error_chain(e),
    }
}

async fn open(server: &Server) -> Result<Session, String> {
    let client = server
        .connect(STATEMENT_TIMEOUT)
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4, \
             current_setting('server_version'), pg_is_in_recovery(), \
             pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'), current_user::text, \
             (SELECT setting FROM pg_settings WHERE name = 'data_directory')",
            &[],
        )
        .await
        .map_err(|e| pg_error(&e))?;
    let in_recovery: bool = row.get(2);
    let wal_receiver = if in_recovery {
        match client
            .query_opt("SELECT status::text FROM pg_stat_wal_receiver", &[])
            .await
        {
            Ok(Some(r)) => r.get::<_, Option<String>>(0),
            Ok(None) => Some("not running".to_owned()),
            Err(e) => {
                tracing::debug!("{}: pg_stat_wal_receiver: {}", server.name, pg_error(&e));
                None
            }
        }
    } else {
        None
    };
    let replication = client
        .query(
            "SELECT application_name::text, client_addr::text, state::text, sync_state::text, \
             pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
             ELSE pg_current_wal_lsn() END, replay_lsn)::int8, \
             EXTRACT(EPOCH FROM replay_lag)::float8 \
             FROM pg_stat_replication ORDER BY application_name",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| ReplRow {
                    upstream: server.name.clone(),
                    application_name: r.get::<_, Option<String>>(0).unwrap_or_default(),
                    client_addr: r.get(1),
                    state: r.get(2),
                    sync_state: r.get(3),
                    lag_bytes: r.get(4),
                    lag_seconds: r.get(5),
                })
                .collect()
        })
        .map_err(|e| pg_error(&e));
    Ok(Session {
        facts: Facts {
            version_num: row.get(0),
            version: row.get(1),
            in_recovery,
            sees_all: row.get(3),
            user: row.get(4),
            data_directory: row.get(5),
            wal_receiver,
            replication,
        },
        client,
    })
}

fn reachable_check(p: &Probe<'_>) -> Check {
    let threshold = "crit when PostgreSQL does not answer".to_owned();
    match &p.session {
        Ok(s) => Check {
            name: CheckKind::Reachable,
            member: Some(p.server.name.clone()),
            status: Status::Ok,
            value: json!({
                "version": s.version,
                "role": if s.in_recovery { "standby" } else { "primary" },
            }),
            threshold,
            message: format!(
                "PostgreSQL {} answers ({})",
                s.version,
                if s.in_recovery {
                    "a standby, in recovery"
                } else {
                    "a primary"
                }
            ),
        },
        Err(e) => Check {
            name: CheckKind::Reachable,
            member: Some(p.server.name.clone()),
            status: Status::Crit,
            value: json!({ "error": e }),
            threshold,
            message: format!(
                "{}'s PostgreSQL ({}:{}) does not answer: {e}",
                p.server.name, p.server.host, p.server.port
            ),
        },
    }
}

fn leader_probe<'p, 'a>(probes: &'p [Probe<'a>], patroni: Option<&str>) -> Option<&'p Probe<'a>> {
    if let Some(name) = patroni
        && let Some(p) = probes.iter().find(|p| p.server.name == name)
    {
        return Some(p);
    }
    probes
        .iter()
        .find(|p| p.session.as_ref().is_ok_and(|s| !s.in_recovery))
}

// ---------------------------------------------------------------------------------------------
// Patroni (pure once the answers are in).

type Statuses = Vec<(String, Result<Value, String>)>;

async fn patroni_statuses(p: Option<&PatroniInput<'_>>) -> Option<Statuses> {
    let p = p?;
    let answers = join_all(p.members.iter().map(|m| async move {
        let status = p
            .reader
            .status(&m.api_url)
            .await
            .map_err(|e| crate::error_chain(&e));
        (m.name.clone(), status)
    }))
    .await;
    Some(answers)
}

fn str_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// Patroni states a member passes through on its way to `running`.
fn is_transitional(state: &str) -> bool {
    matches!(
        state,
        "starting"
            | "restarting"
            | "stopping"
            | "creating replica"
            | "running custom bootstrap script"
            | "initializing new cluster"
            | "bootstrapping"
            | "restart pending"
    )
}

fn patroni_member_check(name: &str, status: &Result<Value, String>) -> Check {
    let threshold =
        "crit when not running (or a replica not streaming), warn while starting".to_owned();
    let v = match status {
        Ok(v) => v,
        Err(e) => {
            return Check {
                name: CheckKind::PatroniMember,
                member: Some(name.to_owned()),
                status: Status::Crit,
                value: json!({ "error": e }),
                threshold,
                message: format!("{name}'s Patroni REST API does not answer: {e}"),
            };
        }
    };
    let state = str_field(v, "state").unwrap_or("unknown");
    let role = str_field(v, "role").unwrap_or("unknown");
    let replication_state = str_field(v, "replication_state");
    let is_replica = crate::patroni::parse_role(role) == crate::observe::model::Role::Replica;
    let (status, message) = if state == "running" {
        match replication_state {
            Some(rs) if is_replica && rs != "streaming" => (
                Status::Crit,
                format!("{name} runs as a {role} but is not streaming ({rs})"),
            ),
            Some(rs) => (Status::Ok, format!("{name} runs as {role}, {rs}")),
            None => (Status::Ok, format!("{name} runs as {role}")),
        }
    } else if is_transitional(state) {
        (Status::Warn, format!("{name} is {state} (role {role})"))
    } else {
        let why = if crate::patroni::is_terminal_state(state) {
            ": Patroni does not leave this state by itself (see its log; the member may need `reinit`)"
        } else {
            ""
        };
        (
            Status::Crit,
            format!("{name}'s PostgreSQL is {state} (role {role}){why}"),
        )
    };
    Check {
        name: CheckKind::PatroniMember,
        member: Some(name.to_owned()),
        status,
        value: json!({
            "state": state,
            "role": role,
            "replication_state": replication_state,
            "timeline": v.get("timeline"),
        }),
        threshold,
        message,
    }
}

/// The running leader Patroni's answers name, when exactly one does.
fn leader_of(statuses: &[(String, Result<Value, String>)]) -> Option<String> {
    let leaders: Vec<&str> = statuses
        .iter()
        .filter_map(|(name, s)| {
            let v = s.as_ref().ok()?;
            (crate::patroni::parse_role(str_field(v, "role")?)
                == crate::observe::model::Role::Leader
                && str_field(v, "state") == Some("running"))
            .then_some(name.as_str())
        })
        .collect();
    match leaders.as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    }
}

/// `patroni_leader`, `patroni_paused` and `scheduled_switchover`, from every member's answer.
fn patroni_cluster_checks(statuses: &[(String, Result<Value, String>)]) -> Vec<Check> {
    let answers: Vec<(&str, &Value)> = statuses
        .iter()
        .filter_map(|(n, s)| s.as_ref().ok().map(|v| (n.as_str(), v)))
        .collect();
    let mut out = Vec::new();

    let leaders: Vec<&str> = answers
        .iter()
        .filter(|(_, v)| {
            str_field(v, "role").map(crate::patroni::parse_role)
                == Some(crate::observe::model::Role::Leader)
        })
        .map(|(n, _)| *n)
        .collect();
    let unlocked = answers
        .iter()
        .any(|(_, v)| v.get("cluster_unlocked").and_then(Value::as_bool) == Some(true));
    let threshold = "crit without exactly one running leader".to_owned();
    let (status, member, message) =
        if answers.is_empty() {
            (
                Status::Crit,
                None,
                "no member's Patroni REST API answers: the leader is unknown".to_owned(),
            )
        } else {
            match leaders.as_slice() {
            [] if unlocked => (
                Status::Crit,
                None,
                "no leader: the leader key in the DCS is free (Patroni reports cluster_unlocked)"
                    .to_owned(),
            ),
            [] => (
                Status::Crit,
                None,
                format!(
                    "no leader among the members that answer ({})",
                    answers.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            ),
            [one] => {
                let state = answers
                    .iter()
                    .find(|(n, _)| n == one)
                    .and_then(|(_, v)| str_field(v, "state"))
                    .unwrap_or("unknown");
                if state == "running" {
                    (Status::Ok, Some(*one), format!("{one} leads"))
                } else {
                    (
                        Status::Crit,
                        Some(*one),
                        format!("{one} holds the leader role but its PostgreSQL is {state}"),
                    )
                }
            }
            many => (
                Status::Crit,
                None,
                format!("several members claim the leader role: {}", many.join(", ")),
            ),
        }
        };
    out.push(Check {
        name: CheckKind::PatroniLeader,
        member: member.map(str::to_owned),
        status,
        value: json!({ "leaders": leaders, "cluster_unlocked": unlocked }),
        threshold,
        message,
    });

    let paused: Vec<&str> = answers
        .iter()
        .filter(|(_, v)| v.get("pause").and_then(Value::as_bool) == Some(true))
        .map(|(n, _)| *n)
        .collect();
    out.push(Check {
        name: CheckKind::PatroniPaused,
        member: None,
        status: if paused.is_empty() {
            Status::Ok
        } else {
            Status::Warn
        },
        value: json!(!paused.is_empty()),
        threshold: "warn when paused".to_owned(),
        message: if paused.is_empty() {
            "not paused: Patroni fails over automatically".to_owned()
        } else {
            "paused (maintenance mode): Patroni does not fail over; `patronictl resume` ends it"
                .to_owned()
        },
    });

    let scheduled = answers
        .iter()
        .find_map(|(_, v)| v.get("scheduled_switchover").filter(|s| !s.is_null()));
    out.push(Check {
        name: CheckKind::ScheduledSwitchover,
        member: None,
        status: if scheduled.is_some() {
            Status::Warn
        } else {
            Status::Ok
        },
        value: scheduled.cloned().unwrap_or(Value::Null),
        threshold: "warn when one is scheduled".to_owned(),
        message: match scheduled {
            Some(s) => format!(
                "a switchover is scheduled at {} from {} to {}",
                str_field(s, "at").unwrap_or("?"),
                str_field(s, "from").unwrap_or("?"),
                str_field(s, "to").unwrap_or("any member")
            ),
            None => "no switchover scheduled".to_owned(),
        },
    });
    out
}

fn dcs_check(healthy: Option<bool>) -> Result<Check, Skipped> {
    let threshold = "crit when the DCS does not answer".to_owned();
    match healthy {
        Some(true) => Ok(Check {
            name: CheckKind::Dcs,
            member: None,
            status: Status::Ok,
            value: json!(true),
            threshold,
            message: "the DCS answers".to_owned(),
        }),
        Some(false) => Ok(Check {
            name: CheckKind::Dcs,
            member: None,
            status: Status::Crit,
            value: json!(false),
            threshold,
            message: "the DCS does not answer: Patroni cannot renew the leader key, and the leader steps down once its TTL runs out (unless failsafe_mode)".to_owned(),
        }),
        None => Err(Skipped {
            name: CheckKind::Dcs,
            member: None,
            reason: "whether the DCS answers could not be asked".to_owned(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Replication.

fn replication_checks(
    probes: &[Seen<'_>],
    leader: Option<&str>,
    t: &Thresholds,
) -> (Vec<Check>, Vec<Skipped>) {
    let limits = t.replication_lag();
    let threshold = format!(
        "crit when not streaming; replay lag {}",
        limits.describe("")
    );
    let mut checks = Vec::new();
    let mut skipped = Vec::new();
    let rows: Vec<&ReplRow> = probes
        .iter()
        .filter_map(|p| p.facts.ok())
        .filter_map(|s| s.replication.as_ref().ok())
        .flatten()
        .collect();
    let unreadable: Vec<String> = probes
        .iter()
        .filter_map(|p| match p.facts {
            Ok(s) => s
                .replication
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", p.name)),
            Err(_) => None,
        })
        .collect();
    let check = |member: &str, status: Status, value: Value, message: String| Check {
        name: CheckKind::Replication,
        member: Some(member.to_owned()),
        status,
        value,
        threshold: threshold.clone(),
        message,
    };

    if probes.len() == 1 {
        // A plain server: its standbys are whatever streams from it (or, on a standby, itself).
        let p = &probes[0];
        match p.facts {
            Err(_) => skipped.push(Skipped {
                name: CheckKind::Replication,
                member: Some(p.name.to_owned()),
                reason: "its PostgreSQL does not answer".to_owned(),
            }),
            Ok(s) if s.in_recovery => {
                let receiver = s.wal_receiver.as_deref().unwrap_or("unknown");
                let status = if receiver == "streaming" {
                    Status::Ok
                } else {
                    Status::Crit
                };
                checks.push(check(
                    p.name,
                    status,
                    json!({ "state": receiver }),
                    format!("{} is a standby; its WAL receiver is {receiver}", p.name),
                ));
            }
            Ok(s) => match &s.replication {
                Err(e) => checks.push(check(
                    p.name,
                    Status::Warn,
                    Value::Null,
                    format!("could not read pg_stat_replication: {e}"),
                )),
                Ok(rows) if rows.is_empty() => skipped.push(Skipped {
                    name: CheckKind::Replication,
                    member: Some(p.name.to_owned()),
                    reason: format!(
                        "no standby streams from {} (pg_stat_replication is empty)",
                        p.name
                    ),
                }),
                Ok(rows) => {
                    for r in rows {
                        let name = if r.application_name.is_empty() {
                            r.client_addr
                                .clone()
                                .unwrap_or_else(|| "standby".to_owned())
                        } else {
                            r.application_name.clone()
                        };
                        let (status, message) = classify_row(&name, r, limits, s);
                        checks.push(check(&name, status, row_value(r), message));
                    }
                }
            },
        }
        return (checks, skipped);
    }

    for p in probes {
        let name = p.name;
        if Some(name) == leader {
            continue;
        }
        let row = rows.iter().find(|r| r.application_name == name);
        let (status, value, message) = match (row, p.facts) {
            (Some(r), _) => {
                let viewer = probes
                    .iter()
                    .find(|q| q.name == r.upstream)
                    .and_then(|q| q.facts.ok());
                let (status, message) = match viewer {
                    Some(v) => classify_row(name, r, limits, v),
                    None => (Status::Warn, "no session on its upstream".to_owned()),
                };
                (status, row_value(r), message)
            }
            (None, Err(e)) => (
                Status::Crit,
                json!({ "state": null, "error": e }),
                format!("{name} does not stream: its PostgreSQL does not answer ({e})"),
            ),
            (None, Ok(s)) if !s.in_recovery => (
                Status::Crit,
                json!({ "state": "primary" }),
                format!(
                    "{name} is not in recovery: it runs as a primary beside {} (split brain?)",
                    leader.unwrap_or("the leader")
                ),
            ),
            (None, Ok(s)) => {
                let receiver = s.wal_receiver.as_deref().unwrap_or("unknown");
                let leader_seen = leader.is_some_and(|l| {
                    probes
                        .iter()
                        .any(|q| q.name == l && q.facts.is_ok_and(|s| s.replication.is_ok()))
                });
                if leader_seen || receiver != "streaming" {
                    (
                        Status::Crit,
                        json!({ "state": receiver }),
                        format!(
                            "{name} does not stream from {}: no row in pg_stat_replication; its WAL receiver is {receiver}",
                            leader.unwrap_or("the leader")
                        ),
                    )
                } else {
                    (
                        Status::Warn,
                        json!({ "state": receiver }),
                        format!(
                            "{name}'s WAL receiver is streaming, but no leader's pg_stat_replication could be read to measure its lag"
                        ),
                    )
                }
            }
        };
        checks.push(check(name, status, value, message));
    }
    if !unreadable.is_empty() && checks.iter().all(|c| c.status == Status::Ok) {
        checks.push(Check {
            name: CheckKind::Replication,
            member: None,
            status: Status::Warn,
            value: Value::Null,
            threshold: threshold.clone(),
            message: format!(
                "could not read pg_stat_replication on {}",
                unreadable.join("; ")
            ),
        });
    }
    (checks, skipped)
}

fn row_value(r: &ReplRow) -> Value {
    json!({
        "state": r.state,
        "sync_state": r.sync_state,
        "lag_bytes": r.lag_bytes.map(|b| b.max(0)),
        "lag_seconds": r.lag_seconds.unwrap_or(0.0),
        "upstream": r.upstream,
        "client_addr": r.client_addr,
    })
}

fn classify_row(name: &str, r: &ReplRow, limits: Limits, viewer: &Facts) -> (Status, String) {
    let Some(state) = &r.state else {
        return (
            Status::Warn,
            format!(
                "{}'s role {} cannot see the replication state (needs pg_monitor or pg_read_all_stats)",
                r.upstream, viewer.user
            ),
        );
    };
    if state != "streaming" {
        return (
            Status::Crit,
            format!("{name} is {state}, not streaming (from {})", r.upstream),
        );
    }
    // `replay_lag` is null once a replica caught up and no WAL comes: no lag.
    let secs = r.lag_seconds.unwrap_or(0.0);
    let bytes = r.lag_bytes.unwrap_or(0).max(0) as u64;
    (
        limits.status(secs),
        format!(
            "{name} streams from {} ({}): replay lag {}, {} behind",
            r.upstream,
            r.sync_state.as_deref().unwrap_or("async"),
            duration(secs),
            size(bytes)
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Each member's checks.

async fn member_checks(
    p: &Probe<'_>,
    t: &Thresholds,
    patroni_pending: Option<bool>,
) -> (Vec<Check>, Vec<Skipped>) {
    let member = &p.server.name;
    let mut checks = Vec::new();
    let mut skipped = Vec::new();
    if let Ok(s) = &p.session {
        checks.push(connections(member, s, t).await);
        checks.push(long_transactions(member, s, t).await);
        checks.push(idle_in_transaction(member, s, t).await);
        checks.push(lock_waits(member, s, t).await);
        checks.push(checkpoints(member, s, t).await);
        checks.push(pending_restart(member, s, patroni_pending).await);
        checks.push(checksums(member, s).await);
    }
    match data_dir(p) {
        Ok((dir, how)) => checks.extend(disk(member, &dir, how, t).await),
        Err(reason) => skipped.push(Skipped {
            name: CheckKind::Disk,
            member: Some(member.clone()),
            reason,
        }),
    }
    (checks, skipped)
}

fn could_not(kind: CheckKind, member: &str, threshold: String, what: &str, e: &str) -> Check {
    Check {
        name: kind,
        member: Some(member.to_owned()),
        status: Status::Warn,
        value: Value::Null,
        threshold,
        message: format!("could not {what}: {e}"),
    }
}

/// The note for a role that sees only its own sessions' state.
fn own_sessions_only(s: &Session) -> Option<String> {
    (!s.sees_all).then(|| {
        format!(
            "; role {} sees only its own sessions' state (grant it pg_monitor or pg_read_all_stats)",
            s.user
        )
    })
}

async fn connections(member: &str, s: &Session, t: &Thresholds) -> Check {
    let limits = t.connections();
    let threshold = limits.describe("of max_connections");
    let row = match s
        .client
        .query_one(
            // Another role's session hides its backend_type from a role without
            // pg_read_all_stats, but not its user: counted, as nearly as it can be.
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend' \
             OR (backend_type IS NULL AND usesysid IS NOT NULL))::int8, \
             current_setting('max_connections')::int8, \
             current_setting('superuser_reserved_connections')::int8 FROM pg_stat_activity",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return could_not(
                CheckKind::Connections,
                member,
                threshold,
                "count the connections",
                &pg_error(&e),
            );
        }
    };
    let (used, max, reserved): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let pct = pct_of(used as f64, max as f64);
    Check {
        name: CheckKind::Connections,
        member: Some(member.to_owned()),
        status: limits.status(pct),
        value: json!({
            "used": used,
            "max_connections": max,
            "superuser_reserved": reserved,
            "pct": round1(pct),
        }),
        threshold,
        message: format!(
            "{used} of {max} client connections ({}%; {reserved} reserved for superusers){}",
            number(pct),
            if s.sees_all {
                String::new()
            } else {
                format!(
                    "; approximate: role {} does not see other roles' backend types (grant it pg_monitor or pg_read_all_stats)",
                    s.user
                )
            }
        ),
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The session at the head of a list `pg_stat_activity` orders, and how many there are.
struct Oldest {
    pid: i32,
    user: Option<String>,
    database: Option<String>,
    state: Option<String>,
    seconds: f64,
    count: i64,
}

fn who(o: &Oldest) -> String {
    format!(
        "pid {} ({}@{})",
        o.pid,
        o.user.as_deref().unwrap_or("?"),
        o.database.as_deref().unwrap_or("?")
    )
}

async fn oldest(s: &Session, sql: &str) -> Result<Option<Oldest>, String> {
    let row = s
        .client
        .query_opt(sql, &[])
        .await
        .map_err(|e| pg_error(&e))?;
    Ok(row.map(|r| Oldest {
        pid: r.get(0),
        user: r.get(1),
        database: r.get(2),
        state: r.get(3),
        seconds: r.get::<_, Option<f64>>(4).unwrap_or(0.0),
        count: r.get(5),
    }))
}

async fn long_transactions(member: &str, s: &Session, t: &Thresholds) -> Check {
    let limits = t.long_transaction();
    let threshold = limits.describe("for the oldest open transaction");
    let found = oldest(
        s,
        "SELECT pid, usename::text, datname::text, state::text, \
         EXTRACT(EPOCH FROM now() - xact_start)::float8, count(*) OVER ()::int8 \
         FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
         AND xact_start IS NOT NULL AND state IS DISTINCT FROM 'idle' \
         ORDER BY xact_start LIMIT 1",
    )
    .await;
    let note = own_sessions_only(s).unwrap_or_default();
    let (status, value, message) = match found {
        Err(e) => {
            return could_not(
                CheckKind::LongTransactions,
                member,
                threshold,
                "read pg_stat_activity",
                &e,
            );
        }
        Ok(None) => (
            Status::Ok,
            json!({ "open": 0, "longest_seconds": 0.0 }),
            format!("no open transaction{note}"),
        ),
        Ok(Some(o)) => (
            limits.status(o.seconds),
            json!({
                "open": o.count,
                "longest_seconds": round1(o.seconds),
                "pid": o.pid,
                "user": o.user,
                "database": o.database,
                "state": o.state,
            }),
            format!(
                "{} open transaction(s); the oldest, {} ({}), for {}{note}",
                o.count,
                who(&o),
                o.state.as_deref().unwrap_or("?"),
                duration(o.seconds)
            ),
        ),
    };
    Check {
        name: CheckKind::LongTransactions,
        member: Some(member.to_owned()),
        status: if note.is_empty() {
            status
        } else {
            status.max(Status::Warn)
        },
        value,
        threshold,
        message,
    }
}

async fn idle_in_transaction(member: &str, s: &Session, t: &Thresholds) -> Check {
    let limits = t.idle_in_transaction();
    let threshold = limits.describe("idle in a transaction");
    let found = oldest(
        s,
        "SELECT pid, usename::text, datname::text, state::text, \
         EXTRACT(EPOCH FROM now() - state_change)::float8, count(*) OVER ()::int8 \
         FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
         AND state IN ('idle in transaction', 'idle in transaction (aborted)') \
         ORDER BY state_change LIMIT 1",
    )
    .await;
    let note = own_sessions_only(s).unwrap_or_default();
    let (status, value, message) = match found {
        Err(e) => {
            return could_not(
                CheckKind::IdleInTransaction,
                member,
                threshold,
                "read pg_stat_activity",
                &e,
            );
        }
        Ok(None) => (
            Status::Ok,
            json!({ "sessions": 0, "longest_seconds": 0.0 }),
            format!("no session idle in a transaction{note}"),
        ),
        Ok(Some(o)) => (
            limits.status(o.seconds),
            json!({
                "sessions": o.count,
                "longest_seconds": round1(o.seconds),
                "pid": o.pid,
                "user": o.user,
                "database": o.database,
            }),
            format!(
                "{} session(s) idle in a transaction; the longest, {}, for {} (it holds its locks and holds back vacuum){note}",
                o.count,
                who(&o),
                duration(o.seconds)
            ),
        ),
    };
    Check {
        name: CheckKind::IdleInTransaction,
        member: Some(member.to_owned()),
        status: if note.is_empty() {
            status
        } else {
            status.max(Status::Warn)
        },
        value,
        threshold,
        message,
    }
}

async fn lock_waits(member: &str, s: &Session, t: &Thresholds) -> Check {
    let limits = t.lock_wait();
    let threshold = limits.describe("waiting for a lock");
    // PostgreSQL 14 records when a wait began (pg_locks.waitstart); before, the session's last
    // state change is the nearest.
    let since = if s.version_num >= 140000 {
        "COALESCE((SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted), a.state_change)"
    } else {
        "a.state_change"
    };
    let sql = format!(
        "SELECT a.pid, a.usename::text, a.datname::text, \
         COALESCE(EXTRACT(EPOCH FROM now() - {since}), 0)::float8, pg_blocking_pids(a.pid) \
         FROM pg_stat_activity a \
         WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid() ORDER BY 4 DESC"
    );
    let rows = match s.client.query(sql.as_str(), &[]).await {
        Ok(r) => r,
        Err(e) => {
            return could_not(
                CheckKind::LockWaits,
                member,
                threshold,
                "read pg_stat_activity and pg_locks",
                &pg_error(&e),
            );
        }
    };
    let note = own_sessions_only(s).unwrap_or_default();
    let (status, value, message) = match rows.first() {
        None => (
            Status::Ok,
            json!({ "waiting": 0, "longest_seconds": 0.0 }),
            format!("no session waits for a lock{note}"),
        ),
        Some(r) => {
            let pid: i32 = r.get(0);
            let user: Option<String> = r.get(1);
            let database: Option<String> = r.get(2);
            let secs: f64 = r.get(3);
            let blocked_by: Vec<i32> = r.get::<_, Option<Vec<i32>>>(4).unwrap_or_default();
            (
                limits.status(secs),
                json!({
                    "waiting": rows.len(),
                    "longest_seconds": round1(secs),
                    "pid": pid,
                    "user": user,
                    "database": database,
                    "blocked_by": blocked_by,
                }),
                format!(
                    "{} session(s) wait for a lock; the longest, pid {pid} ({}@{}), for {}, blocked by {}{note}",
                    rows.len(),
                    user.as_deref().unwrap_or("?"),
                    database.as_deref().unwrap_or("?"),
                    duration(secs),
                    if blocked_by.is_empty() {
                        "no session it can see".to_owned()
                    } else {
                        format!(
                            "pid {}",
                            blocked_by
                                .iter()
                                .map(i32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            )
        }
    };
    Check {
        name: CheckKind::LockWaits,
        member: Some(member.to_owned()),
        status: if note.is_empty() {
            status
        } else {
            status.max(Status::Warn)
        },
        value,
        threshold,
        message,
    }
}

async fn checkpoints(member: &str, s: &Session, t: &Thresholds) -> Check {
    let limits = t.checkpoints();
    let threshold = format!(
        "{} of all checkpoints requested (with at least {} requested)",
        limits.describe(""),
        t.checkpoints_requested_min
    );
    // PostgreSQL 17 moved the counters from pg_stat_bgwriter to pg_stat_checkpointer.
    let (view, sql) = if s.version_num >= 170000 {
        (
            "pg_stat_checkpointer",
            "SELECT num_timed, num_requested, stats_reset::text, current_setting('max_wal_size'), \
             current_setting('checkpoint_timeout') FROM pg_stat_checkpointer",
        )
    } else {
        (
            "pg_stat_bgwriter",
            "SELECT checkpoints_timed, checkpoints_req, stats_reset::text, \
             current_setting('max_wal_size'), current_setting('checkpoint_timeout') \
             FROM pg_stat_bgwriter",
        )
    };
    let row = match s.client.query_one(sql, &[]).await {
        Ok(r) => r,
        Err(e) => {
            return could_not(
                CheckKind::Checkpoints,
                member,
                threshold,
                &format!("read {view}"),
                &pg_error(&e),
            );
        }
    };
    let (timed, requested): (i64, i64) = (row.get(0), row.get(1));
    let reset: Option<String> = row.get(2);
    let (max_wal, timeout): (String, String) = (row.get(3), row.get(4));
    let (status, pct) = checkpoint_status(timed, requested, t);
    let since = reset
        .as_deref()
        .map(|r| format!(" since {r}"))
        .unwrap_or_default();
    let message = if status == Status::Ok {
        format!(
            "{requested} of {} checkpoints requested ({}%){since}, from {view}",
            timed + requested,
            number(pct)
        )
    } else {
        format!(
            "{requested} of {} checkpoints requested ({}%){since}: WAL fills max_wal_size ({max_wal}) before checkpoint_timeout ({timeout}) runs out; raise max_wal_size so that most checkpoints are timed",
            timed + requested,
            number(pct)
        )
    };
    Check {
        name: CheckKind::Checkpoints,
        member: Some(member.to_owned()),
        status,
        value: json!({
            "timed": timed,
            "requested": requested,
            "requested_pct": round1(pct),
            "stats_reset": reset,
            "max_wal_size": max_wal,
            "checkpoint_timeout": timeout,
        }),
        threshold,
        message,
    }
}

async fn pending_restart(member: &str, s: &Session, patroni: Option<bool>) -> Check {
    let threshold = "warn when a setting waits for a restart".to_owned();
    let names: Vec<String> = match s
        .client
        .query(
            "SELECT name::text FROM pg_settings WHERE pending_restart ORDER BY name",
            &[],
        )
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e) => {
            return could_not(
                CheckKind::PendingRestart,
                member,
                threshold,
                "read pg_settings",
                &pg_error(&e),
            );
        }
    };
    let pending = !names.is_empty() || patroni == Some(true);
    let message = match (names.is_empty(), patroni) {
        (true, Some(true)) => {
            "Patroni reports a pending restart (a setting of its own or of the DCS)".to_owned()
        }
        (true, _) => "no setting waits for a restart".to_owned(),
        (false, _) => format!(
            "waiting for a restart: {} (`pgdba apply` restarts members one at a time, replicas first)",
            names.join(", ")
        ),
    };
    Check {
        name: CheckKind::PendingRestart,
        member: Some(member.to_owned()),
        status: if pending { Status::Warn } else { Status::Ok },
        value: json!({ "parameters": names, "patroni": patroni }),
        threshold,
        message,
    }
}

/// Damaged pages this member read: `pg_stat_database`'s checksum failures (since its
/// statistics were last reset), crit at the first; data checksums off is said, not warned.
async fn checksums(member: &str, s: &Session) -> Check {
    let threshold = "crit at the first checksum failure".to_owned();
    let row = match s
        .client
        .query_one(
            "SELECT current_setting('data_checksums'), \
                    coalesce(sum(checksum_failures), 0)::bigint, \
                    max(checksum_last_failure)::text, \
                    coalesce(string_agg(coalesce(datname, '(shared)'), ', ' ORDER BY datname) \
                        FILTER (WHERE checksum_failures > 0), '') \
             FROM pg_stat_database",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return could_not(
                CheckKind::Checksums,
                member,
                threshold,
                "read pg_stat_database",
                &pg_error(&e),
            );
        }
    };
    let enabled = row.get::<_, String>(0) == "on";
    let failures: i64 = row.get(1);
    let last: Option<String> = row.get(2);
    let databases: String = row.get(3);
    let (status, message) = if failures > 0 {
        (
            Status::Crit,
            format!(
                "{failures} page(s) failed their checksum when read (in {databases}; last at {}): this member's files are damaged; clone it again from the leader (Patroni's reinitialize), or, on the leader, hand the lead over first",
                last.as_deref().unwrap_or("?")
            ),
        )
    } else if enabled {
        (Status::Ok, "no checksum failure".to_owned())
    } else {
        (
            Status::Ok,
            "data checksums are off: a damaged page goes unnoticed until it breaks a query (pgdba's clusters have them from initdb)".to_owned(),
        )
    };
    Check {
        name: CheckKind::Checksums,
        member: Some(member.to_owned()),
        status,
        value: json!({ "enabled": enabled, "failures": failures, "last_failure": last }),
        threshold,
        message,
    }
}

// ---------------------------------------------------------------------------------------------
// Disk.

/// Is the server reached on this machine (a Unix socket, or a loopback address)?
fn on_this_machine(server: &Server) -> bool {
    server.socket_dir.is_some()
        || server.host == "localhost"
        || server
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The member's data directory on this machine, and how it was found; or why there is none.
fn data_dir(p: &Probe<'_>) -> Result<(PathBuf, &'static str), String> {
    if let Some(d) = &p.server.data_dir {
        return Ok((d.clone(), "the member's data directory"));
    }
    let s = match &p.session {
        Ok(s) => s,
        Err(_) => {
            return Err(
                "its PostgreSQL does not answer, and its data directory is not known on this machine"
                    .to_owned(),
            );
        }
    };
    let Some(d) = &s.data_directory else {
        return Err(format!(
            "role {} cannot read data_directory (grant it pg_read_all_settings)",
            s.user
        ));
    };
    if !on_this_machine(p.server) {
        return Err(format!(
            "the data directory {d} is on {}, not on this machine",
            p.server.host
        ));
    }
    let path = PathBuf::from(d);
    if !path.is_dir() {
        return Err(format!(
            "the data directory {d} is not on this machine (a container's, or another host's)"
        ));
    }
    // Another server's path that happens to exist here is not its data directory.
    if let Err(e) = std::fs::metadata(path.join("PG_VERSION"))
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Err(format!(
            "{d} exists on this machine but is not a PostgreSQL data directory (no PG_VERSION): the server's is elsewhere"
        ));
    }
    Ok((path, "data_directory"))
}

async fn statvfs(path: &Path) -> Result<Usage, String> {
    let owned = path.to_path_buf();
    let work = tokio::task::spawn_blocking(move || {
        nix::sys::statvfs::statvfs(&owned).map(|s| {
            #[allow(clippy::unnecessary_cast)]
            let (frag, blocks, free, avail, fsid) = (
                s.fragment_size() as u64,
                s.blocks() as u64,
                s.blocks_free() as u64,
                s.blocks_available() as u64,
                s.filesystem_id() as u64,
            );
            Usage {
                total: blocks.saturating_mul(frag),
                used: blocks.saturating_sub(free).saturating_mul(frag),
                available: avail.saturating_mul(frag),
                fsid,
            }
        })
    });
    match tokio::time::timeout(STATVFS_TIMEOUT, work).await {
        Err(_) => Err(format!(
            "statvfs {} did not answer within {STATVFS_TIMEOUT:?}",
            path.display()
        )),
        Ok(Err(e)) => Err(format!("statvfs {}: {e}", path.display())),
        Ok(Ok(Err(e))) => Err(format!("statvfs {}: {e}", path.display())),
        Ok(Ok(Ok(u))) => Ok(u),
    }
}

/// The data directory's file system, and pg_wal's when it is another one.
async fn disk(member: &str, dir: &Path, how: &str, t: &Thresholds) -> Vec<Check> {
    let limits = t.disk();
    let threshold = limits.describe("used");
    let usage_check = |path: &Path, what: &str, u: &Usage| Check {
        name: CheckKind::Disk,
        member: Some(member.to_owned()),
        status: limits.status(u.used_pct()),
        value: json!({
            "path": path.display().to_string(),
            "used_pct": round1(u.used_pct()),
            "total_bytes": u.total,
            "used_bytes": u.used,
            "available_bytes": u.available,
        }),
        threshold: threshold.clone(),
        message: format!(
            "{what} {} ({how}): {}% used, {} available of {}",
            path.display(),
            number(u.used_pct()),
            size(u.available),
            size(u.total)
        ),
    };
    let data = match statvfs(dir).await {
        Ok(u) => u,
        Err(e) => {
            return vec![could_not(
                CheckKind::Disk,
                member,
                threshold,
                "measure the data directory's file system",
                &e,
            )];
        }
    };
    let mut out = vec![usage_check(dir, "data directory", &data)];
    let wal = dir.join("pg_wal");
    if let Ok(u) = statvfs(&wal).await
        && u.fsid != data.fsid
    {
        out.push(usage_check(&wal, "WAL directory", &u));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The cluster's own checks, once.

async fn cluster_checks(server: &Server, s: &Session, t: &Thresholds, note: &str) -> Vec<Check> {
    vec![
        xid_wraparound(server, s, t, note).await,
        table_bloat(server, s, t, note).await,
        archiver(server, s, t, note).await,
    ]
}

async fn xid_wraparound(server: &Server, s: &Session, t: &Thresholds, note: &str) -> Check {
    let limits = t.xid_age();
    let threshold = limits.describe("of 2^31 transaction IDs (the wraparound limit)");
    let rows = match s
        .client
        .query(
            "SELECT datname::text, age(datfrozenxid)::int8, mxid_age(datminmxid)::int8 \
             FROM pg_database",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let mut c = could_not(
                CheckKind::XidWraparound,
                &server.name,
                threshold,
                "read pg_database",
                &pg_error(&e),
            );
            c.member = None;
            return c;
        }
    };
    let facts: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let Some(xid) = facts.iter().max_by_key(|f| f.1) else {
        return Check {
            name: CheckKind::XidWraparound,
            member: None,
            status: Status::Warn,
            value: Value::Null,
            threshold,
            message: format!("pg_database lists no database{note}"),
        };
    };
    let mxid = facts.iter().max_by_key(|f| f.2).unwrap_or(xid);
    let xid_pct = pct_of(xid.1 as f64, XID_LIMIT);
    let mxid_pct = pct_of(mxid.2 as f64, XID_LIMIT);
    let status = limits.status(xid_pct.max(mxid_pct));
    let advice = if status == Status::Ok {
        String::new()
    } else {
        "; VACUUM (FREEZE) the oldest tables of that database, and look for what holds autovacuum back (long transactions, abandoned replication slots, prepared transactions)".to_owned()
    };
    Check {
        name: CheckKind::XidWraparound,
        member: None,
        status,
        value: json!({
            "database": xid.0,
            "xid_age": xid.1,
            "xid_pct": round1(xid_pct),
            "mxid_database": mxid.0,
            "mxid_age": mxid.2,
            "mxid_pct": round1(mxid_pct),
        }),
        threshold,
        message: format!(
            "oldest database {}: XID age {} ({}% of 2^31); multixact age {} ({}%, {}){advice}{note}",
            xid.0,
            xid.1,
            number(xid_pct),
            mxid.2,
            number(mxid_pct),
            mxid.0
        ),
    }
}

/// One database's worst table by dead tuples, and how many are at or above `warn`.
struct Bloat {
    database: String,
    schema: String,
    table: String,
    live: i64,
    dead: i64,
    pct: f64,
    over_warn: i64,
}

async fn bloat_in(server: &Server, db: &str, t: &Thresholds) -> Result<Option<Bloat>, String> {
    let client = server
        .connect_to(db, STATEMENT_TIMEOUT)
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let min = i64::try_from(t.dead_tuples_min_table_bytes).unwrap_or(i64::MAX);
    let row = client
        .query_opt(
            "WITH t AS ( \
               SELECT schemaname::text AS s, relname::text AS r, n_live_tup, n_dead_tup, \
                      n_dead_tup::float8 * 100 / (n_live_tup + n_dead_tup) AS pct \
               FROM pg_stat_user_tables \
               WHERE n_live_tup + n_dead_tup > 0 AND pg_table_size(relid) >= $1) \
             SELECT s, r, n_live_tup, n_dead_tup, pct, \
                    (SELECT count(*) FROM t WHERE pct >= $2)::int8 \
             FROM t ORDER BY pct DESC LIMIT 1",
            &[&min, &t.dead_tuples_warn_pct],
        )
        .await
        .map_err(|e| pg_error(&e))?;
    Ok(row.map(|r| Bloat {
        database: db.to_owned(),
        schema: r.get(0),
        table: r.get(1),
        live: r.get(2),
        dead: r.get(3),
        pct: r.get(4),
        over_warn: r.get(5),
    }))
}

async fn table_bloat(server: &Server, s: &Session, t: &Thresholds, note: &str) -> Check {
    let limits = t.dead_tuples();
    let threshold = limits.describe(&format!(
        "dead tuples, tables of {} or more",
        size(t.dead_tuples_min_table_bytes)
    ));
    let estimate = format!(
        "estimate: n_dead_tup / (n_live_tup + n_dead_tup) from pg_stat_user_tables, tables of {} or more",
        size(t.dead_tuples_min_table_bytes)
    );
    let dbs: Vec<String> = match s
        .client
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate \
             ORDER BY datname",
            &[],
        )
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e) => {
            let mut c = could_not(
                CheckKind::TableBloat,
                &server.name,
                threshold,
                "list the databases",
                &pg_error(&e),
            );
            c.member = None;
            return c;
        }
    };
    let all = dbs.len();
    let read: Vec<(String, Result<Option<Bloat>, String>)> =
        futures::stream::iter(dbs.into_iter().take(BLOAT_MAX_DATABASES))
            .map(|db| async move {
                let r = bloat_in(server, &db, t).await;
                (db, r)
            })
            .buffered(BLOAT_PARALLEL)
            .collect()
            .await;
    let mut failed = Vec::new();
    let mut found = Vec::new();
    for (db, r) in read {
        match r {
            Ok(Some(b)) => found.push(b),
            Ok(None) => {}
            Err(e) => failed.push(format!("{db}: {e}")),
        }
    }
    let over_warn: i64 = found.iter().map(|b| b.over_warn).sum();
    let worst = found.iter().max_by(|a, b| {
        a.pct
            .partial_cmp(&b.pct)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut status = worst.map(|b| limits.status(b.pct)).unwrap_or(Status::Ok);
    let mut message = match worst {
        Some(b) => format!(
            "the most dead tuples: {}.{}.{} at {}% ({} dead, {} live); {over_warn} table(s) at or above {} ({estimate})",
            b.database,
            b.schema,
            b.table,
            number(b.pct),
            b.dead,
            b.live,
            limits.show(limits.warn)
        ),
        None => format!(
            "no table of {} or more has tuples ({estimate})",
            size(t.dead_tuples_min_table_bytes)
        ),
    };
    if all > BLOAT_MAX_DATABASES {
        message.push_str(&format!(
            "; read the first {BLOAT_MAX_DATABASES} of {all} databases"
        ));
    }
    if !failed.is_empty() {
        status = status.max(Status::Warn);
        message.push_str(&format!(
            "; could not read {} database(s): {}",
            failed.len(),
            failed.join("; ")
        ));
    }
    message.push_str(note);
    Check {
        name: CheckKind::TableBloat,
        member: None,
        status,
        value: match worst {
            Some(b) => json!({
                "database": b.database,
                "schema": b.schema,
                "table": b.table,
                "dead_pct": round1(b.pct),
                "dead_tuples": b.dead,
                "live_tuples": b.live,
                "tables_over_warn": over_warn,
                "databases": all,
                "estimate": "dead_tuples_ratio",
            }),
            None => json!({
                "tables_over_warn": 0,
                "databases": all,
                "estimate": "dead_tuples_ratio",
            }),
        },
        threshold,
        message,
    }
}

async fn archiver(server: &Server, s: &Session, t: &Thresholds, note: &str) -> Check {
    let threshold = format!(
        "warn when the last attempt failed; crit when, besides, nothing was archived for {}",
        duration(t.archive_failing_crit_seconds)
    );
    let row = match s
        .client
        .query_one(
            "SELECT current_setting('archive_mode'), archived_count, failed_count, \
             last_archived_wal, last_archived_time::text, last_failed_wal, \
             last_failed_time::text, EXTRACT(EPOCH FROM now() - last_archived_time)::float8, \
             (last_failed_time IS NOT NULL AND \
              (last_archived_time IS NULL OR last_failed_time > last_archived_time)) \
             FROM pg_stat_archiver",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let mut c = could_not(
                CheckKind::Archiver,
                &server.name,
                threshold,
                "read pg_stat_archiver",
                &pg_error(&e),
            );
            c.member = None;
            return c;
        }
    };
    let f = ArchiverFacts {
        mode: row.get(0),
        in_recovery: s.in_recovery,
        archived: row.get(1),
        failed: row.get(2),
        last_archived_wal: row.get(3),
        last_archived_time: row.get(4),
        last_failed_wal: row.get(5),
        last_failed_time: row.get(6),
        since_archived: row.get(7),
        failing: row.get(8),
    };
    let (status, message) = archiver_status(&f, t);
    Check {
        name: CheckKind::Archiver,
        member: None,
        status,
        value: json!({
            "archive_mode": f.mode,
            "archived_count": f.archived,
            "failed_count": f.failed,
            "last_archived_wal": f.last_archived_wal,
            "last_archived_time": f.last_archived_time,
            "last_failed_wal": f.last_failed_wal,
            "last_failed_time": f.last_failed_time,
            "failing": f.failing,
        }),
        threshold,
        message: format!("{message}{note}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {

    #[test]
    fn backup_age_by_the_thresholds() {
        let t = Thresholds::default();
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let hours_ago = |h: i64| now - chrono::Duration::hours(h);
        assert_eq!(backup_age(None, now, &t).status, Status::Crit);
        assert_eq!(
            backup_age(Some(("F", hours_ago(1))), now, &t).status,
            Status::Ok
        );
        assert_eq!(
            backup_age(Some(("F", hours_ago(27))), now, &t).status,
            Status::Warn
        );
        assert_eq!(
            backup_age(Some(("F", hours_ago(53))), now, &t).status,
            Status::Crit
        );
        let no_crit = Thresholds {
            backup_age_crit_seconds: None,
            ..Thresholds::default()
        };
        assert_eq!(
            backup_age(Some(("F", hours_ago(500))), now, &no_crit).status,
            Status::Warn
        );
    }

    use super::*;

    #[test]
    fn limits_are_inclusive_and_crit_wins() {
        let l = Limits::pct(80.0, Some(95.0));
        assert_eq!(l.status(0.0), Status::Ok);
        assert_eq!(l.status(79.9), Status::Ok);
        assert_eq!(l.status(80.0), Status::Warn);
        assert_eq!(l.status(94.9), Status::Warn);
        assert_eq!(l.status(95.0), Status::Crit);
        assert_eq!(l.status(100.0), Status::Crit);
        let warn_only = Limits::seconds(60.0, None);
        assert_eq!(warn_only.status(1e9), Status::Warn);
        assert_eq!(
            l.describe("of max_connections"),
            "warn 80%, crit 95% of max_connections"
        );
        assert_eq!(
            Thresholds::default().long_transaction().describe(""),
            "warn 5 min, crit 30 min"
        );
        assert_eq!(
            Thresholds::default().replication_lag().describe(""),
            "warn 30 s, crit 60 s"
        );
    }

    #[test]
    fn the_worst_status_is_the_maximum() {
        assert!(Status::Ok < Status::Warn && Status::Warn < Status::Crit);
        assert_eq!(
            [Status::Warn, Status::Crit, Status::Ok].into_iter().max(),
            Some(Status::Crit)
        );
        assert_eq!(serde_json::to_value(Status::Crit).ok(), Some(json!("crit")));
        assert_eq!(
            serde_json::to_value(CheckKind::IdleInTransaction).ok(),
            Some(json!("idle_in_transaction"))
        );
        assert_eq!(CheckKind::XidWraparound.as_str(), "xid_wraparound");
    }

    #[test]
    fn thresholds_default_every_field_left_out_and_refuse_unknown_ones() {
        let t: Thresholds = serde_yaml::from_str("connections_warn_pct: 70\n").unwrap();
        assert_eq!(t.connections_warn_pct, 70.0);
        assert_eq!(t.connections_crit_pct, 95.0);
        assert_eq!(t.idle_in_transaction_crit_seconds, None);
        let t: Thresholds = serde_yaml::from_str("{}").unwrap();
        assert_eq!(t, Thresholds::default());
        assert!(serde_yaml::from_str::<Thresholds>("connection_warn_pct: 70\n").is_err());
        assert!(Thresholds::default().problems().is_empty());
        let bad = Thresholds {
            disk_used_warn_pct: 95.0,
            connections_crit_pct: 120.0,
            lock_wait_warn_seconds: -1.0,
            ..Thresholds::default()
        };
        let p = bad.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.contains("disk_used_warn_pct (95) is above"))
        );
    }

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        assert_eq!(duration(0.25), "0.2 s");
        assert_eq!(duration(42.0), "42 s");
        assert_eq!(duration(300.0), "5 min");
        assert_eq!(duration(723.0), "12 min 3 s");
        assert_eq!(duration(7500.0), "2 h 5 min");
        assert_eq!(duration(3.0 * 86400.0 + 4.0 * 3600.0), "3 d 4 h");
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(10 * 1024 * 1024), "10 MB");
        assert_eq!(size(1536 * 1024 * 1024), "1.5 GB");
    }

    #[test]
    fn checkpoint_pressure_needs_a_handful_of_requested_checkpoints() {
        let t = Thresholds::default();
        // A young server: 3 requested of 4 is 75%, but too few to say anything.
        assert_eq!(checkpoint_status(1, 3, &t).0, Status::Ok);
        assert_eq!(checkpoint_status(100, 10, &t).0, Status::Ok); // 9%
        assert_eq!(checkpoint_status(40, 10, &t).0, Status::Warn); // 20%
        assert_eq!(checkpoint_status(0, 0, &t), (Status::Ok, 0.0));
        // At most warn unless a crit is set.
        assert_eq!(checkpoint_status(0, 1000, &t).0, Status::Warn);
        let t = Thresholds {
            checkpoints_requested_crit_pct: Some(50.0),
            ..Thresholds::default()
        };
        assert_eq!(checkpoint_status(10, 90, &t).0, Status::Crit);
    }

    #[test]
    fn archiver_failures_warn_then_crit() {
        let t = Thresholds::default();
        let off = ArchiverFacts {
            mode: "off".to_owned(),
            ..ArchiverFacts::default()
        };
        let (s, m) = archiver_status(&off, &t);
        assert_eq!(s, Status::Ok);
        assert!(m.contains("archiving off"), "{m}");
        let working = ArchiverFacts {
            mode: "on".to_owned(),
            archived: 10,
            last_archived_wal: Some("000000010000000000000009".to_owned()),
            since_archived: Some(5.0),
            ..ArchiverFacts::default()
        };
        assert_eq!(archiver_status(&working, &t).0, Status::Ok);
        let recovered = ArchiverFacts {
            failed: 3,
            last_failed_time: Some("yesterday".to_owned()),
            ..working.clone()
        };
        assert_eq!(archiver_status(&recovered, &t).0, Status::Ok);
        let failing_recently = ArchiverFacts {
            failing: true,
            failed: 4,
            last_archived_time: Some("a minute ago".to_owned()),
            since_archived: Some(60.0),
            ..working.clone()
        };
        assert_eq!(archiver_status(&failing_recently, &t).0, Status::Warn);
        let failing_long = ArchiverFacts {
            since_archived: Some(3600.0),
            ..failing_recently.clone()
        };
        assert_eq!(archiver_status(&failing_long, &t).0, Status::Crit);
        let never = ArchiverFacts {
            mode: "on".to_owned(),
            failing: true,
            failed: 3,
            last_failed_wal: Some("000000010000000000000001".to_owned()),
            ..ArchiverFacts::default()
        };
        let (s, m) = archiver_status(&never, &t);
        assert_eq!(s, Status::Crit);
        assert!(m.contains("nothing was ever archived"), "{m}");
        // A standby does not archive unless archive_mode = always.
        let standby = ArchiverFacts {
            in_recovery: true,
            ..never
        };
        assert_eq!(archiver_status(&standby, &t).0, Status::Ok);
    }

    #[test]
    fn disk_usage_counts_what_is_usable_like_df() {
        let u = Usage {
            total: 100,
            used: 45,
            available: 45,
            fsid: 1,
        };
        // 10 blocks reserved for root: 45 used of 90 usable.
        assert_eq!(u.used_pct(), 50.0);
        assert_eq!(
            Thresholds::default().disk().status(u.used_pct()),
            Status::Ok
        );
        assert_eq!(Thresholds::default().disk().status(85.0), Status::Warn);
        assert_eq!(Thresholds::default().disk().status(90.0), Status::Crit);
    }

    fn row(state: &str, secs: Option<f64>) -> ReplRow {
        ReplRow {
            upstream: "demo-1".to_owned(),
            application_name: "demo-2".to_owned(),
            client_addr: None,
            state: Some(state.to_owned()),
            sync_state: Some("async".to_owned()),
            lag_bytes: Some(1024),
            lag_seconds: secs,
        }
    }

    fn facts(in_recovery: bool, receiver: Option<&str>, rows: Vec<ReplRow>) -> Facts {
        Facts {
            version_num: 150004,
            version: "15.4".to_owned(),
            in_recovery,
            sees_all: true,
            user: "postgres".to_owned(),
            data_directory: None,
            wal_receiver: receiver.map(str::to_owned),
            replication: Ok(rows),
        }
    }

    fn streaming(upstream: &str, name: &str, secs: Option<f64>) -> ReplRow {
        ReplRow {
            upstream: upstream.to_owned(),
            application_name: name.to_owned(),
            ..row("streaming", secs)
        }
    }

    fn replication_of<'c>(checks: &'c [Check], member: &str) -> &'c Check {
        checks
            .iter()
            .find(|c| c.member.as_deref() == Some(member))
            .unwrap_or_else(|| panic!("no replication check for {member}: {checks:#?}"))
    }

    #[test]
    fn replicas_are_crit_when_stopped_or_not_streaming_and_name_the_member() {
        let t = Thresholds::default();
        let leader = facts(
            false,
            None,
            vec![
                streaming("demo-1", "demo-2", None),
                streaming("demo-1", "demo-4", Some(45.0)),
                ReplRow {
                    application_name: "demo-5".to_owned(),
                    ..row("catchup", Some(1.0))
                },
            ],
        );
        // demo-6 streams from demo-2 (cascading): its row is on demo-2.
        let demo2 = facts(
            true,
            Some("streaming"),
            vec![streaming("demo-2", "demo-6", Some(2.0))],
        );
        let demo5 = facts(true, Some("streaming"), vec![]);
        let demo6 = facts(true, Some("streaming"), vec![]);
        let demo7 = facts(true, Some("stopping"), vec![]);
        let split = facts(false, None, vec![]);
        let seen = [
            Seen {
                name: "demo-1",
                facts: Ok(&leader),
            },
            Seen {
                name: "demo-2",
                facts: Ok(&demo2),
            },
            Seen {
                name: "demo-3",
                facts: Err("connection refused"),
            },
            Seen {
                name: "demo-4",
                facts: Ok(&demo2),
            },
            Seen {
                name: "demo-5",
                facts: Ok(&demo5),
            },
            Seen {
                name: "demo-6",
                facts: Ok(&demo6),
            },
            Seen {
                name: "demo-7",
                facts: Ok(&demo7),
            },
            Seen {
                name: "demo-8",
                facts: Ok(&split),
            },
        ];
        let (checks, skipped) = replication_checks(&seen, Some("demo-1"), &t);
        assert!(skipped.is_empty());
        assert!(checks.iter().all(|c| c.member.as_deref() != Some("demo-1")));
        let c = replication_of(&checks, "demo-2");
        assert_eq!(c.status, Status::Ok, "{}", c.message);
        assert_eq!(c.value["lag_seconds"], json!(0.0));
        assert_eq!(c.value["lag_bytes"], json!(1024));
        // Stopped: crit, named, with the connection error.
        let c = replication_of(&checks, "demo-3");
        assert_eq!(c.status, Status::Crit);
        assert!(
            c.message.contains("demo-3") && c.message.contains("connection refused"),
            "{}",
            c.message
        );
        assert_eq!(replication_of(&checks, "demo-4").status, Status::Warn);
        let c = replication_of(&checks, "demo-5");
        assert_eq!(c.status, Status::Crit);
        assert!(c.message.contains("catchup"), "{}", c.message);
        assert_eq!(replication_of(&checks, "demo-6").status, Status::Ok);
        assert_eq!(
            replication_of(&checks, "demo-6").value["upstream"],
            json!("demo-2")
        );
        let c = replication_of(&checks, "demo-7");
        assert_eq!(c.status, Status::Crit);
        assert!(
            c.message.contains("no row in pg_stat_replication"),
            "{}",
            c.message
        );
        let c = replication_of(&checks, "demo-8");
        assert_eq!(c.status, Status::Crit);
        assert!(c.message.contains("split brain"), "{}", c.message);
    }

    #[test]
    fn a_plain_server_lists_what_streams_from_it() {
        let t = Thresholds::default();
        let alone = facts(false, None, vec![]);
        let (checks, skipped) = replication_checks(
            &[Seen {
                name: "h:5432",
                facts: Ok(&alone),
            }],
            None,
            &t,
        );
        assert!(checks.is_empty());
        assert!(skipped[0].reason.contains("pg_stat_replication is empty"));
        let primary = facts(
            false,
            None,
            vec![streaming("h:5432", "standby-a", Some(61.0))],
        );
        let (checks, _) = replication_checks(
            &[Seen {
                name: "h:5432",
                facts: Ok(&primary),
            }],
            Some("h:5432"),
            &t,
        );
        assert_eq!(replication_of(&checks, "standby-a").status, Status::Crit);
        let standby = facts(true, Some("waiting"), vec![]);
        let (checks, _) = replication_checks(
            &[Seen {
                name: "h:5432",
                facts: Ok(&standby),
            }],
            None,
            &t,
        );
        assert_eq!(replication_of(&checks, "h:5432").status, Status::Crit);
    }

    fn member(state: &str, role: &str) -> Result<Value, String> {
        Ok(json!({ "state": state, "role": role, "timeline": 3 }))
    }

    #[test]
    fn patroni_members_are_crit_when_stopped_or_failed_and_name_the_member() {
        let ok = patroni_member_check("demo-1", &member("running", "primary"));
        assert_eq!(ok.status, Status::Ok);
        let stopped = patroni_member_check("demo-2", &member("stopped", "replica"));
        assert_eq!(stopped.status, Status::Crit);
        assert_eq!(stopped.member.as_deref(), Some("demo-2"));
        assert!(stopped.message.contains("demo-2"), "{}", stopped.message);
        let failed = patroni_member_check("demo-2", &member("start failed", "replica"));
        assert_eq!(failed.status, Status::Crit);
        assert!(failed.message.contains("reinit"), "{}", failed.message);
        let starting = patroni_member_check("demo-3", &member("starting", "replica"));
        assert_eq!(starting.status, Status::Warn);
        let archive = patroni_member_check(
            "demo-3",
            &Ok(
                json!({"state": "running", "role": "replica", "replication_state": "in archive recovery"}),
            ),
        );
        assert_eq!(archive.status, Status::Crit);
        let gone = patroni_member_check("demo-3", &Err("connection refused".to_owned()));
        assert_eq!(gone.status, Status::Crit);
        assert!(gone.message.contains("demo-3") && gone.message.contains("connection refused"));
    }

    #[test]
    fn the_cluster_needs_one_running_leader() {
        let checks = |s: Statuses| patroni_cluster_checks(&s);
        let find = |c: &[Check], k: CheckKind| c.iter().find(|c| c.name == k).cloned().unwrap();
        let healthy = checks(vec![
            ("demo-1".to_owned(), member("running", "master")),
            ("demo-2".to_owned(), member("running", "replica")),
        ]);
        let leader = find(&healthy, CheckKind::PatroniLeader);
        assert_eq!(leader.status, Status::Ok);
        assert_eq!(leader.member.as_deref(), Some("demo-1"));
        assert_eq!(find(&healthy, CheckKind::PatroniPaused).status, Status::Ok);
        assert_eq!(
            find(&healthy, CheckKind::ScheduledSwitchover).status,
            Status::Ok
        );

        let leaderless = checks(vec![(
            "demo-2".to_owned(),
            Ok(json!({"state": "running", "role": "replica", "cluster_unlocked": true})),
        )]);
        let c = find(&leaderless, CheckKind::PatroniLeader);
        assert_eq!(c.status, Status::Crit);
        assert!(c.message.contains("cluster_unlocked"), "{}", c.message);

        let nobody = checks(vec![("demo-1".to_owned(), Err("refused".to_owned()))]);
        assert_eq!(find(&nobody, CheckKind::PatroniLeader).status, Status::Crit);

        let paused = checks(vec![(
            "demo-1".to_owned(),
            Ok(json!({"state": "running", "role": "primary", "pause": true,
                "scheduled_switchover": {"at": "2030-01-01T00:00:00+00:00", "from": "demo-1", "to": "demo-2"}})),
        )]);
        assert_eq!(find(&paused, CheckKind::PatroniPaused).status, Status::Warn);
        let s = find(&paused, CheckKind::ScheduledSwitchover);
        assert_eq!(s.status, Status::Warn);
        assert!(s.message.contains("demo-2"), "{}", s.message);

        assert_eq!(
            leader_of(&[
                ("demo-1".to_owned(), member("running", "leader")),
                ("demo-2".to_owned(), member("running", "replica")),
            ]),
            Some("demo-1".to_owned())
        );
        assert_eq!(
            leader_of(&[("demo-1".to_owned(), member("stopped", "leader"))]),
            None
        );
    }

    #[test]
    fn the_dcs_is_crit_when_it_does_not_answer_and_skipped_when_unknown() {
        assert_eq!(dcs_check(Some(true)).map(|c| c.status), Ok(Status::Ok));
        assert_eq!(dcs_check(Some(false)).map(|c| c.status), Ok(Status::Crit));
        assert!(dcs_check(None).is_err());
    }

    fn closed_port() -> u16 {
        // Bind and drop: nothing listens there afterwards.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    fn server(name: &str, port: u16, api: Option<u16>) -> Server {
        Server {
            name: name.to_owned(),
            host: "127.0.0.1".to_owned(),
            port,
            user: "postgres".to_owned(),
            password: Some("x".to_owned()),
            database: "postgres".to_owned(),
            socket_dir: None,
            data_dir: None,
            api_url: api.map(|p| format!("http://127.0.0.1:{p}")),
        }
    }

    #[tokio::test]
    async fn a_member_that_does_not_answer_is_crit_for_that_member() {
        let servers = vec![
            server("demo-1", closed_port(), Some(closed_port())),
            server("demo-2", closed_port(), Some(closed_port())),
        ];
        let reader = Reader::new(Duration::from_secs(2)).unwrap();
        let t = Thresholds::default();
        let report = run(&Input {
            servers: &servers,
            patroni: Some(PatroniInput::from_servers(&reader, &servers, Some(false))),
            thresholds: &t,
        })
        .await;
        assert!(report.none_answered());
        assert_eq!(report.status, Status::Crit);
        for name in ["demo-1", "demo-2"] {
            for kind in [CheckKind::Reachable, CheckKind::PatroniMember] {
                let c = report
                    .checks
                    .iter()
                    .find(|c| c.name == kind && c.member.as_deref() == Some(name))
                    .unwrap_or_else(|| panic!("no {kind} check for {name}: {report:#?}"));
                assert_eq!(c.status, Status::Crit);
                assert!(c.message.contains(name), "{}", c.message);
            }
            // Without a leader every member is expected to stream: each is crit, named.
            let r = report
                .checks
                .iter()
                .find(|c| c.name == CheckKind::Replication && c.member.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no replication check for {name}: {report:#?}"));
            assert_eq!(r.status, Status::Crit);
            // No data directory on this machine: the disk check says why it is skipped.
            assert!(
                report
                    .skipped
                    .iter()
                    .any(|s| s.name == CheckKind::Disk && s.member.as_deref() == Some(name))
            );
        }
        let dcs = report
            .checks
            .iter()
            .find(|c| c.name == CheckKind::Dcs)
            .unwrap();
        assert_eq!(dcs.status, Status::Crit);
        assert!(
            report
                .skipped
                .iter()
                .any(|s| s.name == CheckKind::XidWraparound)
        );
        // Kinds come in order.
        assert!(report.checks.windows(2).all(|w| w[0].name <= w[1].name));
    }

    /// A REST API that answers every request with `body`, as Patroni answers `GET /patroni`.
    async fn fake_patroni(body: Value) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let body = body.to_string();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(answer.as_bytes()).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn patroni_names_the_leader_and_the_stopped_replica() {
        let leader_api = fake_patroni(json!({
            "state": "running", "role": "primary", "timeline": 2,
            "pending_restart": true, "pause": true,
        }))
        .await;
        let replica_api = fake_patroni(json!({"state": "stopped", "role": "replica"})).await;
        let servers = vec![
            server("demo-1", closed_port(), Some(leader_api)),
            server("demo-2", closed_port(), Some(replica_api)),
        ];
        let reader = Reader::new(Duration::from_secs(2)).unwrap();
        let t = Thresholds::default();
        let report = run(&Input {
            servers: &servers,
            patroni: Some(PatroniInput::from_servers(&reader, &servers, Some(true))),
            thresholds: &t,
        })
        .await;
        let find = |kind: CheckKind, member: Option<&str>| {
            report
                .checks
                .iter()
                .find(|c| c.name == kind && c.member.as_deref() == member)
                .unwrap_or_else(|| panic!("no {kind} for {member:?}: {report:#?}"))
        };
        assert_eq!(
            find(CheckKind::PatroniMember, Some("demo-1")).status,
            Status::Ok
        );
        let stopped = find(CheckKind::PatroniMember, Some("demo-2"));
        assert_eq!(stopped.status, Status::Crit);
        assert!(stopped.message.contains("demo-2") && stopped.message.contains("stopped"));
        assert_eq!(
            find(CheckKind::PatroniLeader, Some("demo-1")).status,
            Status::Ok
        );
        assert_eq!(find(CheckKind::PatroniPaused, None).status, Status::Warn);
        assert_eq!(find(CheckKind::Dcs, None).status, Status::Ok);
        // Patroni's leader is not expected to stream; its replica is, and is crit.
        assert!(
            report
                .checks
                .iter()
                .all(|c| !(c.name == CheckKind::Replication
                    && c.member.as_deref() == Some("demo-1")))
        );
        assert_eq!(
            find(CheckKind::Replication, Some("demo-2")).status,
            Status::Crit
        );
        assert_eq!(report.status, Status::Crit);
    }

    #[tokio::test]
    async fn a_plain_server_skips_patroni_and_the_dcs_and_says_so() {
        let servers = vec![server("127.0.0.1:1", closed_port(), None)];
        let t = Thresholds::default();
        let report = run(&Input {
            servers: &servers,
            patroni: None,
            thresholds: &t,
        })
        .await;
        assert!(report.none_answered());
        for kind in [
            CheckKind::PatroniMember,
            CheckKind::Dcs,
            CheckKind::PatroniLeader,
        ] {
            assert!(report.skipped.iter().any(|s| s.name == kind), "{kind}");
        }
        assert!(report.checks.iter().all(|c| c.name != CheckKind::Dcs));
        let reach = &report.checks[0];
        assert_eq!(reach.name, CheckKind::Reachable);
        assert_eq!(reach.status, Status::Crit);
    }
}
