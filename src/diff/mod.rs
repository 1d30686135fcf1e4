//! The difference between the spec and what runs, as typed changes with addresses.
//! Pure: no IO, no clock; never fails on a valid spec.

pub mod address;
pub mod fingerprint;
pub mod hba;
pub mod sql;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::observe::model::Observation;
use crate::pg::{self, GucContext};
use crate::providers::Topology;
use crate::spec::model::ClusterSpec;
pub use address::{Address, Kind};

/// What a change does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Create,
    Update,
    Delete,
    /// Delete, then create again (a database whose encoding or locale changes).
    Replace,
}

/// How a change reaches the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyVia {
    /// A statement on the primary.
    Sql,
    /// Written to the configuration and picked up by a reload.
    Reload,
    /// Needs a PostgreSQL restart of each member (rolling).
    Restart,
    /// Done by the provider: processes, directories.
    Provider,
    /// Needs the leader to move.
    Switchover,
}

impl ApplyVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyVia::Sql => "sql",
            ApplyVia::Reload => "reload",
            ApplyVia::Restart => "restart",
            ApplyVia::Provider => "provider",
            ApplyVia::Switchover => "switchover",
        }
    }
}

/// One difference, addressed like `member.demo-2`, `pg_parameter.work_mem`, `patroni.ttl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub action: ChangeAction,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub apply_via: ApplyVia,
    pub reason: String,
    /// What applying this change destroys, when it destroys data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_loss: Option<String>,
    /// Why applying it is expected to fail, when the plan can tell (a role that still owns
    /// objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// For a change to an existing member: what is done to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<MemberOp>,
    /// What the plan needs to know of the change, typed: it never reads meaning back from
    /// `after`'s keys or from `reason`. Not part of the plan's JSON (which shows it through
    /// `after` and `reason`); a saved plan carries its actions, built from it.
    #[serde(skip)]
    pub detail: Detail,
}

/// The typed detail of a change, for the plan's graph and drift's classification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Detail {
    #[default]
    None,
    /// A member to create: the first one bootstraps the cluster, the others clone its primary.
    CreateMember { bootstrap: bool },
    /// pgdba's HBA rules: `rewrite` when the DCS holds them already but a member's file differs,
    /// so the header changes to make Patroni rewrite every member's file.
    Hba { rewrite: bool },
    /// A role: whether the change touches its password or its superuser attribute.
    Role { password: bool, superuser: bool },
}

/// What a change does to an existing member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberOp {
    /// Start its stopped Patroni.
    Start,
    /// Rewrite its Patroni configuration file and reload.
    Reconfigure,
    /// Restart its PostgreSQL (a restart is pending).
    Restart,
    /// Discard its data and clone it again from the leader (it cannot start).
    Reinit,
}

impl Change {
    pub fn kind(&self) -> Kind {
        self.address.kind()
    }
    /// The object's name within its kind (`demo-2`, `work_mem`).
    pub fn name(&self) -> String {
        self.address.name()
    }
}

pub fn member_address(name: &str) -> Address {
    Address::Member(name.to_owned())
}
pub fn parameter_address(name: &str) -> Address {
    Address::Parameter(name.to_owned())
}
/// `override.<member>.<guc>`.
pub fn override_address(member: &str, guc: &str) -> Address {
    Address::Override {
        member: member.to_owned(),
        parameter: guc.to_owned(),
    }
}

pub fn patroni_address(key: &str) -> Address {
    Address::Patroni(key.to_owned())
}

/// What earlier applies made pgdba responsible for (from the state).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Managed {
    /// GUC names pgdba set in the DCS.
    pub parameters: BTreeSet<String>,
    pub roles: BTreeSet<String>,
    pub databases: BTreeSet<String>,
    /// Per database.
    pub extensions: BTreeMap<String, BTreeSet<String>>,
}

/// Everything the diff reads.
pub struct Input<'a> {
    pub spec: &'a ClusterSpec,
    pub topology: &'a Topology,
    pub managed: &'a Managed,
    pub observation: &'a Observation,
}

/// The changes, and the addresses pgdba stops managing without touching them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub forgotten: Vec<Address>,
    /// Parameters the DCS sets that neither the spec nor pgdba manages (set by hand): pgdba
    /// leaves them as they are and says so.
    pub unmanaged: BTreeMap<String, String>,
}

