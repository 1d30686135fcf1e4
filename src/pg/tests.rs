//! Table-driven tests of GUC parsing, rounding, equality, formatting and errors. Expected
//! values follow PostgreSQL 15 (checked against a running server with `SET` + `pg_settings`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn def(name: &str) -> &'static GucDef {
    catalog(15)
        .and_then(|c| c.get(name))
        .unwrap_or_else(|| panic!("no GUC {name} in the PostgreSQL 15 catalog"))
}

/// What a value normalizes to: the `pg_settings.setting` spelling, or an error fragment.
enum Want {
    Setting(&'static str),
    Error(&'static str),
}
use Want::{Error, Setting};

#[test]
fn normalize_follows_postgresql() {
    let cases: &[(&str, &str, Want)] = &[
        // Memory, base unit 8kB pages.
        ("shared_buffers", "128MB", Setting("16384")),
        ("shared_buffers", "131072kB", Setting("16384")),
        ("shared_buffers", "16384", Setting("16384")),
        ("shared_buffers", "1GB", Setting("131072")),
        ("shared_buffers", "0.5GB", Setting("65536")),
        ("shared_buffers", "128 MB", Setting("16384")),
        ("shared_buffers", " 128MB ", Setting("16384")),
        ("shared_buffers", "128mb", Error("unknown unit `mb`")),
        ("shared_buffers", "1kB", Error("below the minimum 128kB")),
        // Memory, base unit kB; fractions round to the next smaller unit, then to an integer
        // (half to even, as rint does).
        ("work_mem", "4MB", Setting("4096")),
        ("work_mem", "4096", Setting("4096")),
        ("work_mem", "4096kB", Setting("4096")),
        ("work_mem", "1.5MB", Setting("1536")),
        ("work_mem", "64.5", Setting("64")),
        ("work_mem", "65.5", Setting("66")),
        ("work_mem", "100000B", Setting("98")),
        ("work_mem", "4GB", Setting("4194304")),
        ("work_mem", "0x100", Setting("256")),
        ("work_mem", "1e3", Setting("1000")),
        ("work_mem", ".5MB", Setting("512")),
        ("work_mem", "2TB", Error("out of the integer range")),
        ("work_mem", "4 parsecs", Error("unknown unit `parsecs`")),
        ("work_mem", "4 MB extra", Error("unknown unit `MB extra`")),
        ("work_mem", "32", Error("below the minimum 64kB")),
        ("work_mem", "-1", Error("below the minimum")),
        ("work_mem", "", Error("not an integer")),
        ("work_mem", "MB", Error("not an integer")),
        ("work_mem", "nan", Error("not an integer")),
        ("work_mem", "inf", Error("not an integer")),
        ("work_mem", "1e400", Error("not an integer")),
        // No unit.
        ("max_connections", "100", Setting("100")),
        ("max_connections", "1e2", Setting("100")),
        ("max_connections", "100 ", Setting("100")),
        ("max_connections", "100MB", Error("takes no unit")),
        ("max_connections", "abc", Error("not an integer")),
        (
            "max_connections",
            "0",
            Error("below the minimum 1 of max_connections"),
        ),
        (
            "max_connections",
            "300000",
            Error("above the maximum 262143"),
        ),
        // Time, base unit s.
        ("checkpoint_timeout", "5min", Setting("300")),
        ("checkpoint_timeout", "300", Setting("300")),
        ("checkpoint_timeout", "300s", Setting("300")),
        ("checkpoint_timeout", "1h", Setting("3600")),
        ("checkpoint_timeout", "1d", Setting("86400")),
        ("checkpoint_timeout", "30000ms", Setting("30")),
        ("checkpoint_timeout", "1.5min", Setting("90")),
        ("checkpoint_timeout", "5 min", Setting("300")),
        ("checkpoint_timeout", "2d", Error("above the maximum 1d")),
        (
            "checkpoint_timeout",
            "5 mins",
            Error("use one of us, ms, s, min, h, d"),
        ),
        // Time, base unit ms and min.
        ("statement_timeout", "1s", Setting("1000")),
        ("statement_timeout", "1.5s", Setting("1500")),
        ("statement_timeout", "250us", Setting("0")),
        ("statement_timeout", "1min", Setting("60000")),
        ("log_rotation_age", "1d", Setting("1440")),
        ("log_rotation_age", "2h", Setting("120")),
        // Memory, base unit B and MB.
        ("wal_decode_buffer_size", "512kB", Setting("524288")),
        ("max_wal_size", "1GB", Setting("1024")),
        // Check hook: autovacuum_work_mem below 1MB becomes 1MB; -1 stays.
        ("autovacuum_work_mem", "100kB", Setting("1024")),
        ("autovacuum_work_mem", "0", Setting("1024")),
        ("autovacuum_work_mem", "-1", Setting("-1")),
        ("max_wal_size", "2048kB", Setting("2")),
        // Reals.
        ("vacuum_cost_delay", "2", Setting("2")),
        ("vacuum_cost_delay", "2ms", Setting("2")),
        ("vacuum_cost_delay", "500us", Setting("0.5")),
        ("vacuum_cost_delay", "0.1s", Setting("100")),
        ("vacuum_cost_delay", "1s", Error("above the maximum 100ms")),
        ("random_page_cost", "1.1", Setting("1.1")),
        ("random_page_cost", "4", Setting("4")),
        ("random_page_cost", "1e300", Setting("1e+300")),
        ("random_page_cost", "1.1x", Error("takes no unit")),
        ("random_page_cost", "abc", Error("not a number")),
        ("random_page_cost", "nan", Error("not a number")),
        ("random_page_cost", "-1", Error("below the minimum 0")),
        ("checkpoint_completion_target", "0.9", Setting("0.9")),
        (
            "checkpoint_completion_target",
            "1.5",
            Error("above the maximum 1"),
        ),
        // Bools: on/off, true/false, yes/no, 1/0 and unique prefixes, any case.
        ("fsync", "on", Setting("on")),
        ("fsync", "ON", Setting("on")),
        ("fsync", "true", Setting("on")),
        ("fsync", "t", Setting("on")),
        ("fsync", "TR", Setting("on")),
        ("fsync", "yes", Setting("on")),
        ("fsync", "y", Setting("on")),
        ("fsync", "1", Setting("on")),
        ("fsync", "off", Setting("off")),
        ("fsync", "of", Setting("off")),
        ("fsync", "false", Setting("off")),
        ("fsync", "f", Setting("off")),
        ("fsync", "no", Setting("off")),
        ("fsync", "n", Setting("off")),
        ("fsync", "0", Setting("off")),
        ("fsync", "o", Error("not a boolean")),
        ("fsync", "2", Error("not a boolean")),
        ("fsync", "", Error("not a boolean")),
        ("fsync", " on", Error("not a boolean")),
        ("fsync", "onn", Error("not a boolean")),
        ("fsync", "truee", Error("not a boolean")),
        (
            "fsync",
            "maybe",
            Error("`maybe` is not a boolean; fsync takes on or off"),
        ),
        // Enums: case-insensitive, hidden aliases resolved, bool spellings where on/off exist.
        ("wal_level", "replica", Setting("replica")),
        ("wal_level", "REPLICA", Setting("replica")),
        ("wal_level", "hot_standby", Setting("replica")),
        ("wal_level", "archive", Setting("replica")),
        ("wal_level", "logical", Setting("logical")),
        (
            "wal_level",
            "on",
            Error("expected one of: minimal, replica, logical"),
        ),
        ("synchronous_commit", "on", Setting("on")),
        ("synchronous_commit", "true", Setting("on")),
        ("synchronous_commit", "0", Setting("off")),
        (
            "synchronous_commit",
            "Remote_Apply",
            Setting("remote_apply"),
        ),
        ("log_min_messages", "debug", Setting("debug2")),
        ("client_min_messages", "info", Setting("info")),
        (
            "password_encryption",
            "SCRAM-SHA-256",
            Setting("scram-sha-256"),
        ),
        // Strings: as is.
        (
            "shared_preload_libraries",
            "pg_stat_statements",
            Setting("pg_stat_statements"),
        ),
        (
            "search_path",
            "\"$user\", public",
            Setting("\"$user\", public"),
        ),
        ("application_name", "", Setting("")),
    ];
    let mut failures = Vec::new();
    for (name, input, want) in cases {
        let got = def(name).normalize(input);
        let ok = match (want, &got) {
            (Setting(s), Ok(n)) => n.setting() == *s,
            (Error(fragment), Err(e)) => e.to_string().contains(fragment),
            _ => false,
        };
        if !ok {
            let want = match want {
                Setting(s) => format!("setting {s:?}"),
                Error(f) => format!("an error containing {f:?}"),
            };
            failures.push(format!("{name} = {input:?}: want {want}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn normalized_values_of_one_guc_compare_by_what_postgresql_holds() {
    let sb = def("shared_buffers");
    let a = sb.normalize("128MB").unwrap();
    for other in ["131072kB", "16384", "0.125GB", "134217728B"] {
        assert_eq!(a, sb.normalize(other).unwrap(), "128MB vs {other}");
    }
    assert_ne!(a, sb.normalize("129MB").unwrap());
    let fsync = def("fsync");
    assert_eq!(
        fsync.normalize("on").unwrap(),
        fsync.normalize("true").unwrap()
    );
    assert_eq!(
        fsync.normalize("yes").unwrap(),
        fsync.normalize("1").unwrap()
    );
    assert_ne!(
        fsync.normalize("on").unwrap(),
        fsync.normalize("off").unwrap()
    );
}

#[test]
fn equivalent_compares_a_spec_value_with_a_pg_settings_setting() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("shared_buffers", "128MB", "16384", true),
        ("shared_buffers", "131072kB", "16384", true),
        ("shared_buffers", "16384", "16384", true),
        ("shared_buffers", "128MB", "16383", false),
        ("work_mem", "4MB", "4096", true),
        ("work_mem", "4MB", "4MB", true),
        ("work_mem", "5MB", "4096", false),
        ("checkpoint_timeout", "5min", "300", true),
        ("statement_timeout", "0", "0", true),
        ("fsync", "on", "on", true),
        ("fsync", "true", "on", true),
        ("fsync", "yes", "on", true),
        ("fsync", "off", "on", false),
        ("wal_level", "hot_standby", "replica", true),
        ("wal_level", "REPLICA", "replica", true),
        ("wal_level", "logical", "replica", false),
        ("random_page_cost", "1.1", "1.1", true),
        // pg_settings prints reals with %g: 6 significant digits.
        ("random_page_cost", "0.123456789", "0.123457", true),
        ("random_page_cost", "0.12346", "0.123457", false),
        ("vacuum_cost_delay", "500us", "0.5", true),
        ("application_name", "app", "app", true),
        ("application_name", "app", "App", false),
        // A spec value that is not valid is never equivalent.
        ("work_mem", "4 parsecs", "4096", false),
        ("max_connections", "0", "0", false),
    ];
    for (name, spec, setting, want) in cases {
        assert_eq!(
            def(name).equivalent(spec, setting),
            *want,
            "{name}: {spec:?} vs setting {setting:?}"
        );
    }
}

#[test]
fn format_human_uses_the_largest_unit_that_divides() {
    let cases: &[(&str, &str, &str)] = &[
        ("shared_buffers", "16384", "128MB"),
        ("shared_buffers", "16", "128kB"),
        ("shared_buffers", "131072", "1GB"),
        ("shared_buffers", "100", "800kB"),
        ("work_mem", "4096", "4MB"),
        ("work_mem", "4097", "4097kB"),
        ("work_mem", "1048576", "1GB"),
        ("checkpoint_timeout", "300", "5min"),
        ("checkpoint_timeout", "3600", "1h"),
        ("checkpoint_timeout", "86400", "1d"),
        ("checkpoint_timeout", "301", "301s"),
        ("statement_timeout", "0", "0"),
        ("statement_timeout", "1500", "1500ms"),
        ("statement_timeout", "60000", "1min"),
        ("autovacuum_work_mem", "-1", "-1"),
        ("max_connections", "100", "100"),
        ("vacuum_cost_delay", "2", "2ms"),
        ("vacuum_cost_delay", "0.5", "500us"),
        ("wal_segment_size", "16777216", "16MB"),
        ("max_wal_size", "1024", "1GB"),
        ("log_rotation_age", "1440", "1d"),
        ("random_page_cost", "4", "4"),
        ("fsync", "on", "on"),
        ("wal_level", "replica", "replica"),
        ("work_mem", "not a number", "not a number"),
    ];
    for (name, setting, want) in cases {
        assert_eq!(def(name).format_human(setting), *want, "{name} = {setting}");
    }
}

#[test]
fn normalized_displays_as_show_does() {
    let n = def("shared_buffers").normalize("131072kB").unwrap();
    assert_eq!(n.to_string(), "128MB");
    assert_eq!(n.setting(), "16384");
    assert_eq!(def("fsync").normalize("yes").unwrap().to_string(), "on");
}

#[test]
fn error_messages_name_the_value_the_limit_and_the_guc() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "work_mem",
            "4 parsecs",
            "`4 parsecs`: unknown unit `parsecs` for work_mem; use one of B, kB, MB, GB, TB",
        ),
        (
            "work_mem",
            "32",
            "`32` (= 32kB) is below the minimum 64kB of work_mem",
        ),
        (
            "shared_buffers",
            "1kB",
            "`1kB` (= 0 × 8kB) is below the minimum 128kB of shared_buffers",
        ),
        (
            "max_connections",
            "300000",
            "`300000` is above the maximum 262143 of max_connections",
        ),
        (
            "work_mem",
            "4 GB x",
            "`4 GB x`: unknown unit `GB x` for work_mem; use one of B, kB, MB, GB, TB",
        ),
        (
            "work_mem",
            "lots",
            "`lots` is not an integer for work_mem (a number with an optional unit: B, kB, MB, GB, TB)",
        ),
        (
            "work_mem",
            "2TB",
            "`2TB` is out of the integer range of work_mem",
        ),
        (
            "wal_level",
            "fast",
            "`fast` is not a valid value for wal_level; expected one of: minimal, replica, logical",
        ),
    ];
    for (name, value, want) in cases {
        assert_eq!(def(name).normalize(value).unwrap_err().to_string(), *want);
    }
}

#[test]
fn units_parse_and_print_as_pg_settings_spells_them() {
    for s in ["B", "kB", "8kB", "MB", "16MB", "ms", "s", "min"] {
        let u = Unit::from_pg(s).unwrap();
        assert_eq!(u.to_string(), s);
    }
    assert_eq!(Unit::from_pg("8kB"), Some(Unit::Memory { bytes: 8192 }));
    assert_eq!(
        Unit::from_pg("min"),
        Some(Unit::Time { micros: 60_000_000 })
    );
    for bad in ["", "0kB", "parsec", "kb"] {
        assert_eq!(Unit::from_pg(bad), None, "{bad:?}");
    }
}

#[test]
fn context_serializes_as_pg_settings_spells_it() {
    let all = [
        GucContext::Internal,
        GucContext::Postmaster,
        GucContext::Sighup,
        GucContext::SuperuserBackend,
        GucContext::Backend,
        GucContext::Superuser,
        GucContext::User,
    ];
    for c in all {
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json, serde_json::Value::String(c.as_str().to_owned()));
        assert_eq!(GucContext::from_pg(c.as_str()), Some(c));
    }
    assert_eq!(GucContext::SuperuserBackend.as_str(), "superuser-backend");
    assert!(GucContext::Postmaster.needs_restart());
    assert!(!GucContext::Sighup.needs_restart());
}

