//! `query slow-log`, `query analyze` and `query index-suggest`: the CLI edge of
//! [`crate::ops::query`]. Resolves the target (a cluster's members, or the plain server of
//! `PGDBA_PG_*`), opens the sessions, calls the engine and renders what it returns.
//!
//! `slow-log` reads every member (each keeps its own pg_stat_statements: reads on replicas
//! count too); `analyze` and `index-suggest` run on the member that accepts writes.

// `Failure` is the CLI edge's error, made at most once per run: its size does not matter.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use serde_json::{Value, json};
use tokio_postgres::Client;

use super::Global;
use super::commands::codes;
use super::commands::{Failure, Outcome};
use super::target::{self, ClusterArg, Target};
use crate::observe::pg::PgError;
use crate::ops::Server;
use crate::ops::query::{self as engine, QueryError};

/// Statements that read catalogs and statistics run at most this long.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The analyzed statement runs at most this long (EXPLAIN ANALYZE runs it to its end).
const ANALYZE_TIMEOUT: Duration = Duration::from_secs(600);
/// Query text in the human tables is cut to this many characters (the JSON has it whole).
const QUERY_WIDTH: usize = 80;

/// What the failures say depends on whether pgdba manages the server through a spec.
#[derive(Clone, Copy)]
enum Managed<'a> {
    /// A cluster pgdba knows: its name.
    Cluster(&'a str),
    Plain,
}

fn managed(t: &Target) -> Managed<'_> {
    match t {
        Target::Cluster(k) => Managed::Cluster(&k.name),
        Target::Plain(_) => Managed::Plain,
    }
}

pub(super) async fn slow_log(
    g: &Global,
    c: &ClusterArg,
    threshold: &str,
    limit: u32,
) -> Result<Outcome, Failure> {
    let threshold = engine::Threshold::parse(threshold)
        .map_err(|e| Failure::new(codes::USAGE, e.to_string()))?;
    if limit == 0 {
        return Err(Failure::new(codes::USAGE, "--limit 0: give at least 1"));
    }
    let target = target::resolve(g, c).await?;
    let m = managed(&target);
    let servers = target.servers();
    let results =
        futures::future::join_all(servers.iter().map(|s| slow_on(s, &threshold, limit, m))).await;
    let mut statements: Vec<(String, engine::SlowStatement)> = Vec::new();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (s, r) in servers.iter().zip(results) {
        match r {
            Ok((database, list)) => {
                report.push(json!({"name": s.name, "status": "ok", "database": database}));
                statements.extend(list.into_iter().map(|st| (s.name.clone(), st)));
            }
            Err(f) => {
                report.push(json!({
                    "name": s.name, "status": "error", "code": f.code, "error": f.message,
                }));
                failures.push(f);
            }
        }
    }
    if failures.len() == servers.len()
        && let Some(first) = failures.into_iter().next()
    {
        return Err(first);
    }
    statements.sort_by(|a, b| b.1.mean_ms.total_cmp(&a.1.mean_ms));
    statements.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let several = servers.len() > 1;
    let human = slow_log_table(&threshold, &statements, &report, several);
    let statements: Vec<Value> = statements
        .into_iter()
        .map(|(server, st)| {
            let mut v = serde_json::to_value(&st).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.insert("server".to_owned(), server.into());
            }
            v
        })
        .collect();
    Ok(Outcome::ok(
        json!({
            "threshold": threshold.to_string(),
            "threshold_ms": threshold.ms(),
            "limit": limit,
            "servers": report,
            "statements": statements,
        }),
        human,
    ))
}

/// One server's slow statements, and the database pg_stat_statements was read in.
async fn slow_on(
    server: &Server,
    threshold: &engine::Threshold,
    limit: u32,
    m: Managed<'_>,
) -> Result<(String, Vec<engine::SlowStatement>), Failure> {
    let client = connect(server, &server.database, READ_TIMEOUT).await?;
    let (other, source) = locate(server, &client, &server.database, m).await?;
    let list =
        engine::slow_statements(other.as_ref().unwrap_or(&client), &source, threshold, limit)
            .await
            .map_err(|e| failure(server, m, e))?;
    Ok((source.database, list))
}

