//! `cluster status`, `cluster list`, `cluster init`, `cluster connect` and `cluster forget`.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use serde_json::json;

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::ClusterArg;
use crate::output::Format;
use crate::state::StateStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitProvider {
    Local,
    Docker,
}

/// `cluster init`: where the new cluster runs, and for `local` where its directories and ports
/// are (each picked when not given).
#[derive(Debug, Clone, clap::Args)]
pub struct InitPlacement {
    /// Where it runs.
    #[arg(long, value_enum)]
    pub provider: InitProvider,
    /// local: the root of its directories (etcd, each member's config, logs and PGDATA)
    /// [default: /var/lib/pgdba/NAME].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// local: member 0's PostgreSQL port; member i listens on PORT + i [default: the first free
    /// from 15432, in steps of 100].
    #[arg(long)]
    pub pg_port: Option<u16>,
    /// local: member 0's Patroni REST API port; member i's is PORT + i [default: the first free
    /// from 18008, in steps of 100].
    #[arg(long)]
    pub api_port: Option<u16>,
    /// local: etcd's client port (its peer port is PORT + 1) [default: the first free from
    /// 12379, in steps of 100].
    #[arg(long)]
    pub etcd_port: Option<u16>,
}

pub(super) async fn status(g: &Global, c: &ClusterArg) -> Result<Outcome, Failure> {
    let k = match super::target::resolve(g, c).await? {
        super::target::Target::Cluster(k) => k,
        super::target::Target::Plain(s) => {
            return Err(super::target::no_patroni("cluster status", &s.name));
        }
    };
    let s = super::leader::read_status(&k).await?;
    let rows: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                format!("{}:{}", m.host, m.port),
                m.role.clone(),
                m.state.clone(),
                m.timeline.map_or("-".to_owned(), |t| t.to_string()),
                m.lag_bytes.map_or("-".to_owned(), |l| l.to_string()),
                m.lag_seconds.map_or("-".to_owned(), |l| format!("{l:.1}")),
                if m.pending_restart { "yes" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let mut human = format!(
        "cluster {} ({}): leader {}{}; DCS {}\n\n",
        k.name,
        k.state.provider,
        s.leader.as_deref().unwrap_or("(none)"),
        if s.paused { ", PAUSED" } else { "" },
        match s.dcs_healthy {
            Some(true) => "healthy",
            Some(false) => "NOT HEALTHY",
            None => "unknown",
        }
    );
    human.push_str(&crate::output::columns(
        &[
            "MEMBER",
            "ADDRESS",
            "ROLE",
            "STATE",
            "TL",
            "LAG_BYTES",
            "LAG_S",
            "PENDING_RESTART",
        ],
        &rows,
    ));
    if let Some(sw) = &s.scheduled_switchover {
        human.push_str(&format!("\nscheduled switchover: {sw}\n"));
    }
    let mut data = serde_json::to_value(&s).unwrap_or(serde_json::Value::Null);
    if let Some(o) = data.as_object_mut() {
        o.insert("cluster".to_owned(), json!(k.name));
        o.insert("provider".to_owned(), json!(k.state.provider));
    }
    Ok(Outcome::ok(data, human))
}

pub(super) fn list(g: &Global) -> Result<Outcome, Failure> {
    let store = StateStore::new(&g.state_dir);
    let mut clusters = Vec::new();
    let mut rows = Vec::new();
    for summary in store.list()? {
        let Some(state) = store.load(&summary.cluster)? else {
            continue;
        };
        let spec = super::cluster::last_applied(&state);
        let subnet = spec.as_ref().and_then(|s| match &s.spec.provider {
            crate::spec::model::Provider::Docker(d) => d.subnet.clone(),
            _ => None,
        });
        let ports: Vec<u16> = state.members.iter().map(|m| m.port).collect();
        rows.push(vec![
            state.cluster.clone(),
            state.provider.clone(),
            state.members.len().to_string(),
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
            subnet.clone().unwrap_or_else(|| "-".to_owned()),
            state.leader.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
        clusters.push(json!({
            "name": state.cluster,
            "provider": state.provider,
            "members": state.members.iter().map(|m| json!({
                "name": m.name, "host": m.host, "port": m.port, "api_url": m.api_url,
            })).collect::<Vec<_>>(),
            "ports": ports,
            "subnet": subnet,
            "dcs": state.dcs.endpoints,
            "pooler": state.pooler,
            "updated_at": state.updated_at,
        }));
    }
    let human = if rows.is_empty() {
        format!("no clusters in {}\n", store.dir().display())
    } else {
        crate::output::columns(
            &[
                "CLUSTER", "PROVIDER", "MEMBERS", "PORTS", "SUBNET", "LEADER",
            ],
            &rows,
        )
    };
    Ok(Outcome::ok(json!({ "clusters": clusters }), human))
}

/// `cluster init`: writes a commented spec for a new cluster (never over an existing file),
/// checked by the loader, then plans and applies it as `apply -f` does. The spec stays when the
/// apply is declined or fails: it is the user's file from then on.
pub(super) async fn init(
    g: &Global,
    format: Format,
    placement: InitPlacement,
    replicas: u32,
    name: &str,
    out: Option<PathBuf>,
    auto_approve: bool,
) -> Result<Outcome, Failure> {
    use crate::spec::edit::{self, NewProvider, NewSpec, Spelling};
    super::replica::require_approval(auto_approve, "cluster init")?;
    crate::state::validate_cluster_name(name)
        .map_err(|e| Failure::new(codes::USAGE, e.to_string()))?;
    let local_flags = placement.data_dir.is_some()
        || placement.pg_port.is_some()
        || placement.api_port.is_some()
        || placement.etcd_port.is_some();
    if placement.provider == InitProvider::Docker && local_flags {
        return Err(Failure::new(
            codes::USAGE,
            "--data-dir, --pg-port, --api-port and --etcd-port are for --provider local; the \
             docker provider keeps data in volumes and publishes ports Docker picks",
        ));
    }
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{name}.yaml")));
    let refuse_existing = || {
        Failure::new(
            codes::REFUSED,
            format!(
                "{} already exists; cluster init does not overwrite it",
                out.display()
            ),
        )
        .hint(format!(
            "give another --out, or apply that spec with `pgdba apply -f {}`",
            out.display()
        ))
    };
    if std::fs::symlink_metadata(&out).is_ok() {
        return Err(refuse_existing());
    }
    let store = StateStore::new(&g.state_dir);
    if store.load(name)?.is_some() {
        return Err(Failure::new(
            codes::EXISTS,
            format!("{} already has a cluster {name}", store.dir().display()),
        )
        .hint(format!(
            "pick another --name; `pgdba state show {name}` shows the one there"
        )));
    }
    let spelling = Spelling::of_path(&out);
    let version = crate::spec::model::Postgres::default().version;
    let text = match placement.provider {
        InitProvider::Docker => NewSpec {
            name,
            provider: NewProvider::Docker,
            replicas,
            postgres_version: version,
        }
        .text(spelling),
        InitProvider::Local => {
            let data_dir = placement.data_dir.clone().unwrap_or_else(|| {
                PathBuf::from(crate::providers::local::layout::DEFAULT_ROOT).join(name)
            });
            // Patroni and etcd run elsewhere than here: a relative directory means this one.
            let data_dir = std::path::absolute(&data_dir).map_err(|e| {
                Failure::new(
                    codes::USAGE,
                    format!("--data-dir {}: {e}", data_dir.display()),
                )
            })?;
            let pick = |pg_port, api_port, etcd_port| {
                NewSpec {
                    name,
                    provider: NewProvider::Local {
                        data_dir: &data_dir,
                        pg_port,
                        api_port,
                        etcd_port,
                    },
                    replicas,
                    postgres_version: version,
                }
                .text(spelling)
            };
            local_ports(&store, &placement, &out, pick)?
        }
    };
    let created = edit::create_file(&out, &text).map_err(|e| match e {
        edit::EditError::Exists { .. } => refuse_existing(),
        edit::EditError::Invalid { .. } => {
            Failure::new(codes::INVALID_SPEC, crate::error_chain(&e))
        }
        _ => Failure::new(codes::IO_ERROR, crate::error_chain(&e)),
    })?;
    let provider = match placement.provider {
        InitProvider::Local => "local",
        InitProvider::Docker => "docker",
    };
    let mut data = serde_json::Map::new();
    data.insert("cluster".to_owned(), json!(name));
    data.insert("spec".to_owned(), json!(out.display().to_string()));
    data.insert("provider".to_owned(), json!(provider));
    data.insert("replicas".to_owned(), json!(created.spec.replicas));
    let wrote = format!(
        "Wrote {}: cluster {name} ({provider}), PostgreSQL {}, one primary and {replicas} {}.\n",
        out.display(),
        created.spec.postgres.version,
        if replicas == 1 { "replica" } else { "replicas" }
    );
    let result =
        super::apply::apply_spec(g, format, &out, auto_approve, super::apply::Allow::NOTHING).await;
    super::apply::ending_in_apply(result, data, wrote, |_, _| {
        format!(
            "the spec stays at {}: `pgdba apply -f {}` goes on from there (or delete it)",
            out.display(),
            out.display()
        )
    })
}

/// `cluster init --provider local`: the spec `spec_for(pg, api, etcd)` writes, with the ports
/// given, and for the others the provider's defaults moved up in steps of 100 until no cluster
/// in the state holds them and nothing on this machine listens on them.
fn local_ports(
    store: &StateStore,
    placement: &InitPlacement,
    out: &std::path::Path,
    spec_for: impl Fn(u16, u16, u16) -> String,
) -> Result<String, Failure> {
    use crate::providers::local::layout::{DEFAULT_API_PORT, DEFAULT_ETCD_PORT, DEFAULT_PG_PORT};
    use crate::providers::{Claim, conflicts};
    let label = out.display().to_string();
    let mut others = Vec::new();
    for s in store.list()? {
        if let Some(spec) = store
            .load(&s.cluster)?
            .as_ref()
            .and_then(super::cluster::last_applied)
        {
            others.push(super::cluster::Cluster::new(&spec));
        }
    }
    for step in 0..100u16 {
        let at = |given: Option<u16>, default: u16| {
            given.or_else(|| default.checked_add(step.checked_mul(100)?))
        };
        let (Some(pg), Some(api), Some(etcd)) = (
            at(placement.pg_port, DEFAULT_PG_PORT),
            at(placement.api_port, DEFAULT_API_PORT),
            at(placement.etcd_port, DEFAULT_ETCD_PORT),
        ) else {
            break;
        };
        let text = spec_for(pg, api, etcd);
        // A spec the loader refuses is written as it is not: `create_file` reports why.
        let Ok(spec) = crate::spec::load_str(&label, text.as_bytes()) else {
            return Ok(text);
        };
        let all_given = placement.pg_port.is_some()
            && placement.api_port.is_some()
            && placement.etcd_port.is_some();
        let cluster = super::cluster::Cluster::new(&spec);
        let ports: Vec<Claim> = cluster
            .provider
            .claims()
            .into_iter()
            .filter(|c| matches!(c, Claim::Port(..)))
            .collect();
        let held = others
            .iter()
            .any(|o| !conflicts(&ports, o.name(), &o.provider.claims()).is_empty());
        let busy = ports.iter().any(
            |c| matches!(c, Claim::Port(p, _) if !crate::providers::local::process::port_free(*p)),
        );
        if all_given || !(held || busy) {
            return Ok(text);
        }
    }
    Err(Failure::new(
        codes::PORT_IN_USE,
        "no free ports for the cluster from 15432, 18008 and 12379 up, in steps of 100",
    )
    .hint("give them with --pg-port, --api-port and --etcd-port"))
}
