//! `config tune`, `config show` and `config diff` (issue 10, items 6 and 8): PGTune's
//! recommendations as the contract's JSON, and the settings of a plain PostgreSQL server named
//! by `PGDBA_PG_*` (no cluster, no Patroni).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::PlainPg;

#[test]
fn tune_show_and_diff_on_a_plain_server() {
    // config tune: data.parameters maps each GUC to the value as PGTune prints it.
    let pg = PlainPg::start(32547, &["work_mem = '8MB'"]);
    let r = pg.pgdba(&[
        "config",
        "tune",
        "--workload",
        "web",
        "--memory",
        "16GB",
        "--cpus",
        "8",
        "--connections",
        "200",
        "--storage",
        "ssd",
        "--pg-version",
        "15",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    let p = &v["data"]["parameters"];
    assert_eq!(p["max_connections"], "200", "{v:#}");
    assert_eq!(p["shared_buffers"], "4GB", "{v:#}");
    assert_eq!(p["effective_cache_size"], "12GB", "{v:#}");
    assert_eq!(p["random_page_cost"], "1.1", "{v:#}");
    assert_eq!(p["checkpoint_completion_target"], "0.9", "{v:#}");
    // `olap` is the product design's name for dw.
    let r = pg.pgdba(&[
        "config",
        "tune",
        "--workload",
        "olap",
        "--memory",
        "8GB",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["data"]["input"]["workload"], "dw");
    // Inputs PGTune refuses: exit 1 with a sentence.
    let r = pg.pgdba(&[
        "config",
        "tune",
        "--workload",
        "web",
        "--memory",
        "100MB",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "INVALID_INPUT");
    let r = pg.pgdba(&[
        "config",
        "tune",
        "--workload",
        "web",
        "--memory",
        "16XB",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "USAGE");

    // config show: the server's settings as PostgreSQL holds them.
    let r = pg.pgdba(&[
        "config",
        "show",
        "--param",
        "work_mem",
        "--param",
        "max_connections",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    let settings = v["data"]["members"][0]["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 2, "{v:#}");
    let work_mem = settings.iter().find(|s| s["name"] == "work_mem").unwrap();
    assert_eq!(work_mem["value"], "8MB", "{v:#}");
    assert_eq!(work_mem["source"], "configuration file", "{v:#}");
    assert_eq!(work_mem["context"], "user", "{v:#}");
    assert!(!r.stdout.contains(&pg.password));

    // config diff: live vs (no spec) vs recommended.
    let r = pg.pgdba(&["config", "diff", "--workload", "oltp", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    let rows = v["data"]["parameters"].as_array().unwrap();
    let wm = rows.iter().find(|p| p["name"] == "work_mem").unwrap();
    assert_eq!(wm["live"], "8MB", "{v:#}");
    assert!(wm["recommended"].as_str().is_some(), "{v:#}");
    assert_eq!(wm["spec"], serde_json::Value::Null, "{v:#}");
}