/// The DCS's parameters that neither the spec nor pgdba's state names.
fn unmanaged_parameters(
    spec: &ClusterSpec,
    managed: &Managed,
    view: &crate::observe::model::PatroniView,
) -> BTreeMap<String, String> {
    let Some(params) = view
        .config
        .as_ref()
        .and_then(|c| c.get("postgresql")?.get("parameters")?.as_object())
    else {
        return BTreeMap::new();
    };
    params
        .iter()
        .filter(|(k, _)| {
            !spec.spec.postgres.parameters.contains_key(*k) && !managed.parameters.contains(*k)
        })
        .map(|(k, v)| {
            let shown =
                crate::observe::model::json_scalar_string(v).unwrap_or_else(|| v.to_string());
            (k.clone(), shown)
        })
        .collect()
}

/// What the pooler is created with, as the plan shows it and the provider records it.
pub fn pooler_settings(spec: &ClusterSpec) -> Option<BTreeMap<String, String>> {
    let p = spec.pgbouncer()?;
    Some(BTreeMap::from([
        ("kind".to_owned(), "pgbouncer".to_owned()),
        ("pool_mode".to_owned(), p.pool_mode.as_str().to_owned()),
        (
            "port".to_owned(),
            p.port.map_or_else(|| "auto".to_owned(), |p| p.to_string()),
        ),
    ]))
}

/// The pooler: created, started, replaced when its settings changed, removed when the spec
/// no longer asks for one.
fn pooler(spec: &ClusterSpec, obs: &Observation, out: &mut Vec<Change>) {
    let want = pooler_settings(spec);
    let change = |action, before: Option<Value>, after: Option<Value>, reason: &str| Change {
        address: Address::Pooler,
        action,
        before,
        after,
        apply_via: ApplyVia::Provider,
        reason: reason.to_owned(),
        data_loss: None,
        warning: None,
        operation: None,
        detail: Detail::None,
    };
    match (want, &obs.pooler) {
        (Some(w), None) => out.push(change(
            ChangeAction::Create,
            None,
            Some(json!(w)),
            if spec.spec.pooler.is_some() {
                "spec.pooler asks for it"
            } else {
                "the docker provider runs PgBouncer unless spec.pooler says otherwise"
            },
        )),
        (Some(w), Some(o)) if o.settings != w => out.push(change(
            ChangeAction::Replace,
            Some(json!(o.settings)),
            Some(json!(w)),
            "its settings differ from spec.pooler (clients reconnect)",
        )),
        (Some(_), Some(o)) if !o.running => out.push(change(
            ChangeAction::Update,
            Some(json!({ "running": false })),
            Some(json!({ "running": true })),
            "it is not running",
        )),
        (None, Some(o)) => out.push(change(
            ChangeAction::Delete,
            Some(json!(o.settings)),
            None,
            "the spec has no pooler",
        )),
        _ => {}
    }
}

/// The backup repository's stanza (`spec.backup`): created (and checked) when pgBackRest
/// does not know it, or when the cluster is new. Nothing is removed from a repository when
/// `spec.backup` leaves the spec: its backups stay.
fn backup_stanza(spec: &ClusterSpec, obs: &Observation, out: &mut Vec<Change>) {
    if spec.spec.backup.is_none() {
        return;
    }
    let reason = match &obs.backup {
        Some(b) if b.exists => return,
        Some(b) => format!(
            "pgBackRest does not know stanza {} in the repository ({})",
            b.stanza, b.status
        ),
        None if !cluster_exists(obs) => {
            "spec.backup asks for backups of the new cluster".to_owned()
        }
        // A cluster that runs without a leader to ask: nothing can be said yet.
        None => return,
    };
    out.push(Change {
        address: Address::BackupStanza,
        action: ChangeAction::Create,
        before: None,
        after: Some(json!({ "stanza": spec.metadata.name, "check": "pgbackrest check" })),
        apply_via: ApplyVia::Provider,
        reason,
        data_loss: None,
        warning: None,
        operation: None,
        detail: Detail::None,
    });
}

/// Does any member of this cluster exist, according to the provider or Patroni?
pub fn cluster_exists(obs: &Observation) -> bool {
    obs.inventory.iter().any(|m| m.exists)
        || obs.patroni.as_ref().is_some_and(|p| !p.members.is_empty())
}

