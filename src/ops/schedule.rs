//! `backup schedule`: `spec.backup.schedule` as systemd timers or cron lines that run
//! `pgdba backup create` on the machine pgdba runs on, and installing or removing them.
//!
//! [`render`] is pure: the jobs (type, cron expression, the command line) in, the unit files
//! and the `/etc/cron.d` file out. [`install`] and [`uninstall`] do the IO: files under a root
//! directory (`/`, or `PGDBA_SCHEDULE_ROOT` in tests), written only when their content changes,
//! and `systemctl` only on the real root.
//!
//! Expiry needs no job of its own: pgBackRest expires full and differential backups (and the
//! WAL only they needed) at the end of each `backup`, and `backup create --type logical`
//! removes the logical backups beyond `retention.logical` after each verified one.
//!
//! **Invariant:** the files pgdba writes for a cluster are named after it
//! (`pgdba-backup-<cluster>-<type>.{service,timer}`, `pgdba-backup-<cluster>`); `install`
//! and `uninstall` touch no other file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::logical::BackupType;
use crate::spec::cron::Cron;

/// What a scheduled job does: a backup of one type, or the restore test of the newest backup
/// (`backup verify-restore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Backup(BackupType),
    VerifyRestore,
}

impl JobKind {
    /// Every kind, in the order a schedule lists them.
    pub const ALL: [JobKind; 5] = [
        JobKind::Backup(BackupType::Full),
        JobKind::Backup(BackupType::Diff),
        JobKind::Backup(BackupType::Incremental),
        JobKind::Backup(BackupType::Logical),
        JobKind::VerifyRestore,
    ];

    /// Its name in unit names and the JSON (`full`, ..., `verify-restore`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup(b) => b.as_str(),
            JobKind::VerifyRestore => "verify-restore",
        }
    }
}

impl From<BackupType> for JobKind {
    fn from(b: BackupType) -> JobKind {
        JobKind::Backup(b)
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JobKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One scheduled job.
#[derive(Debug, Clone)]
pub struct Job {
    pub kind: JobKind,
    pub cron: Cron,
}

/// What the scheduled command names the cluster by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRef {
    /// `-f <absolute spec path>`.
    File(PathBuf),
    /// `--name NAME` (its spec from the state).
    Name(String),
}

/// Where the jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    /// The local provider: this machine; systemd timers and cron lines.
    Local,
    /// The docker provider: the Docker host, where pgdba reaches the containers itself
    /// (`docker exec` through the provider); cron lines.
    Docker,
}

/// What runs the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    Systemd,
    Cron,
}

/// Everything the jobs need to know.
#[derive(Debug, Clone)]
pub struct Setup {
    pub cluster: String,
    /// pgdba's own absolute path.
    pub pgdba: PathBuf,
    pub cluster_ref: ClusterRef,
    /// Absolute.
    pub state_dir: PathBuf,
    pub host: Host,
}

/// A file to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct File {
    /// Absolute, on the real root.
    pub path: String,
    pub content: String,
}

/// One job, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: JobKind,
    pub cron: String,
    /// The timer's `OnCalendar=` lines (their union is the cron schedule).
    pub on_calendar: Vec<String>,
    pub command: Vec<String>,
    /// The line in the cron.d file.
    pub cron_line: String,
    /// The service and timer (the local provider only).
    pub units: Vec<File>,
}

/// Every job of a cluster, rendered both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub cluster: String,
    pub host: Host,
    pub entries: Vec<Entry>,
    /// `/etc/cron.d/pgdba-backup-<cluster>`.
    pub cron_file: File,
    /// Where each job's output goes under cron (systemd's journal keeps it otherwise).
    pub log_file: String,
}

pub const SYSTEMD_DIR: &str = "/etc/systemd/system";
pub const CRON_DIR: &str = "/etc/cron.d";

