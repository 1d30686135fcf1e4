//! `backup restore`: point-in-time recovery from the cluster's pgBackRest repository, into a
//! new cluster (`--to-cluster NEW`). The target is checked against the recoverable window
//! before anything is written or stopped.
#![allow(clippy::result_large_err)]

use std::path::Path;

use serde_json::json;

use super::Global;
use super::backup::{archiver, failure, target};
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::ClusterArg;
use crate::ops::backup::{self, Backup, Info, Window};

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
        // The source's repository as its spec has it: an S3 bucket's keys and the passphrase
        // stay references (`{env: ...}`, `{file: ...}`), read again when NEW is applied.
        repository: source_backup.repository.clone(),
        encryption: source_backup.encryption.clone(),
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

#[cfg(test)]
mod tests {
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
