//! The cluster spec: what a DBA writes. Plain data, validated by `spec::load`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One cluster, as written in a spec file (YAML or KDL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pgdba cluster spec")]
pub struct ClusterSpec {
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "pgdba/v1")]
    V1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Cluster name: lowercase letters, digits and '-', unique per state dir.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$"))]
    pub name: String,
    /// Free-form labels; `env: production` turns on the destructive-operation guards.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub provider: Provider,
    #[serde(default)]
    pub postgres: Postgres,
    /// Streaming standbys besides the primary.
    #[schemars(range(max = 16))]
    pub replicas: u32,
    #[serde(default)]
    pub patroni: PatroniSettings,
    /// Roles (users and groups). pgdba's own roles (`postgres`, `replicator`, `rewind_user`)
    /// are managed by pgdba and may not appear here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleSpec>,
    /// Databases, each with its extensions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseSpec>,
    /// Client authentication rules, in order, after pgdba's own. Empty: local and
    /// loopback connections of every role with a password (`scram-sha-256`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hba: Vec<HbaRule>,
    /// What may be dropped when it leaves the spec. Off by default: a role or database that
    /// leaves the spec is left in place and no longer managed.
    #[serde(default, skip_serializing_if = "Prune::is_off")]
    pub prune: Prune,
    /// A connection pooler in front of the cluster, routed to the current leader. When absent:
    /// PgBouncer with its defaults on the `docker` provider, none on `local`. `pooler: {}`
    /// asks for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<Pooler>,
    /// What `pgdba health check` holds the cluster to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// Backups with pgBackRest: the repository, retention and compression. pgdba configures
    /// pgBackRest on every member, archives WAL through it (`archive_mode`,
    /// `archive_command`, which it then owns) and creates the stanza, named after the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// Bootstrap this cluster from a pgBackRest backup of another one (point-in-time recovery
    /// into a new cluster) instead of `initdb`. Read only when the cluster is first made
    /// (Patroni reads `bootstrap` once): a running cluster ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreFrom>,
}

/// `spec.restore_from`: the backup a new cluster starts from, and how far its WAL is replayed.
/// At most one target; none means to the end of the archived WAL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreFrom {
    /// The source cluster's repository (read only: nothing is written into it).
    pub repository: BackupRepository,
    /// The source repository's encryption (its `spec.backup.encryption`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<BackupEncryption>,
    /// The source's stanza (pgdba names it after the source cluster).
    pub stanza: String,
    /// The backup to restore (its label) [default: pgBackRest's choice for the target].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Recover up to this time: RFC 3339 (`2026-12-02T06:50:00Z`) or PostgreSQL's form
    /// (`2026-12-02 06:50:00+00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_time: Option<String>,
    /// Recover up to this WAL location (`0/3000060`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_lsn: Option<String>,
    /// Recover up to this transaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_xid: Option<String>,
}

impl RestoreFrom {
    /// The recovery target: pgBackRest's `--type` and PostgreSQL's parameter, with the value.
    pub fn target(&self) -> Option<(&'static str, &'static str, &str)> {
        if let Some(t) = &self.target_time {
            Some(("time", "recovery_target_time", t))
        } else if let Some(l) = &self.target_lsn {
            Some(("lsn", "recovery_target_lsn", l))
        } else {
            self.target_xid
                .as_deref()
                .map(|x| ("xid", "recovery_target_xid", x))
        }
    }
}

/// A recovery target time as RFC 3339 or PostgreSQL's `YYYY-MM-DD HH:MM:SS[.f][+TZ]`.
pub fn parse_target_time(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, Utc};
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Some(d.with_timezone(&Utc));
        }
    }
    None
}

/// The file name of a restored member's pgBackRest configuration of the source repository
/// (`spec.restore_from`), beside its data directory.
pub const RESTORE_CONF: &str = "restore.conf";

