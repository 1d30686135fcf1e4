//! KDL is the second spelling of a spec: every example and good fixture exists in YAML and in
//! KDL and both load to the same `ClusterSpec`; problems in a KDL file are reported at their
//! KDL line:column, syntax errors with a snippet that underlines and labels the spot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::{diagnostics, fixture};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pgdba::spec;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &Path) -> spec::LoadedSpec {
    spec::load_file(path).unwrap_or_else(|diags| {
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        panic!("{}:\n{}", path.display(), shown.join("\n"))
    })
}

/// The specs of `yaml_dir` and `kdl_dir` by stem, each with its YAML and its KDL spelling.
fn twins(yaml_dir: &Path, kdl_dir: &Path) -> BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> {
    let mut out: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    for path in spec::discover(yaml_dir)
        .unwrap()
        .into_iter()
        .chain(spec::discover(kdl_dir).unwrap())
    {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let ext = path
            .extension()
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase();
        let entry = out.entry(stem).or_default();
        if ext == "kdl" {
            entry.1 = Some(path);
        } else if path.parent() == Some(yaml_dir) {
            entry.0 = Some(path);
        }
    }
    out
}

/// Every spec has both spellings, and they load to equal specs.
#[track_caller]
fn assert_twins_load_equal(yaml_dir: &Path, kdl_dir: &Path) {
    let twins = twins(yaml_dir, kdl_dir);
    assert!(!twins.is_empty(), "no specs in {}", yaml_dir.display());
    for (stem, pair) in twins {
        let (Some(yaml), Some(kdl)) = pair else {
            panic!(
                "{stem}: every spec is written in YAML (in {}) and in KDL (in {}); one is missing",
                yaml_dir.display(),
                kdl_dir.display()
            );
        };
        let (a, b) = (load(&yaml), load(&kdl));
        assert_eq!(
            a.spec,
            b.spec,
            "{} and {} load to different specs",
            yaml.display(),
            kdl.display()
        );
    }
}

/// The KDL twins of the examples live in `examples/kdl/`, so that `examples/` and
/// `examples/kdl/` each stay a fleet (`pgdba validate -f DIR`) of distinct cluster names.
#[test]
fn every_example_exists_in_yaml_and_kdl_and_both_load_to_the_same_spec() {
    let examples = root().join("examples");
    assert_twins_load_equal(&examples, &examples.join("kdl"));
}

#[test]
fn every_good_fixture_exists_in_yaml_and_kdl_and_both_load_to_the_same_spec() {
    assert_twins_load_equal(&fixture("good"), &fixture("good"));
}

/// As `support::assert_diags`, and every KDL diagnostic carries a snippet.
#[track_caller]
fn assert_diags(rel: &str, want: &[(usize, usize, &str)]) {
    crate::support::assert_diags(rel, want);
    for d in diagnostics(rel) {
        assert!(d.snippet.is_some(), "{rel}: no snippet for {d}");
    }
}

#[test]
fn unknown_fields_in_kdl_point_at_the_node_or_property_name() {
    assert_diags(
        "bad/unknown-fields.kdl",
        &[
            (3, 1, "unknown field `colour` at the top level"),
            (
                6,
                5,
                "unknown field `labelz` in metadata, expected one of: name, labels (did you mean `labels`?)",
            ),
            (
                10,
                15,
                "unknown field `pg_prot` in spec.provider.local, expected one of: data_dir, pg_port,",
            ),
            (14, 9, "unknown field `bogus` in spec.postgres"),
            (
                17,
                20,
                "unknown field `loop_waits` in spec.patroni, expected one of: ttl, loop_wait, retry_timeout, maximum_lag_on_failover, failsafe_mode, synchronous_mode, synchronous_node_count, synchronous_mode_strict, watchdog (did you mean `loop_wait`?)",
            ),
        ],
    );
}

#[test]
fn semantic_rules_in_kdl_point_at_the_value() {
    // Synchronous mode on (node count left at 1) with no replica to be its standby.
    assert_diags(
        "bad/sync-no-replicas.kdl",
        &[(
            12,
            26,
            "spec.patroni.synchronous_mode needs at least 1 replica as its synchronous standby (synchronous_node_count, default 1), and spec.replicas is 0",
        )],
    );
}

