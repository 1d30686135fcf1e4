//! The plan: the changes and the DAG of actions that realizes them. Built in one function
//! (`build`) from a closed set of action kinds; pure: no IO, no clock. Immutable once built.

pub mod graph;
pub mod saved;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::{self, Address, Change, ChangeAction, Managed};
use crate::observe::model::Observation;
use crate::providers::Topology;
use crate::spec::model::{ClusterSpec, RoleSpec};

pub const FORMAT_VERSION: &str = "1";

/// The closed set of things apply can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionKind {
    /// Create and start the cluster's etcd.
    CreateDcs,
    /// Start the cluster's existing etcd.
    StartDcs,
    /// Create and start the connection pooler.
    CreatePooler,
    /// Start the existing, stopped pooler.
    StartPooler,
    /// Stop and remove the pooler.
    DeletePooler,
    /// Create the cluster's stanza in the backup repository and check that WAL archiving
    /// reaches it (`pgbackrest stanza-create`, `pgbackrest check`), on the leader.
    CreateStanza,
    /// Create a member; `bootstrap` makes it initialize the cluster (the first primary).
    CreateMember {
        bootstrap: bool,
    },
    /// Start an existing, stopped member.
    StartMember,
    /// Stop a member and remove its data.
    DeleteMember,
    /// Write a member's Patroni configuration file as the spec renders it, and reload Patroni.
    ReconfigureMember,
    /// Discard a replica's data and clone it again from the leader (Patroni's reinitialize).
    ReinitMember,
    /// Write the dynamic configuration (GUCs and Patroni settings) to the DCS.
    PatchConfig {
        patch: Value,
    },
    /// Gate: the member runs with the new configuration (reloaded values visible in
    /// `pg_settings`; values that need a restart marked `pending_restart`).
    AwaitConfig {
        reload: BTreeMap<String, String>,
        restart: BTreeMap<String, String>,
    },
    /// Restart PostgreSQL on a member if a restart is pending.
    RestartMember,
    /// Move the leader from `target` to `candidate`.
    Switchover {
        candidate: String,
    },
    /// Gate: the member runs; a replica streams with lag under `max_lag` bytes.
    AwaitHealthy {
        max_lag: u64,
    },
    /// Gate: the replica has replayed the primary's WAL up to the primary's position when the
    /// gate starts (so past the primary's last restart and its parameter-change record: the
    /// replica's control file holds the primary's new settings).
    AwaitReplay,
    /// `CREATE ROLE`, with its attributes, memberships and password (a SCRAM verifier made at
    /// apply time from `role.password`; the plan holds where the secret is, never its value).
    CreateRole {
        role: RoleSpec,
    },
    /// `ALTER ROLE` for what differs; `system` roles take their password from pgdba's
    /// secrets file.
    AlterRole {
        role: RoleSpec,
        attributes: bool,
        password: bool,
        grant: Vec<String>,
        revoke: Vec<String>,
        system: bool,
    },
    DropRole,
    CreateDatabase {
        owner: String,
        encoding: String,
        locale: Option<String>,
        template: String,
    },
    AlterDatabase {
        owner: String,
    },
    DropDatabase,
    CreateExtension {
        database: String,
        name: String,
        version: Option<String>,
        schema: Option<String>,
    },
    UpdateExtension {
        database: String,
        name: String,
        version: Option<String>,
        schema: Option<String>,
    },
    DropExtension {
        database: String,
        name: String,
        /// Drop what depends on it too (table columns of its types): only when the plan says
        /// so as a data loss, which apply refuses without `--allow-data-loss`.
        #[serde(default)]
        cascade: bool,
    },
    /// Gate: the member's `pg_hba_file_rules` are exactly these rules.
    AwaitHba {
        rules: Vec<String>,
    },
    /// `ALTER SYSTEM RESET` a GUC on one member, then reload it.
    ResetOverride {
        parameter: String,
    },
}

