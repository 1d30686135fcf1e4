//! Fingerprints of what was observed for each object a plan touches, so a saved plan is
//! refused when any of them changed before it is applied. Pure.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Address;
use crate::observe::model::Observation;

/// The observed facts behind one address, as JSON.
pub fn observed_facts(obs: &Observation, address: &Address) -> Value {
    let view = obs.patroni.as_ref();
    let sql = obs.sql.as_ref();
    match address {
        Address::Dcs | Address::DcsConfig | Address::DcsHba => {
            json!({ "exists": obs.dcs.exists, "running": obs.dcs.running })
        }
        Address::Pooler => json!(
            obs.pooler
                .as_ref()
                .map(|p| json!({ "running": p.running, "settings": p.settings }))
        ),
        Address::BackupStanza => json!(obs.backup.as_ref().map(|b| b.exists)),
        // Not observed: only drift reads it, from beside the state.
        Address::BackupSchedule => Value::Null,
        Address::Leader => json!(view.and_then(|v| v.leader()).map(|m| m.name.clone())),
        Address::Patroni(key) => json!(view.and_then(|v| v.dcs_setting(key))),
        Address::Member(member) => {
            let inv = obs.inventory.iter().find(|m| &m.name == member);
            let pm = view.and_then(|v| v.member(member));
            json!({
                "exists": inv.map(|m| m.exists),
                "running": inv.map(|m| m.running),
                "role": pm.map(|m| m.role),
            })
        }
        Address::Override { member, parameter } => {
            // The member's postgresql.auto.conf entry as the file holds it now, and the value
            // PostgreSQL runs with (whether resetting it needs a restart depends on it).
            let m = obs.members.get(member);
            let entry = m
                .and_then(|m| m.auto_conf.as_ref())
                .and_then(|a| a.get(parameter));
            let running = m
                .and_then(|m| m.settings.as_ref())
                .and_then(|s| s.get(parameter))
                .map(|s| &s.setting);
            json!({ "auto_conf": entry, "running": running })
        }
        // Catalog objects: what the leader's catalogs hold.
        Address::Role(name) => json!(sql.and_then(|s| s.roles.get(name))),
        Address::Database(name) => json!(sql.and_then(|s| s.databases.get(name)).map(|d| (
            &d.owner,
            &d.encoding,
            &d.collate
        ))),
        Address::Extension { database, name } => json!(
            sql.and_then(|s| s.databases.get(database))
                .and_then(|d| d.extensions.as_ref())
                .and_then(|e| e.get(name))
        ),
        // HBA: the DCS's lists (an edit there is seen at once, before the members reload) and
        // each member's file rules (an edit by hand on one member).
        Address::Hba => json!({
            "dcs": view.map(|v| (v.dcs_lines("pg_hba"), v.dcs_lines("pg_ident"))),
            "members": obs
                .members
                .iter()
                .map(|(n, m)| (n, &m.hba))
                .collect::<BTreeMap<_, _>>(),
        }),
        Address::Parameter(param) => {
            // What the plan's change was decided from: the DCS value, and each member's
            // ALTER SYSTEM override. Not the members' live values: those follow the DCS on
            // Patroni's next loop, and a plan made while they catch up is not stale for it.
            let members: BTreeMap<&str, Value> = obs
                .members
                .iter()
                .map(|(n, m)| {
                    let entry = m.auto_conf.as_ref().and_then(|a| a.get(param));
                    (n.as_str(), json!(entry.map(|e| &e.setting)))
                })
                .collect();
            json!({ "dcs": view.and_then(|v| v.dcs_parameter(param)), "overrides": members })
        }
    }
}

/// sha256 of the facts behind one address.
pub fn fingerprint(obs: &Observation, address: &Address) -> String {
    let facts = observed_facts(obs, address);
    hex::encode(Sha256::digest(facts.to_string().as_bytes()))
}

/// Fingerprints of many addresses, keyed by their text.
pub fn fingerprints<'a>(
    obs: &Observation,
    addresses: impl IntoIterator<Item = &'a Address>,
) -> BTreeMap<String, String> {
    addresses
        .into_iter()
        .map(|a| (a.to_string(), fingerprint(obs, a)))
        .collect()
}