pub fn unit_name(cluster: &str, kind: JobKind, suffix: &str) -> String {
    format!("pgdba-backup-{cluster}-{kind}.{suffix}")
}

pub fn cron_file_path(cluster: &str) -> String {
    format!("{CRON_DIR}/pgdba-backup-{cluster}")
}

/// The command line a job runs.
pub fn command(setup: &Setup, kind: JobKind) -> Vec<String> {
    let mut c = vec![
        setup.pgdba.display().to_string(),
        "backup".to_owned(),
        match kind {
            JobKind::Backup(_) => "create".to_owned(),
            JobKind::VerifyRestore => "verify-restore".to_owned(),
        },
    ];
    match &setup.cluster_ref {
        ClusterRef::File(f) => c.extend(["-f".to_owned(), f.display().to_string()]),
        ClusterRef::Name(n) => c.extend(["--name".to_owned(), n.clone()]),
    }
    if let JobKind::Backup(b) = kind {
        c.extend(["--type".to_owned(), b.as_str().to_owned()]);
    }
    c.extend([
        "--state-dir".to_owned(),
        setup.state_dir.display().to_string(),
        "--format".to_owned(),
        "json".to_owned(),
    ]);
    c
}

/// A word as systemd's `ExecStart=` reads it: quoted when it has to be, `%` and `$` doubled.
fn systemd_word(s: &str) -> String {
    let escaped = s.replace('%', "%%").replace('$', "$$");
    let plain = !escaped.is_empty()
        && escaped
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.,:=+@%$".contains(c));
    if plain {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A word as `sh` reads it, with cron's `%` (a newline there) escaped.
fn cron_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.,:=+@".contains(c));
    let quoted = if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    };
    quoted.replace('%', r"\%")
}

/// Render every job: a service and a timer each (local provider), and one cron.d file.
pub fn render(setup: &Setup, jobs: &[Job]) -> Rendered {
    let log_file = format!("/var/log/pgdba-backup-{}.log", setup.cluster);
    let mut entries = Vec::new();
    let mut cron = format!(
        "# pgdba backup schedule of cluster {cluster}: written by `pgdba backup schedule --install`,\n\
         # removed by `--uninstall`; edits are overwritten. pgBackRest expires old full and diff\n\
         # backups after each backup, and a logical backup removes those past retention.logical.\n\
         SHELL=/bin/sh\n\
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        cluster = setup.cluster
    );
    for job in jobs {
        let command = command(setup, job.kind);
        let on_calendar = job.cron.on_calendar();
        let cron_line = format!(
            "{} root {} >>{} 2>&1",
            job.cron,
            command
                .iter()
                .map(|w| cron_word(w))
                .collect::<Vec<_>>()
                .join(" "),
            cron_word(&log_file)
        );
        let _ = writeln!(cron, "{cron_line}");
        let units = match setup.host {
            Host::Local => units(setup, job, &command, &on_calendar),
            Host::Docker => Vec::new(),
        };
        entries.push(Entry {
            kind: job.kind,
            cron: job.cron.to_string(),
            on_calendar,
            command,
            cron_line,
            units,
        });
    }
    Rendered {
        cluster: setup.cluster.clone(),
        host: setup.host,
        entries,
        cron_file: File {
            path: cron_file_path(&setup.cluster),
            content: cron,
        },
        log_file,
    }
}

