//! The action graph, built in one pass from the changes by these ordering rules:
//!
//! | rule | first                                            | then                                        |
//! |------|--------------------------------------------------|---------------------------------------------|
//! | R1   | the DCS (create or start)                        | every member action and the config patch    |
//! | R2   | the bootstrap member, healthy                    | every other member create, the config patch |
//! | R3   | a switchover away from a leader that leaves      | deleting that member                        |
//! | R4   | the config patch                                 | new replicas, the per-member config gates   |
//! | R5   | every config gate and every deletion             | the first restart                           |
//! | R6   | each restart, then its health gate               | the next restart                            |
//! | R7   | replicas one at a time, a switchover, then the old primary (rolling restart);    ||
//! |      | the primary first, no switchover, when a shared-memory floor GUC decreases; then ||
//! |      | each replica once it has replayed the primary's WAL past the primary's restart   ||
//! | R8   | the primary, healthy                             | every SQL action (roles, databases, ...)    |
//! | R9   | creating the roles a role is a member of         | creating or altering that role              |
//! | R10  | creating a database's owner; dropping a database | creating the database; dropping its owner   |
//! | R11  | creating (or re-creating) a database             | its extensions                              |
//! | R12  | creating every role                              | the HBA patch, then a gate per member       |
//! | R13  | resetting a member's ALTER SYSTEM override       | that member's config gate                   |
//!
//! Every disruptive step (start, create, restart, switchover) is followed by a health gate.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{Action, ActionKind};
use crate::diff::{self, Address, ApplyVia, Change, ChangeAction, Kind, MemberOp};
use crate::observe::model::{Observation, Role};
use crate::pg;
use crate::spec::model::{ClusterSpec, RoleSpec};

#[derive(Default)]
struct Builder {
    actions: Vec<Action>,
    ids: BTreeSet<String>,
}

impl Builder {
    /// Adds an action with the id `<kind>:<target's name>`.
    fn add(
        &mut self,
        kind: ActionKind,
        target: &Address,
        deps: &[String],
        changes: Vec<Address>,
    ) -> String {
        self.add_step(kind, target, None, deps, changes)
    }

    /// Adds an action with the id `<kind>:<target's name>`, or `<kind>:<target's name>/<step>`
    /// when `step` says which of several such actions on one target it is (a member's health
    /// gate after its restart: `await_healthy:demo-1/restarted`).
    fn add_step(
        &mut self,
        kind: ActionKind,
        target: &Address,
        step: Option<&str>,
        deps: &[String],
        changes: Vec<Address>,
    ) -> String {
        let full = target.to_string();
        let short = full.split_once('.').map_or(full.as_str(), |(_, n)| n);
        let base = match step {
            Some(step) => format!("{}:{short}/{step}", kind.name()),
            None => format!("{}:{short}", kind.name()),
        };
        // Ids are unique by construction; a number is the last resort, never relied upon.
        let mut id = base.clone();
        let mut n = 2;
        while self.ids.contains(&id) {
            id = format!("{base}#{n}");
            n += 1;
        }
        self.ids.insert(id.clone());
        let mut depends_on: Vec<String> = deps.to_vec();
        depends_on.sort();
        depends_on.dedup();
        self.actions.push(Action {
            id: id.clone(),
            kind,
            target: target.clone(),
            depends_on,
            changes,
        });
        id
    }

    /// Adds `kind` on `member`, followed by its health gate
    /// (`await_healthy:<member>/<what it follows>`); returns the gate's id.
    fn add_gated(
        &mut self,
        kind: ActionKind,
        member: &str,
        deps: &[String],
        changes: Vec<Address>,
        max_lag: u64,
    ) -> String {
        let step = match kind {
            ActionKind::CreateMember { .. } => "created",
            ActionKind::StartMember => "started",
            ActionKind::RestartMember => "restarted",
            ActionKind::Switchover { .. } => "demoted",
            ActionKind::ReinitMember => "rebuilt",
            _ => "after",
        };
        let target = diff::member_address(member);
        let id = self.add(kind, &target, deps, changes);
        self.add_step(
            ActionKind::AwaitHealthy { max_lag },
            &target,
            Some(step),
            &[id],
            Vec::new(),
        )
    }
}