/// `spec.backup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSpec {
    pub repository: BackupRepository,
    #[serde(default)]
    pub retention: BackupRetention,
    /// How backups and archived WAL are compressed.
    #[serde(default)]
    pub compression: BackupCompression,
    /// Encrypt the repository (backups and archived WAL) with a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<BackupEncryption>,
    /// Take backups from a streaming replica instead of the primary (pgBackRest's
    /// `backup-standby`): the replica's files are copied, the primary only starts and stops
    /// the backup. Default off.
    #[serde(default, skip_serializing_if = "is_false")]
    pub from_standby: bool,
    /// When backups run (`pgdba backup schedule` installs it): a cron expression per type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<BackupSchedule>,
}

/// `spec.backup.schedule`: 5-field cron expressions (`0 1 * * 0`), in the local time of the
/// machine that runs them; a type left out is not scheduled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSchedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<String>,
    /// `pg_dump` of every database (`backup create --type logical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical: Option<String>,
    /// The restore test of the newest backup (`backup verify-restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_restore: Option<String>,
}

/// Where backups and archived WAL are kept: a directory or an S3 bucket, exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupRepository {
    /// A directory every member can write to (on the local provider: on this machine; pgdba
    /// creates it for the user that runs PostgreSQL when it does not exist). An absolute path.
    Path(PathBuf),
    /// An S3 (or S3-compatible) bucket, reached over HTTPS.
    S3(S3Repository),
}

impl BackupRepository {
    /// The repository's directory, when it is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            BackupRepository::Path(p) => Some(p),
            BackupRepository::S3(_) => None,
        }
    }

    /// Where it is, for messages: the directory, or `s3://bucket/prefix` at its endpoint.
    /// Holds no secret.
    pub fn describe(&self) -> String {
        match self {
            BackupRepository::Path(p) => p.display().to_string(),
            BackupRepository::S3(s) => format!(
                "s3://{}{} at {}",
                s.bucket,
                if s.path.starts_with('/') {
                    s.path.clone()
                } else {
                    format!("/{}", s.path)
                },
                s.endpoint
            ),
        }
    }
}

/// An S3 repository (pgBackRest's `repo1-type=s3`). The keys are secret references: their
/// values are read at plan and apply time and written only into each member's pgBackRest
/// configuration (0600, the run-as user's), never into the state, a plan or any output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Repository {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The endpoint's host name, without a scheme (`s3.eu-west-1.amazonaws.com`); always
    /// reached over HTTPS.
    pub endpoint: String,
    /// The bucket's region (`eu-west-1`).
    pub region: String,
    /// The prefix inside the bucket (pgBackRest's `repo1-path`). Default `/pgdba`.
    #[serde(default = "default_s3_path")]
    pub path: String,
    /// The access key id.
    pub key: SecretRef,
    /// The secret access key.
    pub key_secret: SecretRef,
    /// `host` (`bucket.endpoint`, the default) or `path` (`endpoint/bucket`, for most
    /// S3-compatible servers).
    #[serde(default)]
    pub uri_style: S3UriStyle,
    /// Check the endpoint's TLS certificate. Default on.
    #[serde(default = "default_true")]
    pub verify_tls: bool,
    /// A CA certificate file to check the endpoint's certificate with, instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The endpoint's port. Default 443.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
}

fn default_s3_path() -> String {
    "/pgdba".to_owned()
}

/// pgBackRest's `repo1-s3-uri-style`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum S3UriStyle {
    #[default]
    Host,
    Path,
}

impl S3UriStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            S3UriStyle::Host => "host",
            S3UriStyle::Path => "path",
        }
    }
}

/// The repository's encryption (pgBackRest's `repo1-cipher-type`, `repo1-cipher-pass`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupEncryption {
    /// The cipher. Default `aes-256-cbc`, the one pgBackRest has.
    #[serde(default)]
    pub cipher: BackupCipher,
    /// The passphrase. Losing it loses every backup: keep it apart from the repository.
    pub passphrase: SecretRef,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupCipher {
    #[default]
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
}

