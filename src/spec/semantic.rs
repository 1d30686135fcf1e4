//! Checks the schema cannot express: GUC names and values against the PostgreSQL catalog,
//! the supported versions, Patroni's timing rule.
//!
//! They run on the JSON document next to the schema check, so that one pass reports every
//! problem; a part the model cannot read (a schema error there) is skipped here.

use std::collections::HashMap;

use serde_json::Value;

use super::diagnostic::Pos;
use super::model::{GucValue, PatroniSettings, Postgres};
use super::yaml::{Positions, escape_segment};
use crate::pg;

pub(crate) fn check(doc: &Value, positions: &Positions) -> Vec<(Pos, String)> {
    let mut out = Vec::new();
    check_postgres(doc, positions, &mut out);
    check_patroni(doc, positions, &mut out);
    out
}

fn check_postgres(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let version = match doc.pointer("/spec/postgres/version") {
        None => Postgres::default().version,
        Some(v) => match v.as_u64().and_then(|v| u32::try_from(v).ok()) {
            Some(v) => v,
            None => return, // the schema reports it
        },
    };
    let Some(catalog) = pg::catalog(version) else {
        let supported: Vec<String> = pg::supported_majors().iter().map(u32::to_string).collect();
        out.push((
            positions.value_or_key("/spec/postgres/version"),
            format!(
                "PostgreSQL {version} is not supported yet (supported: {})",
                supported.join(", ")
            ),
        ));
        return;
    };
    let Some(parameters) = doc
        .pointer("/spec/postgres/parameters")
        .and_then(Value::as_object)
    else {
        return;
    };
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (name, raw) in parameters {
        let pointer = format!("/spec/postgres/parameters/{}", escape_segment(name));
        let at_key = positions.key_or_value(&pointer);
        let at_value = positions.value_or_key(&pointer);
        if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
            out.push((
                at_key,
                format!(
                    "parameter `{name}` is set twice (also as `{first}`; PostgreSQL names are \
                     case-insensitive)"
                ),
            ));
            continue;
        }
        if pg::is_custom_name(name) {
            continue; // an extension's GUC: PostgreSQL accepts it as a placeholder
        }
        if let Some(hint) = pg::managed_by_pgdba(name) {
            out.push((
                at_key,
                format!("parameter `{name}` is managed by pgdba and cannot be set here: {hint}"),
            ));
            continue;
        }
        let Some(def) = catalog.get(name) else {
            let mut message = format!("unknown parameter `{name}` for PostgreSQL {version}");
            if let Some(close) = catalog.suggest(name) {
                message.push_str(&format!(" (did you mean `{close}`?)"));
            }
            out.push((at_key, message));
            continue;
        };
        if def.context == pg::GucContext::Internal {
            out.push((
                at_key,
                format!(
                    "parameter `{}` is read-only (fixed when PostgreSQL was built or the cluster \
                     initialized) and cannot be set",
                    def.name
                ),
            ));
            continue;
        }
        let Ok(value) = serde_json::from_value::<GucValue>(raw.clone()) else {
            continue; // the schema reports it
        };
        if let Err(e) = def.normalize(&value.to_conf_string()) {
            out.push((at_value, e.to_string()));
        }
    }
}

fn check_patroni(doc: &Value, positions: &Positions, out: &mut Vec<(Pos, String)>) {
    let settings = match doc.pointer("/spec/patroni") {
        None => PatroniSettings::default(),
        Some(v) => match serde_json::from_value::<PatroniSettings>(v.clone()) {
            Ok(s) => s,
            Err(_) => return, // the schema reports it
        },
    };
    let (ttl, loop_wait, retry) = (
        u64::from(settings.ttl),
        u64::from(settings.loop_wait),
        u64::from(settings.retry_timeout),
    );
    let needed = loop_wait + 2 * retry;
    if ttl >= needed {
        return;
    }
    let (at, ttl_text) = match positions.value("/spec/patroni/ttl") {
        Some(at) => (at, format!("spec.patroni.ttl {ttl}")),
        None => (
            positions.key_or_value("/spec/patroni"),
            format!("spec.patroni.ttl (default {ttl})"),
        ),
    };
    out.push((
        at,
        format!(
            "{ttl_text} is too short: Patroni needs ttl >= loop_wait + 2 × retry_timeout \
             = {loop_wait} + 2 × {retry} = {needed}"
        ),
    ));
}
