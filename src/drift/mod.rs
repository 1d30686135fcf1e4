//! Drift: what changed outside pgdba since the last apply, classified. Pure: it reads the diff
//! of the last applied spec against an observation, and the observation itself.
//!
//! - `expected`: the leader moved (a failover or a switchover). pgdba never "fixes" it by
//!   switching back.
//! - `benign`: a difference that does not endanger the cluster (a Patroni timing setting, an
//!   extension version, a role attribute other than superuser or password, a member added).
//! - `dangerous`: a member down or gone, replication broken, the DCS down, a managed value
//!   overridden (DCS or ALTER SYSTEM), synchronous replication weaker than the spec asks, a
//!   password, superuser flag or HBA rule changed, a database dropped.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::diff::{Address, Change, ChangeAction, Diff, Kind, MemberOp};
use crate::observe::model::{Observation, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Expected,
    Benign,
    Dangerous,
}

/// One out-of-band change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub address: Address,
    pub class: Class,
    /// Where it was seen: `Patroni DCS`, `postgresql.auto.conf`, `pg_hba_file_rules`,
    /// `catalog`, `Patroni`, `provider`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// As last applied.
    pub before: Option<Value>,
    /// As found now.
    pub after: Option<Value>,
    pub message: String,
}

/// `--fail-on`: what makes drift exit 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Dangerous,
    Any,
}

impl FailOn {
    pub fn counts(self, class: Class) -> bool {
        match self {
            FailOn::Any => class != Class::Expected,
            FailOn::Dangerous => class == Class::Dangerous,
        }
    }
}

fn item(c: &Change, class: Class, source: &str, member: Option<String>, message: String) -> Item {
    // A diff says what apply would do (before = found, after = wanted); drift says what
    // changed (before = applied, after = found).
    Item {
        address: c.address.clone(),
        class,
        source: source.to_owned(),
        member,
        before: c.after.clone(),
        after: c.before.clone(),
        message,
    }
}

/// Does the DCS hold a weaker synchronous replication than the spec (the diff's `after`) asks:
/// synchronous or strict mode off, or fewer synchronous standbys? An acknowledged commit may
/// then be lost in a failover, which the spec promised it would not.
fn weakens_synchronous(c: &Change) -> bool {
    let (Some(wanted), found) = (c.after.as_ref(), c.before.as_ref()) else {
        return false;
    };
    match c.name().as_str() {
        "synchronous_mode" | "synchronous_mode_strict" => {
            wanted == &Value::Bool(true)
                && !found.is_some_and(|f| crate::diff::same_patroni_value(f, wanted))
        }
        "synchronous_node_count" => {
            let found = found.and_then(|f| match f {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            });
            wanted.as_u64().is_some_and(|w| found.is_none_or(|f| f < w))
        }
        _ => false,
    }
}

