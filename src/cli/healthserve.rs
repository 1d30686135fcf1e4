//! `health serve --listen ADDR`: the health checks over HTTP for load balancers and monitors,
//! until stopped. The checks run every `--interval` seconds in the background; requests answer
//! from the latest run at once.
//!
//! - `GET /health`: 200 when the latest checks are not crit, else 503; the report as JSON.
//! - `GET /primary` (`/primary/MEMBER`): 200 when the cluster has a leader whose PostgreSQL runs
//!   (when MEMBER is that leader), else 503; for a plain server, when it is not in recovery.
//! - `GET /replica` (`/replica/MEMBER`): 200 when a replica (MEMBER) streams with a replay lag
//!   under the crit threshold, else 503; for a plain server, when it is in recovery.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::{self, ClusterArg, Target};
use crate::ops::health::{Report, Status};

/// A member's role as the load balancer asks about it.
#[derive(Clone, Debug)]
struct Role {
    name: String,
    address: String,
    leader: bool,
    /// Leader: PostgreSQL runs. Replica: streams within the lag threshold.
    usable: bool,
}

#[derive(Default)]
struct Latest {
    report: Option<Report>,
    roles: Vec<Role>,
    at: Option<String>,
    error: Option<String>,
}

type Shared = Arc<RwLock<Latest>>;

/// Who leads and who replicates, now.
async fn roles(target: &Target, lag_crit: f64) -> Result<Vec<Role>, String> {
    match target {
        Target::Cluster(k) => {
            let s = super::leader::read_status(k).await.map_err(|f| f.message)?;
            Ok(s.members
                .iter()
                .map(|m| {
                    let leader = m.role == "leader";
                    Role {
                        name: m.name.clone(),
                        address: format!("{}:{}", m.host, m.port),
                        leader,
                        usable: if leader {
                            m.state == "running"
                        } else {
                            m.state == "streaming" && m.lag_seconds.is_some_and(|l| l < lag_crit)
                        },
                    }
                })
                .collect())
        }
        Target::Plain(s) => {
            let client = s
                .connect(Duration::from_secs(5))
                .await
                .map_err(|e| crate::error_chain(&e))?;
            let row = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(|e| crate::error_chain(&e))?;
            let in_recovery: bool = row.get(0);
            Ok(vec![Role {
                name: s.name.clone(),
                address: format!("{}:{}", s.host, s.port),
                leader: !in_recovery,
                usable: true,
            }])
        }
    }
}

async fn refresh(target: &Target, shared: &Shared) {
    let lag_crit = super::health::thresholds(target).replication_lag_crit_seconds;
    let (report, roles) = tokio::join!(super::health::run_on(target), roles(target, lag_crit));
    let mut latest = shared.write().await;
    latest.at = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    match report {
        Ok(r) => {
            latest.report = Some(r);
            latest.error = None;
        }
        Err(f) => {
            latest.report = None;
            latest.error = Some(f.message);
        }
    }
    latest.roles = roles.unwrap_or_default();
}

fn answer(ok: bool, body: Value) -> Response {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn health(State(shared): State<Shared>) -> Response {
    let latest = shared.read().await;
    match &latest.report {
        Some(r) => answer(
            r.status != Status::Crit && !r.none_answered(),
            json!({ "status": r.status, "at": latest.at, "checks": r.checks }),
        ),
        None => answer(
            false,
            json!({ "status": "unknown", "at": latest.at, "error": latest.error }),
        ),
    }
}

async fn role_answer(shared: &Shared, leader: bool, member: Option<String>) -> Response {
    let latest = shared.read().await;
    let found: Vec<&Role> = latest
        .roles
        .iter()
        .filter(|r| r.leader == leader && r.usable)
        .filter(|r| member.as_ref().is_none_or(|m| &r.name == m))
        .collect();
    answer(
        !found.is_empty(),
        json!({
            "role": if leader { "primary" } else { "replica" },
            "member": member,
            "members": found.iter().map(|r| json!({ "name": r.name, "address": r.address })).collect::<Vec<_>>(),
            "at": latest.at,
        }),
    )
}

async fn primary(State(s): State<Shared>) -> Response {
    role_answer(&s, true, None).await
}
async fn primary_of(State(s): State<Shared>, Path(m): Path<String>) -> Response {
    role_answer(&s, true, Some(m)).await
}
async fn replica(State(s): State<Shared>) -> Response {
    role_answer(&s, false, None).await
}
async fn replica_of(State(s): State<Shared>, Path(m): Path<String>) -> Response {
    role_answer(&s, false, Some(m)).await
}

pub(super) async fn serve(
    g: &Global,
    c: &ClusterArg,
    listen: &str,
    interval: u64,
) -> Result<Outcome, Failure> {
    let target = Arc::new(target::resolve(g, c).await?);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Failure::new(
            codes::LISTEN_FAILED,
            format!("cannot listen on {listen}: {e}"),
        )
    })?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| listen.to_owned());
    let shared: Shared = Arc::default();
    // The first run before the first answer: a load balancer never sees "unknown" for long.
    refresh(&target, &shared).await;
    let refresher = {
        let (target, shared) = (target.clone(), shared.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(interval.max(1))).await;
                refresh(&target, &shared).await;
            }
        })
    };
    let app = axum::Router::new()
        .route("/health", get(health))
        .route("/primary", get(primary))
        .route("/primary/{member}", get(primary_of))
        .route("/replica", get(replica))
        .route("/replica/{member}", get(replica_of))
        .with_state(shared);
    eprintln!("health serve: listening on http://{bound} (GET /health, /primary, /replica)");
    let stopped = async {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await;
    refresher.abort();
    served.map_err(|e| Failure::new(codes::LISTEN_FAILED, format!("serving on {bound}: {e}")))?;
    Ok(Outcome::ok(
        json!({ "listen": bound, "stopped": true }),
        format!("stopped serving on {bound}\n"),
    ))
}
