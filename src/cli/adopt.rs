//! `cluster connect` (adopt a running Patroni cluster pgdba did not create) and
//! `cluster forget` (drop an adopted cluster from the state, touching nothing).
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use crate::ops::adopt::{self, AdoptError};
use crate::providers::adopted::KIND as ADOPTED;
use crate::state::{ClusterState, HistoryEntry, StateStore};

pub(super) struct ConnectArgs {
    pub(super) patroni_url: String,
    pub(super) name: String,
    pub(super) pg_host: Option<String>,
    pub(super) pg_port: Option<u16>,
    pub(super) password_env: String,
    pub(super) write_spec: Option<PathBuf>,
}

fn preflight_failure(e: &AdoptError) -> Failure {
    let code = match e {
        AdoptError::Patroni { .. } => codes::PATRONI_UNREACHABLE,
        AdoptError::Postgres { .. } => codes::UNREACHABLE,
        AdoptError::Replication(_) => codes::REPLICATION_UNHEALTHY,
        AdoptError::Unsupported(_) => codes::UNSUPPORTED,
    };
    Failure::new(code, format!("pre-flight: {e}"))
}

pub(super) async fn connect(g: &Global, a: ConnectArgs) -> Result<Outcome, Failure> {
    crate::state::validate_cluster_name(&a.name)
        .map_err(|e| Failure::new(codes::USAGE, e.to_string()))?;
    let store = StateStore::new(&g.state_dir);
    if let Some(s) = store.load(&a.name)? {
        return Err(Failure::new(
            codes::EXISTS,
            format!(
                "{} already has a cluster {} ({} provider)",
                store.dir().display(),
                a.name,
                s.provider
            ),
        )
        .hint("choose another --name, or `pgdba cluster forget` the adopted one first"));
    }
    let password = std::env::var(&a.password_env).map_err(|_| {
        Failure::new(
            codes::USAGE,
            format!(
                "{} is not set: pgdba needs the password of the cluster's superuser postgres",
                a.password_env
            ),
        )
        .hint("export PGPASSWORD (or name another variable with --password-env)")
    })?;
    let spec_path = a
        .write_spec
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.yaml", a.name)));
    if spec_path.exists() {
        return Err(Failure::new(
            codes::EXISTS,
            format!(
                "{} exists; pgdba will not overwrite it",
                spec_path.display()
            ),
        )
        .hint("name another file with --write-spec"));
    }
    let reader = crate::patroni::Reader::new(Duration::from_secs(5))
        .map_err(|e| Failure::new(codes::INTERNAL, crate::error_chain(&e)))?;
    let leader_at = a.pg_host.clone().map(|h| (h, a.pg_port));
    let found = adopt::discover(&reader, &a.patroni_url, leader_at.clone(), &password)
        .await
        .map_err(|e| preflight_failure(&e))?;
    let (doc, notes) =
        adopt::spec_document(&a.name, &found, leader_at).map_err(|e| preflight_failure(&e))?;
    let mut text = format!(
        "# The spec of cluster {}, adopted by `pgdba cluster connect` from {} at {}.\n\
         # pgdba manages it through Patroni's REST API and SQL only; it never starts, stops or\n\
         # removes its processes, and `pgdba destroy` refuses it.\n",
        a.name,
        a.patroni_url,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for n in &notes {
        text.push_str(&format!("# note: {n}\n"));
    }
    text.push_str(
        &serde_yaml::to_string(&doc).map_err(|e| Failure::new(codes::INTERNAL, e.to_string()))?,
    );
    // The written spec must load as pgdba reads every spec.
    if let Err(d) = crate::spec::load_str(&spec_path.display().to_string(), text.as_bytes()) {
        return Err(super::specs::diagnostics_failure(&d).hint(
            "the cluster holds something pgdba cannot describe in a spec yet; it was not adopted",
        ));
    }
    crate::state::write_private(&spec_path, text.as_bytes())?;
    let loaded = super::specs::load_one(&spec_path, "cluster connect")?;
    let _lock = store.lock(&a.name, "cluster connect")?;
    store.create_adopted_secrets(&a.name, &password)?;
    let mut state = ClusterState::new(&a.name, ADOPTED);
    state.members = match &loaded.spec.spec.provider {
        crate::spec::model::Provider::Adopted(p) => p
            .members
            .iter()
            .map(|m| crate::state::Member {
                name: m.name.clone(),
                host: m.host.clone(),
                port: m.port,
                api_url: m.api_url.clone(),
                data_dir: String::new(),
                socket_dir: String::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    state.spec_hash = Some(loaded.source_hash.clone());
    state.applied_spec = serde_json::to_value(&loaded.spec).ok();
    state.leader = Some(found.leader.clone());
    super::apply::manage_what_the_spec_names(&mut state, &loaded.spec);
    store.save(&mut state)?;
    let summary = format!(
        "adopted cluster {} ({} members, leader {}) from {}",
        a.name,
        found.members.len(),
        found.leader,
        a.patroni_url
    );
    let data = json!({
        "cluster": a.name,
        "adopted": true,
        "spec": spec_path.display().to_string(),
        "leader": found.leader,
        "postgres_version": found.major,
        "members": found.members.iter().map(|m| json!({
            "name": m.name, "role": m.role, "state": m.state, "host": m.host, "port": m.port,
            "api_url": m.api_url,
        })).collect::<Vec<_>>(),
        "roles": loaded.spec.spec.roles.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        "databases": loaded.spec.spec.databases.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
        "notes": notes,
    });
    if let Err(e) = store.record(
        &a.name,
        HistoryEntry::now("cluster connect", true, summary.clone(), data.clone()),
    ) {
        tracing::warn!("could not record the adoption in the history: {e}");
    }
    let mut human = format!(
        "{summary}\nspec written to {} (plan it: pgdba plan -f {} --detailed-exitcode)\n",
        spec_path.display(),
        spec_path.display()
    );
    for n in &notes {
        human.push_str(&format!("note: {n}\n"));
    }
    Ok(Outcome::ok(data, human))
}

pub(super) fn forget(g: &Global, name: &str) -> Result<Outcome, Failure> {
    crate::state::validate_cluster_name(name)
        .map_err(|e| Failure::new(codes::USAGE, e.to_string()))?;
    let store = StateStore::new(&g.state_dir);
    let _lock = store.lock(name, "cluster forget")?;
    let Some(state) = store.load(name)? else {
        return Err(Failure::new(
            codes::NOT_FOUND,
            format!("{} has no cluster {name}", store.dir().display()),
        ));
    };
    if state.provider != ADOPTED {
        return Err(Failure::new(
            codes::REFUSED,
            format!(
                "cluster {name} was created by pgdba ({} provider): forgetting it would leave its processes and data with nothing that manages them",
                state.provider
            ),
        )
        .hint("`pgdba destroy -f SPEC --confirm` removes it"));
    }
    store.remove(name)?;
    Ok(Outcome::ok(
        json!({ "cluster": name, "forgotten": true, "members": state.members.len() }),
        format!(
            "Forgot cluster {name}; its {} members run on, untouched.\n",
            state.members.len()
        ),
    ))
}

/// `destroy` of an adopted cluster: refused, whatever the flags.
pub(super) fn refuse_destroy(name: &str) -> Failure {
    Failure::new(
        codes::ADOPTED,
        format!("cluster {name} is adopted: pgdba did not create it and will not destroy it"),
    )
    .hint(format!(
        "`pgdba cluster forget {name}` removes it from pgdba's state and leaves it running"
    ))
    .data(Value::Null)
}
