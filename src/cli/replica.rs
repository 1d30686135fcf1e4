//! `replica add` and `replica remove`: the spec's `replicas` up or down by one, written into
//! the spec file as a person would edit it (`spec::edit`: only that value changes), then
//! planned and applied exactly as `apply -f` does.
//!
//! Before anything is touched, the edited spec is planned in memory: it must change nothing
//! but the member added or removed (other pending changes are for `apply` to show, not a side
//! effect of `replica add`) and pass the production guard. The spec file is put back when the
//! apply is declined or refused before any action ran; once actions ran it keeps the new count,
//! since it then describes where the cluster is going (`pgdba plan` shows what remains).
#![allow(clippy::result_large_err)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::Global;
use super::apply::{Allow, apply_spec};
use super::cluster::plan_one;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::destroy::guard_production;
use super::specs::load_one;
use super::target::{ClusterArg, Known, MemberArg, resolve_cluster};
use crate::diff::Address;
use crate::output::Format;
use crate::poll::{Probe, poll_until};
use crate::providers::member_name;
use crate::spec::edit::{self, EditError, Edited};
use crate::spec::model::ClusterSpec;
use crate::state::StateStore;

/// How long the members may take to run again after a switchover.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);

/// `replica remove`'s spec file, and what its apply may destroy.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoveSpec {
    /// The cluster's spec file (it is edited).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Allow removing a member of a cluster labelled env: production.
    #[arg(long)]
    pub allow_production: bool,
}

/// Commands that end in an apply refuse, before they change anything, when the apply could not
/// ask for its `yes`.
pub(super) fn require_approval(auto_approve: bool, command: &str) -> Result<(), Failure> {
    if auto_approve || std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(Failure::new(
        codes::APPROVAL_REQUIRED,
        format!("{command} applies a plan, which asks for approval, and stdin is not a terminal"),
    )
    .hint("run it on a terminal to review the plan, or with --auto-approve"))
}

/// What a replica command changes: the spec's count, and the member that comes or goes.
struct Resize<'a> {
    command: &'a str,
    path: &'a Path,
    cluster: &'a str,
    before: u32,
    after: u32,
    /// The member added or removed.
    member: String,
}

impl Resize<'_> {
    fn data(&self) -> serde_json::Map<String, Value> {
        let mut d = serde_json::Map::new();
        d.insert("cluster".to_owned(), json!(self.cluster));
        d.insert("spec".to_owned(), json!(self.path.display().to_string()));
        d.insert("replicas_before".to_owned(), json!(self.before));
        d.insert("replicas_after".to_owned(), json!(self.after));
        d.insert("member".to_owned(), json!(self.member));
        d
    }
}

pub(super) async fn add(
    g: &Global,
    format: Format,
    path: &Path,
    auto_approve: bool,
) -> Result<Outcome, Failure> {
    let command = "replica add";
    require_approval(auto_approve, command)?;
    let loaded = load_one(path, command)?;
    refuse_adopted(&loaded.spec, command)?;
    let name = loaded.spec.metadata.name.clone();
    let before = loaded.spec.spec.replicas;
    let after = before.saturating_add(1);
    let resize = Resize {
        command,
        path,
        cluster: &name,
        before,
        after,
        member: member_name(&name, after),
    };
    let edited = prepare(&resize)?;
    preview(g, &resize, &edited, false).await?;
    let serial = state_serial(g, &name)?;
    write(&edited)?;
    let result = apply_spec(g, format, path, auto_approve, Allow::NOTHING).await;
    finish(g, &resize, &edited, serial, None, result)
}