#[test]
fn wrong_types_in_kdl_point_at_the_argument_or_property_value() {
    assert_diags(
        "bad/wrong-types.kdl",
        &[
            (
                5,
                16,
                "metadata.labels.env: expected a string, found an integer `1` (quote it to make it a string)",
            ),
            (
                9,
                23,
                "spec.provider.local.pg_port: expected an integer, found a string `5432x`",
            ),
            (
                12,
                17,
                "spec.postgres.version: expected an integer, found a string `15` (remove the quotes)",
            ),
            (
                13,
                20,
                "spec.postgres.parameters: expected a mapping, found a list",
            ),
            (
                15,
                14,
                "spec.replicas: expected an integer, found a string `two`",
            ),
            (
                17,
                13,
                "spec.patroni.ttl: expected an integer, found a string `30s`",
            ),
        ],
    );
}

#[test]
fn an_unknown_guc_in_kdl_points_at_its_node() {
    assert_diags(
        "bad/unknown-guc.kdl",
        &[(
            10,
            13,
            "unknown parameter `wrok_mem` for PostgreSQL 15 (did you mean `work_mem`?)",
        )],
    );
}

#[test]
fn several_problems_in_one_kdl_file_are_all_reported_in_order() {
    assert_diags(
        "bad/many-problems.kdl",
        &[
            (1, 12, "apiVersion: `pgdba/v2` is not supported"),
            (4, 10, "metadata.name `Demo_1`: use lowercase letters"),
            (13, 13, "unknown parameter `wrok_mem` for PostgreSQL 15"),
            (14, 22, "unknown unit `parsecs` for work_mem"),
            (15, 19, "`maybe` is not a boolean; fsync takes on or off"),
            (16, 28, "is below the minimum 128kB of shared_buffers"),
            (17, 13, "parameter `port` is managed by pgdba"),
            (21, 14, "spec.replicas: -1 is less than the minimum 0"),
            (22, 5, "unknown field `colour` in spec"),
            (23, 17, "spec.patroni.ttl 20 is too short"),
        ],
    );
}

#[test]
fn kdl_syntax_errors_are_reported_one_per_line_with_hints() {
    assert_diags(
        "bad/syntax-errors.kdl",
        &[
            (
                2,
                12,
                "invalid KDL: expected identifier string (quote it: \"pgdba/v1\")",
            ),
            (
                13,
                22,
                "quote it: \"4MB\"; a bare value that starts with a digit must be a number",
            ),
            (14, 19, "KDL 2 writes #true, KDL 1 wrote true"),
        ],
    );
    assert_diags(
        "bad/unterminated-string.kdl",
        &[(
            4,
            10,
            "invalid KDL: unexpected newline in single-line quoted string",
        )],
    );
    assert_diags(
        "bad/unclosed-block.kdl",
        &[
            (3, 10, "invalid KDL: no closing '}' for child block"),
            (5, 6, "invalid KDL: no closing '}' for child block"),
        ],
    );
}

#[test]
fn a_kdl_syntax_error_displays_with_an_underlined_labelled_snippet() {
    let d = diagnostics("bad/syntax-errors.kdl");
    let file = fixture("bad/syntax-errors.kdl").display().to_string();
    assert_eq!(
        d[1].to_string(),
        format!(
            "{file}:13:22: error: invalid KDL: expected integer (quote it: \"4MB\"; a bare value \
             that starts with a digit must be a number)\n 13 |             work_mem 4MB\n    | {}^^^ \
             not integer",
            " ".repeat(21)
        )
    );
}

#[test]
fn mapping_errors_in_kdl_name_both_positions() {
    assert_diags(
        "bad/duplicate-node.kdl",
        &[
            (9, 5, "`replicas` is set twice (first at line 8, column 5)"),
            (11, 9, "`ttl` is set twice (first at line 10, column 13)"),
        ],
    );
    assert_diags(
        "bad/mixed-list.kdl",
        &[
            (
                8,
                15,
                "type annotations like `(u32)` are not part of a spec",
            ),
            (
                12,
                13,
                "a block holds either `-` list items or named nodes, not both",
            ),
        ],
    );
}

