//! Data-driven tests of the pure core: a spec and an observed cluster go in, the rendered plan
//! comes out and is compared with a checked-in file under tests/golden/. No server runs here.
//! `PGDBA_BLESS=1 cargo test --test integration plan_golden` rewrites the expected files after a deliberate
//! change; review the diff before committing it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pgdba::diff::Managed;
use pgdba::observe::model::{
    Dcs, InventoryMember, Member, Observation, ObservedDatabase, ObservedExtension, ObservedRole,
    PatroniMember, PatroniView, PgSetting, Role, SqlObjects,
};
use pgdba::output::plan::{dot, table};
use pgdba::plan::{self, ActionKind, Plan};
use pgdba::providers::Topology;
use pgdba::spec::model::ClusterSpec;

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

fn topology(s: &ClusterSpec) -> Topology {
    pgdba::providers::for_spec(s, &pgdba::secret::BackupSecrets::default())
        .topology()
        .clone()
}

/// A running cluster whose DCS holds `params`, with `leader` leading and every member streaming.
fn running(members: &[&str], leader: &str, params: &[(&str, &str)]) -> Observation {
    let config = serde_json::json!({
        "ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576, "failsafe_mode": true,
        "postgresql": { "use_pg_rewind": true, "use_slots": true,
            "parameters": params.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "pg_hba": pgdba::diff::hba::dcs_lines(&spec(BASE), &topology(&spec(BASE)).admit, 0),
            "pg_ident": pgdba::diff::hba::desired_ident() }
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
                postgres_running: true,
                config_current: Some(true),
                access: None,
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
                        hba: Some(default_hba()),
                        role: Some(if *n == leader {
                            Role::Leader
                        } else {
                            Role::Replica
                        }),
                        state: Some("running".to_owned()),
                        replication_state: (*n != leader).then(|| "streaming".to_owned()),
                        auto_conf: Some(BTreeMap::new()),
                        accepts_writes: Some(*n == leader),
                        timeline: Some(1),
                    },
                )
            })
            .collect(),
        sql: Some(catalogs(&[])),
        notes: Vec::new(),
        unreachable: Vec::new(),
        pooler: None,
        backup: None,
    }
}

/// pg_hba_file_rules of a member with pgdba's rules and the default ones.
fn default_hba() -> Vec<pgdba::observe::model::HbaLine> {
    pgdba::diff::hba::desired_rules(&spec(BASE), &topology(&spec(BASE)).admit)
        .iter()
        .map(|l| pgdba::diff::hba::parse_line(l).unwrap())
        .collect()
}

fn observed_role(login: bool) -> ObservedRole {
    ObservedRole {
        login,
        superuser: false,
        createdb: false,
        createrole: false,
        replication: false,
        bypassrls: false,
        inherit: true,
        connection_limit: -1,
        valid_until: None,
        member_of: Vec::new(),
        has_password: login,
        password_matches: None,
        owned_objects: 0,
        privileges: 0,
    }
}

/// The leader's catalogs right after bootstrap (pgdba's roles, the `postgres` database), plus
/// `extra` roles.
fn catalogs(extra: &[(&str, ObservedRole)]) -> SqlObjects {
    let mut roles = BTreeMap::new();
    let mut postgres = observed_role(true);
    postgres.superuser = true;
    postgres.replication = true;
    postgres.password_matches = Some(true);
    roles.insert("postgres".to_owned(), postgres);
    let mut replicator = observed_role(true);
    replicator.replication = true;
    replicator.password_matches = Some(true);
    roles.insert("replicator".to_owned(), replicator);
    let mut rewind = observed_role(true);
    rewind.password_matches = Some(true);
    roles.insert("rewind_user".to_owned(), rewind);
    for (n, r) in extra {
        roles.insert(n.to_string(), r.clone());
    }
    let mut databases = BTreeMap::new();
    databases.insert(
        "postgres".to_owned(),
        ObservedDatabase {
            owner: "postgres".to_owned(),
            encoding: "UTF8".to_owned(),
            collate: "C.UTF-8".to_owned(),
            ctype: "C.UTF-8".to_owned(),
            size_bytes: Some(7_500_000),
            extensions: Some(BTreeMap::from([(
                "plpgsql".to_owned(),
                ObservedExtension {
                    version: "1.0".to_owned(),
                    schema: "pg_catalog".to_owned(),
                    dependent_columns: 0,
                },
            )])),
        },
    );
    SqlObjects {
        roles,
        databases,
        notes: Vec::new(),
        matched: Default::default(),
        archiver: None,
    }
}

