//! The plan as Markdown for a pull request comment: the risks first (restarts of a primary,
//! switchovers, members removed, data that would be lost), then the changes per cluster, then
//! the full plan folded in `<details>`. Always under [`LIMIT`] characters (GitHub refuses
//! comments over 65,536): what does not fit is cut, and the cut is said.

use std::fmt::Write as _;

use crate::diff::ChangeAction;
use crate::plan::{ActionKind, Plan};

/// The longest comment this renders.
pub const LIMIT: usize = 60_000;

/// One risk a reviewer must see, most severe first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    DataLoss(String),
    WillFail(String),
    RunsCode(String),
    PrimaryRestart(String),
    Switchover(String),
    MemberRemoved(String),
    ReplicaRestart(String),
}

impl Risk {
    fn text(&self) -> String {
        match self {
            Risk::DataLoss(s) => {
                format!("**Data loss** (apply needs `--allow-data-loss`): {s}")
            }
            Risk::WillFail(s) => format!("**Will fail**: {s}"),
            Risk::RunsCode(s) => format!("**Runs a command or loads code on every member**: {s}"),
            Risk::PrimaryRestart(s) => format!("**Restarts the primary**: {s}"),
            Risk::Switchover(s) => format!("**Switchover**: {s}"),
            Risk::MemberRemoved(s) => format!("**Removes a member**: {s}"),
            Risk::ReplicaRestart(s) => format!("Restarts a replica: {s}"),
        }
    }
}

/// The risks of one plan.
pub fn risks(plan: &Plan) -> Vec<Risk> {
    let mut out = Vec::new();
    for c in &plan.changes {
        if let Some(loss) = &c.data_loss {
            out.push(Risk::DataLoss(format!("cluster {}: {loss}", plan.name)));
        }
        if let Some(warning) = &c.warning {
            out.push(Risk::WillFail(format!("cluster {}: {warning}", plan.name)));
        }
        if c.kind() == crate::diff::Kind::PgParameter && crate::pg::is_unsafe_parameter(&c.name()) {
            let by = if crate::spec::model::BACKUP_PARAMETERS.contains(&c.name().as_str()) {
                "set by pgdba from spec.backup: pgBackRest"
            } else {
                "allowed by spec.postgres.allow_unsafe_parameters"
            };
            out.push(Risk::RunsCode(format!(
                "cluster {}: {} ({by})",
                plan.name, c.address
            )));
        }
        if c.action == ChangeAction::Delete && c.address.member().is_some() {
            out.push(Risk::MemberRemoved(format!(
                "cluster {}: {}",
                plan.name,
                c.name()
            )));
        }
    }
    let switched_from: Vec<&str> = plan
        .actions
        .iter()
        .filter(|a| matches!(a.kind, ActionKind::Switchover { .. }))
        .filter_map(|a| a.member())
        .collect();
    for a in &plan.actions {
        let m = a.member().unwrap_or("?");
        match &a.kind {
            ActionKind::Switchover { candidate } => out.push(Risk::Switchover(format!(
                "cluster {}: {m} hands over to {candidate}; writes pause while the leader moves",
                plan.name
            ))),
            ActionKind::RestartMember => {
                let changes: Vec<String> = a.changes.iter().map(ToString::to_string).collect();
                let detail = format!("cluster {}: {m} ({})", plan.name, changes.join(", "));
                // The leader restarted without handing over first: writes stop meanwhile.
                if plan.leader.as_deref() == Some(m) && !switched_from.contains(&m) {
                    out.push(Risk::PrimaryRestart(detail));
                } else {
                    out.push(Risk::ReplicaRestart(detail));
                }
            }
            _ => {}
        }
    }
    out.sort();
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ↵ ")
}

/// A value as a reader takes it in: a string as it is, an object as `key=value` pairs; a
/// multi-line value (HBA rules) is listed below the table instead.
fn value(v: &Option<serde_json::Value>) -> String {
    fn plain(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => o
                .iter()
                .map(|(k, v)| format!("{k}={}", plain(v)))
                .collect::<Vec<_>>()
                .join(", "),
            serde_json::Value::Array(a) => {
                format!("[{}]", a.iter().map(plain).collect::<Vec<_>>().join(", "))
            }
            other => other.to_string(),
        }
    }
    match v {
        None => String::new(),
        Some(serde_json::Value::String(s)) if s.contains('\n') => "(listed below)".to_owned(),
        Some(v) => match plain(v) {
            shown if shown.is_empty() => String::new(),
            shown => format!("`{}`", cell(&shown)),
        },
    }
}

fn lines(v: &Option<serde_json::Value>) -> Option<Vec<&str>> {
    match v {
        Some(serde_json::Value::String(s)) if s.contains('\n') => Some(s.lines().collect()),
        _ => None,
    }
}

