//! A cluster's topology and health as Patroni and PostgreSQL tell it now (`cluster status`,
//! `failover status`), and the pre-checks of a leader change.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Server;
use crate::patroni::{self, PatroniError, Reader};

/// One member, as `cluster status` shows it (CONTRACT.md: `name`, `host`, `port`, `role`,
/// `state`, `timeline`, `lag_bytes`, `pending_restart`).
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// `leader`, `replica`, `sync_standby` (or what else Patroni says: `standby_leader`, ...).
    pub role: String,
    /// `running`, `streaming`, `stopped`, `starting`, ...
    pub state: String,
    pub timeline: Option<u64>,
    /// Bytes of WAL the replica has yet to replay, as Patroni computes it.
    pub lag_bytes: Option<u64>,
    /// Seconds behind the leader (`pg_stat_replication.replay_lag` on the leader; 0 when
    /// caught up); `None` when the leader has no WAL sender for it.
    pub lag_seconds: Option<f64>,
    pub pending_restart: bool,
    /// Its REST API as reached from here (the provider's published address), else as Patroni
    /// advertises it.
    pub api_url: String,
}

/// The cluster now.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub leader: Option<String>,
    pub members: Vec<MemberStatus>,
    /// Patroni's automatic failover is paused (maintenance mode).
    pub paused: bool,
    /// `{at, from, to}` of a scheduled switchover.
    pub scheduled_switchover: Option<Value>,
    /// The synchronous standbys.
    pub sync_standby: Vec<String>,
    /// The DCS answered (through the provider's check, or as Patroni reports it).
    pub dcs_healthy: Option<bool>,
    /// `maximum_lag_on_failover` from the DCS configuration, in bytes.
    pub maximum_lag_on_failover: Option<u64>,
    /// The REST API that answered.
    pub answered_by: String,
}

impl ClusterStatus {
    pub fn member(&self, name: &str) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// Read the cluster's status from the first REST API in `api_urls` that answers, and the
/// replicas' lag in seconds from the leader's `pg_stat_replication` (through `servers`).
pub async fn status(
    reader: &Reader,
    api_urls: &[String],
    servers: &[Server],
) -> Result<ClusterStatus, PatroniError> {
    let (url, cluster) = reader.cluster_any(api_urls).await?;
    let config = reader.config(&url).await.ok();
    let mut members: Vec<MemberStatus> = patroni::cluster_entries(&cluster)
        .into_iter()
        .map(|e| MemberStatus {
            role: match e.role.as_str() {
                "primary" | "master" | "leader" => "leader".to_owned(),
                _ => e.role,
            },
            host: e.host,
            port: e.port,
            state: e.state,
            timeline: e.timeline,
            lag_bytes: e.lag,
            lag_seconds: None,
            pending_restart: e.pending_restart,
            // As reached from here: a container's own address (`http://demo-1:8008`) is not.
            api_url: servers
                .iter()
                .find(|s| s.name == e.name)
                .and_then(|s| s.api_url.clone())
                .unwrap_or(e.api_url),
            name: e.name,
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let leader = members
        .iter()
        .find(|m| m.role == "leader")
        .map(|m| m.name.clone());
    if let Some(l) = &leader
        && let Some(server) = servers.iter().find(|s| &s.name == l)
        && let Ok(lags) = replay_lags(server).await
    {
        // A replica the leader has no WAL sender for does not stream, whatever the DCS key
        // (which lags by up to the TTL) says: its lag stays unknown.
        for m in &mut members {
            m.lag_seconds = lags.get(&m.name).copied();
        }
    }
    let sync_standby = members
        .iter()
        .filter(|m| m.role == "sync_standby")
        .map(|m| m.name.clone())
        .collect();
    // Patroni 4 says `pause: true` only when paused.
    let paused = cluster
        .get("pause")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let maximum_lag_on_failover = config
        .as_ref()
        .and_then(|c| c.get("maximum_lag_on_failover"))
        .and_then(Value::as_u64);
    Ok(ClusterStatus {
        leader,
        members,
        paused,
        scheduled_switchover: cluster.get("scheduled_switchover").cloned(),
        sync_standby,
        dcs_healthy: None,
        maximum_lag_on_failover,
        answered_by: url,
    })
}

/// Each standby's replay lag in seconds, by `application_name` (Patroni sets it to the
/// member's name).
async fn replay_lags(leader: &Server) -> Result<BTreeMap<String, f64>, String> {
    let client = leader
        .connect(std::time::Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT application_name, COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 \
             FROM pg_stat_replication",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
        .collect())
}

/// Why a member cannot take the lead now, or `None` when it can. `planned`: a switchover
/// (the leader must be healthy); a failover needs only a candidate that runs.
pub fn refuse_candidate(s: &ClusterStatus, candidate: &str, planned: bool) -> Option<String> {
    let Some(m) = s.member(candidate) else {
        return Some(format!(
            "{candidate} is not a member of the cluster (its members: {})",
            s.members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if s.leader.as_deref() == Some(candidate) {
        return Some(format!("{candidate} already leads"));
    }
    if s.paused {
        return Some(
            "the cluster is paused (Patroni's maintenance mode): resume it first (`patronictl resume`)"
                .to_owned(),
        );
    }
    if let Some(at) = &s.scheduled_switchover {
        return Some(format!(
            "a switchover is already scheduled ({at}); cancel it first (`patronictl flush CLUSTER switchover`)"
        ));
    }
    if planned {
        let Some(leader) = s.leader.as_deref().and_then(|l| s.member(l)) else {
            return Some(
                "the cluster has no leader: a switchover needs one; use `failover trigger`"
                    .to_owned(),
            );
        };
        if leader.state != "running" {
            return Some(format!(
                "the leader {} is {}, not running: the cluster is not healthy; use `failover trigger`",
                leader.name, leader.state
            ));
        }
        if m.state != "streaming" {
            return Some(format!(
                "{candidate} is {}, not streaming from the leader",
                m.state
            ));
        }
    } else if m.state != "streaming" && m.state != "running" {
        return Some(format!("{candidate} is {}: it does not run", m.state));
    }
    if let (Some(lag), Some(max)) = (m.lag_bytes, s.maximum_lag_on_failover)
        && lag > max
    {
        return Some(format!(
            "{candidate} lags {lag} bytes behind, more than maximum_lag_on_failover ({max} bytes)"
        ));
    }
    None
}

/// The timeline a member is on now, from its own `GET /patroni`.
pub async fn timeline_of(reader: &Reader, api_url: &str) -> Option<u64> {
    reader.status(api_url).await.ok()?.get("timeline")?.as_u64()
}

/// Is `name` the leader with PostgreSQL running, as its own `GET /patroni` says?
pub async fn leads(reader: &Reader, api_url: &str) -> bool {
    reader.status(api_url).await.is_ok_and(|s| {
        s.get("role")
            .and_then(Value::as_str)
            .is_some_and(|r| patroni::parse_role(r) == crate::observe::model::Role::Leader)
            && s.get("state").and_then(Value::as_str) == Some("running")
    })
}
