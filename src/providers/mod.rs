//! Providers: where a cluster's DCS and members run.
//!
//! The engine sees a provider through two things only:
//! - its [`Topology`], pure and resolved from the spec: the members the spec asks for, where
//!   each is placed (shown in the plan), the DCS's endpoints, and the networks pgdba's own
//!   HBA rules must admit. `diff`, `plan` and `drift` read nothing else of the provider.
//! - the [`Provider`] trait: a read side (what runs, each member's [`Access`], the DCS's
//!   location and health) that observation uses, and a write side (create, start, stop,
//!   remove members and the DCS, destroy) that `apply` and `destroy` use.
//!
//! [`for_spec`] is the one place that matches on the spec's provider kind. Adding a provider
//! is a folder here (its layout, its rendered configuration, its IO) and one arm there.

pub mod adopted;
pub mod docker;
pub mod etcd;
pub mod local;
pub mod pgbackrest;
pub mod pgbouncer;
pub mod ssh;

use std::path::PathBuf;

use crate::observe::model::{Dcs, InventoryMember};
use crate::plan::Plan;
use crate::spec::model::{ClusterSpec, Provider as ProviderSpec};

/// Errors of the providers' IO.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("user {user}: {message}")]
    User { user: String, message: String },
    #[error("{0}")]
    Config(String),
    /// A port the plan's actions listen on is held by something else.
    #[error("{0}")]
    PortInUse(String),
    /// Something else the plan's actions need is held by something else (a network, a subnet,
    /// a container's name).
    #[error("{0}")]
    InUse(String),
    #[error("process {pid} did not stop")]
    Stuck { pid: u32 },
    #[error("{what} did not come up within {secs}s; last lines of {log}:\n{tail}")]
    Timeout {
        what: String,
        secs: u64,
        log: String,
        tail: String,
    },
    #[error("{what} exited right after start; last lines of {log}:\n{tail}")]
    Exited {
        what: String,
        log: String,
        tail: String,
    },
    #[error("no member {0} in this cluster")]
    UnknownMember(String),
    #[error("etcd at {endpoint}: {message}")]
    Etcd { endpoint: String, message: String },
    #[error("Docker: {0}")]
    Docker(String),
    /// A command over SSH failed.
    #[error("{0}")]
    Ssh(String),
    /// A host did not answer on its SSH port.
    #[error("{0}")]
    HostUnreachable(String),
    /// A host offers a key pgdba does not trust yet (it trusts it on first use, when an apply
    /// whose plan showed it records it).
    #[error("{0}")]
    HostKeyUntrusted(String),
    /// A host offers another key than the one pgdba trusts: nothing is sent to it.
    #[error("{0}")]
    HostKeyChanged(String),
}

impl ProviderError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> ProviderError {
        ProviderError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The passwords of pgdba's own roles and services, resolved once from the state at the CLI's
/// edge and passed to observation and apply alike.
#[derive(Clone)]
pub struct Credentials {
    pub superuser: String,
    pub replication: String,
    pub rewind: String,
    /// The REST API's password for user [`crate::roles::RESTAPI_USER`]; `None` for a cluster
    /// made before pgdba protected the REST API.
    pub restapi: Option<String>,
    /// The password of etcd's `root` user; `None` for a cluster whose etcd has no
    /// authentication.
    pub etcd: Option<String>,
    /// The password of PgBouncer's auth user; `None` for a cluster made before pgdba ran a
    /// pooler.
    pub pooler: Option<String>,
}

impl Credentials {
    /// The secret kept in `slot`, when there is one.
    pub fn get(&self, slot: crate::roles::SecretSlot) -> Option<&str> {
        use crate::roles::SecretSlot;
        match slot {
            SecretSlot::Superuser => Some(&self.superuser),
            SecretSlot::Replication => Some(&self.replication),
            SecretSlot::Rewind => Some(&self.rewind),
            SecretSlot::Pooler => self.pooler.as_deref(),
        }
    }

    /// The password of PgBouncer's auth user, which every provider's pooler needs.
    pub fn pooler_password(&self) -> Result<&str, ProviderError> {
        self.pooler.as_deref().ok_or_else(|| {
            ProviderError::Config(
                "the cluster's secrets hold no password for PgBouncer's auth user".to_owned(),
            )
        })
    }