impl BackupCipher {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupCipher::Aes256Cbc => "aes-256-cbc",
        }
    }
}

/// How many backups pgBackRest keeps (`pgbackrest expire` after each backup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRetention {
    /// Full backups kept (and the differential and incremental ones and the WAL that depend on
    /// them). Default 2.
    #[serde(default = "default_retention_full")]
    #[schemars(range(min = 1, max = 9999))]
    pub full: u32,
    /// Differential backups kept; default: as many as the full ones keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9999))]
    pub diff: Option<u32>,
    /// Logical backups (`pg_dump`) kept; pgdba removes older ones after each logical backup.
    /// Default 7.
    #[serde(default = "default_retention_logical")]
    #[schemars(range(min = 1, max = 9999))]
    pub logical: u32,
}

impl Default for BackupRetention {
    fn default() -> Self {
        BackupRetention {
            full: default_retention_full(),
            diff: None,
            logical: default_retention_logical(),
        }
    }
}

fn default_retention_logical() -> u32 {
    7
}

fn default_retention_full() -> u32 {
    2
}

/// pgBackRest's `compress-type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupCompression {
    #[default]
    Lz4,
    Zst,
    Gz,
    Bz2,
    None,
}

impl BackupCompression {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupCompression::Lz4 => "lz4",
            BackupCompression::Zst => "zst",
            BackupCompression::Gz => "gz",
            BackupCompression::Bz2 => "bz2",
            BackupCompression::None => "none",
        }
    }
}

/// The file name of a member's pgBackRest configuration, beside its data directory.
pub const PGBACKREST_CONF: &str = "pgbackrest.conf";

/// The parameters `spec.backup` makes pgdba own.
pub const BACKUP_PARAMETERS: [&str; 2] = ["archive_mode", "archive_command"];

impl ClusterSpec {
    /// Whether `spec.restore_from` restores the cluster's own stanza (an in-place restore):
    /// the same repository as `spec.backup`'s, and the stanza named after the cluster.
    pub fn restores_in_place(&self) -> bool {
        match (&self.spec.restore_from, &self.spec.backup) {
            (Some(r), Some(b)) => r.stanza == self.metadata.name && r.repository == b.repository,
            _ => false,
        }
    }

    /// The parameters `spec.backup` implies, added to `spec.postgres.parameters` when a spec
    /// is loaded: WAL archived through pgBackRest into the cluster's stanza. Planned, applied,
    /// observed and drift-checked as every parameter is; removed (reset) when `spec.backup`
    /// leaves the spec.
    pub fn derive_backup_parameters(&mut self) {
        if self.spec.backup.is_none() {
            return;
        }
        let stanza = self.metadata.name.clone();
        let p = &mut self.spec.postgres.parameters;
        p.insert("archive_mode".to_owned(), GucValue::Str("on".to_owned()));
        p.insert(
            "archive_command".to_owned(),
            // PostgreSQL runs it in the data directory: each member's pgBackRest configuration
            // is beside it, whatever provider runs the member.
            GucValue::Str(format!(
                "pgbackrest --config=\"$PWD/../{PGBACKREST_CONF}\" --stanza={stanza} archive-push %p"
            )),
        );
    }
}

/// `spec.health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// Thresholds of the health checks; each one not given keeps its default.
    #[serde(default)]
    pub thresholds: crate::ops::health::Thresholds,
}

/// The cluster's connection pooler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pooler {
    /// PgBouncer, with pgdba's auth user (`auth_query`) so that the spec's roles log in
    /// through it with their own passwords, and its `[databases]` following the leader.
    /// Absent: no pooler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgbouncer: Option<PgBouncer>,
}

/// PgBouncer with its defaults: what the `docker` provider runs when the spec says nothing.
pub const DEFAULT_PGBOUNCER: PgBouncer = PgBouncer {
    port: None,
    pool_mode: PoolMode::Transaction,
};