fn units(setup: &Setup, job: &Job, command: &[String], on_calendar: &[String]) -> Vec<File> {
    let service = unit_name(&setup.cluster, job.kind, "service");
    let what = match job.kind {
        JobKind::Backup(BackupType::Logical) => "logical backup (pg_dump)".to_owned(),
        JobKind::Backup(k) => format!("{k} backup (pgBackRest)"),
        JobKind::VerifyRestore => "restore test of the newest backup".to_owned(),
    };
    let service_text = format!(
        "# Written by `pgdba backup schedule --install`; edits are overwritten.\n\
         [Unit]\n\
         Description=pgdba {what} of cluster {cluster}\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={exec}\n",
        cluster = setup.cluster,
        exec = command
            .iter()
            .map(|w| systemd_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut timer_text = format!(
        "# Written by `pgdba backup schedule --install`; edits are overwritten.\n\
         # cron: {cron}\n\
         [Unit]\n\
         Description=pgdba {what} of cluster {cluster}, on schedule\n\
         \n\
         [Timer]\n",
        cron = job.cron,
        cluster = setup.cluster,
    );
    for c in on_calendar {
        let _ = writeln!(timer_text, "OnCalendar={c}");
    }
    let _ = write!(
        timer_text,
        "Persistent=true\nUnit={service}\n\n[Install]\nWantedBy=timers.target\n"
    );
    vec![
        File {
            path: format!("{SYSTEMD_DIR}/{service}"),
            content: service_text,
        },
        File {
            path: format!(
                "{SYSTEMD_DIR}/{}",
                unit_name(&setup.cluster, job.kind, "timer")
            ),
            content: timer_text,
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Installing.

/// Why installing or removing a schedule failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir} does not exist: cron is not installed here (apt-get install cron), and systemd is not PID 1"
    )]
    NoCron { dir: String },
    #[error("`systemctl {args}` failed (exit {code}): {message}")]
    Systemctl {
        args: String,
        code: i32,
        message: String,
    },
    #[error("cannot run systemctl")]
    NoSystemctl(#[source] std::io::Error),
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Written,
    Unchanged,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    pub action: Action,
}

/// What `install` or `uninstall` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    pub init: Init,
    /// The directory the paths are under (`/`, or `PGDBA_SCHEDULE_ROOT`).
    pub root: String,
    pub files: Vec<Change>,
    /// The `systemctl` commands run (none under another root).
    pub systemctl: Vec<String>,
    pub notes: Vec<String>,
}

/// systemd runs this machine (PID 1), as `sd_booted()` tells: `/run/systemd/system` exists.
pub fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// A cron daemon runs on this machine (`cron` or `crond` in `/proc`).
pub fn cron_running() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let comm = e.path().join("comm");
        std::fs::read_to_string(comm).is_ok_and(|c| matches!(c.trim(), "cron" | "crond"))
    })
}

/// Install the rendered schedule under `root` for `init`, replacing what an earlier install
/// left for this cluster (the other init's files, the types no longer scheduled).
/// `systemctl` runs only when `root` is `/`.
pub fn install(root: &Path, rendered: &Rendered, init: Init) -> Result<Installed, ScheduleError> {
    let real = root == Path::new("/");
    let mut files = Vec::new();
    let mut systemctl = Vec::new();
    let mut notes = Vec::new();
    match init {
        Init::Systemd => {
            let dir = under(root, SYSTEMD_DIR);
            mkdir(&dir)?;
            let mut timers = Vec::new();
            for e in &rendered.entries {
                for u in &e.units {
                    files.push(write(root, u)?);
                    if u.path.ends_with(".timer") {
                        timers.push(file_name(&u.path));
                    }
                }
            }
            let gone = stale_units(root, rendered);
            if real {
                // Stop the timers of types no longer scheduled before their files go.
                for t in gone.iter().filter(|p| p.ends_with(".timer")) {
                    run_systemctl(&["disable", "--now", &file_name(t)], &mut systemctl)?;
                }
            }
            files.extend(remove_all(root, &gone)?);
            files.extend(remove_all(
                root,
                std::slice::from_ref(&rendered.cron_file.path),
            )?);
            if real {
                run_systemctl(&["daemon-reload"], &mut systemctl)?;
                for t in &timers {
                    run_systemctl(&["enable", "--now", t], &mut systemctl)?;
                }
            } else {
                notes.push(format!(
                    "systemctl was not run: the files are under {}, not /",
                    root.display()
                ));
            }
        }
        Init::Cron => {
            let dir = under(root, CRON_DIR);
            if real && !dir.is_dir() {
                return Err(ScheduleError::NoCron {
                    dir: CRON_DIR.to_owned(),
                });
            }
            mkdir(&dir)?;
            files.push(write(root, &rendered.cron_file)?);
            // Units an earlier install under systemd left.
            let units = all_units(root, &rendered.cluster);
            if real {
                for t in units.iter().filter(|p| p.ends_with(".timer")) {
                    run_systemctl(&["disable", "--now", &file_name(t)], &mut systemctl)?;
                }
            }
            files.extend(remove_all(root, &units)?);
            if real && !cron_running() {
                notes.push(
                    "no cron daemon runs on this machine: the jobs run only once cron does \
                     (apt-get install cron; service cron start)"
                        .to_owned(),
                );
            }
        }
    }
    notes.push(match init {
        Init::Systemd => format!(
            "each run's output goes to the journal (journalctl -u pgdba-backup-{}-TYPE)",
            rendered.cluster
        ),
        Init::Cron => format!("each run's output is appended to {}", rendered.log_file),
    });
    Ok(Installed {
        init,
        root: root.display().to_string(),
        files,
        systemctl,
        notes,
    })
}

