//! `pgdba apply`: of a spec (planned now, approved) or of a saved plan (checked rather than
//! trusted), then executed under the cluster's lock with the state recording what was done.

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::Global;
use super::cluster::{
    Cluster, credentials, managed, new_credentials, observe_cluster, plan_one, refuse_split_brain,
    refuse_unmanaged, require_complete,
};
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::destroy::guard_production;
use super::specs::{diagnostics_failure, load_one};
use crate::apply::{self, Recorder, Reporter};
use crate::diff::fingerprint;
use crate::output::{Format, plan as plan_view, progress};
use crate::patroni;
use crate::plan::{
    Plan,
    saved::{SAVED_FORMAT, SavedPlan, StateRef},
};
use crate::providers::Credentials;
use crate::spec::{self, model::ClusterSpec};
use crate::state::{ClusterState, StateStore};

fn confirm(plan: &Plan) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(codes::APPROVAL_REQUIRED, "apply asks for approval, and stdin is not a terminal")
            .hint("review the plan, then run with --auto-approve, or save it with `plan --out` and apply that file"));
    }
    ask_yes(
        &format!(
            "{}\nDo you want to perform these actions on cluster {}? Only 'yes' will be accepted: ",
            plan_view::table(plan),
            plan.name
        ),
        "apply cancelled",
    )
}

/// `question` on the terminal (stderr); a `yes` goes on, anything else is `CANCELLED` with
/// `cancelled` as the message.
pub(super) fn ask_yes(question: &str, cancelled: &str) -> Result<(), Failure> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::new(codes::CANCELLED, cancelled))
    }
}

/// What an apply is allowed to destroy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Allow {
    pub(super) data_loss: bool,
    pub(super) production: bool,
}

impl Allow {
    /// Nothing destructive: what the commands that end in an apply of their own allow it.
    pub(super) const NOTHING: Allow = Allow {
        data_loss: false,
        production: false,
    };
}

/// The result of a command that ends in an apply (`cluster init`, `config apply`, `backup
/// restore`): the apply's data under `apply` in the command's `data`, its text after the
/// command's `human`; on a failure, the apply's error with `note` (which may add to `data`)
/// after its message.
pub(super) fn ending_in_apply(
    result: Result<Outcome, Failure>,
    mut data: serde_json::Map<String, serde_json::Value>,
    human: String,
    note: impl FnOnce(&Failure, &mut serde_json::Map<String, serde_json::Value>) -> String,
) -> Result<Outcome, Failure> {
    match result {
        Ok(o) => {
            data.insert("apply".to_owned(), o.data);
            Ok(Outcome {
                data: serde_json::Value::Object(data),
                human: format!("{human}{}", o.human),
                exit: o.exit,
                error: o.error,
            })
        }
        Err(f) => {
            let note = note(&f, &mut data);
            data.insert("apply".to_owned(), f.data);
            Err(Failure {
                code: f.code,
                message: format!("{}; {note}", f.message.trim_end()),
                hint: f.hint,
                data: serde_json::Value::Object(data),
            })
        }
    }
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
    // The hosts' keys the plan showed are trusted from now on, and recorded with the first
    // save (trust on first use).
    let trusted = super::cluster::trusted_keys(Some(&state), &plan.host_keys);
    cluster.provider.trust_host_keys(&trusted);
    // Hosts the plan could not look at before their keys were trusted are checked now, before
    // anything is made on them.
    if !plan.host_keys.is_empty() {
        super::cluster::preflight(cluster, plan).await?;
    }
    let recorder = Recorder {
        store,
        lock: run.lock,
        state: Mutex::new(ClusterState {
            host_keys: trusted,
            ..state
        }),
    };
    // Each request within 10 s; a restart or a switchover, which Patroni answers once done,
    // within what its action has left.
    let auth = creds
        .restapi
        .as_ref()
        .map(|p| (crate::roles::RESTAPI_USER.to_owned(), p.clone()));
    let client = patroni::Client::new(Duration::from_secs(10), auth)
        .map_err(|e| Failure::new(codes::INTERNAL, crate::error_chain(&e)))?;
    let ctx = apply::Context {
        spec: &cluster.spec,
        provider: cluster.provider.as_ref(),
        patroni: &client,
        creds,
        role_secrets: cluster.role_secrets(),
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
            .map_err(|e| Failure::new(codes::STATE_ERROR, crate::error_chain(&e)))?;
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
                .map_err(|e| Failure::new(codes::STATE_ERROR, crate::error_chain(&e)))?;
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
            codes::APPLY_FAILED,
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
pub(super) fn manage_what_the_spec_names(state: &mut ClusterState, spec: &ClusterSpec) {
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
        codes::DATA_LOSS,
        format!(
            "the plan for cluster {} destroys data: {}",
            plan.name,
            loss.join("; ")
        ),
    )
    .hint("if that is intended, apply again with --allow-data-loss"))
}

pub(super) async fn apply_spec(
    g: &Global,
    format: Format,
    path: &Path,
    auto_approve: bool,
    allow: Allow,
) -> Result<Outcome, Failure> {
    let loaded = load_one(path, "apply")?;
    let store = StateStore::new(&g.state_dir);
    let lock = store.lock(&loaded.spec.metadata.name, "apply")?;
    apply_loaded(g, format, &store, &lock, &loaded, auto_approve, allow).await
}

/// Plan `loaded` and apply the plan, under the cluster's `lock` (held by the caller).
pub(super) async fn apply_loaded(
    g: &Global,
    format: Format,
    store: &StateStore,
    lock: &crate::state::LockGuard,
    loaded: &crate::spec::LoadedSpec,
    auto_approve: bool,
    allow: Allow,
) -> Result<Outcome, Failure> {
    let name = loaded.spec.metadata.name.clone();
    let state = store.load(&name)?;
    let creds = credentials(store, &name, state.as_ref())?;
    let planned = plan_one(store, loaded, creds.as_ref()).await?;
    // A cluster pgdba has not created: its passwords are made now, once the plan showed that
    // nothing of it exists yet.
    let creds = match creds {
        Some(c) => c,
        None => new_credentials(store, &name)?,
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
        store,
        lock,
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
        .map_err(|e| Failure::new(codes::IO_ERROR, format!("{}: {e}", path.display())))?;
    let saved: SavedPlan = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::new(
            codes::INVALID_PLAN,
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
            codes::INVALID_PLAN,
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
            codes::PLAN_TAMPERED,
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
        .map_err(|e| Failure::new(codes::INTERNAL, crate::error_chain(&e)))?;
    if let Err(diags) = spec::load_str(&format!("{} (its spec)", path.display()), &spec_json) {
        return Err(diagnostics_failure(&diags));
    }
    if let Some(f) = spec_file {
        let loaded = load_one(f, "apply")?;
        if loaded.source_hash != saved.spec_hash {
            return Err(Failure::new(
                codes::STALE_PLAN,
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

pub(super) async fn apply_saved(
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
            codes::STALE_PLAN,
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
    cluster
        .trust_hosts(state.as_ref(), &saved.plan.host_keys)
        .await?;
    let managed = managed(state.as_ref());
    let obs = observe_cluster(&store, &cluster, creds.as_ref(), &managed).await?;
    refuse_unmanaged(&store, &cluster, state.as_ref(), &obs)?;
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
            codes::STALE_PLAN,
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
