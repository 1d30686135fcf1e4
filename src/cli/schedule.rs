//! `backup schedule [--print | --install | --uninstall]`: the CLI edge of
//! [`crate::ops::schedule`]. It reads the spec (`-f`, or the state's last applied one for
//! `--name`) and never reaches the cluster: the jobs it installs do, when they run.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Global;
use super::cluster::last_applied;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::ClusterArg;
use crate::ops::logical::BackupType;
use crate::ops::schedule::{
    self, ClusterRef, Host, Init, Installed, Job, JobKind, Rendered, ScheduleError, Setup,
};
use crate::spec::cron::Cron;
use crate::spec::model::{ClusterSpec, Provider as ProviderSpec};
use crate::state::StateStore;

/// What the command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Print,
    Install,
    Uninstall,
}

/// The directory installs write under: `/`, or `PGDBA_SCHEDULE_ROOT` (tests).
const ROOT_ENV: &str = "PGDBA_SCHEDULE_ROOT";
/// `systemd` or `cron`: what `--install` writes for, instead of asking the machine.
const INIT_ENV: &str = "PGDBA_SCHEDULE_INIT";

fn absolute(p: &Path, what: &str) -> Result<PathBuf, Failure> {
    let p = std::path::absolute(p).map_err(|e| {
        Failure::new(
            codes::IO_ERROR,
            format!("cannot make {what} {} absolute: {e}", p.display()),
        )
    })?;
    // A spec file exists (it was just read): resolve its links, so that a job never depends on
    // the directory pgdba was started in.
    Ok(std::fs::canonicalize(&p).unwrap_or(p))
}

/// The spec and how the jobs name the cluster.
fn resolve(g: &Global, c: &ClusterArg) -> Result<(ClusterSpec, ClusterRef), Failure> {
    match (&c.file, &c.name) {
        (Some(f), _) => {
            let loaded = super::specs::load_one(f, "backup schedule")?;
            let path = absolute(&loaded.path, "the spec path")?;
            Ok((loaded.spec, ClusterRef::File(path)))
        }
        (None, Some(n)) => {
            crate::state::validate_cluster_name(n)
                .map_err(|e| Failure::new(codes::USAGE, e.to_string()))?;
            let store = StateStore::new(&g.state_dir);
            let Some(state) = store.load(n)? else {
                return Err(Failure::new(
                    codes::NOT_FOUND,
                    format!("{} has no cluster {n}", store.dir().display()),
                ));
            };
            let spec = last_applied(&state).ok_or_else(|| {
                Failure::new(
                    codes::NOT_FOUND,
                    format!("cluster {n} has no applied spec in the state yet"),
                )
            })?;
            Ok((spec, ClusterRef::Name(n.clone())))
        }
        (None, None) => Err(Failure::new(
            codes::USAGE,
            "name the cluster with -f SPEC or --name NAME",
        )),
    }
}

/// The scheduled jobs of the spec, in type order.
fn jobs(spec: &ClusterSpec) -> Result<Vec<Job>, Failure> {
    let name = &spec.metadata.name;
    let Some(backup) = &spec.spec.backup else {
        return Err(Failure::new(
            codes::NO_BACKUP,
            format!("cluster {name} has no spec.backup: there is nothing to schedule"),
        )
        .hint("add `backup: {repository: {path: DIR}, schedule: {full: \"0 1 * * 0\"}}` under `spec:`"));
    };
    let Some(s) = &backup.schedule else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (kind, expr) in [
        (JobKind::Backup(BackupType::Full), &s.full),
        (JobKind::Backup(BackupType::Diff), &s.diff),
        (JobKind::Backup(BackupType::Incremental), &s.incremental),
        (JobKind::Backup(BackupType::Logical), &s.logical),
        (JobKind::VerifyRestore, &s.verify_restore),
    ] {
        let Some(expr) = expr else { continue };
        // `validate` refuses these already; a spec read back from an older state may not be.
        let cron = Cron::parse(expr).map_err(|e| {
            Failure::new(
                codes::INVALID_SPEC,
                format!("cluster {name}: spec.backup.schedule.{kind}: {e}"),
            )
        })?;
        out.push(Job { kind, cron });
    }
    Ok(out)
}

