//! `query slow-log`, `query analyze` and `query index-suggest` against a real PostgreSQL 15
//! (a plain server named by `PGDBA_PG_*`, pg_stat_statements preloaded where a test needs it).
//! Ports 32600-32649, one per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

use super::support::{PlainPg, Run};

const PRELOAD: &str = "shared_preload_libraries = 'pg_stat_statements'";

/// A table of 200,000 rows over 1,000 customers, analyzed, with its primary key.
fn orders(pg: &PlainPg) {
    pg.psql(
        "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, \
         amount int NOT NULL, created_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO orders (customer_id, amount) \
         SELECT g % 1000, g % 97 FROM generate_series(1, 200000) g; \
         ANALYZE orders",
    );
}

/// The same statement run in `n` sessions, with a different constant each time (one entry in
/// pg_stat_statements, `n` calls, `n` sequential scans).
fn filter_by_customer(pg: &PlainPg, n: usize) {
    for i in 0..n {
        pg.psql(&format!(
            "SELECT count(*), sum(amount) FROM orders WHERE customer_id = {}",
            40 + i
        ));
    }
}

/// The envelope of a run that succeeded.
fn ok(run: &Run) -> Value {
    let j = run.json();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(j["success"], true, "{j:#}");
    assert!(j["error"].is_null());
    j
}

/// The envelope of a run that failed with `code`, exit 1.
fn failed(run: &Run, code: &str) -> Value {
    let j = run.json();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(j["success"], false, "{j:#}");
    assert_eq!(j["error"]["code"], code, "{j:#}");
    j
}

fn count(pg: &PlainPg, sql: &str) -> i64 {
    pg.psql(sql).parse().unwrap()
}