fn classify(c: &Change) -> Item {
    let name = c.name().to_owned();
    match c.kind() {
        Kind::Dcs => item(
            c,
            Class::Dangerous,
            "provider",
            None,
            "the cluster's etcd is down or gone".to_owned(),
        ),
        // Clients of the pooler cannot connect: dangerous, as a member down is.
        Kind::Pooler => item(
            c,
            Class::Dangerous,
            "provider",
            None,
            match c.action {
                ChangeAction::Create => "the pooler is gone".to_owned(),
                ChangeAction::Delete => "a pooler runs that the spec does not ask for".to_owned(),
                _ => format!("the pooler: {}", c.reason),
            },
        ),
        // No backups can be taken, and WAL is not archived.
        Kind::Backup => item(
            c,
            Class::Dangerous,
            "pgBackRest",
            None,
            format!("the backup repository: {}", c.reason),
        ),
        Kind::Member => match c.action {
            ChangeAction::Create => item(
                c,
                Class::Dangerous,
                "provider",
                Some(name.clone()),
                format!("member {name} is gone"),
            ),
            ChangeAction::Delete => item(
                c,
                Class::Benign,
                "provider",
                Some(name.clone()),
                format!("member {name} was added outside pgdba"),
            ),
            _ => match c.operation {
                Some(MemberOp::Reconfigure) => item(
                    c,
                    Class::Benign,
                    "provider",
                    Some(name.clone()),
                    format!("member {name}'s Patroni configuration file differs from the spec's"),
                ),
                Some(MemberOp::Restart) => item(
                    c,
                    Class::Benign,
                    "Patroni",
                    Some(name.clone()),
                    format!("member {name} waits for a restart"),
                ),
                Some(MemberOp::Reinit) => item(
                    c,
                    Class::Dangerous,
                    "Patroni",
                    Some(name.clone()),
                    format!("member {name}: {}", c.reason),
                ),
                Some(MemberOp::Start) | None => item(
                    c,
                    Class::Dangerous,
                    "provider",
                    Some(name.clone()),
                    format!("member {name} is stopped"),
                ),
            },
        },
        Kind::Patroni if weakens_synchronous(c) => item(
            c,
            Class::Dangerous,
            "Patroni DCS",
            None,
            format!(
                "Patroni setting {name} was changed in the DCS: commits acknowledged to clients \
                 wait for fewer standbys than the spec asks"
            ),
        ),
        Kind::Patroni => item(
            c,
            Class::Benign,
            "Patroni DCS",
            None,
            format!("Patroni setting {name} was changed in the DCS"),
        ),
        Kind::PgParameter => item(
            c,
            Class::Dangerous,
            "Patroni DCS",
            None,
            format!("managed parameter {name} was changed in the DCS"),
        ),
        Kind::Override => {
            let (member, guc) = name.split_once('.').unwrap_or((&name, ""));
            item(
                c,
                Class::Dangerous,
                "postgresql.auto.conf",
                Some(member.to_owned()),
                format!("ALTER SYSTEM on member {member} overrides managed parameter {guc}"),
            )
        }
        Kind::Role => {
            let (password, superuser) = match c.detail {
                crate::diff::Detail::Role {
                    password,
                    superuser,
                } => (password, superuser),
                _ => (false, false),
            };
            let risky = password || superuser || c.action == ChangeAction::Create;
            let what = match c.action {
                ChangeAction::Create => format!("role {name} was dropped"),
                _ if password => format!("role {name}: {}", c.reason),
                _ => format!("role {name} was altered"),
            };
            item(
                c,
                if risky {
                    Class::Dangerous
                } else {
                    Class::Benign
                },
                "catalog",
                None,
                what,
            )
        }
        Kind::Database => match c.action {
            ChangeAction::Create => item(
                c,
                Class::Dangerous,
                "catalog",
                None,
                format!("database {name} was dropped"),
            ),
            _ => item(
                c,
                Class::Benign,
                "catalog",
                None,
                format!("database {name} was altered"),
            ),
        },
        Kind::Extension => item(
            c,
            Class::Benign,
            "catalog",
            None,
            format!("extension {name} was changed"),
        ),
        Kind::Hba => item(
            c,
            Class::Dangerous,
            "pg_hba_file_rules",
            None,
            c.reason.clone(),
        ),
    }
}

/// What drift compares with, per address: what pgdba last did to it. `partials` are the diffs
/// of the specs of applies that stopped part-way, newest first, each with the addresses its
/// completed actions changed; `applied` is the diff of the last complete apply's spec. An
/// address takes its change from the newest partial apply that changed it, else from the last
/// complete apply; one that no apply ever changed (a member whose first create failed) is not
/// drift.
pub fn baseline(applied: Option<Diff>, partials: &[(Diff, &BTreeSet<Address>)]) -> Diff {
    let owner = |address: &Address| partials.iter().position(|(_, done)| done.contains(address));
    let unmanaged = partials
        .first()
        .map(|(d, _)| &d.unmanaged)
        .or(applied.as_ref().map(|d| &d.unmanaged))
        .cloned()
        .unwrap_or_default();
    let mut changes = Vec::new();
    for (i, (d, _)) in partials.iter().enumerate() {
        changes.extend(
            d.changes
                .iter()
                .filter(|c| owner(&c.address) == Some(i))
                .cloned(),
        );
    }
    let forgotten = match applied {
        Some(d) => {
            changes.extend(
                d.changes
                    .into_iter()
                    .filter(|c| owner(&c.address).is_none()),
            );
            d.forgotten
        }
        None => Vec::new(),
    };
    Diff {
        changes,
        forgotten,
        unmanaged,
    }
}

/// Split brain, as far as the observation shows it: more than one member accepts writes, or
/// one does that the DCS does not name the leader (a PostgreSQL promoted outside Patroni, or
/// left running after its Patroni died). What pgdba knows, in words; `None` when neither.
pub fn split_brain(obs: &Observation) -> Option<String> {
    let writers: Vec<(&String, Option<u64>)> = obs
        .members
        .iter()
        .filter(|(_, m)| m.accepts_writes == Some(true))
        .map(|(n, m)| (n, m.timeline))
        .collect();
    let leader = obs
        .patroni
        .as_ref()
        .and_then(|v| v.leader())
        .map(|m| m.name.as_str());
    let outsider = writers
        .iter()
        .any(|(n, _)| leader.is_some_and(|l| l != n.as_str()));
    if writers.len() < 2 && !outsider {
        return None;
    }
    let shown: Vec<String> = writers
        .iter()
        .map(|(n, tl)| match tl {
            Some(tl) => format!("{n} (timeline {tl})"),
            None => n.to_string(),
        })
        .collect();
    Some(format!(
        "split brain: {} accept{} writes; the DCS names {} the leader",
        shown.join(" and "),
        if shown.len() == 1 { "s" } else { "" },
        leader.unwrap_or("no member")
    ))
}

