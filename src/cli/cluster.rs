//! One cluster's engine parts, and what `plan` and `apply` share: observing it, its
//! credentials, the refusals before a plan is trusted, and planning it.

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::commands::Failure;
use super::commands::codes;
use crate::diff::Managed;
use crate::observe::{self, model::Observation};
use crate::patroni;
use crate::plan::{self, Plan};
use crate::providers::{self, Credentials, Provider};
use crate::roles::SUPERUSER;
use crate::spec::{LoadedSpec, model::ClusterSpec};
use crate::state::{ClusterState, StateError, StateStore};

/// One cluster's engine parts, resolved from its spec.
pub(super) struct Cluster {
    pub(super) spec: ClusterSpec,
    pub(super) provider: Box<dyn Provider>,
    role_secrets: std::sync::OnceLock<crate::secret::RoleSecrets>,
    /// The secrets of `spec.backup` and `spec.restore_from`, read once; the provider holds a
    /// copy to write them into the members' pgBackRest configuration.
    backup_secrets: crate::secret::BackupSecrets,
}

/// The host keys pgdba trusts: those `state` recorded, and those a plan being applied showed
/// (`planned`, trusted on first use).
pub(super) fn trusted_keys(
    state: Option<&ClusterState>,
    planned: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let mut keys = state.map(|s| s.host_keys.clone()).unwrap_or_default();
    keys.extend(planned.iter().map(|(k, v)| (k.clone(), v.clone())));
    keys
}

impl Cluster {
    pub(super) fn new(spec: &ClusterSpec) -> Cluster {
        let backup_secrets = crate::secret::BackupSecrets::resolve(spec);
        Cluster {
            spec: spec.clone(),
            provider: providers::for_spec(spec, &backup_secrets),
            role_secrets: std::sync::OnceLock::new(),
            backup_secrets,
        }
    }

    /// The spec's role passwords, read once for the whole run.
    pub(super) fn role_secrets(&self) -> &crate::secret::RoleSecrets {
        self.role_secrets
            .get_or_init(|| crate::secret::RoleSecrets::resolve(&self.spec))
    }

    pub(super) fn name(&self) -> &str {
        &self.spec.metadata.name
    }

    pub(super) fn topology(&self) -> &providers::Topology {
        self.provider.topology()
    }