pub(super) async fn remove(
    g: &Global,
    format: Format,
    spec: &RemoveSpec,
    m: &MemberArg,
    auto_approve: bool,
) -> Result<Outcome, Failure> {
    let command = "replica remove";
    let path = spec.file.as_path();
    require_approval(auto_approve, command)?;
    let loaded = load_one(path, command)?;
    refuse_adopted(&loaded.spec, command)?;
    let name = loaded.spec.metadata.name.clone();
    let before = loaded.spec.spec.replicas;
    if before == 0 {
        return Err(Failure::new(
            codes::REFUSED,
            format!(
                "cluster {name} has no replica to remove (replicas: 0 in {}): its one member is its primary",
                path.display()
            ),
        )
        .hint("`pgdba destroy` removes a whole cluster"));
    }
    let resize = Resize {
        command,
        path,
        cluster: &name,
        before,
        after: before - 1,
        member: member_name(&name, before),
    };
    let k = resolve_cluster(
        g,
        &ClusterArg {
            file: Some(path.to_path_buf()),
            name: None,
        },
    )
    .await?;
    if m.member.is_some() || m.host.is_some() {
        let named = k.member(m)?.map(|s| s.name.clone()).unwrap_or_default();
        if named != resize.member {
            return Err(Failure::new(
                codes::REFUSED,
                format!(
                    "cluster {name}: {named} cannot be removed: members are numbered {name}-0 to \
                     {victim}, and `replica remove` always removes the highest-numbered one, \
                     which is {victim} (a spec says how many replicas, not which)",
                    victim = resize.member
                ),
            )
            .hint(format!(
                "run again with --member {victim} or without --member; a member that is broken \
                 is rebuilt by `pgdba apply`, not removed",
                victim = resize.member
            )));
        }
    }
    let edited = prepare(&resize)?;
    preview(g, &resize, &edited, spec.allow_production).await?;

    // The member to remove leads: hand the leader to the healthiest replica first.
    let status = super::leader::read_status(&k).await?;
    let switchover = if status.leader.as_deref() == Some(resize.member.as_str()) {
        let to = successor(&status, &resize.member, &name)?;
        if !auto_approve {
            ask(&format!(
                "Member {} leads cluster {name}. pgdba will first hand the leader to {to} (a \
                 switchover), then show the plan that removes {}.\nContinue? Only 'yes' will be \
                 accepted: ",
                resize.member, resize.member
            ))?;
        }
        let done = super::leader::switchover_for(g, &k, &to, command).await?;
        settle(&k).await;
        Some(done)
    } else {
        None
    };
    let after_switchover = |f: Failure| match &switchover {
        Some(s) => with_data(f, &resize, json!({ "switchover": s })),
        None => f,
    };
    let serial = state_serial(g, &name).map_err(after_switchover)?;
    write(&edited).map_err(after_switchover)?;
    // No data (its preview refused any change but the member's); on a production cluster
    // only with `--allow-production`.
    let allow = Allow {
        production: spec.allow_production,
        ..Allow::NOTHING
    };
    let result = apply_spec(g, format, path, auto_approve, allow).await;
    finish(g, &resize, &edited, serial, switchover, result)
}

/// Adopted clusters run members pgdba does not create or remove.
fn refuse_adopted(spec: &ClusterSpec, command: &str) -> Result<(), Failure> {
    if !spec.is_adopted() {
        return Ok(());
    }
    Err(Failure::new(
        codes::REFUSED,
        format!(
            "cluster {} is adopted: pgdba does not run its members, so {command} cannot change them",
            spec.metadata.name
        ),
    )
    .hint("add or remove the member with what runs the cluster; `pgdba cluster status` then shows it"))
}

/// The spec with the new count, in memory.
fn prepare(resize: &Resize<'_>) -> Result<Edited, Failure> {
    edit::prepare(resize.path, &["spec", "replicas"], &json!(resize.after))
        .map_err(|e| edit_failure(&e, resize))
}

fn edit_failure(e: &EditError, resize: &Resize<'_>) -> Failure {
    let f = match e {
        EditError::Invalid { .. } => Failure::new(codes::INVALID_SPEC, crate::error_chain(e)),
        EditError::Io { .. } => Failure::new(codes::IO_ERROR, crate::error_chain(e)),
        _ => Failure::new(codes::SPEC_NOT_EDITED, crate::error_chain(e)),
    };
    f.hint(format!(
        "set `replicas: {}` in {} by hand, then run `pgdba apply -f {}`",
        resize.after,
        resize.path.display(),
        resize.path.display()
    ))
}

fn write(edited: &Edited) -> Result<(), Failure> {
    edited.write().map_err(|e| {
        Failure::new(codes::SPEC_NOT_EDITED, crate::error_chain(&e))
            .hint("run the command again: it reads the file anew")
    })
}

