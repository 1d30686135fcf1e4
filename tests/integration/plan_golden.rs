//! Data-driven tests of the pure core: a spec and an observed cluster go in, the rendered plan
//! comes out and is compared with a checked-in file under tests/golden/. No server runs here.
//! `PGDBA_BLESS=1 cargo test --test integration plan_golden` rewrites the expected files after a deliberate
//! change; review the diff before committing it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pgdba::observe::model::{
    Dcs, InventoryMember, Member, Observation, PatroniMember, PatroniView, PgSetting, Role,
};
use pgdba::output::plan::{dot, table};
use pgdba::plan::{self, ActionKind, Plan};
use pgdba::providers::local::layout::Layout;
use pgdba::spec::model::{ClusterSpec, Provider};

const BASE: &str = r#"
apiVersion: pgdba/v1
kind: Cluster
metadata: {name: demo}
spec:
  provider:
    local: {data_dir: /srv/pgdba/demo}
  postgres:
    version: 15
    parameters: {max_connections: 100, shared_buffers: 128MB, work_mem: 4MB}
  replicas: 2
"#;

fn spec(yaml: &str) -> ClusterSpec {
    pgdba::spec::load_str("test.yaml", yaml.as_bytes()).unwrap_or_else(|d| panic!("{d:?}"))
}

/// BASE with one line replaced.
fn spec_with(from: &str, to: &str) -> ClusterSpec {
    assert!(BASE.contains(from), "{from}");
    spec(&BASE.replace(from, to))
}

fn layout(s: &ClusterSpec) -> Layout {
    let Provider::Local(l) = &s.spec.provider;
    Layout::new(s, l)
}

/// A running cluster whose DCS holds `params`, with `leader` leading and every member streaming.
fn running(members: &[&str], leader: &str, params: &[(&str, &str)]) -> Observation {
    let config = serde_json::json!({
        "ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576,
        "postgresql": { "use_pg_rewind": true, "use_slots": true,
            "parameters": params.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>() }
    });
    let pm = members
        .iter()
        .enumerate()
        .map(|(i, n)| PatroniMember {
            name: n.to_string(),
            role: if *n == leader {
                Role::Leader
            } else {
                Role::Replica
            },
            state: if *n == leader { "running" } else { "streaming" }.to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 15432 + i as u16,
            api_url: format!("http://127.0.0.1:{}", 18008 + i),
            lag: if *n == leader { None } else { Some(0) },
            pending_restart: false,
            timeline: Some(1),
        })
        .collect();
    let settings: BTreeMap<String, PgSetting> = params
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                PgSetting {
                    name: k.to_string(),
                    setting: v.to_string(),
                    unit: None,
                    context: "user".to_owned(),
                    source: "configuration file".to_owned(),
                    sourcefile: None,
                    pending_restart: false,
                },
            )
        })
        .collect();
    Observation {
        cluster: "demo".to_owned(),
        dcs: Dcs {
            endpoint: "http://127.0.0.1:12379".to_owned(),
            exists: true,
            running: true,
            healthy: true,
        },
        inventory: members
            .iter()
            .map(|n| InventoryMember {
                name: n.to_string(),
                exists: true,
                running: true,
            })
            .collect(),
        patroni: Some(PatroniView {
            members: pm,
            config: Some(config),
        }),
        members: members
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    Member {
                        name: n.to_string(),
                        api_reachable: true,
                        settings: Some(settings.clone()),
                        pending_restart: false,
                        pending_restart_reason: Vec::new(),
                    },
                )
            })
            .collect(),
        notes: Vec::new(),
    }
}

const PARAMS: &[(&str, &str)] = &[
    ("max_connections", "100"),
    ("shared_buffers", "128MB"),
    ("work_mem", "4MB"),
];
const THREE: &[&str] = &["demo-0", "demo-1", "demo-2"];

fn build(s: &ClusterSpec, obs: &Observation, managed: &[&str]) -> Plan {
    let managed: BTreeSet<String> = managed.iter().map(|s| s.to_string()).collect();
    plan::build(s, &layout(s), &managed, obs)
}

fn managed_all() -> Vec<&'static str> {
    PARAMS.iter().map(|(k, _)| *k).collect()
}

fn check(name: &str, plan: &Plan) {
    let mut rendered = table(plan);
    rendered.push_str("\n--- json ---\n");
    rendered.push_str(&serde_json::to_string_pretty(plan).unwrap());
    rendered.push('\n');
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("PGDBA_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with PGDBA_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != rendered {
        let diff = similar::TextDiff::from_lines(&expected, &rendered);
        panic!(
            "{name}: the plan differs from {}:\n{}",
            path.display(),
            diff.unified_diff()
        );
    }
}

fn ids(plan: &Plan) -> Vec<&str> {
    plan.actions.iter().map(|a| a.id.as_str()).collect()
}

