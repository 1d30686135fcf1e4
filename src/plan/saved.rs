//! A saved plan (`plan --out FILE`): the plan plus what it was made against, so `apply FILE`
//! can refuse it when the state's serial moved or anything it touches changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Plan;
use crate::spec::model::ClusterSpec;

pub const SAVED_FORMAT: &str = "pgdba-plan/1";

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
}
