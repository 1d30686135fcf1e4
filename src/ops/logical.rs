//! Logical backups with `pg_dump`: one custom-format dump per database, taken beside the leader
//! (the provider's `run_beside`, as the user that runs PostgreSQL, over the leader's Unix
//! socket), into `<repository path>/logical/<cluster>/<id>/<database>.dump`, with a JSON
//! manifest beside the dumps (`manifest.json`: each dump's size, SHA-256, duration and the WAL
//! position just before it started). `id` is a timestamp label like pgBackRest's, in UTC, with
//! an `L` (`20261202-081500L`).
//!
//! A dump is verified by reading it whole: `pg_restore --list` reads its table of contents,
//! and `pg_restore --file=/dev/null` reads and decompresses every data block (a dump cut short
//! past its table of contents passes `--list` alone); `verify` of a kept backup also checks
//! each file's size and SHA-256 against the manifest. Retention keeps the newest
//! `spec.backup.retention.logical` complete backups, applied after each verified backup; a
//! directory without a manifest is what a backup that died left, and goes too.
//!
//! **Invariant:** a backup directory holds a `manifest.json` only once every dump in it was
//! written and read back; `list` and retention read nothing else. A logical backup is not a
//! point in a recoverable window: nothing here touches pgBackRest's stanza.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Server;
use super::backup::{Beside, Kind};
use crate::providers::ProviderError;

/// Every type `backup create --type` takes: pgBackRest's three, and `logical` (`pg_dump`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    /// Every file of the data directory (pgBackRest).
    Full,
    /// The files changed since the last full backup (pgBackRest).
    Diff,
    /// The files changed since the last backup of any type (pgBackRest; also `incr`).
    #[value(alias = "incr")]
    Incremental,
    /// One `pg_dump --format=custom` per database.
    Logical,
}

impl BackupType {
    pub const ALL: [BackupType; 4] = [
        BackupType::Full,
        BackupType::Diff,
        BackupType::Incremental,
        BackupType::Logical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Diff => "diff",
            BackupType::Incremental => "incremental",
            BackupType::Logical => "logical",
        }
    }

    /// The pgBackRest type, `None` for logical.
    pub fn physical(self) -> Option<Kind> {
        match self {
            BackupType::Full => Some(Kind::Full),
            BackupType::Diff => Some(Kind::Diff),
            BackupType::Incremental => Some(Kind::Incremental),
            BackupType::Logical => None,
        }
    }
}

impl std::fmt::Display for BackupType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a logical backup operation could not be carried out. A dump that reads back damaged is
/// not one: it is a [`Verification`] that is not `verified`.
#[derive(Debug, thiserror::Error)]
pub enum LogicalError {
    #[error("cannot run {program}")]
    Run {
        program: String,
        #[source]
        source: ProviderError,
    },
    /// The program ran and failed; `message` is its own (its last lines on stderr).
    #[error("{command} failed (exit {code}): {message}")]
    Failed {
        command: String,
        code: i32,
        message: String,
    },
    #[error("cannot query the leader {server}: {message}")]
    Sql { server: String, message: String },
    #[error("the cluster has no database {database}; its databases: {known}")]
    NoDatabase { database: String, known: String },
    #[error("the cluster has no database to dump (every one is a template or refuses connections)")]
    NothingToDump,
    #[error("no logical backup yet in {dir}")]
    NoBackup { dir: String },
    #[error("no logical backup {id} in {dir}; the logical backups: {known}")]
    NoSuchBackup {
        id: String,
        dir: String,
        known: String,
    },
    #[error("cannot read the manifest of logical backup {id}: {message}")]
    Manifest { id: String, message: String },
}

/// Where a cluster's logical backups are, and the PostgreSQL programs that make and read them.
#[derive(Debug, Clone)]
pub struct Place {
    /// `<repository path>/logical/<cluster>`.
    pub root: PathBuf,
    /// PostgreSQL's `bin` directory beside the leader (`/usr/lib/postgresql/15/bin`).
    pub bin: PathBuf,
}

