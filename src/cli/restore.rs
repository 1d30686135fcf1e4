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
    use crate::spec::model::{BACKUP_PARAMETERS, Provider};
    super::replica::require_approval(auto_approve, "backup restore")?;
    let t = self::target(g, c).await?;
    let target = wanted;
    match &t.k.spec.spec.provider {
        Provider::Local(_) => {}
        Provider::Docker(_) => {
            if to.data_dir.is_some()
                || to.pg_port.is_some()
                || to.api_port.is_some()
                || to.etcd_port.is_some()
            {
                return Err(Failure::new(
                    codes::USAGE,
                    "--data-dir, --pg-port, --api-port and --etcd-port are the local provider's: a docker cluster's data is in its volumes and Docker publishes its ports",
                ));
            }
        }
        _ => {
            return Err(Failure::new(
                codes::REFUSED,
                format!(
                    "cluster {}: backup restore --to-cluster works on the local and docker providers so far",
                    t.k.name
                ),
            ));
        }
    }
    let Some(source_backup) = t.k.spec.spec.backup.clone() else {
        return Err(Failure::new(codes::NO_BACKUP, "no spec.backup"));
    };
    let (window, chosen, normalized) = chosen_backup(&t, target.as_ref(), backup_id).await?;
    let chosen = &chosen;
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
    match t.k.spec.spec.provider.clone() {
        Provider::Local(source_local) => {
            let (pg, api, etcd) = restore_ports(g, &source_local, &to, members)?;
            let mut local = source_local.clone();
            let source_root =
                crate::providers::local::layout::Layout::new(&t.k.spec, &source_local).root;
            let data_dir = match &to.data_dir {
                Some(d) => std::path::absolute(d).map_err(|e| {
                    Failure::new(codes::USAGE, format!("--data-dir {}: {e}", d.display()))
                })?,
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
        }
        Provider::Docker(source_docker) => {
            // Its own network (named after it) and published ports; the source's image.
            let mut docker = source_docker.clone();
            docker.network = None;
            docker.subnet = None;
            spec.spec.provider = Provider::Docker(docker);
            if let Some(p) = spec.spec.pooler.as_mut().and_then(|p| p.pgbouncer.as_mut()) {
                p.port = None;
            }
        }
        _ => {}
    }
    spec.spec.restore_from = Some(restore_from(
        &source_backup,
        t.stanza(),
        chosen,
        target.as_ref(),
        normalized.as_ref(),
    ));
    let body = spec_yaml(&spec)?;
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
    let target_json = target_json(target.as_ref(), normalized.as_ref());
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

/// The recoverable window, the backup a restore to `target` starts from and the target as
/// PostgreSQL reads it; refused before anything is touched when the target is outside it.
async fn chosen_backup(
    t: &super::backup::Target,
    target: Option<&RestoreTarget>,
    backup_id: Option<&str>,
) -> Result<(Window, Backup, Option<String>), Failure> {
    let runner = t.runner();
    let info = backup::info(&runner, t.stanza())
        .await
        .map_err(|e| failure(t, &e))?;
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
    let (chosen, normalized) = pick_backup(&info, &window, target, backup_id, &t.k.name)?;
    Ok((window, chosen.clone(), normalized))
}

/// A spec as YAML, through JSON (serde_yaml would write the provider's enum as a YAML tag),
/// without the parameters `spec.backup` derives (a spec may not set them; they are derived
/// again when it is loaded).
fn spec_yaml(spec: &crate::spec::model::ClusterSpec) -> Result<String, Failure> {
    let mut spec = spec.clone();
    for p in crate::spec::model::BACKUP_PARAMETERS {
        spec.spec.postgres.parameters.remove(p);
    }
    serde_json::to_value(&spec)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_yaml::to_string(&v).map_err(|e| e.to_string()))
        .map_err(|e| Failure::new(codes::INTERNAL, format!("the spec: {e}")))
}

