//! `backup create --type logical`, `backup verify`, and the logical rows of `backup list`: the
//! CLI edge of [`crate::ops::logical`]. pg_dump runs beside the current leader (the provider's
//! `run_beside`), into the spec's repository path; `backup create` holds the cluster's lock and
//! is recorded in its history, as a physical backup is.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::Global;
use super::backup::{Target, target};
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::ClusterArg;
use crate::ops::backup::format_time;
use crate::ops::logical::{self, CreateOptions, LogicalError, Manifest, Place};
use crate::spec::model::BackupSpec;

/// The repository's POSIX path: logical backups are written there, beside pgBackRest's.
fn repository_path(b: &BackupSpec) -> Option<&Path> {
    b.repository.path()
}

/// Where this cluster's logical backups are; refused for a repository that is not a path.
fn place(t: &Target) -> Result<Place, Failure> {
    let Some(b) = &t.k.spec.spec.backup else {
        return Err(Failure::new(
            codes::NO_BACKUP,
            format!("cluster {} has no spec.backup", t.k.name),
        ));
    };
    let Some(path) = repository_path(b) else {
        return Err(Failure::new(
            codes::REFUSED,
            format!(
                "cluster {}: logical backups are written to a POSIX repository path \
                 (spec.backup.repository.path), and this spec's repository is not one",
                t.k.name
            ),
        )
        .hint("logical backups to object storage are not built yet; physical backups work"));
    };
    Ok(Place::new(path, &t.k.name, t.k.spec.spec.postgres.version))
}

fn failure(t: &Target, e: &LogicalError) -> Failure {
    let message = format!("cluster {}: {}", t.k.name, crate::error_chain(e));
    match e {
        LogicalError::NoDatabase { .. } => {
            Failure::new(codes::NOT_FOUND, message).hint("leave out --database to dump them all")
        }
        LogicalError::NoSuchBackup { .. } => Failure::new(codes::NOT_FOUND, message)
            .hint("`pgdba backup list` lists the backups; pgBackRest's are proven by `backup verify-restore`"),
        LogicalError::NoBackup { .. } => Failure::new(codes::NO_BACKUP, message)
            .hint("take one with `pgdba backup create --type logical`"),
        LogicalError::Sql { .. } => Failure::new(codes::UNREACHABLE, message),
        _ => Failure::new(codes::BACKUP_FAILED, message),
    }
}

/// A manifest as a row of `data.backups`: the contract's fields, then the logical ones.
pub(super) fn backup_json(m: &Manifest) -> Value {
    json!({
        "id": m.id,
        "type": "logical",
        "started_at": format_time(&m.started_at),
        "stopped_at": format_time(&m.stopped_at),
        "size_bytes": m.size_bytes,
        "wal_start": m.wal_start,
        "wal_stop": m.wal_stop,
        "lsn_start": m.lsn_start,
        "lsn_stop": m.lsn_stop,
        "databases": m.databases.iter().map(|d| d.database.clone()).collect::<Vec<_>>(),
        "duration_ms": m.duration_ms,
        "verified": m.verified,
        "member": m.member,
        "pg_version": m.pg_version,
    })
}

/// `backup create --type logical [--database D]`.
pub(super) async fn create(
    g: &Global,
    c: &ClusterArg,
    database: Option<&str>,
) -> Result<Outcome, Failure> {
    let t = target(g, c).await?;
    let place = place(&t)?;
    let keep =
        t.k.spec
            .spec
            .backup
            .as_ref()
            .map_or(7, |b| b.retention.logical);
    let Some(leader) = t.leader_server().cloned() else {
        return Err(Failure::new(
            codes::NO_PRIMARY,
            format!(
                "cluster {}: the leader {} is not in the state",
                t.k.name, t.leader
            ),
        ));
    };
    // One operation at a time, and none while an apply runs.
    let _lock = t.k.store.lock(&t.k.name, "backup create")?;
    let opts = CreateOptions {
        database: database.map(str::to_owned),
        keep,
        dump_within: Duration::from_secs(6 * 3600),
    };
    let runner = t.runner();
    let done = match logical::create(&runner, &leader, &place, &t.k.name, &opts).await {
        Ok(d) => d,
        Err(e) => {
            let f = failure(&t, &e);
            t.k.record(
                "backup create",
                false,
                f.message.clone(),
                json!({ "type": "logical", "member": t.leader }),
            );
            return Err(f);
        }
    };
    let mut b = backup_json(&done.manifest);
    if let Value::Object(m) = &mut b {
        m.insert("dir".to_owned(), json!(done.dir));
        m.insert("dumps".to_owned(), json!(done.manifest.databases));
        m.insert("verification".to_owned(), json!(done.verification));
        m.insert("expired".to_owned(), json!(done.expired));
        m.insert("expire_errors".to_owned(), json!(done.expire_errors));
        m.insert("retention".to_owned(), json!(keep));
    }
    let data = json!({
        "cluster": t.k.name,
        "member": t.leader,
        "backup": b,
    });
    let verified = done.verification.verified;
    let summary = format!(
        "logical backup {} of {} database(s) taken on {} in {:.1} s{}",
        done.manifest.id,
        done.manifest.databases.len(),
        t.leader,
        done.manifest.duration_ms as f64 / 1000.0,
        if verified {
            ""
        } else {
            ", but a dump does not read back"
        }
    );
    t.k.record("backup create", verified, summary, data["backup"].clone());
    let human = created_text(&t, &done);
    if !verified {
        let f = Failure::new(
            codes::VERIFY_FAILED,
            format!(
                "cluster {}: logical backup {} was taken, but a dump does not read back: {}",
                t.k.name,
                done.manifest.id,
                done.verification.problems.join("; ")
            ),
        )
        .data(data);
        return Ok(with_text(f, human));
    }
    Ok(Outcome::ok(data, human))
}

