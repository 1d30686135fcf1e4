//! Physical backups with pgBackRest: what the repository holds (`info`), the window a restore
//! can reach, taking a backup (`create`, then pgBackRest's `verify`), and proving a backup
//! restores (`verify_restore`: a restore into a scratch directory, a throw-away PostgreSQL on
//! it, `pg_amcheck`, row counts against the primary).
//!
//! Every program runs through a [`Beside`]: where the member's PostgreSQL runs, as the user
//! that runs it, with the member's pgBackRest configuration ([`OnMember`] asks the provider's
//! [`Provider::run_beside`]). The stanza is the cluster's name.
//!
//! **Invariant:** the scratch server of `verify_restore` never reaches the real cluster or
//! repository: it listens on no TCP address (a Unix socket in its own 0700 directory), does
//! not archive (`archive_mode=off`, also written by the restore), has no `primary_conninfo`
//! and no synchronous standbys, and its directory is removed when the check ends, failed or
//! not.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::Server;
use crate::poll::{Gave, Probe, poll_until};
use crate::providers::{Provider, ProviderError, Ran};

// ---------------------------------------------------------------------------------------------
// Running programs beside PostgreSQL.

/// Runs a program where a member's PostgreSQL runs, as its user, with its pgBackRest
/// configuration.
#[async_trait::async_trait]
pub trait Beside: Send + Sync {
    async fn run(&self, argv: &[String], within: Duration) -> Result<Ran, ProviderError>;
}

/// [`Beside`] through a provider: beside member `member`.
pub struct OnMember<'a> {
    provider: &'a dyn Provider,
    member: String,
}

impl<'a> OnMember<'a> {
    pub fn new(provider: &'a dyn Provider, member: impl Into<String>) -> OnMember<'a> {
        OnMember {
            provider,
            member: member.into(),
        }
    }
}

#[async_trait::async_trait]
impl Beside for OnMember<'_> {
    async fn run(&self, argv: &[String], within: Duration) -> Result<Ran, ProviderError> {
        self.provider
            .run_beside(&self.member, argv, &[], within)
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// Why a backup operation could not be carried out. A restore test that fails is not one of
/// these: it is a [`VerifyReport`] whose status is [`VerifyStatus::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The program could not be run (or did not end in time).
    #[error("cannot run {program}")]
    Run {
        program: String,
        #[source]
        source: ProviderError,
    },
    /// pgBackRest (or another program) ran and failed; `message` is its own (pgBackRest's
    /// `ERROR:` line).
    #[error("{command} failed (exit {code}): {message}")]
    Failed {
        command: String,
        code: i32,
        message: String,
    },
    /// Its answer could not be read.
    #[error("cannot read the answer of {what}: {message}")]
    Parse { what: String, message: String },
    /// The repository has no such stanza (`pgdba apply` creates it).
    #[error("the repository has no stanza {stanza} ({message})")]
    NoStanza { stanza: String, message: String },
    /// The stanza has no backup to act on.
    #[error("stanza {stanza} has no backup yet")]
    NoBackup { stanza: String },
    /// No backup of that label.
    #[error("stanza {stanza} has no backup {label}; its backups: {known}")]
    NoSuchBackup {
        stanza: String,
        label: String,
        known: String,
    },
    /// The backup command succeeded, yet `info` does not list a new backup.
    #[error("pgBackRest's backup of stanza {stanza} finished, but its info lists no new backup")]
    Vanished { stanza: String },
    /// The scratch directory could not be made.
    #[error("cannot make the scratch directory {dir}: {message}")]
    Scratch { dir: String, message: String },
}

// ---------------------------------------------------------------------------------------------
// Kinds and backups.

/// A backup's type, as pgdba names it (`incremental` is pgBackRest's `incr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Every file of the data directory.
    Full,
    /// The files changed since the last full backup.
    Diff,
    /// The files changed since the last backup of any type (also accepted as `incr`).
    #[value(alias = "incr")]
    Incremental,
}

impl Kind {
    /// pgdba's name (`full`, `diff`, `incremental`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Diff => "diff",
            Kind::Incremental => "incremental",
        }
    }

    /// pgBackRest's name (`--type=`, the info's `type`).
    pub fn pgbackrest(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Diff => "diff",
            Kind::Incremental => "incr",
        }
    }

    /// From pgBackRest's name.
    pub fn from_pgbackrest(s: &str) -> Option<Kind> {
        match s {
            "full" => Some(Kind::Full),
            "diff" => Some(Kind::Diff),
            "incr" => Some(Kind::Incremental),
            _ => None,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// A time as pgdba prints it: RFC3339, UTC, whole seconds.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One backup in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    /// pgBackRest's label (`20261202-061128F`, `20261202-061128F_20261202-061134D`).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub stopped_at: DateTime<Utc>,
    /// The database's size when it was taken (what a restore writes).
    pub size_bytes: u64,
    /// What this backup copied (all of it for a full one, the changes otherwise).
    pub delta_bytes: u64,
    /// What it takes in the repository (compressed), with what it references.
    pub repo_size_bytes: u64,
    /// What this backup alone added to the repository.
    pub repo_delta_bytes: u64,
    /// The first and last WAL segments a restore of it needs.
    pub wal_start: Option<String>,
    pub wal_stop: Option<String>,
    pub lsn_start: Option<String>,
    pub lsn_stop: Option<String>,
    /// The backup it builds on (diff, incremental).
    pub prior: Option<String>,
    /// Every backup whose files it uses.
    pub references: Vec<String>,
    /// The PostgreSQL major it is of.
    pub pg_version: Option<String>,
    /// pgBackRest found page checksum errors while taking it.
    pub page_errors: bool,
}

/// The stanza's state, as pgBackRest's `info` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StanzaStatus {
    Ok,
    MissingStanza,
    NoValidBackup,
    Error,
}

impl StanzaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StanzaStatus::Ok => "ok",
            StanzaStatus::MissingStanza => "missing_stanza",
            StanzaStatus::NoValidBackup => "no_valid_backup",
            StanzaStatus::Error => "error",
        }
    }
}

/// The WAL a stanza's archive holds for one database (`15-1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    pub id: String,
    pub min: Option<String>,
    pub max: Option<String>,
}

/// What pgBackRest's `info` says of one stanza.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Info {
    pub stanza: String,
    pub status: StanzaStatus,
    /// pgBackRest's words for the status (`ok`, `missing stanza path`, `no valid backups`).
    pub message: String,
    /// A backup is running now.
    pub backup_running: bool,
    /// Oldest first.
    pub backups: Vec<Backup>,
    /// One per database the stanza has known (one, until a major upgrade).
    pub archive: Vec<Archive>,
    /// The current database's PostgreSQL major and system identifier.
    pub pg_version: Option<String>,
    pub system_id: Option<u64>,
}

impl Info {
    /// The archive of the current database.
    pub fn current_archive(&self) -> Option<&Archive> {
        self.archive.last()
    }

    pub fn backup(&self, label: &str) -> Option<&Backup> {
        self.backups.iter().find(|b| b.id == label)
    }

    pub fn latest(&self) -> Option<&Backup> {
        self.backups.last()
    }

