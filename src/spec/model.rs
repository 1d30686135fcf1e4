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
}

/// Exactly one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Local(LocalProvider),
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
    /// PostgreSQL major version.
    #[serde(default = "default_pg_version")]
    #[schemars(range(min = 13, max = 17))]
    pub version: u32,
    /// GUCs, values as a DBA writes them: `128MB`, `5min`, `on`.
    #[serde(default)]
    pub parameters: BTreeMap<String, GucValue>,
}

impl Default for Postgres {
    fn default() -> Self {
        Self {
            version: default_pg_version(),
            parameters: BTreeMap::new(),
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
    /// Leader key TTL in seconds. Patroni requires `ttl >= loop_wait + 2 * retry_timeout`.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 1))]
    pub ttl: u32,
    #[serde(default = "default_loop_wait")]
    #[schemars(range(min = 1))]
    pub loop_wait: u32,
    #[serde(default = "default_retry_timeout")]
    #[schemars(range(min = 1))]
    pub retry_timeout: u32,
    /// Bytes a replica may lag and still be promoted.
    #[serde(default = "default_max_lag")]
    pub maximum_lag_on_failover: u64,
}

impl Default for PatroniSettings {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            loop_wait: default_loop_wait(),
            retry_timeout: default_retry_timeout(),
            maximum_lag_on_failover: default_max_lag(),
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