fn host(spec: &ClusterSpec) -> Result<Host, Failure> {
    match &spec.spec.provider {
        ProviderSpec::Local(_) => Ok(Host::Local),
        ProviderSpec::Docker(_) => Ok(Host::Docker),
        ProviderSpec::Ssh(_) => Err(Failure::new(
            codes::REFUSED,
            format!(
                "cluster {} runs on the ssh provider, which does not run backups yet",
                spec.metadata.name
            ),
        )),
        ProviderSpec::Adopted(_) => Err(Failure::new(
            codes::REFUSED,
            format!(
                "cluster {} was adopted: pgdba does not run its backups",
                spec.metadata.name
            ),
        )),
    }
}

pub(super) async fn schedule(g: &Global, c: &ClusterArg, mode: Mode) -> Result<Outcome, Failure> {
    let (spec, cluster_ref) = resolve(g, c)?;
    let name = spec.metadata.name.clone();
    let host = host(&spec)?;
    let jobs = jobs(&spec)?;
    let pgdba = std::env::current_exe().map_err(|e| {
        Failure::new(
            codes::INTERNAL,
            format!("cannot tell where this pgdba binary is: {e}"),
        )
    })?;
    let setup = Setup {
        cluster: name.clone(),
        pgdba: std::fs::canonicalize(&pgdba).unwrap_or(pgdba),
        cluster_ref,
        state_dir: std::path::absolute(&g.state_dir).unwrap_or_else(|_| g.state_dir.clone()),
        host,
    };
    let rendered = schedule::render(&setup, &jobs);
    let (root, init) = install_target(host)?;
    match mode {
        Mode::Print => {
            let data = json!({
                "cluster": name,
                "host": host,
                "init": init,
                "entries": entries_json(&rendered, None),
                "cron_file": rendered.cron_file,
                "log_file": rendered.log_file,
                "notes": notes(&rendered),
            });
            Ok(Outcome::ok(data, print_text(&rendered, init)))
        }
        Mode::Install => {
            if rendered.entries.is_empty() {
                return Err(Failure::new(
                    codes::USAGE,
                    format!("cluster {name}: spec.backup.schedule names no backup: there is nothing to install"),
                )
                .hint("add spec.backup.schedule (full, diff, incremental, logical: cron expressions), or remove an installed schedule with --uninstall"));
            }
            let done = schedule::install(&root, &rendered, init).map_err(|e| failure(&e))?;
            record(g, &name, "backup schedule --install", &done);
            remember(g, &name, Some(&done))?;
            let data = json!({
                "cluster": name,
                "host": host,
                "init": init,
                "root": done.root,
                "entries": entries_json(&rendered, Some(init)),
                "files": done.files,
                "systemctl": done.systemctl,
                "notes": done.notes,
            });
            Ok(Outcome::ok(data, installed_text(&name, &done)))
        }
        Mode::Uninstall => {
            let done = schedule::uninstall(&root, &name, init).map_err(|e| failure(&e))?;
            record(g, &name, "backup schedule --uninstall", &done);
            remember(g, &name, None)?;
            let data = json!({
                "cluster": name,
                "init": init,
                "root": done.root,
                "files": done.files,
                "systemctl": done.systemctl,
            });
            Ok(Outcome::ok(data, installed_text(&name, &done)))
        }
    }
}

/// What `--install` left on the machine, kept beside the state
/// (`<state dir>/<cluster>.schedule.json`) so that `drift` can tell when it goes missing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Remembered {
    /// The directory the paths are under (`/`, or `PGDBA_SCHEDULE_ROOT`).
    pub root: String,
    /// Absolute paths on that root.
    pub files: Vec<String>,
}

fn remembered_path(g: &Global, cluster: &str) -> std::path::PathBuf {
    g.state_dir.join(format!("{cluster}.schedule.json"))
}

