//! What an operational command acts on: a cluster pgdba knows (named by `-f SPEC` or
//! `--name NAME`, reached as its state and provider say), or a plain PostgreSQL server named by
//! `PGDBA_PG_*` (no Patroni). Resolved once, into [`Target`].

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Global;
use super::cluster::{Cluster, credentials, last_applied};
use super::commands::Failure;
use super::commands::codes;
use crate::ops::Server;
use crate::providers::Credentials;
use crate::roles::SUPERUSER;
use crate::spec::model::ClusterSpec;
use crate::state::{ClusterState, StateStore};

/// `-f SPEC` or `--name NAME`: the cluster a command acts on.
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterArg {
    /// The cluster's spec file.
    #[arg(short = 'f', long = "file", conflicts_with = "name")]
    pub file: Option<PathBuf>,
    /// The cluster's name in the state (instead of -f).
    #[arg(long)]
    pub name: Option<String>,
}

/// `--member NAME` or `--host HOST[:PORT]`: one member.
#[derive(Debug, Args, Clone, Default)]
pub struct MemberArg {
    /// The member's name (`demo-2`).
    #[arg(long, conflicts_with = "host")]
    pub member: Option<String>,
    /// The member's host, and its PostgreSQL port when several members share the host.
    #[arg(long)]
    pub host: Option<String>,
}

/// A cluster pgdba knows, resolved.
pub(super) struct Known {
    pub(super) name: String,
    pub(super) state: ClusterState,
    pub(super) spec: ClusterSpec,
    pub(super) cluster: Cluster,
    pub(super) creds: Credentials,
    pub(super) store: StateStore,
    /// Its members, reachable as the provider says now (falling back to the state's record).
    pub(super) servers: Vec<Server>,
}

impl Known {
    /// Ask the provider again where the members answer: a Docker container started again or
    /// joined to its network again is published on new host ports.
    pub(super) async fn refresh_servers(&mut self) {
        self.servers = servers_of(&self.state, &self.cluster, &self.creds).await;
    }

    /// A Patroni client authenticated for the REST API's unsafe endpoints.
    pub(super) fn patroni(&self, timeout: Duration) -> Result<crate::patroni::Client, Failure> {
        let auth = self
            .creds
            .restapi
            .as_ref()
            .map(|p| (crate::roles::RESTAPI_USER.to_owned(), p.clone()));
        crate::patroni::Client::new(timeout, auth)
            .map_err(|e| Failure::new(codes::INTERNAL, crate::error_chain(&e)))
    }

    /// The member `m` names (by name, or by host[:port]); `None` when it names none.
    pub(super) fn member(&self, m: &MemberArg) -> Result<Option<&Server>, Failure> {
        select_member(&self.servers, m, &self.name)
    }

    /// Record an operation in the cluster's history; a history that cannot be written is
    /// logged, not a reason to report an operation that happened as failed.
    pub(super) fn record(
        &self,
        command: &str,
        success: bool,
        summary: String,
        details: serde_json::Value,
    ) {
        if let Err(e) = self.store.record(
            &self.name,
            crate::state::HistoryEntry::now(command, success, summary, details),
        ) {
            tracing::warn!(
                "could not record {command} in the history of {}: {e}",
                self.name
            );
        }
    }

    /// The REST API URLs of every member, in member order.
    pub(super) fn api_urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .filter_map(|s| s.api_url.clone())
            .collect()
    }
}

/// What a command acts on.
pub(super) enum Target {
    Cluster(Box<Known>),
    /// A plain PostgreSQL server: no Patroni, no state.
    Plain(Server),
}

impl Target {
    pub(super) fn servers(&self) -> Vec<Server> {
        match self {
            Target::Cluster(k) => k.servers.clone(),
            Target::Plain(s) => vec![s.clone()],
        }
    }
}