/// The session that reads pg_stat_statements on `server`: `client`'s (on `database`) when the
/// extension is created there, or one on the first other database that has it (the view
/// shows every database's statements wherever it is created).
async fn locate(
    server: &Server,
    client: &Client,
    database: &str,
    m: Managed<'_>,
) -> Result<(Option<Client>, engine::StatementsSource), Failure> {
    let fail = |e| failure(server, m, e);
    let preload = engine::preload_setting(client).await.map_err(fail)?;
    if let Some(p) = &preload
        && !engine::preloads_pg_stat_statements(p)
    {
        return Err(fail(QueryError::NotPreloaded { current: preload }));
    }
    if let Some(source) = engine::statements_source(client).await.map_err(fail)? {
        return Ok((None, source));
    }
    let mut looked = vec![database.to_owned()];
    for db in engine::other_databases(client).await.map_err(fail)? {
        // A database this role may not enter is not where it reads the view.
        let Ok(other) = server.connect_to(&db, READ_TIMEOUT).await else {
            continue;
        };
        if let Ok(Some(source)) = engine::statements_source(&other).await {
            return Ok((Some(other), source));
        }
        looked.push(db);
    }
    Err(fail(QueryError::NotCreated { databases: looked }))
}

fn slow_log_table(
    threshold: &engine::Threshold,
    statements: &[(String, engine::SlowStatement)],
    report: &[Value],
    several: bool,
) -> String {
    let mut out = String::new();
    let read_in: Vec<String> = report
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| {
            format!(
                "{} (database {})",
                r["name"].as_str().unwrap_or_default(),
                r["database"].as_str().unwrap_or_default()
            )
        })
        .collect();
    out.push_str(&format!("pg_stat_statements of {}: ", read_in.join(", ")));
    if statements.is_empty() {
        out.push_str(&format!("no statement with a mean time over {threshold}\n"));
    } else {
        out.push_str(&format!(
            "{} with a mean time over {threshold}, slowest first\n\n",
            crate::output::plan::count(statements.len(), "statement", "statements")
        ));
        let mut header = vec![
            "MEAN_MS", "MAX_MS", "CALLS", "TOTAL_MS", "ROWS", "HIT%", "READ", "DATABASE", "USER",
            "QUERY",
        ];
        if several {
            header.insert(0, "SERVER");
        }
        let rows: Vec<Vec<String>> = statements
            .iter()
            .map(|(server, st)| {
                let mut row = vec![
                    format!("{:.1}", st.mean_ms),
                    format!("{:.1}", st.max_ms),
                    st.calls.to_string(),
                    format!("{:.1}", st.total_ms),
                    st.rows.to_string(),
                    st.cache_hit_ratio
                        .map_or("-".to_owned(), |r| format!("{:.1}", r * 100.0)),
                    st.shared_blks_read.to_string(),
                    st.database.clone().unwrap_or_default(),
                    st.user.clone().unwrap_or_default(),
                    engine::excerpt(&st.query, QUERY_WIDTH),
                ];
                if several {
                    row.insert(0, server.clone());
                }
                row
            })
            .collect();
        out.push_str(&crate::output::columns(&header, &rows));
    }
    for r in report.iter().filter(|r| r["status"] != "ok") {
        out.push_str(&format!(
            "\nnot read: {}: {}\n",
            r["name"].as_str().unwrap_or_default(),
            r["error"].as_str().unwrap_or_default()
        ));
    }
    out
}

pub(super) async fn analyze(
    g: &Global,
    c: &ClusterArg,
    sql: &str,
    database: Option<&str>,
    allow_writes: bool,
) -> Result<Outcome, Failure> {
    let statement = engine::Explainable::new(sql, allow_writes).map_err(refusal)?;
    let target = target::resolve(g, c).await?;
    let m = managed(&target);
    let (server, client, database) = writer(&target, database, ANALYZE_TIMEOUT).await?;
    let analysis = engine::analyze(&client, &statement)
        .await
        .map_err(|e| failure(&server, m, e))?;
    let human = analyze_table(&server, &database, &statement, &analysis);
    Ok(Outcome::ok(
        json!({
            "server": server.name,
            "database": database,
            "statement": {"kind": statement.kind(), "writes": statement.writes()},
            "rolled_back": analysis.rolled_back,
            "summary": analysis.summary,
            "nodes": analysis.nodes,
            "plan": analysis.plan,
        }),
        human,
    ))
}

fn refusal(r: engine::Refusal) -> Failure {
    let code = if r.is_usage() {
        codes::USAGE
    } else {
        codes::REFUSED
    };
    let f = Failure::new(code, r.to_string());
    match r {
        engine::Refusal::Several { .. } => f.hint("analyze each statement on its own"),
        engine::Refusal::NeedsAllowWrites { .. } | engine::Refusal::WritingWith { .. } => f.hint(
            "add --allow-writes to run it anyway: it runs inside a transaction that is always rolled back",
        ),
        _ => f,
    }
}