    fn labels(&self) -> String {
        if self.backups.is_empty() {
            return "(none)".to_owned();
        }
        self.backups
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// pgBackRest's `info --output=json`, as 2.45 writes it (fields pgdba does not read are left
// out; serde ignores them).

#[derive(Deserialize)]
struct RawStanza {
    name: String,
    status: RawStatus,
    #[serde(default)]
    backup: Vec<RawBackup>,
    #[serde(default)]
    archive: Vec<RawArchive>,
    #[serde(default)]
    db: Vec<RawDb>,
}

#[derive(Deserialize)]
struct RawStatus {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    lock: Option<RawLock>,
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(default)]
    backup: Option<RawHeld>,
}

#[derive(Deserialize)]
struct RawHeld {
    #[serde(default)]
    held: bool,
}

#[derive(Deserialize)]
struct RawBackup {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    timestamp: RawRange<i64>,
    info: RawSizes,
    #[serde(default)]
    archive: Option<RawRange<Option<String>>>,
    #[serde(default)]
    lsn: Option<RawRange<Option<String>>>,
    #[serde(default)]
    prior: Option<String>,
    #[serde(default)]
    reference: Option<Vec<String>>,
    #[serde(default)]
    database: Option<RawDbRef>,
    #[serde(default)]
    error: Option<bool>,
}

#[derive(Deserialize)]
struct RawRange<T> {
    start: T,
    stop: T,
}

#[derive(Deserialize)]
struct RawSizes {
    size: u64,
    #[serde(default)]
    delta: u64,
    repository: RawRepoSizes,
}

#[derive(Deserialize)]
struct RawRepoSizes {
    #[serde(default)]
    size: u64,
    #[serde(default)]
    delta: u64,
}

#[derive(Deserialize)]
struct RawDbRef {
    id: u64,
}

#[derive(Deserialize)]
struct RawArchive {
    id: String,
    #[serde(default)]
    min: Option<String>,
    #[serde(default)]
    max: Option<String>,
}

#[derive(Deserialize)]
struct RawDb {
    id: u64,
    version: String,
    #[serde(rename = "system-id")]
    system_id: u64,
}

/// pgBackRest's `info --output=json` for `stanza`.
pub fn parse_info(json: &str, stanza: &str) -> Result<Info, BackupError> {
    let parse = |message: String| BackupError::Parse {
        what: "pgbackrest info".to_owned(),
        message,
    };
    let all: Vec<RawStanza> = serde_json::from_str(json).map_err(|e| parse(e.to_string()))?;
    let Some(raw) = all.into_iter().find(|s| s.name == stanza) else {
        return Err(parse(format!("it lists no stanza {stanza}")));
    };
    let status = match raw.status.code {
        0 => StanzaStatus::Ok,
        1 | 3 => StanzaStatus::MissingStanza,
        2 => StanzaStatus::NoValidBackup,
        _ => StanzaStatus::Error,
    };
    let version_of = |id: u64| {
        raw.db
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.version.clone())
    };
    let mut backups = Vec::with_capacity(raw.backup.len());
    for b in &raw.backup {
        let kind = Kind::from_pgbackrest(&b.kind)
            .ok_or_else(|| parse(format!("backup {} has an unknown type {}", b.label, b.kind)))?;
        let time = |secs: i64| {
            DateTime::from_timestamp(secs, 0)
                .ok_or_else(|| parse(format!("backup {}: bad timestamp {secs}", b.label)))
        };
        let (wal_start, wal_stop) = match &b.archive {
            Some(a) => (a.start.clone(), a.stop.clone()),
            None => (None, None),
        };
        let (lsn_start, lsn_stop) = match &b.lsn {
            Some(l) => (l.start.clone(), l.stop.clone()),
            None => (None, None),
        };
        backups.push(Backup {
            id: b.label.clone(),
            kind,
            started_at: time(b.timestamp.start)?,
            stopped_at: time(b.timestamp.stop)?,
            size_bytes: b.info.size,
            delta_bytes: b.info.delta,
            repo_size_bytes: b.info.repository.size,
            repo_delta_bytes: b.info.repository.delta,
            wal_start,
            wal_stop,
            lsn_start,
            lsn_stop,
            prior: b.prior.clone(),
            references: b.reference.clone().unwrap_or_default(),
            pg_version: b.database.as_ref().and_then(|d| version_of(d.id)),
            page_errors: b.error.unwrap_or(false),
        });
    }
    backups.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
    let current = raw.db.iter().max_by_key(|d| d.id);
    Ok(Info {
        stanza: raw.name.clone(),
        status,
        message: raw.status.message.clone(),
        backup_running: raw
            .status
            .lock
            .as_ref()
            .and_then(|l| l.backup.as_ref())
            .is_some_and(|h| h.held),
        backups,
        archive: raw
            .archive
            .iter()
            .map(|a| Archive {
                id: a.id.clone(),
                min: a.min.clone(),
                max: a.max.clone(),
            })
            .collect(),
        pg_version: current.map(|d| d.version.clone()),
        system_id: current.map(|d| d.system_id),
    })
}

/// The program lines pgdba runs pgBackRest with: the stanza, nothing on stdout but the
/// answer, warnings and errors on stderr.
fn pgbackrest(stanza: &str, stderr_level: &str, rest: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "pgbackrest".to_owned(),
        format!("--stanza={stanza}"),
        "--log-level-console=off".to_owned(),
        format!("--log-level-stderr={stderr_level}"),
    ];
    argv.extend(rest.iter().map(|s| (*s).to_owned()));
    argv
}

/// pgBackRest's own words for a failure: its `ERROR:` line and the lines that continue it
/// (`HINT: ...`), else the last line it wrote.
pub fn error_message(stderr: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut in_error = false;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("ERROR: ") {
            out.push(rest.trim().to_owned());
            in_error = true;
        } else if in_error && line.starts_with(char::is_whitespace) && !line.trim().is_empty() {
            out.push(line.trim().to_owned());
        } else {
            in_error = false;
        }
    }
    if out.is_empty() {
        return stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_owned())
            .unwrap_or_else(|| "(it said nothing on stderr)".to_owned());
    }
    out.join("; ")
}

/// Run `argv` to its end; an exit other than 0 is [`BackupError::Failed`] with the program's
/// own message.
async fn run_ok(
    runner: &dyn Beside,
    argv: &[String],
    within: Duration,
) -> Result<Ran, BackupError> {
    let ran = run(runner, argv, within).await?;
    if ran.success() {
        Ok(ran)
    } else {
        Err(BackupError::Failed {
            command: describe(argv),
            code: ran.code,
            message: error_message(&ran.stderr),
        })
    }
}

async fn run(runner: &dyn Beside, argv: &[String], within: Duration) -> Result<Ran, BackupError> {
    runner
        .run(argv, within)
        .await
        .map_err(|source| BackupError::Run {
            program: describe(argv),
            source,
        })
}

/// A program line for messages: the program and its subcommand, not every option.
fn describe(argv: &[String]) -> String {
    let program = argv
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
        .unwrap_or_default();
    if program == "pgbackrest" {
        let sub = argv.iter().skip(1).find(|a| !a.starts_with('-'));
        return format!("pgbackrest {}", sub.map(String::as_str).unwrap_or_default());
    }
    program
}

/// How long `info` may take.
const INFO_WITHIN: Duration = Duration::from_secs(120);

/// What the repository holds of `stanza`.
pub async fn info(runner: &dyn Beside, stanza: &str) -> Result<Info, BackupError> {
    let argv = pgbackrest(stanza, "warn", &["--output=json", "info"]);
    let ran = run_ok(runner, &argv, INFO_WITHIN).await?;
    parse_info(&ran.stdout, stanza)
}

/// `info`, refusing a stanza that does not exist.
async fn info_of_stanza(runner: &dyn Beside, stanza: &str) -> Result<Info, BackupError> {
    let info = info(runner, stanza).await?;
    if info.status == StanzaStatus::MissingStanza {
        return Err(BackupError::NoStanza {
            stanza: stanza.to_owned(),
            message: info.message,
        });
    }
    Ok(info)
}

// ---------------------------------------------------------------------------------------------
// The recoverable window.

/// The leader's `pg_stat_archiver`, as far as the window needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archiver {
    pub last_archived_wal: Option<String>,
    pub last_archived_at: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
}

/// Where the newest recoverable point comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NewestSource {
    /// The last WAL segment archived (archiving works): a restore can replay up to it.
    ArchivedWal,
    /// The newest backup's end: archiving does not work, or is not known to.
    Backup,
}

impl NewestSource {
    pub fn as_str(self) -> &'static str {
        match self {
            NewestSource::ArchivedWal => "archived_wal",
            NewestSource::Backup => "backup",
        }
    }
}

/// The times a restore can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// The oldest backup's end: the first consistent point.
    #[serde(serialize_with = "rfc3339")]
    pub oldest: DateTime<Utc>,
    /// The latest point a restore can recover to.
    #[serde(serialize_with = "rfc3339")]
    pub newest: DateTime<Utc>,
    pub newest_source: NewestSource,
    /// Why the archived WAL was not counted, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The first 24 hex digits of a WAL file name (timeline, log, segment), when it names a segment.
fn segment(name: &str) -> Option<&str> {
    let s = name.get(..24)?;
    s.chars().all(|c| c.is_ascii_hexdigit()).then_some(s)
}

/// The recoverable window of `info`: from the oldest backup's end to the last archived WAL
/// segment when archiving works (`archiver`, from the leader), else to the newest backup's
/// end. `None` when there is no backup.
pub fn window(info: &Info, archiver: Option<&Archiver>) -> Option<Window> {
    let oldest = info.backups.iter().map(|b| b.stopped_at).min()?;
    let newest_backup = info.backups.iter().map(|b| b.stopped_at).max()?;
    let backup_only = |note: Option<String>| Window {
        oldest,
        newest: newest_backup,
        newest_source: NewestSource::Backup,
        note,
    };
    let Some(a) = archiver else {
        return Some(backup_only(Some(
            "the leader's archiver was not read".to_owned(),
        )));
    };
    let Some(archived_at) = a.last_archived_at else {
        return Some(backup_only(Some(
            "the leader has archived no WAL since its statistics were reset".to_owned(),
        )));
    };
    if let Some(failed_at) = a.last_failed_at
        && failed_at > archived_at
    {
        return Some(backup_only(Some(format!(
            "archiving fails: the last attempt failed at {}, the last success was at {}",
            format_time(&failed_at),
            format_time(&archived_at)
        ))));
    }
    // The segment the leader archived must be in this repository's archive.
    if let (Some(seg), Some(max)) = (
        a.last_archived_wal.as_deref().and_then(segment),
        info.current_archive().and_then(|x| x.max.as_deref()),
    ) && seg > max
    {
        return Some(backup_only(Some(format!(
            "the leader archived {seg}, but the repository's archive ends at {max}"
        ))));
    }
    if archived_at < newest_backup {
        return Some(backup_only(Some(format!(
            "the last archived WAL ({}) is older than the newest backup",
            format_time(&archived_at)
        ))));
    }
    Some(Window {
        oldest,
        newest: archived_at,
        newest_source: NewestSource::ArchivedWal,
        note: None,
    })
}