/// Remove every file an install made for `cluster` (both inits'), stopping its timers first.
pub fn uninstall(root: &Path, cluster: &str, init: Init) -> Result<Installed, ScheduleError> {
    let real = root == Path::new("/");
    let mut systemctl = Vec::new();
    let units = all_units(root, cluster);
    if real && systemd_is_init() {
        for t in units.iter().filter(|p| p.ends_with(".timer")) {
            run_systemctl(&["disable", "--now", &file_name(t)], &mut systemctl)?;
        }
    }
    let mut files = remove_all(root, &units)?;
    files.extend(remove_all(root, &[cron_file_path(cluster)])?);
    if real && systemd_is_init() && !units.is_empty() {
        run_systemctl(&["daemon-reload"], &mut systemctl)?;
    }
    Ok(Installed {
        init,
        root: root.display().to_string(),
        files,
        systemctl,
        notes: Vec::new(),
    })
}

/// A path of the real root under `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

fn mkdir(dir: &Path) -> Result<(), ScheduleError> {
    std::fs::create_dir_all(dir).map_err(|source| ScheduleError::Io {
        action: "create",
        path: dir.display().to_string(),
        source,
    })
}

/// Write `f` under `root` unless it holds that content already (through a temporary file
/// renamed into place: cron and systemd never read half a file).
fn write(root: &Path, f: &File) -> Result<Change, ScheduleError> {
    let path = under(root, &f.path);
    if std::fs::read_to_string(&path).is_ok_and(|c| c == f.content) {
        return Ok(Change {
            path: f.path.clone(),
            action: Action::Unchanged,
        });
    }
    let io = |action, source| ScheduleError::Io {
        action,
        path: path.display().to_string(),
        source,
    };
    // cron.d ignores names with a dot: the temporary name has none either.
    let tmp = path.with_file_name(format!(
        "{}~pgdba-new",
        file_name(&f.path).replace('.', "_")
    ));
    std::fs::write(&tmp, &f.content).map_err(|e| io("write", e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io("write", e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| io("write", e))?;
    Ok(Change {
        path: f.path.clone(),
        action: Action::Written,
    })
}

fn remove_all(root: &Path, paths: &[String]) -> Result<Vec<Change>, ScheduleError> {
    let mut out = Vec::new();
    for p in paths {
        let path = under(root, p);
        match std::fs::remove_file(&path) {
            Ok(()) => out.push(Change {
                path: p.clone(),
                action: Action::Removed,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ScheduleError::Io {
                    action: "remove",
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(out)
}

/// The unit files of `cluster` that exist under `root`, of every type.
fn all_units(root: &Path, cluster: &str) -> Vec<String> {
    JobKind::ALL
        .iter()
        .flat_map(|k| ["service", "timer"].map(|s| unit_name(cluster, *k, s)))
        .map(|n| format!("{SYSTEMD_DIR}/{n}"))
        .filter(|p| under(root, p).exists())
        .collect()
}

/// The unit files of types the rendered schedule no longer has.
fn stale_units(root: &Path, rendered: &Rendered) -> Vec<String> {
    all_units(root, &rendered.cluster)
        .into_iter()
        .filter(|p| {
            !rendered
                .entries
                .iter()
                .any(|e| e.units.iter().any(|u| &u.path == p))
        })
        .collect()
}

fn run_systemctl(args: &[&str], log: &mut Vec<String>) -> Result<(), ScheduleError> {
    let out = std::process::Command::new("systemctl")
        .args(args)
        .output()
        .map_err(ScheduleError::NoSystemctl)?;
    log.push(format!("systemctl {}", args.join(" ")));
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(ScheduleError::Systemctl {
        args: args.join(" "),
        code: out.status.code().unwrap_or(-1),
        message: stderr.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn setup(host: Host) -> Setup {
        Setup {
            cluster: "demo".to_owned(),
            pgdba: PathBuf::from("/usr/local/bin/pgdba"),
            cluster_ref: ClusterRef::File(PathBuf::from("/srv/specs/demo.yaml")),
            state_dir: PathBuf::from("/var/lib/pgdba/state"),
            host,
        }
    }

    fn jobs() -> Vec<Job> {
        [
            (BackupType::Full, "0 1 * * 0"),
            (BackupType::Incremental, "0 1 * * 1-6"),
            (BackupType::Logical, "30 3 1,15 * 1"),
        ]
        .iter()
        .filter_map(|(k, c)| {
            Cron::parse(c).ok().map(|cron| Job {
                kind: (*k).into(),
                cron,
            })
        })
        .collect()
    }

    #[test]
    fn the_restore_test_is_scheduled_as_verify_restore() {
        let job = Job {
            kind: JobKind::VerifyRestore,
            cron: Cron::parse("0 5 * * 0").unwrap(),
        };
        let r = render(&setup(Host::Local), &[job]);
        let e = &r.entries[0];
        assert_eq!(
            e.command[1..4],
            ["backup", "verify-restore", "-f"].map(str::to_owned)
        );
        assert!(!e.command.iter().any(|w| w == "--type"), "{:?}", e.command);
        assert_eq!(
            e.units[1].path,
            "/etc/systemd/system/pgdba-backup-demo-verify-restore.timer"
        );
        assert!(
            e.units[0]
                .content
                .contains("restore test of the newest backup")
        );
        assert_eq!(serde_json::to_value(e).unwrap()["type"], "verify-restore");
    }

    #[test]
    fn local_jobs_render_as_service_and_timer_pairs_and_cron_lines() {
        let r = render(&setup(Host::Local), &jobs());
        assert_eq!(r.entries.len(), 3);
        let full = &r.entries[0];
        assert_eq!(full.on_calendar, ["Sun *-*-* 01:00:00"]);
        assert_eq!(
            full.units[0].path,
            "/etc/systemd/system/pgdba-backup-demo-full.service"
        );
        assert_eq!(
            full.units[0].content,
            "# Written by `pgdba backup schedule --install`; edits are overwritten.\n\
             [Unit]\n\
             Description=pgdba full backup (pgBackRest) of cluster demo\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             ExecStart=/usr/local/bin/pgdba backup create -f /srv/specs/demo.yaml --type full --state-dir /var/lib/pgdba/state --format json\n"
        );
        assert_eq!(
            full.units[1].path,
            "/etc/systemd/system/pgdba-backup-demo-full.timer"
        );
        assert_eq!(
            full.units[1].content,
            "# Written by `pgdba backup schedule --install`; edits are overwritten.\n\
             # cron: 0 1 * * 0\n\
             [Unit]\n\
             Description=pgdba full backup (pgBackRest) of cluster demo, on schedule\n\
             \n\
             [Timer]\n\
             OnCalendar=Sun *-*-* 01:00:00\n\
             Persistent=true\n\
             Unit=pgdba-backup-demo-full.service\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n"
        );
        // Cron's day-of-month-or-day-of-week: two OnCalendar lines.
        let logical = &r.entries[2];
        assert!(
            logical.units[1]
                .content
                .contains("OnCalendar=*-*-01,15 03:30:00\nOnCalendar=Mon *-*-* 03:30:00\n")
        );
        assert_eq!(r.cron_file.path, "/etc/cron.d/pgdba-backup-demo");
        assert!(r.cron_file.content.ends_with(
            "0 1 * * 1-6 root /usr/local/bin/pgdba backup create -f /srv/specs/demo.yaml --type incremental --state-dir /var/lib/pgdba/state --format json >>/var/log/pgdba-backup-demo.log 2>&1\n\
             30 3 1,15 * 1 root /usr/local/bin/pgdba backup create -f /srv/specs/demo.yaml --type logical --state-dir /var/lib/pgdba/state --format json >>/var/log/pgdba-backup-demo.log 2>&1\n"
        ));
    }

    #[test]
    fn docker_jobs_are_cron_lines_only() {
        let r = render(&setup(Host::Docker), &jobs());
        assert!(r.entries.iter().all(|e| e.units.is_empty()));
        assert_eq!(
            r.cron_file
                .content
                .lines()
                .filter(|l| l.contains(" root "))
                .count(),
            3
        );
    }

    #[test]
    fn odd_paths_are_quoted_for_systemd_and_cron() {
        let mut s = setup(Host::Local);
        s.cluster_ref = ClusterRef::File(PathBuf::from("/srv/my specs/100%/demo.yaml"));
        let r = render(&s, &jobs()[..1]);
        assert!(r.entries[0].units[0].content.contains(
            "ExecStart=/usr/local/bin/pgdba backup create -f \"/srv/my specs/100%%/demo.yaml\" --type full"
        ));
        assert!(
            r.entries[0]
                .cron_line
                .contains(r"-f '/srv/my specs/100\%/demo.yaml' --type full")
        );
        assert_eq!(systemd_word("a$b"), "a$$b");
        assert_eq!(cron_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn install_is_idempotent_replaces_the_other_init_and_uninstall_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let r = render(&setup(Host::Local), &jobs());
        let first = install(root.path(), &r, Init::Systemd).unwrap();
        assert_eq!(first.files.len(), 6);
        assert!(first.files.iter().all(|f| f.action == Action::Written));
        assert!(first.systemctl.is_empty());
        let again = install(root.path(), &r, Init::Systemd).unwrap();
        assert!(again.files.iter().all(|f| f.action == Action::Unchanged));
        // Fewer types: the units of the one dropped go.
        let fewer = render(&setup(Host::Local), &jobs()[..2]);
        let less = install(root.path(), &fewer, Init::Systemd).unwrap();
        let removed: Vec<&str> = less
            .files
            .iter()
            .filter(|f| f.action == Action::Removed)
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            removed,
            [
                "/etc/systemd/system/pgdba-backup-demo-logical.service",
                "/etc/systemd/system/pgdba-backup-demo-logical.timer"
            ]
        );
        // Cron instead: the units go, the cron.d file comes.
        let cron = install(root.path(), &fewer, Init::Cron).unwrap();
        assert_eq!(cron.files[0].action, Action::Written);
        assert_eq!(
            cron.files
                .iter()
                .filter(|f| f.action == Action::Removed)
                .count(),
            4
        );
        let gone = uninstall(root.path(), "demo", Init::Cron).unwrap();
        assert_eq!(gone.files.len(), 1);
        let left: Vec<_> = walk(root.path());
        assert!(left.is_empty(), "{left:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
