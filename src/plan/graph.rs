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
//! |      | the primary first, no switchover, when a shared-memory floor GUC decreases       ||
//!
//! Every disruptive step (start, create, restart, switchover) is followed by a health gate.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{Action, ActionKind};
use crate::diff::{self, ApplyVia, Change, ChangeAction, Kind};
use crate::observe::model::{Observation, Role};
use crate::pg;
use crate::spec::model::ClusterSpec;

#[derive(Default)]
struct Builder {
    actions: Vec<Action>,
    ids: BTreeSet<String>,
}

impl Builder {
    fn add(
        &mut self,
        kind: ActionKind,
        target: &str,
        deps: &[String],
        changes: Vec<String>,
    ) -> String {
        let short = target.split_once('.').map_or(target, |(_, n)| n);
        let base = format!("{}:{}", kind.name(), short);
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
            target: target.to_owned(),
            depends_on,
            changes,
        });
        id
    }

    /// Adds `kind` on `member`, followed by its health gate; returns the gate's id.
    fn add_gated(
        &mut self,
        kind: ActionKind,
        member: &str,
        deps: &[String],
        changes: Vec<String>,
        max_lag: u64,
    ) -> String {
        let target = diff::member_address(member);
        let id = self.add(kind, &target, deps, changes);
        self.add(
            ActionKind::AwaitHealthy { max_lag },
            &target,
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
                    .get(c.name())
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
    if c.kind() != Kind::PgParameter || !pg::is_shared_memory_floor(c.name()) {
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

pub fn actions(spec: &ClusterSpec, changes: &[Change], obs: &Observation) -> Vec<Action> {
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
                let gate = b.add(
                    ActionKind::AwaitHealthy { max_lag },
                    &diff::member_address(&m.name),
                    std::slice::from_ref(&dcs),
                    Vec::new(),
                );
                ready.push(gate);
            }
        }
    }
    let dcs_ready = ready.clone();
    for c in members(ChangeAction::Update)
        .into_iter()
        .filter(|c| c.apply_via == ApplyVia::Provider)
    {
        let gate = b.add_gated(
            ActionKind::StartMember,
            c.name(),
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
        .find(|c| c.after.as_ref().and_then(|a| a.get("role")) == Some(&json!("primary")));
    let mut primary_ready = ready.clone();
    if let Some(c) = bootstrap {
        let mut realized = vec![c.address.clone()];
        realized.extend(
            changes
                .iter()
                .filter(|x| {
                    matches!(x.kind(), Kind::Patroni | Kind::PgParameter)
                        && x.apply_via == ApplyVia::Provider
                })
                .map(|x| x.address.clone()),
        );
        let gate = b.add_gated(
            ActionKind::CreateMember { bootstrap: true },
            c.name(),
            &ready,
            realized,
            max_lag,
        );
        primary_ready = vec![gate];
    }

    // R3: members that leave; the leader hands over first.
    let deleted: BTreeSet<String> = members(ChangeAction::Delete)
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let mut deletions = Vec::new();
    for c in members(ChangeAction::Delete) {
        let mut deps = ready.clone();
        if c.apply_via == ApplyVia::Switchover {
            if let Some(candidate) = switchover_candidate(obs, &deleted) {
                // The old leader is about to go: only the new one needs to be healthy.
                let switchover = b.add(
                    ActionKind::Switchover {
                        candidate: candidate.clone(),
                    },
                    &c.address,
                    &ready,
                    vec![c.address.clone()],
                );
                let new_leader = b.add(
                    ActionKind::AwaitHealthy { max_lag },
                    &diff::member_address(&candidate),
                    &[switchover],
                    Vec::new(),
                );
                deps = vec![new_leader];
            }
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
    let created: BTreeSet<&str> = creates.iter().map(|c| c.name()).collect();
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
            "dcs.config",
            &primary_ready,
            addresses,
        );
        let values = |via: ApplyVia| -> BTreeMap<String, String> {
            config
                .iter()
                .filter(|c| c.kind() == Kind::PgParameter && c.apply_via == via)
                .filter_map(|c| {
                    let v = spec.spec.postgres.parameters.get(c.name())?;
                    Some((c.name().to_owned(), v.to_conf_string()))
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
        .filter(|c| Some(c.address.as_str()) != bootstrap.map(|b| b.address.as_str()))
    {
        b.add_gated(
            ActionKind::CreateMember { bootstrap: false },
            c.name(),
            &replica_deps,
            vec![c.address.clone()],
            max_lag,
        );
    }

    // R5-R7: the rolling restart.
    let restart_params: Vec<&Change> = config
        .iter()
        .copied()
        .filter(|c| c.kind() == Kind::PgParameter && c.apply_via == ApplyVia::Restart)
        .collect();
    let to_restart: Vec<String> = if restart_params.is_empty() {
        members(ChangeAction::Update)
            .into_iter()
            .filter(|c| c.apply_via == ApplyVia::Restart)
            .map(|c| c.name().to_owned())
            .collect()
    } else {
        surviving.clone()
    };
    if to_restart.is_empty() {
        return b.actions;
    }
    let realized = |m: &str| -> Vec<String> {
        let mut v: Vec<String> = restart_params.iter().map(|c| c.address.clone()).collect();
        let own = diff::member_address(m);
        if changes
            .iter()
            .any(|c| c.address == own && c.apply_via == ApplyVia::Restart)
        {
            v.push(own);
        }
        v
    };
    let mut prev: Vec<String> = gates;
    prev.extend(deletions);
    if prev.is_empty() {
        prev = primary_ready;
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
        for m in replicas {
            prev = vec![b.add_gated(ActionKind::RestartMember, m, &prev, realized(m), max_lag)];
        }
        return b.actions;
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
            prev = vec![b.add(
                ActionKind::AwaitHealthy { max_lag },
                &diff::member_address(&candidate),
                &[gate],
                Vec::new(),
            )];
        }
        b.add_gated(ActionKind::RestartMember, l, &prev, realized(l), max_lag);
    }
    b.actions
}