impl ClusterSpec {
    /// The PgBouncer this cluster runs, if any: the spec's, or on the `docker` provider, when
    /// the spec has no `pooler` section, PgBouncer with its defaults.
    /// A cluster pgdba adopted: it owns none of its processes, roles or HBA rules.
    pub fn is_adopted(&self) -> bool {
        matches!(self.spec.provider, Provider::Adopted(_))
    }

    pub fn pgbouncer(&self) -> Option<&PgBouncer> {
        match (&self.spec.pooler, &self.spec.provider) {
            (Some(p), _) => p.pgbouncer.as_ref(),
            (None, Provider::Docker(_)) => Some(&DEFAULT_PGBOUNCER),
            (None, _) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgBouncer {
    /// The port clients connect to, on the host (`docker`: published on its loopback;
    /// `local`: PgBouncer listens there). Default: `docker` picks a free one, `local` 16432.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024))]
    pub port: Option<u16>,
    /// When a server connection returns to the pool. Default `transaction`.
    #[serde(default)]
    pub pool_mode: PoolMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Session,
    #[default]
    Transaction,
    Statement,
}

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    /// Drop roles that pgdba managed and that left the spec.
    #[serde(default)]
    pub roles: bool,
    /// Drop databases that pgdba managed and that left the spec (apply also needs
    /// `--allow-data-loss`).
    #[serde(default)]
    pub databases: bool,
    /// Drop extensions that pgdba managed and that left their database's spec (apply also
    /// needs `--allow-data-loss` when columns use the extension's types).
    #[serde(default)]
    pub extensions: bool,
}

impl Prune {
    pub fn is_off(&self) -> bool {
        !self.roles && !self.databases && !self.extensions
    }
}

/// Where a secret comes from; its value is never written anywhere by pgdba.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretRef {
    /// An environment variable of the pgdba process.
    Env(String),
    /// A file; its content, without a trailing newline.
    File(PathBuf),
}

fn default_true() -> bool {
    true
}
fn default_conn_limit() -> i32 {
    -1
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_minus_one(n: &i32) -> bool {
    *n == -1
}

/// A role (`CREATE ROLE`), its attributes and memberships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$"))]
    pub name: String,
    #[serde(default)]
    pub login: bool,
    #[serde(default)]
    pub superuser: bool,
    #[serde(default)]
    pub createdb: bool,
    #[serde(default)]
    pub createrole: bool,
    #[serde(default)]
    pub replication: bool,
    #[serde(default)]
    pub bypassrls: bool,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub inherit: bool,
    /// `-1`: no limit.
    #[serde(default = "default_conn_limit", skip_serializing_if = "is_minus_one")]
    #[schemars(range(min = -1))]
    pub connection_limit: i32,
    /// Roles this role is a member of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_roles: Vec<String>,
    /// Password expiry: `infinity`, a date (`2027-01-31`, midnight UTC) or an RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
}

impl RoleSpec {
    /// A role with PostgreSQL's defaults for `CREATE ROLE name` (no login, inherit, no limit).
    pub fn named(name: &str) -> RoleSpec {
        RoleSpec {
            name: name.to_owned(),
            login: false,
            superuser: false,
            createdb: false,
            createrole: false,
            replication: false,
            bypassrls: false,
            inherit: true,
            connection_limit: -1,
            in_roles: Vec::new(),
            valid_until: None,
            password: None,
        }
    }
}

/// A database and its extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$"))]
    pub name: String,
    /// Default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Default `UTF8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// LC_COLLATE and LC_CTYPE. Default: the cluster's (`C.UTF-8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Used at creation only. Default `template1`, or `template0` when the encoding or
    /// locale differs from the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<ExtensionSpec>,
}