/// Everything that drifted. `diff` is the last applied spec against `obs`; `applied_leader`
/// is who led right after the last apply.
pub fn detect(diff: &Diff, obs: &Observation, applied_leader: Option<&str>) -> Vec<Item> {
    let mut items: Vec<Item> = diff.changes.iter().map(classify).collect();
    let view = obs.patroni.as_ref();
    let leader = view.and_then(|v| v.leader()).map(|m| m.name.clone());
    if let (Some(before), Some(now)) = (applied_leader, leader.as_deref())
        && before != now
    {
        items.push(Item {
                address: Address::Leader,
                class: Class::Expected,
                source: "Patroni".to_owned(),
                member: Some(now.to_owned()),
                before: Some(json!(before)),
                after: Some(json!(now)),
                message: format!(
                    "the leader moved from {before} to {now} (a failover or a switchover); pgdba does not switch back"
                ),
            });
    }
    if let Some(v) = view {
        // Replication as each replica says itself (`/cluster` lags by up to loop_wait).
        let broken = |m: &&crate::observe::model::PatroniMember| {
            m.role == Role::Replica
                && obs
                    .members
                    .get(&m.name)
                    .and_then(|o| o.live_healthy())
                    .map_or(m.state != "streaming", |ok| !ok)
        };
        for m in v.members.iter().filter(broken) {
            // What it was decided from: the replica's own live answer when there is one.
            let live = obs.members.get(&m.name).and_then(|o| {
                let state = o.state.as_deref()?;
                Some(match o.replication_state.as_deref() {
                    Some(r) => format!("{state}, replication {r}"),
                    None => format!("{state}, not replicating"),
                })
            });
            let shown = live.unwrap_or_else(|| format!("{} (as the DCS last heard)", m.state));
            items.push(Item {
                address: crate::diff::member_address(&m.name),
                class: Class::Dangerous,
                source: "Patroni".to_owned(),
                member: Some(m.name.clone()),
                before: Some(json!("streaming")),
                after: Some(json!(shown)),
                message: format!("replication is broken: replica {} is {shown}", m.name),
            });
        }
        if leader.is_none() && !v.members.is_empty() {
            items.push(Item {
                address: Address::Leader,
                class: Class::Dangerous,
                source: "Patroni".to_owned(),
                member: None,
                before: applied_leader.map(|l| json!(l)),
                after: None,
                message: "the cluster has no leader".to_owned(),
            });
        }
    }
    if let Some(a) = obs
        .sql
        .as_ref()
        .and_then(|s| s.archiver.as_ref())
        .filter(|a| a.failing)
    {
        items.push(Item {
            address: Address::BackupStanza,
            class: Class::Dangerous,
            source: "pg_stat_archiver".to_owned(),
            member: leader.clone(),
            before: Some(json!("archiving")),
            after: Some(json!({
                "last_failed_wal": a.last_failed_wal,
                "last_failed_at": a.last_failed_at,
                "last_archived_wal": a.last_archived_wal,
                "last_archived_at": a.last_archived_at,
                "failed_count": a.failed_count,
            })),
            message: format!(
                "WAL archiving fails: {} failed at {}, and nothing was archived since {}; WAL piles up in pg_wal and point-in-time recovery stops at the last archived segment (`pgdba health check` and pgBackRest's log say why)",
                a.last_failed_wal.as_deref().unwrap_or("a segment"),
                a.last_failed_at.as_deref().unwrap_or("an unknown time"),
                a.last_archived_at.as_deref().unwrap_or("the cluster was made"),
            ),
        });
    }
    if let Some(message) = split_brain(obs) {
        let writers: Vec<&String> = obs
            .members
            .iter()
            .filter(|(_, m)| m.accepts_writes == Some(true))
            .map(|(n, _)| n)
            .collect();
        items.push(Item {
            address: Address::Leader,
            class: Class::Dangerous,
            source: "PostgreSQL".to_owned(),
            member: None,
            before: applied_leader.map(|l| json!(l)),
            after: Some(json!(writers)),
            message,
        });
    }
    // What runs but did not answer: nothing can be said to be fine there.
    for u in &obs.unreachable {
        items.push(Item {
            address: u.address.clone(),
            class: Class::Dangerous,
            source: u.source.clone(),
            member: u.address.member().map(str::to_owned),
            before: Some(json!("answering")),
            after: Some(json!("not answering")),
            message: format!("{} did not answer: {}", u.address, u.reason),
        });
    }
    items.sort_by(|a, b| b.class.cmp(&a.class).then(a.address.cmp(&b.address)));
    items
}
