//! One function per action kind: precondition, effect, postcondition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{ActionError, Context, Effect};
use crate::diff;
use crate::observe::model::{PatroniMember, Role};
use crate::observe::pg;
use crate::plan::{Action, ActionKind};
use crate::poll::{Gave, Probe, poll_until};
use crate::roles::SUPERUSER;
use crate::state;

pub(super) type Outcome = Result<Effect, ActionError>;

const POLL: Duration = Duration::from_millis(200);

pub async fn run(a: &Action, ctx: &Context<'_>) -> Outcome {
    match &a.kind {
        ActionKind::CreateDcs => create_dcs(ctx).await,
        ActionKind::StartDcs => ctx
            .provider
            .start_dcs()
            .await
            .map(|()| Effect::Changed)
            .map_err(ActionError::from),
        ActionKind::CreateMember { bootstrap } => create_member(a, ctx, *bootstrap).await,
        ActionKind::CreatePooler => {
            ctx.provider
                .create_pooler(ctx.creds)
                .await
                .map_err(ActionError::from)?;
            record_pooler(ctx).await?;
            Ok(Effect::Changed)
        }
        ActionKind::StartPooler => {
            ctx.provider
                .start_pooler()
                .await
                .map_err(ActionError::from)?;
            record_pooler(ctx).await?;
            Ok(Effect::Changed)
        }
        ActionKind::DeletePooler => {
            ctx.provider
                .delete_pooler()
                .await
                .map_err(ActionError::from)?;
            ctx.recorder.update(|s| s.pooler = None)?;
            Ok(Effect::Changed)
        }
        ActionKind::CreateStanza => create_stanza(ctx).await,
        ActionKind::StartMember => {
            let name = member(a)?;
            ctx.provider
                .start_member(name, ctx.creds)
                .await
                .map_err(ActionError::from)?;
            record_member(ctx, name).await?;
            Ok(Effect::Changed)
        }
        ActionKind::DeleteMember => delete_member(a, ctx).await,
        ActionKind::ReinitMember => reinit_member(a, ctx).await,
        ActionKind::ReconfigureMember => {
            let name = member(a)?;
            ctx.provider
                .write_member_config(name, ctx.creds)
                .await
                .map_err(ActionError::from)?;
            ctx.patroni
                .reload(&api_url(ctx, name).await?)
                .await
                .map_err(ActionError::from)?;
            Ok(Effect::Changed)
        }
        ActionKind::PatchConfig { patch } => patch_config(ctx, patch).await,
        ActionKind::AwaitConfig { reload, restart } => await_config(a, ctx, reload, restart).await,
        ActionKind::RestartMember => restart_member(a, ctx).await,
        ActionKind::Switchover { candidate } => switchover(a, ctx, candidate).await,
        ActionKind::AwaitHealthy { max_lag } => await_healthy(a, ctx, *max_lag).await,
        ActionKind::AwaitReplay => await_replay(a, ctx).await,
        _ => super::sql::run(a, ctx).await,
    }
}

pub(super) fn member(a: &Action) -> Result<&str, ActionError> {
    a.member()
        .ok_or_else(|| ActionError::from(format!("{} does not name a member", a.target)))
}

async fn api_url(ctx: &Context<'_>, name: &str) -> Result<String, ActionError> {
    access(ctx, name).await.map(|a| a.api_url)
}

/// How to reach member `name`, as the provider says now.
pub(super) async fn access(
    ctx: &Context<'_>,
    name: &str,
) -> Result<crate::providers::Access, ActionError> {
    ctx.provider.access(name).await.map_err(ActionError::from)
}

/// Patroni's member list, from its keys in the DCS (read linearizably: see `patroni::dcs`).
async fn cluster_view(ctx: &Context<'_>) -> Result<Vec<PatroniMember>, ActionError> {
    let location = ctx
        .provider
        .dcs_location()
        .await
        .with_auth(ctx.creds.etcd_auth());
    ctx.patroni
        .dcs_view(&location)
        .await
        .map(|v| v.members)
        .map_err(|e| {
            ActionError::Refused(format!(
                "Patroni's keys in the DCS could not be read: {}",
                crate::error_chain(&e)
            ))
        })
}