/// An extension in one database (`CREATE EXTENSION`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionSpec {
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$"))]
    pub name: String,
    /// Default: the extension's default version; a different installed version is updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Default: the extension's own choice (usually `public`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// One `pg_hba.conf` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HbaRule {
    #[serde(rename = "type")]
    pub kind: HbaType,
    /// `all`, `sameuser`, `samerole`, `replication`, or database names separated by commas.
    pub database: String,
    /// `all`, role names separated by commas, `+group`.
    pub user: String,
    /// A CIDR address (`10.0.0.0/8`) or `samehost`/`samenet`; required unless `type: local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub method: HbaMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HbaType {
    Local,
    Host,
    Hostssl,
    Hostnossl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HbaMethod {
    Trust,
    Reject,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    Md5,
    Password,
    Peer,
    Ident,
    Cert,
}

impl HbaType {
    pub fn as_str(self) -> &'static str {
        match self {
            HbaType::Local => "local",
            HbaType::Host => "host",
            HbaType::Hostssl => "hostssl",
            HbaType::Hostnossl => "hostnossl",
        }
    }
}

impl HbaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HbaMethod::Trust => "trust",
            HbaMethod::Reject => "reject",
            HbaMethod::ScramSha256 => "scram-sha-256",
            HbaMethod::Md5 => "md5",
            HbaMethod::Password => "password",
            HbaMethod::Peer => "peer",
            HbaMethod::Ident => "ident",
            HbaMethod::Cert => "cert",
        }
    }
}

impl HbaRule {
    /// The `pg_hba.conf` line.
    pub fn line(&self) -> String {
        let mut parts = vec![self.kind.as_str(), &self.database, &self.user];
        if let Some(a) = &self.address {
            parts.push(a);
        }
        parts.push(self.method.as_str());
        parts.join(" ")
    }
}

/// Exactly one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Local(LocalProvider),
    Docker(DockerProvider),
    Ssh(SshProvider),
    Adopted(AdoptedProvider),
}

/// The `ssh` provider: etcd, Patroni, PostgreSQL and PgBouncer on Linux hosts pgdba reaches over
/// SSH (bare metal, VMs). Member `i` runs on `hosts[i]`; etcd runs on the first three hosts (all
/// of them when there are fewer) or on `dcs_hosts`; PgBouncer on the first host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SshProvider {
    /// The hosts, in order: at least one per member (`replicas + 1`).
    #[schemars(length(min = 1))]
    pub hosts: Vec<SshHost>,
    /// The hosts etcd runs on, when not the first three of `hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcs_hosts: Option<Vec<SshHost>>,
    /// Run every command with `sudo -n` on hosts whose login user is not `root` (the user may
    /// run anything through sudo without a password). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sudo: bool,
    /// Root of the cluster's directories on every host. Default `/var/lib/pgdba/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    /// PostgreSQL's port on every member host. Default 5432.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pg_port: Option<u16>,
    /// Patroni's REST API port. Default 8008.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub api_port: Option<u16>,
    /// etcd's client port; its peer port is `etcd_port + 1`. Default 2379.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65534))]
    pub etcd_port: Option<u16>,
    /// An OpenSSH `known_hosts` file the hosts' keys are checked against. Without it, the first
    /// apply records each host's key in the state (trust on first use, shown in the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    /// Directory of the PostgreSQL binaries on the hosts. Default
    /// `/usr/lib/postgresql/<version>/bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
    /// The `patroni` executable on the hosts. Default: `patroni` on the login user's `PATH`, else
    /// `/opt/patroni/bin/patroni`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patroni_bin: Option<String>,
    /// Install what a host lacks (PostgreSQL, Patroni, etcd, PgBouncer) with its package
    /// manager (`apt-get`, on Debian and Ubuntu) before the first thing is created on it, with
    /// the services those packages start on their own disabled. Default false: pgdba refuses,
    /// naming what each host lacks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub install_packages: bool,
}

/// One host of the `ssh` provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SshHost {
    /// Its IP address or DNS name, as pgdba and the other hosts reach it.
    pub address: String,
    /// sshd's port. Default 22.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// The user pgdba logs in as: `root` (the default), or a user that may run anything
    /// through sudo (`spec.provider.ssh.sudo`), since pgdba creates directories, runs services
    /// as `postgres` and writes their files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The private key pgdba logs in with.
    pub key: SshKey,
}