const PARAMS: &[(&str, &str)] = &[
    ("max_connections", "100"),
    ("shared_buffers", "128MB"),
    ("work_mem", "4MB"),
];
const THREE: &[&str] = &["demo-0", "demo-1", "demo-2"];

fn build(s: &ClusterSpec, obs: &Observation, managed: &[&str]) -> Plan {
    let managed = Managed {
        parameters: managed.iter().map(|s| s.to_string()).collect(),
        ..Managed::default()
    };
    plan::build(s, &topology(s), &managed, obs)
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

/// Like `check`, for rendered text.
fn check_text(name: &str, rendered: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.md"));
    if std::env::var_os("PGDBA_BLESS").is_some() {
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with PGDBA_BLESS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == rendered,
        "{name}: differs from {}:\n{}",
        path.display(),
        similar::TextDiff::from_lines(expected.as_str(), rendered).unified_diff()
    );
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
        1 + 3 + 5 + 3 + 1,
        "dcs, 3 members, 5 patroni settings, 3 parameters, the HBA rules"
    );
    assert!(ordered(&plan, "create_dcs:etcd", "create_member:demo-0"));
    assert!(ordered(
        &plan,
        "await_healthy:demo-0/created",
        "create_member:demo-1"
    ));
    assert!(ordered(
        &plan,
        "await_healthy:demo-0/created",
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
        ordered(
            &plan,
            "await_healthy:demo-1/restarted",
            "restart_member:demo-2"
        ),
        "one replica at a time, with a gate"
    );
    assert!(ordered(
        &plan,
        "await_healthy:demo-2/restarted",
        "switchover:demo-0"
    ));
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
        vec!["create_member:demo-2", "await_healthy:demo-2/created"]
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
    // Issue 17: but it is shown, as information.
    assert_eq!(
        plan.unmanaged_parameters.get("log_min_duration_statement"),
        Some(&"1s".to_owned())
    );
    assert!(
        table(&plan).contains(
            "pg_parameter.log_min_duration_statement  \"1s\"  set in the DCS outside the spec"
        ),
        "{}",
        table(&plan)
    );
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

/// Turning synchronous replication on in a running cluster whose DCS has never held the key
/// (Patroni reads its absence as off): one DCS patch, no restart, no switchover.
#[test]
fn synchronous_mode_on() {
    let s = spec(&BASE.replace(
        "  replicas: 2\n",
        "  replicas: 2\n  patroni: {synchronous_mode: true}\n",
    ));
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert_eq!(plan.changes.len(), 1, "{}", table(&plan));
    assert_eq!(plan.changes[0].address, "patroni.synchronous_mode");
    assert_eq!(ids(&plan), vec!["patch_config:config"]);
    assert_eq!(plan.summary.restarts, 0);
    check("synchronous_mode_on", &plan);
}

/// The synchronous settings as Patroni reads them from the DCS: an absent key is its default
/// (no change for a spec that leaves them alone), booleans in any of Patroni's spellings.
#[test]
fn synchronous_settings_compare_as_patroni_reads_them() {
    let with_config = |extra: serde_json::Value| {
        let mut obs = running(THREE, "demo-0", PARAMS);
        let config = obs.patroni.as_mut().unwrap().config.as_mut().unwrap();
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        obs
    };
    let on = spec(&BASE.replace(
        "  replicas: 2\n",
        "  replicas: 2\n  patroni: {synchronous_mode: true, synchronous_node_count: 2}\n",
    ));
    // Already on, spelled as patronictl edit-config may leave it.
    let obs =
        with_config(serde_json::json!({"synchronous_mode": "on", "synchronous_node_count": "2"}));
    let plan = build(&on, &obs, &managed_all());
    assert!(plan.is_empty(), "{}", table(&plan));
    // Turned off in the DCS: back on, via the DCS.
    let obs =
        with_config(serde_json::json!({"synchronous_mode": false, "synchronous_node_count": 2}));
    let plan = build(&on, &obs, &managed_all());
    assert_eq!(plan.changes.len(), 1, "{}", table(&plan));
    assert_eq!(plan.changes[0].address, "patroni.synchronous_mode");
    assert_eq!(plan.changes[0].before, Some(serde_json::json!(false)));
    // A spec that leaves it off, a DCS that has it on: off, with the risk said.
    let obs = with_config(serde_json::json!({"synchronous_mode": true}));
    let plan = build(&spec(BASE), &obs, &managed_all());
    assert_eq!(plan.changes.len(), 1, "{}", table(&plan));
    assert_eq!(plan.changes[0].after, Some(serde_json::json!(false)));
    assert!(plan.changes[0].warning.is_some());
    assert_eq!(ids(&plan), vec!["patch_config:config"]);
    // Explicit defaults in the DCS are no change either.
    let obs = with_config(serde_json::json!({
        "synchronous_mode": false, "synchronous_mode_strict": "off", "synchronous_node_count": 1
    }));
    assert!(build(&spec(BASE), &obs, &managed_all()).is_empty());
    // A new cluster bootstraps with what is not Patroni's default, and says so.
    let plan = build(&on, &Observation::default(), &[]);
    let bootstrap: Vec<String> = plan
        .changes
        .iter()
        .map(|c| c.address.to_string())
        .filter(|a| a.starts_with("patroni.synchronous"))
        .collect();
    assert_eq!(
        bootstrap,
        vec!["patroni.synchronous_mode", "patroni.synchronous_node_count"]
    );
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
        vec!["start_member:demo-2", "await_healthy:demo-2/started"]
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

// --- Roles, databases, extensions, HBA (issue 3) -------------------------------------------

const RESOURCES: &str = r#"
  roles:
    - {name: readers}
    - {name: app, login: true, in_roles: [readers], connection_limit: 20, password: {env: APP_PASSWORD}}
  databases:
    - name: appdb
      owner: app
      extensions: [{name: citext}, {name: pgcrypto, schema: public}]
  hba:
    - {type: local, database: all, user: all, method: scram-sha-256}
    - {type: host, database: appdb, user: app, address: 127.0.0.1/32, method: scram-sha-256}
"#;

fn spec_resources(extra: &str) -> ClusterSpec {
    spec(&format!("{BASE}{RESOURCES}{extra}"))
}

fn app_role() -> ObservedRole {
    let mut r = observed_role(true);
    r.connection_limit = 20;
    r.member_of = vec!["readers".to_owned()];
    r.password_matches = Some(true);
    r
}

/// A converged cluster with RESOURCES in place.
fn converged_resources(s: &ClusterSpec) -> Observation {
    let mut obs = running(THREE, "demo-0", PARAMS);
    let mut cat = catalogs(&[("readers", observed_role(false)), ("app", app_role())]);
    cat.databases.insert(
        "appdb".to_owned(),
        ObservedDatabase {
            owner: "app".to_owned(),
            encoding: "UTF8".to_owned(),
            collate: "C.UTF-8".to_owned(),
            ctype: "C.UTF-8".to_owned(),
            size_bytes: Some(8_100_000),
            extensions: Some(BTreeMap::from([
                (
                    "plpgsql".to_owned(),
                    ObservedExtension {
                        version: "1.0".to_owned(),
                        schema: "pg_catalog".to_owned(),
                        dependent_columns: 0,
                    },
                ),
                (
                    "citext".to_owned(),
                    ObservedExtension {
                        version: "1.6".to_owned(),
                        schema: "public".to_owned(),
                        dependent_columns: 0,
                    },
                ),
                (
                    "pgcrypto".to_owned(),
                    ObservedExtension {
                        version: "1.3".to_owned(),
                        schema: "public".to_owned(),
                        dependent_columns: 0,
                    },
                ),
            ])),
        },
    );
    obs.sql = Some(cat);
    let rules = pgdba::diff::hba::desired_rules(s, &topology(s).admit);
    let hba: Vec<_> = rules
        .iter()
        .map(|l| pgdba::diff::hba::parse_line(l).unwrap())
        .collect();
    for m in obs.members.values_mut() {
        m.hba = Some(hba.clone());
    }
    if let Some(c) = obs.patroni.as_mut().and_then(|p| p.config.as_mut()) {
        c["postgresql"]["pg_hba"] =
            serde_json::json!(pgdba::diff::hba::dcs_lines(s, &topology(s).admit, 0));
    }
    obs
}

fn managed_resources() -> Managed {
    Managed {
        parameters: managed_all().iter().map(|s| s.to_string()).collect(),
        roles: ["readers", "app"].iter().map(|s| s.to_string()).collect(),
        databases: ["appdb".to_owned()].into(),
        extensions: BTreeMap::from([(
            "appdb".to_owned(),
            ["citext", "pgcrypto"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )]),
    }
}

fn build_managed(s: &ClusterSpec, obs: &Observation, managed: &Managed) -> Plan {
    plan::build(s, &topology(s), managed, obs)
}

#[test]
fn roles_databases_extensions_and_hba_are_created_in_order() {
    let s = spec_resources("");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    let addresses: Vec<String> = plan.changes.iter().map(|c| c.address.to_string()).collect();
    assert_eq!(
        addresses,
        vec![
            "role.readers",
            "role.app",
            "database.appdb",
            "extension.appdb.citext",
            "extension.appdb.pgcrypto",
            "hba"
        ]
    );
    assert!(
        plan.changes
            .iter()
            .take(5)
            .all(|c| c.apply_via.as_str() == "sql")
    );
    assert!(
        ordered(&plan, "create_role:readers", "create_role:app"),
        "members after their groups"
    );
    assert!(
        ordered(&plan, "create_role:app", "create_database:appdb"),
        "databases after their owner"
    );
    assert!(
        ordered(
            &plan,
            "create_database:appdb",
            "create_extension:appdb.citext"
        ),
        "extensions after their database"
    );
    assert!(
        ordered(&plan, "create_role:app", "patch_config:hba"),
        "HBA after the roles it names"
    );
    assert!(ordered(&plan, "patch_config:hba", "await_hba:demo-1"));
    // The password is a secret reference in the spec and "(sensitive)" in the plan.
    let app = &plan.changes[1];
    assert_eq!(app.after.as_ref().unwrap()["password"], "(sensitive)");
    check("resources_created", &plan);
}

#[test]
fn converged_resources_have_no_changes() {
    let s = spec_resources("");
    let plan = build_managed(&s, &converged_resources(&s), &managed_resources());
    assert!(plan.is_empty(), "{}", table(&plan));
}

#[test]
fn role_drift_and_a_changed_password_are_restored() {
    let s = spec_resources("");
    let mut obs = converged_resources(&s);
    let app = obs.sql.as_mut().unwrap().roles.get_mut("app").unwrap();
    app.superuser = true;
    app.password_matches = Some(false);
    obs.sql
        .as_mut()
        .unwrap()
        .databases
        .get_mut("appdb")
        .unwrap()
        .extensions
        .as_mut()
        .unwrap()
        .remove("citext");
    // Someone took REPLICATION from pgdba's own replication role.
    obs.sql
        .as_mut()
        .unwrap()
        .roles
        .get_mut("replicator")
        .unwrap()
        .replication = false;
    let plan = build_managed(&s, &obs, &managed_resources());
    let addresses: Vec<String> = plan.changes.iter().map(|c| c.address.to_string()).collect();
    assert_eq!(
        addresses,
        vec!["role.replicator", "role.app", "extension.appdb.citext"],
        "{}",
        table(&plan)
    );
    let app = &plan.changes[1];
    assert!(
        app.reason.contains("(sensitive value changed)"),
        "{}",
        app.reason
    );
    assert_eq!(app.before.as_ref().unwrap()["password"], "(sensitive)");
    assert!(plan.changes[0].reason.contains("managed by pgdba"));
    match &plan.action("alter_role:app").unwrap().kind {
        ActionKind::AlterRole {
            attributes,
            password,
            system,
            ..
        } => assert!(*attributes && *password && !*system),
        k => panic!("{k:?}"),
    }
    check("resources_drift", &plan);
}

#[test]
fn a_role_that_leaves_the_spec_is_forgotten_unless_pruned() {
    let s = spec_resources("");
    let mut obs = converged_resources(&s);
    obs.sql
        .as_mut()
        .unwrap()
        .roles
        .insert("old".to_owned(), observed_role(true));
    let mut managed = managed_resources();
    managed.roles.insert("old".to_owned());
    let plan = build_managed(&s, &obs, &managed);
    assert!(plan.changes.is_empty(), "{}", table(&plan));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.forgotten, vec!["role.old"]);
    assert!(table(&plan).contains("role.old") && table(&plan).contains("no longer managed"));
    let pruned = spec_resources("  prune: {roles: true}\n");
    let plan = build_managed(&pruned, &obs, &managed);
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].action, pgdba::diff::ChangeAction::Delete);
    assert!(plan.action("drop_role:old").is_some());
    // A role pgdba never managed is left alone either way.
    let plan = build_managed(&pruned, &obs, &managed_resources());
    assert!(plan.is_empty(), "{}", table(&plan));
}

#[test]
fn dropping_or_recreating_a_database_says_what_is_lost() {
    let s = spec_resources("");
    let mut obs = converged_resources(&s);
    obs.sql.as_mut().unwrap().databases.insert(
        "legacy".to_owned(),
        ObservedDatabase {
            owner: "postgres".to_owned(),
            encoding: "UTF8".to_owned(),
            collate: "C.UTF-8".to_owned(),
            ctype: "C.UTF-8".to_owned(),
            size_bytes: Some(52_428_800),
            extensions: None,
        },
    );
    let mut managed = managed_resources();
    managed.databases.insert("legacy".to_owned());
    let plan = build_managed(&s, &obs, &managed);
    assert_eq!(plan.forgotten, vec!["database.legacy"], "not pruned: kept");
    assert!(plan.data_loss().is_empty());
    let pruned = spec_resources("  prune: {databases: true}\n");
    let plan = build_managed(&pruned, &obs, &managed);
    assert_eq!(
        plan.data_loss(),
        vec!["database legacy and everything in it (50.0 MB)"]
    );
    assert!(table(&plan).contains("! data loss: database legacy"));
    // An encoding change can only be a drop and a create.
    let latin = spec(&format!(
        "{BASE}{}",
        RESOURCES.replace(
            "owner: app",
            "owner: app\n      encoding: LATIN1\n      locale: C"
        )
    ));
    let plan = build_managed(&latin, &converged_resources(&s), &managed_resources());
    let db = plan
        .changes
        .iter()
        .find(|c| c.address == "database.appdb")
        .unwrap();
    assert_eq!(db.action, pgdba::diff::ChangeAction::Replace);
    assert!(db.data_loss.is_some());
    assert!(ordered(
        &plan,
        "drop_database:appdb",
        "create_database:appdb"
    ));
    assert!(ordered(
        &plan,
        "create_database:appdb",
        "create_extension:appdb.citext"
    ));
    check("database_replaced", &plan);
}

#[test]
fn an_hba_file_edited_on_one_member_is_named_and_rewritten() {
    let s = spec_resources("");
    let mut obs = converged_resources(&s);
    obs.members
        .get_mut("demo-2")
        .unwrap()
        .hba
        .as_mut()
        .unwrap()
        .pop();
    let plan = build_managed(&s, &obs, &managed_resources());
    assert_eq!(plan.changes.len(), 1);
    assert!(
        plan.changes[0].reason.contains("on member demo-2"),
        "{}",
        plan.changes[0].reason
    );
    match &plan.action("patch_config:hba").unwrap().kind {
        ActionKind::PatchConfig { patch } => {
            let first = patch["postgresql"]["pg_hba"][0].as_str().unwrap();
            assert!(first.starts_with("# managed by pgdba (rewrite"), "{first}");
        }
        k => panic!("{k:?}"),
    }
}

// --- Markdown for pull requests (issue 4) --------------------------------------------------

#[test]
fn markdown_starts_with_a_primary_restart() {
    // max_connections decreases: the primary restarts first, without a switchover.
    let s = spec_with("max_connections: 100", "max_connections: 50");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    let md = pgdba::output::markdown::render(std::slice::from_ref(&plan));
    let first_risk = md.lines().find(|l| l.starts_with("- ")).unwrap();
    assert!(
        first_risk.starts_with("- **Restarts the primary**: cluster demo: demo-0"),
        "{md}"
    );
    assert!(
        md.contains("| ~ | `pg_parameter.max_connections` | `100` | `50` | restart |"),
        "{md}"
    );
    assert!(md.contains("<details><summary>Full plan"), "{md}");
    // A normal rolling restart switches over first: the switchover is the risk, not a primary restart.
    let s = spec_with("shared_buffers: 128MB", "shared_buffers: 256MB");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    let md = pgdba::output::markdown::render(std::slice::from_ref(&plan));
    assert!(!md.contains("Restarts the primary"), "{md}");
    assert!(
        md.contains("- **Switchover**: cluster demo: demo-0 hands over to demo-1"),
        "{md}"
    );
    check_text("markdown_rolling_restart", &md);
}

#[test]
fn a_huge_markdown_plan_is_cut_below_the_limit() {
    let roles: String = (0..4000)
        .map(|i| format!("    - {{name: role{i:04}, login: true}}\n"))
        .collect();
    let s = spec(&format!("{BASE}  roles:\n{roles}"));
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    assert_eq!(plan.changes.len(), 4000);
    let md = pgdba::output::markdown::render(std::slice::from_ref(&plan));
    assert!(md.len() < 60_000, "{} characters", md.len());
    assert!(md.contains("cut to stay under GitHub's comment limit"));
    assert!(md.starts_with("## pgdba plan\n\n**Risk**: none"));
    // Nothing cut when it fits.
    let small = pgdba::output::markdown::render(std::slice::from_ref(&build(
        &spec(BASE),
        &running(THREE, "demo-0", PARAMS),
        &managed_all(),
    )));
    assert!(!small.contains("cut to stay"));
}

// --- Drift classification (issue 4) --------------------------------------------------------

fn drift_of(
    s: &ClusterSpec,
    obs: &Observation,
    managed: &Managed,
    leader: Option<&str>,
) -> Vec<pgdba::drift::Item> {
    let d = pgdba::diff::diff(&pgdba::diff::Input {
        spec: s,
        topology: &topology(s),
        managed,
        observation: obs,
    });
    pgdba::drift::detect(&d, obs, leader)
}

/// Synchronous replication turned off (or fewer standbys) behind the spec's back weakens what
/// an acknowledged commit means: dangerous. A timing setting changed is benign.
#[test]
fn drift_of_synchronous_replication_is_dangerous_when_it_weakens() {
    use pgdba::drift::Class;
    let s = spec(&BASE.replace(
        "  replicas: 2\n",
        "  replicas: 2\n  patroni: {synchronous_mode: true, synchronous_node_count: 2}\n",
    ));
    let managed = Managed {
        parameters: managed_all().iter().map(|s| s.to_string()).collect(),
        ..Managed::default()
    };
    let with_config = |extra: serde_json::Value| {
        let mut obs = running(THREE, "demo-0", PARAMS);
        let config = obs.patroni.as_mut().unwrap().config.as_mut().unwrap();
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        obs
    };
    let on = serde_json::json!({"synchronous_mode": true, "synchronous_node_count": 2});
    assert!(drift_of(&s, &with_config(on), &managed, Some("demo-0")).is_empty());
    for (config, address) in [
        (
            serde_json::json!({"synchronous_mode": false, "synchronous_node_count": 2}),
            "patroni.synchronous_mode",
        ),
        (
            serde_json::json!({"synchronous_node_count": 2}),
            "patroni.synchronous_mode",
        ),
        (
            serde_json::json!({"synchronous_mode": true, "synchronous_node_count": 1}),
            "patroni.synchronous_node_count",
        ),
    ] {
        let items = drift_of(&s, &with_config(config), &managed, Some("demo-0"));
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].address, address);
        assert_eq!(items[0].class, Class::Dangerous, "{items:?}");
    }
    let items = drift_of(
        &s,
        &with_config(
            serde_json::json!({"synchronous_mode": true, "synchronous_node_count": 2, "loop_wait": 5}),
        ),
        &managed,
        Some("demo-0"),
    );
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].class, Class::Benign);
}

