//! Running commands: from parsed arguments to an `Outcome` (data for the JSON envelope, text
//! for people, an exit code). All IO of the CLI edge lives here; the engine never prints.

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Command, Global, StateCommand};
use crate::apply::{self, Recorder, Reporter};
use crate::diff::{Managed, fingerprint};
use crate::observe::{self, model::Observation};
use crate::output::{ErrorBody, Format, plan as plan_view, progress};
use crate::patroni;
use crate::plan::{
    self, Plan,
    saved::{SAVED_FORMAT, SavedPlan, StateRef},
};
use crate::providers::{self, Credentials, Provider};
use crate::roles::SUPERUSER;
use crate::spec::{self, LoadedSpec, model::ClusterSpec};
use crate::state::{ClusterState, StateError, StateStore};

/// What a command produced.
pub struct Outcome {
    pub data: Value,
    pub human: String,
    pub exit: u8,
    pub error: Option<ErrorBody>,
}

impl Outcome {
    pub(super) fn ok(data: Value, human: String) -> Outcome {
        Outcome {
            data,
            human,
            exit: 0,
            error: None,
        }
    }
}

/// A refusal or failure with a stable code (CONTRACT.md), and data to go with it.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
    pub data: Value,
}

impl Failure {
    pub(super) fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            hint: None,
            data: Value::Null,
        }
    }
    pub(super) fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
    pub(super) fn data(mut self, data: Value) -> Failure {
        self.data = data;
        self
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Failure {
        match &e {
            StateError::Locked { .. } => Failure::new("STATE_LOCKED", e.to_string()).hint(
                "wait for the other run to finish (a run that dies releases the lock at once)",
            ),
            StateError::LockLost { .. } => Failure::new("LOCK_LOST", crate::error_chain(&e)),
            _ => Failure::new("STATE_ERROR", crate::error_chain(&e)),
        }
    }
}

impl Failure {
    pub fn into_outcome(self) -> Outcome {
        Outcome {
            human: match &self.hint {
                Some(h) => format!("Error: {}\nHint: {h}\n", self.message),
                None => format!("Error: {}\n", self.message),
            },
            data: self.data,
            exit: 1,
            error: Some(ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
                hint: self.hint,
            }),
        }
    }
}

pub fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Validate { .. } => "validate",
        Command::Plan { .. } => "plan",
        Command::Apply { .. } => "apply",
        Command::Destroy { .. } => "destroy",
        Command::Drift { .. } => "drift",
        Command::State(StateCommand::List { .. }) => "state list",
        Command::State(StateCommand::Show { .. }) => "state show",
        Command::State(StateCommand::Unlock { .. }) => "state unlock",
    }
}

/// Which formats each command can print.
pub fn supports(c: &Command, f: Format) -> bool {
    match f {
        Format::Json | Format::Yaml | Format::Table => true,
        Format::Dot => matches!(c, Command::Plan { .. }),
        Format::Markdown => matches!(c, Command::Plan { .. }),
    }
}

pub async fn run(command: Command, g: &Global, format: Format) -> Outcome {
    let result = match command {
        Command::Validate { file, .. } => validate(&file),
        Command::Plan {
            file,
            out,
            detailed_exitcode,
            ..
        } => plan_cmd(g, format, &file, out.as_deref(), detailed_exitcode).await,
        Command::Apply {
            plan_file: Some(p),
            file,
            allow_data_loss,
            allow_production,
            ..
        } => {
            let allow = Allow {
                data_loss: allow_data_loss,
                production: allow_production,
            };
            apply_saved(g, format, &p, file.as_deref(), allow).await
        }
        Command::Apply {
            file: Some(f),
            auto_approve,
            allow_data_loss,
            allow_production,
            ..
        } => {
            let allow = Allow {
                data_loss: allow_data_loss,
                production: allow_production,
            };
            apply_spec(g, format, &f, auto_approve, allow).await
        }
        Command::Apply { .. } => Err(Failure::new(
            "USAGE",
            "apply needs -f SPEC or a saved plan file",
        )),
        Command::Destroy {
            file,
            confirm,
            allow_production,
            ..
        } => destroy(g, &file, confirm, allow_production).await,
        Command::Drift { file, fail_on, .. } => super::drift::run(g, &file, fail_on).await,
        Command::State(s) => state_cmd(g, s),
    };
    result.unwrap_or_else(Failure::into_outcome)
}

// ---------------------------------------------------------------------------------------------
// Specs

fn diagnostics_failure(diags: &[spec::Diagnostic]) -> Failure {
    let human: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    let files: BTreeSet<&str> = diags.iter().map(|d| d.file.as_str()).collect();
    Failure::new(
        "INVALID_SPEC",
        format!(
            "{} problem{} in {}:\n{}",
            diags.len(),
            if diags.len() == 1 { "" } else { "s" },
            files.into_iter().collect::<Vec<_>>().join(", "),
            human.join("\n")
        ),
    )
    .data(json!({
        "diagnostics": diags.iter().map(|d| json!({
            "file": d.file, "line": d.line, "column": d.column, "message": d.message,
        })).collect::<Vec<_>>()
    }))
}