/// A private key (OpenSSH format, not encrypted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SshKey {
    pub file: PathBuf,
}

impl SshHost {
    /// `address:port`, as the state records its host key.
    pub fn endpoint(&self) -> String {
        let port = self.port.unwrap_or(22);
        if self.address.contains(':') {
            format!("[{}]:{port}", self.address)
        } else {
            format!("{}:{port}", self.address)
        }
    }
}

/// A Patroni cluster pgdba did not create and adopted (`pgdba cluster connect`): pgdba reaches
/// it through its members' Patroni REST APIs and PostgreSQL, manages it through Patroni's API
/// and SQL only, and never creates, starts or removes its processes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptedProvider {
    /// Every member, as `cluster connect` found them: the primary and `replicas` standbys.
    pub members: Vec<AdoptedMember>,
}

/// One member of an adopted cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptedMember {
    /// Its Patroni name.
    pub name: String,
    /// Its Patroni REST API (`http://10.0.0.5:8008`).
    pub api_url: String,
    /// Where pgdba reaches its PostgreSQL.
    pub host: String,
    #[schemars(range(min = 1))]
    pub port: u16,
}

/// The `docker` provider: a 3-member etcd and each member (Patroni running PostgreSQL) as
/// containers of pgdba's node image on a bridge network of the cluster's own, data in named
/// volumes, ports published on the host's loopback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerProvider {
    /// The cluster's bridge network. Default `pgdba-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The network's IPv4 subnet (a CIDR such as `10.201.0.0/24`). Default: one Docker picks.
    /// pgdba refuses a subnet that overlaps another Docker network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// The node image. Default `pgdba/node:<postgres.version>`, which
    /// `deployments/docker/build.sh <version>` builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The `local` provider: etcd, Patroni and PostgreSQL as processes on this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalProvider {
    /// Root of the cluster's directories (data, config, logs). Default `/var/lib/pgdba/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL port of member 0; member i listens on `pg_port + i`. Default 15432.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024))]
    pub pg_port: Option<u16>,
    /// Patroni REST API port of member 0; member i listens on `api_port + i`. Default 18008.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024))]
    pub api_port: Option<u16>,
    /// etcd client port; the peer port is `etcd_port + 1`. Default 12379.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024))]
    pub etcd_port: Option<u16>,
    /// OS user that runs etcd, Patroni and PostgreSQL when pgdba runs as root. Default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Directory of the PostgreSQL binaries. Default `/usr/lib/postgresql/<version>/bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// The `patroni` executable. Default `/opt/patroni/bin/patroni`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patroni_bin: Option<PathBuf>,
    /// The `etcd` executable. Default `/usr/bin/etcd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// PostgreSQL major version: 15 or 17, the majors pgdba has a GUC catalog for and its node
    /// image installs (15 from Debian 12, 17 from Debian 13).
    #[serde(default = "default_pg_version")]
    // The one list of supported majors, shared with `validate` and the GUC catalogs.
    #[schemars(extend("enum" = crate::pg::SUPPORTED_MAJORS))]
    pub version: u32,
    /// GUCs, values as a DBA writes them: `128MB`, `5min`, `on`.
    #[serde(default)]
    pub parameters: BTreeMap<String, GucValue>,
    /// Parameters that run commands or load code (`archive_command`,
    /// `shared_preload_libraries`, ...) that the spec may set: each must be named here, and
    /// the plan marks every change of one as a risk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_unsafe_parameters: Vec<String>,
}

impl Default for Postgres {
    fn default() -> Self {
        Self {
            version: default_pg_version(),
            parameters: BTreeMap::new(),
            allow_unsafe_parameters: Vec::new(),
        }
    }
}

fn default_pg_version() -> u32 {
    15
}

