//! Fingerprints of what was observed for each object a plan touches, so a saved plan is
//! refused when any of them changed before it is applied. Pure.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::observe::model::Observation;

/// The pseudo-address of "who leads", part of every plan that restarts or switches over.
pub const LEADER_ADDRESS: &str = "patroni.leader";

/// The observed facts behind one address, as JSON.
pub fn observed_facts(obs: &Observation, address: &str) -> Value {
    let (kind, name) = address.split_once('.').unwrap_or((address, ""));
    let view = obs.patroni.as_ref();
    match (kind, name) {
        ("dcs", _) => json!({ "exists": obs.dcs.exists, "running": obs.dcs.running }),
        ("patroni", "leader") => json!(view.and_then(|v| v.leader()).map(|m| m.name.clone())),
        ("patroni", key) => json!(view.and_then(|v| v.dcs_setting(key))),
        ("member", member) => {
            let inv = obs.inventory.iter().find(|m| m.name == member);
            let pm = view.and_then(|v| v.member(member));
            json!({
                "exists": inv.map(|m| m.exists),
                "running": inv.map(|m| m.running),
                "role": pm.map(|m| m.role),
            })
        }
        ("override", rest) => {
            // The member's postgresql.auto.conf entry as the file holds it now, and the value
            // PostgreSQL runs with (whether resetting it needs a restart depends on it).
            let (member, param) = rest.split_once('.').unwrap_or((rest, ""));
            let m = obs.members.get(member);
            let entry = m
                .and_then(|m| m.auto_conf.as_ref())
                .and_then(|a| a.get(param));
            let running = m
                .and_then(|m| m.settings.as_ref())
                .and_then(|s| s.get(param))
                .map(|s| &s.setting);
            json!({ "auto_conf": entry, "running": running })
        }
        ("role" | "database" | "extension" | "hba", _) => {
            // Catalog objects: what the leader's catalogs and the members' HBA files hold.
            let sql = obs.sql.as_ref();
            match kind {
                "role" => json!(sql.and_then(|s| s.roles.get(name))),
                "database" => json!(sql.and_then(|s| s.databases.get(name)).map(|d| (
                    &d.owner,
                    &d.encoding,
                    &d.collate
                ))),
                "extension" => {
                    let (db, ext) = name.split_once('.').unwrap_or((name, ""));
                    json!(
                        sql.and_then(|s| s.databases.get(db))
                            .and_then(|d| d.extensions.as_ref())
                            .and_then(|e| e.get(ext))
                    )
                }
                // HBA: the DCS's lists (an edit there is seen at once, before the members
                // reload) and each member's file rules (an edit by hand on one member).
                _ => {
                    json!({
                        "dcs": view.map(|v| (v.dcs_lines("pg_hba"), v.dcs_lines("pg_ident"))),
                        "members": obs
                            .members
                            .iter()
                            .map(|(n, m)| (n, &m.hba))
                            .collect::<BTreeMap<_, _>>(),
                    })
                }
            }
        }
        (_, param) => {
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
pub fn fingerprint(obs: &Observation, address: &str) -> String {
    let facts = observed_facts(obs, address);
    hex::encode(Sha256::digest(facts.to_string().as_bytes()))
}

/// Fingerprints of many addresses.
pub fn fingerprints<'a>(
    obs: &Observation,
    addresses: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, String> {
    addresses
        .into_iter()
        .map(|a| (a.to_owned(), fingerprint(obs, a)))
        .collect()
}
