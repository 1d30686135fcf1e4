//! `switchover`, `failover trigger`, `failover status` and `replica promote`: leader changes,
//! pre-checked, measured by pgdba's probe writer, and recorded in the cluster's history.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use serde_json::{Value, json};

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::{ClusterArg, Known, MemberArg, Target, resolve, select_member};
use crate::ops::cluster::{self, ClusterStatus};
use crate::ops::leader::{self, Kind, LeaderChange};

/// How long a leader change may take, Patroni's own work included.
const CHANGE_WITHIN: Duration = Duration::from_secs(90);

/// The cluster (a plain server has no Patroni to hand the lead over).
async fn known(g: &Global, c: &ClusterArg, what: &str) -> Result<Known, Failure> {
    match resolve(g, c).await? {
        Target::Cluster(k) => Ok(*k),
        Target::Plain(s) => Err(super::target::no_patroni(what, &s.name)),
    }
}

pub(super) async fn read_status(k: &Known) -> Result<ClusterStatus, Failure> {
    let reader = k.patroni(Duration::from_secs(5))?;
    let mut s = cluster::status(&reader, &k.api_urls(), &k.servers)
        .await
        .map_err(|e| {
            Failure::new(
                codes::UNREACHABLE,
                format!(
                    "cluster {}: no member's Patroni REST API answered: {}",
                    k.name,
                    crate::error_chain(&e)
                ),
            )
        })?;
    s.dcs_healthy = Some(k.cluster.provider.dcs_healthy().await);
    Ok(s)
}

pub(super) async fn switchover(
    g: &Global,
    c: &ClusterArg,
    to: &str,
    at: Option<&str>,
) -> Result<Outcome, Failure> {
    let k = known(g, c, "switchover").await?;
    change(g, &k, to, Kind::Switchover, at, "switchover").await
}

pub(super) async fn failover(g: &Global, c: &ClusterArg, to: &str) -> Result<Outcome, Failure> {
    let k = known(g, c, "failover trigger").await?;
    change(g, &k, to, Kind::Failover, None, "failover trigger").await
}

pub(super) async fn promote(g: &Global, c: &ClusterArg, m: &MemberArg) -> Result<Outcome, Failure> {
    let k = known(g, c, "replica promote").await?;
    if m.member.is_none() && m.host.is_none() {
        return Err(Failure::new(
            codes::USAGE,
            "replica promote needs --member NAME or --host HOST[:PORT]",
        ));
    }
    let Some(server) = select_member(&k.servers, m, &k.name)? else {
        return Err(Failure::new(codes::USAGE, "replica promote needs a member"));
    };
    let to = server.name.clone();
    change(g, &k, &to, Kind::Switchover, None, "replica promote").await
}

async fn change(
    _g: &Global,
    k: &Known,
    to: &str,
    kind: Kind,
    at: Option<&str>,
    command: &str,
) -> Result<Outcome, Failure> {
    let at = at.map(parse_at).transpose()?;
    // One change at a time, and none while an apply runs.
    let _lock = k.store.lock(&k.name, command)?;
    let status = read_status(k).await?;
    if let Some(why) = cluster::refuse_candidate(&status, to, kind == Kind::Switchover) {
        let f = Failure::new(
            codes::PRECHECK_FAILED,
            format!("cluster {}: {command} to {to} refused: {why}", k.name),
        );
        k.record(command, false, f.message.clone(), json!({ "to": to }));
        return Err(f);
    }
    let client = k.patroni(CHANGE_WITHIN)?;
    if let Some(when) = at {
        let (Some(from), Some(api)) = (
            status.leader.clone(),
            status
                .leader
                .as_deref()
                .and_then(|l| status.member(l))
                .map(|m| m.api_url.clone()),
        ) else {
            return Err(Failure::new(
                codes::PRECHECK_FAILED,
                "the cluster has no leader",
            ));
        };
        let answer = client
            .schedule_switchover(&api, &from, to, &when.to_rfc3339())
            .await
            .map_err(|e| Failure::new(codes::FAILED, crate::error_chain(&e)))?;
        let data = json!({
            "from": from, "to": to, "scheduled_at": when.to_rfc3339(),
            "timeline": Value::Null, "write_unavailable_ms": Value::Null,
            "message": answer.body.trim(),
        });
        let summary = format!(
            "switchover from {from} to {to} scheduled at {}",
            when.to_rfc3339()
        );
        k.record(command, true, summary.clone(), data.clone());
        return Ok(Outcome::ok(data, format!("{summary}\n")));
    }
    match leader::change(&client, &status, &k.servers, to, kind, CHANGE_WITHIN).await {
        Ok(done) => {
            let summary = describe(&done);
            let data = serde_json::to_value(&done).unwrap_or(Value::Null);
            k.record(command, true, summary.clone(), data.clone());
            Ok(Outcome::ok(data, format!("{summary}\n")))
        }
        Err(e) => {
            let message = format!(
                "cluster {}: {command} to {to}: {}",
                k.name,
                crate::error_chain(&e)
            );
            k.record(command, false, message.clone(), json!({ "to": to }));
            Err(Failure::new(codes::FAILED, message)
                .hint("`pgdba cluster status` shows who leads now"))
        }
    }
}