fn created_text(t: &Target, done: &logical::Created) -> String {
    let m = &done.manifest;
    let mut out = format!(
        "logical backup {} of cluster {} taken on {} in {:.1} s, in {}\n",
        m.id,
        t.k.name,
        t.leader,
        m.duration_ms as f64 / 1000.0,
        done.dir
    );
    let rows: Vec<Vec<String>> = m
        .databases
        .iter()
        .map(|d| {
            vec![
                d.database.clone(),
                d.file.clone(),
                d.size_bytes.to_string(),
                format!("{:.1} s", d.duration_ms as f64 / 1000.0),
                d.lsn_before.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&crate::output::columns(
        &["DATABASE", "FILE", "BYTES", "TOOK", "LSN BEFORE"],
        &rows,
    ));
    if done.verification.verified {
        let _ = writeln!(
            out,
            "\nverified: every dump reads back whole with pg_restore ({:.1} s)",
            done.verification.duration_ms as f64 / 1000.0
        );
    } else {
        let _ = writeln!(
            out,
            "\nNOT verified: {}",
            done.verification.problems.join("; ")
        );
    }
    if !done.expired.is_empty() {
        let _ = writeln!(
            out,
            "retention: removed {} (older than the newest kept)",
            done.expired.join(", ")
        );
    }
    for e in &done.expire_errors {
        let _ = writeln!(out, "retention could not remove {e}");
    }
    out
}

/// `backup verify [--backup-id ID]`.
pub(super) async fn verify(
    g: &Global,
    c: &ClusterArg,
    id: Option<&str>,
) -> Result<Outcome, Failure> {
    let t = target(g, c).await?;
    let place = place(&t)?;
    let runner = t.runner();
    let (manifest, v) = logical::verify(&runner, &place, id)
        .await
        .map_err(|e| failure(&t, &e))?;
    let data = json!({
        "cluster": t.k.name,
        "member": t.leader,
        "backup": backup_json(&manifest),
        "verified": v.verified,
        "problems": v.problems,
        "dumps": v.dumps,
        "duration_ms": v.duration_ms,
    });
    let mut human = format!(
        "logical backup {} of cluster {} ({} dump(s)):\n",
        manifest.id,
        t.k.name,
        v.dumps.len()
    );
    for d in &v.dumps {
        let _ = writeln!(
            human,
            "  {} {} ({})",
            if d.ok { "ok    " } else { "FAILED" },
            d.path,
            d.database
        );
        for p in &d.problems {
            let _ = writeln!(human, "         {p}");
        }
    }
    if !v.verified {
        let f = Failure::new(
            codes::VERIFY_FAILED,
            format!(
                "cluster {}: logical backup {} is damaged: {}",
                t.k.name,
                manifest.id,
                v.problems.join("; ")
            ),
        )
        .data(data);
        return Ok(with_text(f, human));
    }
    human.push_str("Verified: every dump reads back as it was written.\n");
    Ok(Outcome::ok(data, human))
}

/// The logical backups for `backup list`: complete ones as rows of `data.backups`, the
/// directories without a manifest by id. A listing that fails is a note, not a failure of the
/// list.
pub(super) async fn listed(t: &Target) -> Result<(Vec<Manifest>, Vec<String>), String> {
    let place = match place(t) {
        Ok(p) => p,
        Err(f) => return Err(f.message),
    };
    let runner = t.runner();
    match logical::list(&runner, &place).await {
        Ok(l) => {
            let unfinished = l
                .iter()
                .filter(|b| b.manifest.is_none())
                .map(|b| b.id.clone())
                .collect();
            Ok((
                l.into_iter().filter_map(|b| b.manifest).collect(),
                unfinished,
            ))
        }
        Err(e) => Err(crate::error_chain(&e)),
    }
}

/// A failure that carries a report: the report's text for people, then the error.
fn with_text(f: Failure, text: String) -> Outcome {
    let mut o = f.into_outcome();
    o.human = format!("{text}\n{}", o.human);
    o
}
