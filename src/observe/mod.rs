//! Observation: the provider's inventory, Patroni's REST API and PostgreSQL's `pg_settings`,
//! queried concurrently with timeouts. An unreachable part becomes a note, never an error.

pub mod model;
pub mod pg;
pub mod sql;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;

use crate::patroni;
use crate::providers::local::layout::Layout;
use model::{Dcs, InventoryMember, Member, Observation, PatroniView, Role};

/// What observation needs.
pub struct Context<'a> {
    pub layout: &'a Layout,
    /// Read-only by type: it can only send `GET`.
    pub patroni: &'a patroni::Reader,
    /// pgdba's superuser password; without it `pg_settings` is not read.
    pub superuser: Option<(&'a str, &'a str)>,
    pub timeout: Duration,
    /// Secrets to check and databases to look into for extensions.
    pub needs: &'a sql::Needs,
}

/// Can this process connect as `postgres` by peer authentication? pg_ident's `pgdba` map
/// admits the OS users `root` and `postgres`.
fn peer_possible() -> bool {
    let uid = nix::unistd::Uid::effective();
    uid.is_root()
        || nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .is_some_and(|u| u.name == "postgres")
}

impl Context<'_> {
    fn conn<'s>(&'s self, port: u16, socket: &'s std::path::Path) -> Option<pg::Conn<'s>> {
        let (user, password) = self.superuser?;
        Some(pg::Conn {
            host: crate::providers::local::layout::HOST,
            port,
            user,
            password,
            timeout: self.timeout,
            read_only: true,
            socket: peer_possible().then_some(socket),
        })
    }
}

struct MemberAnswer {
    name: String,
    status: Result<serde_json::Value, String>,
    facts: Option<Result<pg::MemberFacts, String>>,
}

/// One member: its own live status (`/patroni`) and one PostgreSQL session.
async fn observe_member(
    ctx: &Context<'_>,
    name: String,
    api_url: String,
    pg_port: u16,
    socket: std::path::PathBuf,
    params: &[String],
) -> MemberAnswer {
    let status = ctx.patroni.status(&api_url);
    let facts = async {
        let conn = ctx.conn(pg_port, &socket)?;
        Some(
            pg::member_facts(&conn, params, Some(ctx.needs))
                .await
                .map_err(|e| crate::error_chain(&e)),
        )
    };
    let (status, facts) = tokio::join!(status, facts);
    MemberAnswer {
        name,
        status: status.map_err(|e| crate::error_chain(&e)),
        facts,
    }
}

/// The cluster-wide view (members, leader, dynamic configuration) from Patroni's keys in the
/// DCS, read linearizably: never older than a write that finished before it was asked (see
/// `patroni::dcs`).
async fn dcs_view(ctx: &Context<'_>) -> Result<PatroniView, String> {
    ctx.patroni
        .dcs_view(&ctx.layout.dcs())
        .await
        .map_err(|e| crate::error_chain(&e))
}