// ---------------------------------------------------------------------------------------------
// pgBackRest's verify.

/// One backup as pgBackRest's `verify` found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupCheck {
    pub id: String,
    /// `valid`, `invalid`, ... as pgBackRest says.
    pub status: String,
    pub files_checked: Option<u64>,
    pub files_valid: Option<u64>,
}

/// What `pgbackrest verify` found in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoCheck {
    /// Its overall status is `ok`.
    pub ok: bool,
    pub backups: Vec<BackupCheck>,
    /// Each file it found wrong, in its words: `invalid checksum '<label>/pg_data/base/5/16384.lz4'`.
    pub problems: Vec<String>,
}

impl RepoCheck {
    pub fn backup(&self, label: &str) -> Option<&BackupCheck> {
        self.backups.iter().find(|b| b.id == label)
    }

    /// The problems in the files of these backups (a backup and those it references).
    pub fn problems_of(&self, labels: &[&str]) -> Vec<String> {
        self.problems
            .iter()
            .filter(|p| {
                quoted(p).is_some_and(|path| {
                    labels
                        .iter()
                        .any(|l| path.strip_prefix(l).is_some_and(|r| r.starts_with('/')))
                })
            })
            .cloned()
            .collect()
    }
}

/// The text between the first pair of single quotes.
fn quoted(s: &str) -> Option<&str> {
    let start = s.find('\'')? + 1;
    let len = s.get(start..)?.find('\'')?;
    s.get(start..start + len)
}

/// `pgbackrest verify --output=text --verbose`'s stdout, and its stderr at log level `info`
/// (where it names each bad file).
pub fn parse_verify(stdout: &str, stderr: &str) -> RepoCheck {
    let mut ok = false;
    let mut backups = Vec::new();
    for line in stdout.lines() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix("status: ") {
            ok = s.trim() == "ok";
        } else if let Some(rest) = l.strip_prefix("backup: ") {
            let mut parts = rest.split(", ");
            let id = parts.next().unwrap_or_default().to_owned();
            let mut check = BackupCheck {
                id,
                status: String::new(),
                files_checked: None,
                files_valid: None,
            };
            for p in parts {
                if let Some(v) = p.strip_prefix("status: ") {
                    check.status = v.to_owned();
                } else if let Some(v) = p.strip_prefix("total files checked: ") {
                    check.files_checked = v.parse().ok();
                } else if let Some(v) = p.strip_prefix("total valid files: ") {
                    check.files_valid = v.parse().ok();
                }
            }
            backups.push(check);
        }
    }
    let problems = stderr
        .lines()
        .filter_map(|l| {
            let msg = l
                .strip_prefix("INFO: ")
                .or_else(|| l.strip_prefix("WARN: "))
                .or_else(|| l.strip_prefix("ERROR: "))?;
            (quoted(msg).is_some() && !msg.contains(" command ")).then(|| msg.trim().to_owned())
        })
        .collect();
    RepoCheck {
        ok,
        backups,
        problems,
    }
}

/// Check every file of the repository (pgBackRest 2.45 verifies a whole stanza: its `--set`
/// is for internal use).
pub async fn verify(
    runner: &dyn Beside,
    stanza: &str,
    within: Duration,
) -> Result<RepoCheck, BackupError> {
    let argv = pgbackrest(stanza, "info", &["--output=text", "--verbose", "verify"]);
    let ran = run_ok(runner, &argv, within).await?;
    Ok(parse_verify(&ran.stdout, &ran.stderr))
}

// ---------------------------------------------------------------------------------------------
// Taking a backup.

/// How `create` runs.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// How long the backup may take.
    pub backup_within: Duration,
    /// Run pgBackRest's `verify` afterwards, and how long it may take (`None`: do not).
    pub verify_within: Option<Duration>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            backup_within: Duration::from_secs(6 * 3600),
            verify_within: Some(Duration::from_secs(3600)),
        }
    }
}

/// What `verify` said of one new backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The backup and every backup it uses are valid.
    pub verified: bool,
    /// pgBackRest's status of the backup (`valid`, `invalid`), or `not listed`.
    pub status: String,
    /// The whole repository is ok (a problem elsewhere does not make this backup bad).
    pub repository_ok: bool,
    /// The bad files of this backup and those it uses.
    pub problems: Vec<String>,
    pub duration_ms: u64,
}

/// A backup taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    pub backup: Backup,
    /// The type asked for (pgBackRest takes a full backup when a diff or incremental one has
    /// no full one to build on, and says so in `warnings`).
    pub requested_type: Kind,
    /// How long the backup took (verification not included).
    pub duration_ms: u64,
    /// `None` when verification was not asked for.
    pub verification: Option<Verification>,
    /// pgBackRest's warnings.
    pub warnings: Vec<String>,
}

/// The `WARN:` lines of pgBackRest's stderr.
fn warnings(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("WARN: ").map(|w| w.trim().to_owned()))
        .collect()
}

/// How far a running backup is, in hundredths of a percent, from the line of its log that
/// `progress_argv` finds: pgBackRest's `DETAIL: backup file PATH (SIZE, NN.NN%)` (the share of
/// the backup's bytes copied once that file is), or 0 at `backup command begin`.
pub fn progress_of(line: &str) -> Option<u64> {
    if line.contains("backup command begin") {
        return Some(0);
    }
    let (_, rest) = line.split_once("DETAIL: backup file ")?;
    let pct = rest.split_once("%)")?.0.rsplit(", ").next()?;
    let v: f64 = pct.trim().parse().ok()?;
    (0.0..=100.0)
        .contains(&v)
        .then(|| (v * 100.0).round() as u64)
}

/// The command that finds the newest progress line of `stanza`'s backup log beside the member:
/// the log directory from its pgBackRest configuration, the log read from its end up to the
/// latest file copied or the latest backup's start.
fn progress_argv(stanza: &str) -> Vec<String> {
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!(
            "f=\"$(sed -n 's/^log-path=//p' \"$PGBACKREST_CONFIG\")/{stanza}-backup.log\"; \
             tac \"$f\" 2>/dev/null | grep -m1 -e 'backup command begin' -e 'DETAIL: backup file'"
        ),
    ]
}

/// Take a backup of `kind` (with a fast checkpoint), find it in `info`, and verify it.
/// `progress`, when given, hears every second how far the backup is (done, of in all): the
/// backup then logs each file it copies into its log file (`--log-level-file=detail`), whose
/// newest line says how much of the backup's bytes are copied.
pub async fn create(
    runner: &dyn Beside,
    stanza: &str,
    kind: Kind,
    opts: &CreateOptions,
    progress: Option<&(dyn Fn(u64, u64) + Send + Sync)>,
) -> Result<Created, BackupError> {
    let before = info_of_stanza(runner, stanza).await?;
    let type_arg = format!("--type={}", kind.pgbackrest());
    let mut args = vec![type_arg.as_str(), "--start-fast"];
    if progress.is_some() {
        args.push("--log-level-file=detail");
    }
    args.push("backup");
    let argv = pgbackrest(stanza, "warn", &args);
    let started = Instant::now();
    let backup = run_ok(runner, &argv, opts.backup_within);
    let ran = match progress {
        None => backup.await?,
        Some(report) => {
            // The backup's log beside it, every second, until it ends.
            let watch = progress_argv(stanza);
            let mut backup = std::pin::pin!(backup);
            loop {
                tokio::select! {
                    ran = &mut backup => break ran?,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if let Ok(r) = runner.run(&watch, Duration::from_secs(10)).await
                            && let Some(done) = progress_of(r.stdout.trim())
                        {
                            report(done, 10_000);
                        }
                    }
                }
            }
        }
    };
    let duration_ms = millis(started.elapsed());
    let after = info(runner, stanza).await?;
    let backup = after
        .backups
        .iter()
        .rev()
        .find(|b| before.backup(&b.id).is_none())
        .cloned()
        .ok_or_else(|| BackupError::Vanished {
            stanza: stanza.to_owned(),
        })?;
    let verification = match opts.verify_within {
        None => None,
        Some(within) => {
            let t = Instant::now();
            let repo = verify(runner, stanza, within).await?;
            Some(verification_of(&repo, &backup, millis(t.elapsed())))
        }
    };
    Ok(Created {
        backup,
        requested_type: kind,
        duration_ms,
        verification,
        warnings: warnings(&ran.stderr),
    })
}

