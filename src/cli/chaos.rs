//! `chaos drill failover`: the CLI edge of [`crate::ops::chaos`]. The leader is killed under a
//! writer's load; the drill measures the outage and the acknowledged commits lost, brings the
//! old leader back and measures how it rejoins, and records all of it in the cluster's history.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::leader::read_status;
use super::target::{ClusterArg, Known, resolve_cluster};
use crate::ops::chaos::{self, Writer};

/// The guards every fault shares: the flag, and never on `env: production`.
fn guard(k: &Known, i_know: bool, what: &str) -> Result<(), Failure> {
    if !i_know {
        return Err(Failure::new(
            codes::USAGE,
            format!(
                "{what} injects a fault into cluster {}: it needs --i-know-what-i-am-doing",
                k.name
            ),
        ));
    }
    if super::destroy::is_production(&k.spec, Some(&k.state)) {
        return Err(Failure::new(
            codes::PROTECTED,
            format!(
                "cluster {} is labelled env: production: pgdba injects no fault into it",
                k.name
            ),
        )
        .hint("drill on a copy: `pgdba backup restore --to-cluster NEW` makes one"));
    }
    Ok(())
}

/// A switchover to `to`, asked again with the candidate Patroni names when it refuses one that
/// is not its synchronous standby yet (it names it in the DCS up to a loop after a member
/// rejoins): at most 4 tries, a loop apart. The result, and the candidate last asked for.
async fn hand_over(
    k: &Known,
    client: &crate::patroni::Client,
    mut status: crate::ops::cluster::ClusterStatus,
    mut to: String,
) -> (
    Result<crate::ops::leader::LeaderChange, crate::ops::leader::LeaderError>,
    String,
) {
    use crate::ops::leader::{Kind, change};
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r = change(
            client,
            &status,
            &k.servers,
            &to,
            Kind::Switchover,
            Duration::from_secs(90),
        )
        .await;
        let refused_sync = r
            .as_ref()
            .err()
            .is_some_and(|e| crate::error_chain(e).contains("does not match with sync_standby"));
        if !refused_sync || attempt >= 4 {
            return (r, to);
        }
        tokio::time::sleep(Duration::from_secs(u64::from(
            k.spec.spec.patroni.loop_wait,
        )))
        .await;
        if let Ok(s) = read_status(k).await {
            if let Some(sync) = s
                .sync_standby
                .iter()
                .find(|n| s.member(n).is_some_and(|m| m.state == "streaming"))
            {
                to = sync.clone();
            }
            status = s;
        }
    }
}

