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

/// `chaos drill switchover`: the planned case, measured the same way. The lead is handed to
/// the most caught-up streaming replica (the synchronous standby when there is one) while the
/// writer commits; the old leader follows the new one as Patroni makes it.
pub(super) async fn drill_switchover(
    g: &Global,
    c: &ClusterArg,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    use crate::ops::leader::{Kind, change};
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
    let writer = Writer::start(&k.servers, &table);
    let warm = Instant::now();
    while writer.commits() < 50 && warm.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Err(e) = chaos::caught_up(
        &k.servers,
        std::slice::from_ref(&to),
        Duration::from_secs(60),
    )
    .await
    {
        let _ = writer.finish(Instant::now()).await;
        let _ = chaos::missing(&k.servers, &table, &[]).await;
        return Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!("cluster {}: before the switchover to {to}: {e}", k.name),
        )
        .hint("`pgdba cluster status` shows the replicas' lag"));
    }
    let client = k.patroni(Duration::from_secs(90))?;
    let at = chrono::Utc::now();
    let started = Instant::now();
    // Patroni names its synchronous standby in the DCS up to a loop after a member rejoins, and
    // refuses (412) a candidate that is not the one it names yet: ask again, with the
    // candidate it names, a few loops on.
    let mut status = status;
    let mut to = to;
    let mut attempt = 0;
    let done = loop {
        attempt += 1;
        let r = change(
            &client,
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
            break r;
        }
        tokio::time::sleep(Duration::from_secs(u64::from(
            k.spec.spec.patroni.loop_wait,
        )))
        .await;
        if let Ok(s) = read_status(&k).await {
            if let Some(sync) = s
                .sync_standby
                .iter()
                .find(|n| s.member(n).is_some_and(|m| m.state == "streaming"))
            {
                to = sync.clone();
            }
            status = s;
        }
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written = writer.finish(started).await;
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
    let missing = chaos::missing(&k.servers, &table, &written.acked)
        .await
        .map_err(|e| Failure::new(codes::SQL_ERROR, format!("cluster {}: {e}", k.name)))?;
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
        rpo == 0,
        summary.clone(),
        data.clone(),
    );
    if rpo > 0 {
        let f = Failure::new(
            codes::DRILL_FAILED,
            format!(
                "cluster {}: a switchover lost {rpo} acknowledged commit(s)",
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
    let data = json!({
        "cluster": k.name,
        "fault": "kill-node",
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "member": member,
        "role": role,
        "backup": backup,
    });
    k.record(
        "chaos kill-node",
        true,
        format!("{member} ({role}) killed"),
        data.clone(),
    );
    let human = format!(
        "Killed {member} ({role}) of cluster {}: its Patroni and PostgreSQL, at once.\nNothing starts it again: `pgdba drift` reports it, `pgdba plan` shows it, `pgdba apply` starts it.\n",
        k.name
    );
    Ok(Outcome::ok(data, human))
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
    let data = json!({
        "cluster": k.name,
        "fault": if frozen { "freeze" } else { "thaw" },
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "member": member,
        "role": role,
        "backup": backup,
    });
    k.record(
        what,
        true,
        format!(
            "{member} ({role}) {}",
            if frozen { "frozen" } else { "thawed" }
        ),
        data.clone(),
    );
    let human = if frozen {
        format!(
            "Froze {member} ({role}) of cluster {}: its processes are stopped where they are, its connections open and silent.\n`pgdba chaos thaw -f SPEC --member {member}` resumes it.\n",
            k.name
        )
    } else {
        format!("Thawed {member} of cluster {}.\n", k.name)
    };
    Ok(Outcome::ok(data, human))
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
                if d["old_leader"].is_null() {
                    f("member")
                } else {
                    f("old_leader")
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
async fn data_dir_made(server: &crate::ops::Server) -> Option<String> {
    let c = server.connect(Duration::from_secs(5)).await.ok()?;
    let row = c
        .query_one(
            "SELECT (pg_stat_file('PG_VERSION')).modification::text",
            &[],
        )
        .await
        .ok()?;
    row.try_get(0).ok()
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

pub(super) async fn drill_failover(
    g: &Global,
    c: &ClusterArg,
    i_know: bool,
    no_backup: bool,
) -> Result<Outcome, Failure> {
    let k = resolve_cluster(g, c).await?;
    guard(&k, i_know, "chaos drill failover")?;
    let status = read_status(&k).await?;
    let Some(old) = status.leader.clone() else {
        return Err(Failure::new(
            codes::NO_PRIMARY,
            format!("cluster {} has no leader to kill", k.name),
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
    let _lock = k.store.lock(&k.name, "chaos drill failover")?;
    let p = &k.spec.spec.patroni;
    let settings = json!({
        "ttl": p.ttl,
        "loop_wait": p.loop_wait,
        "retry_timeout": p.retry_timeout,
        "synchronous_mode": p.synchronous_mode,
        "expected_max_failover_ms": chaos::expected_max_ms(p.ttl, p.loop_wait),
    });

    let backup = backup_first(&k, &old, no_backup).await?;

    // The writer, warmed up.
    let id = uuid::Uuid::new_v4().simple().to_string();
    let table = chaos::table_name(&id[..12]);
    chaos::prepare(&k.servers, &table)
        .await
        .map_err(|e| Failure::new(codes::SQL_ERROR, format!("cluster {}: {e}", k.name)))?;
    let writer = Writer::start(&k.servers, &table);
    let warm = Instant::now();
    while writer.commits() < 50 && warm.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // From a steady state: a replica has all the leader wrote (the backup just taken streams
    // a segment's worth of WAL after it).
    if let Err(e) = chaos::caught_up(&k.servers, &streaming, Duration::from_secs(60)).await {
        let _ = writer.finish(Instant::now()).await;
        let _ = chaos::missing(&k.servers, &table, &[]).await;
        return Err(Failure::new(
            codes::PRECHECK_FAILED,
            format!("cluster {}: before killing {old}: {e}", k.name),
        )
        .hint("`pgdba cluster status` shows the replicas' lag"));
    }
    let old_server = k.servers.iter().find(|s| s.name == old).cloned();
    let made_before = match &old_server {
        Some(s) => data_dir_made(s).await,
        None => None,
    };

    // The fault.
    let fault = Instant::now();
    let at = chrono::Utc::now();
    if let Err(e) = k.cluster.provider.kill_member(&old).await {
        let _ = writer.finish(fault).await;
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
    let recovered = writer
        .commit_after(fault + Duration::from_millis(100), budget)
        .await;
    // A little more load on the new leader, then the count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written = writer.finish(fault).await;
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
    let missing = chaos::missing(&k.servers, &table, &written.acked)
        .await
        .map_err(|e| Failure::new(codes::SQL_ERROR, format!("cluster {}: {e}", k.name)))?;

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
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut streaming = false;
            while Instant::now() < deadline {
                if let Ok(s) = read_status(&k).await
                    && s.member(&old).is_some_and(|m| m.state == "streaming")
                {
                    streaming = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if streaming {
                rejoin_ms =
                    json!(u64::try_from(rejoin_started.elapsed().as_millis()).unwrap_or(u64::MAX));
                let made_after = match &old_server {
                    Some(s) => data_dir_made(s).await,
                    None => None,
                };
                rejoined_via = match (&made_before, &made_after) {
                    (Some(b), Some(a)) if b != a => json!("reinit"),
                    (Some(_), Some(_)) => json!("pg_rewind"),
                    _ => serde_json::Value::Null,
                };
            } else {
                notes.push(format!("{old} did not stream again within 180 s"));
            }
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
        "rejoined_via": rejoined_via,
        "rejoin_ms": rejoin_ms,
        "settings": settings,
        "backup": backup,
        "notes": notes,
    });
    let lost_in_sync = p.synchronous_mode && rpo > 0;
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
                "cluster {}: synchronous mode, yet {rpo} acknowledged commit(s) are missing on {}: {}{}",
                k.name,
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
    let _ = writeln!(
        out,
        "Failover drill on cluster {}: {} killed, {} leads on timeline {}.",
        s(&d["cluster"]),
        s(&d["old_leader"]),
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