fn analyze_table(
    server: &Server,
    database: &str,
    statement: &engine::Explainable,
    a: &engine::Analysis,
) -> String {
    let s = &a.summary;
    let ms = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.3} ms"));
    let mut out = format!(
        "EXPLAIN (ANALYZE, BUFFERS) of a {} statement on {}, database {database}; rolled back{}\n",
        statement.kind(),
        server.name,
        if statement.writes() {
            " (its changes were undone)"
        } else {
            ""
        }
    );
    out.push_str(&format!(
        "execution {}, planning {}{}; {} rows (planned {}); {}; shared buffers {} hit, {} read\n\n",
        ms(s.execution_ms),
        ms(s.planning_ms),
        if s.triggers_ms > 0.0 {
            format!(", triggers {:.3} ms", s.triggers_ms)
        } else {
            String::new()
        },
        s.rows_actual,
        s.rows_planned,
        crate::output::plan::count(s.node_count, "node", "nodes"),
        s.shared_hit_blocks,
        s.shared_read_blocks,
    ));
    if s.parallel_workers > 0 {
        out.push_str(&format!(
            "{} parallel workers: a node's time is summed over the processes that ran it, so shares may add up to more than 100%\n\n",
            s.parallel_workers
        ));
    }
    out.push_str("the costliest nodes by their own time:\n");
    let rows: Vec<Vec<String>> = a
        .nodes
        .iter()
        .map(|n| {
            vec![
                format!("{:.3}", n.self_ms),
                n.self_share
                    .map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
                format!("{:.3}", n.total_ms),
                n.node_type.clone(),
                match (&n.relation, &n.index) {
                    (Some(r), Some(i)) => format!("{r} ({i})"),
                    (Some(r), None) => r.clone(),
                    (None, Some(i)) => i.clone(),
                    (None, None) => String::new(),
                },
                format!("{} / {}", n.rows_actual, n.rows_planned),
                n.loops.to_string(),
                n.shared_hit_blocks.to_string(),
                n.shared_read_blocks.to_string(),
                n.condition
                    .as_deref()
                    .map_or(String::new(), |c| engine::excerpt(c, 60)),
            ]
        })
        .collect();
    out.push_str(&crate::output::columns(
        &[
            "SELF_MS",
            "SHARE",
            "TOTAL_MS",
            "NODE",
            "RELATION",
            "ROWS (ACTUAL / PLANNED)",
            "LOOPS",
            "HIT",
            "READ",
            "CONDITION",
        ],
        &rows,
    ));
    out.push_str("\n(the whole plan is in the JSON output: --format json, data.plan)\n");
    out
}

pub(super) async fn index_suggest(
    g: &Global,
    c: &ClusterArg,
    table: &str,
    database: Option<&str>,
) -> Result<Outcome, Failure> {
    let target = target::resolve(g, c).await?;
    let m = managed(&target);
    let (server, client, database) = writer(&target, database, READ_TIMEOUT).await?;
    let fail = |e| failure(&server, m, e);
    let table = engine::find_table(&client, table).await.map_err(fail)?;
    let stats = engine::table_stats(&client, &table).await.map_err(fail)?;
    let indexes = engine::table_indexes(&client, &table).await.map_err(fail)?;
    let distinct = engine::distinct_values(&client, &table, stats.n_live_tup)
        .await
        .map_err(fail)?;
    let (statements, source_db): (Result<Vec<engine::HeavyStatement>, String>, Option<String>) =
        match locate(&server, &client, &database, m).await {
            Ok((other, source)) => (
                engine::heavy_statements(
                    other.as_ref().unwrap_or(&client),
                    &source,
                    &database,
                    &table,
                )
                .await
                .map_err(|e| crate::error_chain(&e)),
                Some(source.database),
            ),
            Err(f) => (Err(f.message), None),
        };
    let advice = engine::suggest_index(&engine::IndexInput {
        table: &table,
        stats: &stats,
        indexes: &indexes,
        statements: statements.as_deref().map_err(String::as_str),
        distinct: &distinct,
    });
    let human = index_table(
        &server,
        &database,
        &table,
        &stats,
        &indexes,
        &statements,
        &advice,
    );
    Ok(Outcome::ok(
        json!({
            "server": server.name,
            "database": database,
            "table": table.qualified,
            "stats": stats,
            "indexes": indexes,
            "pg_stat_statements": {
                "available": statements.is_ok(),
                "database": source_db,
                "reason": statements.as_ref().err(),
            },
            "statements": statements.as_deref().unwrap_or(&[]),
            "predicates": advice.predicates,
            "suggestion": advice.suggestion,
            "reasons": advice.reasons,
        }),
        human,
    ))
}

