//! `health check`, `health report` and `health serve`: the CLI edge of [`crate::ops::health`].
//! `check` prints the report's data and a table; `report` renders the same report as Markdown
//! (the default), a self-contained HTML page, or JSON, YAML and the table. Both exit 0 for ok
//! or warn, 2 for crit, and 1 (`UNREACHABLE`) when no server answers at all.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::{self, ClusterArg, Target};
use crate::ops::health::{self, Check, Report, Status, Thresholds};
use crate::output::Format;

/// How long a Patroni REST API may take to answer `GET /patroni`.
const PATRONI_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn check(g: &Global, c: &ClusterArg) -> Result<Outcome, Failure> {
    let target = target::resolve(g, c).await?;
    let report = run_on(&target).await?;
    finish(&report, table(&report))
}

pub(super) async fn report(g: &Global, c: &ClusterArg, f: Format) -> Result<Outcome, Failure> {
    let target = target::resolve(g, c).await?;
    let report = run_on(&target).await?;
    let title = title(&target);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let human = match f {
        Format::Markdown => markdown(&report, &title, &now),
        Format::Html => html(&report, &title, &now),
        _ => table(&report),
    };
    finish(&report, human)
}

/// The thresholds the checks are held to: the defaults, or the cluster's `spec.health.thresholds`.
pub(super) fn thresholds(target: &Target) -> Thresholds {
    match target {
        Target::Cluster(k) => k
            .spec
            .spec
            .health
            .as_ref()
            .map(|h| h.thresholds.clone())
            .unwrap_or_default(),
        Target::Plain(_) => Thresholds::default(),
    }
}

/// Every check of `target`: its members, its Patroni and its DCS for a cluster; the server
/// alone for a plain PostgreSQL server.
pub(super) async fn run_on(target: &Target) -> Result<Report, Failure> {
    let t = thresholds(target);
    Ok(match target {
        Target::Cluster(k) => {
            let reader = crate::patroni::Reader::new(PATRONI_TIMEOUT)
                .map_err(|e| Failure::new(codes::INTERNAL, crate::error_chain(&e)))?;
            let dcs = k.cluster.provider.dcs_healthy().await;
            let mut report = health::run(&health::Input {
                servers: &k.servers,
                patroni: Some(health::PatroniInput::from_servers(
                    &reader,
                    &k.servers,
                    Some(dcs),
                )),
                thresholds: &t,
            })
            .await;
            if k.spec.spec.backup.is_some() {
                report.push(backup_age(k, &t).await);
            }
            report
        }
        Target::Plain(s) => {
            health::run(&health::Input {
                servers: std::slice::from_ref(s),
                patroni: None,
                thresholds: &t,
            })
            .await
        }
    })
}

/// The age of the cluster's newest backup, as pgBackRest on the leader lists them.
async fn backup_age(k: &target::Known, t: &Thresholds) -> health::Check {
    let unreadable = |why: String| health::Check {
        name: health::CheckKind::BackupAge,
        member: None,
        status: health::Status::Warn,
        value: serde_json::Value::Null,
        threshold: String::new(),
        message: format!("the backups could not be listed: {why}"),
    };
    let leader = match super::leader::read_status(k).await {
        Ok(s) => match s.leader {
            Some(l) => l,
            None => {
                return unreadable("the cluster has no leader to run pgBackRest beside".to_owned());
            }
        },
        Err(f) => return unreadable(f.message),
    };
    let runner = crate::ops::backup::OnMember::new(k.cluster.provider.as_ref(), leader);
    match crate::ops::backup::info(&runner, &k.name).await {
        Ok(info) => health::backup_age(
            info.backups.last().map(|b| (b.id.as_str(), b.stopped_at)),
            chrono::Utc::now(),
            t,
        ),
        Err(e) => unreadable(crate::error_chain(&e)),
    }
}

/// What the report is about, for its heading.
pub(super) fn title(target: &Target) -> String {
    match target {
        Target::Cluster(k) => format!("cluster {}", k.name),
        Target::Plain(s) => format!("PostgreSQL server {}", s.name),
    }
}

/// The data, the exit code (2 for crit), or `UNREACHABLE` when no server answers.
fn finish(report: &Report, human: String) -> Result<Outcome, Failure> {
    let data = json!({
        "status": report.status,
        "checks": report.checks,
        "skipped": report.skipped,
        "answered": report.answered,
        "servers": report.servers,
    });
    if report.none_answered() {
        let why: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.name == health::CheckKind::Reachable)
            .map(|c| c.message.as_str())
            .collect();
        return Err(Failure::new(
            codes::UNREACHABLE,
            format!(
                "no server answers, the checks could not run: {}",
                if why.is_empty() {
                    "there is no server".to_owned()
                } else {
                    why.join("; ")
                }
            ),
        )
        .hint("check that PostgreSQL runs and that PGDBA_PG_HOST/PGDBA_PG_PORT (or the cluster's state) point at it")
        .data(data));
    }
    let mut out = Outcome::ok(data, human);
    if report.status == Status::Crit {
        out.exit = 2;
    }
    Ok(out)
}