    /// Hand the provider the host keys `state` trusts, and refuse (`HOST_KEY_CHANGED`) when a
    /// host offers another key than the one trusted: nothing is sent to such a host.
    /// `planned`: the keys a plan being applied showed, trusted too.
    pub(super) async fn trust_hosts(
        &self,
        state: Option<&ClusterState>,
        planned: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Failure> {
        self.provider.trust_host_keys(&trusted_keys(state, planned));
        self.provider.check_hosts().await.map_err(|e| {
            Failure::new(codes::HOST_KEY_CHANGED, format!("cluster {}: {e}", self.name()))
                .hint("a host whose key changes may be another machine answering at its address; make sure it is the host you meant before trusting its new key")
        })
    }

    /// What this cluster would share with `other` on this machine.
    pub(super) fn conflicts_with(&self, other: &Cluster) -> Vec<String> {
        providers::conflicts(
            &self.provider.claims(),
            other.name(),
            &other.provider.claims(),
        )
    }
}

const OBSERVE_TIMEOUT: Duration = Duration::from_secs(3);

fn patroni_reader() -> Result<patroni::Reader, Failure> {
    patroni::Reader::new(OBSERVE_TIMEOUT)
        .map_err(|e| Failure::new(codes::INTERNAL, crate::error_chain(&e)))
}

/// What the state says pgdba manages.
pub(super) fn managed(state: Option<&ClusterState>) -> Managed {
    state.map_or_else(Managed::default, |s| Managed {
        parameters: s.managed_parameters.clone(),
        roles: s.managed_roles.clone(),
        databases: s.managed_databases.clone(),
        extensions: s.managed_extensions.clone(),
    })
}

/// The secrets to check against the cluster's password verifiers (pgdba's own roles', and
/// those the spec names), and the databases whose extensions matter. Secrets stay in memory.
fn needs(
    spec: &ClusterSpec,
    role_secrets: &crate::secret::RoleSecrets,
    backup_secrets: &crate::secret::BackupSecrets,
    creds: Option<&Credentials>,
    managed: &Managed,
    memo: crate::pg::scram::Memo,
    mut notes: Option<&mut Vec<String>>,
) -> Result<observe::sql::Needs, Failure> {
    let mut needs = observe::sql::Needs {
        memo,
        archiver: spec.spec.backup.is_some(),
        ..Default::default()
    };
    if let Some(c) = creds {
        for r in crate::roles::needed(spec) {
            if let Some(secret) = c.get(r.secret) {
                needs.secrets.insert(r.name.to_owned(), secret.to_owned());
            }
        }
    }
    for (name, value) in role_secrets.values() {
        needs.secrets.insert(name.to_owned(), value.to_owned());
    }
    // Drift goes on without a password it cannot read (that one is not checked); plan and
    // apply cannot.
    for (name, e) in role_secrets.errors() {
        match notes.as_deref_mut() {
            Some(n) => n.push(format!("password of role {name} not checked: {e}")),
            None => {
                return Err(Failure::new(
                    codes::SECRET_UNAVAILABLE,
                    format!("password of role {name}: {e}"),
                ));
            }
        }
    }
    // The backup repository's secrets go into the members' pgBackRest configuration: without
    // one, no member's configuration can be compared or written.
    for (field, e) in backup_secrets.errors() {
        match notes.as_deref_mut() {
            Some(n) => n.push(format!(
                "{field} cannot be read, so the members' pgBackRest configuration is not checked: {e}"
            )),
            None => {
                return Err(Failure::new(codes::SECRET_UNAVAILABLE, format!("{field}: {e}"))
                    .hint(format!("make {field} readable by pgdba (set the environment variable, or create the file), then run again")));
            }
        }
    }
    let mut dbs: BTreeSet<String> = spec
        .spec
        .databases
        .iter()
        .filter(|d| !d.extensions.is_empty())
        .map(|d| d.name.clone())
        .collect();
    dbs.extend(
        managed
            .extensions
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(d, _)| d.clone()),
    );
    needs.extension_dbs = dbs.into_iter().collect();
    // Sizes for what a plan may destroy: managed databases that left the spec, and those
    // whose encoding or locale the spec fixes (a change there re-creates them).
    needs.size_dbs = crate::diff::sql::databases_left(spec, managed)
        .into_iter()
        .cloned()
        .chain(
            spec.spec
                .databases
                .iter()
                .filter(|d| d.encoding.is_some() || d.locale.is_some())
                .map(|d| d.name.clone()),
        )
        .collect();
    Ok(needs)
}

/// Observe for plan or apply; the password checks that matched are remembered in the state
/// dir (`scram::Memo`), so the next plan does not pay for them again.
pub(super) async fn observe_cluster(
    store: &StateStore,
    c: &Cluster,
    creds: Option<&Credentials>,
    managed: &Managed,
) -> Result<Observation, Failure> {
    let memo = store.scram_memo(c.name())?;
    let before = memo.entries().clone();
    let mut keep = memo.clone();
    let obs = observe_with(c, creds, managed, memo, false).await?;
    if let Some(sql) = &obs.sql
        && sql.matched != before
        && store.load(c.name())?.is_some()
    {
        keep.keep(sql.matched.clone());
        store.save_scram_memo(c.name(), &keep)?;
    }
    Ok(obs)
}

/// `lenient`: a secret that cannot be read is a note (drift), not an error (plan, apply).
pub(super) async fn observe_with(
    c: &Cluster,
    creds: Option<&Credentials>,
    managed: &Managed,
    memo: crate::pg::scram::Memo,
    lenient: bool,
) -> Result<Observation, Failure> {
    let mut secret_notes = Vec::new();
    let client = patroni_reader()?;
    let mut params: BTreeSet<String> = c.spec.spec.postgres.parameters.keys().cloned().collect();
    params.extend(managed.parameters.iter().cloned());
    let params: Vec<String> = params.into_iter().collect();
    let needs = needs(
        &c.spec,
        c.role_secrets(),
        &c.backup_secrets,
        creds,
        managed,
        memo,
        lenient.then_some(&mut secret_notes),
    )?;
    let ctx = observe::Context {
        provider: c.provider.as_ref(),
        patroni: &client,
        superuser: creds.map(|c| (SUPERUSER, c.superuser.as_str())),
        etcd: creds.and_then(Credentials::etcd_auth),
        timeout: OBSERVE_TIMEOUT,
        needs: &needs,
        backup: c.spec.spec.backup.is_some(),
    };
    let mut obs = observe::observe(&ctx, &params).await;
    obs.notes.extend(secret_notes);
    Ok(obs)
}

