//! Observation: the provider's inventory, Patroni's REST API and PostgreSQL's `pg_settings`,
//! queried concurrently with timeouts. An unreachable part becomes a note, never an error.

pub mod model;
pub mod pg;
pub mod sql;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;

use crate::patroni;
use crate::providers::{Access, Inventory, Provider};
use model::{InventoryMember, Member, Observation, PatroniView, Role, Unreachable};

/// What observation needs.
pub struct Context<'a> {
    /// What runs, and where: read-only by use (observation calls only its read side).
    pub provider: &'a dyn Provider,
    /// Read-only by type: it can only send `GET`.
    pub patroni: &'a patroni::Reader,
    /// pgdba's superuser password; without it `pg_settings` is read only by peer
    /// authentication.
    pub superuser: Option<(&'a str, &'a str)>,
    /// etcd's user and password, when etcd authenticates.
    pub etcd: Option<(&'a str, &'a str)>,
    pub timeout: Duration,
    /// Secrets to check and databases to look into for extensions.
    pub needs: &'a sql::Needs,
    /// The spec backs the cluster up (`spec.backup`): ask pgBackRest about its stanza.
    pub backup: bool,
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
    /// A session as pgdba's superuser: by peer authentication over the member's socket when
    /// this process may (no password needed), else over TCP with the password.
    fn conn<'s>(&'s self, access: &'s Access) -> Option<pg::Conn<'s>> {
        let socket = access.socket_dir.as_deref().filter(|_| peer_possible());
        let (user, password) = match self.superuser {
            Some(s) => s,
            None if socket.is_some() => (crate::roles::SUPERUSER, ""),
            None => return None,
        };
        Some(pg::Conn {
            host: access.host.clone(),
            port: access.port,
            user,
            password,
            timeout: self.timeout,
            read_only: true,
            socket,
        })
    }
}

struct MemberAnswer {
    name: String,
    /// `None` when its Patroni does not run (only its PostgreSQL was probed).
    status: Option<Result<serde_json::Value, String>>,
    facts: Option<Result<pg::MemberFacts, String>>,
}

/// `fut`, or an error once `bound` has passed: a process that hangs (stopped, overloaded)
/// holds up only its own answer.
async fn bounded<T, E: std::fmt::Display>(
    bound: std::time::Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(bound, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {}s", bound.as_secs_f32())),
    }
}

/// One member: its own live status (`/patroni`, when its Patroni runs) and one PostgreSQL
/// session, each within the observation's bound.
async fn observe_member(
    ctx: &Context<'_>,
    member: &InventoryMember,
    access: &Access,
    params: &[String],
) -> MemberAnswer {
    let status = async {
        if !member.running {
            return None;
        }
        let r = bounded(ctx.timeout, async {
            ctx.patroni
                .status(&access.api_url)
                .await
                .map_err(|e| crate::error_chain(&e))
        })
        .await;
        Some(r)
    };
    let facts = async {
        let conn = ctx.conn(access)?;
        Some(
            bounded(ctx.timeout, async {
                pg::member_facts(&conn, params, Some(ctx.needs))
                    .await
                    .map_err(|e| crate::error_chain(&e))
            })
            .await,
        )
    };
    let (status, facts) = tokio::join!(status, facts);
    MemberAnswer {
        name: member.name.clone(),
        status,
        facts,
    }
}

/// The cluster-wide view (members, leader, dynamic configuration) from Patroni's keys in the
/// DCS, read linearizably: never older than a write that finished before it was asked (see
/// `patroni::dcs`).
async fn dcs_view(
    ctx: &Context<'_>,
    location: crate::patroni::dcs::Location,
) -> Result<PatroniView, String> {
    bounded(ctx.timeout, async {
        let location = location.with_auth(ctx.etcd);
        ctx.patroni
            .dcs_view(&location)
            .await
            .map_err(|e| crate::error_chain(&e))
    })
    .await
}