/// Members that exist now: in the provider's inventory or in Patroni's member list.
pub fn existing_members(obs: &Observation) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = obs
        .inventory
        .iter()
        .filter(|m| m.exists)
        .map(|m| m.name.clone())
        .collect();
    if let Some(p) = &obs.patroni {
        names.extend(p.members.iter().map(|m| m.name.clone()));
    }
    names
}

/// The Patroni settings the spec manages, with their values.
pub fn patroni_settings(spec: &ClusterSpec) -> BTreeMap<&'static str, Value> {
    let p = &spec.spec.patroni;
    BTreeMap::from([
        ("failsafe_mode", json!(p.failsafe_mode)),
        ("loop_wait", json!(p.loop_wait)),
        ("maximum_lag_on_failover", json!(p.maximum_lag_on_failover)),
        ("retry_timeout", json!(p.retry_timeout)),
        ("synchronous_mode", json!(p.synchronous_mode)),
        ("synchronous_mode_strict", json!(p.synchronous_mode_strict)),
        ("synchronous_node_count", json!(p.synchronous_node_count)),
        ("ttl", json!(p.ttl)),
    ])
}

/// What Patroni does when its DCS configuration has no `key`, for the settings a cluster's
/// DCS may well lack (pgdba writes them at bootstrap only when they are not Patroni's
/// default, and clusters bootstrapped before pgdba managed them have none): an absent
/// `synchronous_mode` is off. `None` for the settings pgdba always writes: there an absent
/// key is a change to make.
pub fn patroni_absent_value(key: &str) -> Option<Value> {
    match key {
        "synchronous_mode" | "synchronous_mode_strict" => Some(json!(false)),
        "synchronous_node_count" => Some(json!(1)),
        _ => None,
    }
}

/// Patroni's own default for a setting its DCS configuration lacks (Patroni's documentation,
/// "Dynamic Configuration Settings").
pub fn patroni_default(key: &str) -> Option<Value> {
    match key {
        "ttl" => Some(json!(30)),
        "loop_wait" => Some(json!(10)),
        "retry_timeout" => Some(json!(10)),
        "maximum_lag_on_failover" => Some(json!(1_048_576)),
        "failsafe_mode" => Some(json!(false)),
        other => patroni_absent_value(other),
    }
}

/// The Patroni settings a new cluster's DCS is bootstrapped with: all the spec manages, but
/// those whose value is what their absence means.
pub fn patroni_bootstrap_settings(spec: &ClusterSpec) -> BTreeMap<&'static str, Value> {
    patroni_settings(spec)
        .into_iter()
        .filter(|(k, v)| {
            patroni_absent_value(k).is_none_or(|absent| !same_patroni_value(&absent, v))
        })
        .collect()
}

/// Does a DCS value mean `want` to Patroni? Booleans as Patroni parses them (`true`, `"on"`,
/// `"yes"`, `1`, ... case-insensitive), everything else as written.
pub fn same_patroni_value(observed: &Value, want: &Value) -> bool {
    match want {
        Value::Bool(want) => patroni_bool(observed) == Some(*want),
        _ => {
            crate::observe::model::json_scalar_string(observed)
                == crate::observe::model::json_scalar_string(want)
        }
    }
}

/// What changing a synchronous replication setting of a running cluster does to its writes.
fn synchronous_warning(key: &str, value: &Value) -> Option<String> {
    match (key, value.as_bool()?) {
        ("synchronous_mode", false) => Some(
            "commits stop waiting for a standby: a failover may lose commits acknowledged to clients"
                .to_owned(),
        ),
        ("synchronous_mode_strict", true) => {
            Some("writes wait while no synchronous standby is streaming".to_owned())
        }
        _ => None,
    }
}