#[test]
fn slow_log_lists_the_statements_over_the_threshold_with_their_numbers() {
    let pg = PlainPg::start(32600, &[PRELOAD]);
    // Loaded but not created in any database: said so, with what to run.
    let j = failed(
        &pg.pgdba(&["query", "slow-log", "--threshold", "1ms"]),
        "NO_PG_STAT_STATEMENTS",
    );
    let hint = j["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("CREATE EXTENSION pg_stat_statements"),
        "{j:#}"
    );

    pg.psql("CREATE EXTENSION pg_stat_statements");
    orders(&pg);
    filter_by_customer(&pg, 6);

    let run = pg.pgdba(&["query", "slow-log", "--threshold", "1ms", "--limit", "10"]);
    let j = ok(&run);
    assert_eq!(j["command"], "query slow-log");
    let d = &j["data"];
    assert_eq!(d["threshold"], "1ms");
    assert_eq!(d["threshold_ms"], 1.0);
    assert_eq!(d["limit"], 10);
    let server = format!("127.0.0.1:{}", pg.port);
    assert_eq!(d["servers"][0]["name"], server, "{d:#}");
    assert_eq!(d["servers"][0]["status"], "ok");
    assert_eq!(d["servers"][0]["database"], "postgres");
    let statements = d["statements"].as_array().unwrap();
    assert!(statements.len() <= 10);
    let ours = statements
        .iter()
        .find(|s| {
            s["query"]
                .as_str()
                .unwrap()
                .contains("WHERE customer_id = $1")
        })
        .unwrap_or_else(|| panic!("the repeated statement is missing: {d:#}"));
    assert_eq!(ours["calls"], 6, "{ours:#}");
    assert_eq!(ours["server"], server);
    assert_eq!(ours["database"], "postgres");
    assert_eq!(ours["user"], "postgres");
    assert_eq!(ours["rows"], 6);
    for field in ["mean_ms", "max_ms", "total_ms"] {
        assert!(ours[field].as_f64().unwrap() > 1.0, "{field}: {ours:#}");
    }
    assert!(ours["max_ms"].as_f64() >= ours["mean_ms"].as_f64());
    let blocks =
        ours["shared_blks_hit"].as_i64().unwrap() + ours["shared_blks_read"].as_i64().unwrap();
    assert!(
        blocks > 6 * 1000,
        "a sequential scan reads the whole table: {ours:#}"
    );
    assert!(ours["queryid"].is_i64());
    assert!(ours.get("cache_hit_ratio").is_some());
    // Slowest first; pgdba's own catalog reads are not listed.
    let means: Vec<f64> = statements
        .iter()
        .map(|s| s["mean_ms"].as_f64().unwrap())
        .collect();
    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{means:?}");
    assert!(
        statements
            .iter()
            .all(|s| !s["query"].as_str().unwrap().contains("pgdba query")),
        "{d:#}"
    );

    // A threshold no statement reaches: an empty list, still a success.
    let j = ok(&pg.pgdba(&["query", "slow-log", "--threshold", "1h"]));
    assert_eq!(j["data"]["statements"], serde_json::json!([]));
    assert_eq!(j["data"]["threshold_ms"], 3_600_000.0);

    // For people: a table with the statement.
    let run = pg.pgdba(&[
        "query",
        "slow-log",
        "--threshold",
        "1ms",
        "--format",
        "table",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("MEAN_MS"), "{run:?}");
    assert!(run.stdout.contains("customer_id = $1"), "{run:?}");

    // A threshold PostgreSQL would not read is a usage error saying why.
    for (bad, why) in [
        ("5 parsecs", "unknown unit `parsecs`"),
        ("fast", "is not a number"),
        ("-1s", "below the minimum"),
    ] {
        let j = failed(
            &pg.pgdba(&["query", "slow-log", &format!("--threshold={bad}")]),
            "USAGE",
        );
        assert!(
            j["error"]["message"].as_str().unwrap().contains(why),
            "{bad}: {j:#}"
        );
    }
}

#[test]
fn slow_log_without_the_library_says_how_to_load_it() {
    let pg = PlainPg::start(32601, &[]);
    let j = failed(
        &pg.pgdba(&["query", "slow-log", "--threshold", "1s"]),
        "NO_PG_STAT_STATEMENTS",
    );
    let message = j["error"]["message"].as_str().unwrap();
    assert!(message.contains("not loaded"), "{j:#}");
    let hint = j["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("shared_preload_libraries = 'pg_stat_statements'")
            && hint.contains("restart")
            && hint.contains("CREATE EXTENSION pg_stat_statements"),
        "{j:#}"
    );

    // index-suggest still reports the table, and says why it cannot read predicates.
    pg.psql("CREATE TABLE small (id int PRIMARY KEY, v int)");
    let j = ok(&pg.pgdba(&["query", "index-suggest", "--table", "small"]));
    let d = &j["data"];
    assert_eq!(d["pg_stat_statements"]["available"], false, "{d:#}");
    assert!(
        d["pg_stat_statements"]["reason"]
            .as_str()
            .unwrap()
            .contains("not loaded")
    );
    assert!(d["suggestion"].is_null());
}

#[test]
fn analyze_summarizes_the_plan_and_always_rolls_back() {
    let pg = PlainPg::start(32602, &[]);
    orders(&pg);

    let j = ok(&pg.pgdba(&[
        "query",
        "analyze",
        "--sql",
        "/* which customer */ SELECT count(*) FROM orders WHERE customer_id = 42;",
    ]));
    assert_eq!(j["command"], "query analyze");
    let d = &j["data"];
    assert_eq!(d["server"], format!("127.0.0.1:{}", pg.port));
    assert_eq!(d["database"], "postgres");
    assert_eq!(d["statement"]["kind"], "SELECT");
    assert_eq!(d["statement"]["writes"], false);
    assert_eq!(d["rolled_back"], true);
    let s = &d["summary"];
    assert!(s["execution_ms"].as_f64().unwrap() > 0.0, "{s:#}");
    assert!(s["planning_ms"].as_f64().is_some());
    assert!(s["node_count"].as_u64().unwrap() >= 2, "{s:#}");
    assert_eq!(s["rows_actual"], 1.0);
    assert!(
        s["shared_hit_blocks"].as_u64().unwrap() + s["shared_read_blocks"].as_u64().unwrap() > 1000
    );
    let nodes = d["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty() && nodes.len() <= 5, "{d:#}");
    // The scan of orders is where the time goes.
    let scan = nodes
        .iter()
        .find(|n| n["relation"] == "orders")
        .unwrap_or_else(|| panic!("no node on orders: {d:#}"));
    assert!(
        scan["node_type"].as_str().unwrap().contains("Seq Scan"),
        "{scan:#}"
    );
    assert!(
        scan["condition"]
            .as_str()
            .unwrap()
            .contains("customer_id = 42")
    );
    for field in [
        "self_ms",
        "total_ms",
        "rows_actual",
        "rows_planned",
        "loops",
        "shared_hit_blocks",
        "shared_read_blocks",
        "estimate_factor",
    ] {
        assert!(scan.get(field).is_some(), "{field}: {scan:#}");
    }
    let selfs: Vec<f64> = nodes
        .iter()
        .map(|n| n["self_ms"].as_f64().unwrap())
        .collect();
    assert!(selfs.windows(2).all(|w| w[0] >= w[1]), "{selfs:?}");
    // The full plan, as EXPLAIN gave it.
    assert!(d["plan"]["Plan"]["Node Type"].is_string(), "{d:#}");
    assert!(d["plan"]["Execution Time"].is_number());

    // An INSERT runs (no --allow-writes needed for DML) and leaves no row behind.
    let before = count(&pg, "SELECT count(*) FROM orders");
    let j = ok(&pg.pgdba(&[
        "query",
        "analyze",
        "--sql",
        "INSERT INTO orders (customer_id, amount) SELECT 1, 1 FROM generate_series(1, 500)",
    ]));
    assert_eq!(j["data"]["statement"]["writes"], true);
    assert_eq!(j["data"]["rolled_back"], true);
    assert_eq!(
        j["data"]["nodes"][0]["node_type"], "ModifyTable",
        "{:#}",
        j["data"]
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM orders"), before);

    // A data-modifying WITH needs --allow-writes, and is rolled back too.
    let delete = "WITH gone AS (DELETE FROM orders WHERE customer_id = 7 RETURNING *) SELECT count(*) FROM gone";
    let j = failed(&pg.pgdba(&["query", "analyze", "--sql", delete]), "REFUSED");
    assert!(
        j["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--allow-writes")
    );
    let j = ok(&pg.pgdba(&["query", "analyze", "--sql", delete, "--allow-writes"]));
    assert_eq!(j["data"]["statement"]["kind"], "WITH");
    assert_eq!(
        count(&pg, "SELECT count(*) FROM orders WHERE customer_id = 7"),
        200
    );

    // Neither DDL nor a second statement runs, with or without --allow-writes.
    for sql in ["DROP TABLE orders", "SELECT 1; DROP TABLE orders"] {
        for extra in [&[][..], &["--allow-writes"][..]] {
            let mut args = vec!["query", "analyze", "--sql", sql];
            args.extend_from_slice(extra);
            let j = failed(&pg.pgdba(&args), "REFUSED");
            assert!(!j["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    assert_eq!(count(&pg, "SELECT count(*) FROM orders"), before);
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"
        ),
        1
    );

    // PostgreSQL's own error, its SQLSTATE and position in the statement given.
    let j = failed(
        &pg.pgdba(&["query", "analyze", "--sql", "SELECT * FROM no_such_table"]),
        "SQL_ERROR",
    );
    let message = j["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("relation \"no_such_table\" does not exist") && message.contains("42P01"),
        "{j:#}"
    );
    assert_eq!(j["data"]["sqlstate"], "42P01");
    assert_eq!(j["data"]["position"], 15);
    // A database that does not exist is named.
    let j = failed(
        &pg.pgdba(&[
            "query",
            "analyze",
            "--sql",
            "SELECT 1",
            "--database",
            "nowhere",
        ]),
        "NOT_FOUND",
    );
    assert!(j["error"]["message"].as_str().unwrap().contains("nowhere"));
    // A normalized statement from slow-log needs its values first.
    failed(
        &pg.pgdba(&[
            "query",
            "analyze",
            "--sql",
            "SELECT * FROM orders WHERE id = $1",
        ]),
        "USAGE",
    );
}

#[test]
fn index_suggest_names_the_column_the_heavy_statements_filter_on_and_executes_nothing() {
    let pg = PlainPg::start(32603, &[PRELOAD]);
    pg.psql("CREATE EXTENSION pg_stat_statements");
    orders(&pg);
    filter_by_customer(&pg, 8);
    let indexes = "SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'";
    assert_eq!(count(&pg, indexes), 1);

    let j = ok(&pg.pgdba(&["query", "index-suggest", "--table", "orders"]));
    assert_eq!(j["command"], "query index-suggest");
    let d = &j["data"];
    assert_eq!(d["table"], "public.orders");
    assert_eq!(d["database"], "postgres");
    let stats = &d["stats"];
    assert!(stats["seq_scan"].as_i64().unwrap() >= 8, "{d:#}");
    assert_eq!(stats["n_live_tup"], 200_000, "{d:#}");
    for field in [
        "seq_tup_read",
        "idx_scan",
        "rows_per_seq_scan",
        "size_bytes",
    ] {
        assert!(stats.get(field).is_some(), "{field}: {stats:#}");
    }
    assert_eq!(d["indexes"][0]["name"], "orders_pkey");
    assert_eq!(d["indexes"][0]["columns"], serde_json::json!(["id"]));
    assert_eq!(d["pg_stat_statements"]["available"], true);
    assert!(
        d["statements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["equality"] == serde_json::json!(["customer_id"]) && s["calls"] == 8),
        "{d:#}"
    );
    assert_eq!(d["predicates"][0]["column"], "customer_id", "{d:#}");
    let sg = &d["suggestion"];
    assert_eq!(
        sg["sql"], "CREATE INDEX CONCURRENTLY ON public.orders (customer_id)",
        "{d:#}"
    );
    assert_eq!(sg["columns"], serde_json::json!(["customer_id"]));
    let reasons = sg["reasons"].as_array().unwrap();
    assert!(reasons.len() >= 2, "{d:#}");
    assert!(reasons[0].as_str().unwrap().contains("sequential scans"));
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("customer_id = $1")),
        "the statements are named: {d:#}"
    );
    assert_eq!(d["reasons"], sg["reasons"]);
    // Nothing was executed.
    assert_eq!(count(&pg, indexes), 1);

    // For people.
    let run = pg.pgdba(&[
        "query",
        "index-suggest",
        "--table",
        "public.orders",
        "--format",
        "table",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("Suggestion: CREATE INDEX CONCURRENTLY"),
        "{run:?}"
    );

    // Once an index leads with the column, none is suggested, and the reason says which.
    pg.psql("CREATE INDEX orders_customer ON orders (customer_id, created_at)");
    let j = ok(&pg.pgdba(&["query", "index-suggest", "--table", "orders"]));
    assert!(j["data"]["suggestion"].is_null(), "{j:#}");
    let last = j["data"]["reasons"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        last.contains("orders_customer already leads with (customer_id)"),
        "{last}"
    );

    // An unknown table is named.
    let j = failed(
        &pg.pgdba(&["query", "index-suggest", "--table", "no_such_table"]),
        "NOT_FOUND",
    );
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_table"),
        "{j:#}"
    );
}