/// Keep what an install wrote (or forget it, after `--uninstall`).
fn remember(g: &Global, cluster: &str, done: Option<&Installed>) -> Result<(), Failure> {
    let path = remembered_path(g, cluster);
    let io = |e: std::io::Error| Failure::new(codes::IO_ERROR, format!("{}: {e}", path.display()));
    let Some(done) = done else {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        };
    };
    let r = Remembered {
        root: done.root.clone(),
        files: done
            .files
            .iter()
            .filter(|f| f.action != schedule::Action::Removed)
            .map(|f| f.path.clone())
            .collect(),
    };
    let text =
        serde_json::to_vec_pretty(&r).map_err(|e| Failure::new(codes::INTERNAL, e.to_string()))?;
    std::fs::create_dir_all(&g.state_dir).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io)
}

/// `drift`'s view of an installed schedule: each file the last `--install` wrote and that is
/// gone now is one dangerous item (scheduled backups no longer run). Nothing when no schedule
/// was installed.
pub(super) fn drift_items(state_dir: &Path, cluster: &str) -> Vec<crate::drift::Item> {
    let path = state_dir.join(format!("{cluster}.schedule.json"));
    let Some(r) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Remembered>(&b).ok())
    else {
        return Vec::new();
    };
    r.files
        .iter()
        .filter(|f| {
            let on_root = Path::new(&r.root).join(f.trim_start_matches('/'));
            std::fs::symlink_metadata(on_root).is_err()
        })
        .map(|f| crate::drift::Item {
            address: crate::diff::Address::BackupSchedule,
            class: crate::drift::Class::Dangerous,
            source: "schedule".to_owned(),
            member: None,
            before: Some(json!(f)),
            after: None,
            message: format!(
                "{f}, which `backup schedule --install` wrote, is gone: its scheduled backups no longer run; `pgdba backup schedule --install` writes it again"
            ),
        })
        .collect()
}

/// Where `--install` writes, and for what.
fn install_target(host: Host) -> Result<(PathBuf, Init), Failure> {
    let root = match std::env::var_os(ROOT_ENV) {
        Some(r) if Path::new(&r).is_absolute() => PathBuf::from(r),
        Some(r) => {
            return Err(Failure::new(
                codes::USAGE,
                format!(
                    "{ROOT_ENV}={} is not an absolute path",
                    Path::new(&r).display()
                ),
            ));
        }
        None => PathBuf::from("/"),
    };
    let init = match std::env::var(INIT_ENV).ok().as_deref() {
        Some("systemd") => Init::Systemd,
        Some("cron") => Init::Cron,
        Some(other) => {
            return Err(Failure::new(
                codes::USAGE,
                format!("{INIT_ENV}={other}: systemd or cron"),
            ));
        }
        // The Docker host's jobs are cron lines; this machine's, timers when systemd runs it.
        None if host == Host::Docker => Init::Cron,
        None if schedule::systemd_is_init() => Init::Systemd,
        None => Init::Cron,
    };
    Ok((root, init))
}

fn failure(e: &ScheduleError) -> Failure {
    let message = crate::error_chain(e);
    match e {
        ScheduleError::Io { .. } => Failure::new(codes::IO_ERROR, message),
        ScheduleError::NoCron { .. } => Failure::new(codes::REFUSED, message),
        ScheduleError::Systemctl { .. } | ScheduleError::NoSystemctl(_) => {
            Failure::new(codes::SCHEDULE_FAILED, message)
        }
    }
}

/// `data.entries[]`: each job with the files that carry it (those `init` writes, when given).
fn entries_json(r: &Rendered, init: Option<Init>) -> Vec<Value> {
    r.entries
        .iter()
        .map(|e| {
            let files: Vec<&str> = match init {
                Some(Init::Cron) => vec![r.cron_file.path.as_str()],
                Some(Init::Systemd) => e.units.iter().map(|u| u.path.as_str()).collect(),
                None => e
                    .units
                    .iter()
                    .map(|u| u.path.as_str())
                    .chain([r.cron_file.path.as_str()])
                    .collect(),
            };
            json!({
                "type": e.kind,
                "cron": e.cron,
                "on_calendar": e.on_calendar,
                "command": e.command,
                "cron_line": e.cron_line,
                "units": e.units,
                "files": files,
            })
        })
        .collect()
}

