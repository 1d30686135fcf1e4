//! `pgdba destroy`, and the production guard that `apply` shares with it.

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use std::path::Path;

use serde_json::json;

use super::Global;
use super::cluster::{Cluster, last_applied};
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::specs::load_one;
use crate::plan::Plan;
use crate::spec::model::ClusterSpec;
use crate::state::{ClusterState, StateStore};

/// Is the cluster production, by the spec being used or by any spec pgdba applied to it (a
/// label removed in the spec does not lift the guard)? `env: production`, in any case.
pub(super) fn is_production(spec: &ClusterSpec, state: Option<&ClusterState>) -> bool {
    let labelled = |labels: &std::collections::BTreeMap<String, String>| {
        labels.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("env") && v.trim().eq_ignore_ascii_case("production")
        })
    };
    let applied = state.into_iter().flat_map(|s| {
        s.applied_spec
            .iter()
            .chain(s.partial_applies.iter().map(|p| &p.spec))
            .filter_map(|v| serde_json::from_value::<ClusterSpec>(v.clone()).ok())
    });
    labelled(&spec.metadata.labels) || applied.into_iter().any(|s| labelled(&s.metadata.labels))
}

/// What in a plan destroys something: dropped or re-created roles, databases and extensions,
/// removed members, and anything that loses data.
fn destructive(plan: &Plan) -> Vec<String> {
    use crate::diff::{ChangeAction, Kind};
    plan.changes
        .iter()
        .filter(|c| {
            c.data_loss.is_some()
                || (matches!(c.action, ChangeAction::Delete | ChangeAction::Replace)
                    && matches!(
                        c.kind(),
                        Kind::Role | Kind::Database | Kind::Extension | Kind::Member
                    ))
        })
        .map(|c| c.address.to_string())
        .collect()
}

/// The production guard over a plan: its destructive changes need `--allow-production`.
pub(super) fn guard_production(
    spec: &ClusterSpec,
    state: Option<&ClusterState>,
    plan: &Plan,
    allowed: bool,
) -> Result<(), Failure> {
    let destroys = destructive(plan);
    if allowed || destroys.is_empty() || !is_production(spec, state) {
        return Ok(());
    }
    Err(Failure::new(
        codes::PROTECTED,
        format!(
            "cluster {} is labelled env: production (now or when it was applied), and the plan destroys: {}",
            plan.name,
            destroys.join(", ")
        ),
    )
    .hint("if that is intended, apply again with --allow-production"))
}

pub(super) async fn destroy(
    g: &Global,
    path: &Path,
    confirmed: bool,
    allow_production: bool,
) -> Result<Outcome, Failure> {
    let loaded = load_one(path, "destroy")?;
    let name = loaded.spec.metadata.name.clone();
    let store = StateStore::new(&g.state_dir);
    let state = store.load(&name)?;
    // Whatever the flags: pgdba destroys only what it created.
    if loaded.spec.is_adopted()
        || state
            .as_ref()
            .is_some_and(|s| s.provider == crate::providers::adopted::KIND)
    {
        return Err(super::adopt::refuse_destroy(&name));
    }
    if is_production(&loaded.spec, state.as_ref()) && !allow_production {
        return Err(Failure::new(
            codes::PROTECTED,
            format!("cluster {name} is labelled env: production (now or when it was applied); pgdba does not destroy it"),
        )
        .hint("if you really mean it, add --allow-production"));
    }
    if !confirmed {
        return Err(Failure::new(
            codes::CONFIRMATION_REQUIRED,
            format!("destroy removes every member, the DCS and all data of cluster {name}"),
        )
        .hint("add --confirm"));
    }
    let _lock = store.lock(&name, "destroy")?;
    let Some(state) = store.load(&name)? else {
        return Err(Failure::new(
            codes::NOT_MANAGED,
            format!(
                "there is no state for cluster {name} in {}: pgdba did not create it",
                g.state_dir.display()
            ),
        ));
    };
    // What pgdba created is where the state says it is, laid out as pgdba last applied it: a
    // data_dir edited in the spec since must not make destroy delete the new path.
    let recorded = last_applied(&state).unwrap_or_else(|| loaded.spec.clone());
    let cluster = Cluster::new(&recorded);
    cluster
        .trust_hosts(Some(&state), &Default::default())
        .await?;
    let location = cluster.provider.location();
    if let Some(dir) = &state.data_dir
        && Path::new(dir) != Path::new(&location)
    {
        return Err(Failure::new(
            codes::STATE_ERROR,
            format!(
                "the state of cluster {name} records {dir}, but its applied spec lays it out in {location}; nothing was removed"
            ),
        ));
    }
    cluster
        .provider
        .destroy(&state.lineage)
        .await
        .map_err(|e| Failure::new(codes::DESTROY_FAILED, crate::error_chain(&e)))?;
    store.remove(&name)?;
    let data = json!({ "cluster": name, "destroyed": { "members": state.members.iter().map(|m| &m.name).collect::<Vec<_>>(), "data_dir": location } });
    Ok(Outcome::ok(
        data,
        format!(
            "Destroyed cluster {name}: {} members, its etcd and what pgdba created in {location}.\n",
            state.members.len(),
        ),
    ))
}