pub(super) fn load_all(path: &Path) -> Result<Vec<LoadedSpec>, Failure> {
    let files = spec::discover(path).map_err(|d| diagnostics_failure(&[d]))?;
    let mut loaded = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        match spec::load_file(&f) {
            Ok(s) => loaded.push(s),
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(diagnostics_failure(&diags));
    }
    let mut names = BTreeSet::new();
    for s in &loaded {
        if !names.insert(s.spec.metadata.name.clone()) {
            return Err(Failure::new(
                "INVALID_SPEC",
                format!(
                    "{}: cluster name `{}` is used by another spec in {}",
                    s.path.display(),
                    s.spec.metadata.name,
                    path.display()
                ),
            ));
        }
    }
    // Two clusters of one fleet may not share a directory or a port.
    let clusters: Vec<Cluster> = loaded.iter().map(|s| Cluster::new(&s.spec)).collect();
    let mut clashes = Vec::new();
    for (i, a) in clusters.iter().enumerate() {
        for b in &clusters[i + 1..] {
            for c in a.conflicts_with(b) {
                clashes.push(format!(
                    "{}: {}: {c} ({})",
                    loaded[i].path.display(),
                    a.provider.spec_section(),
                    loaded
                        .iter()
                        .find(|s| s.spec.metadata.name == b.name())
                        .map_or_else(String::new, |s| s.path.display().to_string())
                ));
            }
        }
    }
    if !clashes.is_empty() {
        return Err(Failure::new(
            "INVALID_SPEC",
            format!(
                "{} clash{} between the specs in {}:\n{}",
                clashes.len(),
                if clashes.len() == 1 { "" } else { "es" },
                path.display(),
                clashes.join("\n")
            ),
        ));
    }
    Ok(loaded)
}

/// Runs `each` over a fleet's specs, at most `--parallelism` at once; results in spec order.
pub(super) async fn over_fleet<'s, T, Fut>(
    g: &Global,
    specs: &'s [LoadedSpec],
    each: impl Fn(&'s LoadedSpec) -> Fut,
) -> Vec<T>
where
    Fut: std::future::Future<Output = T>,
{
    let sem = tokio::sync::Semaphore::new(g.parallelism.max(1));
    let sem = &sem;
    futures::future::join_all(specs.iter().map(|s| {
        let work = each(s);
        async move {
            let _permit = sem.acquire().await;
            work.await
        }
    }))
    .await
}

/// A cluster of a fleet that could not be `what` (planned, checked): its entry in the
/// envelope's `errors`, and its line for people.
pub(super) fn fleet_error(spec: &LoadedSpec, f: &Failure, what: &str) -> (Value, String) {
    let name = &spec.spec.metadata.name;
    let file = spec.path.display();
    (
        json!({ "file": file.to_string(), "cluster": name, "code": f.code, "message": f.message }),
        format!(
            "cluster {name} ({file}): could not be {what}: {}: {}\n",
            f.code, f.message
        ),
    )
}

fn load_one(path: &Path, command: &str) -> Result<LoadedSpec, Failure> {
    let mut all = load_all(path)?;
    if all.len() != 1 {
        return Err(Failure::new(
            "USAGE",
            format!(
                "{command} takes one spec file; {} holds {}",
                path.display(),
                all.len()
            ),
        ));
    }
    Ok(all.remove(0))
}

fn validate(path: &Path) -> Result<Outcome, Failure> {
    let loaded = load_all(path)?;
    let names: Vec<Value> = loaded
        .iter()
        .map(|s| json!({ "file": s.path.display().to_string(), "cluster": s.spec.metadata.name }))
        .collect();
    let human = loaded
        .iter()
        .map(|s| {
            format!(
                "{}: valid (cluster {})\n",
                s.path.display(),
                s.spec.metadata.name
            )
        })
        .collect();
    Ok(Outcome::ok(json!({ "valid": true, "specs": names }), human))
}

// ---------------------------------------------------------------------------------------------
// Observation and planning

/// One cluster's engine parts, resolved from its spec.
pub(super) struct Cluster {
    pub(super) spec: ClusterSpec,
    pub(super) provider: Box<dyn Provider>,
}

impl Cluster {
    pub(super) fn new(spec: &ClusterSpec) -> Cluster {
        Cluster {
            spec: spec.clone(),
            provider: providers::for_spec(spec),
        }
    }

    fn name(&self) -> &str {
        &self.spec.metadata.name
    }

    pub(super) fn topology(&self) -> &providers::Topology {
        self.provider.topology()
    }

