//! What pgdba saw: plain data, produced by `observe::observe` and consumed by the pure `diff`.
//! Nothing in here does IO; an unreachable part is recorded as an observation, never an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything observed about one cluster at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub cluster: String,
    pub dcs: Dcs,
    /// The provider's inventory: members that exist on the provider (processes, data directories).
    pub inventory: Vec<InventoryMember>,
    /// Patroni's view of the cluster (`GET /cluster` and `GET /config` of any member that answered).
    pub patroni: Option<PatroniView>,
    /// Per member: its own Patroni status and its `pg_settings` rows for the parameters that matter.
    pub members: BTreeMap<String, Member>,
    /// Roles, databases and extensions, as the leader's catalogs hold them (one query per
    /// kind); `None` when the leader's PostgreSQL could not be read.
    pub sql: Option<SqlObjects>,
    /// Human-readable notes: "member demo-2 unreachable: connection refused".
    pub notes: Vec<String>,
    /// What should have answered and did not (a member whose processes run but hang, an etcd
    /// that runs but does not answer): the observation is partial, and nothing may be
    /// concluded from what is missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<Unreachable>,
    /// The connection pooler the provider runs for the cluster, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<Pooler>,
    /// The cluster's stanza in its backup repository (`spec.backup`), as pgBackRest on the
    /// leader tells it; `None` when the spec has no backup or no leader could be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStanza>,
}

/// The stanza as `pgbackrest info` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStanza {
    pub stanza: String,
    /// pgBackRest knows the stanza in the repository (its status is not "missing stanza").
    pub exists: bool,
    /// pgBackRest's status code and message (`0 ok`, `2 no valid backups`, ...).
    pub status: String,
    /// Where pgBackRest was run.
    pub member: String,
}

/// The connection pooler, as the provider finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pooler {
    pub running: bool,
    /// What it was created with (`pool_mode`, `port`), as the provider recorded it.
    pub settings: BTreeMap<String, String>,
    /// Where clients reach it from this machine (host, port), when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<(String, u16)>,
}

/// The source of an [`Unreachable`] a provider reports for a host it cannot log in to.
pub const HOST_UNREACHABLE: &str = "SSH";

/// A part of the cluster that runs but did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreachable {
    /// `dcs.etcd` or `member.demo-1`.
    pub address: crate::diff::Address,
    /// What did not answer: `etcd`, `Patroni REST API`, `PostgreSQL`.
    pub source: String,
    pub reason: String,
}

