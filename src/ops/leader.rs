//! Leader changes (switchover, failover) and the probe writer that measures them: pgdba's own
//! writes against whichever member accepts them, through the change, so the write outage is a
//! measured figure, not a promise.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Server;
use super::cluster::{ClusterStatus, leads, timeline_of};
use crate::patroni::{Client, PatroniError};

/// How often the probe commits.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// A writer that commits a transaction (it takes a transaction ID, so the commit is a WAL
/// record the server flushes) every few milliseconds on whichever server accepts writes,
/// reconnecting across a leader change, and remembers when each commit was acknowledged.
pub struct Probe {
    stop: Arc<AtomicBool>,
    commits: Arc<std::sync::Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a probe measured.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// Commits acknowledged while it ran.
    pub commits: usize,
    /// The longest time between two acknowledged commits, in ms: the write outage.
    pub write_unavailable_ms: Option<u64>,
}

impl Probe {
    /// Start writing to the member of `servers` that accepts writes (libpq's
    /// `target_session_attrs=read-write` over all of them).
    pub fn start(servers: &[Server]) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut cfg = tokio_postgres::Config::new();
        for s in servers {
            cfg.host(&s.host).port(s.port);
        }
        if let Some(s) = servers.first() {
            cfg.user(&s.user).dbname(&s.database);
            if let Some(p) = &s.password {
                cfg.password(p);
            }
        }
        cfg.application_name("pgdba-probe")
            .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite)
            .options("-c statement_timeout=2000 -c synchronous_commit=on")
            .connect_timeout(Duration::from_secs(1));
        let task = {
            let stop = stop.clone();
            let commits = commits.clone();
            tokio::spawn(async move {
                let mut client: Option<tokio_postgres::Client> = None;
                while !stop.load(Ordering::Relaxed) {
                    if client
                        .as_ref()
                        .is_none_or(tokio_postgres::Client::is_closed)
                    {
                        client = crate::observe::pg::open(cfg.clone(), Duration::from_secs(2))
                            .await
                            .ok();
                    }
                    if let Some(c) = &client {
                        match tokio::time::timeout(
                            Duration::from_secs(3),
                            c.simple_query("SELECT pg_current_xact_id()"),
                        )
                        .await
                        {
                            Ok(Ok(_)) => {
                                if let Ok(mut v) = commits.lock() {
                                    v.push(Instant::now());
                                }
                            }
                            _ => client = None,
                        }
                    }
                    tokio::time::sleep(PROBE_EVERY).await;
                }
            })
        };
        Probe {
            stop,
            commits,
            task,
        }
    }

    fn count(&self) -> usize {
        self.commits.lock().map(|v| v.len()).unwrap_or(0)
    }

    fn last(&self) -> Option<Instant> {
        self.commits.lock().ok().and_then(|v| v.last().copied())
    }

    /// Wait until a commit is acknowledged after `after`, at most `within`.
    pub async fn commit_after(&self, after: Instant, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.last().is_some_and(|t| t > after) {
                return true;
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
        false
    }

    pub async fn finish(self) -> ProbeResult {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let commits = self.commits.lock().map(|v| v.clone()).unwrap_or_default();
        let gap = commits
            .windows(2)
            .map(|w| w[1].duration_since(w[0]))
            .max()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        ProbeResult {
            commits: commits.len(),
            write_unavailable_ms: gap,
        }
    }
}

/// Switchover (planned: the leader hands over) or failover (forced: the candidate is
/// promoted whatever the leader's state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Switchover,
    Failover,
}

/// What a leader change did (CONTRACT.md: `from`, `to`, `timeline`, `write_unavailable_ms`).
#[derive(Debug, Clone, Serialize)]
pub struct LeaderChange {
    pub kind: Kind,
    pub from: Option<String>,
    pub to: String,
    /// The new leader's timeline.
    pub timeline: Option<u64>,
    /// The longest time no write committed, measured by pgdba's probe writer.
    pub write_unavailable_ms: Option<u64>,
    /// Commits the probe made through the change.
    pub probe_commits: usize,
    /// From the request to the new leader accepting writes, in ms.
    pub duration_ms: u64,
    /// Patroni's answer.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("Patroni refused or failed the {kind:?}: {source}")]
    Patroni {
        kind: Kind,
        #[source]
        source: PatroniError,
    },
    #[error("{0} did not become the leader within {1:?}")]
    NotLeading(String, Duration),
    #[error("no write committed on the new leader {0} within {1:?} after it took the lead")]
    NoWrites(String, Duration),
}

/// Hand the lead to `to`, measuring the write outage. The caller has checked the candidate
/// (`cluster::refuse_candidate`).
pub async fn change(
    client: &Client,
    status: &ClusterStatus,
    servers: &[Server],
    to: &str,
    kind: Kind,
    within: Duration,
) -> Result<LeaderChange, LeaderError> {
    let from = status.leader.clone();
    let probe = Probe::start(servers);
    // A last commit before the change, so the outage is measured from a real write.
    let before = Instant::now();
    if from.is_some() {
        probe.commit_after(before, Duration::from_secs(5)).await;
    }
    let started = Instant::now();
    let candidate_api = status
        .member(to)
        .map(|m| m.api_url.clone())
        .unwrap_or_default();
    let leader_api = from
        .as_deref()
        .and_then(|l| status.member(l))
        .map(|m| m.api_url.clone());
    let answer = match (kind, &from, leader_api) {
        (Kind::Switchover, Some(from), Some(api)) => {
            client.switchover(&api, from, to, within).await
        }
        // A failover is asked of the candidate itself: the leader may not answer.
        _ => client.failover(&candidate_api, to, within).await,
    };
    let answer = match answer {
        Ok(a) => a,
        Err(source) => {
            probe.finish().await;
            return Err(LeaderError::Patroni { kind, source });
        }
    };
    // Patroni answers once the candidate leads; confirm from the candidate itself.
    let deadline = started + within;
    while !leads(client, &candidate_api).await {
        if Instant::now() > deadline {
            probe.finish().await;
            return Err(LeaderError::NotLeading(to.to_owned(), within));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leading = Instant::now();
    let wrote = probe
        .commit_after(
            leading,
            within
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(10)),
        )
        .await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let commits_seen = probe.count();
    let result = probe.finish().await;
    if !wrote {
        return Err(LeaderError::NoWrites(to.to_owned(), within));
    }
    Ok(LeaderChange {
        kind,
        from,
        to: to.to_owned(),
        timeline: timeline_of(client, &candidate_api).await,
        write_unavailable_ms: result.write_unavailable_ms,
        probe_commits: result.commits.max(commits_seen),
        duration_ms,
        message: answer.body.trim().to_owned(),
    })
}