impl Place {
    pub fn new(repository: &Path, cluster: &str, pg_major: u32) -> Place {
        Place {
            root: repository.join("logical").join(cluster),
            bin: PathBuf::from(format!("/usr/lib/postgresql/{pg_major}/bin")),
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn program(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }
}

/// One database's dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    pub database: String,
    /// The file's name in the backup's directory.
    pub file: String,
    pub size_bytes: u64,
    pub sha256: String,
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// `pg_current_wal_lsn()` on the leader just before `pg_dump` started: the dump's snapshot
    /// is at or after it.
    pub lsn_before: Option<String>,
}

/// `manifest.json`: one logical backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    /// Always `logical`.
    #[serde(rename = "type")]
    pub kind: BackupType,
    pub cluster: String,
    /// The member it was taken beside (the leader then).
    pub member: String,
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub stopped_at: DateTime<Utc>,
    /// The dumps' bytes, together.
    pub size_bytes: u64,
    /// A logical backup needs no WAL: these are null, as the contract allows.
    pub wal_start: Option<String>,
    pub wal_stop: Option<String>,
    /// The leader's WAL position before the first dump and after the last one.
    pub lsn_start: Option<String>,
    pub lsn_stop: Option<String>,
    /// The server's version (`server_version`).
    pub pg_version: String,
    pub duration_ms: u64,
    /// Every dump read back whole when it was taken.
    pub verified: bool,
    pub databases: Vec<Dump>,
}

mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// A logical backup's label: its start in UTC, `YYYYMMDD-HHMMSSL`.
pub fn label(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d-%H%M%SL").to_string()
}

/// A label as [`label`] writes it (nothing else is a backup's directory).
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'-'
        && b[15] == b'L'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// A database's dump file name: the name itself when it is plain (`[A-Za-z0-9_-]`, with dots
/// not leading), else every other byte as `%XX`. Two names never give the same file.
pub fn dump_file(database: &str) -> String {
    let mut out = String::new();
    for (i, b) in database.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{out}.dump")
}

/// A libpq connection string value, quoted.
fn conninfo_value(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

// ---------------------------------------------------------------------------------------------
// Running programs beside the leader.

async fn run(
    runner: &dyn Beside,
    argv: &[String],
    within: Duration,
) -> Result<crate::providers::Ran, LogicalError> {
    runner
        .run(argv, within)
        .await
        .map_err(|source| LogicalError::Run {
            program: program_name(argv),
            source,
        })
}

async fn run_ok(
    runner: &dyn Beside,
    argv: &[String],
    within: Duration,
) -> Result<crate::providers::Ran, LogicalError> {
    let ran = run(runner, argv, within).await?;
    if ran.success() {
        Ok(ran)
    } else {
        Err(LogicalError::Failed {
            command: program_name(argv),
            code: ran.code,
            message: last_lines(&ran.stderr),
        })
    }
}

fn program_name(argv: &[String]) -> String {
    argv.first()
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
        .unwrap_or_default()
}

/// A program's own words for a failure: its last lines on stderr.
fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "(it said nothing on stderr)".to_owned();
    }
    lines[lines.len().saturating_sub(3)..].join("; ")
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

const SHORT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Listing.

/// A directory of the cluster's logical backups: complete (a manifest) or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    /// `None`: no manifest (a backup that died, or one being taken).
    pub manifest: Option<Manifest>,
    /// The manifest is there but cannot be read.
    pub unreadable: Option<String>,
}

/// Prints, for each backup directory, `ID<TAB>MANIFEST` (empty when there is none), one line
/// each; nothing when the root does not exist yet.
const LIST_SCRIPT: &str = r#"cd -- "$1" 2>/dev/null || exit 0
for d in */; do
  d=${d%/}
  [ -d "$d" ] || continue
  printf '%s\t' "$d"
  if [ -f "$d/manifest.json" ]; then tr -d '\n' < "$d/manifest.json"; fi
  printf '\n'
done"#;