/// A connection to the leader's PostgreSQL, as pgdba's superuser.
pub(super) async fn leader_conn<'a>(ctx: &'a Context<'_>) -> Result<pg::Conn<'a>, ActionError> {
    let l = leader(ctx).await?;
    pg_conn(ctx, &l.name).await
}

async fn leader(ctx: &Context<'_>) -> Result<PatroniMember, ActionError> {
    cluster_view(ctx)
        .await?
        .into_iter()
        .find(|m| m.role == Role::Leader)
        .ok_or_else(|| ActionError::from("the cluster has no leader"))
}

/// The cluster's stanza in the backup repository, on the leader: created (pgBackRest leaves an
/// existing one as it is), then checked: a WAL switch must reach the repository.
async fn create_stanza(ctx: &Context<'_>) -> Outcome {
    let leader = leader(ctx).await?;
    let stanza = ctx.spec.metadata.name.clone();
    for (command, within) in [("stanza-create", 120), ("check", 180)] {
        let argv = vec![
            "pgbackrest".to_owned(),
            format!("--stanza={stanza}"),
            command.to_owned(),
        ];
        let ran = ctx
            .provider
            .run_beside(
                &leader.name,
                &argv,
                &[],
                std::time::Duration::from_secs(within),
            )
            .await
            .map_err(ActionError::from)?;
        if !ran.success() {
            return Err(ActionError::Refused(format!(
                "pgbackrest {command} of stanza {stanza} on {}: {}",
                leader.name,
                crate::observe::pgbackrest_error(&ran)
            )));
        }
    }
    Ok(Effect::Changed)
}

async fn create_dcs(ctx: &Context<'_>) -> Outcome {
    let already = ctx.provider.inventory().await.dcs.exists && ctx.provider.dcs_healthy().await;
    if !already {
        let lineage = ctx
            .recorder
            .snapshot()
            .map(|s| s.lineage)
            .ok_or("the state could not be read")?;
        ctx.provider
            .create_dcs(&lineage, ctx.creds)
            .await
            .map_err(ActionError::from)?;
    }
    let location = ctx.provider.location();
    let endpoints = ctx.provider.dcs_location().await.endpoints;
    ctx.recorder.update(|s| {
        s.data_dir = Some(location);
        s.dcs.created = true;
        s.dcs.endpoints = endpoints;
    })?;
    Ok(if already {
        Effect::AlreadyDone("etcd already runs".to_owned())
    } else {
        Effect::Changed
    })
}

async fn create_member(a: &Action, ctx: &Context<'_>, bootstrap: bool) -> Outcome {
    let name = member(a)?;
    let inventory = ctx.provider.inventory().await.members;
    let existing = inventory.iter().find(|m| m.name == name);
    if existing.is_some_and(|m| m.running) {
        // Precondition: the member must not exist yet; a running one is taken as created.
        record_member(ctx, name).await?;
        return Ok(Effect::AlreadyDone(format!("member {name} already runs")));
    }
    if !bootstrap {
        let leader = leader(ctx)
            .await
            .map_err(|e| format!("cannot create replica {name}: no leader to clone ({e})"))?;
        // The leader creates a member's slot only in its own loop (up to loop_wait later); made
        // now, the new replica streams as soon as its base backup is done. Patroni adopts it.
        let conn = pg_conn(ctx, &leader.name).await?;
        pg::ensure_physical_slot(&conn, &slot_name(name))
            .await
            .map_err(|e| format!("slot for {name} on {}: {e}", leader.name))?;
    }
    ctx.provider
        .create_member(name, ctx.creds)
        .await
        .map_err(ActionError::from)?;
    record_member(ctx, name).await?;
    Ok(Effect::Changed)
}