#[test]
fn drift_classifies_what_changed_outside_pgdba() {
    use pgdba::drift::{Class, FailOn};
    let s = spec_resources("");
    let managed = managed_resources();
    assert!(drift_of(&s, &converged_resources(&s), &managed, Some("demo-0")).is_empty());

    // A member stopped by hand: dangerous, from the provider.
    let mut obs = converged_resources(&s);
    obs.inventory[2].running = false;
    obs.members.remove("demo-2");
    if let Some(p) = obs.patroni.as_mut() {
        p.members.retain(|m| m.name != "demo-2");
    }
    let items = drift_of(&s, &obs, &managed, Some("demo-0"));
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (items[0].class, items[0].source.as_str()),
        (Class::Dangerous, "provider")
    );
    assert!(items[0].message.contains("demo-2 is stopped"));

    // A replica that does not stream, as it says itself (not as /cluster, which lags).
    let mut obs = converged_resources(&s);
    obs.members.get_mut("demo-1").unwrap().replication_state = None;
    let items = drift_of(&s, &obs, &managed, Some("demo-0"));
    assert_eq!(items[0].class, Class::Dangerous);
    assert!(
        items[0].message.contains("replication is broken"),
        "{items:?}"
    );
    let mut lagging_listing = converged_resources(&s);
    lagging_listing.patroni.as_mut().unwrap().members[1].state = "running".to_owned();
    assert!(
        drift_of(&s, &lagging_listing, &managed, Some("demo-0")).is_empty(),
        "the live status says it streams"
    );

    // Superuser granted by hand: dangerous; a connection limit changed: benign.
    let mut obs = converged_resources(&s);
    obs.sql
        .as_mut()
        .unwrap()
        .roles
        .get_mut("app")
        .unwrap()
        .superuser = true;
    assert_eq!(
        drift_of(&s, &obs, &managed, Some("demo-0"))[0].class,
        Class::Dangerous
    );
    let mut obs = converged_resources(&s);
    obs.sql
        .as_mut()
        .unwrap()
        .roles
        .get_mut("app")
        .unwrap()
        .connection_limit = 5;
    let items = drift_of(&s, &obs, &managed, Some("demo-0"));
    assert_eq!(
        (items[0].class, items[0].source.as_str()),
        (Class::Benign, "catalog")
    );
    assert!(FailOn::Any.counts(items[0].class) && !FailOn::Dangerous.counts(items[0].class));

    // A member's pg_hba.conf edited by hand: dangerous, and the member is named.
    let mut obs = converged_resources(&s);
    obs.members
        .get_mut("demo-1")
        .unwrap()
        .hba
        .as_mut()
        .unwrap()
        .pop();
    let items = drift_of(&s, &obs, &managed, Some("demo-0"));
    assert_eq!(
        (items[0].class, items[0].source.as_str()),
        (Class::Dangerous, "pg_hba_file_rules")
    );
    assert!(items[0].message.contains("demo-1"));

    // The leader moved: expected, and it never counts.
    let obs = running(THREE, "demo-1", PARAMS);
    let items = drift_of(
        &spec(BASE),
        &obs,
        &Managed {
            parameters: managed_all().iter().map(|s| s.to_string()).collect(),
            ..Managed::default()
        },
        Some("demo-0"),
    );
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].class, Class::Expected);
    assert!(!FailOn::Any.counts(Class::Expected));
}