fn position(plan: &Plan, id: &str) -> usize {
    plan.actions
        .iter()
        .position(|a| a.id == id)
        .unwrap_or_else(|| panic!("no action {id} in {:?}", ids(plan)))
}

/// Is `before` an ancestor of `after` in the DAG?
fn ordered(plan: &Plan, before: &str, after: &str) -> bool {
    let mut stack = vec![after.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        let a = plan.action(&id).unwrap();
        for d in &a.depends_on {
            if d == before {
                return true;
            }
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    false
}

#[test]
fn fresh_cluster_bootstraps_the_primary_before_the_replicas() {
    let s = spec(BASE);
    let plan = build(&s, &Observation::default(), &[]);
    assert_eq!(
        plan.summary.add,
        1 + 3 + 4 + 3,
        "dcs, 3 members, 4 patroni settings, 3 parameters"
    );
    assert!(ordered(&plan, "create_dcs:etcd", "create_member:demo-0"));
    assert!(ordered(
        &plan,
        "await_healthy:demo-0",
        "create_member:demo-1"
    ));
    assert!(ordered(
        &plan,
        "await_healthy:demo-0",
        "create_member:demo-2"
    ));
    assert!(
        !ordered(&plan, "create_member:demo-1", "create_member:demo-2"),
        "replicas are created in parallel"
    );
    check("fresh_cluster", &plan);
}

#[test]
fn converged_cluster_has_no_changes() {
    let s = spec(BASE);
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert!(plan.is_empty(), "{}", table(&plan));
    assert!(table(&plan).contains("No changes. The cluster matches the spec."));
}

#[test]
fn units_and_spellings_compare_normalized() {
    // The DCS holds other spellings of the same values.
    let obs = running(
        THREE,
        "demo-0",
        &[
            ("max_connections", "100"),
            ("shared_buffers", "16384"),
            ("work_mem", "4096kB"),
        ],
    );
    let plan = build(&spec(BASE), &obs, &managed_all());
    assert!(plan.is_empty(), "{}", table(&plan));
}

#[test]
fn work_mem_is_a_reload_without_restart() {
    let s = spec_with("work_mem: 4MB", "work_mem: 8MB");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].address, "pg_parameter.work_mem");
    assert_eq!(plan.changes[0].apply_via.as_str(), "reload");
    assert_eq!(plan.summary.restarts, 0);
    assert!(plan.actions.iter().all(|a| a.kind.disruption().is_none()));
    check("work_mem_reload", &plan);
}

#[test]
fn shared_buffers_rolls_replicas_then_switchover_then_old_primary() {
    let s = spec_with("shared_buffers: 128MB", "shared_buffers: 256MB");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert_eq!(plan.changes[0].apply_via.as_str(), "restart");
    assert_eq!(plan.summary.restarts, 3);
    let r1 = position(&plan, "restart_member:demo-1");
    let r2 = position(&plan, "restart_member:demo-2");
    let sw = position(&plan, "switchover:demo-0");
    let r0 = position(&plan, "restart_member:demo-0");
    assert!(r1 < r2 && r2 < sw && sw < r0, "{:?}", ids(&plan));
    assert!(
        ordered(&plan, "await_healthy:demo-1", "restart_member:demo-2"),
        "one replica at a time, with a gate"
    );
    assert!(ordered(&plan, "await_healthy:demo-2", "switchover:demo-0"));
    assert!(ordered(&plan, "switchover:demo-0", "restart_member:demo-0"));
    assert!(
        ordered(&plan, "await_config:demo-1", "restart_member:demo-1"),
        "restart only once the config is there"
    );
    match &plan.action("switchover:demo-0").unwrap().kind {
        ActionKind::Switchover { candidate } => assert_eq!(candidate, "demo-1"),
        k => panic!("{k:?}"),
    }
    check("shared_buffers_rolling_restart", &plan);
}

#[test]
fn max_connections_decrease_restarts_the_primary_first_without_switchover() {
    let s = spec_with("max_connections: 100", "max_connections: 50");
    let plan = build(&s, &running(THREE, "demo-1", PARAMS), &managed_all());
    assert_eq!(plan.summary.switchovers, 0);
    let r1 = position(&plan, "restart_member:demo-1");
    let r0 = position(&plan, "restart_member:demo-0");
    let r2 = position(&plan, "restart_member:demo-2");
    assert!(r1 < r0 && r0 < r2, "leader demo-1 first: {:?}", ids(&plan));
    check("max_connections_decrease", &plan);
}

#[test]
fn max_connections_increase_is_a_normal_rolling_restart() {
    let s = spec_with("max_connections: 100", "max_connections: 200");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert_eq!(plan.summary.switchovers, 1);
    assert!(position(&plan, "restart_member:demo-1") < position(&plan, "restart_member:demo-0"));
}