/// Patroni's slot name for a member: lowercase, anything but [a-z0-9_] becomes `_`.
fn slot_name(member: &str) -> String {
    member
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn record_member(ctx: &Context<'_>, name: &str) -> Result<(), ActionError> {
    let a = access(ctx, name).await?;
    ctx.recorder.update(|s| {
        s.members.retain(|x| x.name != name);
        s.members.push(state::Member {
            name: name.to_owned(),
            host: a.host,
            port: a.port,
            api_url: a.api_url,
            data_dir: a.data_dir,
            socket_dir: a
                .socket_dir
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        });
        s.members.sort_by(|a, b| a.name.cmp(&b.name));
    })
}

/// Where the pooler is reached, as the provider says now, into the state.
async fn record_pooler(ctx: &Context<'_>) -> Result<(), ActionError> {
    let address = ctx
        .provider
        .inventory()
        .await
        .pooler
        .and_then(|p| p.address)
        .ok_or("the pooler was started but the provider does not see it")?;
    ctx.recorder.update(|s| {
        s.pooler = Some(state::PoolerState {
            host: address.0,
            port: address.1,
        });
    })
}

async fn delete_member(a: &Action, ctx: &Context<'_>) -> Outcome {
    let name = member(a)?;
    if let Ok(l) = leader(ctx).await
        && l.name == name
    {
        return Err(format!(
            "member {name} is the leader; refusing to remove it (switch over first)"
        )
        .into());
    }
    ctx.provider
        .delete_member(name, ctx.creds)
        .await
        .map_err(ActionError::from)?;
    ctx.recorder
        .update(|s| s.members.retain(|m| m.name != name))?;
    Ok(Effect::Changed)
}

async fn patch_config(ctx: &Context<'_>, patch: &serde_json::Value) -> Outcome {
    let l = leader(ctx).await?;
    // Where pgdba reaches the leader's REST API is the provider's to say: the address in its
    // DCS key is where the members reach it.
    ctx.patroni
        .patch_config(&api_url(ctx, &l.name).await?, patch)
        .await
        .map_err(ActionError::from)?;
    // Every member watches the config key and applies it within about a second; a
    // `POST /reload` would only delay that (it is scheduled for the next loop).
    let params = patch
        .get("postgresql")
        .and_then(|p| p.get("parameters"))
        .and_then(|p| p.as_object())
        .cloned()
        .unwrap_or_default();
    ctx.recorder.update(|s| {
        for (k, v) in &params {
            if v.is_null() {
                s.managed_parameters.remove(k);
            } else {
                s.managed_parameters.insert(k.clone());
            }
        }
    })?;
    Ok(Effect::Changed)
}

async fn await_config(
    a: &Action,
    ctx: &Context<'_>,
    reload: &BTreeMap<String, String>,
    restart: &BTreeMap<String, String>,
) -> Outcome {
    let name = member(a)?;
    let names: Vec<String> = reload.keys().chain(restart.keys()).cloned().collect();
    let conn = pg_conn(ctx, name).await?;
    let applied = poll_until(ctx.gate_timeout, POLL, || async {
        let settings = match pg::settings(&conn, &names).await {
            Ok(s) => s,
            Err(e) => return Probe::NotYet(crate::error_chain(&e)),
        };
        let lagging: Vec<&str> = names
            .iter()
            .filter(|n| {
                let Some(s) = settings.get(*n) else {
                    return true;
                };
                let want = reload
                    .get(*n)
                    .or_else(|| restart.get(*n))
                    .cloned()
                    .unwrap_or_default();
                let same = diff::same_setting(ctx.spec, n, &want, &s.setting);
                !(same || (restart.contains_key(*n) && s.pending_restart))
            })
            .map(String::as_str)
            .collect();
        if lagging.is_empty() {
            Probe::Done(())
        } else {
            Probe::NotYet(format!("not yet applied: {}", lagging.join(", ")))
        }
    })
    .await;
    applied.map(|()| Effect::Changed).map_err(|g| {
        gave_up(
            g,
            &format!(
                "member {name}: configuration not applied within {}s",
                ctx.gate_timeout.as_secs()
            ),
        )
    })
}

/// How much of an action's time (the gate timeout, until `deadline`) has gone: `12s of 140s
/// used`.
fn time_used(ctx: &Context<'_>, deadline: Instant) -> String {
    let left = deadline.saturating_duration_since(Instant::now());
    format!(
        "{}s of {}s used",
        ctx.gate_timeout.saturating_sub(left).as_secs(),
        ctx.gate_timeout.as_secs()
    )
}

/// A wait that ended without its condition, said: `what` (what did not happen within how
/// long), then what the last look saw, or why it stopped.
fn gave_up(g: Gave, what: &str) -> ActionError {
    ActionError::GaveUp(match g {
        Gave::Up { last } => format!("{what} ({last})"),
        Gave::Failed(why) => format!("{what}: {why}"),
    })
}

pub(super) async fn pg_conn<'a>(
    ctx: &'a Context<'_>,
    name: &str,
) -> Result<pg::Conn<'a>, ActionError> {
    let a = access(ctx, name).await?;
    Ok(pg::Conn {
        host: a.host,
        port: a.port,
        user: SUPERUSER,
        password: &ctx.creds.superuser,
        // Apply can wait longer than observation: a busy primary (a base backup, a CREATE
        // DATABASE) may be slow to accept a connection.
        timeout: Duration::from_secs(10),
        read_only: false,
        socket: None,
    })
}