/// A saved plan is stale when what it touches changed, not when Patroni is still carrying a DCS
/// value that was already there at plan time out to the members.
#[test]
fn a_parameter_fingerprint_ignores_members_catching_up_with_the_dcs() {
    use pgdba::diff::fingerprint::fingerprint;
    let address = "pg_parameter.work_mem";
    let planned = running(&["demo-0", "demo-1"], "demo-0", &[("work_mem", "32MB")]);
    let base = fingerprint(&planned, &address.parse().unwrap());
    // A member still at the old value, then caught up: the same fingerprint.
    let mut lagging = planned.clone();
    let m = lagging.members.get_mut("demo-1").unwrap();
    let w = m.settings.as_mut().unwrap().get_mut("work_mem").unwrap();
    w.setting = "16384".to_owned();
    w.sourcefile = Some("/d/postgresql.conf".to_owned());
    assert_eq!(fingerprint(&lagging, &address.parse().unwrap()), base);
    // The DCS value changed (`patronictl edit-config`): stale.
    let edited = running(&["demo-0", "demo-1"], "demo-0", &[("work_mem", "64MB")]);
    assert_ne!(fingerprint(&edited, &address.parse().unwrap()), base);
    // ALTER SYSTEM on a member, even before a reload applies it: stale.
    let mut altered = planned.clone();
    let m = altered.members.get_mut("demo-1").unwrap();
    m.auto_conf.as_mut().unwrap().insert(
        "work_mem".to_owned(),
        pgdba::observe::model::AutoConf {
            setting: "64MB".to_owned(),
            applied: false,
            error: None,
        },
    );
    assert_ne!(fingerprint(&altered, &address.parse().unwrap()), base);
}