/// Observe one cluster. `params` are the GUC names whose `pg_settings` rows matter. The DCS
/// is healthy when it answered the linearizable read of Patroni's keys (which needs a quorum).
pub async fn observe(
    ctx: &Context<'_>,
    mut dcs: Dcs,
    inventory: Vec<InventoryMember>,
    params: &[String],
) -> Observation {
    let mut notes = Vec::new();
    // Probe the members whose process runs: the spec's and any extra the provider has.
    let running: Vec<(String, String, u16, std::path::PathBuf)> = inventory
        .iter()
        .filter(|m| m.running)
        .filter_map(|m| {
            let l = ctx.layout.member(&m.name)?;
            Some((m.name.clone(), l.api_url(), l.pg_port, l.socket_dir))
        })
        .collect();
    let probes = running
        .iter()
        .map(|(n, u, p, s)| observe_member(ctx, n.clone(), u.clone(), *p, s.clone(), params));
    // Only the DCS the provider says is this cluster's and runs: whatever else answers on its
    // address is not.
    let view = async {
        if dcs.running {
            dcs_view(ctx).await
        } else {
            Err("it does not run".to_owned())
        }
    };
    let all = async { tokio::join!(join_all(probes), view) };
    let (answers, view) = match tokio::time::timeout(ctx.timeout * 2, all).await {
        Ok(a) => a,
        Err(_) => {
            notes.push("observation timed out".to_owned());
            (Vec::new(), Err("timed out".to_owned()))
        }
    };
    dcs.healthy = view.is_ok();
    let view = match view {
        Ok(v) => Some(v),
        Err(e) => {
            if dcs.running {
                notes.push(format!(
                    "etcd at {} runs but Patroni's keys could not be read: {e}",
                    dcs.endpoint
                ));
            }
            None
        }
    };
    for m in inventory.iter().filter(|m| m.exists && !m.running) {
        notes.push(format!(
            "member {} is stopped (its Patroni is not running)",
            m.name
        ));
    }

    let mut members = BTreeMap::new();
    let mut catalogs = Vec::new();
    for a in answers {
        let mut member = Member {
            name: a.name.clone(),
            ..Member::default()
        };
        match &a.status {
            Ok(status) => {
                member.api_reachable = true;
                let (pending, reasons) = patroni::pending_restart(status);
                member.pending_restart = pending;
                member.pending_restart_reason = reasons;
                let text = |k: &str| status.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                member.role = text("role").map(|r| patroni::parse_role(&r));
                member.state = text("state");
                member.replication_state = text("replication_state");
            }
            Err(e) => notes.push(format!("member {} unreachable: {e}", a.name)),
        }
        match a.facts {
            Some(Ok(f)) => {
                member.settings = Some(f.settings);
                member.auto_conf = Some(f.auto_conf);
                member.hba = Some(f.hba);
                if let Some(c) = f.catalogs {
                    catalogs.push((a.name.clone(), c));
                }
            }
            Some(Err(e)) if a.status.is_ok() => {
                notes.push(format!("member {}: PostgreSQL unreachable: {e}", a.name))
            }
            _ => {}
        }
        members.insert(a.name.clone(), member);
    }
    if let Some(v) = &view {
        for m in &v.members {
            // The member's own live answer when there is one; `/cluster` lags.
            let live = members.get(&m.name).and_then(Member::live_healthy);
            let healthy = live.unwrap_or(match m.role {
                Role::Leader => m.state == "running",
                Role::Replica => m.state == "streaming",
                Role::Other => false,
            });
            if !healthy {
                let own = members.get(&m.name);
                let state = own
                    .and_then(|o| o.replication_state.clone().or(o.state.clone()))
                    .unwrap_or(m.state.clone());
                notes.push(format!("member {} is {:?} and {state}", m.name, m.role).to_lowercase());
            }
        }
        for m in inventory.iter().filter(|m| m.running) {
            if v.member(&m.name).is_none() {
                notes.push(format!(
                    "member {} runs but Patroni does not list it",
                    m.name
                ));
            }
        }
    }
    // Roles, databases and extensions from the primary's session (the one not in recovery;
    // the leader's, should two ever say so during a switchover).
    let leader = view
        .as_ref()
        .and_then(|v| v.leader())
        .map(|m| m.name.clone());
    let pick = catalogs
        .iter()
        .position(|(n, _)| Some(n) == leader.as_ref())
        .unwrap_or(0);
    let sql_objects = (!catalogs.is_empty()).then(|| catalogs.swap_remove(pick).1);
    if sql_objects.is_none() && leader.is_some() && ctx.superuser.is_some() {
        notes.push("the primary's catalogs could not be read".to_owned());
    }
    Observation {
        cluster: ctx.layout.cluster.clone(),
        dcs,
        inventory,
        patroni: view,
        members,
        sql: sql_objects,
        notes,
    }
}