#[test]
fn shared_memory_floors_are_the_five_standby_minimums() {
    for name in [
        "max_connections",
        "max_worker_processes",
        "max_wal_senders",
        "max_prepared_transactions",
        "MAX_LOCKS_PER_TRANSACTION",
    ] {
        assert!(is_shared_memory_floor(name), "{name}");
    }
    for name in ["work_mem", "shared_buffers", "max_replication_slots"] {
        assert!(!is_shared_memory_floor(name), "{name}");
    }
}

#[test]
fn gucs_owned_by_patroni_or_the_provider_come_with_a_hint() {
    assert!(managed_by_pgdba("port").unwrap().contains("pg_port"));
    assert!(
        managed_by_pgdba("Data_Directory")
            .unwrap()
            .contains("data_dir")
    );
    for name in [
        "listen_addresses",
        "unix_socket_directories",
        "config_file",
        "hba_file",
        "ident_file",
        "cluster_name",
        "hot_standby",
    ] {
        assert!(managed_by_pgdba(name).is_some(), "{name}");
        assert!(
            catalog(15).unwrap().get(name).is_some(),
            "{name} is a real GUC"
        );
    }
    assert_eq!(managed_by_pgdba("work_mem"), None);
}

#[test]
fn custom_names_are_dotted_identifiers() {
    assert!(is_custom_name("pg_stat_statements.max"));
    assert!(is_custom_name("auto_explain.log_min_duration"));
    assert!(!is_custom_name("work_mem"));
    assert!(!is_custom_name("a..b"));
    assert!(!is_custom_name(".a"));
    assert!(!is_custom_name("a.1b"));
}

#[test]
fn every_catalog_default_normalizes() {
    // boot_val is PostgreSQL's own spelling of each default: all of them must parse.
    let cat = catalog(15).unwrap();
    let mut failures = Vec::new();
    for d in cat.iter() {
        let Some(boot) = &d.boot_val else { continue };
        if let Err(e) = d.normalize(boot) {
            failures.push(format!("{}: {e}", d.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
