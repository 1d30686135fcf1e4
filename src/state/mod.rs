//! The state: what pgdba created, per cluster, written atomically, with a lock.
//!
//! Modelled on Terraform's local backend. One [`StateStore`] is a directory holding, per cluster:
//!
//! | file | content |
//! | --- | --- |
//! | `<cluster>.json` | the [`ClusterState`], pretty JSON, fields in declaration order |
//! | `<cluster>.lock` | the [`LockInfo`] of the process that holds the lock, while one does |
//! | `<cluster>.secrets.json` | the generated [`Secrets`], mode 0600 from creation |
//!
//! Temporary files are named `.<file>.<random>.tmp` in the same directory and are ignored by
//! every reader, so a crash in the middle of a write leaves the previous state readable.
//!
//! Architecture Invariant: nothing here prints, and a damaged file is an error naming the file,
//! never a panic. A lock is never broken except by [`StateStore::force_unlock`].

mod error;
mod fsutil;
mod lock;
mod secrets;
mod store;
mod sys;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::StateError;
pub use lock::{LockGuard, LockInfo, LockStatus};
pub use secrets::Secrets;
pub use store::{StateStore, StateSummary, validate_cluster_name};

/// Format version of the state file this pgdba writes; it reads versions up to this one.
pub const STATE_VERSION: u32 = 1;

/// Everything pgdba remembers about one cluster it created or adopted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ClusterState {
    /// Format version of this file ([`STATE_VERSION`] when written by this pgdba).
    pub version: u32,
    /// A UUID v4 fixed for the life of the cluster: two states with different lineages are two
    /// different clusters, even under the same name.
    pub lineage: String,
    /// Bumped by every [`StateStore::save`].
    pub serial: u64,
    pub cluster: String,
    /// The provider that created the cluster, e.g. `local`.
    pub provider: String,
    /// sha256 of the last fully applied spec (see [`spec_hash`]).
    pub spec_hash: Option<String>,
    /// When the state was last saved, RFC3339 UTC.
    pub updated_at: String,
    /// The provider root directory pgdba created, if any.
    pub data_dir: Option<String>,
    pub dcs: DcsState,
    pub members: Vec<Member>,
    /// GUC names pgdba set in the DCS, so that removing one from the spec resets it.
    pub managed_parameters: BTreeSet<String>,
    /// Roles pgdba created or manages from the spec: one that leaves the spec is dropped
    /// only with `prune.roles`, otherwise forgotten.
    #[serde(default)]
    pub managed_roles: BTreeSet<String>,
    /// Databases pgdba created or manages from the spec.
    #[serde(default)]
    pub managed_databases: BTreeSet<String>,
    /// Extensions pgdba created, per database: one that leaves the spec is dropped.
    #[serde(default)]
    pub managed_extensions: BTreeMap<String, BTreeSet<String>>,
    /// The spec of the last fully applied run (specs hold no secrets): what `drift`
    /// compares reality with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_spec: Option<serde_json::Value>,
    /// Who led right after the last apply; a different leader later is expected drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Applies that stopped part-way since the last complete one, oldest first (at most
    /// [`MAX_PARTIAL_APPLIES`]): what each set out to do and what it did. Drift compares an
    /// address one of them changed with that apply's spec, not with `applied_spec`. A complete
    /// apply clears them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial_applies: Vec<PartialApply>,
    /// Where clients reach the connection pooler from this machine, when one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<PoolerState>,
    /// The host keys pgdba trusts for the cluster's hosts (`address:port` → OpenSSH key line),
    /// recorded on first use by the apply whose plan showed them (the `ssh` provider).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_keys: BTreeMap<String, String>,
}

/// The pooler pgdba runs for a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PoolerState {
    pub host: String,
    pub port: u16,
}

/// How many operations a cluster's history keeps.
pub const MAX_HISTORY: usize = 200;

/// One operation run on a cluster outside apply (`switchover`, `failover trigger`, ...).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// When it ended, RFC3339 UTC.
    pub at: String,
    /// The command (`switchover`).
    pub command: String,
    pub success: bool,
    /// What it did or why it failed, in one sentence.
    pub summary: String,
    /// Its result (`from`, `to`, `write_unavailable_ms`, ...); never a secret.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl HistoryEntry {
    pub fn now(command: &str, success: bool, summary: String, details: serde_json::Value) -> Self {
        HistoryEntry {
            at: sys::now_rfc3339(),
            command: command.to_owned(),
            success,
            summary,
            details,
        }
    }
}