/// An edit of the DCS's pg_hba makes a saved plan that touches HBA stale at once, before any
/// member has reloaded it.
#[test]
fn the_hba_fingerprint_sees_a_dcs_edit_before_the_members_reload() {
    use pgdba::diff::fingerprint::fingerprint;
    let planned = running(THREE, "demo-0", PARAMS);
    let mut edited = planned.clone();
    let config = edited.patroni.as_mut().unwrap().config.as_mut().unwrap();
    config["postgresql"]["pg_hba"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!("host all all 0.0.0.0/0 trust"));
    assert_ne!(
        fingerprint(&edited, &pgdba::diff::Address::Hba),
        fingerprint(&planned, &pgdba::diff::Address::Hba)
    );
}

/// `ALTER SYSTEM SET shared_buffers` on a replica, in `postgresql.auto.conf`.
fn overridden(applied: bool) -> Observation {
    let mut obs = running(THREE, "demo-0", PARAMS);
    let m = obs.members.get_mut("demo-1").unwrap();
    m.auto_conf.as_mut().unwrap().insert(
        "shared_buffers".to_owned(),
        pgdba::observe::model::AutoConf {
            setting: "512MB".to_owned(),
            applied,
            error: None,
        },
    );
    if applied {
        // The member was restarted into it: it runs with 512MB.
        m.settings
            .as_mut()
            .unwrap()
            .get_mut("shared_buffers")
            .unwrap()
            .setting = "65536".to_owned();
    } else {
        // Reloaded, not restarted: PostgreSQL and Patroni say a restart is pending.
        m.pending_restart = true;
        m.pending_restart_reason = vec!["shared_buffers".to_owned()];
    }
    obs
}