    /// etcd's user and password, when etcd authenticates.
    pub fn etcd_auth(&self) -> Option<(&str, &str)> {
        self.etcd.as_deref().map(|p| (crate::roles::ETCD_USER, p))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(sensitive)")
    }
}

/// The name of member `index` of cluster `cluster`, on every provider.
pub fn member_name(cluster: &str, index: u32) -> String {
    format!("{cluster}-{index}")
}

/// The index of a member name of this cluster (`demo-2` → 2).
pub fn member_index(cluster: &str, name: &str) -> Option<u32> {
    name.strip_prefix(cluster)?.strip_prefix('-')?.parse().ok()
}

/// The HTTP client a provider talks to its own services with (etcd, Patroni): no proxy, and
/// each request bounded.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// One member slot of the spec, as the plan shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSlot {
    pub name: String,
    pub index: u32,
    /// Where the provider will place it, shown in the plan's `after` of its creation (ports and
    /// data directory for `local`). Shown, never read back.
    pub placement: serde_json::Map<String, serde_json::Value>,
}

/// What the engine knows of a provider before any IO: pure, from the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub cluster: String,
    /// The DCS as the plan shows it (where pgdba reaches it).
    pub dcs_endpoint: String,
    /// Every member slot the spec asks for, index 0 first.
    pub members: Vec<MemberSlot>,
    /// The networks pgdba and the members connect from (`127.0.0.1/32` on one machine): the
    /// only addresses pgdba's own HBA rules admit. An HBA address field each.
    pub admit: Vec<String>,
}

impl Topology {
    pub fn member_names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }
}

/// Where pgdba reaches one member that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// PostgreSQL's host and port, from where pgdba runs.
    pub host: String,
    pub port: u16,
    /// Patroni's REST API base URL.
    pub api_url: String,
    /// PostgreSQL's Unix socket directory, when pgdba can reach it (peer authentication).
    pub socket_dir: Option<PathBuf>,
    /// Where its data lives (a directory, a volume), as the state records it.
    pub data_dir: String,
}

/// What a provider finds of its cluster: the DCS and every member it has, with their access.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub dcs: Dcs,
    pub members: Vec<InventoryMember>,
    pub pooler: Option<crate::observe::model::Pooler>,
    /// Where Patroni's keys are, as read with the rest (as [`Provider::dcs_location`] says).
    pub dcs_location: crate::patroni::dcs::Location,
    /// What the provider could not look at (a host it cannot reach): the observation is
    /// partial.
    pub unreachable: Vec<crate::observe::model::Unreachable>,
}

/// Something on the machine a cluster holds alone; two clusters claiming the same conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A directory and everything under it.
    Dir(PathBuf),
    /// A TCP port on this machine, with what it is for.
    Port(u16, String),
    /// A Docker network, by name.
    Network(String),
    /// An IPv4 subnet (CIDR) of a Docker network.
    Subnet(String),
}

/// What cluster `a` (with `mine`) would share with cluster `other` (with `theirs`). Empty
/// when nothing.
pub fn conflicts(mine: &[Claim], other: &str, theirs: &[Claim]) -> Vec<String> {
    let mut out = Vec::new();
    for c in mine {
        match c {
            Claim::Dir(d) => {
                for t in theirs {
                    if let Claim::Dir(o) = t
                        && (d.starts_with(o) || o.starts_with(d))
                    {
                        out.push(format!(
                            "data_dir {} overlaps cluster {other}'s {}",
                            d.display(),
                            o.display()
                        ));
                    }
                }
            }
            Claim::Port(port, what) => {
                for t in theirs {
                    if let Claim::Port(p, their) = t
                        && p == port
                    {
                        out.push(format!("port {port} ({what}) is cluster {other}'s {their}"));
                    }
                }
            }
            Claim::Network(n) => {
                if theirs.contains(c) {
                    out.push(format!("Docker network {n} is cluster {other}'s"));
                }
            }
            Claim::Subnet(s) => {
                for t in theirs {
                    if let Claim::Subnet(o) = t
                        && subnets_overlap(s, o)
                    {
                        out.push(format!("subnet {s} overlaps cluster {other}'s {o}"));
                    }
                }
            }
        }
    }
    out
}

