//! The binary's contract without a running cluster: bad input is a clear error with
//! file:line:column and exit 1 (never a panic), the JSON envelope's shape, refusals and locks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use crate::support::bin;
use serde_json::Value;

struct Dir(tempfile::TempDir);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }
    fn run(&self, args: &[&str]) -> Out {
        let out = Command::new(bin())
            .args(args)
            .env("PGDBA_STATE_DIR", self.0.path().join("state"))
            .current_dir(self.0.path())
            .output()
            .unwrap();
        let o = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_ne!(o.code, 101, "pgdba panicked on {args:?}:\n{}", o.stderr);
        o
    }
}

/// A valid spec on ports nothing listens on; nothing is started by the tests here.
const SPEC: &str = "apiVersion: pgdba/v1\nkind: Cluster\nmetadata:\n  name: cli\nspec:\n  provider:\n    local: {data_dir: /nonexistent/pgdba-cli, pg_port: 24432, api_port: 24008, etcd_port: 24379}\n  postgres:\n    parameters: {work_mem: 4MB}\n  replicas: 1\n";

#[test]
fn malformed_specs_exit_1_with_file_line_column() {
    let d = Dir::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "broken.yaml",
            b"apiVersion: pgdba/v1\nkind: [Cluster\n".to_vec(),
            "broken.yaml:",
        ),
        ("empty.yaml", Vec::new(), "empty.yaml:1:1"),
        (
            "garbage.yaml",
            vec![0xff, 0xfe, 0x00, 0x13, 0x37, 0xc3, 0x28, 0x0a],
            "garbage.yaml:1:",
        ),
        (
            "types.yaml",
            SPEC.replace("replicas: 1", "replicas: two").into_bytes(),
            "types.yaml:10:13",
        ),
        (
            "unknown.yaml",
            SPEC.replace("  replicas: 1", "  replicas: 1\n  replica: 3")
                .into_bytes(),
            "unknown.yaml:11:3",
        ),
        (
            "negative.yaml",
            SPEC.replace("replicas: 1", "replicas: -1").into_bytes(),
            "negative.yaml:10:13",
        ),
    ];
    for (name, bytes, location) in cases {
        let path = d.write(name, &bytes);
        let o = d.run(&["validate", "-f", &path, "--format", "table"]);
        assert_eq!(o.code, 1, "{name}: {}", o.stderr);
        assert!(
            o.stderr.contains(location),
            "{name}: expected {location} in:\n{}",
            o.stderr
        );
        let j = d.run(&["plan", "-f", &path, "--format", "json"]);
        assert_eq!(j.code, 1, "{name}");
        let env = j.json();
        assert_eq!(env["success"], false);
        assert_eq!(env["error"]["code"], "INVALID_SPEC");
        assert!(env["data"]["diagnostics"][0]["line"].as_u64().unwrap() >= 1);
    }
}

