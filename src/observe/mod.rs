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

impl Context<'_> {
    fn conn(&self, port: u16) -> Option<pg::Conn<'_>> {
        let (user, password) = self.superuser?;
        Some(pg::Conn {
            host: crate::providers::local::layout::HOST,
            port,
            user,
            password,
            timeout: self.timeout,
            read_only: true,
        })
    }
}

type Facts = (BTreeMap<String, model::PgSetting>, Vec<model::HbaLine>);

struct MemberAnswer {
    name: String,
    status: Result<serde_json::Value, String>,
    cluster: Option<Vec<model::PatroniMember>>,
    config: Option<serde_json::Value>,
    facts: Option<Result<Facts, String>>,
}

async fn observe_member(
    ctx: &Context<'_>,
    name: String,
    api_url: String,
    pg_port: u16,
    params: &[String],
) -> MemberAnswer {
    let status = ctx.patroni.status(&api_url);
    let cluster = ctx.patroni.cluster(&api_url);
    let config = ctx.patroni.config(&api_url);
    let facts = async {
        let conn = ctx.conn(pg_port)?;
        Some(
            pg::member_facts(&conn, params)
                .await
                .map_err(|e| crate::error_chain(&e)),
        )
    };
    let (status, cluster, config, facts) = tokio::join!(status, cluster, config, facts);
    MemberAnswer {
        name,
        status: status.map_err(|e| crate::error_chain(&e)),
        cluster: cluster.ok(),
        config: config.ok(),
        facts,
    }
}

/// Observe one cluster. `params` are the GUC names whose `pg_settings` rows matter.
pub async fn observe(
    ctx: &Context<'_>,
    dcs: Dcs,
    inventory: Vec<InventoryMember>,
    params: &[String],
) -> Observation {
    let mut notes = Vec::new();
    // Probe the members whose process runs: the spec's and any extra the provider has.
    let probes = inventory.iter().filter(|m| m.running).filter_map(|m| {
        let l = ctx.layout.member(&m.name)?;
        Some(observe_member(
            ctx,
            m.name.clone(),
            l.api_url(),
            l.pg_port,
            params,
        ))
    });
    let answers = tokio::time::timeout(ctx.timeout * 2, join_all(probes)).await;
    let answers = match answers {
        Ok(a) => a,
        Err(_) => {
            notes.push("observation timed out".to_owned());
            Vec::new()
        }
    };
    for m in inventory.iter().filter(|m| m.exists && !m.running) {
        notes.push(format!(
            "member {} is stopped (its Patroni is not running)",
            m.name
        ));
    }

    let mut members = BTreeMap::new();
    let mut view: Option<PatroniView> = None;
    let mut config_from_leader = false;
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
            Some(Ok((settings, hba))) => {
                member.settings = Some(settings);
                member.hba = Some(hba);
            }
            Some(Err(e)) if a.status.is_ok() => {
                notes.push(format!("member {}: PostgreSQL unreachable: {e}", a.name))
            }
            _ => {}
        }
        let is_leader = a
            .status
            .as_ref()
            .ok()
            .and_then(|s| s.get("role"))
            .and_then(|r| r.as_str())
            .is_some_and(|r| patroni::parse_role(r) == Role::Leader);
        if let Some(cluster) = a.cluster
            && (view.is_none() || (is_leader && !config_from_leader))
        {
            let config = a
                .config
                .or_else(|| view.as_ref().and_then(|v| v.config.clone()));
            view = Some(PatroniView {
                members: cluster,
                config,
            });
            config_from_leader = is_leader;
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
    // Roles, databases and extensions from the leader, where writes go.
    let leader_port = view
        .as_ref()
        .and_then(|v| v.leader())
        .and_then(|l| ctx.layout.member(&l.name))
        .map(|m| m.pg_port);
    let mut sql_objects = None;
    if let Some(conn) = leader_port.and_then(|p| ctx.conn(p)) {
        match tokio::time::timeout(ctx.timeout * 2, sql::objects(&conn, ctx.needs)).await {
            Ok(Ok(o)) => sql_objects = Some(o),
            Ok(Err(e)) => notes.push(format!(
                "the leader's catalogs could not be read: {}",
                crate::error_chain(&e)
            )),
            Err(_) => notes.push("reading the leader's catalogs timed out".to_owned()),
        }
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
