//! `pgdba state list`, `state show` and `state unlock`.

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use serde_json::{Value, json};

use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::{Global, StateCommand};
use crate::state::{ClusterState, StateError, StateStore};

/// `state show` for people: the cluster, its DCS and members, the lock, partial applies.
fn state_table(s: &ClusterState, lock: Option<&crate::state::LockStatus>) -> String {
    let mut out = format!(
        "cluster {} ({} provider)\n  lineage     {}\n  serial      {}\n  updated     {}\n  data_dir    {}\n  dcs         {}\n  leader      {}\n  applied     {}\n",
        s.cluster,
        s.provider,
        s.lineage,
        s.serial,
        s.updated_at,
        s.data_dir.as_deref().unwrap_or("(none)"),
        if s.dcs.endpoints.is_empty() {
            "(none)".to_owned()
        } else {
            s.dcs.endpoints.join(", ")
        },
        s.leader.as_deref().unwrap_or("(unknown)"),
        s.spec_hash
            .as_deref()
            .map_or("never completely".to_owned(), |h| format!(
                "spec sha256 {h}"
            )),
    );
    if let Some(p) = &s.pooler {
        out.push_str(&format!(
            "  pooler      {}:{} (PgBouncer)\n",
            p.host, p.port
        ));
    }
    if s.members.is_empty() {
        out.push_str("\nno members\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .members
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.host.clone(),
                    m.port.to_string(),
                    m.api_url.clone(),
                    m.socket_dir.clone(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&crate::output::columns(
            &["MEMBER", "HOST", "PORT", "API_URL", "SOCKET_DIR"],
            &rows,
        ));
    }
    for p in &s.partial_applies {
        out.push_str(&format!(
            "\nan apply stopped part-way at {}; it changed: {}\n",
            p.at,
            p.done.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    out.push_str(&match lock {
        Some(l) => format!(
            "\nlocked by {}@{} pid {} since {} ({}){}\n",
            l.info.owner,
            l.info.host,
            l.info.pid,
            l.info.created_at,
            l.info.operation,
            if l.stale { "; its process is gone" } else { "" }
        ),
        None => "\nnot locked\n".to_owned(),
    });
    out
}

pub(super) fn state_cmd(g: &Global, cmd: StateCommand) -> Result<Outcome, Failure> {
    let store = StateStore::new(&g.state_dir);
    match cmd {
        StateCommand::List { .. } => {
            let list = store.list()?;
            let human = if list.is_empty() {
                format!("no clusters in {}\n", g.state_dir.display())
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            s.cluster.clone(),
                            s.serial.to_string(),
                            s.members.to_string(),
                            s.updated_at.clone(),
                        ]
                    })
                    .collect();
                crate::output::columns(&["CLUSTER", "SERIAL", "MEMBERS", "UPDATED"], &rows)
            };
            Ok(Outcome::ok(json!({ "clusters": list }), human))
        }
        StateCommand::Show { name, .. } => {
            let state = store.load(&name)?.ok_or_else(|| {
                Failure::new(
                    codes::NOT_FOUND,
                    format!("no state for cluster {name} in {}", g.state_dir.display()),
                )
            })?;
            let lock = store.read_lock(&name)?;
            let previous = store.load_previous(&name)?;
            let mut data = serde_json::to_value(&state)
                .map_err(|e| Failure::new(codes::INTERNAL, crate::error_chain(&e)))?;
            let backup = previous.as_ref().map(|p| {
                json!({
                    "path": store.previous_path(&name).map(|p| p.display().to_string()).unwrap_or_default(),
                    "serial": p.serial,
                    "updated_at": p.updated_at,
                })
            });
            if let Value::Object(o) = &mut data {
                // pgdba's own roles: managed by pgdba, their passwords in the 0600 secrets file.
                o.insert(
                    "system_roles".to_owned(),
                    crate::roles::SYSTEM_ROLES
                        .iter()
                        .map(|r| json!({ "name": r.name, "purpose": r.purpose }))
                        .collect::<Vec<_>>()
                        .into(),
                );
                o.insert(
                    "lock".to_owned(),
                    serde_json::to_value(&lock).unwrap_or(Value::Null),
                );
                o.insert("backup".to_owned(), backup.clone().unwrap_or(Value::Null));
            }
            let history = store.history(&name)?;
            if let Value::Object(o) = &mut data {
                o.insert(
                    "history".to_owned(),
                    serde_json::to_value(&history).unwrap_or(Value::Null),
                );
            }
            let mut human = state_table(&state, lock.as_ref());
            if !history.is_empty() {
                human.push_str("\noperations (newest last):\n");
                for h in history.iter().rev().take(20).rev() {
                    human.push_str(&format!(
                        "  {} {:<18} {} {}\n",
                        h.at,
                        h.command,
                        if h.success { "ok    " } else { "FAILED" },
                        h.summary
                    ));
                }
            }
            if let Some(b) = &backup {
                human.push_str(&format!(
                    "previous state kept in {} (serial {})\n",
                    b["path"].as_str().unwrap_or_default(),
                    b["serial"]
                ));
            }
            Ok(Outcome::ok(data, human))
        }
        StateCommand::Unlock {
            name,
            force,
            even_if_alive,
            ..
        } => {
            if !force {
                return Err(Failure::new(
                    codes::CONFIRMATION_REQUIRED,
                    format!("unlocking cluster {name} can let two runs change it at once"),
                )
                .hint("add --force"));
            }
            let removed = store.force_unlock(&name, even_if_alive).map_err(|e| match e {
                StateError::LockHeld { .. } => Failure::new(codes::STATE_LOCKED, e.to_string())
                    .hint("wait for it to finish; add --even-if-alive only if you know it must be stopped"),
                other => other.into(),
            })?;
            let human = match &removed {
                Some(l) => format!(
                    "Removed the lock of cluster {name} held by {}@{} pid {}.\n",
                    l.owner, l.host, l.pid
                ),
                None => format!("Cluster {name} was not locked.\n"),
            };
            Ok(Outcome::ok(
                json!({ "cluster": name, "removed": removed }),
                human,
            ))
        }
    }
}