/// How many partial applies the state keeps.
pub const MAX_PARTIAL_APPLIES: usize = 10;

/// An apply that stopped part-way.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PartialApply {
    /// When it ended, RFC3339 UTC.
    pub at: String,
    /// The spec it applied (specs hold no secrets).
    pub spec: serde_json::Value,
    /// The addresses its completed actions changed (`pg_parameter.work_mem`, `member.demo-2`).
    pub done: BTreeSet<String>,
}

impl ClusterState {
    /// Record an apply that stopped part-way, keeping the newest [`MAX_PARTIAL_APPLIES`].
    pub fn record_partial(&mut self, spec: serde_json::Value, done: BTreeSet<String>) {
        self.partial_applies.push(PartialApply {
            at: sys::now_rfc3339(),
            spec,
            done,
        });
        let excess = self
            .partial_applies
            .len()
            .saturating_sub(MAX_PARTIAL_APPLIES);
        self.partial_applies.drain(..excess);
    }
}

impl ClusterState {
    /// A fresh state: new lineage, serial 0, nothing created yet.
    pub fn new(cluster: &str, provider: &str) -> Self {
        Self {
            version: STATE_VERSION,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            cluster: cluster.to_owned(),
            provider: provider.to_owned(),
            spec_hash: None,
            updated_at: sys::now_rfc3339(),
            data_dir: None,
            dcs: DcsState::default(),
            members: Vec::new(),
            managed_parameters: BTreeSet::new(),
            managed_roles: BTreeSet::new(),
            managed_databases: BTreeSet::new(),
            managed_extensions: BTreeMap::new(),
            applied_spec: None,
            leader: None,
            partial_applies: Vec::new(),
            pooler: None,
            host_keys: BTreeMap::new(),
        }
    }
}

/// The distributed configuration store (etcd) the cluster uses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DcsState {
    /// Client URLs, e.g. `http://127.0.0.1:12379`.
    pub endpoints: Vec<String>,
    /// Whether pgdba created the DCS (and so may destroy it).
    pub created: bool,
}

/// One member as pgdba created it: where to reach PostgreSQL and Patroni.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub host: String,
    /// PostgreSQL port.
    pub port: u16,
    /// Patroni REST API base URL.
    pub api_url: String,
    pub data_dir: String,
    /// Directory of PostgreSQL's Unix socket.
    pub socket_dir: String,
}

/// Writes `bytes` to `path` crash-safely with mode 0600 from creation (a temp file beside it,
/// fsync, rename, fsync of the directory), as the state is written: for saved plans.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), StateError> {
    fsutil::write_atomic(path, bytes, 0o600, fsutil::Install::Replace).map(|_| ())
}

/// Lowercase hex sha256 of `bytes`, for [`ClusterState::spec_hash`]. The caller decides which
/// canonical serialization of the spec it hashes and must keep it stable.
pub fn spec_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_state_has_fresh_lineage_and_serial_zero() {
        let a = ClusterState::new("demo", "local");
        let b = ClusterState::new("demo", "local");
        assert_eq!(a.serial, 0);
        assert_eq!(a.version, STATE_VERSION);
        assert_ne!(a.lineage, b.lineage);
        assert!(uuid::Uuid::parse_str(&a.lineage).is_ok());
    }

    /// Field order in the file is part of the format: diffs of state files stay readable.
    #[test]
    fn serialization_keeps_declared_field_order() {
        let state = ClusterState::new("demo", "local");
        let json = serde_json::to_string(&state).unwrap_or_default();
        let keys = [
            "\"version\"",
            "\"lineage\"",
            "\"serial\"",
            "\"cluster\"",
            "\"provider\"",
            "\"spec_hash\"",
            "\"updated_at\"",
            "\"data_dir\"",
            "\"dcs\"",
            "\"members\"",
            "\"managed_parameters\"",
            "\"managed_roles\"",
            "\"managed_databases\"",
            "\"managed_extensions\"",
        ];
        let positions: Vec<usize> = keys.iter().filter_map(|k| json.find(k)).collect();
        assert_eq!(positions.len(), keys.len(), "{json}");
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    }

    #[test]
    fn spec_hash_is_hex_sha256() {
        assert_eq!(
            spec_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