/// Plans the edited spec without writing it: the cluster must exist, the plan must change only
/// the member added or removed, and the production guard must let it through.
async fn preview(
    g: &Global,
    resize: &Resize<'_>,
    edited: &Edited,
    allow_production: bool,
) -> Result<(), Failure> {
    let store = StateStore::new(&g.state_dir);
    let state = store.load(resize.cluster)?;
    if state.is_none() {
        return Err(Failure::new(
            codes::NOT_FOUND,
            format!(
                "{} has no cluster {}: {} changes the replicas of a cluster pgdba created",
                store.dir().display(),
                resize.cluster,
                resize.command
            ),
        )
        .hint(format!(
            "create it first with `pgdba apply -f {}` (or name the state dir with --state-dir)",
            resize.path.display()
        )));
    }
    let loaded = edited.loaded();
    let planned = plan_one(&store, &loaded, None).await?;
    let mine = Address::Member(resize.member.clone());
    let others: Vec<String> = planned
        .plan
        .changes
        .iter()
        .map(|c| &c.address)
        .chain(planned.plan.forgotten.iter())
        .filter(|a| **a != mine)
        .map(ToString::to_string)
        .collect();
    if !others.is_empty() {
        return Err(Failure::new(
            codes::PENDING_CHANGES,
            format!(
                "cluster {} does not match {} yet, apart from the replica: {}; {} changes only \
                 the replicas of a cluster that matches its spec",
                resize.cluster,
                resize.path.display(),
                others.join(", "),
                resize.command
            ),
        )
        .hint(format!(
            "review them with `pgdba plan -f {0}`, apply them (`pgdba apply -f {0}`) or undo them, then run {1} again",
            resize.path.display(),
            resize.command
        ))
        .data(json!({ "pending": others })));
    }
    guard_production(
        &loaded.spec,
        planned.state.as_ref(),
        &planned.plan,
        allow_production,
    )
    .map_err(|f| {
        f.hint(format!(
            "if that is intended, run {} again with --allow-production",
            resize.command
        ))
    })
}

/// The member to hand the leader to: a replica that may take over now, the least behind
/// first, then the lowest-numbered.
fn successor(
    status: &crate::ops::cluster::ClusterStatus,
    leaving: &str,
    cluster: &str,
) -> Result<String, Failure> {
    let mut why_not = Vec::new();
    let mut eligible: Vec<(u64, u32, &str)> = Vec::new();
    for m in status.members.iter().filter(|m| m.name != leaving) {
        match crate::ops::cluster::refuse_candidate(status, &m.name, true) {
            None => eligible.push((
                m.lag_bytes.unwrap_or(u64::MAX),
                crate::providers::member_index(cluster, &m.name).unwrap_or(u32::MAX),
                &m.name,
            )),
            Some(why) => why_not.push(format!("{}: {why}", m.name)),
        }
    }
    eligible.sort();
    match eligible.first() {
        Some((_, _, name)) => Ok((*name).to_owned()),
        None => Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!(
                "cluster {cluster}: {leaving} leads and must hand over before it is removed, and \
                 no other member can take over now{}",
                if why_not.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", why_not.join("; "))
                }
            ),
        )
        .hint("`pgdba cluster status` shows the members; wait for a replica to stream, then run again")),
    }
}

/// After a switchover the old leader restarts as a replica: wait (bounded) until every member
/// runs again, so that the plan that follows sees the whole cluster. Past the bound, the plan
/// says what it cannot see.
async fn settle(k: &Known) {
    let _ = poll_until(SETTLE_WITHIN, Duration::from_millis(500), || async {
        match super::leader::read_status(k).await {
            Ok(s) => {
                let not_up: Vec<String> = s
                    .members
                    .iter()
                    .filter(|m| !matches!(m.state.as_str(), "running" | "streaming"))
                    .map(|m| format!("{} is {}", m.name, m.state))
                    .collect();
                if not_up.is_empty() {
                    Probe::Done(())
                } else {
                    Probe::NotYet(not_up.join(", "))
                }
            }
            Err(f) => Probe::NotYet(f.message),
        }
    })
    .await;
}

/// A `yes` on the terminal, or `CANCELLED`.
fn ask(question: &str) -> Result<(), Failure> {
    super::apply::ask_yes(question, "cancelled: nothing was changed")
}

fn with_data(mut f: Failure, resize: &Resize<'_>, extra: Value) -> Failure {
    let mut d = resize.data();
    if let Value::Object(extra) = extra {
        d.extend(extra);
    }
    f.data = Value::Object(d);
    f
}