fn summary(report: &Report) -> String {
    format!(
        "{} crit, {} warn, {} ok",
        report.count(Status::Crit),
        report.count(Status::Warn),
        report.count(Status::Ok)
    )
}

/// Skipped checks grouped by reason: `dcs, patroni_member: a plain PostgreSQL server ...`.
fn skipped_lines(report: &Report) -> Vec<(String, Option<String>, String)> {
    let mut out: Vec<(String, Option<String>, String)> = Vec::new();
    for s in &report.skipped {
        match out
            .iter_mut()
            .find(|(_, m, r)| *m == s.member && *r == s.reason)
        {
            Some((names, _, _)) => {
                names.push_str(", ");
                names.push_str(s.name.as_str());
            }
            None => out.push((
                s.name.as_str().to_owned(),
                s.member.clone(),
                s.reason.clone(),
            )),
        }
    }
    out
}

/// The checks as a table, the skipped ones, and the verdict.
fn table(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report
        .checks
        .iter()
        .map(|c| {
            vec![
                c.status.as_str().to_owned(),
                c.name.as_str().to_owned(),
                c.member.clone().unwrap_or_else(|| "-".to_owned()),
                one_line(&c.message),
            ]
        })
        .collect();
    let mut out = crate::output::columns(&["STATUS", "CHECK", "MEMBER", "MESSAGE"], &rows);
    let skipped = skipped_lines(report);
    if !skipped.is_empty() {
        out.push_str("\nSkipped:\n");
        for (names, member, reason) in skipped {
            match member {
                Some(m) => {
                    let _ = writeln!(out, "  {names} ({m}): {}", one_line(&reason));
                }
                None => {
                    let _ = writeln!(out, "  {names}: {}", one_line(&reason));
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\nHealth: {} ({})",
        report.status.as_str().to_uppercase(),
        summary(report)
    );
    out
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Text safe in a Markdown table cell or list item: no markup, no HTML, no line breaks.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

fn marked(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warn => "**WARN**",
        Status::Crit => "**CRIT**",
    }
}

fn needs_attention(report: &Report) -> Vec<&Check> {
    let mut v: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .collect();
    // Crit first; the sort is stable, so the report's order holds within a level.
    v.sort_by_key(|c| std::cmp::Reverse(c.status));
    v
}

/// The report as Markdown: the verdict, what needs attention, every check, what was skipped.
fn markdown(report: &Report, title: &str, now: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Health report: {}\n", md(title));
    let _ = writeln!(
        out,
        "**Status: {}** ({}), {now}\n",
        report.status.as_str().to_uppercase(),
        summary(report)
    );
    let attention = needs_attention(report);
    if !attention.is_empty() {
        out.push_str("## Needs attention\n\n");
        for c in attention {
            let member = c
                .member
                .as_deref()
                .map(|m| format!(" on {}", md(m)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- {} `{}`{member}: {} (threshold: {})",
                marked(c.status),
                c.name,
                md(&c.message),
                md(&c.threshold)
            );
        }
        out.push('\n');
    }
    out.push_str(
        "## Checks\n\n| Status | Check | Member | Message | Threshold |\n|---|---|---|---|---|\n",
    );
    for c in &report.checks {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            marked(c.status),
            c.name,
            c.member
                .as_deref()
                .map(md)
                .unwrap_or_else(|| "-".to_owned()),
            md(&c.message),
            md(&c.threshold)
        );
    }
    let skipped = skipped_lines(report);
    if !skipped.is_empty() {
        out.push_str("\n## Skipped\n\n");
        for (names, member, reason) in skipped {
            let member = member
                .map(|m| format!(" on {}", md(&m)))
                .unwrap_or_default();
            let _ = writeln!(out, "- `{names}`{member}: {}", md(&reason));
        }
    }
    out
}

/// Text safe anywhere in HTML: in an element or in a quoted attribute.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}code{font-size:.85em;word-break:break-all}\
.status{font-weight:bold;text-transform:uppercase;white-space:nowrap}\
.ok{color:#1a7f37}.warn{color:#9a6700}.crit{color:#cf222e}\
.badge{padding:.1em .5em;border-radius:.3em;color:#fff}.badge.ok{background:#1a7f37}.badge.warn{background:#9a6700}.badge.crit{background:#cf222e}";

/// The report as one self-contained HTML page (inline style, no script, nothing fetched);
/// every value is escaped.
fn html(report: &Report, title: &str, now: &str) -> String {
    let mut out = String::new();
    let status = report.status.as_str();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>pgdba health report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(title)
    );
    let _ = writeln!(out, "<h1>Health report: {}</h1>", esc(title));
    let _ = writeln!(
        out,
        "<p><span class=\"badge {status}\">{status}</span> {} &middot; {}</p>",
        esc(&summary(report)),
        esc(now)
    );
    let attention = needs_attention(report);
    if !attention.is_empty() {
        out.push_str("<h2>Needs attention</h2>\n<ul>\n");
        for c in attention {
            let s = c.status.as_str();
            let member = c
                .member
                .as_deref()
                .map(|m| format!(" on {}", esc(m)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<li><span class=\"status {s}\">{s}</span> <code>{}</code>{member}: {} <small>(threshold: {})</small></li>",
                esc(c.name.as_str()),
                esc(&c.message),
                esc(&c.threshold)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Checks</h2>\n<table>\n<thead><tr><th>Status</th><th>Check</th><th>Member</th><th>Message</th><th>Threshold</th><th>Value</th></tr></thead>\n<tbody>\n");
    for c in &report.checks {
        let s = c.status.as_str();
        let _ = writeln!(
            out,
            "<tr><td class=\"status {s}\">{s}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(c.name.as_str()),
            esc(c.member.as_deref().unwrap_or("-")),
            esc(&c.message),
            esc(&c.threshold),
            esc(&serde_json::to_string(&c.value).unwrap_or_default())
        );
    }
    out.push_str("</tbody>\n</table>\n");
    let skipped = skipped_lines(report);
    if !skipped.is_empty() {
        out.push_str("<h2>Skipped</h2>\n<ul>\n");
        for (names, member, reason) in skipped {
            let member = member
                .map(|m| format!(" on {}", esc(&m)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<li><code>{}</code>{member}: {}</li>",
                esc(&names),
                esc(&reason)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ops::health::{CheckKind, Skipped};

    fn sample() -> Report {
        Report {
            status: Status::Crit,
            checks: vec![
                Check {
                    name: CheckKind::Reachable,
                    member: Some("demo-2".to_owned()),
                    status: Status::Crit,
                    value: json!({"error": "refused"}),
                    threshold: "crit when PostgreSQL does not answer".to_owned(),
                    message: "demo-2's PostgreSQL does not answer".to_owned(),
                },
                Check {
                    name: CheckKind::IdleInTransaction,
                    member: Some("demo-1".to_owned()),
                    status: Status::Warn,
                    value: json!({"database": "<script>alert(1)</script>"}),
                    threshold: "warn 60 s".to_owned(),
                    message: "1 session idle, pid 7 (a@<script>alert(1)</script>) | x".to_owned(),
                },
            ],
            skipped: vec![
                Skipped {
                    name: CheckKind::Dcs,
                    member: None,
                    reason: "plain".to_owned(),
                },
                Skipped {
                    name: CheckKind::PatroniLeader,
                    member: None,
                    reason: "plain".to_owned(),
                },
            ],
            answered: 1,
            servers: 2,
        }
    }

    #[test]
    fn html_escapes_what_the_database_says() {
        let page = html(&sample(), "cluster <b>x</b>", "now");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>x"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("class=\"badge crit\""));
    }

    #[test]
    fn markdown_keeps_table_cells_whole() {
        let md = markdown(&sample(), "cluster demo", "now");
        assert!(!md.contains("<script>"), "{md}");
        assert!(md.contains("\\| x"), "{md}");
        assert!(md.contains("## Needs attention"));
        // Crit before warn in the attention list.
        let crit = md.find("**CRIT** `reachable`").unwrap();
        let warn = md.find("**WARN** `idle_in_transaction`").unwrap();
        assert!(crit < warn);
        assert!(md.contains("- `dcs, patroni_leader`: plain"), "{md}");
    }

    #[test]
    fn crit_exits_2_and_nothing_answering_is_unreachable() {
        let out = finish(&sample(), String::new()).unwrap();
        assert_eq!(out.exit, 2);
        assert!(out.error.is_none());
        assert_eq!(out.data["status"], "crit");
        let mut warn = sample();
        warn.status = Status::Warn;
        assert_eq!(finish(&warn, String::new()).unwrap().exit, 0);
        let mut none = sample();
        none.answered = 0;
        let Err(f) = finish(&none, String::new()) else {
            panic!("no server answered, yet the checks succeeded");
        };
        assert_eq!(f.code, "UNREACHABLE");
        assert_eq!(f.data["checks"][0]["name"], "reachable");
    }
}