/// What `repo` says of `backup`.
pub fn verification_of(repo: &RepoCheck, backup: &Backup, duration_ms: u64) -> Verification {
    let mut labels: Vec<&str> = vec![backup.id.as_str()];
    labels.extend(backup.references.iter().map(String::as_str));
    let problems = repo.problems_of(&labels);
    let all_valid = labels
        .iter()
        .all(|l| repo.backup(l).is_some_and(|c| c.status == "valid"));
    Verification {
        verified: all_valid && problems.is_empty(),
        status: repo
            .backup(&backup.id)
            .map_or_else(|| "not listed".to_owned(), |c| c.status.clone()),
        repository_ok: repo.ok,
        problems,
        duration_ms,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// The restore test.

/// How `verify_restore` runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The directory (on the runner's machine) the scratch directory is made in.
    pub scratch_base: PathBuf,
    /// The scratch server's port: it listens on no TCP address, so the port only names its
    /// socket (see [`free_port`]).
    pub port: u16,
    /// The superuser the restored cluster has (the one initdb made).
    pub superuser: String,
    /// PostgreSQL's programs; default `/usr/lib/postgresql/<major>/bin` of the backup's major.
    pub bin_dir: Option<PathBuf>,
    /// `pg_amcheck` checks the catalogs of every database and these many largest tables.
    pub amcheck_tables: usize,
    /// Row counts are compared with the primary for these many of the largest tables.
    pub count_tables: usize,
    pub restore_within: Duration,
    /// From the start to accepting connections and the end of recovery.
    pub start_within: Duration,
    /// Each check (`pg_amcheck`, a count).
    pub check_within: Duration,
}

impl VerifyOptions {
    pub fn new(scratch_base: impl Into<PathBuf>, port: u16) -> VerifyOptions {
        VerifyOptions {
            scratch_base: scratch_base.into(),
            port,
            superuser: crate::roles::SUPERUSER.to_owned(),
            bin_dir: None,
            amcheck_tables: 5,
            count_tables: 3,
            restore_within: Duration::from_secs(6 * 3600),
            start_within: Duration::from_secs(600),
            check_within: Duration::from_secs(3600),
        }
    }
}

/// The first port of `candidates` that is not in `avoid` and that nothing listens on at
/// 127.0.0.1 of this machine.
pub fn free_port(candidates: impl IntoIterator<Item = u16>, avoid: &[u16]) -> Option<u16> {
    candidates
        .into_iter()
        .filter(|p| *p != 0 && !avoid.contains(p))
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

/// One check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    /// Worth a look, not a failure (a count that differs on a primary that moved on).
    Warn,
    Failed,
    /// Not run: an earlier step failed, or nothing to run it on.
    Skipped,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Failed => "failed",
            CheckStatus::Skipped => "skipped",
        }
    }
}

/// One step of the restore test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreCheck {
    /// `restore`, `start`, `recovery`, `amcheck_catalog`, `amcheck_tables`, `row_count`.
    pub name: &'static str,
    pub status: CheckStatus,
    /// What it is about (`db.schema.table` for a count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub message: String,
    /// Facts behind it (the bad files, the counts).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub value: Value,
    pub duration_ms: u64,
}

impl RestoreCheck {
    fn new(name: &'static str, status: CheckStatus, message: impl Into<String>) -> RestoreCheck {
        RestoreCheck {
            name,
            status,
            target: None,
            message: message.into(),
            value: Value::Null,
            duration_ms: 0,
        }
    }

    fn took(mut self, since: Instant) -> RestoreCheck {
        self.duration_ms = millis(since.elapsed());
        self
    }

    fn value(mut self, v: Value) -> RestoreCheck {
        self.value = v;
        self
    }
}

/// The restore test's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyStatus {
    Ok,
    Failed,
}

/// What `verify_restore` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub status: VerifyStatus,
    pub backup: Backup,
    pub checks: Vec<RestoreCheck>,
    /// Where it was restored (removed since) and the scratch server's port.
    pub scratch: String,
    pub port: u16,
    pub duration_ms: u64,
    /// The scratch server is stopped and its directory removed.
    pub cleaned_up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup_error: Option<String>,
    /// Scratch directories of earlier runs whose pgdba was killed, removed before this one.
    pub swept: Vec<String>,
}

/// The scratch server: its directory, programs and port, reached through the runner.
struct Scratch<'a> {
    runner: &'a dyn Beside,
    dir: String,
    bin: String,
    port: u16,
    superuser: String,
}