fn credentials_of(s: &crate::state::Secrets) -> Credentials {
    Credentials {
        superuser: s.superuser_password.clone(),
        replication: s.replication_password.clone(),
        rewind: s.rewind_password.clone(),
        restapi: s.restapi_password.clone(),
        etcd: s.etcd_password.clone(),
        pooler: s.pooler_password.clone(),
    }
}

/// pgdba's own passwords for a cluster, never made anew: once a cluster has a state, its
/// secrets file must be there and whole (pgdba does not generate new passwords for a cluster
/// that runs with the old ones). `None` for a cluster pgdba has not created yet.
pub(super) fn credentials(
    store: &StateStore,
    cluster: &str,
    state: Option<&ClusterState>,
) -> Result<Option<Credentials>, Failure> {
    let path = store.secrets_path(cluster)?;
    let missing = |what: String| {
        Failure::new(
            codes::SECRETS_MISSING,
            format!("cluster {cluster}: {what}; pgdba will not make new passwords for a cluster that runs with the old ones"),
        )
        .hint(format!(
            "restore {} (mode 0600) from your backup of the state dir",
            path.display()
        ))
    };
    match store.read_secrets(cluster) {
        Ok(Some(s)) => Ok(Some(credentials_of(&s))),
        Ok(None) if state.is_some() => Err(missing(format!(
            "the state exists but its secrets file {} is missing",
            path.display()
        ))),
        Ok(None) => Ok(None),
        Err(e @ StateError::CorruptSecrets { .. }) => Err(missing(crate::error_chain(&e))),
        Err(e) => Err(e.into()),
    }
}

/// A new cluster's passwords, generated once into the 0600 secrets file.
pub(super) fn new_credentials(store: &StateStore, cluster: &str) -> Result<Credentials, Failure> {
    Ok(credentials_of(&store.secrets(cluster)?))
}

/// The cluster runs (or its etcd exists) but the state dir has no state for it: writing a new
/// state would start a second lineage for it, with new passwords.
pub(super) fn refuse_unmanaged(
    store: &StateStore,
    cluster: &Cluster,
    state: Option<&ClusterState>,
    obs: &Observation,
) -> Result<(), Failure> {
    if state.is_some() || !(obs.dcs.exists || crate::diff::cluster_exists(obs)) {
        return Ok(());
    }
    let prev = store.previous_path(&obs.cluster)?;
    Err(Failure::new(
        codes::EXISTS_UNMANAGED,
        format!(
            "cluster {} exists (its etcd or members are there) but {} has no state for it; pgdba will not start a new state for a cluster it cannot prove is its own",
            obs.cluster,
            store.dir().display()
        ),
    )
    .hint(format!(
        "restore its state file{}; or, if it is the remains of a first apply that failed, remove {}",
        if prev.exists() {
            format!(" (the previous one is {})", prev.display())
        } else {
            String::new()
        },
        cluster.provider.remains()
    )))
}

pub(super) struct Planned {
    pub(super) cluster: Cluster,
    pub(super) loaded_path: PathBuf,
    pub(super) spec_hash: String,
    pub(super) state: Option<ClusterState>,
    pub(super) observation: Observation,
    pub(super) plan: Plan,
}

/// A plan is only as good as what it saw: with a part that runs but did not answer, it could
/// say "no changes" (or act) on facts it does not have. Refused, naming what did not answer;
/// the partial plan goes with the error for people to read.
///
/// One exception: hosts the provider cannot log in to (`SSH`), while the DCS answered. What
/// runs there is as Patroni's keys say, the plan notes each such host, and its actions fail
/// when applied while the others run (the state records the remainder).
pub(super) fn require_complete(obs: &Observation, plan: &Plan) -> Result<(), Failure> {
    if obs.is_complete() {
        return Ok(());
    }
    let hosts_down: Vec<&crate::diff::Address> = obs
        .unreachable
        .iter()
        .filter(|u| u.source == crate::observe::model::HOST_UNREACHABLE)
        .map(|u| &u.address)
        .collect();
    if obs.dcs.healthy
        && obs.patroni.is_some()
        && obs
            .unreachable
            .iter()
            .all(|u| hosts_down.contains(&&u.address))
    {
        return Ok(());
    }
    let what: Vec<String> = obs
        .unreachable
        .iter()
        .map(|u| format!("{} ({}): {}", u.address, u.source, u.reason))
        .collect();
    Err(Failure::new(
        codes::UNREACHABLE,
        format!(
            "cluster {}: the observation is incomplete, so no plan can be trusted: {}",
            plan.name,
            what.join("; ")
        ),
    )
    .hint("find out why it does not answer (a stopped or overloaded process, a network problem); plan again once it does")
    .data(json!({ "unreachable": obs.unreachable, "partial_plan": plan })))
}