fn is_config(c: &Change) -> bool {
    matches!(c.kind(), Kind::Patroni | Kind::PgParameter) && c.apply_via != ApplyVia::Provider
}

/// The patch of Patroni's dynamic configuration that realizes the config changes.
pub fn config_patch(spec: &ClusterSpec, changes: &[&Change]) -> Value {
    let mut top = Map::new();
    let mut params = Map::new();
    for c in changes {
        match c.kind() {
            Kind::Patroni => {
                top.insert(c.name().to_owned(), c.after.clone().unwrap_or(Value::Null));
            }
            Kind::PgParameter => {
                let value = spec
                    .spec
                    .postgres
                    .parameters
                    .get(&c.name())
                    .and_then(|v| serde_json::to_value(v).ok())
                    .unwrap_or(Value::Null);
                params.insert(c.name().to_owned(), value);
            }
            _ => {}
        }
    }
    if !params.is_empty() {
        top.insert("postgresql".to_owned(), json!({ "parameters": params }));
    }
    Value::Object(top)
}

/// Is this change a decrease of a GUC a hot standby must hold at least as high as its primary?
fn lowers_floor(c: &Change) -> bool {
    if c.kind() != Kind::PgParameter || !pg::is_shared_memory_floor(&c.name()) {
        return false;
    }
    let num = |v: &Option<Value>| -> Option<i64> {
        match v.as_ref()? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    };
    match (num(&c.before), num(&c.after)) {
        (Some(b), Some(a)) => a < b,
        // Removing a floor GUC returns it to its default, which may be lower.
        (Some(_), None) => c.action == ChangeAction::Delete,
        _ => false,
    }
}

/// The replica that takes over: streaming, least lag, then name; never one in `excluded`.
fn switchover_candidate(obs: &Observation, excluded: &BTreeSet<String>) -> Option<String> {
    let view = obs.patroni.as_ref()?;
    let mut replicas: Vec<_> = view
        .members
        .iter()
        .filter(|m| m.role == Role::Replica && !excluded.contains(&m.name))
        .collect();
    replicas.sort_by_key(|m| {
        (
            m.state != "streaming",
            m.lag.unwrap_or(u64::MAX),
            m.name.clone(),
        )
    });
    replicas.first().map(|m| m.name.clone())
}