impl Scratch<'_> {
    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir)
    }

    fn program(&self, name: &str) -> String {
        format!("{}/{name}", self.bin)
    }

    /// One statement in `db`, its single value as psql prints it (unaligned, tuples only).
    async fn psql(&self, db: &str, sql: &str, within: Duration) -> Result<String, String> {
        let argv = vec![
            self.program("psql"),
            "-X".to_owned(),
            "-A".to_owned(),
            "-t".to_owned(),
            "-q".to_owned(),
            "-v".to_owned(),
            "ON_ERROR_STOP=1".to_owned(),
            "-h".to_owned(),
            self.path("run"),
            "-p".to_owned(),
            self.port.to_string(),
            "-U".to_owned(),
            self.superuser.clone(),
            "-d".to_owned(),
            db.to_owned(),
            "-c".to_owned(),
            sql.to_owned(),
        ];
        match self.runner.run(&argv, within).await {
            Ok(r) if r.success() => Ok(r.stdout.trim().to_owned()),
            Ok(r) => Err(last_lines(&r.stderr, 3)),
            Err(e) => Err(crate::error_chain(&e)),
        }
    }

    /// The last lines of the server's log.
    async fn log_tail(&self) -> String {
        let argv = vec![
            "tail".to_owned(),
            "-n".to_owned(),
            "20".to_owned(),
            self.path("postgres.log"),
        ];
        match self.runner.run(&argv, Duration::from_secs(10)).await {
            Ok(r) => r.stdout.trim_end().to_owned(),
            Err(e) => format!("(cannot read the log: {})", crate::error_chain(&e)),
        }
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A string as one word for `sh` (pg_ctl passes `-o` through the shell).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A name as one part of a psql pattern (`pg_amcheck -t`): double-quoted, so it is matched
/// literally.
fn pattern_part(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A name as an SQL identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The server settings of the scratch server, on its command line (they win over the
/// restored `postgresql.conf` and `postgresql.auto.conf`).
fn server_options(dir: &str, port: u16) -> String {
    let q = |rel: &str| sh_quote(&format!("{dir}/{rel}"));
    [
        format!("-c port={port}"),
        "-c listen_addresses=''".to_owned(),
        format!("-c unix_socket_directories={}", q("run")),
        format!("-c hba_file={}", q("pg_hba.conf")),
        format!("-c ident_file={}", q("pg_ident.conf")),
        "-c archive_mode=off".to_owned(),
        "-c primary_conninfo=''".to_owned(),
        "-c primary_slot_name=''".to_owned(),
        "-c synchronous_standby_names=''".to_owned(),
        "-c hot_standby=on".to_owned(),
        "-c shared_buffers=128MB".to_owned(),
        "-c huge_pages=try".to_owned(),
        "-c logging_collector=off".to_owned(),
        "-c ssl=off".to_owned(),
        "-c cluster_name=pgdba-verify-restore".to_owned(),
    ]
    .join(" ")
}

/// A user table of the restored cluster, with its size.
#[derive(Debug, Clone, Deserialize)]
struct Table {
    db: String,
    schema: String,
    name: String,
    bytes: i64,
}

impl Table {
    fn display(&self) -> String {
        format!("{}.{}.{}", self.db, self.schema, self.name)
    }
}

/// Restore `set` (the latest backup when `None`) into a scratch directory under
/// `opts.scratch_base`, start a PostgreSQL on it, check it (`pg_amcheck` on the catalogs and
/// the largest tables, row counts against `primary` when given), then stop it and remove the
/// directory, whatever happened: a check that fails, or `cancel` completing (Ctrl-C), which
/// ends the checks at once. The scratch directories of earlier runs on this machine whose
/// pgdba died before it could clean up are removed first ([`VerifyReport::swept`]).
pub async fn verify_restore(
    runner: &dyn Beside,
    stanza: &str,
    set: Option<&str>,
    primary: Option<&Server>,
    opts: &VerifyOptions,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<VerifyReport, BackupError> {
    let started = Instant::now();
    let info = info_of_stanza(runner, stanza).await?;
    let backup = match set {
        Some(label) => info
            .backup(label)
            .cloned()
            .ok_or_else(|| BackupError::NoSuchBackup {
                stanza: stanza.to_owned(),
                label: label.to_owned(),
                known: info.labels(),
            })?,
        None => info
            .latest()
            .cloned()
            .ok_or_else(|| BackupError::NoBackup {
                stanza: stanza.to_owned(),
            })?,
    };
    let major = backup
        .pg_version
        .clone()
        .or_else(|| info.pg_version.clone())
        .unwrap_or_else(|| "15".to_owned());
    let bin = opts
        .bin_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    let swept = sweep(runner, &opts.scratch_base, stanza, &bin).await;
    let dir = scratch_dir(&opts.scratch_base, stanza);
    let scratch = Scratch {
        runner,
        dir: dir.clone(),
        bin: bin.display().to_string(),
        port: opts.port,
        superuser: opts.superuser.clone(),
    };
    let mkdir = vec![
        "mkdir".to_owned(),
        "-m".to_owned(),
        "0700".to_owned(),
        "--".to_owned(),
        dir.clone(),
        scratch.path("data"),
        scratch.path("run"),
    ];
    match run(runner, &mkdir, Duration::from_secs(30)).await {
        Ok(r) if r.success() => {}
        Ok(r) => {
            // `mkdir` may have made some of them.
            let _ = remove(&scratch).await;
            return Err(BackupError::Scratch {
                dir,
                message: last_lines(&r.stderr, 3),
            });
        }
        Err(e) => {
            return Err(BackupError::Scratch {
                dir,
                message: crate::error_chain(&e),
            });
        }
    }
    let mut checks = Vec::new();
    let finished = {
        let work = steps(&scratch, stanza, &backup, primary, opts, &mut checks);
        tokio::select! {
            may_run = work => Some(may_run),
            () = cancel => None,
        }
    };
    let may_run = match finished {
        Some(may_run) => may_run,
        None => {
            checks.push(RestoreCheck::new(
                "interrupted",
                CheckStatus::Failed,
                "interrupted: the checks stopped, the scratch server was stopped and removed",
            ));
            true
        }
    };
    let cleanup = cleanup(&scratch, may_run).await;
    let failed = checks.iter().any(|c| c.status == CheckStatus::Failed);
    Ok(VerifyReport {
        status: if failed {
            VerifyStatus::Failed
        } else {
            VerifyStatus::Ok
        },
        backup,
        checks,
        scratch: dir,
        port: opts.port,
        duration_ms: millis(started.elapsed()),
        cleaned_up: cleanup.is_ok(),
        cleanup_error: cleanup.err(),
        swept,
    })
}

/// The scratch directories' names: `pgdba-verify.STANZA.HOST.PID.RANDOM`, HOST and PID those
/// of the pgdba that made it (a stanza, like a cluster's name, has no dot).
const SCRATCH_PREFIX: &str = "pgdba-verify.";

/// This machine's name, as far as a scratch directory's name holds it (its first label).
fn host_label() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let label: String = name
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if label.is_empty() {
        "localhost".to_owned()
    } else {
        label
    }
}

/// `BASE/pgdba-verify.STANZA.HOST.PID.RANDOM`: a new name each time (`mkdir` refuses one that
/// exists, link or not).
fn scratch_dir(base: &Path, stanza: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let short = random.get(..12).unwrap_or(&random);
    format!(
        "{}/{SCRATCH_PREFIX}{stanza}.{}.{}.{short}",
        base.display().to_string().trim_end_matches('/'),
        host_label(),
        std::process::id()
    )
}

/// The pid of a scratch directory's name when a pgdba of this machine made it for `stanza`.
fn scratch_owner(name: &str, stanza: &str, host: &str) -> Option<u32> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    let parts: Vec<&str> = rest.split('.').collect();
    match parts.as_slice() {
        [s, h, pid, random] if *s == stanza && *h == host && !random.is_empty() => pid.parse().ok(),
        _ => None,
    }
}

/// Stop and remove the scratch directories of `stanza` under `base` that a pgdba of this
/// machine made and that outlived it (it was killed); those of a pgdba that still runs are
/// left alone. What was removed.
async fn sweep(runner: &dyn Beside, base: &Path, stanza: &str, bin: &Path) -> Vec<String> {
    let base = base.display().to_string();
    let list = vec![
        "find".to_owned(),
        base.clone(),
        "-mindepth".to_owned(),
        "1".to_owned(),
        "-maxdepth".to_owned(),
        "1".to_owned(),
        "-type".to_owned(),
        "d".to_owned(),
        "-name".to_owned(),
        format!("{SCRATCH_PREFIX}{stanza}.*"),
    ];
    let Ok(found) = runner.run(&list, Duration::from_secs(30)).await else {
        return Vec::new();
    };
    let host = host_label();
    let mut swept = Vec::new();
    for dir in found
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let name = dir.rsplit('/').next().unwrap_or_default();
        let Some(pid) = scratch_owner(name, stanza, &host) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let old = Scratch {
            runner,
            dir: dir.to_owned(),
            bin: bin.display().to_string(),
            port: 0,
            superuser: String::new(),
        };
        match cleanup(&old, true).await {
            Ok(()) => swept.push(dir.to_owned()),
            Err(e) => tracing::warn!("cannot remove the scratch directory {dir}: {e}"),
        }
    }
    swept
}

/// Stop the scratch server (when it may run) and remove its directory.
async fn cleanup(scratch: &Scratch<'_>, may_run: bool) -> Result<(), String> {
    let stopped = if may_run { stop(scratch).await } else { Ok(()) };
    let removed = remove(scratch).await;
    match (stopped, removed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(a), Ok(())) => Err(a),
        (Ok(()), Err(b)) => Err(b),
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
    }
}

