//! A saved plan (`plan --out FILE`): the plan plus what it was made against, so `apply FILE`
//! can refuse it when the state's serial moved or anything it touches changed, and signed, so
//! that a plan changed after it was written is refused.
//!
//! The signature is an HMAC-SHA256 over the plan's JSON without its `signature` field, with a
//! key kept (mode 0600) in the state dir: only someone who can read the state dir can make a
//! plan `apply` accepts. Pure but for the key, which the caller passes in.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use super::{ActionKind, Plan};
use crate::spec::model::ClusterSpec;

pub const SAVED_FORMAT: &str = "pgdba-plan/2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateRef {
    pub lineage: String,
    pub serial: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub created_at: String,
    pub pgdba_version: String,
    pub spec_path: String,
    pub spec_hash: String,
    pub spec: ClusterSpec,
    /// The state the plan was made against; `None` when there was none yet.
    pub state: Option<StateRef>,
    /// sha256 of the observed facts behind every address the plan touches.
    pub fingerprints: BTreeMap<String, String>,
    pub plan: Plan,
    /// HMAC-SHA256 (hex) of this JSON without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

impl SavedPlan {
    fn mac(&self, key: &[u8]) -> Option<HmacSha256> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        let bytes = serde_json::to_vec(&unsigned).ok()?;
        let mut mac = HmacSha256::new_from_slice(key).ok()?;
        mac.update(&bytes);
        Some(mac)
    }

    /// Sign it with the state dir's key.
    pub fn sign(&mut self, key: &[u8]) {
        self.signature = self
            .mac(key)
            .map(|m| hex::encode(m.finalize().into_bytes()));
    }

    /// Was it signed with this key, and not changed since? (Constant-time comparison.)
    pub fn signed_by(&self, key: &[u8]) -> bool {
        let (Some(sig), Some(mac)) = (
            self.signature.as_deref().and_then(|s| hex::decode(s).ok()),
            self.mac(key),
        ) else {
            return false;
        };
        mac.verify_slice(&sig).is_ok()
    }
}

/// Is this action a gate (it waits and reads; it changes nothing)?
fn is_gate(kind: &ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::AwaitHealthy { .. }
            | ActionKind::AwaitConfig { .. }
            | ActionKind::AwaitHba { .. }
            | ActionKind::AwaitReplay
    )
}

/// What is wrong with a plan's shape, whoever made it: an action that changes something but
/// realizes no change of the plan, a change address no change has, a dependency on an action
/// the plan does not have. Empty when it holds together.
pub fn shape_problems(plan: &Plan) -> Vec<String> {
    let addresses: BTreeSet<&crate::diff::Address> =
        plan.changes.iter().map(|c| &c.address).collect();
    let ids: BTreeSet<&str> = plan.actions.iter().map(|a| a.id.as_str()).collect();
    let mut out = Vec::new();
    if ids.len() != plan.actions.len() {
        out.push("two actions have the same id".to_owned());
    }
    for a in &plan.actions {
        if !is_gate(&a.kind)
            && a.changes.is_empty()
            && !matches!(a.kind, ActionKind::Switchover { .. })
        {
            out.push(format!("action {} realizes no change of the plan", a.id));
        }
        for c in &a.changes {
            if !addresses.contains(c) {
                out.push(format!(
                    "action {} names {c}, which is not a change of the plan",
                    a.id
                ));
            }
        }
        for d in &a.depends_on {
            if !ids.contains(d.as_str()) {
                out.push(format!(
                    "action {} depends on {d}, which the plan does not have",
                    a.id
                ));
            }
        }
    }
    out
}

/// What the plan's actions themselves destroy, whatever its changes say: dropped databases,
/// extensions dropped with what uses them, rebuilt members.
pub fn action_data_loss(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::DropDatabase => Some(format!("{}: drops a database", a.id)),
            ActionKind::DropExtension { cascade: true, .. } => {
                Some(format!("{}: drops an extension with what uses it", a.id))
            }
            ActionKind::ReinitMember => Some(format!("{}: discards a member's data", a.id)),
            _ => None,
        })
        .collect()
}