/// `spec.restore_from` for a restore of `chosen` from `backup`'s repository and `stanza`.
fn restore_from(
    backup: &crate::spec::model::BackupSpec,
    stanza: &str,
    chosen: &Backup,
    target: Option<&RestoreTarget>,
    normalized: Option<&String>,
) -> crate::spec::model::RestoreFrom {
    let value = normalized.cloned();
    let (target_time, target_lsn, target_xid) = match target {
        Some(RestoreTarget::Time(_)) => (value, None, None),
        Some(RestoreTarget::Lsn(_)) => (None, value, None),
        Some(RestoreTarget::Xid(_)) => (None, None, value),
        None => (None, None, None),
    };
    crate::spec::model::RestoreFrom {
        // The repository as the spec has it: an S3 bucket's keys and the passphrase stay
        // references (`{env: ...}`, `{file: ...}`), read again when the spec is applied.
        repository: backup.repository.clone(),
        encryption: backup.encryption.clone(),
        stanza: stanza.to_owned(),
        backup_id: Some(chosen.id.clone()),
        target_time,
        target_lsn,
        target_xid,
    }
}

fn target_json(target: Option<&RestoreTarget>, normalized: Option<&String>) -> serde_json::Value {
    match target {
        None => json!({ "type": "end_of_archive" }),
        Some(RestoreTarget::Time(_)) => json!({ "type": "time", "value": normalized }),
        Some(RestoreTarget::Lsn(_)) => json!({ "type": "lsn", "value": normalized }),
        Some(RestoreTarget::Xid(_)) => json!({ "type": "xid", "value": normalized }),
    }
}