/// Parse [`LIST_SCRIPT`]'s output: labelled directories only, oldest first.
pub fn parse_listing(out: &str) -> Vec<Listed> {
    let mut listed: Vec<Listed> = out
        .lines()
        .filter_map(|line| {
            let (id, manifest) = line.split_once('\t')?;
            if !is_label(id) {
                return None;
            }
            let (manifest, unreadable) = if manifest.trim().is_empty() {
                (None, None)
            } else {
                match serde_json::from_str::<Manifest>(manifest) {
                    Ok(m) => (Some(m), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            };
            Some(Listed {
                id: id.to_owned(),
                manifest,
                unreadable,
            })
        })
        .collect();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    listed
}

/// The cluster's logical backups, oldest first.
pub async fn list(runner: &dyn Beside, place: &Place) -> Result<Vec<Listed>, LogicalError> {
    let script = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        LIST_SCRIPT.to_owned(),
        "sh".to_owned(),
        place.root.display().to_string(),
    ];
    let ran = run_ok(runner, &script, SHORT).await?;
    Ok(parse_listing(&ran.stdout))
}

/// What retention removes: every complete backup but the newest `keep`, and every directory
/// without a manifest except `current` (the one being taken).
pub fn to_expire(listed: &[Listed], keep: u32, current: &str) -> Vec<String> {
    let complete: Vec<&Listed> = listed.iter().filter(|l| l.manifest.is_some()).collect();
    let surplus = complete
        .len()
        .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    let mut out: Vec<String> = complete[..surplus].iter().map(|l| l.id.clone()).collect();
    out.extend(
        listed
            .iter()
            .filter(|l| l.manifest.is_none() && l.unreadable.is_none() && l.id != current)
            .map(|l| l.id.clone()),
    );
    out.sort();
    out
}

/// Remove backup `id`'s directory.
async fn remove(runner: &dyn Beside, place: &Place, id: &str) -> Result<(), LogicalError> {
    let dir = place.dir(id).display().to_string();
    run_ok(runner, &argv(&["rm", "-rf", "--", &dir]), SHORT)
        .await
        .map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Verification.

/// What reading one dump back found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpCheck {
    pub database: String,
    pub path: String,
    pub ok: bool,
    /// What is wrong with it; empty when it is fine.
    pub problems: Vec<String>,
}

/// What reading a backup's dumps back found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub verified: bool,
    /// Each problem, naming its file.
    pub problems: Vec<String>,
    pub dumps: Vec<DumpCheck>,
    pub duration_ms: u64,
}

/// Read one dump back whole; with `expected`, also its size and SHA-256.
async fn check_dump(
    runner: &dyn Beside,
    place: &Place,
    database: &str,
    path: &str,
    expected: Option<&Dump>,
) -> DumpCheck {
    let mut problems = Vec::new();
    if let Some(want) = expected {
        match file_facts(runner, path).await {
            Ok((size, sha)) => {
                if size != want.size_bytes {
                    problems.push(format!(
                        "{path}: {size} bytes, the manifest says {}",
                        want.size_bytes
                    ));
                } else if sha != want.sha256 {
                    problems.push(format!(
                        "{path}: its SHA-256 is not the manifest's (the file changed)"
                    ));
                }
            }
            Err(e) => problems.push(format!("{path}: {}", crate::error_chain(&e))),
        }
    }
    let within = Duration::from_secs(6 * 3600);
    for (what, args) in [
        (
            "its table of contents",
            ["--list", "--file=/dev/null"].as_slice(),
        ),
        ("its data", ["--file=/dev/null"].as_slice()),
    ] {
        if !problems.is_empty() {
            break;
        }
        let mut a = vec![place.program("pg_restore")];
        a.extend(args.iter().map(|s| (*s).to_owned()));
        a.push("--".to_owned());
        a.push(path.to_owned());
        match run(runner, &a, within).await {
            Ok(r) if r.success() => {}
            Ok(r) => problems.push(format!(
                "{path}: pg_restore cannot read {what}: {}",
                last_lines(&r.stderr)
            )),
            Err(e) => problems.push(format!("{path}: {}", crate::error_chain(&e))),
        }
    }
    DumpCheck {
        database: database.to_owned(),
        path: path.to_owned(),
        ok: problems.is_empty(),
        problems,
    }
}

/// A file's size and SHA-256, read beside the leader.
async fn file_facts(runner: &dyn Beside, path: &str) -> Result<(u64, String), LogicalError> {
    let size = run_ok(runner, &argv(&["stat", "-c", "%s", "--", path]), SHORT).await?;
    let size: u64 = size
        .stdout
        .trim()
        .parse()
        .map_err(|_| LogicalError::Failed {
            command: "stat".to_owned(),
            code: 0,
            message: format!("cannot read a size in `{}`", size.stdout.trim()),
        })?;
    let sum = run_ok(
        runner,
        &argv(&["sha256sum", "--", path]),
        Duration::from_secs(3600),
    )
    .await?;
    let sha = sum
        .stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok((size, sha))
}