    /// What this cluster would share with `other` on this machine.
    fn conflicts_with(&self, other: &Cluster) -> Vec<String> {
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
        .map_err(|e| Failure::new("INTERNAL", crate::error_chain(&e)))
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
    creds: Option<&Credentials>,
    managed: &Managed,
    memo: crate::pg::scram::Memo,
    mut notes: Option<&mut Vec<String>>,
) -> Result<observe::sql::Needs, Failure> {
    let mut needs = observe::sql::Needs {
        memo,
        ..Default::default()
    };
    if let Some(c) = creds {
        for r in crate::roles::SYSTEM_ROLES {
            needs
                .secrets
                .insert(r.name.to_owned(), c.get(r.secret).to_owned());
        }
    }
    for r in &spec.spec.roles {
        if let Some(source) = &r.password {
            match crate::secret::resolve(source) {
                Ok(value) => {
                    needs.secrets.insert(r.name.clone(), value);
                }
                // Drift goes on without it (that password is not checked); plan and apply
                // cannot.
                Err(e) => match notes.as_deref_mut() {
                    Some(n) => n.push(format!("password of role {} not checked: {e}", r.name)),
                    None => {
                        return Err(Failure::new(
                            "SECRET_UNAVAILABLE",
                            format!("password of role {}: {e}", r.name),
                        ));
                    }
                },
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
async fn observe_cluster(
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
            "SECRETS_MISSING",
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
fn new_credentials(store: &StateStore, cluster: &str) -> Result<Credentials, Failure> {
    Ok(credentials_of(&store.secrets(cluster)?))
}

/// The cluster runs (or its etcd exists) but the state dir has no state for it: writing a new
/// state would start a second lineage for it, with new passwords.
fn refuse_unmanaged(
    store: &StateStore,
    state: Option<&ClusterState>,
    obs: &Observation,
) -> Result<(), Failure> {
    if state.is_some() || !(obs.dcs.exists || crate::diff::cluster_exists(obs)) {
        return Ok(());
    }
    let prev = store.previous_path(&obs.cluster)?;
    Err(Failure::new(
        "EXISTS_UNMANAGED",
        format!(
            "cluster {} exists (its etcd or members are there) but {} has no state for it; pgdba will not start a new state for a cluster it cannot prove is its own",
            obs.cluster,
            store.dir().display()
        ),
    )
    .hint(format!(
        "restore its state file{}; or, if it is the remains of a first apply that failed, remove its data_dir",
        if prev.exists() {
            format!(" (the previous one is {})", prev.display())
        } else {
            String::new()
        }
    )))
}

struct Planned {
    cluster: Cluster,
    loaded_path: PathBuf,
    spec_hash: String,
    state: Option<ClusterState>,
    observation: Observation,
    plan: Plan,
}

/// A plan is only as good as what it saw: with a part that runs but did not answer, it could
/// say "no changes" (or act) on facts it does not have. Refused, naming what did not answer;
/// the partial plan goes with the error for people to read.
fn require_complete(obs: &Observation, plan: &Plan) -> Result<(), Failure> {
    if obs.is_complete() {
        return Ok(());
    }
    let what: Vec<String> = obs
        .unreachable
        .iter()
        .map(|u| format!("{} ({}): {}", u.address, u.source, u.reason))
        .collect();
    Err(Failure::new(
        "UNREACHABLE",
        format!(
            "cluster {}: the observation is incomplete, so no plan can be trusted: {}",
            plan.name,
            what.join("; ")
        ),
    )
    .hint("find out why it does not answer (a stopped or overloaded process, a network problem); plan again once it does")
    .data(json!({ "unreachable": obs.unreachable, "partial_plan": plan })))
}

/// Two members that accept writes (or one the DCS does not name): whatever pgdba did next could
/// pick the wrong one. Refused with what pgdba knows.
fn refuse_split_brain(obs: &Observation, plan: &Plan) -> Result<(), Failure> {
    let Some(message) = crate::drift::split_brain(obs) else {
        return Ok(());
    };
    Err(Failure::new("SPLIT_BRAIN", format!("cluster {}: {message}", plan.name))
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
        "IN_USE_BY_ANOTHER_CLUSTER",
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

async fn plan_one(
    store: &StateStore,
    loaded: &LoadedSpec,
    creds: Option<&Credentials>,
) -> Result<Planned, Failure> {
    let cluster = Cluster::new(&loaded.spec);
    let state = store.load(cluster.name())?;
    let managed = managed(state.as_ref());
    let creds = match creds {
        Some(c) => Some(c.clone()),
        None => credentials(store, cluster.name(), state.as_ref())?,
    };
    refuse_shared_resources(store, &cluster)?;
    let observation = observe_cluster(store, &cluster, creds.as_ref(), &managed).await?;
    refuse_unmanaged(store, state.as_ref(), &observation)?;
    let plan = plan::build(&cluster.spec, cluster.topology(), &managed, &observation);
    require_complete(&observation, &plan)?;
    refuse_split_brain(&observation, &plan)?;
    cluster.provider.preflight(&plan).await.map_err(|e| {
        Failure::new("PORT_IN_USE", crate::error_chain(&e))
            .hint("stop what holds the port, or choose other ports in the spec")
    })?;
    Ok(Planned {
        cluster,
        loaded_path: loaded.path.clone(),
        spec_hash: loaded.source_hash.clone(),
        state,
        observation,
        plan,
    })
}

fn plan_data(plans: &[&Plan]) -> Value {
    json!({ "format_version": plan::FORMAT_VERSION, "clusters": plans })
}

fn saved_plan(p: &Planned) -> SavedPlan {
    let touched = p.plan.touched_addresses();
    SavedPlan {
        format: SAVED_FORMAT.to_owned(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        pgdba_version: env!("CARGO_PKG_VERSION").to_owned(),
        spec_path: p.loaded_path.display().to_string(),
        spec_hash: p.spec_hash.clone(),
        spec: p.cluster.spec.clone(),
        state: p.state.as_ref().map(|s| StateRef {
            lineage: s.lineage.clone(),
            serial: s.serial,
        }),
        fingerprints: fingerprint::fingerprints(&p.observation, touched.iter()),
        plan: p.plan.clone(),
        signature: None,
    }
}

/// A saved plan is written like the state: a temp file of mode 0600 in the same directory,
/// fsynced, renamed into place, the directory fsynced.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    crate::state::write_private(path, bytes)
        .map_err(|e| Failure::new("IO_ERROR", crate::error_chain(&e)))
}

async fn plan_cmd(
    g: &Global,
    format: Format,
    path: &Path,
    out: Option<&Path>,
    detailed: bool,
) -> Result<Outcome, Failure> {
    let specs = load_all(path)?;
    let store = StateStore::new(&g.state_dir);
    let results = over_fleet(g, &specs, |s| plan_one(&store, s, None)).await;
    // A fleet: one cluster that cannot be planned is reported, the others are still planned.
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for (spec, r) in specs.iter().zip(results) {
        match r {
            Ok(p) => planned.push(p),
            Err(f) if specs.len() == 1 => return Err(f),
            Err(f) => errors.push((spec, f)),
        }
    }
    if let Some(out) = out {
        if planned.len() != 1 {
            return Err(Failure::new(
                "USAGE",
                "--out saves the plan of one cluster; give one spec file",
            ));
        }
        let mut saved = saved_plan(&planned[0]);
        let key = store
            .plan_key(true)?
            .ok_or_else(|| Failure::new("STATE_ERROR", "no plan signing key"))?;
        saved.sign(&key);
        let bytes = serde_json::to_vec_pretty(&saved)
            .map_err(|e| Failure::new("INTERNAL", crate::error_chain(&e)))?;
        write_atomic(out, &bytes)?;
    }
    let plans: Vec<&Plan> = planned.iter().map(|p| &p.plan).collect();
    let pending = plans.iter().any(|p| !p.is_empty());
    let mut human = match format {
        Format::Markdown => {
            crate::output::markdown::render(&plans.iter().map(|p| (*p).clone()).collect::<Vec<_>>())
        }
        Format::Dot => plan_view::dot(&plans.iter().map(|p| (*p).clone()).collect::<Vec<_>>()),
        _ => plans
            .iter()
            .map(|p| plan_view::table(p))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if let Some(out) = out
        && format == Format::Table
    {
        human.push_str(&format!(
            "\nSaved the plan to {}. Apply exactly it with: pgdba apply {}\n",
            out.display(),
            out.display()
        ));
    }
    let mut data = plan_data(&plans);
    if !errors.is_empty() {
        let mut list = Vec::new();
        for (spec, f) in &errors {
            let (entry, line) = fleet_error(spec, f, "planned");
            list.push(entry);
            human.push('\n');
            human.push_str(&line);
        }
        data["errors"] = Value::Array(list);
        return Err(Failure::new(
            "PLAN_FAILED",
            format!(
                "{} of {} clusters could not be planned\n{}",
                errors.len(),
                specs.len(),
                human.trim_end()
            ),
        )
        .data(data));
    }
    let mut outcome = Outcome::ok(data, human);
    if detailed && pending {
        outcome.exit = 2;
    }
    Ok(outcome)
}

// ---------------------------------------------------------------------------------------------
// Apply

fn confirm(plan: &Plan) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new("APPROVAL_REQUIRED", "apply asks for approval, and stdin is not a terminal")
            .hint("review the plan, then run with --auto-approve, or save it with `plan --out` and apply that file"));
    }
    eprint!(
        "{}\nDo you want to perform these actions on cluster {}? Only 'yes' will be accepted: ",
        plan_view::table(plan),
        plan.name
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::new("CANCELLED", "apply cancelled"))
    }
}

/// What an apply is allowed to destroy.
#[derive(Debug, Clone, Copy)]
struct Allow {
    data_loss: bool,
    production: bool,
}

/// Where an apply runs: its options, the state store and the lock it holds.
struct ApplyRun<'a> {
    g: &'a Global,
    format: Format,
    store: &'a StateStore,
    lock: &'a crate::state::LockGuard,
}

async fn execute(
    run: &ApplyRun<'_>,
    cluster: &Cluster,
    spec_hash: &str,
    plan: &Plan,
    creds: &Credentials,
) -> Result<Outcome, Failure> {
    let (g, format, store) = (run.g, run.format, run.store);
    let state = match store.load(cluster.name())? {
        Some(s) => s,
        None => ClusterState::new(cluster.name(), cluster.provider.kind()),
    };
    let recorder = Recorder {
        store,
        lock: run.lock,
        state: Mutex::new(state),
    };
    // Each request within 10 s; a restart or a switchover, which Patroni answers once done,
    // within what its action has left.
    let auth = creds
        .restapi
        .as_ref()
        .map(|p| (crate::roles::RESTAPI_USER.to_owned(), p.clone()));
    let client = patroni::Client::new(Duration::from_secs(10), auth)
        .map_err(|e| Failure::new("INTERNAL", crate::error_chain(&e)))?;
    let ctx = apply::Context {
        spec: &cluster.spec,
        provider: cluster.provider.as_ref(),
        patroni: &client,
        creds,
        recorder: &recorder,
        gate_timeout: gate_timeout(&cluster.spec),
    };
    let bars;
    let reporter: &dyn Reporter =
        if format == Format::Table && std::io::stderr().is_terminal() && !plan.actions.is_empty() {
            bars = progress::Bars::new(plan.actions.len());
            &bars
        } else {
            &progress::Quiet
        };
    // Ctrl-C or SIGTERM: no new action starts, the running ones end, the state records what
    // was done, and the lock is released (when the guard drops on return).
    let interrupt = std::sync::Arc::new(apply::Interrupt::default());
    let listener = {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            interrupt.request();
        })
    };
    let result = apply::execute(plan, &ctx, g.parallelism, reporter, &interrupt).await;
    listener.abort();
    if result.succeeded() {
        let leader = current_leader(cluster, &client, creds).await;
        let applied = serde_json::to_value(&cluster.spec).ok();
        recorder
            .update(|s| {
                s.spec_hash = Some(spec_hash.to_owned());
                s.applied_spec = applied;
                s.leader = leader;
                s.partial_applies.clear();
                manage_what_the_spec_names(s, &cluster.spec);
            })
            .map_err(|e| Failure::new("STATE_ERROR", e))?;
    } else {
        // What the completed actions changed: drift compares those addresses with this
        // spec, since pgdba itself made them so.
        let done: BTreeSet<String> = result
            .done
            .iter()
            .filter_map(|id| plan.action(id))
            .flat_map(|a| a.changes.iter().map(ToString::to_string))
            .collect();
        if !done.is_empty() {
            let spec = serde_json::to_value(&cluster.spec).unwrap_or(Value::Null);
            recorder
                .update(|s| s.record_partial(spec, done))
                .map_err(|e| Failure::new("STATE_ERROR", e))?;
        }
    }
    let serial = recorder.snapshot().map(|s| s.serial);
    let applied = result.summary(plan);
    let data = json!({ "cluster": plan.name, "summary": plan.summary, "applied": applied, "result": result, "state_serial": serial });
    let mut human = String::new();
    for r in &result.actions {
        if r.status != apply::Status::Done {
            human.push_str(&format!(
                "  {:?} {}: {}\n",
                r.status,
                r.id,
                r.message.clone().unwrap_or_default()
            ));
        }
    }
    let already = result
        .actions
        .iter()
        .filter(|r| r.status == apply::Status::Done && !r.changed)
        .count();
    let already = if already == 0 {
        String::new()
    } else {
        format!(
            "; {} found {} already done",
            plan_view::count(already, "action", "actions"),
            if already == 1 {
                "its work"
            } else {
                "their work"
            }
        )
    };
    if result.succeeded() {
        human.push_str(&if plan.is_empty() {
            format!(
                "cluster {}: no changes. The cluster matches the spec.\n",
                plan.name
            )
        } else {
            format!(
                "Apply complete for cluster {}: {} ({}{already}).\n",
                plan.name,
                plan_view::applied_line(&applied),
                plan_view::count(result.done.len(), "action", "actions"),
            )
        });
        Ok(Outcome::ok(data, human))
    } else {
        Err(Failure::new(
            "APPLY_FAILED",
            format!(
                "apply of cluster {} failed: {} done, {} failed, {} skipped; it did: {}{already}\n{}",
                plan.name,
                result.done.len(),
                result.failed.len(),
                result.skipped.len(),
                plan_view::applied_line(&applied),
                human.trim_end()
            ),
        )
        .hint("fix the cause, then run `pgdba plan` again: it shows exactly what remains")
        .data(data))
    }
}

/// Who leads now, as the DCS's leader key says.
async fn current_leader(
    cluster: &Cluster,
    reader: &patroni::Reader,
    creds: &Credentials,
) -> Option<String> {
    let location = cluster
        .provider
        .dcs_location()
        .await
        .with_auth(creds.etcd_auth());
    let view = reader.dcs_view(&location).await.ok()?;
    view.leader().map(|m| m.name.clone())
}

/// After a successful apply, pgdba manages exactly what the spec names: objects that
/// already existed are adopted, those that left it (dropped or forgotten) are no longer
/// managed.
fn manage_what_the_spec_names(state: &mut ClusterState, spec: &ClusterSpec) {
    let s = &spec.spec;
    state.managed_parameters = s.postgres.parameters.keys().cloned().collect();
    state.managed_roles = s.roles.iter().map(|r| r.name.clone()).collect();
    state.managed_databases = s.databases.iter().map(|d| d.name.clone()).collect();
    state.managed_extensions = s
        .databases
        .iter()
        .filter(|d| !d.extensions.is_empty())
        .map(|d| {
            (
                d.name.clone(),
                d.extensions.iter().map(|e| e.name.clone()).collect(),
            )
        })
        .collect();
}

fn gate_timeout(spec: &ClusterSpec) -> Duration {
    let p = &spec.spec.patroni;
    Duration::from_secs((u64::from(p.ttl) + u64::from(p.loop_wait)) * 2 + 60)
}

/// Refuse a plan that destroys data unless the user said so: what its changes say, and what
/// `extra` adds (a saved plan's actions).
fn check_data_loss(plan: &Plan, extra: &[String], allowed: bool) -> Result<(), Failure> {
    let mut loss = plan.data_loss();
    loss.extend(extra.iter().map(String::as_str));
    if loss.is_empty() || allowed {
        return Ok(());
    }
    Err(Failure::new(
        "DATA_LOSS",
        format!(
            "the plan for cluster {} destroys data: {}",
            plan.name,
            loss.join("; ")
        ),
    )
    .hint("if that is intended, apply again with --allow-data-loss"))
}

async fn apply_spec(
    g: &Global,
    format: Format,
    path: &Path,
    auto_approve: bool,
    allow: Allow,
) -> Result<Outcome, Failure> {
    let loaded = load_one(path, "apply")?;
    let store = StateStore::new(&g.state_dir);
    let name = loaded.spec.metadata.name.clone();
    let lock = store.lock(&name, "apply")?;
    let state = store.load(&name)?;
    let creds = credentials(&store, &name, state.as_ref())?;
    let planned = plan_one(&store, &loaded, creds.as_ref()).await?;
    // A cluster pgdba has not created: its passwords are made now, once the plan showed that
    // nothing of it exists yet.
    let creds = match creds {
        Some(c) => c,
        None => new_credentials(&store, &name)?,
    };
    guard_production(
        &loaded.spec,
        state.as_ref(),
        &planned.plan,
        allow.production,
    )?;
    check_data_loss(&planned.plan, &[], allow.data_loss)?;
    if !auto_approve && !planned.plan.is_empty() {
        confirm(&planned.plan)?;
    }
    let run = ApplyRun {
        g,
        format,
        store: &store,
        lock: &lock,
    };
    execute(
        &run,
        &planned.cluster,
        &planned.spec_hash,
        &planned.plan,
        &creds,
    )
    .await
}

/// A saved plan, checked rather than trusted: signed with this state dir's key and unchanged
/// since, its spec valid as `plan` would find it, made from the spec file given with `-f` (if
/// one is), and its actions holding together.
fn load_saved(
    store: &StateStore,
    path: &Path,
    spec_file: Option<&Path>,
) -> Result<SavedPlan, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::new("IO_ERROR", format!("{}: {e}", path.display())))?;
    let saved: SavedPlan = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::new(
            "INVALID_PLAN",
            format!(
                "{}:{}:{}: not a saved pgdba plan: {e}",
                path.display(),
                e.line(),
                e.column()
            ),
        )
    })?;
    if saved.format != SAVED_FORMAT {
        return Err(Failure::new(
            "INVALID_PLAN",
            format!(
                "{}: plan format {} is not {SAVED_FORMAT}",
                path.display(),
                saved.format
            ),
        )
        .hint("make the plan again with this pgdba"));
    }
    let tampered = |why: String| {
        Failure::new(
            "PLAN_TAMPERED",
            format!(
                "{}: {why}; pgdba applies only plans it made and signed, unchanged",
                path.display()
            ),
        )
        .hint("make the plan again with `pgdba plan --out`, review it, apply that file")
    };
    let key = store.plan_key(false)?.ok_or_else(|| {
        tampered(format!(
            "there is no signing key in {}, so this plan was not made with this state dir",
            store.dir().display()
        ))
    })?;
    if !saved.signed_by(&key) {
        return Err(tampered(
            "its signature does not match: it was changed after it was written, or signed with another state dir's key".to_owned(),
        ));
    }
    let problems = crate::plan::saved::shape_problems(&saved.plan);
    if !problems.is_empty() {
        return Err(tampered(problems.join("; ")));
    }
    // The embedded spec, validated exactly as `plan` validates a spec file.
    let spec_json = serde_json::to_vec(&saved.spec)
        .map_err(|e| Failure::new("INTERNAL", crate::error_chain(&e)))?;
    if let Err(diags) = spec::load_str(&format!("{} (its spec)", path.display()), &spec_json) {
        return Err(diagnostics_failure(&diags));
    }
    if let Some(f) = spec_file {
        let loaded = load_one(f, "apply")?;
        if loaded.source_hash != saved.spec_hash {
            return Err(Failure::new(
                "STALE_PLAN",
                format!(
                    "{} changed since the plan was made from it ({})",
                    f.display(),
                    saved.spec_path
                ),
            )
            .hint("run `pgdba plan` again and review the new plan"));
        }
    }
    Ok(saved)
}