#[test]
fn fewer_replicas_removes_the_highest_member() {
    let s = spec_with("replicas: 2", "replicas: 1");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert_eq!(plan.summary.destroy, 1);
    assert_eq!(plan.changes[0].address, "member.demo-2");
    assert_eq!(ids(&plan), vec!["delete_member:demo-2"]);
    check("replicas_2_to_1", &plan);
}

#[test]
fn removing_the_leader_switches_over_first() {
    let s = spec_with("replicas: 2", "replicas: 1");
    let plan = build(&s, &running(THREE, "demo-2", PARAMS), &managed_all());
    assert_eq!(plan.changes[0].apply_via.as_str(), "switchover");
    assert!(ordered(&plan, "switchover:demo-2", "delete_member:demo-2"));
    match &plan.action("switchover:demo-2").unwrap().kind {
        ActionKind::Switchover { candidate } => assert_ne!(candidate, "demo-2"),
        k => panic!("{k:?}"),
    }
    check("remove_leader", &plan);
}

#[test]
fn more_replicas_adds_a_member_after_the_config() {
    let s = spec(BASE);
    let plan = build(
        &s,
        &running(&["demo-0", "demo-1"], "demo-0", PARAMS),
        &managed_all(),
    );
    assert_eq!(plan.summary.add, 1);
    assert_eq!(
        ids(&plan),
        vec!["create_member:demo-2", "await_healthy:demo-2"]
    );
}

#[test]
fn a_pending_restart_left_by_a_failed_apply_is_finished() {
    // The DCS already has the new value; demo-0 (leader) and demo-2 still wait for a restart.
    let mut obs = running(
        THREE,
        "demo-0",
        &[
            ("max_connections", "100"),
            ("shared_buffers", "256MB"),
            ("work_mem", "4MB"),
        ],
    );
    for n in ["demo-0", "demo-2"] {
        let m = obs.members.get_mut(n).unwrap();
        m.pending_restart = true;
        m.pending_restart_reason = vec!["shared_buffers".to_owned()];
    }
    let s = spec_with("shared_buffers: 128MB", "shared_buffers: 256MB");
    let plan = build(&s, &obs, &managed_all());
    assert_eq!(plan.changes.len(), 2, "{}", table(&plan));
    assert!(
        plan.action("restart_member:demo-1").is_none(),
        "demo-1 has nothing pending"
    );
    assert!(position(&plan, "restart_member:demo-2") < position(&plan, "switchover:demo-0"));
    assert!(position(&plan, "switchover:demo-0") < position(&plan, "restart_member:demo-0"));
    check("pending_restart_resumed", &plan);
}

#[test]
fn a_parameter_removed_from_the_spec_is_reset() {
    let s = spec(&BASE.replace(", work_mem: 4MB", ""));
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].action, pgdba::diff::ChangeAction::Delete);
    assert_eq!(plan.changes[0].address, "pg_parameter.work_mem");
}

#[test]
fn a_parameter_pgdba_never_managed_is_left_alone() {
    let mut params = PARAMS.to_vec();
    params.push(("log_min_duration_statement", "1s"));
    let plan = build(
        &spec(BASE),
        &running(THREE, "demo-0", &params),
        &managed_all(),
    );
    assert!(plan.is_empty(), "{}", table(&plan));
}

#[test]
fn patroni_settings_change_through_the_dcs() {
    let s = spec(&BASE.replace(
        "  replicas: 2\n",
        "  replicas: 2\n  patroni: {ttl: 40, loop_wait: 10, retry_timeout: 10}\n",
    ));
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].address, "patroni.ttl");
    assert_eq!(ids(&plan), vec!["patch_config:config"]);
}

#[test]
fn a_stopped_member_is_started_and_an_unreachable_one_is_noted() {
    let mut obs = running(THREE, "demo-0", PARAMS);
    obs.inventory[2].running = false;
    if let Some(p) = obs.patroni.as_mut() {
        p.members.retain(|m| m.name != "demo-2");
    }
    obs.members.remove("demo-2");
    obs.notes
        .push("member demo-2 is stopped (its Patroni is not running)".to_owned());
    let plan = build(&spec(BASE), &obs, &managed_all());
    assert_eq!(
        ids(&plan),
        vec!["start_member:demo-2", "await_healthy:demo-2"]
    );
    assert!(table(&plan).contains("note: member demo-2 is stopped"));
}

#[test]
fn dot_output_has_every_action_and_edge() {
    let s = spec_with("shared_buffers: 128MB", "shared_buffers: 256MB");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    let d = dot(std::slice::from_ref(&plan));
    assert!(d.starts_with("digraph pgdba {"));
    for a in &plan.actions {
        assert!(
            d.contains(&format!("\"demo/{}\" [label=", a.id)),
            "{}",
            a.id
        );
    }
    let edges: usize = plan.actions.iter().map(|a| a.depends_on.len()).sum();
    assert_eq!(d.matches(" -> ").count(), edges);
}