/// Issue 17: an override of a restart-only parameter that PostgreSQL does not run with yet is
/// seen (in the file, before any restart) and reset; resetting it also clears the pending
/// restart, so no member is restarted into the override.
#[test]
fn a_pending_override_of_a_restart_parameter_is_reset_without_a_restart() {
    let plan = build(&spec(BASE), &overridden(false), &managed_all());
    assert_eq!(plan.changes.len(), 1, "{}", table(&plan));
    let c = &plan.changes[0];
    assert_eq!(c.address, "override.demo-1.shared_buffers");
    assert_eq!(c.apply_via, pgdba::diff::ApplyVia::Sql);
    assert!(c.reason.contains("waits for a restart"), "{}", c.reason);
    assert!(
        plan.actions
            .iter()
            .all(|a| a.kind != ActionKind::RestartMember),
        "{}",
        table(&plan)
    );
    assert_eq!(plan.summary.restarts, 0);
}

/// Issue 17: an override PostgreSQL runs with, of a parameter that needs a restart, is reset and
/// the member restarted after the reset, in the same apply.
#[test]
fn an_override_in_effect_of_a_restart_parameter_is_reset_then_the_member_restarted() {
    let plan = build(&spec(BASE), &overridden(true), &managed_all());
    assert_eq!(plan.changes.len(), 1, "{}", table(&plan));
    assert_eq!(plan.changes[0].apply_via, pgdba::diff::ApplyVia::Restart);
    assert!(
        position(&plan, "reset_override:demo-1/shared_buffers")
            < position(&plan, "restart_member:demo-1"),
        "{}",
        table(&plan)
    );
    let restart = plan.action("restart_member:demo-1").unwrap();
    assert!(
        restart
            .changes
            .iter()
            .any(|a| a == "override.demo-1.shared_buffers")
    );
    assert_eq!(plan.summary.restarts, 1);
    check("override_restart", &plan);
}