/// What the plan's actions need from the provider is there (free ports, programs, a host's
/// disk and clock).
pub(super) async fn preflight(cluster: &Cluster, plan: &Plan) -> Result<(), Failure> {
    cluster
        .provider
        .preflight(plan)
        .await
        .map_err(|e| match &e {
            providers::ProviderError::PortInUse(_) => {
                Failure::new(codes::PORT_IN_USE, crate::error_chain(&e))
                    .hint("stop what holds the port, or choose other ports in the spec")
            }
            providers::ProviderError::InUse(_) => {
                Failure::new(codes::IN_USE, crate::error_chain(&e))
            }
            _ => Failure::new(codes::PREFLIGHT_FAILED, crate::error_chain(&e)),
        })
}

/// Two members that accept writes (or one the DCS does not name): whatever pgdba did next could
/// pick the wrong one. Refused with what pgdba knows.
pub(super) fn refuse_split_brain(obs: &Observation, plan: &Plan) -> Result<(), Failure> {
    let Some(message) = crate::drift::split_brain(obs) else {
        return Ok(());
    };
    Err(Failure::new(codes::SPLIT_BRAIN, format!("cluster {}: {message}", plan.name))
        .hint("stop the PostgreSQL that should not lead (its writes since it diverged are on its own timeline), then plan again; `pgdba drift` shows the same")
        .data(json!({ "partial_plan": plan })))
}

/// The spec pgdba last applied to a cluster, even in part: the newest partial apply's, else the
/// last complete one's. What lays the cluster out as it is.
pub(super) fn last_applied(state: &ClusterState) -> Option<ClusterSpec> {
    state
        .partial_applies
        .last()
        .map(|p| &p.spec)
        .or(state.applied_spec.as_ref())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Another cluster of the state dir already uses this spec's directory or a port of it: a plan
/// would take that cluster's etcd or members for this one's.
fn refuse_shared_resources(store: &StateStore, cluster: &Cluster) -> Result<(), Failure> {
    let mut problems = Vec::new();
    for other in store.list()? {
        if other.cluster == cluster.name() {
            continue;
        }
        let Some(state) = store.load(&other.cluster)? else {
            continue;
        };
        if let Some(spec) = last_applied(&state) {
            problems.extend(cluster.conflicts_with(&Cluster::new(&spec)));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        codes::IN_USE_BY_ANOTHER_CLUSTER,
        format!(
            "cluster {} would share what another cluster in {} uses: {}",
            cluster.name(),
            store.dir().display(),
            problems.join("; ")
        ),
    )
    .hint(format!(
        "give this cluster its own {} data_dir and ports",
        cluster.provider.spec_section()
    )))
}

pub(super) async fn plan_one(
    store: &StateStore,
    loaded: &LoadedSpec,
    creds: Option<&Credentials>,
) -> Result<Planned, Failure> {
    let cluster = Cluster::new(&loaded.spec);
    let state = store.load(cluster.name())?;
    cluster
        .trust_hosts(state.as_ref(), &Default::default())
        .await?;
    let managed = managed(state.as_ref());
    let creds = match creds {
        Some(c) => Some(c.clone()),
        None => credentials(store, cluster.name(), state.as_ref())?,
    };
    refuse_shared_resources(store, &cluster)?;
    let observation = observe_cluster(store, &cluster, creds.as_ref(), &managed).await?;
    refuse_unmanaged(store, &cluster, state.as_ref(), &observation)?;
    let mut plan = plan::build(&cluster.spec, cluster.topology(), &managed, &observation);
    plan.host_keys = cluster.provider.untrusted_host_keys();
    require_complete(&observation, &plan)?;
    refuse_split_brain(&observation, &plan)?;
    preflight(&cluster, &plan).await?;
    Ok(Planned {
        cluster,
        loaded_path: loaded.path.clone(),
        spec_hash: loaded.source_hash.clone(),
        state,
        observation,
        plan,
    })
}