/// Issue 9: a PostgreSQL major pgdba does not offer is refused by `validate` with the list of
/// the supported ones, at the version's position; a supported one (17) validates.
#[test]
fn an_unsupported_major_is_refused_with_the_supported_list() {
    let d = Dir::new();
    let spec16 = SPEC.replace("  postgres:\n", "  postgres:\n    version: 16\n");
    let path = d.write("pg16.yaml", spec16.as_bytes());
    let o = d.run(&["validate", "-f", &path, "--format", "table"]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr
            .contains("pg16.yaml:9:14: error: PostgreSQL 16 is not supported (supported: 15, 17)"),
        "{}",
        o.stderr
    );
    let o = d.run(&["validate", "-f", &path, "--format", "json"]);
    assert_eq!(o.code, 1);
    let env = o.json();
    assert_eq!(env["error"]["code"], "INVALID_SPEC");
    let diags = env["data"]["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 1, "{}", o.stdout);
    assert_eq!(
        (diags[0]["line"].as_u64(), diags[0]["column"].as_u64()),
        (Some(9), Some(14))
    );
    let spec17 = SPEC.replace("  postgres:\n", "  postgres:\n    version: 17\n");
    let path = d.write("pg17.yaml", spec17.as_bytes());
    let o = d.run(&["validate", "-f", &path, "--format", "json"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
}

#[test]
fn every_problem_is_reported_at_once() {
    let d = Dir::new();
    let bad = SPEC
        .replace("name: cli", "name: Bad_Name")
        .replace("work_mem: 4MB", "work_mem: 4 parsecs, wrok_mem: 1MB")
        .replace("replicas: 1", "replicas: -2");
    let path = d.write("many.yaml", bad.as_bytes());
    let o = d.run(&["validate", "-f", &path, "--format", "json"]);
    assert_eq!(o.code, 1);
    let diags = o.json()["data"]["diagnostics"].as_array().unwrap().len();
    assert!(diags >= 2, "{}", o.stdout);
}

#[test]
fn a_valid_spec_validates_and_the_envelope_has_its_fields() {
    let d = Dir::new();
    let path = d.write("ok.yaml", SPEC.as_bytes());
    let o = d.run(&["validate", "-f", &path, "--format", "json"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    let env = o.json();
    for key in ["success", "timestamp", "command", "data", "error"] {
        assert!(env.get(key).is_some(), "{key} missing: {env}");
    }
    assert_eq!(env["command"], "validate");
    assert_eq!(env["error"], Value::Null);
    chrono::DateTime::parse_from_rfc3339(env["timestamp"].as_str().unwrap()).unwrap();
    // The example specs validate too.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let o = d.run(&[
        "validate",
        "-f",
        examples.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.code, 0, "{}", o.stdout);
}

#[test]
fn plan_of_a_cluster_that_does_not_exist_creates_everything() {
    let d = Dir::new();
    let path = d.write("new.yaml", SPEC.as_bytes());
    let o = d.run(&[
        "plan",
        "-f",
        &path,
        "--format",
        "json",
        "--detailed-exitcode",
    ]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let c = &o.json()["data"]["clusters"][0];
    assert_eq!(c["name"], "cli");
    assert_eq!(
        c["summary"]["add"],
        1 + 2 + 5 + 1 + 1,
        "dcs, 2 members, 5 patroni settings, 1 parameter, hba"
    );
    let dot = d.run(&["plan", "-f", &path, "--format", "dot"]);
    assert_eq!(dot.code, 0);
    assert!(
        dot.stdout
            .contains("\"cli/create_member:cli-0\" -> \"cli/await_healthy:cli-0/created\""),
        "{}",
        dot.stdout
    );
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let d = Dir::new();
    let path = d.write("new.yaml", SPEC.as_bytes());
    let o = d.run(&["apply", "-f", &path, "--format", "json"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.json()["error"]["code"], "APPROVAL_REQUIRED");
}

/// Issue 19: the lock is the kernel's. A run that holds it (here this test process) refuses
/// another apply, naming it; `unlock --force` refuses to break it while its holder lives,
/// unless `--even-if-alive`, and the holder then knows it lost it. A lock file whose process is
/// gone is no lock.
#[test]
fn a_held_lock_refuses_and_a_dead_ones_file_is_no_lock() {
    let d = Dir::new();
    let path = d.write("locked.yaml", SPEC.as_bytes());
    let store = pgdba::state::StateStore::new(d.0.path().join("state"));
    let guard = store.lock("cli", "apply").unwrap();
    let o = d.run(&["apply", "-f", &path, "--auto-approve", "--format", "json"]);
    assert_eq!(o.code, 1);
    let err = &o.json()["error"];
    assert_eq!(err["code"], "STATE_LOCKED");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    let o = d.run(&["state", "unlock", "cli", "--format", "json"]);
    assert_eq!(o.json()["error"]["code"], "CONFIRMATION_REQUIRED");
    let o = d.run(&["state", "unlock", "cli", "--force", "--format", "json"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert_eq!(o.json()["error"]["code"], "STATE_LOCKED");
    assert!(
        o.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--even-if-alive")
    );
    let o = d.run(&[
        "state",
        "unlock",
        "cli",
        "--force",
        "--even-if-alive",
        "--format",
        "json",
    ]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(o.json()["data"]["removed"]["pid"], std::process::id());
    assert!(guard.check().is_err(), "the holder knows it lost the lock");
    drop(guard);

    // pid 2^22+1 is above Linux's pid_max: no such process holds anything.
    let lock = r#"{"id":"x","owner":"someone","pid":4194305,"host":"HOST","operation":"apply","created_at":"2026-01-01T00:00:00Z"}"#;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    d.write(
        "state/cli.lock",
        lock.replace("HOST", host.trim()).as_bytes(),
    );
    assert!(store.read_lock("cli").unwrap().is_none());
    drop(store.lock("cli", "apply").unwrap());
}

#[test]
fn destroy_is_refused_without_confirm_and_for_production() {
    let d = Dir::new();
    let path = d.write("c.yaml", SPEC.as_bytes());
    let o = d.run(&["destroy", "-f", &path, "--format", "json"]);
    assert_eq!(o.json()["error"]["code"], "CONFIRMATION_REQUIRED");
    let prod = d.write(
        "p.yaml",
        SPEC.replace("name: cli\n", "name: cli\n  labels: {env: production}\n")
            .as_bytes(),
    );
    let o = d.run(&["destroy", "-f", &prod, "--confirm", "--format", "json"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.json()["error"]["code"], "PROTECTED");
    // No state: pgdba did not create it, so it does not destroy it.
    let o = d.run(&["destroy", "-f", &path, "--confirm", "--format", "json"]);
    assert_eq!(o.json()["error"]["code"], "NOT_MANAGED");
}

#[test]
fn a_corrupt_saved_plan_is_an_error_with_position() {
    let d = Dir::new();
    let p = d.write("bad.plan", b"{\"format\": \"pgdba-plan/1\",\n \"plan\": [");
    let o = d.run(&["apply", &p, "--format", "json"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.json()["error"]["code"], "INVALID_PLAN");
    assert!(
        o.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad.plan:2:")
    );
}

#[test]
fn state_list_and_show_on_an_empty_state_dir() {
    let d = Dir::new();
    let o = d.run(&["state", "list", "--format", "json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()["data"]["clusters"], serde_json::json!([]));
    let o = d.run(&["state", "show", "nope", "--format", "json"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.json()["error"]["code"], "NOT_FOUND");
}

#[test]
fn unsupported_formats_are_refused() {
    let d = Dir::new();
    let path = d.write("ok.yaml", SPEC.as_bytes());
    // After the subcommand, --format offers only what the command prints.
    let o = d.run(&["validate", "-f", &path, "--format", "dot"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("invalid value 'dot'")
            && o.stderr.contains("[possible values: json, yaml, table]"),
        "{}",
        o.stderr
    );
    // Before it (as earlier versions took it), the command refuses it.
    let o = d.run(&["--format", "dot", "validate", "-f", &path]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("does not print --format dot"),
        "{}",
        o.stderr
    );
    // The flags the contract calls global still work before the subcommand.
    let o = d.run(&["--format", "json", "validate", "-f", &path]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()["data"]["valid"], true);
}

/// Issue 8, item 1: a command line that cannot be parsed exits 1, never 2 (which scripts read
/// as "changes pending"), with the envelope's USAGE code when the output is JSON.
#[test]
fn a_command_line_that_cannot_be_parsed_is_a_usage_error() {
    let d = Dir::new();
    let path = d.write("ok.yaml", SPEC.as_bytes());
    for args in [
        vec!["plan", "-f", path.as_str(), "--no-such-flag"],
        vec!["plan"],
        vec!["no-such-command"],
        vec!["drift", "-f", path.as_str(), "--fail-on", "sometimes"],
        vec!["state", "show"],
    ] {
        let o = d.run(&args);
        assert_eq!(o.code, 1, "{args:?}: {}{}", o.stdout, o.stderr);
        let env = o.json();
        assert_eq!(env["success"], false, "{args:?}");
        assert_eq!(env["error"]["code"], "USAGE", "{args:?}");
        assert!(
            !env["error"]["message"].as_str().unwrap().contains('\u{1b}'),
            "no terminal colours in JSON"
        );
    }
    let o = d.run(&["plan", "--no-such-flag", "--format", "table"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.is_empty() && o.stderr.contains("--no-such-flag"),
        "{}",
        o.stderr
    );
    assert_eq!(d.run(&["--help"]).code, 0);
    assert_eq!(d.run(&["--version"]).code, 0);
}

/// Issue 17, item 12: every flag and argument of every command says what it is for, and every
/// command says what its exit codes mean.
#[test]
fn help_describes_every_flag_and_the_exit_codes() {
    let d = Dir::new();
    let commands: [&[&str]; 8] = [
        &["validate"],
        &["plan"],
        &["apply"],
        &["drift"],
        &["destroy"],
        &["state", "list"],
        &["state", "show"],
        &["state", "unlock"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let o = d.run(&args);
        assert_eq!(o.code, 0, "{args:?}");
        assert!(
            o.stdout.contains("Exit codes: 0 "),
            "{args:?}:\n{}",
            o.stdout
        );
        // Each option or argument line: the flag column, then a description.
        for line in o.stdout.lines().filter(|l| {
            let t = l.trim_start();
            (t.starts_with('-') || t.starts_with('<') || t.starts_with('[')) && l.starts_with("  ")
        }) {
            let described = line
                .trim_start()
                .split_once("  ")
                .is_some_and(|(_, rest)| !rest.trim().is_empty());
            assert!(described, "{args:?}: no description on {line:?}");
        }
    }
    // Flags appear where they apply.
    let o = d.run(&["validate", "--help"]);
    assert!(!o.stdout.contains("--state-dir") && !o.stdout.contains("--parallelism"));
    let o = d.run(&["apply", "--help"]);
    assert!(o.stdout.contains("--auto-approve") && o.stdout.contains("without asking"));
    let o = d.run(&["plan", "--help"]);
    assert!(o.stdout.contains("a directory: every spec in it (a fleet)"));
}

/// Issue 8, item 15: a saved plan is checked, not trusted. Each hand edit is refused with
/// PLAN_TAMPERED before anything is observed or locked; so is a plan from another state dir,
/// and one whose spec file changed since. (Nothing here is applied for real: the spec's
/// cluster never exists.)
#[test]
fn a_saved_plan_changed_after_it_was_written_is_refused() {
    let d = Dir::new();
    let spec = d.write("p.yaml", SPEC.as_bytes());
    let plan = d.0.path().join("p.plan").display().to_string();
    let o = d.run(&["plan", "-f", &spec, "--out", &plan, "--format", "json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&plan).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "a saved plan is private");
    let original: Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert!(original["signature"].is_string());

    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "an added drop_database action",
            Box::new(|v: &mut Value| {
                v["plan"]["actions"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({
                        "id": "drop_database:postgres", "kind": "drop_database",
                        "target": "database.postgres", "depends_on": [], "changes": []
                    }));
            }),
        ),
        (
            "a removed fingerprint",
            Box::new(|v: &mut Value| {
                let f = v["fingerprints"].as_object_mut().unwrap();
                let k = f.keys().next().unwrap().clone();
                f.remove(&k);
            }),
        ),
        (
            "a changed patch body",
            Box::new(|v: &mut Value| {
                v["spec"]["spec"]["postgres"]["parameters"]["work_mem"] = "64MB".into();
            }),
        ),
        (
            "no signature",
            Box::new(|v: &mut Value| {
                v.as_object_mut().unwrap().remove("signature");
            }),
        ),
    ];
    for (what, edit) in edits {
        let mut v = original.clone();
        edit(&mut v);
        let tampered = d.write("t.plan", &serde_json::to_vec_pretty(&v).unwrap());
        let o = d.run(&["apply", &tampered, "--format", "json"]);
        assert_eq!(o.code, 1, "{what}: {}", o.stdout);
        assert_eq!(
            o.json()["error"]["code"],
            "PLAN_TAMPERED",
            "{what}: {}",
            o.stdout
        );
    }

    // Even signed with the right key (someone who can read the state dir), an action that
    // realizes no change of the plan is refused.
    let key = std::fs::read(d.0.path().join("state/.plan-signing-key")).unwrap();
    let mut saved: pgdba::plan::saved::SavedPlan =
        serde_json::from_value(original.clone()).unwrap();
    let mut extra = saved.plan.actions[0].clone();
    extra.id = "drop_database:postgres".to_owned();
    extra.kind = pgdba::plan::ActionKind::DropDatabase;
    extra.target = "database.postgres".parse().unwrap();
    extra.changes = Vec::new();
    extra.depends_on = Vec::new();
    saved.plan.actions.push(extra);
    saved.sign(&key);
    let resigned = d.write("r.plan", &serde_json::to_vec_pretty(&saved).unwrap());
    let o = d.run(&["apply", &resigned, "--format", "json"]);
    assert_eq!(o.json()["error"]["code"], "PLAN_TAMPERED", "{}", o.stdout);
    assert!(
        o.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("drop_database:postgres realizes no change"),
        "{}",
        o.stdout
    );

    // Another state dir has another key.
    let other = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["apply", &plan, "--format", "json"])
        .env("PGDBA_STATE_DIR", other.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["code"], "PLAN_TAMPERED");

    // The spec file it was made from, changed since.
    d.write(
        "p.yaml",
        SPEC.replace("work_mem: 4MB", "work_mem: 8MB").as_bytes(),
    );
    let o = d.run(&["apply", &plan, "-f", &spec, "--format", "json"]);
    assert_eq!(o.json()["error"]["code"], "STALE_PLAN", "{}", o.stdout);
}

/// Issue 8, item 6: the production guard reads the labels pgdba applied as well as the spec's,
/// in any case, and is lifted only by the flag its hint names.
#[test]
fn the_production_guard_reads_the_applied_labels_too() {
    let d = Dir::new();
    let spec = d.write(
        "prod.yaml",
        SPEC.replace("  name: cli", "  name: cli\n  labels: {ENV: Production}")
            .as_bytes(),
    );
    let o = d.run(&["destroy", "-f", &spec, "--confirm", "--format", "json"]);
    assert_eq!(o.json()["error"]["code"], "PROTECTED", "{}", o.stdout);
    assert!(
        o.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--allow-production")
    );
    // A state whose applied spec says production: removing the label does not lift the guard.
    let store = pgdba::state::StateStore::new(d.0.path().join("state"));
    let mut state = pgdba::state::ClusterState::new("cli", "local");
    let applied: Value = serde_json::to_value(
        pgdba::spec::load_str("x.yaml", std::fs::read(&spec).unwrap().as_slice()).unwrap(),
    )
    .unwrap();
    state.applied_spec = Some(applied);
    store.save(&mut state).unwrap();
    let plain = d.write("plain.yaml", SPEC.as_bytes());
    let o = d.run(&["destroy", "-f", &plain, "--confirm", "--format", "json"]);
    assert_eq!(o.json()["error"]["code"], "PROTECTED", "{}", o.stdout);
}