impl Observation {
    /// Did every part that runs answer?
    pub fn is_complete(&self) -> bool {
        self.unreachable.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SqlObjects {
    pub roles: BTreeMap<String, ObservedRole>,
    pub databases: BTreeMap<String, ObservedDatabase>,
    /// What reading them found worth saying (a verifier pgdba would not check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The password-check memo's entries of every role whose secret matched (`scram::Memo`);
    /// the caller may keep them. Never shown.
    #[serde(skip)]
    pub matched: std::collections::BTreeSet<String>,
    /// The primary's WAL archiver (`pg_stat_archiver`), read when the spec has `spec.backup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archiver: Option<ArchiverStat>,
}

/// `pg_stat_archiver` of the primary: whether WAL reaches the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiverStat {
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    /// RFC 3339, UTC.
    pub last_failed_at: Option<String>,
    pub last_archived_wal: Option<String>,
    /// RFC 3339, UTC.
    pub last_archived_at: Option<String>,
    /// Archiving fails now: the last attempt failed (its failure is newer than the last
    /// success, or nothing was ever archived).
    pub failing: bool,
}

/// A role from `pg_roles`/`pg_authid`. The password verifier itself is never kept: only
/// whether there is one and whether the spec's secret matches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedRole {
    pub login: bool,
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub inherit: bool,
    pub connection_limit: i32,
    /// Seconds since the epoch; `None` for no expiry.
    pub valid_until: Option<f64>,
    /// Roles it is a member of, sorted.
    pub member_of: Vec<String>,
    pub has_password: bool,
    /// Does the spec's secret match the stored SCRAM verifier? `None` when the spec sets no
    /// password for it.
    pub password_matches: Option<bool>,
    /// Objects it owns and privileges granted to it, in every database (`pg_shdepend`):
    /// `DROP ROLE` fails while there are any.
    #[serde(default)]
    pub owned_objects: i64,
    #[serde(default)]
    pub privileges: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedDatabase {
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// Only for databases a plan may destroy.
    pub size_bytes: Option<i64>,
    /// Installed extensions, when this database was looked into.
    pub extensions: Option<BTreeMap<String, ObservedExtension>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedExtension {
    pub version: String,
    pub schema: String,
    /// Table columns whose type the extension provides: dropping it drops them.
    #[serde(default)]
    pub dependent_columns: i64,
}

/// One row of `pg_hba_file_rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HbaLine {
    pub kind: String,
    pub database: Vec<String>,
    pub user: Vec<String>,
    pub address: Option<String>,
    pub netmask: Option<String>,
    pub method: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dcs {
    pub endpoint: String,
    /// The provider says the DCS exists (its data directory is there).
    pub exists: bool,
    /// The DCS process runs.
    pub running: bool,
    /// The DCS answered its health check.
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryMember {
    pub name: String,
    /// Its data directory exists (it was created once).
    pub exists: bool,
    /// Its Patroni process runs.
    pub running: bool,
    /// Its PostgreSQL runs (with or without its Patroni: a PostgreSQL left running after its
    /// Patroni died may still accept writes).
    #[serde(default)]
    pub postgres_running: bool,
    /// Its Patroni configuration file is what the spec renders now (bootstrap settings
    /// aside, which only a new cluster reads). `None` when the provider cannot tell.
    #[serde(default)]
    pub config_current: Option<bool>,
    /// How pgdba reaches it (what the provider knows of it now; not kept).
    #[serde(skip)]
    pub access: Option<crate::providers::Access>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Replica,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatroniMember {
    pub name: String,
    pub role: Role,
    /// `running`, `streaming`, `starting`, `stopped`, ...
    pub state: String,
    pub host: String,
    pub port: u16,
    pub api_url: String,
    /// Replication lag in bytes, for replicas.
    pub lag: Option<u64>,
    pub pending_restart: bool,
    pub timeline: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatroniView {
    pub members: Vec<PatroniMember>,
    /// The dynamic configuration stored in the DCS (`GET /config`), if it answered.
    pub config: Option<serde_json::Value>,
}

impl Member {
    /// Healthy as it says itself: a leader runs; a replica runs and streams.
    pub fn live_healthy(&self) -> Option<bool> {
        let state = self.state.as_deref()?;
        Some(match self.role? {
            Role::Leader => state == "running",
            Role::Replica => {
                state == "running" && self.replication_state.as_deref() == Some("streaming")
            }
            Role::Other => false,
        })
    }
}

impl PatroniView {
    pub fn leader(&self) -> Option<&PatroniMember> {
        self.members.iter().find(|m| m.role == Role::Leader)
    }
    pub fn member(&self, name: &str) -> Option<&PatroniMember> {
        self.members.iter().find(|m| m.name == name)
    }
    /// `postgresql.parameters.<name>` of the DCS config, as a string.
    pub fn dcs_parameter(&self, name: &str) -> Option<String> {
        let v = self
            .config
            .as_ref()?
            .get("postgresql")?
            .get("parameters")?
            .get(name)?;
        json_scalar_string(v)
    }
    /// A list of lines under `postgresql` in the DCS config (`pg_hba`, `pg_ident`); empty
    /// when absent. Entries that are not strings are skipped.
    pub fn dcs_lines(&self, key: &str) -> Vec<String> {
        self.config
            .as_ref()
            .and_then(|c| c.get("postgresql")?.get(key)?.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// A top-level key of the DCS config (`ttl`, `loop_wait`, ...), as a string.
    pub fn dcs_setting(&self, key: &str) -> Option<String> {
        json_scalar_string(self.config.as_ref()?.get(key)?)
    }
}

/// A JSON scalar as a configuration-file string; `None` for null, arrays and objects.
pub fn json_scalar_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(true) => Some("on".to_owned()),
        serde_json::Value::Bool(false) => Some("off".to_owned()),
        _ => None,
    }
}

/// One member as it answered for itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// Its Patroni REST API answered `GET /patroni`.
    pub api_reachable: bool,
    /// PostgreSQL answered and these are its `pg_settings` rows for the parameters that matter.
    pub settings: Option<BTreeMap<String, PgSetting>>,
    pub pending_restart: bool,
    pub pending_restart_reason: Vec<String>,
    /// Live, from its own `/patroni` (fresher than `/cluster`, which lags by up to
    /// `loop_wait`): its role, PostgreSQL's state, and a replica's replication state.
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub replication_state: Option<String>,
    /// Its `pg_hba_file_rules`, in order.
    pub hba: Option<Vec<HbaLine>>,
    /// PostgreSQL answered and is not in recovery: it accepts writes.
    #[serde(default)]
    pub accepts_writes: Option<bool>,
    /// Its timeline, from its control file's last checkpoint.
    #[serde(default)]
    pub timeline: Option<u64>,
    /// Its `ALTER SYSTEM` overrides of the parameters that matter, as `postgresql.auto.conf`
    /// holds them now (`pg_file_settings` reads the file when asked): in effect, or still
    /// waiting for a reload or a restart. `None` when PostgreSQL was not read.
    #[serde(default)]
    pub auto_conf: Option<BTreeMap<String, AutoConf>>,
}

/// One parameter's entry in a member's `postgresql.auto.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoConf {
    /// As written by `ALTER SYSTEM` (`512MB`), not in the base unit.
    pub setting: String,
    /// PostgreSQL runs with it: false while it waits for a reload or a restart, or when a
    /// later entry wins.
    pub applied: bool,
    /// Why PostgreSQL cannot apply it, if it says.
    pub error: Option<String>,
}

/// One `pg_settings` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgSetting {
    pub name: String,
    /// In the base unit (`16384` with unit `8kB`).
    pub setting: String,
    pub unit: Option<String>,
    pub context: String,
    pub source: String,
    pub sourcefile: Option<String>,
    pub pending_restart: bool,
}
