//! Apply: walk an immutable plan's DAG with a concurrency cap. Each action re-checks its
//! precondition right before it runs; when one fails its dependents are skipped, running ones
//! finish, and the result lists what was done, failed and skipped. Progress goes to a
//! `Reporter`; the engine never prints.

mod actions;
mod sql;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::patroni;
use crate::plan::{Action, Plan};
use crate::providers::{Credentials, Provider};
use crate::spec::model::ClusterSpec;
use crate::state::{ClusterState, StateStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
    Skipped,
}

/// What an action that completed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// It changed the cluster (or a gate passed).
    Changed,
    /// It changed the cluster; what to tell about it.
    Note(String),
    /// Its precondition found the effect already there (a member that already runs, a
    /// restart no longer pending): nothing was changed.
    AlreadyDone(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionResult {
    pub id: String,
    pub kind: String,
    pub target: crate::diff::Address,
    pub status: Status,
    /// Done and changed something; false for an action that found its effect already there
    /// (and for failed and skipped ones).
    #[serde(default)]
    pub changed: bool,
    /// What happened: the error for a failed action, why for a skipped one, a note otherwise.
    pub message: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyResult {
    pub done: Vec<String>,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
    pub actions: Vec<ActionResult>,
}

impl ApplyResult {
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }

    /// What the apply did, counted from the actions that ran: a change counts once every
    /// action that realizes it is done; a restart or switchover once it actually happened
    /// (not when its precondition found nothing to do).
    pub fn summary(&self, plan: &Plan) -> crate::plan::Summary {
        let status = |id: &str| self.actions.iter().find(|r| r.id == id);
        let done = |a: &&Action| status(&a.id).is_some_and(|r| r.status == Status::Done);
        let realized = plan.changes.iter().filter(|c| {
            plan.actions
                .iter()
                .filter(|a| a.changes.contains(&c.address))
                .all(|a| done(&a))
        });
        let acted = plan
            .actions
            .iter()
            .filter(|a| status(&a.id).is_some_and(|r| r.changed));
        crate::plan::summarize(realized, acted)
    }
}

/// Where progress goes: progress bars on a terminal, nothing with `--format json`.
pub trait Reporter: Send + Sync {
    fn started(&self, action: &Action);
    fn finished(&self, result: &ActionResult);
}

/// Why an action failed. Shown with its sources (`error_chain`) in the apply's result.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// What the action found stands against it (the member to remove leads, no leader to clone,
    /// the leader is not who the plan expected): it changed nothing.
    #[error("{0}")]
    Refused(String),
    /// A wait ended without its condition: what did not happen, and what was seen last.
    #[error("{0}")]
    GaveUp(String),
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
    #[error(transparent)]
    Patroni(#[from] crate::patroni::PatroniError),
    /// A SQL statement, or the session it needed.
    #[error("{what}: {detail}")]
    Sql { what: String, detail: String },
    /// The state could not be written (the lock lost, a write failed).
    #[error("the state: {0}")]
    State(String),
}

/// The engine's own refusals are written as text where they are found.
impl From<String> for ActionError {
    fn from(s: String) -> ActionError {
        ActionError::Refused(s)
    }
}

impl From<&str> for ActionError {
    fn from(s: &str) -> ActionError {
        ActionError::Refused(s.to_owned())
    }
}

/// Records what apply did in the state, atomically after each step that changes what exists,
/// and only while this run still holds the cluster's lock.
pub struct Recorder<'a> {
    pub store: &'a StateStore,
    pub lock: &'a crate::state::LockGuard,
    pub state: Mutex<ClusterState>,
}

impl Recorder<'_> {
    pub fn update(&self, f: impl FnOnce(&mut ClusterState)) -> Result<(), ActionError> {
        self.lock
            .check()
            .map_err(|e| ActionError::State(crate::error_chain(&e)))?;
        let mut guard = self
            .state
            .lock()
            .map_err(|_| ActionError::State("its lock is poisoned".to_owned()))?;
        f(&mut guard);
        self.store
            .save(&mut guard)
            .map_err(|e| ActionError::State(crate::error_chain(&e)))
    }
    pub fn snapshot(&self) -> Option<ClusterState> {
        self.state.lock().ok().map(|s| s.clone())
    }
}