#[test]
fn empty_binary_and_control_character_kdl_files_are_diagnostics() {
    for (rel, line, column, fragment) in [
        ("bad/empty.kdl", 1, 1, "empty spec"),
        ("bad/comments-only.kdl", 1, 1, "empty spec"),
        ("bad/binary.kdl", 1, 1, "invalid UTF-8 (byte 0x89)"),
        ("bad/control-char.kdl", 6, 18, "control character U+0001"),
    ] {
        let d = diagnostics(rel);
        assert_eq!(d.len(), 1, "{rel}: {d:?}");
        assert_eq!((d[0].line, d[0].column), (line, column), "{rel}: {}", d[0]);
        assert!(d[0].message.contains(fragment), "{rel}: {}", d[0]);
    }
}

#[test]
fn load_str_picks_kdl_by_the_extension_in_any_case() {
    let kdl = b"apiVersion \"pgdba/v1\"\nkind Cluster\nmetadata name=a\nspec {\n  provider { local {}; }\n  replicas 0\n}\n";
    for label in ["a.kdl", "dir.yaml/A.KDL", "x.Kdl"] {
        let s = spec::load_str(label, kdl).unwrap();
        assert_eq!(s.metadata.name, "a");
    }
    // The same bytes named .yaml are read as YAML, and are not.
    assert!(spec::load_str("a.yaml", kdl).is_err());
}

#[test]
fn a_bom_and_crlf_line_ends_are_fine_in_kdl() {
    let text = "\u{feff}apiVersion \"pgdba/v1\"\r\nkind Cluster\r\nmetadata name=a\r\nspec {\r\n  provider { local {}; }\r\n  replicas -1\r\n}\r\n";
    let err = spec::load_str("t.kdl", text.as_bytes()).unwrap_err();
    assert_eq!((err[0].line, err[0].column), (6, 12), "{}", err[0]);
    assert!(!err[0].snippet.as_deref().unwrap_or_default().contains('\r'));
}

#[test]
fn kdl_1_files_are_refused_with_what_changed() {
    let text = b"apiVersion \"pgdba/v1\"\nkind Cluster\nmetadata name=a\nspec {\n  provider { local {}; }\n  replicas 0\n  postgres { parameters fsync=false; }\n}\n";
    let err = spec::load_str("v1.kdl", text).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!((err[0].line, err[0].column), (7, 31), "{}", err[0]);
    assert!(err[0].message.contains("KDL 2 writes #false"), "{}", err[0]);
}

#[test]
fn discover_finds_kdl_specs_beside_yaml_ones() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "b.kdl",
        "a.yaml",
        "C.KDL",
        ".hidden.kdl",
        "notes.txt",
        "kdl",
    ] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    std::fs::create_dir(dir.path().join("sub.kdl")).unwrap();
    let names: Vec<String> = spec::discover(dir.path())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["C.KDL", "a.yaml", "b.kdl"]);
    let empty = tempfile::tempdir().unwrap();
    let err = spec::discover(empty.path()).unwrap_err();
    assert!(err.message.contains("*.kdl"), "{err}");
}

#[test]
fn malformed_kdl_never_panics_and_is_always_positioned() {
    let cases: &[&[u8]] = &[
        b"",
        b"{",
        b"}",
        b"\"",
        b"a \"",
        b"a \"\"\"\n",
        b"a #\"x",
        b"a /* never closed",
        b"a (",
        b"(a",
        b"a=",
        b"a 1 2 {",
        b"- - - -",
        b"/-",
        b"/- /- a",
        b"a \\",
        b"a 0x",
        b"a 1.",
        b"a .5",
        b"a #",
        b"a ##\"x\"#",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"a \xc3",
        b"\x00\x01\x02",
        "a \u{2028} b".as_bytes(),
        "a \u{200e}b".as_bytes(),
        "\u{feff}\u{feff}a 1".as_bytes(),
    ];
    for input in cases {
        if let Err(diags) = spec::load_str("malformed.kdl", input) {
            assert!(!diags.is_empty(), "{input:?}");
            for d in &diags {
                assert!(d.line >= 1 && d.column >= 1, "{d} for {input:?}");
                assert!(!d.message.is_empty(), "{input:?}");
            }
        }
    }
}