fn index_table(
    server: &Server,
    database: &str,
    table: &engine::Table,
    s: &engine::TableStats,
    indexes: &[engine::ExistingIndex],
    statements: &Result<Vec<engine::HeavyStatement>, String>,
    advice: &engine::IndexAdvice,
) -> String {
    let mut out = format!(
        "{} in database {database} on {}: {} live rows, {}\n\
         sequential scans {} ({} rows read{}), index scans {}\n\n",
        table.qualified,
        server.name,
        s.n_live_tup,
        size(s.size_bytes),
        s.seq_scan,
        s.seq_tup_read,
        s.rows_per_seq_scan
            .map_or(String::new(), |r| format!(", {r} per scan")),
        s.idx_scan,
    );
    if indexes.is_empty() {
        out.push_str("no index\n");
    } else {
        let rows: Vec<Vec<String>> = indexes
            .iter()
            .map(|ix| {
                let mut notes = Vec::new();
                if ix.primary {
                    notes.push("primary key");
                } else if ix.unique {
                    notes.push("unique");
                }
                if ix.partial {
                    notes.push("partial");
                }
                if !ix.valid {
                    notes.push("INVALID");
                }
                vec![
                    ix.name.clone(),
                    ix.columns.join(", "),
                    ix.method.clone(),
                    ix.idx_scan.to_string(),
                    notes.join(", "),
                ]
            })
            .collect();
        out.push_str(&crate::output::columns(
            &["INDEX", "COLUMNS", "METHOD", "SCANS", "NOTE"],
            &rows,
        ));
    }
    match statements {
        Err(why) => out.push_str(&format!("\npg_stat_statements not read: {why}\n")),
        Ok(list) if advice.predicates.is_empty() => out.push_str(&format!(
            "\n{} in pg_stat_statements mention it; none compares its columns\n",
            crate::output::plan::count(list.len(), "statement", "statements")
        )),
        Ok(list) => {
            out.push_str(&format!(
                "\ncolumns compared by the {} heaviest statements that mention it (pg_stat_statements):\n",
                list.len()
            ));
            let rows: Vec<Vec<String>> = advice
                .predicates
                .iter()
                .map(|p| {
                    vec![
                        p.column.clone(),
                        p.equality.to_string(),
                        p.range.to_string(),
                        format!("{:.1}", p.total_ms),
                        p.distinct.map_or("-".to_owned(), |d| format!("{d:.0}")),
                    ]
                })
                .collect();
            out.push_str(&crate::output::columns(
                &["COLUMN", "EQUALITY", "RANGE", "TOTAL_MS", "DISTINCT"],
                &rows,
            ));
        }
    }
    match &advice.suggestion {
        Some(sg) => out.push_str(&format!("\nSuggestion: {}\n", sg.sql)),
        None => out.push_str("\nNo index suggested.\n"),
    }
    for r in &advice.reasons {
        out.push_str(&format!("  - {r}\n"));
    }
    out.push_str("(nothing was executed)\n");
    out
}

fn size(bytes: i64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MB {
        format!("{:.1} MB", bytes as f64 / MB)
    } else {
        format!("{} kB", bytes / 1024)
    }
}

/// A session on `database` (the server's own when `None`) of the server that accepts writes:
/// the plain server, or the first member of the cluster that is not in recovery.
async fn writer(
    target: &Target,
    database: Option<&str>,
    timeout: Duration,
) -> Result<(Server, Client, String), Failure> {
    let servers = match target {
        Target::Plain(s) => {
            let db = database.unwrap_or(&s.database).to_owned();
            let client = connect(s, &db, timeout).await?;
            return Ok((s.clone(), client, db));
        }
        Target::Cluster(k) => &k.servers,
    };
    let mut problems = Vec::new();
    let mut unreachable = 0;
    for s in servers {
        let db = database.unwrap_or(&s.database).to_owned();
        let client = match connect(s, &db, timeout).await {
            Ok(c) => c,
            Err(f) if f.code == "NOT_FOUND" => return Err(f),
            Err(f) => {
                unreachable += 1;
                problems.push(f.message);
                continue;
            }
        };
        match engine::in_recovery(&client).await {
            Ok(false) => return Ok((s.clone(), client, db)),
            Ok(true) => problems.push(format!("{} is a standby (in recovery)", s.name)),
            Err(e) => problems.push(format!("{}: {e}", s.name)),
        }
    }
    let name = match managed(target) {
        Managed::Cluster(n) => n,
        Managed::Plain => "",
    };
    if unreachable == servers.len() {
        return Err(Failure::new(
            codes::UNREACHABLE,
            format!(
                "no member of cluster {name} answers: {}",
                problems.join("; ")
            ),
        ));
    }
    Err(Failure::new(
        codes::NO_PRIMARY,
        format!(
            "no member of cluster {name} accepts writes: {}",
            problems.join("; ")
        ),
    )
    .hint("a failover may be under way: see `pgdba cluster status`, and try again once it has a leader"))
}