/// A switchover to `to` on behalf of another command (`replica remove` moves the leader off
/// the member it removes): taken under the cluster's lock, pre-checked, measured and recorded
/// in the history as `switchover` is. Its data, as `switchover` prints it.
pub(super) async fn switchover_for(
    g: &Global,
    k: &Known,
    to: &str,
    command: &str,
) -> Result<Value, Failure> {
    change(g, k, to, Kind::Switchover, None, command)
        .await
        .map(|o| o.data)
}

/// `--at`: an RFC3339 time still to come.
fn parse_at(at: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, Failure> {
    let when = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| {
        Failure::new(
            codes::USAGE,
            format!("--at {at}: not an RFC3339 time (2026-12-02T03:00:00Z): {e}"),
        )
    })?;
    if when <= chrono::Utc::now() {
        return Err(Failure::new(
            codes::USAGE,
            format!("--at {at}: that time has passed"),
        ));
    }
    Ok(when)
}

fn describe(d: &LeaderChange) -> String {
    format!(
        "{}: {} -> {} on timeline {}; writes were unavailable for {} (probe: {} commits); took {} ms",
        match d.kind {
            Kind::Switchover => "switchover",
            Kind::Failover => "failover",
        },
        d.from.as_deref().unwrap_or("(no leader)"),
        d.to,
        d.timeline.map_or("?".to_owned(), |t| t.to_string()),
        d.write_unavailable_ms
            .map_or("(not measured)".to_owned(), |ms| format!("{ms} ms")),
        d.probe_commits,
        d.duration_ms
    )
}

/// `failover status`: who leads, on which timeline, pause, a scheduled switchover, and which
/// members could take over now (and why not the others).
pub(super) async fn status(g: &Global, c: &ClusterArg) -> Result<Outcome, Failure> {
    let k = known(g, c, "failover status").await?;
    let s = read_status(&k).await?;
    let candidates: Vec<Value> = s
        .members
        .iter()
        .filter(|m| Some(&m.name) != s.leader.as_ref())
        .map(|m| {
            let why = cluster::refuse_candidate(&s, &m.name, true);
            json!({ "name": m.name, "eligible": why.is_none(), "reason": why })
        })
        .collect();
    let timeline = s
        .leader
        .as_deref()
        .and_then(|l| s.member(l))
        .and_then(|m| m.timeline);
    let last = k
        .store
        .history(&k.name)?
        .into_iter()
        .rev()
        .find(|h| h.command != "failover status");
    let mut human = format!(
        "cluster {}: leader {} on timeline {}{}{}\n",
        k.name,
        s.leader.as_deref().unwrap_or("(none)"),
        timeline.map_or("?".to_owned(), |t| t.to_string()),
        if s.paused { ", paused" } else { "" },
        s.scheduled_switchover
            .as_ref()
            .map_or(String::new(), |v| format!(", switchover scheduled: {v}")),
    );
    for c in &candidates {
        human.push_str(&format!(
            "  {} {}\n",
            c["name"].as_str().unwrap_or_default(),
            match c["reason"].as_str() {
                None => "can take over".to_owned(),
                Some(r) => format!("cannot take over: {r}"),
            }
        ));
    }
    if let Some(h) = &last {
        human.push_str(&format!("last operation: {} ({})\n", h.summary, h.at));
    }
    Ok(Outcome::ok(
        json!({
            "leader": s.leader,
            "timeline": timeline,
            "paused": s.paused,
            "scheduled_switchover": s.scheduled_switchover,
            "candidates": candidates,
            "last_operation": last,
        }),
        human,
    ))
}