async fn apply_saved(
    g: &Global,
    format: Format,
    path: &Path,
    spec_file: Option<&Path>,
    allow: Allow,
) -> Result<Outcome, Failure> {
    let store = StateStore::new(&g.state_dir);
    let saved = load_saved(&store, path, spec_file)?;
    let name = saved.spec.metadata.name.clone();
    let lock = store.lock(&name, "apply")?;
    let state = store.load(&name)?;
    let now = state.as_ref().map(|s| StateRef {
        lineage: s.lineage.clone(),
        serial: s.serial,
    });
    if now != saved.state {
        let show = |s: &Option<StateRef>| {
            s.as_ref().map_or("no state".to_owned(), |s| {
                format!("lineage {} serial {}", s.lineage, s.serial)
            })
        };
        return Err(Failure::new(
            "STALE_PLAN",
            format!(
                "the plan was made against {} of cluster {name}; the state is now at {}",
                show(&saved.state),
                show(&now)
            ),
        )
        .hint("run `pgdba plan` again and review the new plan"));
    }
    let creds = credentials(&store, &name, state.as_ref())?;
    let cluster = Cluster::new(&saved.spec);
    let managed = managed(state.as_ref());
    let obs = observe_cluster(&store, &cluster, creds.as_ref(), &managed).await?;
    refuse_unmanaged(&store, state.as_ref(), &obs)?;
    require_complete(&obs, &saved.plan)?;
    let creds = match creds {
        Some(c) => c,
        None => new_credentials(&store, &name)?,
    };
    refuse_split_brain(&obs, &saved.plan)?;
    let changed: Vec<&String> = saved
        .fingerprints
        .iter()
        .filter(|(addr, fp)| {
            // An address this pgdba cannot read is a changed plan, not a match.
            addr.parse::<crate::diff::Address>()
                .map_or(true, |a| fingerprint::fingerprint(&obs, &a) != **fp)
        })
        .map(|(addr, _)| addr)
        .collect();
    if !changed.is_empty() {
        return Err(Failure::new(
            "STALE_PLAN",
            format!(
                "what the plan touches changed since it was made: {}",
                changed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .hint("run `pgdba plan` again and review the new plan")
        .data(json!({ "changed": changed })));
    }
    guard_production(&saved.spec, state.as_ref(), &saved.plan, allow.production)?;
    // What the actions destroy counts, whatever the changes say.
    let from_actions = crate::plan::saved::action_data_loss(&saved.plan);
    check_data_loss(&saved.plan, &from_actions, allow.data_loss)?;
    let run = ApplyRun {
        g,
        format,
        store: &store,
        lock: &lock,
    };
    execute(&run, &cluster, &saved.spec_hash, &saved.plan, &creds).await
}

// ---------------------------------------------------------------------------------------------
// Destroy and state

/// Is the cluster production, by the spec being used or by any spec pgdba applied to it (a
/// label removed in the spec does not lift the guard)? `env: production`, in any case.
fn is_production(spec: &ClusterSpec, state: Option<&ClusterState>) -> bool {
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
fn guard_production(
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
        "PROTECTED",
        format!(
            "cluster {} is labelled env: production (now or when it was applied), and the plan destroys: {}",
            plan.name,
            destroys.join(", ")
        ),
    )
    .hint("if that is intended, apply again with --allow-production"))
}

async fn destroy(
    g: &Global,
    path: &Path,
    confirmed: bool,
    allow_production: bool,
) -> Result<Outcome, Failure> {
    let loaded = load_one(path, "destroy")?;
    let name = loaded.spec.metadata.name.clone();
    let store = StateStore::new(&g.state_dir);
    let state = store.load(&name)?;
    if is_production(&loaded.spec, state.as_ref()) && !allow_production {
        return Err(Failure::new(
            "PROTECTED",
            format!("cluster {name} is labelled env: production (now or when it was applied); pgdba does not destroy it"),
        )
        .hint("if you really mean it, add --allow-production"));
    }
    if !confirmed {
        return Err(Failure::new(
            "CONFIRMATION_REQUIRED",
            format!("destroy removes every member, the DCS and all data of cluster {name}"),
        )
        .hint("add --confirm"));
    }
    let _lock = store.lock(&name, "destroy")?;
    let Some(state) = store.load(&name)? else {
        return Err(Failure::new(
            "NOT_MANAGED",
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
    let location = cluster.provider.location();
    if let Some(dir) = &state.data_dir
        && Path::new(dir) != Path::new(&location)
    {
        return Err(Failure::new(
            "STATE_ERROR",
            format!(
                "the state of cluster {name} records {dir}, but its applied spec lays it out in {location}; nothing was removed"
            ),
        ));
    }
    cluster
        .provider
        .destroy(&state.lineage)
        .await
        .map_err(|e| Failure::new("DESTROY_FAILED", crate::error_chain(&e)))?;
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

/// `state show` for people: the cluster, its DCS and members, the lock, partial applies.
fn state_table(s: &ClusterState, lock: Option<&crate::state::LockStatus>) -> String {
    let mut out = format!(
        "cluster {} ({} provider)\n  lineage     {}\n  serial      {}\n  updated     {}\n  data_dir    {}\n  dcs         {}\n  leader      {}\n  applied     {}\n",
        s.cluster,
        s.provider,
        s.lineage,
        s.serial,
        s.updated_at,
        s.data_dir.as_deref().unwrap_or("(none)"),
        if s.dcs.endpoints.is_empty() {
            "(none)".to_owned()
        } else {
            s.dcs.endpoints.join(", ")
        },
        s.leader.as_deref().unwrap_or("(unknown)"),
        s.spec_hash
            .as_deref()
            .map_or("never completely".to_owned(), |h| format!(
                "spec sha256 {h}"
            )),
    );
    if s.members.is_empty() {
        out.push_str("\nno members\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .members
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.host.clone(),
                    m.port.to_string(),
                    m.api_url.clone(),
                    m.socket_dir.clone(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&crate::output::columns(
            &["MEMBER", "HOST", "PORT", "API_URL", "SOCKET_DIR"],
            &rows,
        ));
    }
    for p in &s.partial_applies {
        out.push_str(&format!(
            "\nan apply stopped part-way at {}; it changed: {}\n",
            p.at,
            p.done.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    out.push_str(&match lock {
        Some(l) => format!(
            "\nlocked by {}@{} pid {} since {} ({}){}\n",
            l.info.owner,
            l.info.host,
            l.info.pid,
            l.info.created_at,
            l.info.operation,
            if l.stale { "; its process is gone" } else { "" }
        ),
        None => "\nnot locked\n".to_owned(),
    });
    out
}

fn state_cmd(g: &Global, cmd: StateCommand) -> Result<Outcome, Failure> {
    let store = StateStore::new(&g.state_dir);
    match cmd {
        StateCommand::List { .. } => {
            let list = store.list()?;
            let human = if list.is_empty() {
                format!("no clusters in {}\n", g.state_dir.display())
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            s.cluster.clone(),
                            s.serial.to_string(),
                            s.members.to_string(),
                            s.updated_at.clone(),
                        ]
                    })
                    .collect();
                crate::output::columns(&["CLUSTER", "SERIAL", "MEMBERS", "UPDATED"], &rows)
            };
            Ok(Outcome::ok(json!({ "clusters": list }), human))
        }
        StateCommand::Show { name, .. } => {
            let state = store.load(&name)?.ok_or_else(|| {
                Failure::new(
                    "NOT_FOUND",
                    format!("no state for cluster {name} in {}", g.state_dir.display()),
                )
            })?;
            let lock = store.read_lock(&name)?;
            let previous = store.load_previous(&name)?;
            let mut data = serde_json::to_value(&state)
                .map_err(|e| Failure::new("INTERNAL", crate::error_chain(&e)))?;
            let backup = previous.as_ref().map(|p| {
                json!({
                    "path": store.previous_path(&name).map(|p| p.display().to_string()).unwrap_or_default(),
                    "serial": p.serial,
                    "updated_at": p.updated_at,
                })
            });
            if let Value::Object(o) = &mut data {
                // pgdba's own roles: managed by pgdba, their passwords in the 0600 secrets file.
                o.insert(
                    "system_roles".to_owned(),
                    crate::roles::SYSTEM_ROLES
                        .iter()
                        .map(|r| json!({ "name": r.name, "purpose": r.purpose }))
                        .collect::<Vec<_>>()
                        .into(),
                );
                o.insert(
                    "lock".to_owned(),
                    serde_json::to_value(&lock).unwrap_or(Value::Null),
                );
                o.insert("backup".to_owned(), backup.clone().unwrap_or(Value::Null));
            }
            let mut human = state_table(&state, lock.as_ref());
            if let Some(b) = &backup {
                human.push_str(&format!(
                    "previous state kept in {} (serial {})\n",
                    b["path"].as_str().unwrap_or_default(),
                    b["serial"]
                ));
            }
            Ok(Outcome::ok(data, human))
        }
        StateCommand::Unlock {
            name,
            force,
            even_if_alive,
            ..
        } => {
            if !force {
                return Err(Failure::new(
                    "CONFIRMATION_REQUIRED",
                    format!("unlocking cluster {name} can let two runs change it at once"),
                )
                .hint("add --force"));
            }
            let removed = store.force_unlock(&name, even_if_alive).map_err(|e| match e {
                StateError::LockHeld { .. } => Failure::new("STATE_LOCKED", e.to_string())
                    .hint("wait for it to finish; add --even-if-alive only if you know it must be stopped"),
                other => other.into(),
            })?;
            let human = match &removed {
                Some(l) => format!(
                    "Removed the lock of cluster {name} held by {}@{} pid {}.\n",
                    l.owner, l.host, l.pid
                ),
                None => format!("Cluster {name} was not locked.\n"),
            };
            Ok(Outcome::ok(
                json!({ "cluster": name, "removed": removed }),
                human,
            ))
        }
    }
}
