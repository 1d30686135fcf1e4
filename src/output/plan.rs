//! Views of a plan: Terraform-like text for people, and DOT for graphs.

use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value;

use crate::diff::{ApplyVia, Change, ChangeAction};
use crate::plan::{ActionKind, Plan, Summary};

fn symbol(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Create => "+",
        ChangeAction::Update => "~",
        ChangeAction::Delete => "-",
        ChangeAction::Replace => "-/+",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", show(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn multiline(v: &Option<Value>) -> Option<&str> {
    v.as_ref()
        .and_then(Value::as_str)
        .filter(|s| s.contains('\n'))
}

fn change_line(c: &Change, width: usize) -> String {
    let mark = match c.apply_via {
        ApplyVia::Restart => "  [restart]",
        ApplyVia::Switchover => "  [switchover]",
        _ => "",
    };
    let value = match (multiline(&c.before), multiline(&c.after)) {
        (Some(_), _) | (_, Some(_)) => String::new(),
        _ => match (&c.before, &c.after) {
            (Some(b), Some(a)) => format!("{} -> {}", show(b), show(a)),
            (None, Some(a)) => show(a),
            (Some(b), None) => show(b),
            (None, None) => String::new(),
        },
    };
    let mut line = format!(
        "  {} {:<width$}  {}  (via {}){}",
        symbol(c.action),
        c.address,
        value,
        c.apply_via.as_str(),
        mark
    );
    if let (Some(b), Some(a)) = (
        multiline(&c.before).or(Some("")),
        multiline(&c.after).or(Some("")),
    ) && (multiline(&c.before).is_some() || multiline(&c.after).is_some())
    {
        let diff = similar::TextDiff::from_lines(b, a);
        for l in diff.unified_diff().context_radius(3).to_string().lines() {
            let _ = write!(line, "\n        {l}");
        }
    }
    line
}

/// `n` and its noun, singular for one.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Restarts always, switchovers when there are any.
fn disruptions(s: &Summary) -> String {
    let mut out = count(s.restarts, "restart", "restarts");
    if s.switchovers > 0 {
        out.push_str(", ");
        out.push_str(&count(s.switchovers, "switchover", "switchovers"));
    }
    out
}

pub fn summary_line(s: &Summary, empty: bool) -> String {
    if empty {
        "No changes. The cluster matches the spec.".to_owned()
    } else {
        format!(
            "Plan: {} to add, {} to change, {} to destroy, {}.",
            s.add,
            s.change,
            s.destroy,
            disruptions(s)
        )
    }
}

/// What an apply did, counted from the actions that ran (not from the plan).
pub fn applied_line(s: &Summary) -> String {
    format!(
        "{} added, {} changed, {} destroyed, {}",
        s.add,
        s.change,
        s.destroy,
        disruptions(s)
    )
}

/// The plan for people.
pub fn table(plan: &Plan) -> String {
    let mut out = String::new();
    for n in &plan.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for (host, key) in &plan.host_keys {
        let _ = writeln!(
            out,
            "  + host_key.{host}  {}  trusted on first use: check it is the host's before you apply",
            crate::providers::ssh::session::fingerprint_of_line(key)
        );
    }
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "cluster {}: {}",
            plan.name,
            summary_line(&plan.summary, true)
        );
        for (name, value) in &plan.unmanaged_parameters {
            let _ = writeln!(
                out,
                "  i pg_parameter.{name}  {value:?}  set in the DCS outside the spec: left as is"
            );
        }
        return out;
    }
    let _ = writeln!(
        out,
        "cluster {}: pgdba will make these changes:\n",
        plan.name
    );
    let width = plan
        .changes
        .iter()
        .map(|c| c.address.to_string().len())
        .max()
        .unwrap_or(0);
    for c in &plan.changes {
        let _ = writeln!(out, "{}", change_line(c, width));
        let _ = writeln!(out, "      # {}", c.reason);
        if let Some(loss) = &c.data_loss {
            let _ = writeln!(
                out,
                "      ! data loss: {loss} (apply needs --allow-data-loss)"
            );
        }
        if let Some(warning) = &c.warning {
            let _ = writeln!(out, "      ! warning: {warning}");
        }
        if c.kind() == crate::diff::Kind::PgParameter && crate::pg::is_unsafe_parameter(&c.name()) {
            let by = if crate::spec::model::BACKUP_PARAMETERS.contains(&c.name().as_str()) {
                "set by pgdba from spec.backup: pgBackRest"
            } else {
                "allowed by spec.postgres.allow_unsafe_parameters"
            };
            let _ = writeln!(
                out,
                "      ! risk: it runs a command or loads code on every member ({by})"
            );
        }
    }
    for (name, value) in &plan.unmanaged_parameters {
        let _ = writeln!(
            out,
            "  i {:<width$}  {value:?}  set in the DCS outside the spec: left as is",
            format!("pg_parameter.{name}")
        );
    }
    for f in &plan.forgotten {
        let _ = writeln!(
            out,
            "  . {f:<width$}  no longer managed: left in place, nothing is dropped"
        );
        let _ = writeln!(
            out,
            "      # it left the spec and its section of spec.prune is off"
        );
    }
    let _ = writeln!(out, "\nActions, in dependency order:");
    for (i, a) in plan.actions.iter().enumerate() {
        let mark = a
            .kind
            .disruption()
            .map(|d| format!("  [{d}]"))
            .unwrap_or_default();
        let extra = match &a.kind {
            ActionKind::Switchover { candidate } => format!(" (to {candidate})"),
            ActionKind::CreateMember { bootstrap: true } => " (bootstrap)".to_owned(),
            _ => String::new(),
        };
        let after = if a.depends_on.is_empty() {
            String::new()
        } else {
            format!("   after {}", a.depends_on.join(", "))
        };
        let _ = writeln!(out, "  {:>2}. {}{}{}{}", i + 1, a.id, extra, mark, after);
    }
    let _ = writeln!(out, "\n{}", summary_line(&plan.summary, false));
    if !plan.forgotten.is_empty() {
        let _ = writeln!(
            out,
            "{} no longer managed (left in place).",
            plan.forgotten.len()
        );
    }
    out
}

/// The action graph in Graphviz DOT.
pub fn dot(plans: &[Plan]) -> String {
    let mut g: DiGraph<String, ()> = DiGraph::new();
    let mut out = String::from(
        "digraph pgdba {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for plan in plans {
        let idx: Vec<NodeIndex> = plan
            .actions
            .iter()
            .map(|a| g.add_node(format!("{}/{}", plan.name, a.id)))
            .collect();
        for (i, a) in plan.actions.iter().enumerate() {
            for d in &a.depends_on {
                if let Some(j) = plan.actions.iter().position(|x| &x.id == d) {
                    g.add_edge(idx[j], idx[i], ());
                }
            }
            let style = match a.kind.disruption() {
                Some("restart") => ", style=filled, fillcolor=\"#ffe4b5\"",
                Some(_) => ", style=filled, fillcolor=\"#ffb6c1\"",
                None => "",
            };
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\\n{}\"{style}];",
                g[idx[i]], a.id, a.target
            );
        }
    }
    for e in g.edge_indices() {
        if let Some((a, b)) = g.edge_endpoints(e) {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", g[a], g[b]);
        }
    }
    out.push_str("}\n");
    out
}