/// `backup restore --in-place --i-know-what-i-am-doing [--target-time T | --target-lsn L |
/// --target-xid X] [--backup-id ID]`: point-in-time recovery of the cluster itself. In order,
/// stopping at the first failure:
/// 1. the target is checked against the recoverable window (nothing is touched before);
/// 2. a safety backup (incremental; full when there is none) of the cluster as it is, when
///    pgBackRest can take one (what it said otherwise is reported, and the restore goes on:
///    the flag says the DBA knows);
/// 3. the spec that restores (the cluster's own, with `spec.restore_from` naming its own
///    stanza and the backup) is written beside the state, `<cluster>.restore.yaml`;
/// 4. Patroni is paused, the replicas are stopped and removed, then the leader;
/// 5. Patroni's keys of the cluster are deleted from the DCS (`Provider::forget_cluster`);
/// 6. that spec is applied: the first member is bootstrapped by Patroni from the backup
///    (pgBackRest restore, recovery to the target, promotion onto a new timeline, archiving
///    into the same stanza), the replicas are cloned from it, the DCS keys (unpaused) are
///    made again;
/// 7. the cluster's own spec is applied over it (Patroni's configuration without the restore),
///    and the restore spec is removed.
///
/// After step 4 the cluster's data is the backup's: a failure names the restore spec, whose
/// `pgdba apply` carries the restore on.
#[allow(clippy::too_many_arguments)]
pub(super) async fn restore_in_place(
    g: &Global,
    format: crate::output::Format,
    c: &ClusterArg,
    wanted: Option<RestoreTarget>,
    backup_id: Option<&str>,
    i_know: bool,
    allow_production: bool,
) -> Result<Outcome, Failure> {
    use super::apply::{Allow, apply_loaded};
    use crate::spec::model::Provider;
    if !i_know {
        return Err(Failure::new(
            codes::USAGE,
            "backup restore --in-place replaces the cluster's data with the backup's and removes every member: it needs --i-know-what-i-am-doing",
        ));
    }
    let t = target(g, c).await?;
    if !matches!(
        t.k.spec.spec.provider,
        Provider::Local(_) | Provider::Docker(_)
    ) {
        return Err(Failure::new(
            codes::REFUSED,
            format!(
                "cluster {}: backup restore --in-place works on the local and docker providers so far",
                t.k.name
            ),
        ));
    }
    if super::destroy::is_production(&t.k.spec, Some(&t.k.state)) && !allow_production {
        return Err(Failure::new(
            codes::PROTECTED,
            format!(
                "cluster {} is labelled env: production: an in-place restore replaces its data",
                t.k.name
            ),
        )
        .hint("if that is intended, run it again with --allow-production"));
    }
    let Some(backup_spec) = t.k.spec.spec.backup.clone() else {
        return Err(Failure::new(codes::NO_BACKUP, "no spec.backup"));
    };
    // 1. The window, before anything is touched.
    let (window, chosen, normalized) = chosen_backup(&t, wanted.as_ref(), backup_id).await?;
    let name = t.k.name.clone();
    // The spec the cluster ends on: the file given, else the one last applied.
    let own = match &c.file {
        Some(f) => super::specs::load_one(f, "backup restore")?,
        None => crate::spec::LoadedSpec {
            path: t.k.store.dir().join(format!("{name}.json")),
            spec: t.k.spec.clone(),
            source_hash: t.k.state.spec_hash.clone().unwrap_or_default(),
        },
    };
    let lock = t.k.store.lock(&name, "backup restore")?;
    let target_json = target_json(wanted.as_ref(), normalized.as_ref());
    let mut data = serde_json::Map::new();
    data.insert("cluster".to_owned(), json!(name));
    data.insert("target".to_owned(), target_json.clone());
    data.insert("backup".to_owned(), json!(chosen));
    data.insert("window".to_owned(), json!(window));

    // 2. The safety backup.
    let opts = backup::CreateOptions {
        verify_within: None,
        ..backup::CreateOptions::default()
    };
    let safety = match backup::create(
        &t.runner(),
        t.stanza(),
        backup::Kind::Incremental,
        &opts,
        None,
    )
    .await
    {
        Ok(done) => json!({ "taken": true, "id": done.backup.id, "type": done.backup.kind }),
        Err(e) => {
            let why = crate::error_chain(&e);
            tracing::warn!("cluster {name}: no safety backup before the in-place restore: {why}");
            json!({ "taken": false, "error": why })
        }
    };
    data.insert("safety_backup".to_owned(), safety.clone());

    // 3. The spec that restores.
    let mut restoring = own.spec.clone();
    restoring.spec.restore_from = Some(restore_from(
        &backup_spec,
        t.stanza(),
        &chosen,
        wanted.as_ref(),
        normalized.as_ref(),
    ));
    let restore_path = t.k.store.dir().join(format!("{name}.restore.yaml"));
    let text = format!(
        "# Written by `pgdba backup restore --in-place` (backup {}): `pgdba apply -f` this file carries an\n# interrupted in-place restore on; then apply the cluster's own spec.\n{}",
        chosen.id,
        spec_yaml(&restoring)?
    );
    let tmp = restore_path.with_extension("yaml.tmp");
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, &restore_path))
        .map_err(|e| Failure::new(codes::IO_ERROR, format!("{}: {e}", restore_path.display())))?;
    let restoring = super::specs::load_one(&restore_path, "backup restore")?;
    t.k.record(
        "backup restore",
        true,
        format!("in-place restore of backup {} started", chosen.id),
        json!({ "in_place": true, "backup": chosen.id, "target": target_json, "safety_backup": safety }),
    );

    // 4. Patroni paused; the replicas stopped and removed, then the leader.
    let provider = t.k.cluster.provider.as_ref();
    let paused = match (
        t.k.patroni(std::time::Duration::from_secs(10)),
        t.leader_server().and_then(|s| s.api_url.clone()),
    ) {
        (Ok(client), Some(url)) => client
            .patch_config(&url, &json!({ "pause": true }))
            .await
            .is_ok(),
        _ => false,
    };
    data.insert("paused".to_owned(), json!(paused));
    let mut order: Vec<String> = provider
        .topology()
        .member_names()
        .into_iter()
        .filter(|m| *m != t.leader)
        .collect();
    order.push(t.leader.clone());
    let mut removed = Vec::new();
    let interrupted = |step: String,
                       removed: &[String],
                       data: &serde_json::Map<String, serde_json::Value>| {
        Failure::new(
            codes::RESTORE_FAILED,
            format!("cluster {name}: the in-place restore stopped at {step}; members removed so far: {}", if removed.is_empty() { "none".to_owned() } else { removed.join(", ") }),
        )
        .hint(format!("`pgdba apply -f {}` carries the restore on (the cluster's data becomes backup {}'s); then apply the cluster's own spec", restore_path.display(), chosen.id))
        .data(serde_json::Value::Object(data.clone()))
    };
    for m in &order {
        if let Err(e) = provider.delete_member(m, &t.k.creds).await {
            return Err(interrupted(
                format!("removing member {m} ({})", crate::error_chain(&e)),
                &removed,
                &data,
            ));
        }
        removed.push(m.clone());
    }
    data.insert("removed".to_owned(), json!(removed));
    // 5. The cluster forgotten in the DCS: the next member bootstraps it.
    if let Err(e) = provider.forget_cluster(&t.k.creds).await {
        return Err(interrupted(
            format!(
                "deleting the cluster's keys in the DCS ({})",
                crate::error_chain(&e)
            ),
            &removed,
            &data,
        ));
    }
    let leader = t.leader.clone();
    drop(t);

    // 6. The restore itself.
    let store = crate::state::StateStore::new(&g.state_dir);
    let all = Allow {
        data_loss: false,
        production: true,
    };
    let restored = apply_loaded(g, format, &store, &lock, &restoring, true, all).await;
    let restored = match restored {
        Ok(o) if o.exit == 0 => o,
        Ok(o) => {
            data.insert("restore_apply".to_owned(), o.data);
            return Err(interrupted(
                "the restoring apply".to_owned(),
                &removed,
                &data,
            ));
        }
        Err(f) => {
            data.insert("restore_apply".to_owned(), f.data.clone());
            return Err(interrupted(
                format!("the restoring apply ({})", f.message),
                &removed,
                &data,
            ));
        }
    };
    data.insert("restore_apply".to_owned(), restored.data);
    // 7. The cluster's own spec.
    let result = apply_loaded(
        g,
        format,
        &store,
        &lock,
        &own,
        true,
        Allow {
            data_loss: false,
            production: allow_production,
        },
    )
    .await;
    let converged = result.as_ref().is_ok_and(|o| o.exit == 0);
    if converged {
        let _ = std::fs::remove_file(&restore_path);
    }
    let summary = format!(
        "in-place restore of backup {} {}",
        chosen.id,
        if converged {
            "done: the cluster runs on a new timeline"
        } else {
            "restored the data; the cluster's own spec did not apply cleanly"
        }
    );
    let entry = crate::state::HistoryEntry::now(
        "backup restore",
        converged,
        summary,
        json!({ "in_place": true, "backup": chosen.id, "target": data["target"] }),
    );
    if let Err(e) = store.record(&name, entry) {
        tracing::warn!("could not record backup restore in the history of {name}: {e}");
    }
    let human = format!(
        "Cluster {name} restored in place from backup {} ({}); it led on {leader} before. Safety backup: {}.\n",
        chosen.id,
        match &normalized {
            Some(v) => format!("to {v}"),
            None => "to the end of the archived WAL".to_owned(),
        },
        if safety["taken"] == json!(true) {
            safety["id"].as_str().unwrap_or_default().to_owned()
        } else {
            format!(
                "not taken ({})",
                safety["error"].as_str().unwrap_or_default()
            )
        },
    );
    super::apply::ending_in_apply(result, data, human, |_, _| {
        "the data is restored; the cluster's own spec did not apply cleanly: `pgdba plan` shows what is left".to_owned()
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