/// Issue 17: the DCS holds the spec's value but a member runs another one (nothing pending,
/// no override): the plan does not call that converged.
#[test]
fn a_member_running_another_value_than_the_dcs_holds_is_not_converged() {
    let mut obs = running(THREE, "demo-0", PARAMS);
    let m = obs.members.get_mut("demo-2").unwrap();
    m.settings
        .as_mut()
        .unwrap()
        .get_mut("work_mem")
        .unwrap()
        .setting = "8192".to_owned();
    let plan = build(&spec(BASE), &obs, &managed_all());
    assert_eq!(plan.changes.len(), 1, "{}", table(&plan));
    let c = &plan.changes[0];
    assert_eq!(c.address, "pg_parameter.work_mem");
    assert!(c.reason.contains("demo-2 runs 8MB"), "{}", c.reason);
    assert!(plan.action("await_config:demo-2").is_some());
    // Pending a restart for it, the member is not a mismatch: the restart is planned instead.
    let mut obs = running(THREE, "demo-0", PARAMS);
    let s = obs
        .members
        .get_mut("demo-2")
        .unwrap()
        .settings
        .as_mut()
        .unwrap();
    let w = s.get_mut("shared_buffers").unwrap();
    w.setting = "32768".to_owned();
    w.pending_restart = true;
    let plan = build(&spec(BASE), &obs, &managed_all());
    assert!(
        plan.changes
            .iter()
            .all(|c| c.address != "pg_parameter.shared_buffers"),
        "{}",
        table(&plan)
    );
}