/// A multi-line value as a list: every line when it is created, the lines removed and added
/// when it changes.
fn line_list(c: &crate::diff::Change) -> Option<String> {
    let before = lines(&c.before);
    let after = lines(&c.after);
    if before.is_none() && after.is_none() {
        return None;
    }
    let mut out = format!("\n`{}`:\n\n", c.address);
    match (before, after) {
        (Some(b), Some(a)) => {
            for l in b.iter().filter(|l| !a.contains(l)) {
                let _ = writeln!(out, "- removed: `{}`", cell(l));
            }
            for l in a.iter().filter(|l| !b.contains(l)) {
                let _ = writeln!(out, "- added: `{}`", cell(l));
            }
        }
        (None, Some(a)) => {
            for l in a {
                let _ = writeln!(out, "- `{}`", cell(l));
            }
        }
        (Some(b), None) => {
            for l in b {
                let _ = writeln!(out, "- removed: `{}`", cell(l));
            }
        }
        (None, None) => {}
    }
    Some(out)
}

/// The plans of a run as one Markdown comment.
pub fn render(plans: &[Plan]) -> String {
    let mut head = String::from("## pgdba plan\n\n");
    let all: Vec<Risk> = plans.iter().flat_map(risks).collect();
    if all.is_empty() {
        head.push_str("**Risk**: none: no restart, switchover, member removal or data loss.\n\n");
    } else {
        head.push_str("**Risk**\n\n");
        for r in &all {
            let _ = writeln!(head, "- {}", r.text());
        }
        head.push('\n');
    }
    let mut sections = Vec::new();
    for p in plans {
        let mut s = String::new();
        let summary = crate::output::plan::summary_line(&p.summary, p.is_empty());
        let _ = writeln!(s, "### cluster `{}`: {summary}\n", p.name);
        for n in &p.notes {
            let _ = writeln!(s, "> note: {}", cell(n));
        }
        for (host, key) in &p.host_keys {
            let _ = writeln!(
                s,
                "> host key to trust on first use: `{host}` `{}`",
                crate::providers::ssh::session::fingerprint_of_line(key)
            );
        }
        if !p.changes.is_empty() {
            s.push_str("| | address | before | after | via | why |\n|---|---|---|---|---|---|\n");
            for c in &p.changes {
                let sym = match c.action {
                    ChangeAction::Create => "+",
                    ChangeAction::Update => "~",
                    ChangeAction::Delete => "-",
                    ChangeAction::Replace => "-/+",
                };
                let _ = writeln!(
                    s,
                    "| {sym} | `{}` | {} | {} | {} | {} |",
                    c.address,
                    value(&c.before),
                    value(&c.after),
                    c.apply_via.as_str(),
                    cell(&c.reason)
                );
            }
            for listed in p.changes.iter().filter_map(line_list) {
                s.push_str(&listed);
            }
        }
        for f in &p.forgotten {
            let _ = writeln!(
                s,
                "\n`{f}` is no longer managed: left in place, nothing is dropped."
            );
        }
        s.push('\n');
        sections.push((s, crate::output::plan::table(p)));
    }
    fit(&head, &sections)
}

const CUT: &str = "\n\n_… cut to stay under GitHub's comment limit; `pgdba plan --format table` or the JSON output has all of it._\n";

/// Put it together under the limit: the risks always; the change tables while they fit; the
/// full plans (folded) while they fit; a note where something was cut.
fn fit(head: &str, sections: &[(String, String)]) -> String {
    let budget = LIMIT - CUT.len() - 200;
    let mut out = head.to_owned();
    let mut cut = false;
    if out.len() > budget {
        out = truncate(&out, budget);
        cut = true;
    }
    for (table, _) in sections {
        if out.len() + table.len() <= budget {
            out.push_str(table);
        } else {
            let room = budget.saturating_sub(out.len());
            out.push_str(&truncate(table, room));
            cut = true;
            break;
        }
    }
    if !cut {
        for (table, full) in sections {
            let name = table
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("### ");
            let details = format!(
                "<details><summary>Full plan: {}</summary>\n\n```\n{full}```\n\n</details>\n\n",
                cell(name)
            );
            if out.len() + details.len() <= budget {
                out.push_str(&details);
            } else {
                cut = true;
                break;
            }
        }
    }
    if cut {
        out.push_str(CUT);
    }
    out
}

/// At most `max` bytes of `s`, cut at a line boundary (and a char boundary).
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let part = &s[..end];
    match part.rfind('\n') {
        Some(i) => part[..=i].to_owned(),
        None => part.to_owned(),
    }
}