/// Do two IPv4 CIDRs share an address? Unreadable ones share nothing (validation refuses them).
pub fn subnets_overlap(a: &str, b: &str) -> bool {
    match (a.parse::<ipnet::Ipv4Net>(), b.parse::<ipnet::Ipv4Net>()) {
        (Ok(a), Ok(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

/// A provider: the read side observation uses, the write side `apply` and `destroy` use.
/// Every call is about this one cluster.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The spec's name of this provider kind (`local`), as the state records it.
    fn kind(&self) -> &'static str;

    /// The pure part, from the spec.
    fn topology(&self) -> &Topology;

    /// What this cluster holds alone on this machine.
    fn claims(&self) -> Vec<Claim>;

    /// Where the provider keeps this cluster (a directory), as the state records it.
    fn location(&self) -> String;

    /// What a DBA removes by hand to clear the remains of a first apply that failed (its
    /// `data_dir`; the containers, volumes and network with its label).
    fn remains(&self) -> String;

    /// The section of the spec to change when something the provider holds clashes
    /// (`spec.provider.local`).
    fn spec_section(&self) -> &'static str;

    /// The host keys the state recorded (`address:port` → OpenSSH key line), which a provider
    /// that logs in to hosts checks them against. Called before anything else.
    fn trust_host_keys(&self, _keys: &std::collections::BTreeMap<String, String>) {}

    /// The keys of hosts nothing trusts yet, as they offered them since (`address:port` → key
    /// line): what the plan shows and apply records (trust on first use).
    fn untrusted_host_keys(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }

    /// Refuse when a host offers another key than the one trusted (`HostKeyChanged`).
    async fn check_hosts(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    // Read side.

    /// What exists: the DCS and each member, with how to reach it. Never fails: what cannot
    /// be read does not exist, or is said not to run.
    async fn inventory(&self) -> Inventory;

    /// Where Patroni's keys of this cluster are, for reading its view from the DCS.
    async fn dcs_location(&self) -> crate::patroni::dcs::Location;

    /// Does the DCS answer its health check?
    async fn dcs_healthy(&self) -> bool;

    /// How to reach member `name`.
    async fn access(&self, name: &str) -> Result<Access, ProviderError>;

    /// Before a plan is shown: what its actions need from this machine is there (free ports,
    /// a watchdog the spec requires).
    async fn preflight(&self, plan: &Plan) -> Result<(), ProviderError>;

    // Write side.

    /// Create the DCS (and whatever the cluster needs first), marked with `lineage`, and wait
    /// until it is healthy.
    async fn create_dcs(&self, lineage: &str, creds: &Credentials) -> Result<(), ProviderError>;

    /// Start the existing DCS and wait until it is healthy.
    async fn start_dcs(&self) -> Result<(), ProviderError>;

    /// Create a member and start its Patroni; returns once its REST API answers.
    async fn create_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError>;

    /// Start an existing member's Patroni; returns once its REST API answers.
    async fn start_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError>;

    /// Write a member's Patroni configuration as the spec renders it now (its Patroni reads
    /// it on a reload).
    async fn write_member_config(
        &self,
        name: &str,
        creds: &Credentials,
    ) -> Result<(), ProviderError>;

    /// Stop a member, forget it in the DCS and remove it with its data.
    async fn delete_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError>;

    /// Create and start the connection pooler the spec asks for (`spec.pooler`), routed to the
    /// current leader and following it.
    async fn create_pooler(&self, creds: &Credentials) -> Result<(), ProviderError>;

    /// Start the existing, stopped pooler.
    async fn start_pooler(&self) -> Result<(), ProviderError>;

    /// Stop and remove the pooler.
    async fn delete_pooler(&self) -> Result<(), ProviderError>;

    /// Remove everything this cluster's `lineage` created; refused for anything it cannot
    /// prove it created.
    async fn destroy(&self, lineage: &str) -> Result<(), ProviderError>;

    /// Kill member `name` as a crash would: its Patroni and its PostgreSQL at once, without
    /// letting either shut down (a failover drill's fault). `start_member` brings it back.
    async fn kill_member(&self, name: &str) -> Result<(), ProviderError>;

    /// Freeze member `name` (`frozen`: every one of its processes stopped where it is, as a
    /// machine that hangs) or thaw it: the local provider's SIGSTOP and SIGCONT, Docker's
    /// pause and unpause. Its connections stay open and nothing answers on them.
    async fn freeze_member(&self, name: &str, frozen: bool) -> Result<(), ProviderError>;

    /// Whether [`Provider::isolate_member`] can cut a member off: its members have network
    /// stacks of their own (Docker's containers), not one shared loopback.
    fn partitions(&self) -> bool;

    /// Cut member `name` off the cluster's network (`isolated`: from the DCS, its peers and the
    /// host alike, its processes running on), or join it again under its name: Docker's
    /// network disconnect and connect. Either way it is a no-op when already so.
    async fn isolate_member(&self, name: &str, isolated: bool) -> Result<(), ProviderError>;

    /// Overwrite `bytes` at `offset` of the relation file `file` (as `pg_relation_filepath`
    /// gives it: `base/<database oid>/<file node>`, checked by [`relation_file`]) in the data
    /// directory of member `name`, which must not run: the fault `chaos corrupt` injects for
    /// data checksums to find.
    async fn damage_file(
        &self,
        name: &str,
        file: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), ProviderError>;

    /// Delete every key Patroni keeps for this cluster in the DCS (its leader, members,
    /// dynamic configuration, initialize key and history: what `patronictl remove` deletes),
    /// so that the next member started bootstraps the cluster again. Only when no member
    /// runs: an in-place restore, after it stopped them all.
    async fn forget_cluster(&self, creds: &Credentials) -> Result<(), ProviderError>;

    /// Run `argv` where member `name`'s PostgreSQL runs, as the user that runs it, with its
    /// pgBackRest configuration (`PGBACKREST_CONFIG`), libpq pointed at its PostgreSQL's socket
    /// (`PGHOST`, `PGPORT`) and the environment `env` adds, and wait for it (at most `within`):
    /// for the tools that must run beside PostgreSQL (pgBackRest, pg_dump).
    async fn run_beside(
        &self,
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        within: std::time::Duration,
    ) -> Result<Ran, ProviderError>;
}

/// `file`, a relation's file as `pg_relation_filepath` names it, if it is one of the data
/// directory's own (`base/<oid>/<oid>`, optionally `.<segment>`): never a tablespace's link out
/// of it, an absolute path or one that climbs.
pub fn relation_file(file: &str) -> Result<&str, ProviderError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = file.split('/').collect();
    let ok = match parts.as_slice() {
        ["base", db, rel] => {
            digits(db)
                && match rel.split_once('.') {
                    Some((node, segment)) => digits(node) && digits(segment),
                    None => digits(rel),
                }
        }
        _ => false,
    };
    if ok {
        Ok(file)
    } else {
        Err(ProviderError::Config(format!(
            "{file:?} is not a relation file of the data directory (base/<oid>/<oid>): tables in other tablespaces are not supported"
        )))
    }
}

/// What a program run by [`Provider::run_beside`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Its exit code (-1 when a signal ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// The provider of a spec: the one match on the provider kind. `backup_secrets` (read by the
/// caller) are what it writes into its members' pgBackRest configuration.
pub fn for_spec(
    spec: &ClusterSpec,
    backup_secrets: &crate::secret::BackupSecrets,
) -> Box<dyn Provider> {
    match &spec.spec.provider {
        ProviderSpec::Local(local) => Box::new(local::Local::new(spec, local, backup_secrets)),
        ProviderSpec::Docker(docker) => Box::new(docker::Docker::new(spec, docker, backup_secrets)),
        ProviderSpec::Ssh(ssh) => Box::new(ssh::Ssh::new(spec, ssh, backup_secrets)),
        ProviderSpec::Adopted(adopted) => Box::new(adopted::Adopted::new(spec, adopted)),
    }
}

#[cfg(test)]
mod relation_file_tests {
    #[test]
    fn only_relation_files_of_the_data_directory_may_be_damaged() {
        for ok in ["base/5/16384", "base/16401/16402.1"] {
            assert_eq!(super::relation_file(ok).ok(), Some(ok));
        }
        for bad in [
            "/etc/passwd",
            "base/5/../../../etc/passwd",
            "pg_tblspc/16400/PG_15_202209061/5/16384",
            "base/5",
            "base/5/16384/x",
            "base//16384",
            "base/5/16384.",
            "global/1262",
        ] {
            assert!(super::relation_file(bad).is_err(), "{bad}");
        }
    }
}