/// Patroni's `parse_bool`.
fn patroni_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64()? {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The context of a GUC for this spec's PostgreSQL version; an unknown one counts as
/// needing a restart, the safe side.
pub fn parameter_context(spec: &ClusterSpec, name: &str) -> GucContext {
    pg::catalog(spec.spec.postgres.version)
        .and_then(|c| c.get(name))
        .map_or(GucContext::Postmaster, |d| d.context)
}

fn via_for_context(context: GucContext) -> ApplyVia {
    match context {
        GucContext::Postmaster | GucContext::Internal => ApplyVia::Restart,
        _ => ApplyVia::Reload,
    }
}

/// Do two spellings of a GUC value mean the same to PostgreSQL?
pub fn same_value(spec: &ClusterSpec, name: &str, a: &str, b: &str) -> bool {
    match pg::catalog(spec.spec.postgres.version).and_then(|c| c.get(name)) {
        Some(def) => match (def.normalize(a), def.normalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
        None => a == b,
    }
}

/// Does a spec value mean what a member's `pg_settings.setting` (in the base unit) holds?
pub fn same_setting(spec: &ClusterSpec, name: &str, spec_value: &str, setting: &str) -> bool {
    // While archiving is off (`archive_mode` waits for its restart), PostgreSQL shows
    // `archive_command` as `(disabled)` whatever it holds: it cannot be seen to differ, and
    // `archive_mode`'s own comparison tells whether archiving runs.
    if name.eq_ignore_ascii_case("archive_command") && setting == "(disabled)" {
        return true;
    }
    match pg::catalog(spec.spec.postgres.version).and_then(|c| c.get(name)) {
        Some(def) => def.equivalent(spec_value, setting),
        None => spec_value == setting,
    }
}

/// A parameter whose DCS value is the spec's, but that a member runs with another value and
/// nothing explains: no restart pending for it and no `ALTER SYSTEM` override (those are their
/// own changes). Applying it writes the same value and waits for every member to show it, so
/// apply fails with the member named when something keeps it from taking effect. Only
/// parameters the catalog knows: an extension's setting is compared as written.
fn live_mismatch(spec: &ClusterSpec, obs: &Observation, name: &str, want: &str) -> Option<Change> {
    let def = pg::catalog(spec.spec.postgres.version).and_then(|c| c.get(name))?;
    let off: Vec<String> = obs
        .members
        .iter()
        .filter(|(_, m)| m.auto_conf.as_ref().is_none_or(|a| !a.contains_key(name)))
        .filter_map(|(member, m)| {
            let s = m.settings.as_ref()?.get(name)?;
            (!s.pending_restart && !same_setting(spec, name, want, &s.setting))
                .then(|| format!("{member} runs {}", def.format_human(&s.setting)))
        })
        .collect();
    if off.is_empty() {
        return None;
    }
    let context = parameter_context(spec, name);
    Some(Change {
        address: parameter_address(name),
        action: ChangeAction::Update,
        before: Some(Value::String(off.join(", "))),
        after: Some(Value::String(want.to_owned())),
        apply_via: via_for_context(context),
        data_loss: None,
        warning: None,
        operation: None,
        detail: Detail::None,
        reason: format!(
            "the DCS holds the spec's value, but {} (context: {})",
            off.join(", "),
            context.as_str()
        ),
    })
}

/// A member's `ALTER SYSTEM` overrides of the spec's parameters. Resetting one is SQL and a
/// reload; a parameter that needs a restart and runs with the override's value also needs that
/// member restarted (`apply_via: restart`).
fn overrides(spec: &ClusterSpec, member: &str, m: &crate::observe::model::Member) -> Vec<Change> {
    let Some(auto_conf) = &m.auto_conf else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in &spec.spec.postgres.parameters {
        let Some(entry) = auto_conf.get(name) else {
            continue;
        };
        let want = value.to_conf_string();
        if same_value(spec, name, &want, &entry.setting) {
            continue;
        }
        let running = m.settings.as_ref().and_then(|s| s.get(name));
        let runs_spec_value = running.is_some_and(|s| same_setting(spec, name, &want, &s.setting));
        let restart = via_for_context(parameter_context(spec, name)) == ApplyVia::Restart;
        let (apply_via, state) = match (entry.applied, restart && !runs_spec_value) {
            (_, true) => (
                ApplyVia::Restart,
                "in effect; resetting it needs a restart of the member",
            ),
            (true, false) => (ApplyVia::Sql, "in effect"),
            (false, false) => (
                ApplyVia::Sql,
                if restart {
                    "not in effect yet: it waits for a restart"
                } else {
                    "not in effect yet: it waits for a reload"
                },
            ),
        };
        out.push(Change {
            address: override_address(member, name),
            action: ChangeAction::Delete,
            before: Some(Value::String(entry.setting.clone())),
            after: Some(Value::String(want)),
            apply_via,
            reason: format!(
                "ALTER SYSTEM on member {member} overrides the managed value (postgresql.auto.conf; {state})"
            ),
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::None,
        });
    }
    out
}

fn replicas_reason(n: u32) -> String {
    match n {
        1 => "the spec asks for 1 replica".to_owned(),
        n => format!("the spec asks for {n} replicas"),
    }
}

pub fn diff(input: &Input<'_>) -> Diff {
    let mut changes = Vec::new();
    let obs = input.observation;
    let spec = input.spec;
    let exists = cluster_exists(obs);

    // The DCS.
    if !obs.dcs.exists {
        changes.push(Change {
            address: Address::Dcs,
            action: ChangeAction::Create,
            before: None,
            after: Some(json!({ "endpoint": input.topology.dcs_endpoint })),
            apply_via: ApplyVia::Provider,
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::None,
            reason: "the cluster's etcd does not exist".to_owned(),
        });
    } else if !obs.dcs.running {
        changes.push(Change {
            address: Address::Dcs,
            action: ChangeAction::Update,
            before: Some(json!({ "running": false })),
            after: Some(json!({ "running": true })),
            apply_via: ApplyVia::Provider,
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::None,
            reason: "etcd is not running".to_owned(),
        });
    }

    // Members.
    let existing = existing_members(obs);
    let leader = obs
        .patroni
        .as_ref()
        .and_then(|p| p.leader())
        .map(|m| m.name.clone());
    let desired = input.topology.member_names();
    let mut bootstrap_pending = existing.is_empty();
    for m in &input.topology.members {
        if existing.contains(&m.name) {
            let inv = obs.inventory.iter().find(|i| i.name == m.name);
            if inv.is_some_and(|i| i.running && i.config_current == Some(false)) {
                changes.push(Change {
                    address: member_address(&m.name),
                    action: ChangeAction::Update,
                    before: Some(json!({ "patroni_config": "as an earlier spec rendered it" })),
                    after: Some(json!({ "patroni_config": "as the spec renders it" })),
                    apply_via: ApplyVia::Reload,
                    data_loss: None,
                    warning: None,
                    operation: Some(MemberOp::Reconfigure),
                    detail: Detail::None,
                    reason: "its Patroni or pgBackRest configuration file differs from what the spec renders (spec.patroni.watchdog, spec.backup or one of its secrets, or a newer pgdba's settings)".to_owned(),
                });
            }
            if inv.is_some_and(|i| !i.running) {
                changes.push(Change {
                    address: member_address(&m.name),
                    action: ChangeAction::Update,
                    before: Some(json!({ "running": false })),
                    after: Some(json!({ "running": true })),
                    apply_via: ApplyVia::Provider,
                    data_loss: None,
                    warning: None,
                    operation: Some(MemberOp::Start),
                    detail: Detail::None,
                    reason: "its Patroni is not running".to_owned(),
                });
            }
            // Patroni runs but its PostgreSQL cannot start, and Patroni will not try again:
            // the member is rebuilt from the leader (a replica only: the leader's data is the
            // cluster's).
            let own = obs.members.get(&m.name);
            let state = own.and_then(|o| o.state.as_deref()).unwrap_or_default();
            if crate::patroni::is_terminal_state(state)
                && leader.as_deref() != Some(m.name.as_str())
                && leader.is_some()
            {
                changes.push(Change {
                    address: member_address(&m.name),
                    action: ChangeAction::Update,
                    before: Some(json!({ "state": state })),
                    after: Some(json!({ "state": "running" })),
                    apply_via: ApplyVia::Provider,
                    data_loss: Some(format!(
                        "member {}'s data directory: discarded and cloned again from the leader",
                        m.name
                    )),
                    warning: None,
                    operation: Some(MemberOp::Reinit),
                    detail: Detail::None,
                    reason: format!(
                        "Patroni reports its PostgreSQL {state} and will not start it again by itself"
                    ),
                });
            }
            continue;
        }
        let role = if bootstrap_pending {
            "primary"
        } else {
            "replica"
        };
        bootstrap_pending = false;
        changes.push(Change {
            address: member_address(&m.name),
            action: ChangeAction::Create,
            before: None,
            after: Some({
                let mut after = serde_json::Map::new();
                after.insert("role".to_owned(), json!(role));
                after.extend(m.placement.clone());
                Value::Object(after)
            }),
            apply_via: ApplyVia::Provider,
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::CreateMember {
                bootstrap: role == "primary",
            },
            reason: if role == "primary" {
                "the cluster's first member: it bootstraps the cluster as its primary".to_owned()
            } else {
                replicas_reason(spec.spec.replicas)
            },
        });
    }
    for name in existing.iter().filter(|n| !desired.contains(n)) {
        let is_leader = leader.as_deref() == Some(name.as_str());
        changes.push(Change {
            address: member_address(name),
            action: ChangeAction::Delete,
            before: Some(json!({ "role": if is_leader { "leader" } else { "replica" } })),
            after: None,
            apply_via: if is_leader {
                ApplyVia::Switchover
            } else {
                ApplyVia::Provider
            },
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::None,
            reason: if is_leader {
                format!(
                    "{}; it leads, so the leader moves first",
                    replicas_reason(spec.spec.replicas)
                )
            } else {
                replicas_reason(spec.spec.replicas)
            },
        });
    }

    // Patroni's dynamic settings and the GUCs, both kept in the DCS.
    let config = obs.patroni.as_ref().filter(|p| p.config.is_some());
    if !exists {
        for (key, value) in patroni_bootstrap_settings(spec) {
            changes.push(Change {
                address: patroni_address(key),
                action: ChangeAction::Create,
                before: None,
                after: Some(value),
                apply_via: ApplyVia::Provider,
                data_loss: None,
                warning: None,
                operation: None,
                detail: Detail::None,
                reason: "bootstrap configuration of the new cluster".to_owned(),
            });
        }
        for (name, value) in &spec.spec.postgres.parameters {
            changes.push(Change {
                address: parameter_address(name),
                action: ChangeAction::Create,
                before: None,
                after: Some(json!(value.to_conf_string())),
                apply_via: ApplyVia::Provider,
                data_loss: None,
                warning: None,
                operation: None,
                detail: Detail::None,
                reason: "bootstrap configuration of the new cluster".to_owned(),
            });
        }
    } else if let Some(view) = config {
        for (key, value) in patroni_settings(spec) {
            let observed = view
                .config
                .as_ref()
                .and_then(|c| c.get(key))
                .filter(|v| !v.is_null());
            // An absent key means Patroni's default where pgdba may have left it out.
            // An adopted cluster's DCS is its owner's: any key may be absent, meaning
            // Patroni's default.
            let absent = observed
                .is_none()
                .then(|| {
                    patroni_absent_value(key)
                        .or_else(|| spec.is_adopted().then(|| patroni_default(key)).flatten())
                })
                .flatten();
            let effective = observed.cloned().or(absent.clone());
            if effective
                .as_ref()
                .is_some_and(|e| same_patroni_value(e, &value))
            {
                continue;
            }
            let reason = match &absent {
                Some(default) => format!(
                    "differs from the DCS configuration (not set there: Patroni's default, {default})"
                ),
                None => "differs from the DCS configuration".to_owned(),
            };
            changes.push(Change {
                address: patroni_address(key),
                action: if effective.is_some() {
                    ChangeAction::Update
                } else {
                    ChangeAction::Create
                },
                warning: synchronous_warning(key, &value),
                before: effective,
                after: Some(value),
                apply_via: ApplyVia::Reload,
                data_loss: None,
                operation: None,
                detail: Detail::None,
                reason,
            });
        }
        for (name, value) in &spec.spec.postgres.parameters {
            let want = value.to_conf_string();
            let observed = view.dcs_parameter(name);
            let same = observed
                .as_deref()
                .is_some_and(|o| same_value(spec, name, &want, o));
            if same {
                // The DCS holds the spec's value: a member that runs another one is not
                // converged, whatever the DCS says.
                changes.extend(live_mismatch(spec, obs, name, &want));
            } else {
                let context = parameter_context(spec, name);
                changes.push(Change {
                    address: parameter_address(name),
                    action: if observed.is_some() {
                        ChangeAction::Update
                    } else {
                        ChangeAction::Create
                    },
                    before: observed.map(Value::String),
                    after: Some(Value::String(want)),
                    apply_via: via_for_context(context),
                    data_loss: None,
                    warning: None,
                    operation: None,
                    detail: Detail::None,
                    reason: format!(
                        "differs from the DCS configuration (context: {})",
                        context.as_str()
                    ),
                });
            }
        }
        for name in &input.managed.parameters {
            if spec.spec.postgres.parameters.contains_key(name) {
                continue;
            }
            if let Some(observed) = view.dcs_parameter(name) {
                let context = parameter_context(spec, name);
                changes.push(Change {
                    address: parameter_address(name),
                    action: ChangeAction::Delete,
                    before: Some(Value::String(observed)),
                    after: None,
                    apply_via: via_for_context(context),
                    data_loss: None,
                    warning: None,
                    operation: None,
                    detail: Detail::None,
                    reason: "removed from the spec; PostgreSQL's default applies".to_owned(),
                });
            }
        }
    }

    // A member's ALTER SYSTEM (postgresql.auto.conf) overriding a managed value: Patroni's
    // configuration file loses to it, so it must be reset on that member. Seen in the file
    // itself, also before a reload or restart applies it.
    if exists {
        for (member, m) in &obs.members {
            changes.extend(overrides(spec, member, m));
        }
    }

    // A member that still waits for a restart (an earlier apply stopped half-way, or a
    // change made outside pgdba) is restarted, unless a rolling restart comes anyway.
    let rolling = changes
        .iter()
        .any(|c| c.kind() == Kind::PgParameter && c.apply_via == ApplyVia::Restart && exists);
    if !rolling && let Some(view) = &obs.patroni {
        for m in &view.members {
            let own = obs.members.get(&m.name);
            // PostgreSQL's own `pg_settings.pending_restart` is seen at once; Patroni's flag
            // only after its next loop: either says it.
            let own_settings: Vec<String> = own
                .and_then(|o| o.settings.as_ref())
                .map(|s| {
                    s.values()
                        .filter(|v| v.pending_restart)
                        .map(|v| v.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            let pending = m.pending_restart
                || own.is_some_and(|o| o.pending_restart)
                || !own_settings.is_empty();
            if !pending || !desired.contains(&m.name) {
                continue;
            }
            // An override that is reset (SQL and a reload) takes its pending restart with it;
            // one whose reset needs a restart brings its own.
            let mut reasons = own
                .map(|o| o.pending_restart_reason.clone())
                .unwrap_or_default();
            for r in own_settings {
                if !reasons.contains(&r) {
                    reasons.push(r);
                }
            }
            let mine = changes.iter().filter_map(|c| match &c.address {
                Address::Override { member, parameter } if *member == m.name => {
                    Some((c, parameter.as_str()))
                }
                _ => None,
            });
            let restarts_anyway = mine.clone().any(|(c, _)| c.apply_via == ApplyVia::Restart);
            let reset: BTreeSet<&str> = mine
                .filter(|(c, _)| c.apply_via == ApplyVia::Sql)
                .map(|(_, p)| p)
                .collect();
            if restarts_anyway
                || (!reasons.is_empty() && reasons.iter().all(|r| reset.contains(r.as_str())))
            {
                continue;
            }
            let reasons = reasons.join(", ");
            changes.push(Change {
                address: member_address(&m.name),
                action: ChangeAction::Update,
                before: Some(json!({ "pending_restart": true })),
                after: Some(json!({ "pending_restart": false })),
                apply_via: ApplyVia::Restart,
                data_loss: None,
                warning: None,
                operation: Some(MemberOp::Restart),
                detail: Detail::None,
                reason: if reasons.is_empty() {
                    "PostgreSQL waits for a restart".to_owned()
                } else {
                    format!("PostgreSQL waits for a restart ({reasons})")
                },
            });
        }
    }
    pooler(spec, obs, &mut changes);
    backup_stanza(spec, obs, &mut changes);

    // Roles, databases, extensions and HBA rules: on a new cluster all are created (HBA with
    // the bootstrap configuration); otherwise against the leader's catalogs, when read.
    let mut forgotten = Vec::new();
    let empty = crate::observe::model::SqlObjects::default();
    let catalogs = if exists {
        obs.sql.as_ref()
    } else {
        Some(&empty)
    };
    if let Some(catalogs) = catalogs {
        sql::roles(spec, input.managed, catalogs, &mut changes, &mut forgotten);
        sql::databases(spec, input.managed, catalogs, &mut changes, &mut forgotten);
    }
    if exists {
        hba::diff(spec, &input.topology.admit, obs, &mut changes);
    } else {
        changes.push(Change {
            address: Address::Hba,
            action: ChangeAction::Create,
            before: None,
            after: Some(Value::String(
                hba::desired_rules(spec, &input.topology.admit).join("\n") + "\n",
            )),
            apply_via: ApplyVia::Provider,
            reason: "bootstrap configuration of the new cluster".to_owned(),
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::Hba { rewrite: false },
        });
    }
    let unmanaged = match &obs.patroni {
        Some(view) if exists => unmanaged_parameters(spec, input.managed, view),
        _ => BTreeMap::new(),
    };
    Diff {
        changes,
        forgotten,
        unmanaged,
    }
}