/// Observe one cluster. `params` are the GUC names whose `pg_settings` rows matter. The DCS
/// is healthy when it answered the linearizable read of Patroni's keys (which needs a quorum).
///
/// Each member and the DCS have their own bound: what answered is kept, and what runs but did
/// not answer is named in `unreachable`.
pub async fn observe(ctx: &Context<'_>, params: &[String]) -> Observation {
    let Inventory {
        mut dcs,
        members: inventory,
        pooler,
        dcs_location,
        mut unreachable,
    } = ctx.provider.inventory().await;
    let mut notes: Vec<String> = unreachable
        .iter()
        .map(|u| format!("{} ({}): {}", u.address, u.source, u.reason))
        .collect();
    // Probe the members whose Patroni or PostgreSQL runs: the spec's and any extra the
    // provider has.
    let probes = inventory
        .iter()
        .filter(|m| m.running || m.postgres_running)
        .filter_map(|m| Some(observe_member(ctx, m, m.access.as_ref()?, params)));
    // Only the DCS the provider says is this cluster's and runs: whatever else answers on its
    // address is not.
    let view = async {
        if dcs.running {
            Some(dcs_view(ctx, dcs_location).await)
        } else {
            None
        }
    };
    let (answers, view) = tokio::join!(join_all(probes), view);
    dcs.healthy = matches!(view, Some(Ok(_)));
    let view = match view {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            unreachable.push(Unreachable {
                address: crate::diff::Address::Dcs,
                source: "etcd".to_owned(),
                reason: format!(
                    "etcd at {} runs but Patroni's keys could not be read: {e}",
                    dcs.endpoint
                ),
            });
            None
        }
        None => None,
    };
    for m in inventory.iter().filter(|m| m.exists && !m.running) {
        notes.push(if m.postgres_running {
            format!(
                "member {}: its Patroni is not running, but its PostgreSQL is",
                m.name
            )
        } else {
            format!("member {} is stopped (its Patroni is not running)", m.name)
        });
    }

    let mut members = BTreeMap::new();
    let mut catalogs = Vec::new();
    for a in answers {
        let mut member = Member {
            name: a.name.clone(),
            ..Member::default()
        };
        let mut failed = Vec::new();
        match &a.status {
            Some(Ok(status)) => {
                member.api_reachable = true;
                let (pending, reasons) = patroni::pending_restart(status);
                member.pending_restart = pending;
                member.pending_restart_reason = reasons;
                let text = |k: &str| status.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                member.role = text("role").map(|r| patroni::parse_role(&r));
                member.state = text("state");
                member.replication_state = text("replication_state");
            }
            Some(Err(e)) => failed.push(format!("Patroni REST API: {e}")),
            None => {}
        }
        match a.facts {
            Some(Ok(f)) => {
                member.settings = Some(f.settings);
                member.auto_conf = Some(f.auto_conf);
                member.hba = Some(f.hba);
                member.accepts_writes = Some(!f.in_recovery);
                member.timeline = f.timeline;
                if let Some(c) = f.catalogs {
                    catalogs.push((a.name.clone(), c));
                }
            }
            // Patroni says PostgreSQL failed in a way it does not leave by itself: a fact the
            // plan acts on (a rebuild), not a gap.
            Some(Err(_))
                if member
                    .state
                    .as_deref()
                    .is_some_and(patroni::is_terminal_state) => {}
            // Patroni answers, PostgreSQL does not run, and Patroni is not starting it (a data
            // directory it cannot read, a start in progress): nothing can be said of it yet.
            Some(Err(_)) if member.state.as_deref().is_some_and(|s| s != "running") => {
                let role = a
                    .status
                    .as_ref()
                    .and_then(|s| s.as_ref().ok())
                    .and_then(|s| s.get("role")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".to_owned());
                failed.push(format!(
                    "PostgreSQL: its Patroni answers, but says PostgreSQL is {} (role {role})",
                    member.state.as_deref().unwrap_or_default()
                ));
            }
            Some(Err(e)) => failed.push(format!("PostgreSQL: {e}")),
            None => {}
        }
        if !failed.is_empty() {
            let reason = failed.join("; ");
            notes.push(format!("member {} did not answer: {reason}", a.name));
            unreachable.push(Unreachable {
                address: crate::diff::member_address(&a.name),
                source: failed
                    .iter()
                    .filter_map(|f| f.split_once(':').map(|(s, _)| s))
                    .collect::<Vec<_>>()
                    .join(", "),
                reason,
            });
        }
        members.insert(a.name.clone(), member);
    }
    if let Some(v) = &view {
        for m in &v.members {
            // The member's own live answer when there is one; the member keys lag.
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
    // Without the DCS, say who accepts writes, as the members themselves tell: Patroni demotes
    // a leader that cannot reach the DCS unless failsafe mode keeps it.
    if dcs.running && view.is_none() {
        let writers: Vec<&str> = members
            .iter()
            .filter(|(_, m)| m.accepts_writes == Some(true))
            .map(|(n, _)| n.as_str())
            .collect();
        notes.push(if writers.is_empty() {
            "the DCS cannot be read, and no member accepts writes".to_owned()
        } else {
            format!(
                "the DCS cannot be read; {} accept{} writes (failsafe mode, or until Patroni demotes it)",
                writers.join(", "),
                if writers.len() == 1 { "s" } else { "" }
            )
        });
    }
    // Roles, databases and extensions from the primary's session (the one not in recovery;
    // the leader's, should two ever say so).
    let leader = view
        .as_ref()
        .and_then(|v| v.leader())
        .map(|m| m.name.clone());
    let pick = catalogs
        .iter()
        .position(|(n, _)| Some(n) == leader.as_ref())
        .unwrap_or(0);
    let sql_objects = (!catalogs.is_empty()).then(|| catalogs.swap_remove(pick).1);
    if let Some(s) = &sql_objects {
        notes.extend(s.notes.iter().cloned());
    }
    if sql_objects.is_none() && leader.is_some() && ctx.superuser.is_some() {
        notes.push("the primary's catalogs could not be read".to_owned());
    }
    if leader.is_none() && view.as_ref().is_some_and(|v| !v.members.is_empty()) {
        notes.push(
            "the cluster has no leader yet: its roles, databases and extensions are not compared; plan again once it has one".to_owned(),
        );
    }
    let backup = match (&leader, ctx.backup) {
        (Some(l), true) => {
            let stanza = ctx.provider.topology().cluster.clone();
            match backup_stanza(ctx, l, &stanza).await {
                Ok(b) => Some(b),
                Err(e) => {
                    unreachable.push(Unreachable {
                        address: crate::diff::Address::BackupStanza,
                        source: "pgBackRest".to_owned(),
                        reason: format!("`pgbackrest info` on {l}: {e}"),
                    });
                    None
                }
            }
        }
        _ => None,
    };
    Observation {
        backup,
        cluster: ctx.provider.topology().cluster.clone(),
        dcs,
        inventory,
        patroni: view,
        members,
        sql: sql_objects,
        notes,
        unreachable,
        pooler,
    }
}

/// The cluster's stanza as `pgbackrest info` on `member` reports it.
async fn backup_stanza(
    ctx: &Context<'_>,
    member: &str,
    stanza: &str,
) -> Result<model::BackupStanza, String> {
    let argv: Vec<String> = vec![
        "pgbackrest".to_owned(),
        "--output=json".to_owned(),
        format!("--stanza={stanza}"),
        "info".to_owned(),
    ];
    let ran = ctx
        .provider
        .run_beside(member, &argv, &[], ctx.timeout.max(Duration::from_secs(10)))
        .await
        .map_err(|e| crate::error_chain(&e))?;
    if !ran.success() {
        return Err(pgbackrest_error(&ran));
    }
    let (code, message) = stanza_status(&ran.stdout, stanza)?;
    Ok(model::BackupStanza {
        stanza: stanza.to_owned(),
        // 1: missing stanza path; 3: missing stanza data.
        exists: code != 1 && code != 3,
        status: format!("{code} {message}"),
        member: member.to_owned(),
    })
}

/// pgBackRest's status of `stanza` in `pgbackrest info --output=json`: code and message.
pub fn stanza_status(json: &str, stanza: &str) -> Result<(i64, String), String> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("pgbackrest info did not answer JSON: {e}"))?;
    let entry = v
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(stanza))
        })
        .ok_or_else(|| format!("pgbackrest info does not list stanza {stanza}"))?;
    let status = entry.get("status").cloned().unwrap_or_default();
    Ok((
        status
            .get("code")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(-1),
        status
            .get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// What a failed pgBackRest run said: its ERROR line, else the end of its output.
pub fn pgbackrest_error(ran: &crate::providers::Ran) -> String {
    let text = format!("{}\n{}", ran.stderr, ran.stdout);
    text.lines()
        .find(|l| l.contains("ERROR"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| {
            let t = text.trim();
            let start = t.char_indices().rev().nth(400).map_or(0, |(i, _)| i);
            format!("exit {}: {}", ran.code, &t[start..])
        })
}