/// Stop the scratch server at once (its data is thrown away); one that does not run is
/// stopped. A server caught while it starts has created its PID file and not yet written it
/// (`pg_ctl`: "the PID file ... is empty"): asked again a moment later, until it has.
async fn stop(scratch: &Scratch<'_>) -> Result<(), String> {
    let mut tries = 0;
    loop {
        match stop_once(scratch).await {
            Err(e)
                if tries < 50
                    && (e.contains("is empty") || e.contains("invalid data in PID file")) =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

async fn stop_once(scratch: &Scratch<'_>) -> Result<(), String> {
    let stop = vec![
        scratch.program("pg_ctl"),
        "-D".to_owned(),
        scratch.path("data"),
        "-m".to_owned(),
        "immediate".to_owned(),
        "-w".to_owned(),
        "-t".to_owned(),
        "60".to_owned(),
        "stop".to_owned(),
    ];
    match scratch.runner.run(&stop, Duration::from_secs(90)).await {
        // "PID file ... does not exist / Is server running?": it does not run.
        Ok(r)
            if r.success()
                || r.stderr.contains("Is server running?")
                || r.stderr.contains("is not a database cluster directory") =>
        {
            Ok(())
        }
        Ok(r) => Err(format!("pg_ctl stop: {}", last_lines(&r.stderr, 3))),
        Err(e) => Err(format!("pg_ctl stop: {}", crate::error_chain(&e))),
    }
}

async fn remove(scratch: &Scratch<'_>) -> Result<(), String> {
    let rm = vec![
        "rm".to_owned(),
        "-rf".to_owned(),
        "--".to_owned(),
        scratch.dir.clone(),
    ];
    match scratch.runner.run(&rm, Duration::from_secs(600)).await {
        Ok(r) if r.success() => Ok(()),
        Ok(r) => Err(format!(
            "rm -rf {}: {}",
            scratch.dir,
            last_lines(&r.stderr, 3)
        )),
        Err(e) => Err(format!(
            "rm -rf {}: {}",
            scratch.dir,
            crate::error_chain(&e)
        )),
    }
}

/// The steps of the restore test, each adding its check; a step that fails ends them.
/// Whether the scratch server may run (its start was tried).
async fn steps(
    scratch: &Scratch<'_>,
    stanza: &str,
    backup: &Backup,
    primary: Option<&Server>,
    opts: &VerifyOptions,
    checks: &mut Vec<RestoreCheck>,
) -> bool {
    if !restore(scratch, stanza, backup, opts, checks).await {
        return false;
    }
    if !start(scratch, opts, checks).await {
        return true;
    }
    let t = Instant::now();
    let tables = match largest_tables(scratch, opts).await {
        Ok(t) => t,
        Err(e) => {
            checks.push(
                RestoreCheck::new(
                    "amcheck_tables",
                    CheckStatus::Failed,
                    format!("cannot list the restored tables: {e}"),
                )
                .took(t),
            );
            return true;
        }
    };
    amcheck(scratch, opts, &[], checks).await;
    let largest: Vec<Table> = tables.iter().take(opts.amcheck_tables).cloned().collect();
    if largest.is_empty() {
        checks.push(RestoreCheck::new(
            "amcheck_tables",
            CheckStatus::Skipped,
            "the backup has no user tables",
        ));
    } else {
        amcheck(scratch, opts, &largest, checks).await;
    }
    let sampled: Vec<Table> = tables.iter().take(opts.count_tables).cloned().collect();
    row_counts(scratch, backup, primary, &sampled, opts, checks).await;
    true
}

/// pgBackRest's restore of `backup` into the scratch directory, recovering to its end and
/// promoting there, archiving off. On failure, `verify` names the bad files.
async fn restore(
    scratch: &Scratch<'_>,
    stanza: &str,
    backup: &Backup,
    opts: &VerifyOptions,
    checks: &mut Vec<RestoreCheck>,
) -> bool {
    let t = Instant::now();
    let set = format!("--set={}", backup.id);
    let pg1 = format!("--pg1-path={}", scratch.path("data"));
    let argv = pgbackrest(
        stanza,
        "warn",
        &[
            &set,
            &pg1,
            "--type=immediate",
            "--target-action=promote",
            "--archive-mode=off",
            "--job-retry=0",
            "restore",
        ],
    );
    let ran = scratch.runner.run(&argv, opts.restore_within).await;
    let error = match ran {
        Ok(r) if r.success() => {
            checks.push(
                RestoreCheck::new(
                    "restore",
                    CheckStatus::Ok,
                    format!(
                        "pgBackRest restored backup {} ({} bytes) into {}",
                        backup.id,
                        backup.size_bytes,
                        scratch.path("data")
                    ),
                )
                .took(t),
            );
            return true;
        }
        Ok(r) => error_message(&r.stderr),
        Err(e) => crate::error_chain(&e),
    };
    // Which files: pgBackRest's restore does not always name them (a truncated compressed
    // file is "unexpected eof in compressed data"); its verify does.
    let mut labels: Vec<&str> = vec![backup.id.as_str()];
    labels.extend(backup.references.iter().map(String::as_str));
    let (files, verify_note) = match verify(scratch.runner, stanza, opts.restore_within).await {
        Ok(repo) => (repo.problems_of(&labels), None),
        Err(e) => (Vec::new(), Some(crate::error_chain(&e))),
    };
    let mut message = format!("pgBackRest could not restore backup {}: {error}", backup.id);
    if !files.is_empty() {
        message.push_str(&format!("; pgBackRest verify: {}", files.join("; ")));
    } else if let Some(n) = &verify_note {
        message.push_str(&format!("; pgBackRest verify could not run: {n}"));
    }
    checks.push(
        RestoreCheck::new("restore", CheckStatus::Failed, message)
            .value(serde_json::json!({ "error": error, "files": files }))
            .took(t),
    );
    false
}

/// Start the scratch server, wait until it accepts connections (consistent) and has left
/// recovery (promoted at the backup's end).
async fn start(
    scratch: &Scratch<'_>,
    opts: &VerifyOptions,
    checks: &mut Vec<RestoreCheck>,
) -> bool {
    let t = Instant::now();
    // Its own HBA (trust over its own 0700 socket directory: only the runner's user reaches
    // it), and a postgresql.conf when the backup has none (Debian keeps it in /etc).
    let files = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "umask 077 && printf 'local all all trust\\n' > \"$1\" && : > \"$2\" && { [ -f \"$3\" ] || : > \"$3\"; }".to_owned(),
        "sh".to_owned(),
        scratch.path("pg_hba.conf"),
        scratch.path("pg_ident.conf"),
        scratch.path("data/postgresql.conf"),
    ];
    match scratch.runner.run(&files, Duration::from_secs(30)).await {
        Ok(r) if r.success() => {}
        Ok(r) => {
            checks.push(
                RestoreCheck::new(
                    "start",
                    CheckStatus::Failed,
                    format!(
                        "cannot write the scratch server's files: {}",
                        last_lines(&r.stderr, 3)
                    ),
                )
                .took(t),
            );
            return false;
        }
        Err(e) => {
            checks.push(
                RestoreCheck::new(
                    "start",
                    CheckStatus::Failed,
                    format!(
                        "cannot write the scratch server's files: {}",
                        crate::error_chain(&e)
                    ),
                )
                .took(t),
            );
            return false;
        }
    }
    let wait = opts.start_within.as_secs().max(10);
    let argv = vec![
        scratch.program("pg_ctl"),
        "-D".to_owned(),
        scratch.path("data"),
        "-l".to_owned(),
        scratch.path("postgres.log"),
        "-w".to_owned(),
        "-t".to_owned(),
        wait.to_string(),
        "-o".to_owned(),
        server_options(&scratch.dir, scratch.port),
        "start".to_owned(),
    ];
    let failure = match scratch
        .runner
        .run(&argv, Duration::from_secs(wait + 30))
        .await
    {
        Ok(r) if r.success() => None,
        Ok(r) => Some(last_lines(&format!("{}\n{}", r.stdout, r.stderr), 3)),
        Err(e) => Some(crate::error_chain(&e)),
    };
    if let Some(why) = failure {
        let log = scratch.log_tail().await;
        checks.push(
            RestoreCheck::new(
                "start",
                CheckStatus::Failed,
                format!("the restored PostgreSQL did not start: {why}"),
            )
            .value(serde_json::json!({ "log": log }))
            .took(t),
        );
        return false;
    }
    checks.push(
        RestoreCheck::new(
            "start",
            CheckStatus::Ok,
            format!(
                "the restored PostgreSQL reached consistency and accepts connections (socket in {}, port {}, no TCP)",
                scratch.path("run"),
                scratch.port
            ),
        )
        .took(t),
    );
    let t = Instant::now();
    let left = poll_until(opts.start_within, Duration::from_millis(500), || async {
        match scratch
            .psql(
                "postgres",
                "SELECT pg_is_in_recovery()",
                Duration::from_secs(30),
            )
            .await
        {
            Ok(v) if v == "f" => Probe::Done(()),
            Ok(_) => Probe::NotYet("still in recovery".to_owned()),
            Err(e) => Probe::NotYet(e),
        }
    })
    .await;
    match left {
        Ok(()) => {
            checks.push(
                RestoreCheck::new(
                    "recovery",
                    CheckStatus::Ok,
                    "recovery reached the backup's end and the restored server was promoted",
                )
                .took(t),
            );
            true
        }
        Err(g) => {
            let why = match g {
                Gave::Up { last } => format!(
                    "still not out of recovery after {}s ({last})",
                    opts.start_within.as_secs()
                ),
                Gave::Failed(e) => e,
            };
            let log = scratch.log_tail().await;
            checks.push(
                RestoreCheck::new("recovery", CheckStatus::Failed, why)
                    .value(serde_json::json!({ "log": log }))
                    .took(t),
            );
            false
        }
    }
}

/// The user tables of every database of the scratch server, largest first.
async fn largest_tables(scratch: &Scratch<'_>, opts: &VerifyOptions) -> Result<Vec<Table>, String> {
    let dbs = scratch
        .psql(
            "postgres",
            "SELECT coalesce(json_agg(datname ORDER BY datname), '[]') FROM pg_database \
             WHERE datallowconn AND NOT datistemplate",
            opts.check_within,
        )
        .await?;
    let dbs: Vec<String> = serde_json::from_str(&dbs).map_err(|e| e.to_string())?;
    let limit = opts.amcheck_tables.max(opts.count_tables);
    let mut all: Vec<Table> = Vec::new();
    for db in dbs {
        let sql = format!(
            "SELECT coalesce(json_agg(t), '[]') FROM (SELECT current_database() AS db, \
             n.nspname AS schema, c.relname AS name, pg_relation_size(c.oid) AS bytes \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' \
             ORDER BY pg_relation_size(c.oid) DESC, n.nspname, c.relname LIMIT {limit}) t"
        );
        let out = scratch.psql(&db, &sql, opts.check_within).await?;
        let tables: Vec<Table> = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        all.extend(tables);
    }
    all.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.display().cmp(&b.display())));
    Ok(all)
}