impl ActionKind {
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::CreateDcs => "create_dcs",
            ActionKind::StartDcs => "start_dcs",
            ActionKind::CreatePooler => "create_pooler",
            ActionKind::StartPooler => "start_pooler",
            ActionKind::DeletePooler => "delete_pooler",
            ActionKind::CreateStanza => "create_stanza",
            ActionKind::CreateMember { .. } => "create_member",
            ActionKind::StartMember => "start_member",
            ActionKind::DeleteMember => "delete_member",
            ActionKind::ReconfigureMember => "reconfigure_member",
            ActionKind::ReinitMember => "reinit_member",
            ActionKind::PatchConfig { .. } => "patch_config",
            ActionKind::AwaitConfig { .. } => "await_config",
            ActionKind::RestartMember => "restart_member",
            ActionKind::Switchover { .. } => "switchover",
            ActionKind::AwaitHealthy { .. } => "await_healthy",
            ActionKind::AwaitReplay => "await_replay",
            ActionKind::CreateRole { .. } => "create_role",
            ActionKind::AlterRole { .. } => "alter_role",
            ActionKind::DropRole => "drop_role",
            ActionKind::CreateDatabase { .. } => "create_database",
            ActionKind::AlterDatabase { .. } => "alter_database",
            ActionKind::DropDatabase => "drop_database",
            ActionKind::CreateExtension { .. } => "create_extension",
            ActionKind::UpdateExtension { .. } => "update_extension",
            ActionKind::DropExtension { .. } => "drop_extension",
            ActionKind::AwaitHba { .. } => "await_hba",
            ActionKind::ResetOverride { .. } => "reset_override",
        }
    }
    /// Does this action restart PostgreSQL or move the leader?
    pub fn disruption(&self) -> Option<&'static str> {
        match self {
            ActionKind::RestartMember => Some("restart"),
            ActionKind::Switchover { .. } => Some("switchover"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    #[serde(flatten)]
    pub kind: ActionKind,
    /// What it acts on: `dcs.etcd`, `member.demo-1`, `dcs.config`.
    pub target: Address,
    pub depends_on: Vec<String>,
    /// The addresses of the changes this action realizes (in part).
    pub changes: Vec<Address>,
}

impl Action {
    /// The member name for member-targeted actions.
    pub fn member(&self) -> Option<&str> {
        self.target.member()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub restarts: usize,
    pub switchovers: usize,
}

/// One cluster's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    /// Who led when the plan was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub actions: Vec<Action>,
    /// Addresses pgdba stops managing, leaving them in place (they left the spec and their
    /// section does not prune).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<Address>,
    /// Parameters set in the DCS outside the spec (by hand): information, left as they are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unmanaged_parameters: BTreeMap<String, String>,
    /// What observation noticed (unreachable members, ...).
    pub notes: Vec<String>,
    /// Keys of hosts pgdba does not trust yet (`address:port` → OpenSSH key line): applying
    /// the plan trusts exactly these and records them in the state (trust on first use).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_keys: BTreeMap<String, String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.actions.is_empty()
            && self.forgotten.is_empty()
            && self.host_keys.is_empty()
    }
    /// What applying the plan would destroy.
    pub fn data_loss(&self) -> Vec<&str> {
        self.changes
            .iter()
            .filter_map(|c| c.data_loss.as_deref())
            .collect()
    }
    pub fn action(&self, id: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.id == id)
    }
    /// Every address whose observed facts the plan relies on.
    pub fn touched_addresses(&self) -> BTreeSet<Address> {
        let mut set: BTreeSet<Address> = self.changes.iter().map(|c| c.address.clone()).collect();
        for a in &self.actions {
            if a.kind.disruption().is_some() {
                set.insert(Address::Leader);
            }
            if a.target.member().is_some() {
                set.insert(a.target.clone());
            }
        }
        set
    }
}

/// spec + what runs → the plan.
pub fn build(
    spec: &ClusterSpec,
    topology: &Topology,
    managed: &Managed,
    observation: &Observation,
) -> Plan {
    let diff::Diff {
        changes,
        forgotten,
        unmanaged,
    } = diff::diff(&diff::Input {
        spec,
        topology,
        managed,
        observation,
    });
    let actions = graph::actions(spec, &topology.admit, &changes, observation);
    let summary = summarize(&changes, &actions);
    Plan {
        name: spec.metadata.name.clone(),
        leader: observation
            .patroni
            .as_ref()
            .and_then(|p| p.leader())
            .map(|m| m.name.clone()),
        summary,
        changes,
        actions,
        forgotten,
        unmanaged_parameters: unmanaged,
        notes: observation.notes.clone(),
        host_keys: BTreeMap::new(),
    }
}

/// What `changes` and `actions` add up to. A replacement is one to add and one to destroy, as
/// Terraform counts it; resetting an `ALTER SYSTEM` override changes its member's
/// configuration and destroys nothing.
pub fn summarize<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
    actions: impl IntoIterator<Item = &'a Action>,
) -> Summary {
    let mut s = Summary::default();
    for c in changes {
        match (c.action, c.kind()) {
            (ChangeAction::Create, _) => s.add += 1,
            (ChangeAction::Update, _) | (ChangeAction::Delete, diff::Kind::Override) => {
                s.change += 1
            }
            (ChangeAction::Delete, _) => s.destroy += 1,
            (ChangeAction::Replace, _) => {
                s.add += 1;
                s.destroy += 1;
            }
        }
    }
    for a in actions {
        match a.kind {
            ActionKind::RestartMember => s.restarts += 1,
            ActionKind::Switchover { .. } => s.switchovers += 1,
            _ => {}
        }
    }
    s
}