async fn connect(server: &Server, database: &str, timeout: Duration) -> Result<Client, Failure> {
    server
        .connect_to(database, timeout)
        .await
        .map_err(|e| connect_failure(server, database, &e))
}

fn connect_failure(server: &Server, database: &str, e: &PgError) -> Failure {
    if let PgError::Postgres(pe) = e
        && let Some(db) = pe.as_db_error()
        && *db.code() == tokio_postgres::error::SqlState::INVALID_CATALOG_NAME
    {
        return Failure::new(
            codes::NOT_FOUND,
            format!("{}: there is no database {database}", server.name),
        );
    }
    Failure::new(
        codes::UNREACHABLE,
        format!(
            "cannot open a session on {} ({}:{}, database {database}): {}",
            server.name,
            server.host,
            server.port,
            crate::error_chain(e)
        ),
    )
}

/// The failure a diagnostic's error is, on `server`.
fn failure(server: &Server, m: Managed<'_>, e: QueryError) -> Failure {
    let message = format!("{}: {}", server.name, crate::error_chain(&e));
    match e {
        QueryError::Server { error, .. } => {
            let f = Failure::new(codes::SQL_ERROR, message).data(json!({
                "server": server.name,
                "sqlstate": error.sqlstate,
                "message": error.message,
                "detail": error.detail,
                "hint": error.hint,
                "position": error.position,
            }));
            match error.hint {
                Some(h) => f.hint(h),
                None => f,
            }
        }
        QueryError::Session { .. } => Failure::new(codes::UNREACHABLE, message),
        QueryError::NotPreloaded { current } => {
            Failure::new(codes::NO_PG_STAT_STATEMENTS, message).hint(enable_hint(m, current.as_deref()))
        }
        QueryError::NotCreated { databases } => {
            Failure::new(codes::NO_PG_STAT_STATEMENTS, message).hint(create_hint(m, &databases))
        }
        QueryError::TableNotFound { .. } | QueryError::NotATable { .. } => {
            Failure::new(codes::NOT_FOUND, message)
                .hint("name it as schema.table, or as table on the search path; --database picks the database")
        }
        QueryError::Plan(_) => Failure::new(codes::INTERNAL, message),
    }
}

/// How to load pg_stat_statements: through the spec for a cluster pgdba manages, in
/// postgresql.conf for a plain server. Libraries already preloaded are kept.
fn enable_hint(m: Managed<'_>, current: Option<&str>) -> String {
    let libraries = match current.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => format!("{c},pg_stat_statements"),
        None => "pg_stat_statements".to_owned(),
    };
    match m {
        Managed::Cluster(name) => format!(
            "enable it through the spec of cluster {name}, then `pgdba apply -f SPEC`: \
             spec.postgres.parameters.shared_preload_libraries: {libraries} (with \
             shared_preload_libraries in spec.postgres.allow_unsafe_parameters; a restart, which \
             the plan schedules as a rolling restart), and spec.databases[].extensions: \
             [{{name: pg_stat_statements}}] in one of its databases"
        ),
        Managed::Plain => format!(
            "add shared_preload_libraries = '{libraries}' to the server's postgresql.conf (or \
             ALTER SYSTEM SET shared_preload_libraries = '{libraries}') and restart it, then run \
             CREATE EXTENSION pg_stat_statements in one database as a superuser"
        ),
    }
}

fn create_hint(m: Managed<'_>, databases: &[String]) -> String {
    match m {
        Managed::Cluster(name) => format!(
            "the library is loaded; add spec.databases[].extensions: [{{name: pg_stat_statements}}] \
             to one database in the spec of cluster {name}, then `pgdba apply -f SPEC`"
        ),
        Managed::Plain => format!(
            "the library is loaded; run CREATE EXTENSION pg_stat_statements as a superuser in \
             database {}",
            databases.first().map_or("postgres", String::as_str)
        ),
    }
}