/// `pg_amcheck` on the catalogs of every database (`tables` empty), or on `tables` (with
/// their indexes and TOAST).
async fn amcheck(
    scratch: &Scratch<'_>,
    opts: &VerifyOptions,
    tables: &[Table],
    checks: &mut Vec<RestoreCheck>,
) {
    let t = Instant::now();
    let name = if tables.is_empty() {
        "amcheck_catalog"
    } else {
        "amcheck_tables"
    };
    let mut argv = vec![
        scratch.program("pg_amcheck"),
        "-h".to_owned(),
        scratch.path("run"),
        "-p".to_owned(),
        scratch.port.to_string(),
        "-U".to_owned(),
        scratch.superuser.clone(),
        "--install-missing".to_owned(),
        "--all".to_owned(),
    ];
    if tables.is_empty() {
        argv.extend(["-s".to_owned(), "pg_catalog".to_owned()]);
    } else {
        for tb in tables {
            argv.push("-t".to_owned());
            argv.push(format!(
                "{}.{}.{}",
                pattern_part(&tb.db),
                pattern_part(&tb.schema),
                pattern_part(&tb.name)
            ));
        }
    }
    let what = if tables.is_empty() {
        "the catalogs of every database".to_owned()
    } else {
        tables
            .iter()
            .map(Table::display)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let check = match scratch.runner.run(&argv, opts.check_within).await {
        Ok(r) if r.success() => RestoreCheck::new(
            name,
            CheckStatus::Ok,
            format!("pg_amcheck found no corruption in {what}"),
        ),
        // pg_amcheck exits 2 when it found corruption, which it prints on stdout.
        Ok(r) if r.code == 2 => RestoreCheck::new(
            name,
            CheckStatus::Failed,
            format!(
                "pg_amcheck found corruption in {what}: {}",
                last_lines(&r.stdout, 5)
            ),
        )
        .value(serde_json::json!({ "output": r.stdout })),
        Ok(r) => RestoreCheck::new(
            name,
            CheckStatus::Failed,
            format!(
                "pg_amcheck could not check {what}: {}",
                last_lines(&r.stderr, 3)
            ),
        ),
        Err(e) => RestoreCheck::new(
            name,
            CheckStatus::Failed,
            format!("pg_amcheck: {}", crate::error_chain(&e)),
        ),
    };
    checks.push(check.took(t));
}

/// An LSN (`0/3000100`) as a number.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Row counts of `tables` in the scratch server against `primary`. A difference is a warning
/// when the primary has written since the backup ended (its WAL is past the backup's end), a
/// failure when it has not.
async fn row_counts(
    scratch: &Scratch<'_>,
    backup: &Backup,
    primary: Option<&Server>,
    tables: &[Table],
    opts: &VerifyOptions,
    checks: &mut Vec<RestoreCheck>,
) {
    let Some(primary) = primary else {
        checks.push(RestoreCheck::new(
            "row_count",
            CheckStatus::Skipped,
            "no primary to compare with",
        ));
        return;
    };
    if tables.is_empty() {
        checks.push(RestoreCheck::new(
            "row_count",
            CheckStatus::Skipped,
            "the backup has no user tables",
        ));
        return;
    }
    for tb in tables {
        let t = Instant::now();
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            ident(&tb.schema),
            ident(&tb.name)
        );
        let restored = scratch.psql(&tb.db, &sql, opts.check_within).await;
        let restored = match restored.map(|v| v.parse::<i64>().map_err(|e| format!("{v}: {e}"))) {
            Ok(Ok(n)) => n,
            Ok(Err(e)) | Err(e) => {
                let mut c = RestoreCheck::new(
                    "row_count",
                    CheckStatus::Failed,
                    format!("cannot count the restored rows: {e}"),
                );
                c.target = Some(tb.display());
                checks.push(c.took(t));
                continue;
            }
        };
        let mut c = match primary_count(primary, &tb.db, &sql, opts.check_within).await {
            Err(e) => RestoreCheck::new(
                "row_count",
                CheckStatus::Warn,
                format!("{restored} rows restored; the primary could not be counted: {e}"),
            )
            .value(serde_json::json!({ "restored": restored })),
            Ok((n, _)) if n == restored => RestoreCheck::new(
                "row_count",
                CheckStatus::Ok,
                format!("{restored} rows, as on the primary"),
            )
            .value(serde_json::json!({ "restored": restored, "primary": n })),
            Ok((n, lsn)) => {
                let stop = backup.lsn_stop.as_deref().and_then(parse_lsn);
                let moved_on = match (lsn.as_deref().and_then(parse_lsn), stop) {
                    (Some(now), Some(stop)) => now > stop,
                    _ => true,
                };
                let v = serde_json::json!({
                    "restored": restored, "primary": n,
                    "primary_lsn": lsn, "backup_lsn_stop": backup.lsn_stop,
                });
                if moved_on {
                    RestoreCheck::new(
                        "row_count",
                        CheckStatus::Warn,
                        format!(
                            "{restored} rows restored, {n} on the primary now: the primary has written since the backup ended ({}), so they may differ",
                            format_time(&backup.stopped_at)
                        ),
                    )
                    .value(v)
                } else {
                    RestoreCheck::new(
                        "row_count",
                        CheckStatus::Failed,
                        format!(
                            "{restored} rows restored, {n} on the primary, which has not written since the backup ended"
                        ),
                    )
                    .value(v)
                }
            }
        };
        c.target = Some(tb.display());
        checks.push(c.took(t));
    }
}