/// Read every dump of backup `id` (default the newest) back whole, and check each against the
/// manifest.
pub async fn verify(
    runner: &dyn Beside,
    place: &Place,
    id: Option<&str>,
) -> Result<(Manifest, Verification), LogicalError> {
    let listed = list(runner, place).await?;
    let dir = place.root.display().to_string();
    let known = || {
        let ids: Vec<&str> = listed
            .iter()
            .filter(|l| l.manifest.is_some())
            .map(|l| l.id.as_str())
            .collect();
        if ids.is_empty() {
            "(none)".to_owned()
        } else {
            ids.join(", ")
        }
    };
    let found = match id {
        Some(id) => {
            listed
                .iter()
                .find(|l| l.id == id)
                .ok_or_else(|| LogicalError::NoSuchBackup {
                    id: id.to_owned(),
                    dir: dir.clone(),
                    known: known(),
                })?
        }
        None => listed
            .iter()
            .rev()
            .find(|l| l.manifest.is_some())
            .ok_or_else(|| LogicalError::NoBackup { dir: dir.clone() })?,
    };
    let manifest = match (&found.manifest, &found.unreadable) {
        (Some(m), _) => m.clone(),
        (None, Some(why)) => {
            return Err(LogicalError::Manifest {
                id: found.id.clone(),
                message: why.clone(),
            });
        }
        (None, None) => {
            return Err(LogicalError::Manifest {
                id: found.id.clone(),
                message: "it has none: the backup did not finish".to_owned(),
            });
        }
    };
    let started = Instant::now();
    let mut dumps = Vec::new();
    for d in &manifest.databases {
        let path = place.dir(&manifest.id).join(&d.file).display().to_string();
        dumps.push(check_dump(runner, place, &d.database, &path, Some(d)).await);
    }
    Ok((manifest, verification(dumps, started)))
}

fn verification(dumps: Vec<DumpCheck>, started: Instant) -> Verification {
    let problems: Vec<String> = dumps.iter().flat_map(|d| d.problems.clone()).collect();
    Verification {
        verified: problems.is_empty(),
        problems,
        dumps,
        duration_ms: millis(started.elapsed()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Taking a backup.

/// How `create` runs.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Only this database [default: every database that is not a template and takes
    /// connections].
    pub database: Option<String>,
    /// How many complete logical backups to keep (`spec.backup.retention.logical`).
    pub keep: u32,
    /// How long one `pg_dump` may take.
    pub dump_within: Duration,
}

/// A logical backup taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    pub manifest: Manifest,
    /// Where its dumps are.
    pub dir: String,
    pub verification: Verification,
    /// The backups retention removed afterwards (none when the new one is not verified).
    pub expired: Vec<String>,
    /// Retention could not remove these (the backup itself is fine).
    pub expire_errors: Vec<String>,
}

/// The databases to dump, and the server's version.
async fn databases(
    server: &Server,
    only: Option<&str>,
) -> Result<(Vec<String>, String), LogicalError> {
    let sql = |e: &dyn std::fmt::Display| LogicalError::Sql {
        server: server.name.clone(),
        message: e.to_string(),
    };
    let client = server
        .connect(Duration::from_secs(30))
        .await
        .map_err(|e| sql(&crate::error_chain(&e)))?;
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn \
             ORDER BY datname",
            &[],
        )
        .await
        .map_err(|e| sql(&e))?;
    let all: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|e| sql(&e))?
        .get(0);
    let chosen = match only {
        Some(d) if all.iter().any(|a| a == d) => vec![d.to_owned()],
        Some(d) => {
            return Err(LogicalError::NoDatabase {
                database: d.to_owned(),
                known: all.join(", "),
            });
        }
        None if all.is_empty() => return Err(LogicalError::NothingToDump),
        None => all,
    };
    Ok((chosen, version))
}

/// The leader's current WAL position; `None` (logged) when it cannot be read.
async fn current_lsn(server: &Server) -> Option<String> {
    let client = server.connect(Duration::from_secs(10)).await.ok()?;
    client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(|e| tracing::warn!("pg_current_wal_lsn() on {}: {e}", server.name))
        .ok()
        .map(|r| r.get(0))
}