/// `admit`: the networks pgdba's own HBA rules admit (the provider's topology).
pub fn actions(
    spec: &ClusterSpec,
    admit: &[String],
    changes: &[Change],
    obs: &Observation,
) -> Vec<Action> {
    let mut b = Builder::default();
    let max_lag = spec.spec.patroni.maximum_lag_on_failover;
    let leader = obs
        .patroni
        .as_ref()
        .and_then(|p| p.leader())
        .map(|m| m.name.clone());
    let members = |action: ChangeAction| -> Vec<&Change> {
        changes
            .iter()
            .filter(|c| c.kind() == Kind::Member && c.action == action)
            .collect()
    };

    // R1: the DCS first.
    let mut ready: Vec<String> = Vec::new();
    if let Some(c) = changes.iter().find(|c| c.kind() == Kind::Dcs) {
        let kind = if c.action == ChangeAction::Create {
            ActionKind::CreateDcs
        } else {
            ActionKind::StartDcs
        };
        let restart_dcs = kind == ActionKind::StartDcs;
        let dcs = b.add(kind, &c.address, &[], vec![c.address.clone()]);
        ready.push(dcs.clone());
        if restart_dcs {
            // Members that ran without their DCS come back once it does; wait for them.
            for m in obs.inventory.iter().filter(|m| m.exists && m.running) {
                let gate = b.add_step(
                    ActionKind::AwaitHealthy { max_lag },
                    &diff::member_address(&m.name),
                    Some("dcs"),
                    std::slice::from_ref(&dcs),
                    Vec::new(),
                );
                ready.push(gate);
            }
        }
    }
    let dcs_ready = ready.clone();
    let op = |c: &&Change, op: MemberOp| c.operation == Some(op);
    for c in members(ChangeAction::Update)
        .into_iter()
        .filter(|c| op(c, MemberOp::Reconfigure))
    {
        ready.push(b.add(
            ActionKind::ReconfigureMember,
            &c.address,
            &dcs_ready,
            vec![c.address.clone()],
        ));
    }
    for c in members(ChangeAction::Update)
        .into_iter()
        .filter(|c| op(c, MemberOp::Start))
    {
        let gate = b.add_gated(
            ActionKind::StartMember,
            &c.name(),
            &dcs_ready,
            vec![c.address.clone()],
            max_lag,
        );
        ready.push(gate);
    }

    // R2: the bootstrap member, with the whole initial configuration.
    let creates = members(ChangeAction::Create);
    let bootstrap = creates
        .iter()
        .find(|c| c.detail == diff::Detail::CreateMember { bootstrap: true });
    let mut primary_ready = ready.clone();
    if let Some(c) = bootstrap {
        let mut realized = vec![c.address.clone()];
        realized.extend(
            changes
                .iter()
                .filter(|x| {
                    matches!(x.kind(), Kind::Patroni | Kind::PgParameter | Kind::Hba)
                        && x.apply_via == ApplyVia::Provider
                })
                .map(|x| x.address.clone()),
        );
        let gate = b.add_gated(
            ActionKind::CreateMember { bootstrap: true },
            &c.name(),
            &ready,
            realized,
            max_lag,
        );
        primary_ready = vec![gate];
    }

    // A replica that cannot start is rebuilt from the leader once the leader is healthy.
    for c in members(ChangeAction::Update)
        .into_iter()
        .filter(|c| op(c, MemberOp::Reinit))
    {
        b.add_gated(
            ActionKind::ReinitMember,
            &c.name(),
            &primary_ready,
            vec![c.address.clone()],
            max_lag,
        );
    }

    // R3: members that leave; the leader hands over first.
    let deleted: BTreeSet<String> = members(ChangeAction::Delete)
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let mut deletions = Vec::new();
    for c in members(ChangeAction::Delete) {
        let mut deps = ready.clone();
        if c.apply_via == ApplyVia::Switchover
            && let Some(candidate) = switchover_candidate(obs, &deleted)
        {
            // The old leader is about to go: only the new one needs to be healthy.
            let switchover = b.add(
                ActionKind::Switchover {
                    candidate: candidate.clone(),
                },
                &c.address,
                &ready,
                vec![c.address.clone()],
            );
            let new_leader = b.add_step(
                ActionKind::AwaitHealthy { max_lag },
                &diff::member_address(&candidate),
                Some("promoted"),
                &[switchover],
                Vec::new(),
            );
            deps = vec![new_leader];
        }
        deletions.push(b.add(
            ActionKind::DeleteMember,
            &c.address,
            &deps,
            vec![c.address.clone()],
        ));
    }

    // R4: the dynamic configuration, then a gate per surviving member.
    let config: Vec<&Change> = changes.iter().filter(|c| is_config(c)).collect();
    let created: BTreeSet<String> = creates.iter().map(|c| c.name()).collect();
    let surviving: Vec<String> = obs
        .patroni
        .as_ref()
        .map(|p| {
            p.members
                .iter()
                .filter(|m| !deleted.contains(&m.name) && !created.contains(m.name.as_str()))
                .map(|m| m.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut gates = Vec::new();
    let mut patch_id = None;
    if !config.is_empty() {
        let patch = config_patch(spec, &config);
        let addresses = config.iter().map(|c| c.address.clone()).collect();
        let patch = b.add(
            ActionKind::PatchConfig { patch },
            &Address::DcsConfig,
            &primary_ready,
            addresses,
        );
        // What each member must show: the spec's value, or for a parameter removed from the
        // spec PostgreSQL's default (the catalog's boot value), which it falls back to.
        let values = |via: ApplyVia| -> BTreeMap<String, String> {
            config
                .iter()
                .filter(|c| c.kind() == Kind::PgParameter && c.apply_via == via)
                .filter_map(|c| {
                    let name = c.name();
                    let v = match spec.spec.postgres.parameters.get(&name) {
                        Some(v) => v.to_conf_string(),
                        None => crate::pg::catalog(spec.spec.postgres.version)?
                            .get(&name)?
                            .boot_val
                            .clone()?,
                    };
                    Some((name, v))
                })
                .collect()
        };
        let (reload, restart) = (values(ApplyVia::Reload), values(ApplyVia::Restart));
        if !reload.is_empty() || !restart.is_empty() {
            for m in &surviving {
                let addresses = config
                    .iter()
                    .filter(|c| c.kind() == Kind::PgParameter)
                    .map(|c| c.address.clone())
                    .collect();
                gates.push(b.add(
                    ActionKind::AwaitConfig {
                        reload: reload.clone(),
                        restart: restart.clone(),
                    },
                    &diff::member_address(m),
                    std::slice::from_ref(&patch),
                    addresses,
                ));
            }
        }
        patch_id = Some(patch);
    }

    // New replicas start from the new configuration.
    let mut replica_deps = primary_ready.clone();
    replica_deps.extend(patch_id.iter().cloned());
    for c in creates
        .iter()
        .filter(|c| Some(&c.address) != bootstrap.map(|b| &b.address))
    {
        b.add_gated(
            ActionKind::CreateMember { bootstrap: false },
            &c.name(),
            &replica_deps,
            vec![c.address.clone()],
            max_lag,
        );
    }

    // R13: an ALTER SYSTEM override is reset on its member, then the member is waited for;
    // one that PostgreSQL runs with and that needs a restart joins the rolling restart below.
    let mut override_gates = Vec::new();
    let mut override_restarts: BTreeSet<String> = BTreeSet::new();
    for c in changes.iter().filter(|c| c.kind() == Kind::Override) {
        let Address::Override { member, parameter } = &c.address else {
            continue;
        };
        let target = diff::member_address(member);
        let reset = b.add_step(
            ActionKind::ResetOverride {
                parameter: parameter.to_owned(),
            },
            &target,
            Some(parameter),
            &primary_ready,
            vec![c.address.clone()],
        );
        let want = spec
            .spec
            .postgres
            .parameters
            .get(parameter)
            .map(|v| v.to_conf_string())
            .unwrap_or_default();
        let restart = diff::parameter_context(spec, parameter) == crate::pg::GucContext::Postmaster;
        let entry = BTreeMap::from([(parameter.to_owned(), want)]);
        let (reload, restart) = if restart {
            (BTreeMap::new(), entry)
        } else {
            (entry, BTreeMap::new())
        };
        override_gates.push(b.add_step(
            ActionKind::AwaitConfig { reload, restart },
            &target,
            Some(parameter),
            &[reset],
            vec![c.address.clone()],
        ));
        if c.apply_via == ApplyVia::Restart {
            override_restarts.insert(member.to_owned());
        }
    }

    'restart: {
        // R5-R7: the rolling restart.
        let restart_params: Vec<&Change> = config
            .iter()
            .copied()
            .filter(|c| c.kind() == Kind::PgParameter && c.apply_via == ApplyVia::Restart)
            .collect();
        let to_restart: Vec<String> = if restart_params.is_empty() {
            let pending = members(ChangeAction::Update)
                .into_iter()
                .filter(|c| op(c, MemberOp::Restart))
                .map(|c| c.name().to_owned());
            let mut all: BTreeSet<String> = pending.collect();
            all.extend(override_restarts.iter().cloned());
            all.into_iter().collect()
        } else {
            surviving.clone()
        };
        if to_restart.is_empty() {
            break 'restart;
        }
        let realized = |m: &str| -> Vec<Address> {
            let mut v: Vec<Address> = restart_params.iter().map(|c| c.address.clone()).collect();
            let own = diff::member_address(m);
            if changes
                .iter()
                .any(|c| c.address == own && c.apply_via == ApplyVia::Restart)
            {
                v.push(own);
            }
            v.extend(
                changes
                    .iter()
                    .filter(|c| c.apply_via == ApplyVia::Restart)
                    .filter(
                        |c| matches!(&c.address, Address::Override { member, .. } if member == m),
                    )
                    .map(|c| c.address.clone()),
            );
            v
        };
        let mut prev: Vec<String> = gates;
        prev.extend(deletions);
        prev.extend(override_gates);
        if prev.is_empty() {
            prev = primary_ready.clone();
        }
        let leader_restarts = leader.as_ref().filter(|l| to_restart.contains(l));
        let mut replicas: Vec<&String> = to_restart
            .iter()
            .filter(|m| Some(*m) != leader.as_ref())
            .collect();
        replicas.sort();
        let floor_decrease = restart_params.iter().any(|c| lowers_floor(c));
        if floor_decrease {
            // The primary first: a standby refuses to run with less than its primary has.
            if let Some(l) = leader_restarts {
                prev = vec![b.add_gated(ActionKind::RestartMember, l, &prev, realized(l), max_lag)];
            }
            // A standby may restart with the lower value only once it has replayed the
            // primary's parameter-change record, written when the primary started: until then
            // its control file holds the old value and PostgreSQL (and Patroni) keep that one.
            for m in replicas {
                let replayed = b.add(
                    ActionKind::AwaitReplay,
                    &diff::member_address(m),
                    &prev,
                    Vec::new(),
                );
                prev = vec![b.add_gated(
                    ActionKind::RestartMember,
                    m,
                    &[replayed],
                    realized(m),
                    max_lag,
                )];
            }
            break 'restart;
        }
        for m in &replicas {
            prev = vec![b.add_gated(ActionKind::RestartMember, m, &prev, realized(m), max_lag)];
        }
        if let Some(l) = leader_restarts {
            let candidate = replicas
                .first()
                .map(|m| (*m).clone())
                .or_else(|| switchover_candidate(obs, &deleted));
            if let Some(candidate) = candidate {
                let gate = b.add_gated(
                    ActionKind::Switchover {
                        candidate: candidate.clone(),
                    },
                    l,
                    &prev,
                    Vec::new(),
                    max_lag,
                );
                prev = vec![b.add_step(
                    ActionKind::AwaitHealthy { max_lag },
                    &diff::member_address(&candidate),
                    Some("promoted"),
                    &[gate],
                    Vec::new(),
                )];
            }
            b.add_gated(ActionKind::RestartMember, l, &prev, realized(l), max_lag);
        }
    }
    sql_objects(&mut b, spec, admit, changes, obs, &primary_ready);
    pooler(&mut b, changes, &primary_ready);
    backup_stanza(&mut b, changes);
    b.actions
}

/// R14: the backup stanza, last: once every member runs with its pgBackRest configuration and
/// archiving is on (`archive_mode` needs the restarts before it), `pgbackrest check` can see
/// WAL reach the repository.
fn backup_stanza(b: &mut Builder, changes: &[Change]) {
    let Some(c) = changes.iter().find(|c| c.kind() == Kind::Backup) else {
        return;
    };
    let deps: Vec<String> = b.actions.iter().map(|a| a.id.clone()).collect();
    b.add(
        ActionKind::CreateStanza,
        &c.address,
        &deps,
        vec![c.address.clone()],
    );
}

/// R13: the pooler, once the primary is up, its auth user exists (it looks up every client's
/// verifier as that user) and the HBA rules admit that user on every member.
fn pooler(b: &mut Builder, changes: &[Change], primary_ready: &[String]) {
    let Some(c) = changes.iter().find(|c| c.kind() == Kind::Pooler) else {
        return;
    };
    let auth_user = diff::sql::role_address(crate::roles::POOLER_USER);
    let mut deps = primary_ready.to_vec();
    // ... and the HBA rules admit it on every member.
    deps.extend(
        b.actions
            .iter()
            .filter(|a| a.target == auth_user || matches!(a.kind, ActionKind::AwaitHba { .. }))
            .map(|a| a.id.clone()),
    );
    let realized = vec![c.address.clone()];
    match c.action {
        ChangeAction::Create => {
            b.add(ActionKind::CreatePooler, &c.address, &deps, realized);
        }
        ChangeAction::Update => {
            b.add(ActionKind::StartPooler, &c.address, &deps, realized);
        }
        ChangeAction::Delete => {
            b.add(ActionKind::DeletePooler, &c.address, &[], realized);
        }
        ChangeAction::Replace => {
            let gone = b.add(ActionKind::DeletePooler, &c.address, &deps, Vec::new());
            b.add(ActionKind::CreatePooler, &c.address, &[gone], realized);
        }
    }
}

/// R8-R12: roles, databases, extensions and HBA rules, all on the primary once it is up.
fn sql_objects(
    b: &mut Builder,
    spec: &ClusterSpec,
    admit: &[String],
    changes: &[Change],
    obs: &Observation,
    primary_ready: &[String],
) {
    let of = |k: Kind| changes.iter().filter(move |c| c.kind() == k);
    let role_spec = |name: &str| -> RoleSpec {
        spec.spec
            .roles
            .iter()
            .chain(diff::sql::system_roles(spec).iter())
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| RoleSpec::named(name))
    };
    // Database drops first: a role that owns one can only go after it (R10).
    let mut drops: Vec<String> = Vec::new();
    let mut role_creates: BTreeMap<String, String> = BTreeMap::new();
    for c in of(Kind::Role).filter(|c| c.action == ChangeAction::Create) {
        role_creates.insert(c.name().to_owned(), String::new());
    }
    let created_roles: BTreeSet<String> = role_creates.keys().cloned().collect();
    // R9: create roles in dependency order (members after the groups they join).
    let mut pending: Vec<&Change> = of(Kind::Role)
        .filter(|c| c.action == ChangeAction::Create)
        .collect();
    let mut guard = pending.len() + 1;
    while !pending.is_empty() && guard > 0 {
        guard -= 1;
        pending.retain(|c| {
            let r = role_spec(&c.name());
            let waits = r.in_roles.iter().any(|g| {
                created_roles.contains(g) && role_creates.get(g).is_some_and(String::is_empty)
            });
            if waits {
                return true;
            }
            let mut deps = primary_ready.to_vec();
            deps.extend(
                r.in_roles
                    .iter()
                    .filter_map(|g| role_creates.get(g).cloned()),
            );
            let id = b.add(
                ActionKind::CreateRole { role: r.clone() },
                &c.address,
                &deps,
                vec![c.address.clone()],
            );
            role_creates.insert(c.name().to_owned(), id);
            false
        });
    }
    let role_dep = |name: &str, creates: &BTreeMap<String, String>| {
        creates.get(name).filter(|id| !id.is_empty()).cloned()
    };
    for c in of(Kind::Role).filter(|c| c.action == ChangeAction::Update) {
        let r = role_spec(&c.name());
        let after = c.after.as_ref();
        let changed = |k: &str| after.and_then(|a| a.get(k)).is_some();
        let observed: Vec<String> = obs
            .sql
            .as_ref()
            .and_then(|s| s.roles.get(&c.name()))
            .map(|o| o.member_of.clone())
            .unwrap_or_default();
        let grant: Vec<String> = r
            .in_roles
            .iter()
            .filter(|g| !observed.contains(g))
            .cloned()
            .collect();
        let revoke: Vec<String> = observed
            .iter()
            .filter(|g| !r.in_roles.contains(g))
            .cloned()
            .collect();
        let attributes = after
            .and_then(|a| a.as_object())
            .is_some_and(|a| a.keys().any(|k| k != "password" && k != "in_roles"));
        let mut deps = primary_ready.to_vec();
        deps.extend(grant.iter().filter_map(|g| role_dep(g, &role_creates)));
        let system = diff::sql::is_system_role(&c.name());
        b.add(
            ActionKind::AlterRole {
                role: r,
                attributes,
                password: changed("password"),
                grant,
                revoke,
                system,
            },
            &c.address,
            &deps,
            vec![c.address.clone()],
        );
    }
    // Databases: drops (and the drop half of a replacement), then creates and owner changes.
    let mut db_ready: BTreeMap<String, String> = BTreeMap::new();
    for c in of(Kind::Database)
        .filter(|c| matches!(c.action, ChangeAction::Delete | ChangeAction::Replace))
    {
        let id = b.add(
            ActionKind::DropDatabase,
            &c.address,
            primary_ready,
            vec![c.address.clone()],
        );
        drops.push(id.clone());
        db_ready.insert(c.name().to_owned(), id);
    }
    for c in of(Kind::Database).filter(|c| c.action != ChangeAction::Delete) {
        let Some(d) = spec.spec.databases.iter().find(|d| d.name == c.name()) else {
            continue;
        };
        let owner = d.owner.clone().unwrap_or_else(|| "postgres".to_owned());
        let mut deps = primary_ready.to_vec();
        deps.extend(role_dep(&owner, &role_creates));
        deps.extend(db_ready.get(&c.name()).cloned());
        if spec.pgbouncer().is_some() {
            // A new database gets the pooler's lookup function, granted to its auth user.
            deps.extend(role_dep(crate::roles::POOLER_USER, &role_creates));
        }
        let id = if c.action == ChangeAction::Update {
            b.add(
                ActionKind::AlterDatabase { owner },
                &c.address,
                &deps,
                vec![c.address.clone()],
            )
        } else {
            let custom = d.encoding.is_some() || d.locale.is_some();
            let template = d
                .template
                .clone()
                .unwrap_or_else(|| if custom { "template0" } else { "template1" }.to_owned());
            let encoding = d.encoding.clone().unwrap_or_else(|| "UTF8".to_owned());
            b.add(
                ActionKind::CreateDatabase {
                    owner,
                    encoding,
                    locale: d.locale.clone(),
                    template,
                },
                &c.address,
                &deps,
                vec![c.address.clone()],
            )
        };
        db_ready.insert(c.name().to_owned(), id);
    }
    // R11: extensions after their database.
    for c in of(Kind::Extension) {
        let Address::Extension { database: db, name } = &c.address else {
            continue;
        };
        let (db, name) = (db.as_str(), name.as_str());
        let mut deps = primary_ready.to_vec();
        deps.extend(
            db_ready
                .get(db)
                .filter(|_| c.action != ChangeAction::Delete)
                .cloned(),
        );
        let e = spec
            .spec
            .databases
            .iter()
            .find(|d| d.name == db)
            .and_then(|d| d.extensions.iter().find(|e| e.name == name));
        let (database, name) = (db.to_owned(), name.to_owned());
        let kind = match (c.action, e) {
            (ChangeAction::Delete, _) | (_, None) => ActionKind::DropExtension {
                database,
                name,
                cascade: c.data_loss.is_some(),
            },
            (ChangeAction::Create, Some(e)) => ActionKind::CreateExtension {
                database,
                name,
                version: e.version.clone(),
                schema: e.schema.clone(),
            },
            (_, Some(e)) => ActionKind::UpdateExtension {
                database,
                name,
                version: e.version.clone(),
                schema: e.schema.clone(),
            },
        };
        b.add(kind, &c.address, &deps, vec![c.address.clone()]);
    }
    // Role drops last (R10): nothing may still belong to them.
    for c in of(Kind::Role).filter(|c| c.action == ChangeAction::Delete) {
        let mut deps = primary_ready.to_vec();
        deps.extend(drops.iter().cloned());
        deps.extend(db_ready.values().cloned());
        b.add(
            ActionKind::DropRole,
            &c.address,
            &deps,
            vec![c.address.clone()],
        );
    }
    // R12: HBA rules once the roles they name exist; a gate per member.
    for c in of(Kind::Hba).filter(|c| c.apply_via != ApplyVia::Provider) {
        let mut deps = primary_ready.to_vec();
        deps.extend(role_creates.values().filter(|id| !id.is_empty()).cloned());
        // A member whose file was edited by hand gets a rewritten header (see diff::hba).
        let generation = u64::from(c.detail == diff::Detail::Hba { rewrite: true });
        let lines = diff::hba::dcs_lines(spec, admit, generation);
        let patch =
            json!({ "postgresql": { "pg_hba": lines, "pg_ident": diff::hba::desired_ident() } });
        let id = b.add(
            ActionKind::PatchConfig { patch },
            &Address::DcsHba,
            &deps,
            vec![c.address.clone()],
        );
        if let Some(view) = &obs.patroni {
            for m in &view.members {
                b.add(
                    ActionKind::AwaitHba {
                        rules: diff::hba::desired_rules(spec, admit),
                    },
                    &diff::member_address(&m.name),
                    std::slice::from_ref(&id),
                    vec![c.address.clone()],
                );
            }
        }
    }
}