/// A GUC value as written in the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GucValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl GucValue {
    /// The value as PostgreSQL's configuration file would spell it.
    pub fn to_conf_string(&self) -> String {
        match self {
            GucValue::Bool(true) => "on".to_owned(),
            GucValue::Bool(false) => "off".to_owned(),
            GucValue::Int(i) => i.to_string(),
            GucValue::Float(f) => f.to_string(),
            GucValue::Str(s) => s.clone(),
        }
    }
}

/// Patroni's dynamic (DCS) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatroniSettings {
    /// Leader key TTL in seconds. Patroni requires `ttl >= loop_wait + 2 * retry_timeout`, and
    /// raises a ttl below 20 to 20 (so a smaller one would never match).
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 20, max = 3600))]
    pub ttl: u32,
    /// Seconds between Patroni's HA loops (Patroni's minimum: 1).
    #[serde(default = "default_loop_wait")]
    #[schemars(range(min = 1, max = 3600))]
    pub loop_wait: u32,
    /// Seconds Patroni retries the DCS and PostgreSQL; Patroni raises one below 3 to 3.
    #[serde(default = "default_retry_timeout")]
    #[schemars(range(min = 3, max = 3600))]
    pub retry_timeout: u32,
    /// Bytes a replica may lag and still be promoted.
    #[serde(default = "default_max_lag")]
    pub maximum_lag_on_failover: u64,
    /// Patroni's failsafe mode: while the DCS cannot be reached, the primary keeps running as
    /// long as every other member answers it, instead of demoting itself (no write outage
    /// when only etcd fails). On by default.
    #[serde(default = "default_true")]
    pub failsafe_mode: bool,
    /// Patroni's synchronous mode: Patroni names `synchronous_node_count` healthy replicas in
    /// `synchronous_standby_names` and keeps the list current as members come and go, so a
    /// commit acknowledged to a client is on that many standbys' disks, and a failover
    /// promotes only a synchronous standby (no acknowledged commit is lost). A commit waits
    /// for a standby's flush. Off by default. Changed in the DCS, without a restart.
    #[serde(default)]
    pub synchronous_mode: bool,
    /// How many synchronous standbys Patroni keeps with `synchronous_mode` (at least 1, at
    /// most `spec.replicas`). Default 1.
    #[serde(default = "default_synchronous_node_count")]
    #[schemars(range(min = 1))]
    pub synchronous_node_count: u32,
    /// With `synchronous_mode`: when no synchronous standby is left, writes wait instead of
    /// the primary going on alone (asynchronously). No acknowledged commit is ever on the
    /// primary only, at the price of writes stopping while every replica is down. Default off.
    #[serde(default)]
    pub synchronous_mode_strict: bool,
    /// Patroni's watchdog: a kernel watchdog (`/dev/watchdog`, Linux's softdog) resets the
    /// machine if Patroni hangs while its PostgreSQL leads, so a frozen primary cannot keep
    /// accepting writes after another member took over. `automatic` uses it where the device
    /// is there, `required` refuses to lead without it, `off` never uses it.
    #[serde(default)]
    pub watchdog: WatchdogMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WatchdogMode {
    Required,
    #[default]
    Automatic,
    Off,
}

impl WatchdogMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchdogMode::Required => "required",
            WatchdogMode::Automatic => "automatic",
            WatchdogMode::Off => "off",
        }
    }
}

impl Default for PatroniSettings {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            loop_wait: default_loop_wait(),
            retry_timeout: default_retry_timeout(),
            maximum_lag_on_failover: default_max_lag(),
            failsafe_mode: true,
            synchronous_mode: false,
            synchronous_node_count: default_synchronous_node_count(),
            synchronous_mode_strict: false,
            watchdog: WatchdogMode::default(),
        }
    }
}

fn default_ttl() -> u32 {
    30
}
fn default_loop_wait() -> u32 {
    10
}
fn default_retry_timeout() -> u32 {
    10
}
fn default_max_lag() -> u64 {
    1_048_576
}
fn default_synchronous_node_count() -> u32 {
    1
}