/// Make the backup's directory; a label taken already (two backups in one second) waits for
/// the next second.
async fn make_dir(
    runner: &dyn Beside,
    place: &Place,
) -> Result<(String, DateTime<Utc>), LogicalError> {
    let root = place.root.display().to_string();
    run_ok(
        runner,
        &argv(&["mkdir", "-p", "-m", "0750", "--", &root]),
        SHORT,
    )
    .await?;
    let mut tries = 0;
    loop {
        let now = Utc::now();
        let id = label(now);
        let dir = place.dir(&id).display().to_string();
        let ran = run(runner, &argv(&["mkdir", "-m", "0750", "--", &dir]), SHORT).await?;
        if ran.success() {
            return Ok((id, now));
        }
        tries += 1;
        if tries >= 3 {
            return Err(LogicalError::Failed {
                command: "mkdir".to_owned(),
                code: ran.code,
                message: last_lines(&ran.stderr),
            });
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

/// Take a logical backup beside the leader `server`, read every dump back, write the manifest,
/// then (when it verified) remove what retention no longer keeps.
pub async fn create(
    runner: &dyn Beside,
    server: &Server,
    place: &Place,
    cluster: &str,
    opts: &CreateOptions,
) -> Result<Created, LogicalError> {
    let (databases, pg_version) = databases(server, opts.database.as_deref()).await?;
    let (id, started_at) = make_dir(runner, place).await?;
    let dir = place.dir(&id);
    let started = Instant::now();
    let result = dump_all(runner, server, place, &dir, &databases, opts).await;
    let (dumps, lsn_start) = match result {
        Ok(d) => d,
        Err(e) => {
            // Nothing half-made stays: the directory has no manifest yet.
            if let Err(rm) = remove(runner, place, &id).await {
                tracing::warn!(
                    "cannot remove the failed backup's directory {}: {}",
                    dir.display(),
                    crate::error_chain(&rm)
                );
            }
            return Err(e);
        }
    };
    let lsn_stop = current_lsn(server).await;
    let stopped_at = Utc::now();
    let duration_ms = millis(started.elapsed());
    let check_started = Instant::now();
    let mut checks = Vec::new();
    for d in &dumps {
        let path = dir.join(&d.file).display().to_string();
        checks.push(check_dump(runner, place, &d.database, &path, None).await);
    }
    let verification = verification(checks, check_started);
    let manifest = Manifest {
        id: id.clone(),
        kind: BackupType::Logical,
        cluster: cluster.to_owned(),
        member: server.name.clone(),
        started_at,
        stopped_at,
        size_bytes: dumps.iter().map(|d| d.size_bytes).sum(),
        wal_start: None,
        wal_stop: None,
        lsn_start,
        lsn_stop,
        pg_version,
        duration_ms,
        verified: verification.verified,
        databases: dumps,
    };
    write_manifest(runner, &dir, &manifest).await?;
    let (mut expired, mut expire_errors) = (Vec::new(), Vec::new());
    if verification.verified {
        match list(runner, place).await {
            Ok(listed) => {
                for old in to_expire(&listed, opts.keep, &id) {
                    match remove(runner, place, &old).await {
                        Ok(()) => expired.push(old),
                        Err(e) => expire_errors.push(format!("{old}: {}", crate::error_chain(&e))),
                    }
                }
            }
            Err(e) => expire_errors.push(crate::error_chain(&e)),
        }
    }
    Ok(Created {
        manifest,
        dir: dir.display().to_string(),
        verification,
        expired,
        expire_errors,
    })
}

/// Dump each database into `dir`; the WAL position before the first.
async fn dump_all(
    runner: &dyn Beside,
    server: &Server,
    place: &Place,
    dir: &Path,
    databases: &[String],
    opts: &CreateOptions,
) -> Result<(Vec<Dump>, Option<String>), LogicalError> {
    let mut dumps = Vec::new();
    let mut lsn_start = None;
    for database in databases {
        let file = dump_file(database);
        let path = dir.join(&file).display().to_string();
        let lsn_before = current_lsn(server).await;
        if lsn_start.is_none() {
            lsn_start = lsn_before.clone();
        }
        // Over the member's socket, as the provider points libpq at it beside the member
        // (`PGHOST`, `PGPORT`).
        let conninfo = format!(
            "dbname={} user={} application_name=pgdba-backup",
            conninfo_value(database),
            conninfo_value(&server.user),
        );
        let started_at = Utc::now();
        let t = Instant::now();
        run_ok(
            runner,
            &[
                place.program("pg_dump"),
                "--format=custom".to_owned(),
                "--no-password".to_owned(),
                format!("--file={path}"),
                format!("--dbname={conninfo}"),
            ],
            opts.dump_within,
        )
        .await
        .map_err(|e| match e {
            LogicalError::Failed {
                command,
                code,
                message,
            } => LogicalError::Failed {
                command: format!("{command} of database {database}"),
                code,
                message,
            },
            e => e,
        })?;
        let duration_ms = millis(t.elapsed());
        let (size_bytes, sha256) = file_facts(runner, &path).await?;
        dumps.push(Dump {
            database: database.clone(),
            file,
            size_bytes,
            sha256,
            started_at,
            duration_ms,
            lsn_before,
        });
    }
    Ok((dumps, lsn_start))
}

/// Write the manifest (a temporary file renamed into place): the backup is complete from then.
async fn write_manifest(
    runner: &dyn Beside,
    dir: &Path,
    manifest: &Manifest,
) -> Result<(), LogicalError> {
    let json = serde_json::to_string(manifest).map_err(|e| LogicalError::Manifest {
        id: manifest.id.clone(),
        message: e.to_string(),
    })?;
    let path = dir.join("manifest.json").display().to_string();
    let script = r#"umask 027 && printf '%s\n' "$1" > "$2.tmp" && mv -f -- "$2.tmp" "$2""#;
    run_ok(
        runner,
        &argv(&["sh", "-c", script, "sh", &json, &path]),
        SHORT,
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn manifest(id: &str) -> Manifest {
        let t = DateTime::parse_from_rfc3339("2026-12-02T08:15:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        Manifest {
            id: id.to_owned(),
            kind: BackupType::Logical,
            cluster: "demo".to_owned(),
            member: "demo-0".to_owned(),
            started_at: t,
            stopped_at: t,
            size_bytes: 10,
            wal_start: None,
            wal_stop: None,
            lsn_start: Some("0/3000060".to_owned()),
            lsn_stop: None,
            pg_version: "15.8".to_owned(),
            duration_ms: 5,
            verified: true,
            databases: vec![Dump {
                database: "app".to_owned(),
                file: "app.dump".to_owned(),
                size_bytes: 10,
                sha256: "ab".to_owned(),
                started_at: t,
                duration_ms: 5,
                lsn_before: Some("0/3000060".to_owned()),
            }],
        }
    }

    #[test]
    fn labels_read_like_pgbackrest_ones() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T08:15:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(label(t), "20261202-081500L");
        assert!(is_label("20261202-081500L"));
        assert!(!is_label("20261202-081500F"));
        assert!(!is_label("lost+found"));
    }

    #[test]
    fn dump_files_are_plain_names_or_escaped() {
        assert_eq!(dump_file("app"), "app.dump");
        assert_eq!(dump_file("my-db_2.old"), "my-db_2.old.dump");
        assert_eq!(dump_file("a/b"), "a%2Fb.dump");
        assert_eq!(dump_file(".."), "%2E..dump");
        assert_eq!(dump_file("a%2F"), "a%252F.dump");
        assert_eq!(dump_file("é"), "%C3%A9.dump");
    }

    #[test]
    fn conninfo_values_are_quoted() {
        assert_eq!(conninfo_value("it's"), r"'it\'s'");
        assert_eq!(conninfo_value(r"a\b c"), r"'a\\b c'");
    }

    #[test]
    fn the_listing_reads_manifests_and_unfinished_directories() {
        let m = manifest("20261202-081500L");
        let out = format!(
            "20261202-091500L\t\n20261202-081500L\t{}\nnot-a-backup\t\n20261202-101500L\t{{broken\n",
            serde_json::to_string(&m).unwrap_or_default()
        );
        let listed = parse_listing(&out);
        assert_eq!(
            listed.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
            ["20261202-081500L", "20261202-091500L", "20261202-101500L"]
        );
        assert_eq!(listed[0].manifest.as_ref(), Some(&m));
        assert!(listed[1].manifest.is_none() && listed[1].unreadable.is_none());
        assert!(listed[2].unreadable.is_some());
    }

    #[test]
    fn retention_keeps_the_newest_complete_backups() {
        let done = |id: &str| Listed {
            id: id.to_owned(),
            manifest: Some(manifest(id)),
            unreadable: None,
        };
        let unfinished = |id: &str| Listed {
            id: id.to_owned(),
            manifest: None,
            unreadable: None,
        };
        let listed = vec![
            done("20261201-000000L"),
            unfinished("20261201-120000L"),
            done("20261202-000000L"),
            done("20261203-000000L"),
            unfinished("20261204-000000L"),
        ];
        assert_eq!(
            to_expire(&listed, 2, "20261204-000000L"),
            ["20261201-000000L", "20261201-120000L"]
        );
        assert_eq!(
            to_expire(&listed, 7, "20261204-000000L"),
            ["20261201-120000L"]
        );
        assert_eq!(to_expire(&listed, 1, "none").len(), 4);
    }
}