/// Everything actions need.
pub struct Context<'a> {
    pub spec: &'a ClusterSpec,
    pub provider: &'a dyn Provider,
    pub patroni: &'a patroni::Client,
    pub creds: &'a Credentials,
    /// The spec's role passwords, read once at the CLI's edge (as observation got them).
    pub role_secrets: &'a crate::secret::RoleSecrets,
    pub recorder: &'a Recorder<'a>,
    /// How long a gate waits.
    pub gate_timeout: Duration,
}

/// A request to stop (Ctrl-C, SIGTERM): no new action starts; those running finish or time out.
#[derive(Default)]
pub struct Interrupt {
    requested: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Interrupt {
    pub fn request(&self) {
        self.requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn requested(&self) -> bool {
        self.requested.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn wait(&self) {
        let notified = self.notify.notified();
        if self.requested() {
            return;
        }
        notified.await;
    }
}

/// Execute `plan`: at most `parallelism` actions at once, in dependency order. Once
/// `interrupt` is requested no action starts; the running ones finish (or time out), and the
/// others are skipped, so the caller records exactly what was done.
pub async fn execute(
    plan: &Plan,
    ctx: &Context<'_>,
    parallelism: usize,
    reporter: &dyn Reporter,
    interrupt: &Interrupt,
) -> ApplyResult {
    let parallelism = parallelism.max(1);
    let mut status: BTreeMap<&str, Status> = BTreeMap::new();
    let mut results: Vec<ActionResult> = Vec::new();
    let mut running = FuturesUnordered::new();
    let mut started: BTreeSet<&str> = BTreeSet::new();
    loop {
        // Skip what can no longer run; start what is ready, up to the cap.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for a in &plan.actions {
                if started.contains(a.id.as_str()) {
                    continue;
                }
                let blocked = a.depends_on.iter().find(|d| {
                    matches!(
                        status.get(d.as_str()),
                        Some(Status::Failed | Status::Skipped)
                    )
                });
                let why = if interrupt.requested() {
                    Some("the apply was interrupted before it started".to_owned())
                } else {
                    blocked.map(|dep| format!("{dep} did not complete"))
                };
                if let Some(why) = why {
                    started.insert(&a.id);
                    status.insert(&a.id, Status::Skipped);
                    let r = ActionResult {
                        id: a.id.clone(),
                        kind: a.kind.name().to_owned(),
                        target: a.target.clone(),
                        status: Status::Skipped,
                        changed: false,
                        message: Some(why),
                        duration_ms: 0,
                    };
                    reporter.finished(&r);
                    results.push(r);
                    progressed = true;
                    continue;
                }
                let ready = a
                    .depends_on
                    .iter()
                    .all(|d| status.get(d.as_str()) == Some(&Status::Done));
                if ready && running.len() < parallelism {
                    started.insert(&a.id);
                    reporter.started(a);
                    let span = tracing::info_span!("action", id = %a.id, kind = a.kind.name(), target = %a.target);
                    running.push(
                        async move {
                            let t = Instant::now();
                            let outcome = actions::run(a, ctx).await;
                            (a, outcome, t.elapsed())
                        }
                        .instrument(span),
                    );
                    progressed = true;
                }
            }
        }
        let next = if interrupt.requested() {
            running.next().await
        } else {
            tokio::select! {
                n = running.next() => n,
                () = interrupt.wait() => {
                    tracing::warn!("interrupted: no new action starts; waiting for the running ones");
                    continue;
                }
            }
        };
        let Some((a, outcome, elapsed)) = next else {
            break;
        };
        let (st, changed, message) = match outcome {
            Ok(Effect::Changed) => (Status::Done, true, None),
            Ok(Effect::Note(n)) => (Status::Done, true, Some(n)),
            Ok(Effect::AlreadyDone(n)) => (Status::Done, false, Some(n)),
            Err(e) => {
                let e = crate::error_chain(&e);
                tracing::error!(id = %a.id, "{e}");
                (Status::Failed, false, Some(e))
            }
        };
        status.insert(&a.id, st);
        let r = ActionResult {
            id: a.id.clone(),
            kind: a.kind.name().to_owned(),
            target: a.target.clone(),
            status: st,
            changed,
            message,
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        };
        reporter.finished(&r);
        results.push(r);
    }
    let ids = |s: Status| {
        results
            .iter()
            .filter(|r| r.status == s)
            .map(|r| r.id.clone())
            .collect()
    };
    ApplyResult {
        done: ids(Status::Done),
        failed: ids(Status::Failed),
        skipped: ids(Status::Skipped),
        actions: results,
    }
}