/// A count on the primary, and where its WAL is now.
async fn primary_count(
    primary: &Server,
    db: &str,
    sql: &str,
    within: Duration,
) -> Result<(i64, Option<String>), String> {
    let client = primary
        .connect_to(db, within)
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let n: i64 = client
        .query_one(sql, &[])
        .await
        .map_err(|e| crate::error_chain(&e))?
        .get(0);
    let lsn: Option<String> = client
        .query_one(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
             ELSE pg_current_wal_lsn() END)::text",
            &[],
        )
        .await
        .map_err(|e| crate::error_chain(&e))?
        .get(0);
    Ok((n, lsn))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_running_backups_progress_is_read_from_its_log() {
        let line = "2026-12-02 08:53:40.223 P01 DETAIL: backup file /srv/demo-0/data/base/5/16398 (768.4MB, 83.58%) checksum a2b5cb6d";
        assert_eq!(super::progress_of(line), Some(8358));
        let empty = "2026-12-02 08:53:58.704 P01 DETAIL: backup file /srv/demo-0/data/base/1/13399 (0B, 100.00%)";
        assert_eq!(super::progress_of(empty), Some(10_000));
        let begin =
            "2026-12-02 08:53:36.002 P00   INFO: backup command begin 2.45: --exec-id=1-abc";
        assert_eq!(super::progress_of(begin), Some(0));
        assert_eq!(super::progress_of(""), None);
        assert_eq!(
            super::progress_of("P01 DETAIL: backup file /x (1B, 150.00%)"),
            None
        );
        let argv = super::progress_argv("demo");
        assert!(argv[2].contains("/demo-backup.log"), "{argv:?}");
    }

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/pgbackrest/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn info_reads_pgbackrests_own_json_of_a_full_a_diff_and_an_incremental_backup() {
        let info = parse_info(&fixture("info-full-diff-incr.json"), "demo").unwrap();
        assert_eq!(info.status, StanzaStatus::Ok);
        assert_eq!(info.message, "ok");
        assert!(!info.backup_running);
        assert_eq!(info.pg_version.as_deref(), Some("15"));
        assert_eq!(info.system_id, Some(7714585401412312301));
        let kinds: Vec<Kind> = info.backups.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, [Kind::Full, Kind::Diff, Kind::Incremental]);
        let full = &info.backups[0];
        assert_eq!(full.id, "20261202-061128F");
        assert!(full.prior.is_none());
        assert!(full.references.is_empty());
        assert_eq!(full.pg_version.as_deref(), Some("15"));
        assert!(full.size_bytes > 20_000_000, "{full:?}");
        assert!(
            full.repo_size_bytes < full.size_bytes,
            "compressed: {full:?}"
        );
        assert_eq!(full.wal_start.as_deref().map(str::len), Some(24));
        let incr = &info.backups[2];
        assert_eq!(incr.prior.as_deref(), Some(info.backups[1].id.as_str()));
        assert_eq!(incr.references.len(), 2);
        assert!(incr.delta_bytes < incr.size_bytes);
        assert!(incr.started_at >= full.stopped_at);
        let archive = info.current_archive().unwrap();
        assert_eq!(archive.id, "15-1");
        assert!(archive.min.as_deref() <= full.wal_start.as_deref());
        assert!(archive.max.as_deref() >= incr.wal_stop.as_deref());
    }

    /// The contract's fields, with `incremental` for pgBackRest's `incr` and UTC times.
    #[test]
    fn a_backup_prints_the_contracts_fields_and_names_incr_incremental() {
        let info = parse_info(&fixture("info-full-diff-incr.json"), "demo").unwrap();
        let v = serde_json::to_value(&info.backups[2]).unwrap();
        for f in [
            "id",
            "type",
            "started_at",
            "stopped_at",
            "size_bytes",
            "wal_start",
            "wal_stop",
        ] {
            assert!(!v[f].is_null(), "{f} in {v:#}");
        }
        assert_eq!(v["type"], "incremental");
        let started = v["started_at"].as_str().unwrap();
        assert!(started.ends_with('Z') && started.len() == 20, "{started}");
        assert_eq!(at(started), info.backups[2].started_at);
        assert_eq!(Kind::Incremental.pgbackrest(), "incr");
        assert_eq!(Kind::from_pgbackrest("incr"), Some(Kind::Incremental));
        assert_eq!(Kind::from_pgbackrest("incremental"), None);
        assert_eq!(
            serde_json::to_value(Kind::Incremental).unwrap(),
            "incremental"
        );
    }

    #[test]
    fn info_says_when_the_stanza_is_missing_or_has_no_backup() {
        let missing = parse_info(&fixture("info-missing-stanza.json"), "demo").unwrap();
        assert_eq!(missing.status, StanzaStatus::MissingStanza);
        assert_eq!(missing.message, "missing stanza path");
        assert!(missing.backups.is_empty() && missing.pg_version.is_none());
        let empty = parse_info(&fixture("info-no-backup.json"), "demo").unwrap();
        assert_eq!(empty.status, StanzaStatus::NoValidBackup);
        assert!(empty.backups.is_empty());
        assert_eq!(empty.current_archive().unwrap().max, None);
        assert!(window(&empty, None).is_none());
        assert!(matches!(
            parse_info(&fixture("info-no-backup.json"), "other"),
            Err(BackupError::Parse { .. })
        ));
        assert!(matches!(
            parse_info("not json", "demo"),
            Err(BackupError::Parse { .. })
        ));
    }

    fn archiver(wal: &str, archived: &str, failed: Option<&str>) -> Archiver {
        Archiver {
            last_archived_wal: Some(wal.to_owned()),
            last_archived_at: Some(at(archived)),
            last_failed_at: failed.map(at),
        }
    }

    #[test]
    fn the_window_runs_from_the_oldest_backups_end_to_the_last_archived_wal() {
        let info = parse_info(&fixture("info-full-diff-incr.json"), "demo").unwrap();
        let oldest = info.backups[0].stopped_at;
        let newest_backup = info.backups[2].stopped_at;
        let later = format_time(&(newest_backup + chrono::Duration::minutes(5)));
        let max = info.current_archive().unwrap().max.clone().unwrap();

        // Archiving works: up to the last archived segment.
        let w = window(&info, Some(&archiver(&max, &later, None))).unwrap();
        assert_eq!(w.oldest, oldest);
        assert_eq!(format_time(&w.newest), later);
        assert_eq!(w.newest_source, NewestSource::ArchivedWal);
        assert!(w.note.is_none());
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["newest_source"], "archived_wal");
        assert_eq!(v["oldest"], format_time(&oldest));

        // A `.backup` history file counts by its segment.
        let w = window(
            &info,
            Some(&archiver(&format!("{max}.00000028.backup"), &later, None)),
        )
        .unwrap();
        assert_eq!(w.newest_source, NewestSource::ArchivedWal);

        // Archiving fails since its last success: the newest backup's end.
        let failing = archiver(
            &max,
            &later,
            Some(&format_time(&(at(&later) + chrono::Duration::seconds(1)))),
        );
        let w = window(&info, Some(&failing)).unwrap();
        assert_eq!(w.newest, newest_backup);
        assert_eq!(w.newest_source, NewestSource::Backup);
        assert!(w.note.unwrap().contains("archiving fails"));

        // A failure that a success followed does not count.
        let recovered = archiver(&max, &later, Some(&format_time(&oldest)));
        assert_eq!(
            window(&info, Some(&recovered)).unwrap().newest_source,
            NewestSource::ArchivedWal
        );

        // The leader archives somewhere else (a segment past the repository's archive).
        let elsewhere = archiver("0000000100000000000000FF", &later, None);
        let w = window(&info, Some(&elsewhere)).unwrap();
        assert_eq!(w.newest_source, NewestSource::Backup);
        assert!(w.note.unwrap().contains("ends at"));

        // Nothing archived, or not read.
        let nothing = Archiver::default();
        assert_eq!(
            window(&info, Some(&nothing)).unwrap().newest_source,
            NewestSource::Backup
        );
        let w = window(&info, None).unwrap();
        assert_eq!((w.oldest, w.newest), (oldest, newest_backup));
    }

    #[test]
    fn errors_carry_pgbackrests_own_message() {
        assert_eq!(
            error_message(&fixture("backup-no-stanza.stderr")),
            "[037]: backup command requires option: pg1-path; HINT: does this stanza exist?"
        );
        assert_eq!(
            error_message(&fixture("restore-damaged.stderr")),
            "[029]: raised from local-1 protocol: unexpected eof in compressed data"
        );
        assert_eq!(error_message("WARN: a\nsomething else\n"), "something else");
        assert_eq!(error_message(""), "(it said nothing on stderr)");
        assert_eq!(
            warnings(&fixture("backup-diff-without-full.stderr")),
            ["no prior backup exists, diff backup has been changed to full"]
        );
    }

    #[test]
    fn verify_names_the_damaged_file_and_the_backup_it_belongs_to() {
        let ok = parse_verify(&fixture("verify-ok.stdout"), "");
        assert!(ok.ok);
        assert_eq!(ok.backups.len(), 3);
        assert!(ok.backups.iter().all(|b| b.status == "valid"));
        assert_eq!(ok.backups[0].files_checked, Some(967));
        assert!(ok.problems.is_empty());

        let bad = parse_verify(
            &fixture("verify-damaged.stdout"),
            &fixture("verify-damaged.stderr"),
        );
        assert!(!bad.ok);
        assert_eq!(bad.backup("20261202-061128F").unwrap().status, "invalid");
        assert_eq!(
            bad.problems,
            ["invalid checksum '20261202-061128F/pg_data/base/5/16384.lz4'"]
        );
        // The full one is bad; the diff and incremental ones use it.
        let info = parse_info(&fixture("info-full-diff-incr.json"), "demo").unwrap();
        for b in &info.backups {
            let v = verification_of(&bad, b, 1);
            assert!(!v.verified, "{}", b.id);
            assert_eq!(v.problems.len(), 1, "{}", b.id);
            assert!(!v.repository_ok);
        }
        assert_eq!(verification_of(&bad, &info.backups[1], 1).status, "valid");
        let v = verification_of(&ok, &info.backups[2], 1);
        assert!(v.verified && v.problems.is_empty() && v.status == "valid");
        // A label that is a prefix of another's does not take its problems.
        assert!(bad.problems_of(&["20261202-061128"]).is_empty());
    }

    #[test]
    fn lsns_and_quoting() {
        assert_eq!(parse_lsn("0/3000100"), Some(0x0300_0100));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("x"), None);
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(pattern_part("we\"ird.name*"), "\"we\"\"ird.name*\"");
        assert_eq!(ident("T"), "\"T\"");
        assert_eq!(
            segment("000000010000000000000003.00000028.backup"),
            Some("000000010000000000000003")
        );
        assert_eq!(segment("00000002.history"), None);
        let opts = server_options("/s p", 30799);
        assert!(
            opts.contains("-c port=30799 -c listen_addresses=''"),
            "{opts}"
        );
        assert!(
            opts.contains("-c unix_socket_directories='/s p/run'"),
            "{opts}"
        );
        assert!(opts.contains("-c archive_mode=off"), "{opts}");
        let d = scratch_dir(Path::new("/var/tmp/"), "demo");
        let name = d.strip_prefix("/var/tmp/").unwrap();
        assert!(name.starts_with("pgdba-verify.demo."), "{d}");
        let host = host_label();
        assert_eq!(
            scratch_owner(name, "demo", &host),
            Some(std::process::id()),
            "{d}"
        );
        // Another cluster's, another machine's, or not one of pgdba's.
        assert_eq!(scratch_owner(name, "demo-2", &host), None);
        assert_eq!(scratch_owner(name, "demo", "elsewhere"), None);
        assert_eq!(
            scratch_owner("pgdba-verify.demo.h.x.abc", "demo", "h"),
            None
        );
        assert_eq!(scratch_owner("data", "demo", &host), None);
    }

    #[test]
    fn a_free_port_is_one_nothing_listens_on_and_not_one_to_avoid() {
        let held = std::net::TcpListener::bind(("127.0.0.1", 30798)).unwrap();
        assert_eq!(free_port([30798, 30797, 30799], &[30797]), Some(30799));
        drop(held);
        assert_eq!(free_port([30798], &[]), Some(30798));
        assert_eq!(free_port([], &[]), None);
    }
}
