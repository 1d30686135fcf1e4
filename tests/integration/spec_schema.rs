//! `schemas/cluster.schema.json` is the JSON Schema of the spec, checked in for editors and
//! CI pipelines. This test fails when it is out of step with the model; regenerate it with
//! `PGDBA_BLESS=1 cargo test --test integration spec_schema`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn checked_in_schema_matches_the_model() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/cluster.schema.json");
    let mut want = serde_json::to_string_pretty(&pgdba::spec::json_schema()).unwrap();
    want.push('\n');
    if std::env::var_os("PGDBA_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of step with src/spec/model.rs.\n\
         Regenerate it with: PGDBA_BLESS=1 cargo test --test integration spec_schema",
        path.display()
    );
}

#[test]
fn the_schema_accepts_the_demo_spec_as_json() {
    // The schema is usable on its own (e.g. by an editor) for the contract's demo spec.
    let schema = pgdba::spec::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let demo = serde_json::json!({
        "apiVersion": "pgdba/v1",
        "kind": "Cluster",
        "metadata": {"name": "demo", "labels": {"env": "dev"}},
        "spec": {
            "provider": {"local": {}},
            "postgres": {"version": 15, "parameters": {"max_connections": 100, "work_mem": "4MB"}},
            "replicas": 2,
            "patroni": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
        }
    });
    let errors: Vec<String> = validator
        .iter_errors(&demo)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!validator.is_valid(&serde_json::json!({"kind": "Cluster"})));
}