/// `chaos drill switchover`: the planned case, measured the same way. The lead is handed to
/// the most caught-up streaming replica (the synchronous standby when there is one) while the
/// writer commits; the old leader follows the new one as Patroni makes it.
pub(super) async fn drill_switchover(
    g: &Global,
    c: &ClusterArg,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    let k = resolve_cluster(g, c).await?;
    guard(&k, i_know, "chaos drill switchover")?;
    let status = read_status(&k).await?;
    let Some(old) = status.leader.clone() else {
        return Err(Failure::new(
            codes::NO_PRIMARY,
            format!("cluster {} has no leader to hand over", k.name),
        ));
    };
    let candidate = status
        .sync_standby
        .iter()
        .find(|s| status.member(s).is_some_and(|m| m.state == "streaming"))
        .cloned()
        .or_else(|| {
            status
                .members
                .iter()
                .filter(|m| m.name != old && m.state == "streaming")
                .min_by_key(|m| m.lag_bytes.unwrap_or(u64::MAX))
                .map(|m| m.name.clone())
        });
    let Some(to) = candidate else {
        return Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!(
                "cluster {}: no replica streams from {old} to take over",
                k.name
            ),
        ));
    };
    if let Some(why) = crate::ops::cluster::refuse_candidate(&status, &to, true) {
        return Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!("cluster {}: switchover to {to} refused: {why}", k.name),
        ));
    }
    let _lock = k.store.lock(&k.name, "chaos drill switchover")?;
    let backup = backup_first(&k, &old, no_backup).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let table = chaos::table_name(&id[..12]);
    chaos::prepare(&k.servers, &table)
        .await
        .map_err(|e| Failure::new(codes::SQL_ERROR, format!("cluster {}: {e}", k.name)))?;
    let writers = Writers::start(&k, &table).await?;
    if let Err(e) = chaos::caught_up(
        &k.servers,
        std::slice::from_ref(&to),
        Duration::from_secs(60),
    )
    .await
    {
        writers.abandon(&k, &table).await;
        return Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!("cluster {}: before the switchover to {to}: {e}", k.name),
        )
        .hint("`pgdba cluster status` shows the replicas' lag"));
    }
    let client = k.patroni(Duration::from_secs(90))?;
    let at = chrono::Utc::now();
    let started = Instant::now();
    let (done, to) = hand_over(&k, &client, status, to).await;
    if done.is_ok() {
        writers
            .pooled_commit_after(Instant::now(), Duration::from_secs(60))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (written, pooled) = writers.finish(started).await;
    // Read back (and the table dropped) whatever the switchover did.
    let back = read_back(&k, &table, &written, pooled.as_ref(), &[]).await;
    let done = done.map_err(|e| {
        Failure::new(
            codes::FAILED,
            format!(
                "cluster {}: the switchover to {to} failed: {}",
                k.name,
                crate::error_chain(&e)
            ),
        )
    })?;
    let (missing, via_pooler, _) = back?;
    // The old leader follows the new one.
    let rejoin_started = Instant::now();
    let mut rejoin_ms = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(s) = read_status(&k).await
            && s.member(&old).is_some_and(|m| m.state == "streaming")
        {
            rejoin_ms =
                json!(u64::try_from(rejoin_started.elapsed().as_millis()).unwrap_or(u64::MAX));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rpo = missing.len();
    // Lost by either writer.
    let lost =
        rpo + usize::try_from(via_pooler["rpo_transactions"].as_u64().unwrap_or(0)).unwrap_or(0);
    let p = &k.spec.spec.patroni;
    let data = json!({
        "cluster": k.name,
        "drill": "switchover",
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "old_leader": old,
        "new_leader": done.to,
        "timeline": done.timeline,
        "rto_ms": written.rto_ms,
        "write_unavailable_ms": done.write_unavailable_ms,
        "rpo_transactions": rpo,
        "missing": missing,
        "commits": written.commits,
        "failed_writes": written.failed_writes,
        "via_pooler": via_pooler,
        "rejoined_via": if rejoin_ms.is_null() { serde_json::Value::Null } else { json!("switchover") },
        "rejoin_ms": rejoin_ms,
        "settings": {
            "ttl": p.ttl,
            "loop_wait": p.loop_wait,
            "retry_timeout": p.retry_timeout,
            "synchronous_mode": p.synchronous_mode,
        },
        "backup": backup,
    });
    let summary = format!(
        "switchover drill: {old} handed the lead to {} with {} ms without writes, {rpo} acknowledged commit(s) lost",
        done.to,
        done.write_unavailable_ms.unwrap_or(written.rto_ms)
    );
    k.record(
        "chaos drill switchover",
        lost == 0,
        summary.clone(),
        data.clone(),
    );
    if lost > 0 {
        let f = Failure::new(
            codes::DRILL_FAILED,
            format!(
                "cluster {}: a switchover lost {lost} acknowledged commit(s)",
                k.name
            ),
        )
        .data(data);
        return Ok(super::backup::with_text(f, format!("{summary}\n")));
    }
    Ok(Outcome::ok(data, format!("{summary}\n")))
}

/// A backup before a fault, when the cluster has `spec.backup` (unless `--no-backup`): an
/// incremental one (full when there is none), beside the leader. Its label, or null.
async fn backup_first(
    k: &Known,
    leader: &str,
    no_backup: bool,
) -> Result<serde_json::Value, Failure> {
    if k.spec.spec.backup.is_none() || no_backup {
        return Ok(serde_json::Value::Null);
    }
    let runner = crate::ops::backup::OnMember::new(k.cluster.provider.as_ref(), leader);
    let opts = crate::ops::backup::CreateOptions {
        verify_within: None,
        ..Default::default()
    };
    let done = crate::ops::backup::create(
        &runner,
        &k.name,
        crate::ops::backup::Kind::Incremental,
        &opts,
        None,
    )
    .await
    .map_err(|e| {
        Failure::new(
            codes::BACKUP_FAILED,
            format!(
                "cluster {}: the backup before the fault failed: {}",
                k.name,
                crate::error_chain(&e)
            ),
        )
        .hint("fix backups first, or run it with --no-backup")
    })?;
    Ok(json!(done.backup.id))
}

/// What a fault on one member ends with: its record in the cluster's history (`command`,
/// `summary`) and the answer, `data` naming the fault, when, the member, its role and the
/// backup taken first.
#[allow(clippy::too_many_arguments)]
fn member_fault_done(
    k: &Known,
    command: &str,
    fault: &str,
    at: chrono::DateTime<chrono::Utc>,
    member: &str,
    role: &str,
    backup: serde_json::Value,
    summary: String,
    human: String,
) -> Outcome {
    let data = json!({
        "cluster": k.name,
        "fault": fault,
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "member": member,
        "role": role,
        "backup": backup,
    });
    k.record(command, true, summary, data.clone());
    Outcome::ok(data, human)
}

/// `chaos kill-node --member M | --host H`: the member killed as a crash would; nothing
/// starts it again but `apply`.
pub(super) async fn kill_node(
    g: &Global,
    c: &ClusterArg,
    m: &super::target::MemberArg,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    let k = resolve_cluster(g, c).await?;
    guard(&k, i_know, "chaos kill-node")?;
    let Some(member) = k.member(m)?.map(|s| s.name.clone()) else {
        return Err(Failure::new(
            codes::USAGE,
            "chaos kill-node needs the member: --member NAME or --host HOST[:PORT]",
        ));
    };
    let status = read_status(&k).await?;
    let role = status
        .member(&member)
        .map_or_else(|| "unknown".to_owned(), |s| s.role.clone());
    let leader = status.leader.clone().unwrap_or_else(|| member.clone());
    let _lock = k.store.lock(&k.name, "chaos kill-node")?;
    let backup = backup_first(&k, &leader, no_backup).await?;
    let at = chrono::Utc::now();
    k.cluster.provider.kill_member(&member).await.map_err(|e| {
        Failure::new(
            codes::FAILED,
            format!(
                "cluster {}: killing {member}: {}",
                k.name,
                crate::error_chain(&e)
            ),
        )
    })?;
    let human = format!(
        "Killed {member} ({role}) of cluster {}: its Patroni and PostgreSQL, at once.\nNothing starts it again: `pgdba drift` reports it, `pgdba plan` shows it, `pgdba apply` starts it.\n",
        k.name
    );
    let summary = format!("{member} ({role}) killed");
    Ok(member_fault_done(
        &k,
        "chaos kill-node",
        "kill-node",
        at,
        &member,
        &role,
        backup,
        summary,
        human,
    ))
}

/// `chaos freeze` (`frozen`) and `chaos thaw`: every process of the member stopped where it is,
/// or resumed. Thawing needs no flag (it undoes a fault) and is allowed wherever freezing was.
pub(super) async fn freeze(
    g: &Global,
    c: &ClusterArg,
    m: &super::target::MemberArg,
    frozen: bool,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    let what = if frozen { "chaos freeze" } else { "chaos thaw" };
    let k = resolve_cluster(g, c).await?;
    if frozen {
        guard(&k, i_know, what)?;
    }
    let Some(member) = k.member(m)?.map(|s| s.name.clone()) else {
        return Err(Failure::new(
            codes::USAGE,
            format!("{what} needs the member: --member NAME or --host HOST[:PORT]"),
        ));
    };
    // A frozen member does not answer: its role is what the others' Patroni say, if anyone.
    let status = read_status(&k).await.ok();
    let role = status
        .as_ref()
        .and_then(|s| s.member(&member))
        .map_or_else(|| "unknown".to_owned(), |s| s.role.clone());
    let _lock = k.store.lock(&k.name, what)?;
    let backup = match (frozen, status.as_ref().and_then(|s| s.leader.clone())) {
        (true, Some(leader)) => backup_first(&k, &leader, no_backup).await?,
        _ => serde_json::Value::Null,
    };
    let at = chrono::Utc::now();
    k.cluster
        .provider
        .freeze_member(&member, frozen)
        .await
        .map_err(|e| {
            Failure::new(
                codes::FAILED,
                format!(
                    "cluster {}: {} {member}: {}",
                    k.name,
                    if frozen { "freezing" } else { "thawing" },
                    crate::error_chain(&e)
                ),
            )
        })?;
    let summary = format!(
        "{member} ({role}) {}",
        if frozen { "frozen" } else { "thawed" }
    );
    let human = if frozen {
        format!(
            "Froze {member} ({role}) of cluster {}: its processes are stopped where they are, its connections open and silent.\n`pgdba chaos thaw -f SPEC --member {member}` resumes it.\n",
            k.name
        )
    } else {
        format!("Thawed {member} of cluster {}.\n", k.name)
    };
    Ok(member_fault_done(
        &k,
        what,
        if frozen { "freeze" } else { "thaw" },
        at,
        &member,
        &role,
        backup,
        summary,
        human,
    ))
}

/// `chaos report`: the faults and drills of the cluster's history, oldest first.
pub(super) async fn report(
    g: &Global,
    format: crate::output::Format,
    c: &ClusterArg,
) -> Result<Outcome, Failure> {
    let name = match (&c.name, &c.file) {
        (Some(n), _) => n.clone(),
        (None, Some(f)) => {
            super::specs::load_one(f, "chaos report")?
                .spec
                .metadata
                .name
        }
        (None, None) => {
            return Err(Failure::new(
                codes::USAGE,
                "chaos report needs the cluster: -f SPEC or --name NAME",
            ));
        }
    };
    let store = crate::state::StateStore::new(&g.state_dir);
    if store.load(&name)?.is_none() {
        return Err(Failure::new(
            codes::NOT_FOUND,
            format!("{} has no cluster {name}", store.dir().display()),
        ));
    }
    let runs: Vec<crate::state::HistoryEntry> = store
        .history(&name)?
        .into_iter()
        .filter(|h| h.command.starts_with("chaos "))
        .collect();
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|h| {
            let d = &h.details;
            let f = |k: &str| match &d[k] {
                serde_json::Value::Null => "-".to_owned(),
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            vec![
                h.at.clone(),
                h.command.trim_start_matches("chaos ").to_owned(),
                if h.success { "ok" } else { "FAILED" }.to_owned(),
                if !d["old_leader"].is_null() {
                    f("old_leader")
                } else if let Some(all) = d["members"].as_array() {
                    all.iter()
                        .filter_map(serde_json::Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    f("member")
                },
                f("new_leader"),
                f("rto_ms"),
                f("rpo_transactions"),
                f("rejoined_via"),
            ]
        })
        .collect();
    let headers = [
        "at",
        "run",
        "result",
        "member",
        "new leader",
        "RTO ms",
        "RPO",
        "rejoined via",
    ];
    let human = if format == crate::output::Format::Markdown {
        let mut out = format!("# Chaos report: cluster {name}\n\n");
        if rows.is_empty() {
            out.push_str("No fault or drill has run against this cluster.\n");
        } else {
            let _ = writeln!(out, "| {} |", headers.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
            for r in &rows {
                let _ = writeln!(out, "| {} |", r.join(" | "));
            }
            out.push('\n');
            for h in &runs {
                let _ = writeln!(out, "- {} `{}`: {}", h.at, h.command, h.summary);
            }
        }
        out
    } else if rows.is_empty() {
        format!("cluster {name}: no fault or drill has run against it\n")
    } else {
        format!(
            "cluster {name}:\n{}",
            crate::output::columns(&headers, &rows)
        )
    };
    let data = json!({ "cluster": name, "runs": runs });
    Ok(Outcome::ok(data, human))
}

/// The `PG_VERSION` file's modification time on `server`: a member cloned again has a new one;
/// one rewound or restarted keeps it.
async fn data_dir_made(server: &crate::ops::Server) -> Result<String, String> {
    let c = server
        .connect(Duration::from_secs(5))
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let row = c
        .query_one(
            "SELECT (pg_stat_file('PG_VERSION')).modification::text",
            &[],
        )
        .await
        .map_err(|e| crate::error_chain(&e))?;
    row.try_get(0).map_err(|e| crate::error_chain(&e))
}

/// The timeline `server` writes on: the first 8 hex digits of its current WAL file's name.
async fn timeline_of(server: &crate::ops::Server) -> Option<u64> {
    let c = server.connect(Duration::from_secs(5)).await.ok()?;
    let row = c
        .query_one("SELECT pg_walfile_name(pg_current_wal_lsn())", &[])
        .await
        .ok()?;
    let name: String = row.try_get(0).ok()?;
    u64::from_str_radix(name.get(..8)?, 16).ok()
}

/// Wait, at most 180 s, until `old` streams again (and learn where it answers now): how it came back (`reinit` when its data
/// directory was made anew, else `pg_rewind`: it kept it) and in how many ms from `started`;
/// both null, and a note, when it did not.
async fn rejoined(
    k: &mut Known,
    old: &str,
    made_before: &Result<String, String>,
    started: Instant,
    notes: &mut Vec<String>,
) -> (serde_json::Value, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if let Ok(s) = read_status(k).await
            && s.member(old).is_some_and(|m| m.state == "streaming")
        {
            let ms = json!(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
            // Where it answers now: a container started again, or joined to its network
            // again, is published on new host ports.
            k.refresh_servers().await;
            let made_after = match k.servers.iter().find(|s| s.name == old) {
                Some(s) => data_dir_made(s).await,
                None => Err(format!("{old} is not a member")),
            };
            let via = match (made_before, &made_after) {
                (Ok(b), Ok(a)) if b != a => json!("reinit"),
                (Ok(_), Ok(_)) => json!("pg_rewind"),
                (Err(e), _) | (_, Err(e)) => {
                    notes.push(format!("how {old} rejoined is unknown: {e}"));
                    serde_json::Value::Null
                }
            };
            return (via, ms);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    notes.push(format!("{old} did not stream again within 180 s"));
    (serde_json::Value::Null, serde_json::Value::Null)
}

/// Before a drill's fault, the steady state that lets a replica take over: in synchronous
/// mode, a streaming synchronous standby named (the only candidates then); with Patroni's
/// failsafe mode, one of `candidates` is in the failsafe key the leader writes (a replica it
/// does not name there never promotes itself; a member that joined a moment ago is not named
/// until the leader's next loop), and it has flushed all the leader wrote.
async fn steady(k: &Known, leader: &str, candidates: &[String]) -> Result<(), String> {
    let within = Duration::from_secs(60);
    // In synchronous mode Patroni promotes only the standby its sync key names: none is named
    // until the leader's loop after the replicas stream.
    let mut candidates = candidates.to_vec();
    if k.spec.spec.patroni.synchronous_mode {
        let deadline = Instant::now() + within;
        loop {
            let named: Vec<String> = match read_status(k).await {
                Ok(s) => s
                    .sync_standby
                    .iter()
                    .filter(|n| s.member(n).is_some_and(|m| m.state == "streaming"))
                    .cloned()
                    .collect(),
                Err(_) => Vec::new(),
            };
            if !named.is_empty() {
                candidates = named;
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "synchronous mode is on, and within {} s Patroni named no streaming synchronous standby: it would promote no replica",
                    within.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let candidates = candidates.as_slice();
    if k.spec.spec.patroni.failsafe_mode
        && let Some(api) = k
            .servers
            .iter()
            .find(|s| s.name == leader)
            .and_then(|s| s.api_url.clone())
    {
        let reader = crate::patroni::Reader::new(Duration::from_secs(5))
            .map_err(|e| crate::error_chain(&e))?;
        let deadline = Instant::now() + within;
        loop {
            let named = reader.failsafe(&api).await.ok();
            if named
                .as_ref()
                .and_then(serde_json::Value::as_object)
                .is_some_and(|m| candidates.iter().any(|c| m.contains_key(c)))
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "failsafe mode is on, and within {} s {leader} did not name {} in the DCS's failsafe key (it holds {}): Patroni would promote no replica",
                    within.as_secs(),
                    candidates.join(" or "),
                    named.map_or_else(|| "nothing readable".to_owned(), |v| v.to_string())
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    chaos::caught_up(&k.servers, candidates, within)
        .await
        .map(|_| ())
}

/// Where a fault drill starts: the leader it strikes, the replicas that could take over, the
/// backup taken first, the drill's table with its writers running, in a steady state, and the
/// age of the leader's data directory (to tell a rewind from a clone afterwards); the lock held.
struct Start {
    old: String,
    backup: serde_json::Value,
    table: String,
    writers: Writers,
    made_before: Result<String, String>,
    _lock: crate::state::LockGuard,
}

/// The shared start of `chaos drill failover` and `partition`: `fault` and `doing` name what
/// happens to the leader in messages ("kill", "killing").
async fn start_drill(
    k: &Known,
    command: &str,
    fault: &str,
    doing: &str,
    no_backup: bool,
) -> Result<Start, Failure> {
    let status = read_status(k).await?;
    let Some(old) = status.leader.clone() else {
        return Err(Failure::new(
            codes::NO_PRIMARY,
            format!("cluster {} has no leader to {fault}", k.name),
        ));
    };
    let streaming: Vec<String> = status
        .members
        .iter()
        .filter(|m| m.name != old && m.state == "streaming")
        .map(|m| m.name.clone())
        .collect();
    if streaming.is_empty() {
        return Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!(
                "cluster {}: no replica streams from {old}, so nothing could take over",
                k.name
            ),
        )
        .hint("`pgdba cluster status` shows the members"));
    }
    let lock = k.store.lock(&k.name, command)?;
    let backup = backup_first(k, &old, no_backup).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let table = chaos::table_name(&id[..12]);
    chaos::prepare(&k.servers, &table)
        .await
        .map_err(|e| Failure::new(codes::SQL_ERROR, format!("cluster {}: {e}", k.name)))?;
    let writers = Writers::start(k, &table).await?;
    if let Err(e) = steady(k, &old, &streaming).await {
        writers.abandon(k, &table).await;
        return Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!("cluster {}: before {doing} {old}: {e}", k.name),
        )
        .hint("`pgdba cluster status` shows the replicas"));
    }
    let made_before = match k.servers.iter().find(|s| s.name == old) {
        Some(s) => data_dir_made(s).await,
        None => Err(format!("{old} is not a member")),
    };
    Ok(Start {
        old,
        backup,
        table,
        writers,
        made_before,
        _lock: lock,
    })
}

pub(super) async fn drill_failover(
    g: &Global,
    c: &ClusterArg,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    let mut k = resolve_cluster(g, c).await?;
    guard(&k, i_know, "chaos drill failover")?;
    let p = k.spec.spec.patroni.clone();
    let settings = settings_of(&k);
    let Start {
        old,
        backup,
        table,
        writers,
        made_before,
        _lock,
    } = start_drill(&k, "chaos drill failover", "kill", "killing", no_backup).await?;

    // The fault.
    let fault = Instant::now();
    let at = chrono::Utc::now();
    if let Err(e) = k.cluster.provider.kill_member(&old).await {
        writers.abandon(&k, &table).await;
        return Err(Failure::new(
            codes::FAILED,
            format!(
                "cluster {}: killing {old}: {}",
                k.name,
                crate::error_chain(&e)
            ),
        ));
    }
    let budget =
        Duration::from_millis(chaos::expected_max_ms(p.ttl, p.loop_wait)) + Duration::from_secs(60);
    let recovered = writers
        .direct
        .commit_after(fault + Duration::from_millis(100), budget)
        .await;
    if recovered {
        writers
            .pooled_commit_after(fault + Duration::from_millis(100), Duration::from_secs(60))
            .await;
    }
    // A little more load on the new leader, then the count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (written, pooled) = writers.finish(fault).await;
    let after = read_status(&k).await.ok();
    let new = after.as_ref().and_then(|s| s.leader.clone());
    // The new leader's own word for its timeline (Patroni's listing catches up a loop later).
    let timeline = match new
        .as_deref()
        .and_then(|n| k.servers.iter().find(|s| s.name == n))
    {
        Some(s) => timeline_of(s).await,
        None => None,
    };
    if !recovered || new.is_none() || new.as_deref() == Some(old.as_str()) {
        let _ = k.cluster.provider.start_member(&old, &k.creds).await;
        let _ = read_back(&k, &table, &written, pooled.as_ref(), &[]).await;
        let what = if recovered {
            format!(
                "writes resumed within {} s of killing {old}, yet Patroni names {} as the leader",
                budget.as_secs(),
                new.as_deref().unwrap_or("no member")
            )
        } else {
            format!(
                "no member took writes within {} s of killing {old}",
                budget.as_secs()
            )
        };
        let seen = after.as_ref().map_or_else(
            || "Patroni did not answer".to_owned(),
            |s| {
                s.members
                    .iter()
                    .map(|m| format!("{} {} {}", m.name, m.role, m.state))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        return Err(Failure::new(
            codes::FAILED,
            format!(
                "cluster {}: {what} (members then: {seen}); {old} was started again",
                k.name
            ),
        ));
    }
    let (missing, via_pooler, _) = read_back(&k, &table, &written, pooled.as_ref(), &[]).await?;

    // The old leader back: how does it rejoin?
    let rejoin_started = Instant::now();
    let mut rejoined_via = serde_json::Value::Null;
    let mut rejoin_ms = serde_json::Value::Null;
    let mut notes = Vec::new();
    match k.cluster.provider.start_member(&old, &k.creds).await {
        Err(e) => notes.push(format!(
            "{old} could not be started again: {}",
            crate::error_chain(&e)
        )),
        Ok(()) => {
            (rejoined_via, rejoin_ms) =
                rejoined(&mut k, &old, &made_before, rejoin_started, &mut notes).await;
        }
    }

    let rpo = missing.len();
    let data = json!({
        "cluster": k.name,
        "drill": "failover",
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "old_leader": old,
        "new_leader": new,
        "timeline": timeline,
        "rto_ms": written.rto_ms,
        "rpo_transactions": rpo,
        "missing": missing,
        "commits": written.commits,
        "failed_writes": written.failed_writes,
        "via_pooler": via_pooler,
        "rejoined_via": rejoined_via,
        "rejoin_ms": rejoin_ms,
        "settings": settings,
        "backup": backup,
        "notes": notes,
    });
    let pooled_rpo = data["via_pooler"]["rpo_transactions"].as_u64().unwrap_or(0);
    let lost_in_sync = p.synchronous_mode && (rpo > 0 || pooled_rpo > 0);
    let summary = format!(
        "failover drill: {old} killed, {} took over in {} ms, {rpo} acknowledged commit(s) lost",
        new.as_deref().unwrap_or("?"),
        written.rto_ms
    );
    k.record("chaos drill failover", !lost_in_sync, summary, data.clone());
    let human = text(&data);
    if lost_in_sync {
        let shown: Vec<String> = missing.iter().take(20).map(u64::to_string).collect();
        let f = Failure::new(
            codes::DRILL_FAILED,
            format!(
                "cluster {}: synchronous mode, yet {} acknowledged commit(s) are missing on {}: {}{}",
                k.name,
                rpo + usize::try_from(pooled_rpo).unwrap_or(0),
                new.as_deref().unwrap_or("the new leader"),
                shown.join(", "),
                if rpo > shown.len() { ", ..." } else { "" }
            ),
        )
        .data(data);
        return Ok(super::backup::with_text(f, human));
    }
    Ok(Outcome::ok(data, human))
}

fn text(d: &serde_json::Value) -> String {
    let mut out = String::new();
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let partition = d["drill"] == "partition";
    let _ = writeln!(
        out,
        "{} drill on cluster {}: {} {}, {} leads on timeline {}.",
        if partition { "Partition" } else { "Failover" },
        s(&d["cluster"]),
        s(&d["old_leader"]),
        if partition {
            "cut off the network"
        } else {
            "killed"
        },
        s(&d["new_leader"]),
        s(&d["timeline"])
    );
    let _ = writeln!(
        out,
        "  RTO {} ms (first failed write to the first acknowledged one); RPO {} acknowledged commit(s) lost of {}.",
        s(&d["rto_ms"]),
        s(&d["rpo_transactions"]),
        s(&d["commits"])
    );
    let via = &d["via_pooler"];
    if via.is_object() {
        let _ = writeln!(
            out,
            "  Through PgBouncer ({}): RTO {} ms (- when its writes still failed at the end); {} acknowledged commit(s) lost of {}.",
            s(&via["address"]),
            s(&via["rto_ms"]),
            s(&via["rpo_transactions"]),
            s(&via["commits"])
        );
    }
    let iso = &d["isolated"];
    if partition {
        let _ = writeln!(
            out,
            "  Beside {}, a client's commits were acknowledged for {} ms after the cut ({} of them; {} discarded when it rejoined); two leaders took writes at once: {}.",
            s(&d["old_leader"]),
            s(&iso["writable_after_cut_ms"]),
            s(&iso["commits_after_cut"]),
            s(&iso["lost"]),
            if iso["two_writable_leaders"] == true {
                format!("YES, for {} ms", s(&iso["overlap_ms"]))
            } else {
                "no".to_owned()
            }
        );
    }
    let _ = writeln!(
        out,
        "  {} rejoined via {} in {} ms.",
        s(&d["old_leader"]),
        s(&d["rejoined_via"]),
        s(&d["rejoin_ms"])
    );
    let st = &d["settings"];
    let _ = writeln!(
        out,
        "  Bounded by Patroni's ttl {} s, loop_wait {} s, retry_timeout {} s (synchronous_mode {}): a failover takes at most about {} ms once the leader is gone; a shorter ttl and loop_wait shorten it, at the price of failovers on shorter hiccups.",
        s(&st["ttl"]),
        s(&st["loop_wait"]),
        s(&st["retry_timeout"]),
        s(&st["synchronous_mode"]),
        s(&st["expected_max_failover_ms"])
    );
    if let Some(n) = d["notes"].as_array() {
        for note in n {
            let _ = writeln!(out, "  note: {}", s(note));
        }
    }
    out
}

/// Partitions need members with network stacks of their own: refused, before anything
/// happens, on a provider whose members share one loopback.
fn need_networks(k: &Known, what: &str) -> Result<(), Failure> {
    if k.cluster.provider.partitions() {
        return Ok(());
    }
    Err(Failure::new(
        codes::UNSUPPORTED,
        format!(
            "{what}: cluster {} runs on the {} provider, whose members share one loopback that cannot be cut",
            k.name,
            k.cluster.provider.kind()
        ),
    )
    .hint("`pgdba chaos freeze --member M` stops a member's processes instead (a hang, not a partition); partitions need a provider whose members have networks of their own (docker, ssh)"))
}

/// Member `name` of the cluster, or NOT_FOUND naming its members.
fn member_named(k: &Known, name: &str) -> Result<String, Failure> {
    let arg = super::target::MemberArg {
        member: Some(name.to_owned()),
        host: None,
    };
    Ok(k.member(&arg)?
        .map_or_else(|| name.to_owned(), |s| s.name.clone()))
}

/// `chaos partition --isolate M`: the member cut off the cluster's network until `chaos heal`.
pub(super) async fn partition(
    g: &Global,
    c: &ClusterArg,
    isolate: &str,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    let k = resolve_cluster(g, c).await?;
    guard(&k, i_know, "chaos partition")?;
    need_networks(&k, "chaos partition")?;
    let member = member_named(&k, isolate)?;
    let status = read_status(&k).await.ok();
    let role = status
        .as_ref()
        .and_then(|s| s.member(&member))
        .map_or_else(|| "unknown".to_owned(), |s| s.role.clone());
    let _lock = k.store.lock(&k.name, "chaos partition")?;
    let backup = match status.as_ref().and_then(|s| s.leader.clone()) {
        Some(leader) => backup_first(&k, &leader, no_backup).await?,
        None => serde_json::Value::Null,
    };
    let at = chrono::Utc::now();
    k.cluster
        .provider
        .isolate_member(&member, true)
        .await
        .map_err(|e| {
            Failure::new(
                codes::FAILED,
                format!(
                    "cluster {}: cutting {member} off: {}",
                    k.name,
                    crate::error_chain(&e)
                ),
            )
        })?;
    let human = format!(
        "{member} ({role}) of cluster {} is cut off the network; `pgdba chaos heal` joins it again.\n",
        k.name
    );
    let summary = format!("{member} ({role}) cut off the network");
    Ok(member_fault_done(
        &k,
        "chaos partition",
        "partition",
        at,
        &member,
        &role,
        backup,
        summary,
        human,
    ))
}

/// `chaos heal [--member M]`: every member (or M) on the cluster's network again.
pub(super) async fn heal(
    g: &Global,
    c: &ClusterArg,
    member: Option<&str>,
) -> Result<Outcome, Failure> {
    let k = resolve_cluster(g, c).await?;
    need_networks(&k, "chaos heal")?;
    let members = match member {
        Some(m) => vec![member_named(&k, m)?],
        None => k.servers.iter().map(|s| s.name.clone()).collect(),
    };
    let _lock = k.store.lock(&k.name, "chaos heal")?;
    let at = chrono::Utc::now();
    for m in &members {
        k.cluster
            .provider
            .isolate_member(m, false)
            .await
            .map_err(|e| {
                Failure::new(
                    codes::FAILED,
                    format!(
                        "cluster {}: joining {m} to the network again: {}",
                        k.name,
                        crate::error_chain(&e)
                    ),
                )
            })?;
    }
    let data = json!({
        "cluster": k.name,
        "fault": "heal",
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "members": members,
    });
    k.record(
        "chaos heal",
        true,
        format!("{} on the network", members.join(", ")),
        data.clone(),
    );
    let human = format!(
        "cluster {}: {} on the network.\n",
        k.name,
        members.join(", ")
    );
    Ok(Outcome::ok(data, human))
}

/// Patroni's settings that bound a drill's result, and the window they imply.
fn settings_of(k: &Known) -> serde_json::Value {
    let p = &k.spec.spec.patroni;
    json!({
        "ttl": p.ttl,
        "loop_wait": p.loop_wait,
        "retry_timeout": p.retry_timeout,
        "synchronous_mode": p.synchronous_mode,
        "expected_max_failover_ms": chaos::expected_max_ms(p.ttl, p.loop_wait),
    })
}

/// What the writer beside the isolated leader saw, against the cut and against the moment the
/// outside writer's first commit on the new leader was acknowledged.
fn isolated_figures(
    beside: &[chaos::BesideWrite],
    cut_ms: i64,
    new_writable_ms: Option<i64>,
) -> serde_json::Value {
    let after_cut: Vec<&chaos::BesideWrite> = beside
        .iter()
        .filter(|w| w.ok && w.at_ms >= cut_ms)
        .collect();
    let writable_after_cut_ms = after_cut.last().map_or(0, |w| w.at_ms - cut_ms);
    let overlapping: Vec<&&chaos::BesideWrite> = match new_writable_ms {
        Some(t) => after_cut.iter().filter(|w| w.at_ms >= t).collect(),
        None => Vec::new(),
    };
    let overlap_ms = match (overlapping.last(), new_writable_ms) {
        (Some(w), Some(t)) => w.at_ms - t,
        _ => 0,
    };
    json!({
        "attempts": beside.len(),
        "commits_before_cut": beside.iter().filter(|w| w.ok && w.at_ms < cut_ms).count(),
        "commits_after_cut": after_cut.len(),
        "writable_after_cut_ms": writable_after_cut_ms,
        "still_writable_at_end": beside.last().is_some_and(|w| w.ok && w.at_ms >= cut_ms),
        "two_writable_leaders": !overlapping.is_empty(),
        "overlap_ms": overlap_ms,
    })
}

/// `chaos drill partition`: the leader cut off the network under two writers, one outside and
/// one beside it; healed afterwards.
pub(super) async fn drill_partition(
    g: &Global,
    c: &ClusterArg,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    let mut k = resolve_cluster(g, c).await?;
    guard(&k, i_know, "chaos drill partition")?;
    need_networks(&k, "chaos drill partition")?;
    let p = k.spec.spec.patroni.clone();
    let settings = settings_of(&k);
    let Start {
        old,
        backup,
        table,
        writers,
        made_before,
        _lock,
    } = start_drill(
        &k,
        "chaos drill partition",
        "cut off",
        "cutting off",
        no_backup,
    )
    .await?;

    // The writer beside the leader runs past the window Patroni's timings imply; the cut
    // comes once it has committed for a moment.
    let expected = Duration::from_millis(chaos::expected_max_ms(p.ttl, p.loop_wait));
    let window = expected + Duration::from_secs(15);
    let provider = k.cluster.provider.as_ref();
    let argv = chaos::beside_writer(&table, window.as_secs());
    let inside = provider.run_beside(&old, &argv, &[], window + Duration::from_secs(60));
    let budget = expected + Duration::from_secs(60);
    let outside = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let fault = Instant::now();
        let at = chrono::Utc::now();
        let cut = provider.isolate_member(&old, true).await;
        let recovered = cut.is_ok()
            && writers
                .direct
                .commit_after(fault + Duration::from_millis(100), budget)
                .await;
        if recovered {
            writers
                .pooled_commit_after(fault + Duration::from_millis(100), Duration::from_secs(60))
                .await;
        }
        (fault, at, cut, recovered)
    };
    let (inside, (fault, at, cut, recovered)) = tokio::join!(inside, outside);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (written, pooled) = writers.finish(fault).await;
    let after = read_status(&k).await.ok();
    let new = after.as_ref().and_then(|s| s.leader.clone());
    let timeline = match new
        .as_deref()
        .and_then(|n| k.servers.iter().find(|s| s.name == n))
    {
        Some(s) => timeline_of(s).await,
        None => None,
    };

    // Heal, whatever happened.
    let healed_at = Instant::now();
    let healed = provider.isolate_member(&old, false).await;
    if let Err(e) = cut {
        return Err(Failure::new(
            codes::FAILED,
            format!(
                "cluster {}: cutting {old} off: {}",
                k.name,
                crate::error_chain(&e)
            ),
        ));
    }
    if let Err(e) = &healed {
        return Err(Failure::new(
            codes::FAILED,
            format!(
                "cluster {}: {old} was cut off and could not join the network again: {}",
                k.name,
                crate::error_chain(e)
            ),
        )
        .hint("`pgdba chaos heal` tries again"));
    }
    if !recovered || new.is_none() || new.as_deref() == Some(old.as_str()) {
        let _ = read_back(&k, &table, &written, pooled.as_ref(), &[]).await;
        return Err(Failure::new(
            codes::FAILED,
            format!(
                "cluster {}: {}; {old} is on the network again",
                k.name,
                if recovered {
                    format!(
                        "writes resumed, yet Patroni names {} as the leader",
                        new.as_deref().unwrap_or("no member")
                    )
                } else {
                    format!(
                        "no other member took writes within {} s of cutting {old} off",
                        budget.as_secs()
                    )
                }
            ),
        ));
    }

    let mut notes = Vec::new();
    let beside = match &inside {
        Ok(ran) => chaos::parse_beside(&ran.stdout),
        Err(e) => {
            notes.push(format!(
                "the writer beside {old} failed: {}",
                crate::error_chain(e)
            ));
            Vec::new()
        }
    };
    let cut_ms = at.timestamp_millis();
    let new_writable_ms = written
        .recovered_after_ms
        .map(|d| cut_ms + i64::try_from(d).unwrap_or(i64::MAX / 2));
    let mut isolated = isolated_figures(&beside, cut_ms, new_writable_ms);

    let (rejoined_via, rejoin_ms) =
        rejoined(&mut k, &old, &made_before, healed_at, &mut notes).await;

    // What the new leader lacks: the outside writer's acknowledged commits (RPO), and the ones
    // the isolated leader acknowledged that its rejoin discarded.
    let beside_acked: Vec<u64> = beside.iter().filter(|w| w.ok).map(|w| w.n).collect();
    let (missing, via_pooler, lost_beside) =
        read_back(&k, &table, &written, pooled.as_ref(), &beside_acked).await?;
    isolated["lost"] = json!(lost_beside.len());
    isolated["lost_numbers"] = json!(lost_beside.iter().take(50).collect::<Vec<_>>());

    let rpo = missing.len();
    let lost =
        rpo + usize::try_from(via_pooler["rpo_transactions"].as_u64().unwrap_or(0)).unwrap_or(0);
    let split = isolated["two_writable_leaders"] == true;
    let data = json!({
        "cluster": k.name,
        "drill": "partition",
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "old_leader": old,
        "new_leader": new,
        "timeline": timeline,
        "rto_ms": written.rto_ms,
        "rpo_transactions": rpo,
        "missing": missing,
        "commits": written.commits,
        "failed_writes": written.failed_writes,
        "via_pooler": via_pooler,
        "isolated": isolated,
        "rejoined_via": rejoined_via,
        "rejoin_ms": rejoin_ms,
        "settings": settings,
        "backup": backup,
        "notes": notes,
    });
    let lost_in_sync = p.synchronous_mode && lost > 0;
    let summary = format!(
        "partition drill: {old} cut off, {} took over in {} ms; the isolated leader took writes for {} ms after the cut{}; {rpo} acknowledged commit(s) lost",
        new.as_deref().unwrap_or("?"),
        written.rto_ms,
        data["isolated"]["writable_after_cut_ms"],
        if split {
            ", while the new leader did too"
        } else {
            ""
        }
    );
    k.record(
        "chaos drill partition",
        !split && !lost_in_sync,
        summary,
        data.clone(),
    );
    let human = text(&data);
    if split || lost_in_sync {
        let message = if split {
            format!(
                "cluster {}: two members took writes at once: {old}, cut off, acknowledged commits for {} ms after {} did",
                k.name,
                data["isolated"]["overlap_ms"],
                new.as_deref().unwrap_or("the new leader")
            )
        } else {
            format!(
                "cluster {}: synchronous mode, yet {lost} acknowledged commit(s) are missing on {}",
                k.name,
                new.as_deref().unwrap_or("the new leader")
            )
        };
        let f = Failure::new(codes::DRILL_FAILED, message).data(data);
        return Ok(super::backup::with_text(f, human));
    }
    Ok(Outcome::ok(data, human))
}

/// What `chaos corrupt` writes over the middle of the table's first page: the page's checksum
/// no longer matches, while its header (and so its layout) stays as it was.
const DAMAGE: &[u8] = b"pgdba chaos corrupt: a damaged page";
/// Where in the file: the middle of block 0.
const DAMAGE_AT: u64 = 4096;

/// One statement's single value on `server`'s `database`, as text.
async fn one(
    server: &crate::ops::Server,
    database: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<String>, String> {
    let c = server
        .connect_to(database, Duration::from_secs(30))
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let row = c
        .query_one(sql, params)
        .await
        .map_err(|e| crate::error_chain(&e))?;
    row.try_get::<_, Option<String>>(0)
        .map_err(|e| crate::error_chain(&e))
}

/// `chaos corrupt --table T --member M`: bytes of one data page of T's file overwritten on M
/// while M is down; then M started, the damage detected (the read error, and `pg_stat_database`'s
/// checksum failures) and repaired by cloning M again from the leader (the lead handed over
/// first when M leads).
#[allow(clippy::too_many_lines, clippy::too_many_arguments)]
pub(super) async fn corrupt(
    g: &Global,
    c: &ClusterArg,
    m: &super::target::MemberArg,
    table: &str,
    database: &str,
    on_leader: bool,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    let mut k = resolve_cluster(g, c).await?;
    guard(&k, i_know, "chaos corrupt")?;
    let Some(server) = k.member(m)?.cloned() else {
        return Err(Failure::new(
            codes::USAGE,
            "chaos corrupt needs the member: --member NAME or --host HOST[:PORT]",
        ));
    };
    let member = server.name.clone();
    let status = read_status(&k).await?;
    let Some(leader) = status.leader.clone() else {
        return Err(Failure::new(
            codes::NO_PRIMARY,
            format!(
                "cluster {} has no leader to clone a repaired member from",
                k.name
            ),
        ));
    };
    let role = status
        .member(&member)
        .map_or_else(|| "unknown".to_owned(), |s| s.role.clone());
    let streaming: Vec<String> = status
        .members
        .iter()
        .filter(|s| s.name != leader && s.state == "streaming")
        .map(|s| s.name.clone())
        .collect();
    if member == leader {
        if !on_leader {
            return Err(Failure::new(
                codes::PRECHECK_FAILED,
                format!(
                    "cluster {}: {member} is the leader; chaos corrupt damages a replica unless --leader is given",
                    k.name
                ),
            )
            .hint("with --leader, the lead is handed to a replica before the damaged member is cloned again"));
        }
        if streaming.is_empty() {
            return Err(Failure::new(
                codes::PRECHECK_FAILED,
                format!(
                    "cluster {}: no replica streams from {member} to take the lead while it is repaired",
                    k.name
                ),
            ));
        }
    } else if !streaming.contains(&member) {
        return Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!("cluster {}: {member} does not stream from {leader}", k.name),
        ));
    }
    let pre = |e: String| {
        Failure::new(
            codes::PRECHECK_FAILED,
            format!("cluster {}: {member}: {e}", k.name),
        )
    };
    // The table as PostgreSQL names it (quoted where it must be), and its file.
    let relation = one(
        &server,
        database,
        "SELECT $1::text::regclass::text",
        &[&table],
    )
    .await
    .map_err(|e| pre(format!("table {table} in database {database}: {e}")))?
    .unwrap_or_default();
    let file = one(
        &server,
        database,
        "SELECT pg_relation_filepath($1::text::regclass)",
        &[&table],
    )
    .await
    .map_err(pre)?
    .unwrap_or_default();
    crate::providers::relation_file(&file).map_err(|e| pre(crate::error_chain(&e)))?;
    let size: u64 = one(
        &server,
        database,
        "SELECT pg_relation_size($1::text::regclass)::text",
        &[&table],
    )
    .await
    .map_err(pre)?
    .and_then(|s| s.parse().ok())
    .unwrap_or(0);
    if size < 8192 {
        return Err(pre(format!("{relation} has no data page to damage")));
    }
    if one(&server, database, "SHOW data_checksums", &[])
        .await
        .map_err(pre)?
        .as_deref()
        != Some("on")
    {
        return Err(pre(
            "data checksums are off: PostgreSQL would not notice a damaged page".to_owned(),
        ));
    }
    let leader_server = k
        .servers
        .iter()
        .find(|s| s.name == leader)
        .cloned()
        .ok_or_else(|| pre(format!("no address for the leader {leader}")))?;
    let count_sql = format!("SELECT count(*)::text FROM {relation}");
    let rows_leader = one(&leader_server, database, &count_sql, &[])
        .await
        .map_err(pre)?
        .unwrap_or_default();
    let failures_sql = "SELECT coalesce(checksum_failures, 0)::text FROM pg_stat_database WHERE datname = current_database()";
    let failures_before: u64 = one(&server, database, failures_sql, &[])
        .await
        .map_err(pre)?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);

    let _lock = k.store.lock(&k.name, "chaos corrupt")?;
    let backup = backup_first(&k, &leader, no_backup).await?;

    // The page must stay damaged through the restart: recovery starts at the last checkpoint
    // (a replica's restartpoint), so take one that is past the table's last change.
    let name = k.name.clone();
    let fail =
        |what: &str, e: String| Failure::new(codes::FAILED, format!("cluster {name}: {what}: {e}"));
    let cl = leader_server
        .connect_to(database, Duration::from_secs(60))
        .await
        .map_err(|e| fail("a checkpoint on the leader", crate::error_chain(&e)))?;
    cl.batch_execute("CHECKPOINT")
        .await
        .map_err(|e| fail("a checkpoint on the leader", crate::error_chain(&e)))?;
    let target: String = cl
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| fail("the leader's WAL position", crate::error_chain(&e)))?;
    drop(cl);
    let cm = server
        .connect_to(database, Duration::from_secs(60))
        .await
        .map_err(|e| fail(&format!("a session on {member}"), crate::error_chain(&e)))?;
    if member != leader {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let replayed = cm
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&target],
                )
                .await
                .ok()
                .and_then(|r| r.try_get::<_, Option<bool>>(0).ok().flatten());
            if replayed == Some(true) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(fail(
                    &format!("{member} replaying the leader's checkpoint"),
                    format!("not replayed up to {target} within 60 s"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    cm.batch_execute("CHECKPOINT")
        .await
        .map_err(|e| fail(&format!("a checkpoint on {member}"), crate::error_chain(&e)))?;
    drop(cm);

    // The fault: the member down, the page overwritten, the member started again.
    let at = chrono::Utc::now();
    k.cluster
        .provider
        .kill_member(&member)
        .await
        .map_err(|e| fail(&format!("stopping {member}"), crate::error_chain(&e)))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match k
            .cluster
            .provider
            .damage_file(&member, &file, DAMAGE_AT, DAMAGE)
            .await
        {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline && crate::error_chain(&e).contains(" runs") => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                let _ = k.cluster.provider.start_member(&member, &k.creds).await;
                return Err(fail(
                    &format!("damaging {file} of {member} (started again)"),
                    crate::error_chain(&e),
                ));
            }
        }
    }
    // The killed processes' ports are released a moment after they die (their last children
    // go after them).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match k.cluster.provider.start_member(&member, &k.creds).await {
            Ok(()) => break,
            Err(crate::providers::ProviderError::PortInUse(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(fail(
                    &format!("starting {member} again"),
                    crate::error_chain(&e),
                ));
            }
        }
    }
    k.refresh_servers().await;

    // Detection: the member answers, a read of the table hits the damaged page.
    let server = k
        .servers
        .iter()
        .find(|s| s.name == member)
        .cloned()
        .unwrap_or(server);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut read_error = None;
    let mut started = false;
    while Instant::now() < deadline {
        if let Ok(c) = server.connect_to(database, Duration::from_secs(30)).await {
            started = true;
            read_error = match c.query_one(&count_sql, &[]).await {
                Ok(_) => None,
                Err(e) => Some(crate::error_chain(&e)),
            };
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let failures_after: Option<u64> = if started {
        one(&server, database, failures_sql, &[])
            .await
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok())
    } else {
        None
    };
    let detected =
        read_error.is_some() || failures_after.is_some_and(|f| f > failures_before) || !started;

    // Repair: the lead handed over if the member holds it, then the member cloned again.
    let repair_started = Instant::now();
    let mut handed_to = serde_json::Value::Null;
    let mut now = read_status(&k).await?;
    if now.leader.as_deref() == Some(member.as_str()) {
        // Its replicas reconnect to it after its restart.
        let deadline = Instant::now() + Duration::from_secs(60);
        let to = loop {
            // The synchronous standby when there is one (Patroni hands the lead to no other).
            let to = now
                .members
                .iter()
                .filter(|s| s.name != member && s.state == "streaming")
                .min_by_key(|s| {
                    (
                        !now.sync_standby.contains(&s.name),
                        s.lag_bytes.unwrap_or(u64::MAX),
                    )
                })
                .map(|s| s.name.clone());
            if let Some(to) = to {
                break to;
            }
            if Instant::now() >= deadline {
                return Err(fail(
                    &format!("handing the lead from the damaged {member}"),
                    "no replica streams from it within 60 s".to_owned(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            now = read_status(&k).await?;
        };
        let client = k.patroni(Duration::from_secs(90))?;
        let (done, to) = hand_over(&k, &client, now, to).await;
        let done = done.map_err(|e| {
            fail(
                &format!("handing the lead from {member} to {to}"),
                crate::error_chain(&e),
            )
        })?;
        handed_to = json!(done.to);
    }
    k.refresh_servers().await;
    let server = k
        .servers
        .iter()
        .find(|s| s.name == member)
        .cloned()
        .unwrap_or(server);
    let made_before = data_dir_made(&server).await;
    let api = server
        .api_url
        .clone()
        .ok_or_else(|| fail("re-initializing", format!("no REST API for {member}")))?;
    let client = k.patroni(Duration::from_secs(60))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Patroni refuses a reinitialize while the member is still starting after a switchover.
        match client.reinitialize(&api).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("reinitialize {member}: {}", crate::error_chain(&e));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                return Err(fail(
                    &format!("re-initializing {member}"),
                    crate::error_chain(&e),
                ));
            }
        }
    }
    // Patroni answers at once and clones in the background: done once the member streams
    // from a data directory made anew.
    let mut notes = Vec::new();
    let mut repair_ms = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let streams = read_status(&k)
            .await
            .ok()
            .is_some_and(|s| s.member(&member).is_some_and(|m| m.state == "streaming"));
        if streams {
            k.refresh_servers().await;
            if let Some(s) = k.servers.iter().find(|s| s.name == member)
                && let Ok(made) = data_dir_made(s).await
                // A member that did not even answer before is taken as it streams.
                && made_before.as_ref().map_or(true, |b| *b != made)
            {
                repair_ms =
                    json!(u64::try_from(repair_started.elapsed().as_millis()).unwrap_or(u64::MAX));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if repair_ms.is_null() {
        notes.push(format!(
            "{member} did not stream from a new data directory within 180 s{}",
            made_before
                .as_ref()
                .err()
                .map(|e| format!(" (its data directory's age could not be read before: {e})"))
                .unwrap_or_default()
        ));
    }
    let server = k
        .servers
        .iter()
        .find(|s| s.name == member)
        .cloned()
        .unwrap_or(server);
    let rows_after = one(&server, database, &count_sql, &[]).await;
    let repaired = !repair_ms.is_null()
        && rows_after
            .as_ref()
            .is_ok_and(|r| r.as_deref() == Some(rows_leader.as_str()));
    if let Err(e) = &rows_after {
        notes.push(format!(
            "reading {relation} on {member} after the repair: {e}"
        ));
    }
    let data = json!({
        "cluster": k.name,
        "fault": "corrupt",
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "member": member,
        "role": role,
        "database": database,
        "table": relation,
        "file": file,
        "block": DAMAGE_AT / 8192,
        "detected": {
            "found": detected,
            "started": started,
            "read_error": read_error,
            "checksum_failures_before": failures_before,
            "checksum_failures_after": failures_after,
        },
        "repair": {
            "handed_lead_to": handed_to,
            "via": "reinit",
            "repaired": repaired,
            "repair_ms": repair_ms,
            "rows_leader": rows_leader,
            "rows_member": rows_after.ok().flatten(),
        },
        "backup": backup,
        "notes": notes,
    });
    let ok = detected && repaired;
    k.record(
        "chaos corrupt",
        ok,
        format!(
            "block 0 of {relation} damaged on {member} ({role}): {}, {}",
            if detected { "detected" } else { "NOT detected" },
            if repaired {
                "repaired by re-initializing it"
            } else {
                "NOT repaired"
            }
        ),
        data.clone(),
    );
    let human = format!(
        "Block 0 of {relation} ({file}) damaged on {member} ({role}) while it was down.\n  Detected: {}{}.\n  Repaired: {}{} (re-initialized from the leader{}); it has {} rows, the leader {rows_leader}.\n",
        if detected { "yes" } else { "NO" },
        match (&data["detected"]["read_error"], failures_after) {
            (serde_json::Value::String(e), Some(f)) =>
                format!(": reading it failed ({e}); checksum failures {failures_before} -> {f}"),
            (serde_json::Value::String(e), None) => format!(": reading it failed ({e})"),
            (_, Some(f)) => format!("; checksum failures {failures_before} -> {f}"),
            _ if !started => ": it did not start".to_owned(),
            _ => String::new(),
        },
        if repaired { "yes" } else { "NO" },
        repair_ms
            .as_u64()
            .map(|ms| format!(" in {ms} ms"))
            .unwrap_or_default(),
        handed_to
            .as_str()
            .map(|t| format!(", the lead handed to {t} first"))
            .unwrap_or_default(),
        data["repair"]["rows_member"].as_str().unwrap_or("?"),
    );
    if !detected {
        let f = Failure::new(
            codes::DRILL_FAILED,
            format!(
                "cluster {}: block 0 of {relation} was damaged on {member}, and nothing noticed: a read of the table succeeded and no checksum failure was counted (WAL replay may have written the page again from a full-page image)",
                k.name
            ),
        )
        .data(data);
        return Ok(super::backup::with_text(f, human));
    }
    if !repaired {
        return Err(Failure::new(
            codes::FAILED,
            format!(
                "cluster {}: {member} was damaged, and re-initializing it did not bring back {rows_leader} readable rows of {relation}",
                k.name
            ),
        )
        .data(data));
    }
    Ok(Outcome::ok(data, human))
}

/// A drill's writers: one over the members (libpq picks the one that takes writes) and, where
/// the cluster runs PgBouncer, one through it, as a role of the drill's own (PgBouncer lets no
/// superuser in).
struct Writers {
    direct: Writer,
    pooled: Option<Pooled>,
}

struct Pooled {
    writer: Writer,
    role: String,
    address: String,
}

/// What the writer through PgBouncer measured.
struct PooledWritten {
    written: chaos::Written,
    role: String,
    address: String,
}

impl Writers {
    /// Both started on `table` and warmed up (50 commits over the members, or 10 s).
    async fn start(k: &Known, table: &str) -> Result<Writers, Failure> {
        let direct = Writer::start(&k.servers, table, 0);
        let pooler = k
            .cluster
            .provider
            .inventory()
            .await
            .pooler
            .filter(|p| p.running)
            .and_then(|p| p.address);
        let pooled = match pooler {
            None => None,
            Some((host, port)) => match chaos::pooler_role(&k.servers, table).await {
                Ok((role, password)) => {
                    let server = crate::ops::Server {
                        name: "pgbouncer".to_owned(),
                        host: host.clone(),
                        port,
                        user: role.clone(),
                        password: Some(password),
                        database: "postgres".to_owned(),
                        socket_dir: None,
                        data_dir: None,
                        api_url: None,
                    };
                    Some(Pooled {
                        writer: Writer::start(&[server], table, chaos::POOLER_BASE),
                        role,
                        address: format!("{host}:{port}"),
                    })
                }
                Err(e) => {
                    let _ = direct.finish(Instant::now()).await;
                    let _ = chaos::missing(&k.servers, table, &[]).await;
                    return Err(Failure::new(
                        codes::SQL_ERROR,
                        format!("cluster {}: {e}", k.name),
                    ));
                }
            },
        };
        let warm = Instant::now();
        while direct.commits() < 50 && warm.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Writers { direct, pooled })
    }

    /// Wait, at most `within`, until the writer through PgBouncer (if any) has a commit
    /// acknowledged after `after`: PgBouncer follows the new leader a moment after the members
    /// take writes again.
    async fn pooled_commit_after(&self, after: Instant, within: Duration) {
        if let Some(p) = &self.pooled {
            p.writer.commit_after(after, within).await;
        }
    }

    /// Stop both, measured against `fault`.
    async fn finish(self, fault: Instant) -> (chaos::Written, Option<PooledWritten>) {
        let direct = self.direct.finish(fault).await;
        let pooled = match self.pooled {
            Some(p) => Some(PooledWritten {
                written: p.writer.finish(fault).await,
                role: p.role,
                address: p.address,
            }),
            None => None,
        };
        (direct, pooled)
    }

    /// Stop both, and drop the table and the role: a drill that did not get to its fault.
    async fn abandon(self, k: &Known, table: &str) {
        let (_, pooled) = self.finish(Instant::now()).await;
        let _ = chaos::missing(&k.servers, table, &[]).await;
        if let Some(p) = pooled {
            let _ = chaos::drop_role(&k.servers, &p.role).await;
        }
    }
}

/// The acknowledged numbers the leader lacks, read back once (the table then dropped, and the
/// pooled writer's role): the direct writer's, the pooled writer's (as `via_pooler`, or null
/// without a pooler) and `others`' (the writer beside a member).
async fn read_back(
    k: &Known,
    table: &str,
    direct: &chaos::Written,
    pooled: Option<&PooledWritten>,
    others: &[u64],
) -> Result<(Vec<u64>, serde_json::Value, Vec<u64>), Failure> {
    let mut acked = direct.acked.clone();
    acked.extend(others);
    if let Some(p) = pooled {
        acked.extend(&p.written.acked);
    }
    let lacking = chaos::missing(&k.servers, table, &acked)
        .await
        .map_err(|e| Failure::new(codes::SQL_ERROR, format!("cluster {}: {e}", k.name)))?;
    let mut missing = Vec::new();
    let mut via = Vec::new();
    let mut beside = Vec::new();
    for n in lacking {
        if n >= chaos::POOLER_BASE {
            via.push(n);
        } else if n >= chaos::BESIDE_BASE {
            beside.push(n);
        } else {
            missing.push(n);
        }
    }
    let via_pooler = match pooled {
        None => serde_json::Value::Null,
        Some(p) => {
            if let Err(e) = chaos::drop_role(&k.servers, &p.role).await {
                tracing::warn!("cluster {}: {e}", k.name);
            }
            json!({
                "address": p.address,
                // Null when its writes still failed at the end of the drill.
                "rto_ms": p.written.recovered.then_some(p.written.rto_ms),
                "recovered": p.written.recovered,
                "rpo_transactions": via.len(),
                "missing": via,
                "commits": p.written.commits,
                "failed_writes": p.written.failed_writes,
            })
        }
    };
    Ok((missing, via_pooler, beside))
}