fn notes(r: &Rendered) -> Vec<String> {
    let mut n = vec![
        "expiry runs with each backup: pgBackRest expires full and diff backups past \
         spec.backup.retention after every backup, and a logical backup removes the logical \
         backups past retention.logical"
            .to_owned(),
        "two jobs that start together contend for the cluster's lock: the second fails with \
         STATE_LOCKED, so give each type its own time"
            .to_owned(),
    ];
    if r.entries.is_empty() {
        n.insert(0, "spec.backup.schedule names no backup".to_owned());
    }
    n
}

fn print_text(r: &Rendered, init: Init) -> String {
    let mut out = String::new();
    if r.entries.is_empty() {
        let _ = writeln!(
            out,
            "cluster {}: spec.backup.schedule names no backup; nothing to schedule.",
            r.cluster
        );
        return out;
    }
    let _ = writeln!(out, "Backup schedule of cluster {}:\n", r.cluster);
    let rows: Vec<Vec<String>> = r
        .entries
        .iter()
        .map(|e| {
            vec![
                e.kind.to_string(),
                e.cron.clone(),
                e.on_calendar.join(" | "),
            ]
        })
        .collect();
    out.push_str(&crate::output::columns(
        &["TYPE", "CRON", "ONCALENDAR"],
        &rows,
    ));
    if r.host == Host::Local {
        for e in &r.entries {
            for u in &e.units {
                let _ = writeln!(out, "\n# {}\n{}", u.path, u.content);
            }
        }
    }
    let _ = writeln!(
        out,
        "\n# {} (the same jobs for cron; on a Docker host, run them there)\n{}",
        r.cron_file.path, r.cron_file.content
    );
    for n in notes(r) {
        let _ = writeln!(out, "Note: {n}.");
    }
    let _ = writeln!(
        out,
        "`--install` here would write the {} files.",
        match init {
            Init::Systemd => "systemd",
            Init::Cron => "cron.d",
        }
    );
    out
}

fn installed_text(cluster: &str, done: &Installed) -> String {
    let mut out = String::new();
    if done.files.is_empty() {
        let _ = writeln!(out, "cluster {cluster}: no schedule file to change.");
    }
    for f in &done.files {
        let _ = writeln!(
            out,
            "{:<9} {}",
            match f.action {
                schedule::Action::Written => "written",
                schedule::Action::Unchanged => "unchanged",
                schedule::Action::Removed => "removed",
            },
            f.path
        );
    }
    for s in &done.systemctl {
        let _ = writeln!(out, "ran       {s}");
    }
    if done.root != "/" {
        let _ = writeln!(out, "(under {})", done.root);
    }
    for n in &done.notes {
        let _ = writeln!(out, "Note: {n}.");
    }
    out
}

/// Record an install or uninstall in the cluster's history, when the state knows the cluster.
fn record(g: &Global, cluster: &str, command: &str, done: &Installed) {
    let store = StateStore::new(&g.state_dir);
    if !matches!(store.load(cluster), Ok(Some(_))) {
        return;
    }
    let summary = format!(
        "{} file(s) written, {} removed ({:?}, under {})",
        done.files
            .iter()
            .filter(|f| f.action == schedule::Action::Written)
            .count(),
        done.files
            .iter()
            .filter(|f| f.action == schedule::Action::Removed)
            .count(),
        done.init,
        done.root
    );
    let details = serde_json::to_value(done).unwrap_or(Value::Null);
    // The history is written under the cluster's lock; a backup that holds it now only
    // costs this entry.
    let _lock = match store.lock(cluster, command) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("{command} is not recorded in the history of {cluster}: {e}");
            return;
        }
    };
    if let Err(e) = store.record(
        cluster,
        crate::state::HistoryEntry::now(command, true, summary, details),
    ) {
        tracing::warn!("could not record {command} in the history of {cluster}: {e}");
    }
}