async fn restart_member(a: &Action, ctx: &Context<'_>) -> Outcome {
    let name = member(a)?;
    let url = api_url(ctx, name).await?;
    let conn = pg_conn(ctx, name).await?;
    // Precondition: a restart is pending, as PostgreSQL says (`pg_settings`) or Patroni does.
    // A demoted primary has already restarted with the new configuration.
    let status = ctx.patroni.status(&url).await.map_err(ActionError::from)?;
    let by_patroni = crate::patroni::pending_restart(&status).0;
    let by_pg = pg::pending_restarts(&conn)
        .await
        .map_err(|e| format!("member {name}: {e}"))?
        > 0;
    if !by_patroni && !by_pg {
        return Ok(Effect::AlreadyDone(format!(
            "member {name} has no pending restart"
        )));
    }
    // The whole action, the restart request included, has the gate's time.
    let deadline = Instant::now() + ctx.gate_timeout;
    let answer = ctx
        .patroni
        .restart(&url, ctx.gate_timeout)
        .await
        .map_err(|e| {
            format!(
                "restart of {name}: {} ({})",
                crate::error_chain(&e),
                time_used(ctx, deadline)
            )
        })?;
    if !(200..300).contains(&answer.status) {
        let state = ctx
            .patroni
            .status(&url)
            .await
            .ok()
            .and_then(|s| s.get("state")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let why = if crate::patroni::is_terminal_state(&state) {
            format!("; Patroni reports its PostgreSQL {state}, and it will not recover by waiting")
        } else {
            String::new()
        };
        return Err(format!(
            "restart of {name} answered {}: {}{why}",
            answer.status,
            answer.body.trim()
        )
        .into());
    }
    // Postcondition: it runs again, and neither PostgreSQL nor Patroni has a restart pending.
    let left = deadline.saturating_duration_since(Instant::now());
    poll_until(left, POLL, || async {
        let Ok(s) = ctx.patroni.status(&url).await else {
            return Probe::NotYet("its REST API does not answer".to_owned());
        };
        let state = s.get("state").and_then(|v| v.as_str()).unwrap_or_default();
        if crate::patroni::is_terminal_state(state) {
            return Probe::Fail(format!(
                "Patroni reports its PostgreSQL {state} after the restart; it will not recover by waiting"
            ));
        }
        let done = state == "running"
            && !crate::patroni::pending_restart(&s).0
            && pg::pending_restarts(&conn).await.is_ok_and(|n| n == 0);
        if done {
            Probe::Done(Effect::Changed)
        } else {
            Probe::NotYet(format!("{state}, a restart still pending"))
        }
    })
    .await
    .map_err(|g| {
        ActionError::GaveUp(match g {
            Gave::Failed(why) => format!("member {name}: {why}"),
            Gave::Up { last } => format!(
                "member {name} still waits for a restart after {}s ({last})",
                ctx.gate_timeout.as_secs()
            ),
        })
    })
}

async fn switchover(a: &Action, ctx: &Context<'_>, candidate: &str) -> Outcome {
    let from = member(a)?;
    // Precondition: `from` leads and the candidate streams.
    let view = cluster_view(ctx).await?;
    let current = view
        .iter()
        .find(|m| m.role == Role::Leader)
        .map(|m| m.name.clone());
    if current.as_deref() != Some(from) {
        return Err(format!(
            "the plan switches over from {from}, but the leader is now {}",
            current.as_deref().unwrap_or("nobody")
        )
        .into());
    }
    // The candidate's key in the DCS follows its live state by up to `loop_wait` (a replica
    // just restarted reports `streaming` there at its next loop); Patroni checks the key, so
    // wait for it.
    let streams = |view: &[PatroniMember]| {
        view.iter()
            .find(|m| m.name == candidate)
            .is_some_and(|m| m.role == Role::Replica && m.state == "streaming")
    };
    if !streams(&view) {
        poll_until(ctx.gate_timeout, POLL, || async {
            match cluster_view(ctx).await {
                Ok(v) if streams(&v) => Probe::Done(()),
                Ok(_) => Probe::NotYet(format!("{candidate} does not stream yet")),
                Err(e) => Probe::NotYet(crate::error_chain(&e)),
            }
        })
        .await
        .map_err(|g| {
            gave_up(
                g,
                &format!("switchover candidate {candidate} is not a streaming replica"),
            )
        })?;
    }
    let url = api_url(ctx, from).await?;
    let deadline = Instant::now() + ctx.gate_timeout;
    ctx.patroni
        .switchover(&url, from, candidate, ctx.gate_timeout)
        .await
        .map_err(|e| {
            format!(
                "switchover from {from} to {candidate}: {} ({})",
                crate::error_chain(&e),
                time_used(ctx, deadline)
            )
        })?;
    // Postcondition: the candidate leads.
    let left = deadline.saturating_duration_since(Instant::now());
    poll_until(left, POLL, || async {
        match leader(ctx).await {
            Ok(l) if l.name == candidate => Probe::Done(Effect::Note(format!("{candidate} leads"))),
            Ok(l) => Probe::NotYet(format!("{} leads", l.name)),
            Err(e) => Probe::NotYet(crate::error_chain(&e)),
        }
    })
    .await
    .map_err(|g| {
        gave_up(
            g,
            &format!(
                "{candidate} did not become the leader within {}s",
                ctx.gate_timeout.as_secs()
            ),
        )
    })
}

/// Health as the member reports it live (`GET /patroni`), which is up to `loop_wait` fresher than
/// the member keys `/cluster` is built from: a leader runs; a replica runs, streams, and its
/// received WAL is within `max_lag` bytes of the leader's.
/// Why a member is not healthy: not yet (worth waiting for), or in a state Patroni does not
/// leave by itself (waiting is useless: the gate fails at once).
enum Health {
    NotYet(String),
    Terminal(String),
}

impl From<ActionError> for Health {
    fn from(e: ActionError) -> Health {
        Health::NotYet(crate::error_chain(&e))
    }
}

impl From<String> for Health {
    fn from(s: String) -> Health {
        Health::NotYet(s)
    }
}

impl From<&str> for Health {
    fn from(s: &str) -> Health {
        Health::NotYet(s.to_owned())
    }
}

async fn member_health(ctx: &Context<'_>, name: &str, max_lag: u64) -> Result<(), Health> {
    let status = ctx
        .patroni
        .status(&api_url(ctx, name).await?)
        .await
        .map_err(|e| Health::NotYet(crate::error_chain(&e)))?;
    let field = |k: &str| {
        status
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("none")
            .to_owned()
    };
    let (state, role) = (field("state"), field("role"));
    if crate::patroni::is_terminal_state(&state) {
        return Err(Health::Terminal(format!(
            "Patroni reports its PostgreSQL {state}; it will not recover by waiting (`pgdba plan` offers to rebuild a replica that cannot start)"
        )));
    }
    if state != "running" {
        return Err(format!("{role} {state}").into());
    }
    match crate::patroni::parse_role(&role) {
        // Later actions find the leader through the DCS (`/cluster`): it must agree.
        Role::Leader => match leader(ctx).await {
            Ok(l) if l.name == name => Ok(()),
            Ok(l) => Err(format!("primary, but the DCS names {} the leader", l.name).into()),
            Err(e) => {
                Err(format!("primary, not yet published as the leader in the DCS: {e}").into())
            }
        },
        Role::Replica => {
            if field("replication_state") != "streaming" {
                return Err(format!("replica, replication {}", field("replication_state")).into());
            }
            let received = status
                .pointer("/xlog/received_location")
                .and_then(|v| v.as_u64())
                .ok_or_else(|| Health::from("replica without a received WAL location"))?;
            let leader = leader(ctx).await.map_err(Health::from)?;
            let lstatus = ctx
                .patroni
                .status(&api_url(ctx, &leader.name).await?)
                .await
                .map_err(|e| Health::NotYet(crate::error_chain(&e)))?;
            let head = lstatus
                .pointer("/xlog/location")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let lag = head.saturating_sub(received);
            if lag <= max_lag {
                Ok(())
            } else {
                Err(format!("replica streaming, {lag} bytes behind").into())
            }
        }
        Role::Other => Err(format!("{role} {state}").into()),
    }
}

async fn await_healthy(a: &Action, ctx: &Context<'_>, max_lag: u64) -> Outcome {
    let name = member(a)?;
    poll_until(ctx.gate_timeout, POLL, || async {
        match member_health(ctx, name, max_lag).await {
            Ok(()) => Probe::Done(Effect::Changed),
            Err(Health::Terminal(e)) => Probe::Fail(e),
            Err(Health::NotYet(e)) => Probe::NotYet(e),
        }
    })
    .await
    .map_err(|g| {
        ActionError::GaveUp(match g {
            Gave::Failed(why) => format!("member {name}: {why}"),
            Gave::Up { last } => format!(
                "member {name} not healthy within {}s: {last}",
                ctx.gate_timeout.as_secs()
            ),
        })
    })
}

/// Wait until replica `a` has replayed the leader's WAL up to the leader's position now.
async fn await_replay(a: &Action, ctx: &Context<'_>) -> Outcome {
    let name = member(a)?;
    let l = leader(ctx).await?;
    if l.name == name {
        return Err(format!("member {name} leads; the plan expected a replica").into());
    }
    let target = pg::wal_position(&pg_conn(ctx, &l.name).await?, pg::WalPosition::Current)
        .await
        .map_err(|e| format!("WAL position of the leader {}: {e}", l.name))?;
    let conn = pg_conn(ctx, name).await?;
    poll_until(ctx.gate_timeout, POLL, || async {
        match pg::wal_position(&conn, pg::WalPosition::Replayed).await {
            Ok(lsn) if lsn >= target => Probe::Done(Effect::Note(format!(
                "replayed the leader's WAL up to {target}"
            ))),
            Ok(lsn) => Probe::NotYet(format!(
                "replayed up to {lsn}, {} bytes short",
                target - lsn
            )),
            Err(e) => Probe::NotYet(e.to_string()),
        }
    })
    .await
    .map_err(|g| {
        gave_up(
            g,
            &format!(
                "member {name} did not replay the leader's WAL up to {target} within {}s",
                ctx.gate_timeout.as_secs()
            ),
        )
    })
}

/// Rebuild a replica that cannot start: Patroni discards its data directory and clones the
/// leader again. Precondition: it is still in a state Patroni does not leave by itself, and it
/// does not lead.
async fn reinit_member(a: &Action, ctx: &Context<'_>) -> Outcome {
    let name = member(a)?;
    let url = api_url(ctx, name).await?;
    let status = ctx.patroni.status(&url).await.map_err(ActionError::from)?;
    let state = status
        .get("state")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !crate::patroni::is_terminal_state(state) {
        return Ok(Effect::AlreadyDone(format!(
            "member {name} is {state} now; not rebuilt"
        )));
    }
    if leader(ctx).await.is_ok_and(|l| l.name == name) {
        return Err(format!("member {name} leads; pgdba does not rebuild a leader").into());
    }
    ctx.patroni
        .reinitialize(&url)
        .await
        .map_err(ActionError::from)?;
    Ok(Effect::Changed)
}