/// The command's result from the apply's: its data under `apply`, and on a failure the spec
/// file put back unless actions ran.
fn finish(
    g: &Global,
    resize: &Resize<'_>,
    edited: &Edited,
    serial_before: Option<u64>,
    switchover: Option<Value>,
    result: Result<Outcome, Failure>,
) -> Result<Outcome, Failure> {
    let mut data = resize.data();
    let verb = if resize.after > resize.before {
        "added"
    } else {
        "removed"
    };
    let mut human = String::new();
    if let Some(s) = &switchover {
        human.push_str(&format!(
            "Switchover: {} -> {} (writes unavailable for {}).\n",
            s["from"].as_str().unwrap_or("?"),
            s["to"].as_str().unwrap_or("?"),
            s["write_unavailable_ms"]
                .as_u64()
                .map_or("(not measured)".to_owned(), |ms| format!("{ms} ms"))
        ));
        data.insert("switchover".to_owned(), s.clone());
    } else if resize.after < resize.before {
        data.insert("switchover".to_owned(), Value::Null);
    }
    human.push_str(&format!(
        "{}: replicas {} -> {}.\n",
        resize.path.display(),
        resize.before,
        resize.after
    ));
    match result {
        Ok(outcome) => {
            data.insert("apply".to_owned(), outcome.data);
            human.push_str(&outcome.human);
            if outcome.exit == 0 {
                human.push_str(&format!(
                    "Member {} {verb}: cluster {} has {} {}.\n",
                    resize.member,
                    resize.cluster,
                    resize.after,
                    if resize.after == 1 {
                        "replica"
                    } else {
                        "replicas"
                    }
                ));
            }
            Ok(Outcome {
                data: Value::Object(data),
                human,
                exit: outcome.exit,
                error: outcome.error,
            })
        }
        Err(f) => {
            let (restored, note) = match after_failed_apply(
                g,
                resize.cluster,
                serial_before,
                &f,
                edited,
            ) {
                SpecAfter::Kept => (
                    false,
                    format!(
                        "{} keeps replicas: {} (actions ran, so it describes where the cluster is \
                         going); `pgdba plan -f {}` shows what remains",
                        resize.path.display(),
                        resize.after,
                        resize.path.display()
                    ),
                ),
                SpecAfter::Restored => (
                    true,
                    format!(
                        "nothing was applied, and {} is back to replicas: {}",
                        resize.path.display(),
                        resize.before
                    ),
                ),
                SpecAfter::NotRestored(e) => (
                    false,
                    format!(
                        "nothing was applied, but {} could not be put back to replicas: {} \
                         ({e}); set it by hand",
                        resize.path.display(),
                        resize.before,
                    ),
                ),
            };
            data.insert("spec_restored".to_owned(), json!(restored));
            data.insert("apply".to_owned(), f.data);
            let message = match switchover.as_ref().and_then(|s| s["to"].as_str()) {
                Some(to) => format!(
                    "{}; the leader was handed to {to} before it, and that stays; {note}",
                    f.message.trim_end()
                ),
                None => format!("{}; {note}", f.message.trim_end()),
            };
            Err(Failure {
                code: f.code,
                message,
                hint: f.hint,
                data: Value::Object(data),
            })
        }
    }
}

/// What became of an edited spec file after its apply failed.
pub(super) enum SpecAfter {
    /// Actions ran: the file keeps the edit, since it describes where the cluster is going.
    Kept,
    /// Nothing ran: the file is as it was.
    Restored,
    /// Nothing ran, but the file could not be put back (why).
    NotRestored(String),
}

/// After a failed apply of an edited spec: keep the edit when actions ran, else put the file
/// back.
pub(super) fn after_failed_apply(
    g: &Global,
    cluster: &str,
    serial_before: Option<u64>,
    f: &Failure,
    edited: &Edited,
) -> SpecAfter {
    if actions_ran(g, cluster, serial_before, f) {
        return SpecAfter::Kept;
    }
    match edited.restore() {
        Ok(()) => SpecAfter::Restored,
        Err(e) => SpecAfter::NotRestored(crate::error_chain(&e)),
    }
}

/// The state's serial now (it moves with every step an apply records).
pub(super) fn state_serial(g: &Global, cluster: &str) -> Result<Option<u64>, Failure> {
    Ok(StateStore::new(&g.state_dir)
        .load(cluster)?
        .map(|s| s.serial))
}

/// Did the apply act before it failed (a failed action counts)? Its result says so, or the
/// state moved since `serial_before`.
fn actions_ran(g: &Global, cluster: &str, serial_before: Option<u64>, f: &Failure) -> bool {
    if f.data.get("result").is_some() {
        return true;
    }
    // A state that cannot be read now: assume the worst, and keep the file.
    state_serial(g, cluster).map_or(true, |now| now != serial_before)
}