/// Issue 17, item 13: in the pull-request comment, HBA rules are a list (not one cell of
/// lines joined by a symbol), values read as values (not raw JSON), and a data loss says
/// which flag apply needs.
#[test]
fn markdown_lists_hba_lines_and_says_which_flag_a_data_loss_needs() {
    let s = spec_resources("");
    let plan = build(&s, &running(THREE, "demo-0", PARAMS), &managed_all());
    let md = pgdba::output::markdown::render(std::slice::from_ref(&plan));
    assert!(!md.contains('↵'), "{md}");
    assert!(!md.contains("{\""), "no raw JSON: {md}");
    assert!(
        md.contains("| `hba` | (listed below) | (listed below) |"),
        "{md}"
    );
    assert!(
        md.contains(
            "\n`hba`:\n\n- removed: `host all all 127.0.0.1/32 scram-sha-256`\n- added: `host appdb app 127.0.0.1/32 scram-sha-256`"
        ),
        "{md}"
    );
    check_text("markdown_resources", &md);
    let mut obs = converged_resources(&s);
    obs.sql.as_mut().unwrap().databases.insert(
        "legacy".to_owned(),
        ObservedDatabase {
            owner: "postgres".to_owned(),
            encoding: "UTF8".to_owned(),
            collate: "C.UTF-8".to_owned(),
            ctype: "C.UTF-8".to_owned(),
            size_bytes: Some(52_428_800),
            extensions: None,
        },
    );
    let mut managed = managed_resources();
    managed.databases.insert("legacy".to_owned());
    let plan = build_managed(
        &spec_resources("  prune: {databases: true}\n"),
        &obs,
        &managed,
    );
    let md = pgdba::output::markdown::render(std::slice::from_ref(&plan));
    assert!(
        md.contains(
            "- **Data loss** (apply needs `--allow-data-loss`): cluster demo: database legacy"
        ),
        "{md}"
    );
}