pub(super) fn no_patroni(what: &str, server: &str) -> Failure {
    Failure::new(
        codes::NO_PATRONI,
        format!(
            "{what} needs Patroni, and {server} (named by PGDBA_PG_HOST) is a plain PostgreSQL server: there is no HA manager to hand the leader to"
        ),
    )
    .hint("name a Patroni cluster with -f SPEC or --name NAME (adopt one with `pgdba cluster connect`)")
}

/// The member `m` names, among `servers`; `None` when `m` names none.
pub(super) fn select_member<'a>(
    servers: &'a [Server],
    m: &MemberArg,
    cluster: &str,
) -> Result<Option<&'a Server>, Failure> {
    if let Some(name) = &m.member {
        return servers
            .iter()
            .find(|s| &s.name == name)
            .map(Some)
            .ok_or_else(|| {
                Failure::new(
                    codes::NOT_FOUND,
                    format!(
                        "cluster {cluster} has no member {name}; its members: {}",
                        names(servers)
                    ),
                )
            });
    }
    let Some(host) = &m.host else {
        return Ok(None);
    };
    let (h, port) = match host.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, Some(p)),
            Err(_) => {
                return Err(Failure::new(
                    codes::USAGE,
                    format!("--host {host}: the port after ':' is not a number"),
                ));
            }
        },
        None => (host.as_str(), None),
    };
    let found: Vec<&Server> = servers
        .iter()
        .filter(|s| s.host == h && port.is_none_or(|p| s.port == p))
        .collect();
    match found.as_slice() {
        [one] => Ok(Some(one)),
        [] => Err(Failure::new(
            codes::NOT_FOUND,
            format!(
                "cluster {cluster} has no member on {host}; its members: {}",
                servers
                    .iter()
                    .map(|s| format!("{} ({}:{})", s.name, s.host, s.port))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        _ => Err(Failure::new(
            codes::USAGE,
            format!(
                "several members of cluster {cluster} are on {h}: {}; give the port (--host {h}:PORT) or --member",
                found
                    .iter()
                    .map(|s| format!("{} ({}:{})", s.name, s.host, s.port))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn names(servers: &[Server]) -> String {
    servers
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cluster `arg` names, or the plain server `PGDBA_PG_*` names when it names none.
pub(super) async fn resolve(g: &Global, arg: &ClusterArg) -> Result<Target, Failure> {
    if arg.file.is_none() && arg.name.is_none() {
        return plain_from_env().map(Target::Plain);
    }
    resolve_cluster(g, arg)
        .await
        .map(|k| Target::Cluster(Box::new(k)))
}

/// The cluster `arg` names; a plain server is not one.
pub(super) async fn resolve_cluster(g: &Global, arg: &ClusterArg) -> Result<Known, Failure> {
    let store = StateStore::new(&g.state_dir);
    let (name, given) = match (&arg.file, &arg.name) {
        (Some(f), _) => {
            let loaded = super::specs::load_one(f, "this command")?;
            (loaded.spec.metadata.name.clone(), Some(loaded.spec))
        }
        (None, Some(n)) => {
            crate::state::validate_cluster_name(n)
                .map_err(|e| Failure::new(codes::USAGE, e.to_string()))?;
            (n.clone(), None)
        }
        (None, None) => {
            if let Ok(host) = std::env::var("PGDBA_PG_HOST") {
                return Err(no_patroni("this command", &host));
            }
            return Err(Failure::new(
                codes::USAGE,
                "name the cluster with -f SPEC or --name NAME",
            ));
        }
    };
    let Some(state) = store.load(&name)? else {
        return Err(Failure::new(
            codes::NOT_FOUND,
            format!(
                "{} has no cluster {name}",
                store.dir().display()
            ),
        )
        .hint("`pgdba state list` lists the clusters pgdba knows; apply a spec, or adopt a running cluster with `pgdba cluster connect`"));
    };
    let spec = match given.or_else(|| last_applied(&state)) {
        Some(s) => s,
        None => {
            return Err(Failure::new(
                codes::NOT_FOUND,
                format!("cluster {name} has no applied spec in the state yet"),
            )
            .hint("apply its spec first"));
        }
    };
    let Some(creds) = credentials(&store, &name, Some(&state))? else {
        return Err(Failure::new(
            codes::SECRETS_MISSING,
            format!("cluster {name}: no secrets file beside its state"),
        ));
    };
    let cluster = Cluster::new(&spec);
    cluster
        .trust_hosts(Some(&state), &Default::default())
        .await?;
    let servers = servers_of(&state, &cluster, &creds).await;
    Ok(Known {
        name,
        state,
        spec,
        cluster,
        creds,
        store,
        servers,
    })
}

/// The cluster's members, reachable as its provider says now (falling back to the state's
/// record of each).
async fn servers_of(state: &ClusterState, cluster: &Cluster, creds: &Credentials) -> Vec<Server> {
    let inventory = cluster.provider.inventory().await;
    state
        .members
        .iter()
        .map(|m| {
            let access = inventory
                .members
                .iter()
                .find(|i| i.name == m.name)
                .and_then(|i| i.access.clone());
            let (host, port, api_url, socket_dir, data_dir) = match access {
                Some(a) => (
                    a.host,
                    a.port,
                    a.api_url,
                    a.socket_dir,
                    local_dir(&a.data_dir),
                ),
                None => (
                    m.host.clone(),
                    m.port,
                    m.api_url.clone(),
                    (!m.socket_dir.is_empty()).then(|| PathBuf::from(&m.socket_dir)),
                    local_dir(&m.data_dir),
                ),
            };
            Server {
                name: m.name.clone(),
                host,
                port,
                user: SUPERUSER.to_owned(),
                password: Some(creds.superuser.clone()),
                database: "postgres".to_owned(),
                socket_dir,
                data_dir,
                api_url: Some(api_url),
            }
        })
        .collect()
}

/// The plain server `PGDBA_PG_HOST`, `PGDBA_PG_PORT` (5432), `PGDBA_PG_USER` (postgres),
/// `PGDBA_PG_PASSWORD` and `PGDBA_PG_DATABASE` (postgres) name.
fn plain_from_env() -> Result<Server, Failure> {
    let Ok(host) = std::env::var("PGDBA_PG_HOST") else {
        return Err(Failure::new(
            codes::USAGE,
            "name a cluster with -f SPEC or --name NAME, or a plain PostgreSQL server with PGDBA_PG_HOST (and PGDBA_PG_PORT, PGDBA_PG_USER, PGDBA_PG_PASSWORD, PGDBA_PG_DATABASE)",
        ));
    };
    let port = match std::env::var("PGDBA_PG_PORT") {
        Ok(p) => p.parse::<u16>().map_err(|_| {
            Failure::new(
                codes::USAGE,
                format!("PGDBA_PG_PORT={p}: not a port number"),
            )
        })?,
        Err(_) => 5432,
    };
    // A directory as the host means a Unix socket, as libpq reads it.
    let socket_dir = host.starts_with('/').then(|| PathBuf::from(&host));
    Ok(Server {
        name: format!("{host}:{port}"),
        host: if socket_dir.is_some() {
            "localhost".to_owned()
        } else {
            host.clone()
        },
        port,
        user: std::env::var("PGDBA_PG_USER").unwrap_or_else(|_| "postgres".to_owned()),
        password: std::env::var("PGDBA_PG_PASSWORD").ok(),
        database: std::env::var("PGDBA_PG_DATABASE").unwrap_or_else(|_| "postgres".to_owned()),
        socket_dir,
        // A server on this machine: its data directory, when the session may read it, is
        // found from `data_directory` by the checks that need it.
        data_dir: None,
        api_url: None,
    })
}

/// A data directory on this machine (a Docker volume's name is not one).
fn local_dir(d: &str) -> Option<PathBuf> {
    let p = PathBuf::from(d);
    (p.is_absolute() && p.is_dir()).then_some(p)
}
