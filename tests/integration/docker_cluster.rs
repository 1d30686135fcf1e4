//! The `docker` provider end to end against the Docker engine of this machine: 3 etcd and one
//! container per member of pgdba's node image (`deployments/docker/build.sh 15`), reached from
//! the host through the ports published on loopback that `state show` gives. The lifecycle test
//! walks one cluster through apply, reload and rolling-restart changes, a role, drift of a
//! container stopped by hand and destroy; the others check the subnet refusal and what pgdba
//! does with containers it finds with or without a state.
//!
//! Skipped (with a note on stderr) only when `docker info` fails or the image `pgdba/node:15` is
//! missing; `scripts/test.sh` fails the suite when Docker works and the image is missing. Each
//! test owns a cluster name (`dt...`) and cleans up by label even when it panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Run, all_files, bin, wait_for};

const IMAGE: &str = "pgdba/node:15";
const LABEL_CLUSTER: &str = "io.pgdba.cluster";
const LABEL_ROLE: &str = "io.pgdba.role";
/// The label of what a test makes by hand (never pgdba's), for the cleanup guard.
const LABEL_TEST: &str = "io.pgdba.test";
const PATRONI_YML: &str = "/etc/pgdba/patroni.yml";
/// A spec role's password, given to pgdba through the environment.
const APP_ENV: &str = "PGDBA_TEST_DOCKER_APP_PASSWORD";
const APP_SECRET: &str = "dockerApp-Secret-7e41c9a2b8";

/// Why the Docker tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    let ok = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&["info"]) {
        return Some("`docker info` fails: the Docker engine is not available".to_owned());
    }
    if !ok(&["image", "inspect", IMAGE]) {
        return Some(format!(
            "image {IMAGE} is missing: build it with deployments/docker/build.sh 15"
        ));
    }
    None
}

macro_rules! require_docker {
    ($test:literal) => {
        if let Some(why) = skip_reason() {
            eprintln!("skipping {}: {why}", $test);
            return;
        }
    };
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// `docker ARGS` that must succeed; its stdout, trimmed.
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What carries `label` (`key=value`) on this Docker host: (containers, volumes, networks).
fn labelled(label: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let filter = format!("label={label}");
    (
        lines(&docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Names}}",
        ])),
        lines(&docker_ok(&["volume", "ls", "-q", "--filter", &filter])),
        lines(&docker_ok(&[
            "network",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.Name}}",
        ])),
    )
}

/// Force-removes everything that carries the cluster's label or the test's: on construction
/// (what a crashed earlier run left) and on drop (what a failed assertion left).
struct LabelGuard {
    labels: Vec<String>,
}

impl LabelGuard {
    fn new(name: &str) -> LabelGuard {
        let g = LabelGuard {
            labels: vec![
                format!("{LABEL_CLUSTER}={name}"),
                format!("{LABEL_TEST}={name}"),
            ],
        };
        g.sweep();
        g
    }

    fn sweep(&self) {
        for label in &self.labels {
            let filter = format!("label={label}");
            let run = |args: &[&str]| {
                Command::new("docker")
                    .args(args)
                    .output()
                    .map(|o| lines(&String::from_utf8_lossy(&o.stdout)))
                    .unwrap_or_default()
            };
            let containers = run(&["ps", "-aq", "--filter", &filter]);
            if !containers.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(containers.iter().map(String::as_str));
                run(&args);
            }
            let volumes = run(&["volume", "ls", "-q", "--filter", &filter]);
            if !volumes.is_empty() {
                let mut args = vec!["volume", "rm", "-f"];
                args.extend(volumes.iter().map(String::as_str));
                run(&args);
            }
            let networks = run(&["network", "ls", "-q", "--filter", &filter]);
            if !networks.is_empty() {
                let mut args = vec!["network", "rm"];
                args.extend(networks.iter().map(String::as_str));
                run(&args);
            }
        }
    }
}

impl Drop for LabelGuard {
    fn drop(&mut self) {
        self.sweep();
    }
}

/// One test's Docker cluster: a temp dir with the spec and the state dir, the transcript of
/// every pgdba run (for the secrets check). Dropping it destroys the cluster, then sweeps by
/// label.
struct DockerCluster {
    name: String,
    dir: tempfile::TempDir,
    spec: PathBuf,
    state_dir: PathBuf,
    transcript: std::cell::RefCell<String>,
    envs: Vec<(String, String)>,
    // Last: dropped after `Drop for DockerCluster` has run pgdba's destroy.
    _guard: LabelGuard,
}

impl DockerCluster {
    fn new(name: &str) -> DockerCluster {
        let guard = LabelGuard::new(name);
        let dir = tempfile::Builder::new()
            .prefix(&format!("pgdba-{name}-"))
            .tempdir()
            .unwrap();
        DockerCluster {
            name: name.to_owned(),
            spec: dir.path().join(format!("{name}.yaml")),
            state_dir: dir.path().join("state"),
            dir,
            transcript: Default::default(),
            envs: vec![(APP_ENV.to_owned(), APP_SECRET.to_owned())],
            _guard: guard,
        }
    }

    /// The example's spec (`examples/docker-3node.yaml`) under this test's name, with these
    /// replicas, `provider.docker` section, parameters and `extra` YAML under `spec:`.
    fn spec_text(
        &self,
        replicas: u32,
        docker: &str,
        params: &[(&str, &str)],
        extra: &str,
    ) -> String {
        let params: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("      {k}: {v}"))
            .collect();
        format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata:\n  name: {name}\n  labels:\n    env: dev\nspec:\n  provider:\n    docker: {docker}\n  postgres:\n    version: 15\n    parameters:\n{params}\n  replicas: {replicas}\n  patroni:\n    ttl: 30\n    loop_wait: 10\n    retry_timeout: 10\n{extra}",
            name = self.name,
            params = params.join("\n"),
        )
    }

    fn write_spec(&self, replicas: u32, params: &[(&str, &str)], extra: &str) {
        std::fs::write(&self.spec, self.spec_text(replicas, "{}", params, extra)).unwrap();
    }

    /// The last lines of every container of the cluster (Patroni's log and PostgreSQL's), on
    /// stderr: what a failed test shows of what happened inside.
    fn print_logs(&self) {
        let filter = format!("label={LABEL_CLUSTER}={}", self.name);
        let names = Command::new("docker")
            .args(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
            .output()
            .map(|o| lines(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_default();
        for name in names {
            if let Ok(o) = Command::new("docker")
                .args(["logs", "--timestamps", "--tail", "80", &name])
                .output()
            {
                eprintln!(
                    "--- docker logs {name}\n{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }

    fn spec_str(&self) -> &str {
        self.spec.to_str().unwrap()
    }

    fn command_in(&self, state_dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("PGDBA_STATE_DIR", state_dir)
            .env_remove("PGDBA_LOG")
            .current_dir(self.dir.path())
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        c
    }

    fn record(&self, args: &[&str], out: &Output) -> Run {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_ne!(run.code, 101, "pgdba panicked on {args:?}: {run:?}");
        self.transcript.borrow_mut().push_str(&format!(
            "$ pgdba {}\n{}\n{}\n",
            args.join(" "),
            run.stdout,
            run.stderr
        ));
        run
    }

    /// Run pgdba with this test's state dir and wait for it.
    fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.state_dir, args)
    }

    /// Run pgdba with another state dir.
    fn run_in(&self, state_dir: &Path, args: &[&str]) -> Run {
        let out = self.command_in(state_dir, args).output().unwrap();
        self.record(args, &out)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command_in(&self.state_dir, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn apply(&self) -> Value {
        let r = self.run(&[
            "apply",
            "-f",
            self.spec_str(),
            "--auto-approve",
            "--format",
            "json",
        ]);
        assert_eq!(r.code, 0, "apply failed: {r:?}");
        let v = r.json();
        assert_eq!(v["success"], true, "{v:#}");
        v
    }

    fn plan_json(&self) -> (i32, Value) {
        let r = self.run(&[
            "plan",
            "-f",
            self.spec_str(),
            "--format",
            "json",
            "--detailed-exitcode",
        ]);
        assert!(r.code == 0 || r.code == 2, "{r:?}");
        (r.code, r.json())
    }

    fn drift(&self) -> (i32, Value) {
        let r = self.run(&["drift", "-f", self.spec_str(), "--format", "json"]);
        assert!(r.code == 0 || r.code == 2, "{r:?}");
        (r.code, r.json())
    }

    /// A password pgdba generated for this cluster, from its 0600 secrets file.
    fn secret(&self, field: &str) -> String {
        let path = self.state_dir.join(format!("{}.secrets.json", self.name));
        let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        v[field].as_str().unwrap().to_owned()
    }

    /// (name, host, port) of every member, from `state show`.
    fn members(&self) -> Vec<(String, String, u16)> {
        let r = self.run(&["state", "show", &self.name, "--format", "json"]);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()["data"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["host"].as_str().unwrap().to_owned(),
                    u16::try_from(m["port"].as_u64().unwrap()).unwrap(),
                )
            })
            .collect()
    }

    fn port_of(&self, member: &str) -> u16 {
        self.members()
            .into_iter()
            .find(|m| m.0 == member)
            .unwrap_or_else(|| panic!("{member} not in the state"))
            .2
    }

    /// This cluster's running containers as (role label, container name).
    fn running(&self) -> Vec<(String, String)> {
        let out = docker_ok(&[
            "ps",
            "--filter",
            &format!("label={LABEL_CLUSTER}={}", self.name),
            "--filter",
            "status=running",
            "--format",
            &format!("{{{{.Label \"{LABEL_ROLE}\"}}}} {{{{.Names}}}}"),
        ]);
        lines(&out)
            .iter()
            .map(|l| {
                let (role, name) = l.split_once(' ').unwrap();
                (role.to_owned(), name.to_owned())
            })
            .collect()
    }

    /// `patronictl list` as JSON, run inside a running member container (what a DBA would do).
    fn patronictl_list(&self) -> Vec<Value> {
        let container = self
            .running()
            .into_iter()
            .find(|(role, _)| role == "member")
            .expect("no member container runs")
            .1;
        let out = docker_ok(&[
            "exec",
            &container,
            "patronictl",
            "-c",
            PATRONI_YML,
            "list",
            "-f",
            "json",
        ]);
        serde_json::from_str(&out).unwrap()
    }

    /// Leader and streaming replicas once Patroni's listing shows `members` members, one
    /// leader and every other one streaming.
    fn settled(&self, members: usize) -> (String, Vec<String>) {
        wait_for(
            "patronictl list to show a leader and every replica streaming",
            Duration::from_secs(90),
            || {
                let list = self.patronictl_list();
                let leader = list
                    .iter()
                    .filter(|m| m["Role"] == "Leader")
                    .map(|m| m["Member"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>();
                let streaming: Vec<String> = list
                    .iter()
                    .filter(|m| m["Role"] == "Replica" && m["State"] == "streaming")
                    .map(|m| m["Member"].as_str().unwrap().to_owned())
                    .collect();
                (list.len() == members && leader.len() == 1 && streaming.len() == members - 1)
                    .then(|| (leader[0].clone(), streaming))
            },
        )
    }

    /// psql over TCP to a published port as `user`; `Err` with psql's stderr.
    fn sql_as(&self, port: u16, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// psql as pgdba's superuser (its password from the secrets file) on a published port.
    fn sql(&self, port: u16, sql: &str) -> String {
        self.sql_as(port, "postgres", &self.secret("superuser_password"), sql)
            .unwrap_or_else(|e| panic!("psql on port {port}: {sql}: {e}"))
    }

    /// The answer of `sql` on every member, through its published port.
    fn everywhere(&self, sql: &str) -> Vec<String> {
        self.members()
            .iter()
            .map(|(_, _, port)| self.sql(*port, sql))
            .collect()
    }

    fn show_everywhere(&self, setting: &str) -> Vec<String> {
        self.everywhere(&format!("SHOW {setting}"))
    }

    /// Everything pgdba created for this cluster is gone.
    fn assert_nothing_left(&self) {
        let left = labelled(&format!("{LABEL_CLUSTER}={}", self.name));
        assert_eq!(
            left,
            (vec![], vec![], vec![]),
            "(containers, volumes, networks) with the cluster's label"
        );
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        if self.state_dir.join(format!("{}.json", self.name)).exists() {
            let _ = self
                .command_in(
                    &self.state_dir,
                    &[
                        "destroy",
                        "-f",
                        self.spec_str(),
                        "--confirm",
                        "--format",
                        "json",
                    ],
                )
                .output();
        }
    }
}

const PARAMS: &[(&str, &str)] = &[
    ("max_connections", "100"),
    ("shared_buffers", "128MB"),
    ("work_mem", "4MB"),
];

fn cluster_of(v: &Value) -> &Value {
    &v["data"]["clusters"][0]
}

fn action_ids(plan: &Value) -> Vec<String> {
    cluster_of(plan)["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn position(ids: &[String], id: &str) -> usize {
    ids.iter()
        .position(|x| x == id)
        .unwrap_or_else(|| panic!("{id} not in {ids:?}"))
}

#[test]
fn docker_cluster_lifecycle() {
    require_docker!("docker_cluster_lifecycle");
    let t = DockerCluster::new("dtlife");
    t.write_spec(2, PARAMS, "");

    // From nothing: 3 etcd and 3 member containers and PgBouncer (the docker provider's
    // default), one leader and two streaming replicas as Patroni inside a member reports.
    t.apply();
    let mut running = t.running();
    running.sort();
    let roles: Vec<&str> = running.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        roles,
        [
            "etcd",
            "etcd",
            "etcd",
            "member",
            "member",
            "member",
            "pgbouncer"
        ],
        "{running:?}"
    );
    let (leader, streaming) = t.settled(3);
    assert_eq!(streaming.len(), 2);

    // `state show` gives addresses that work from the host: write on the leader's published
    // port, read it back on each replica's.
    let members = t.members();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.1 == "127.0.0.1"), "{members:?}");
    let leader_port = t.port_of(&leader);
    assert_eq!(t.sql(leader_port, "SELECT pg_is_in_recovery()"), "f");
    t.sql(
        leader_port,
        "CREATE TABLE docker_probe (v text); INSERT INTO docker_probe VALUES ('written on the leader')",
    );
    for (name, _, port) in members.iter().filter(|m| m.0 != leader) {
        assert_eq!(t.sql(*port, "SELECT pg_is_in_recovery()"), "t", "{name}");
        let got = wait_for("the row on a replica", Duration::from_secs(30), || {
            t.sql_as(
                *port,
                "postgres",
                &t.secret("superuser_password"),
                "SELECT v FROM docker_probe",
            )
            .ok()
            .filter(|v| !v.is_empty())
        });
        assert_eq!(got, "written on the leader", "{name}");
    }

    // Converged: nothing to do.
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    assert!(cluster_of(&plan)["changes"].as_array().unwrap().is_empty());

    // work_mem: a reload, no restart anywhere.
    let started = t.everywhere("SELECT pg_postmaster_start_time()");
    let params = [PARAMS[0], PARAMS[1], ("work_mem", "8MB")];
    t.write_spec(2, &params, "");
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    let changes = cluster_of(&plan)["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["address"], "pg_parameter.work_mem");
    assert_eq!(changes[0]["apply_via"], "reload");
    assert_eq!(cluster_of(&plan)["summary"]["restarts"], 0);
    t.apply();
    assert_eq!(t.show_everywhere("work_mem"), vec!["8MB"; 3]);
    assert_eq!(
        t.everywhere("SELECT pg_postmaster_start_time()"),
        started,
        "a reload-only change restarted a member"
    );
    assert_eq!(t.plan_json().0, 0);

    // shared_buffers: a rolling restart, the replicas, a switchover, then the old primary.
    let params = [PARAMS[0], ("shared_buffers", "256MB"), ("work_mem", "8MB")];
    t.write_spec(2, &params, "");
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(cluster_of(&plan)["changes"][0]["apply_via"], "restart");
    let replicas: Vec<String> = members
        .iter()
        .map(|m| m.0.clone())
        .filter(|m| *m != leader)
        .collect();
    let applied = t.apply();
    let done: Vec<String> = applied["data"]["result"]["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let switchover = position(&done, &format!("switchover:{leader}"));
    for r in &replicas {
        assert!(
            position(&done, &format!("restart_member:{r}")) < switchover,
            "{done:?}"
        );
    }
    assert!(
        switchover < position(&done, &format!("restart_member:{leader}")),
        "{done:?}"
    );
    assert_eq!(t.show_everywhere("shared_buffers"), vec!["256MB"; 3]);
    let (new_leader, streaming) = t.settled(3);
    assert_ne!(
        new_leader, leader,
        "the leader moved during the rolling restart"
    );
    assert_eq!(streaming.len(), 2);
    assert_eq!(t.plan_json().0, 0);

    // A role with a password from the environment: created, and it logs in on the leader's
    // published port (and not with another password).
    let roles =
        format!("  roles:\n    - {{name: app, login: true, password: {{env: {APP_ENV}}}}}\n");
    t.write_spec(2, &params, &roles);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(
        cluster_of(&plan)["changes"][0]["address"],
        "role.app",
        "{plan:#}"
    );
    let saved = t.dir.path().join("role.plan");
    let r = t.run(&[
        "plan",
        "-f",
        t.spec_str(),
        "--out",
        saved.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = t.run(&["apply", saved.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let leader_port = t.port_of(&new_leader);
    assert_eq!(
        t.sql_as(leader_port, "app", APP_SECRET, "SELECT current_user"),
        Ok("app".to_owned())
    );
    assert!(
        t.sql_as(leader_port, "app", "not-the-password", "SELECT 1")
            .is_err()
    );
    assert_eq!(t.plan_json().0, 0);

    // No drift after an apply.
    let (code, drift) = t.drift();
    assert_eq!(code, 0, "{drift:#}");
    assert!(
        cluster_of(&drift)["drift"].as_array().unwrap().is_empty(),
        "{drift:#}"
    );

    // A member container stopped by hand: drift reports it, plan starts it, apply brings it
    // back streaming.
    let stopped = streaming[0].clone();
    docker_ok(&["stop", &format!("pgdba-{stopped}")]);
    let (code, drift) = t.drift();
    assert_eq!(code, 2, "{drift:#}");
    let address = format!("member.{stopped}");
    assert!(
        cluster_of(&drift)["drift"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["address"] == address.as_str()),
        "{drift:#}"
    );
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert!(
        action_ids(&plan).contains(&format!("start_member:{stopped}")),
        "{plan:#}"
    );
    t.apply();
    let (leader, _) = t.settled(3);
    assert_eq!(t.plan_json().0, 0);
    assert_eq!(t.drift().0, 0);

    // PgBouncer: another pool mode replaces it; the role logs in through it and writes on the
    // leader; after a switchover it points at the new leader by itself.
    let pooled = format!("{roles}  pooler:\n    pgbouncer:\n      pool_mode: session\n");
    t.write_spec(2, &params, &pooled);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert!(
        action_ids(&plan).contains(&"create_pooler:pgbouncer".to_owned()),
        "{plan:#}"
    );
    t.apply();
    assert!(
        t.running().iter().any(|(role, _)| role == "pgbouncer"),
        "{:?}",
        t.running()
    );
    let r = t.run(&["state", "show", &t.name, "--format", "json"]);
    let pooler_port = r.json()["data"]["pooler"]["port"].as_u64().unwrap() as u16;
    let ip_of = |member: &str| {
        docker_ok(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &format!("pgdba-{member}"),
        ])
        .trim()
        .to_owned()
    };
    let write = "CREATE TEMP TABLE w (x int); INSERT INTO w VALUES (1); SELECT host(inet_server_addr()) || ',' || count(*) FROM w";
    assert_eq!(
        t.sql_as(pooler_port, "app", APP_SECRET, write),
        Ok(format!("{},1", ip_of(&leader)))
    );
    assert!(
        t.sql_as(pooler_port, "app", "not-the-password", "SELECT 1")
            .is_err()
    );
    let candidate = t
        .running()
        .into_iter()
        .filter(|(role, _)| role == "member")
        .map(|(_, c)| c.trim_start_matches("pgdba-").to_owned())
        .find(|m| *m != leader)
        .unwrap();
    docker_ok(&[
        "exec",
        &format!("pgdba-{leader}"),
        "patronictl",
        "-c",
        "/etc/pgdba/patroni.yml",
        "switchover",
        &t.name,
        "--leader",
        &leader,
        "--candidate",
        &candidate,
        "--force",
    ]);
    let want = format!("{},1", ip_of(&candidate));
    wait_for(
        "PgBouncer on the new leader",
        Duration::from_secs(60),
        || {
            (t.sql_as(pooler_port, "app", APP_SECRET, write).ok() == Some(want.clone()))
                .then_some(())
        },
    );
    t.settled(3);
    assert_eq!(t.plan_json().0, 0);

    // No secret in clear: not in any output, file of the state dir (but the 0600 secrets file),
    // saved plan or container's configuration as `docker inspect` shows it.
    let r = t.run(&["plan", "-f", t.spec_str(), "-vv", "--format", "table"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = t.run(&["state", "show", &t.name, "-vv", "--format", "yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    let generated: Vec<String> = [
        "superuser_password",
        "replication_password",
        "rewind_password",
        "restapi_password",
        "etcd_password",
        "pooler_password",
    ]
    .iter()
    .map(|f| t.secret(f))
    .collect();
    let mut texts = vec![("pgdba's output".to_owned(), t.transcript.borrow().clone())];
    for f in all_files(&t.state_dir).into_iter().chain([saved]) {
        if f.display().to_string().ends_with(".secrets.json") {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        texts.push((
            f.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (_, container) in t.running() {
        texts.push((
            format!("docker inspect {container}"),
            docker_ok(&["inspect", &container]),
        ));
    }
    for (what, text) in &texts {
        assert!(
            !text.contains(APP_SECRET),
            "the role's secret appears in {what}"
        );
        for p in &generated {
            assert!(
                !text.contains(p.as_str()),
                "a generated password appears in clear in {what}"
            );
        }
    }

    // Destroy: no container, volume or network with the cluster's label is left.
    let r = t.run(&[
        "destroy",
        "-f",
        t.spec_str(),
        "--confirm",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    t.assert_nothing_left();
    assert!(!t.state_dir.join("dtlife.json").exists());
}

#[test]
fn docker_subnet_overlap_and_invalid_subnet_are_refused() {
    require_docker!("docker_subnet_overlap_and_invalid_subnet_are_refused");
    let t = DockerCluster::new("dtoverlap");
    // A network made by hand (not pgdba's: it carries only the test's label).
    let squatter = "dtoverlap-squatter";
    docker_ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.7.0/24",
        "--label",
        &format!("{LABEL_TEST}=dtoverlap"),
        squatter,
    ]);
    std::fs::write(
        &t.spec,
        t.spec_text(2, "{subnet: 10.231.7.0/25}", PARAMS, ""),
    )
    .unwrap();
    let r = t.run(&["plan", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = r.json();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(squatter) && message.contains("10.231.7.0/25"),
        "{message}"
    );
    // Refused before anything was created, and no state either.
    t.assert_nothing_left();
    assert!(!t.state_dir.join("dtoverlap.json").exists());
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(squatter),
        "{r:?}"
    );
    t.assert_nothing_left();
    assert!(!t.state_dir.join("dtoverlap.json").exists());

    // Not a CIDR: `validate` says where.
    std::fs::write(&t.spec, t.spec_text(2, "{subnet: 10.1.2.3/33}", PARAMS, "")).unwrap();
    let r = t.run(&["validate", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let diags = r.json()["data"]["diagnostics"].as_array().unwrap().clone();
    assert_eq!(diags.len(), 1, "{diags:?}");
    let text = t.spec_text(2, "{subnet: 10.1.2.3/33}", PARAMS, "");
    let line = text
        .lines()
        .position(|l| l.contains("10.1.2.3/33"))
        .unwrap()
        + 1;
    let column = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("10.1.2.3/33")
        .unwrap()
        + 1;
    assert_eq!(diags[0]["line"], line, "{diags:?}");
    assert_eq!(diags[0]["column"], column, "{diags:?}");
    assert!(
        diags[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("dtoverlap.yaml")
    );
    assert!(
        diags[0]["message"]
            .as_str()
            .unwrap()
            .contains("spec.provider.docker.subnet"),
        "{diags:?}"
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("dtoverlap.yaml:{line}:{column}")),
        "{r:?}"
    );
}

/// What pgdba does with containers it finds: after an apply killed part-way, the next apply
/// adopts what exists by label (nothing twice); without a state for the cluster (another
/// state dir, or its state file gone), every command refuses, as `local` does
/// (`EXISTS_UNMANAGED`), and touches nothing.
#[test]
fn docker_adopts_by_label_and_refuses_without_state() {
    require_docker!("docker_adopts_by_label_and_refuses_without_state");
    let t = DockerCluster::new("dtadopt");
    t.write_spec(1, PARAMS, "");

    // An apply killed once the first member's container exists.
    let args = [
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ];
    let mut child = t.spawn(&args);
    let first = "pgdba-dtadopt-0".to_owned();
    wait_for(
        "the first member's container",
        Duration::from_secs(90),
        || {
            labelled(&format!("{LABEL_CLUSTER}=dtadopt"))
                .0
                .contains(&first)
                .then_some(())
        },
    );
    child.kill().unwrap();
    let _ = child.wait();
    let before = labelled(&format!("{LABEL_CLUSTER}=dtadopt")).0;
    let ids = |c: &[String]| {
        let mut args = vec!["inspect", "--format", "{{.Id}}"];
        args.extend(c.iter().map(String::as_str));
        lines(&docker_ok(&args))
    };
    let before_ids = ids(&before);
    // A member whose Patroni was starting when the apply was killed does not answer for a
    // moment: plan refuses then (UNREACHABLE, "plan again once it does"), as a DBA would see.
    wait_for(
        "a plan that can see every member",
        Duration::from_secs(90),
        || {
            let r = t.run(&["plan", "-f", t.spec_str(), "--format", "json"]);
            (r.code == 0 || r.json()["error"]["code"] != "UNREACHABLE").then_some(())
        },
    );
    // The next apply converges from what exists: the same containers, plus the missing member.
    let v = t.apply();
    let done = v["data"]["result"]["done"].to_string();
    assert!(
        !done.contains("create_dcs"),
        "etcd was created again: {done}"
    );
    let (containers, volumes, networks) = labelled(&format!("{LABEL_CLUSTER}=dtadopt"));
    // 3 etcd, 2 members and PgBouncer (which keeps no volume).
    assert_eq!(containers.len(), 6, "{containers:?}");
    assert_eq!(
        ids(&before),
        before_ids,
        "a container that existed was made again"
    );
    assert_eq!(volumes.len(), 5, "{volumes:?}");
    assert_eq!(networks, ["pgdba-dtadopt"]);
    t.settled(2);
    // An apply that starts while the first member has no leader yet cannot compare roles (its
    // plan says so in a note): the pooler's auth user is then created by the next one.
    let (code, plan) = t.plan_json();
    if code == 2 {
        let changes = cluster_of(&plan)["changes"].as_array().unwrap().clone();
        assert!(
            changes.iter().all(|c| c["address"] == "role.pgbouncer"),
            "{plan:#}"
        );
        t.apply();
    }
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    let identity = ids(&containers);

    // Another state dir: refused, nothing written there, nothing touched.
    let other = t.dir.path().join("other-state");
    for args in [
        vec!["plan", "-f", t.spec_str(), "--format", "json"],
        vec![
            "apply",
            "-f",
            t.spec_str(),
            "--auto-approve",
            "--format",
            "json",
        ],
    ] {
        let r = t.run_in(&other, &args);
        assert_eq!(r.code, 1, "{r:?}");
        assert_eq!(r.json()["error"]["code"], "EXISTS_UNMANAGED", "{r:?}");
        assert!(!other.join("dtadopt.json").exists());
    }
    let r = t.run_in(
        &other,
        &[
            "destroy",
            "-f",
            t.spec_str(),
            "--confirm",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "NOT_MANAGED", "{r:?}");
    assert_eq!(
        ids(&containers),
        identity,
        "a refused command touched a container"
    );

    // The state file gone from its own dir: refused too, naming the previous state; put back,
    // the cluster is pgdba's again with nothing to do.
    let state = t.state_dir.join("dtadopt.json");
    let aside = t.dir.path().join("dtadopt.json.aside");
    std::fs::rename(&state, &aside).unwrap();
    let r = t.run(&["plan", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let err = &r.json()["error"];
    assert_eq!(err["code"], "EXISTS_UNMANAGED", "{r:?}");
    assert!(
        err["hint"].as_str().unwrap().contains("dtadopt.json.prev"),
        "{err}"
    );
    assert!(!state.exists());
    std::fs::rename(&aside, &state).unwrap();
    assert_eq!(t.plan_json().0, 0);
    assert_eq!(ids(&containers), identity);

    let r = t.run(&[
        "destroy",
        "-f",
        t.spec_str(),
        "--confirm",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    t.assert_nothing_left();
}

/// `spec.backup` on the docker provider: the repository (a directory of the host) mounted into
/// every member's container, WAL archived through pgBackRest, the stanza created by the apply,
/// a verified full backup, a verified logical one, `backup list` and a passing restore test inside the leader's
/// container; point-in-time recovery into a new cluster (the source's repository mounted
/// read-only) and in place; a failover drill (the leader's container killed), a replica frozen
/// and thawed; destroy removes the containers and leaves the repository.
#[test]
fn docker_backups_archive_back_up_and_restore_test() {
    require_docker!("docker_backups_archive_back_up_and_restore_test");
    let t = DockerCluster::new("dtbkup");
    let repo = t.dir.path().join("repo");
    t.write_spec(
        1,
        PARAMS,
        &format!("  backup:\n    repository: {{path: {}}}\n", repo.display()),
    );
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert!(
        cluster_of(&plan)["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "create_stanza"),
        "no stanza in the plan: {plan:#}"
    );
    t.apply();
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "not converged after apply: {plan:#}");
    assert_eq!(t.show_everywhere("archive_mode"), vec!["on", "on"]);
    assert!(repo.join("backup/dtbkup/backup.info").exists());

    let r = t.run(&[
        "backup",
        "create",
        "--type",
        "full",
        "-f",
        t.spec_str(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup create: {r:?}");
    let b = &r.json()["data"]["backup"];
    assert_eq!(b["type"], "full", "{b:#}");
    assert_eq!(b["verified"], true, "{b:#}");
    let id = b["id"].as_str().unwrap().to_owned();
    assert!(repo.join("backup/dtbkup").join(&id).is_dir());

    // A logical backup: pg_dump inside the leader's container, into the mounted repository.
    let r = t.run(&[
        "backup",
        "create",
        "--type",
        "logical",
        "-f",
        t.spec_str(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup create --type logical: {r:?}");
    let l = &r.json()["data"]["backup"];
    assert_eq!(l["verified"], true, "{l:#}");
    let lid = l["id"].as_str().unwrap().to_owned();
    assert!(
        repo.join("logical/dtbkup")
            .join(&lid)
            .join("postgres.dump")
            .is_file()
    );

    let r = t.run(&["backup", "list", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 0, "backup list: {r:?}");
    let j = r.json();
    let ids: Vec<&str> = j["data"]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids, vec![id.as_str(), lid.as_str()], "{j:#}");
    assert!(j["data"]["window"]["oldest"].is_string(), "{j:#}");

    let r = t.run(&[
        "backup",
        "verify-restore",
        "-f",
        t.spec_str(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "verify-restore: {r:?}");
    assert_eq!(r.json()["data"]["status"], "ok", "{r:?}");

    // Point-in-time recovery: row A before T, row B after.
    let (leader, _) = t.settled(2);
    let port = t.port_of(&leader);
    t.sql(port, "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')");
    let at = t.sql(
        port,
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(1500));
    t.sql(port, "INSERT INTO t VALUES ('B')");
    let wal = t.sql(port, "SELECT pg_walfile_name(pg_switch_wal())");
    wait_for(
        "the WAL with row B archived",
        Duration::from_secs(60),
        || {
            let last = t.sql(
                port,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            );
            (last.as_str() >= wal.as_str()).then_some(())
        },
    );
    let rows = |c: &DockerCluster| {
        let (leader, _) = c.settled(2);
        c.sql(
            c.port_of(&leader),
            "SELECT string_agg(v, ',' ORDER BY v) FROM t",
        )
    };

    // Into a new cluster: its containers mount the source's repository read-only.
    let mut new = DockerCluster::new("dtbnew");
    new.state_dir = t.state_dir.clone();
    let r = t.run(&[
        "backup",
        "restore",
        "-f",
        t.spec_str(),
        "--to-cluster",
        "dtbnew",
        "--target-time",
        &at,
        "--out",
        new.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup restore --to-cluster: {r:?}");
    assert_eq!(rows(&new), "A");
    let (code, plan) = new.plan_json();
    assert_eq!(
        code, 0,
        "the restored cluster does not plan clean: {plan:#}"
    );
    let binds = docker_ok(&[
        "inspect",
        "--format",
        "{{json .HostConfig.Binds}}",
        "pgdba-dtbnew-0",
    ]);
    assert!(
        binds.contains(&format!("{}:{}:ro", repo.display(), repo.display())),
        "{binds}"
    );
    assert_eq!(rows(&t), "A,B");
    let r = new.run(&["destroy", "-f", new.spec_str(), "--confirm"]);
    assert_eq!(r.code, 0, "{r:?}");
    new.assert_nothing_left();

    // In place: the cluster itself goes back to T, on a new timeline.
    let r = t.run(&[
        "backup",
        "restore",
        "-f",
        t.spec_str(),
        "--in-place",
        "--i-know-what-i-am-doing",
        "--target-time",
        &at,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup restore --in-place: {r:?}");
    assert_eq!(r.json()["data"]["safety_backup"]["taken"], true, "{r:?}");
    assert_eq!(rows(&t), "A");
    let (code, plan) = t.plan_json();
    assert_eq!(
        code, 0,
        "not converged after the in-place restore: {plan:#}"
    );
    assert!(
        t.patronictl_list()
            .iter()
            .all(|m| m["TL"].as_u64().unwrap_or(0) >= 2),
        "not on a new timeline"
    );

    // A failover drill: the leader's container killed under the writer, a backup first.
    let (before, _) = t.settled(2);
    let r = t.run(&[
        "chaos",
        "drill",
        "failover",
        "-f",
        t.spec_str(),
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos drill failover: {r:?}");
    let d = r.json()["data"].clone();
    assert_eq!(d["old_leader"], before.as_str(), "{d:#}");
    assert_ne!(d["new_leader"], before.as_str(), "{d:#}");
    assert!(d["backup"].is_string(), "{d:#}");
    assert!(d["rto_ms"].as_u64().unwrap() > 0, "{d:#}");
    assert!(d["rejoin_ms"].as_u64().is_some(), "{d:#}");
    let (after, streaming) = t.settled(2);
    assert_eq!(streaming, vec![before.clone()]);
    assert_ne!(after, before);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "not converged after the drill: {plan:#}");

    // freeze / thaw: the replica's container paused, then resumed.
    let container = format!("pgdba-{before}");
    let paused = || docker_ok(&["inspect", "--format", "{{.State.Paused}}", &container]);
    let r = t.run(&[
        "chaos",
        "freeze",
        "-f",
        t.spec_str(),
        "--member",
        &before,
        "--i-know-what-i-am-doing",
        "--no-backup",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos freeze: {r:?}");
    assert_eq!(paused(), "true");
    let r = t.run(&[
        "chaos",
        "thaw",
        "-f",
        t.spec_str(),
        "--member",
        &before,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos thaw: {r:?}");
    assert_eq!(paused(), "false");
    t.settled(2);

    let r = t.run(&[
        "destroy",
        "-f",
        t.spec_str(),
        "--confirm",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    t.assert_nothing_left();
    assert!(
        repo.join("backup/dtbkup").join(&id).is_dir(),
        "destroy removed the repository's backups"
    );
}

/// The drills that need containers: in synchronous mode, a partition drill (the leader's
/// container cut off its network under a writer outside and one beside it) in which the cut-off
/// leader stops taking writes before the replica starts, and nothing acknowledged is lost; a
/// failover drill losing nothing; `chaos partition` and `chaos heal` of a replica; `chaos
/// corrupt` of a replica, detected and repaired.
#[test]
fn docker_partition_and_failover_drills_in_synchronous_mode() {
    require_docker!("docker_partition_and_failover_drills_in_synchronous_mode");
    let t = DockerCluster::new("dtdrill");
    t.write_spec(1, PARAMS, "    synchronous_mode: true\n");
    t.apply();
    let settled = || {
        wait_for(
            "a leader and a streaming synchronous standby",
            Duration::from_secs(90),
            || {
                let list = t.patronictl_list();
                let leader = list.iter().find(|m| m["Role"] == "Leader")?;
                let sync = list
                    .iter()
                    .find(|m| m["Role"] == "Sync Standby" && m["State"] == "streaming")?;
                Some((
                    leader["Member"].as_str().unwrap().to_owned(),
                    sync["Member"].as_str().unwrap().to_owned(),
                ))
            },
        )
    };
    let (leader, replica) = settled();
    let drill = |kind: &str| {
        let r = t.run(&[
            "chaos",
            "drill",
            kind,
            "-f",
            t.spec_str(),
            "--i-know-what-i-am-doing",
            "--format",
            "json",
        ]);
        assert_eq!(r.code, 0, "chaos drill {kind}: {r:?}");
        r.json()["data"].clone()
    };

    let d = drill("partition");
    assert_eq!(d["old_leader"], leader.as_str(), "{d:#}");
    // PgBouncer runs beside the members: a second writer goes through it.
    let via = &d["via_pooler"];
    assert_eq!(via["rpo_transactions"], 0, "{d:#}");
    assert!(via["commits"].as_u64().unwrap() > 0, "{d:#}");
    assert!(via["rto_ms"].as_u64().unwrap() > 0, "{d:#}");
    assert_eq!(d["new_leader"], replica.as_str(), "{d:#}");
    assert_eq!(d["rpo_transactions"], 0, "{d:#}");
    let iso = &d["isolated"];
    assert_eq!(iso["two_writable_leaders"], false, "{d:#}");
    assert_eq!(iso["still_writable_at_end"], false, "{d:#}");
    assert!(iso["commits_before_cut"].as_u64().unwrap() > 0, "{d:#}");
    assert!(iso["attempts"].as_u64().unwrap() > 10, "{d:#}");
    assert!(d["rto_ms"].as_u64().unwrap() > 0, "{d:#}");
    assert!(d["rejoin_ms"].as_u64().is_some(), "{d:#}");
    assert!(d["rejoined_via"].is_string(), "{d:#}");
    let (leader, replica) = settled();
    assert_eq!(leader, d["new_leader"].as_str().unwrap());

    let d = drill("failover");
    assert_eq!(d["old_leader"], leader.as_str(), "{d:#}");
    assert_eq!(d["new_leader"], replica.as_str(), "{d:#}");
    assert_eq!(d["rpo_transactions"], 0, "{d:#}");
    assert_eq!(d["via_pooler"]["rpo_transactions"], 0, "{d:#}");
    assert_eq!(d["via_pooler"]["recovered"], true, "{d:#}");
    assert!(d["via_pooler"]["rto_ms"].as_u64().unwrap() > 0, "{d:#}");
    let (leader, replica) = settled();

    // A replica cut off: its container leaves the network (Patroni's listing loses it), and
    // heal brings it back under its name.
    let container = format!("pgdba-{replica}");
    let networks = || {
        docker_ok(&[
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks}}",
            &container,
        ])
    };
    assert!(networks().contains("pgdba-dtdrill"), "{}", networks());
    let r = t.run(&[
        "chaos",
        "partition",
        "--isolate",
        &replica,
        "-f",
        t.spec_str(),
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos partition: {r:?}");
    assert_eq!(r.json()["data"]["role"], "sync_standby", "{r:?}");
    assert!(!networks().contains("pgdba-dtdrill"), "{}", networks());
    let r = t.run(&["chaos", "heal", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 0, "chaos heal: {r:?}");
    assert!(networks().contains("pgdba-dtdrill"), "{}", networks());
    assert_eq!(settled(), (leader.clone(), replica.clone()));

    // A page of a table damaged in the stopped replica's container (copied out and back),
    // detected when read, repaired by cloning the replica again. (The drills restarted and
    // reconnected containers: Docker published them on new host ports, which the state
    // records only at the next apply; ask Docker.)
    let published = |member: &str| -> u16 {
        let out = docker_ok(&["port", &format!("pgdba-{member}"), "5432/tcp"]);
        lines(&out)[0].rsplit(':').next().unwrap().parse().unwrap()
    };
    t.sql(
        published(&leader),
        "CREATE TABLE victim AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g",
    );
    let r = t.run(&[
        "chaos",
        "corrupt",
        "--table",
        "victim",
        "--member",
        &replica,
        "-f",
        t.spec_str(),
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos corrupt: {r:?}");
    let d = r.json()["data"].clone();
    assert_eq!(d["detected"]["found"], true, "{d:#}");
    assert!(d["detected"]["read_error"].is_string(), "{d:#}");
    assert_eq!(d["repair"]["rows_member"], "1000", "{d:#}");
    assert_eq!(settled(), (leader.clone(), replica.clone()));
    assert_eq!(
        t.sql(published(&replica), "SELECT count(*) FROM victim"),
        "1000"
    );
    let r = t.run(&["health", "check", "-f", t.spec_str(), "--format", "json"]);
    assert_ne!(r.code, 2, "{r:?}");

    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "not converged after the drills: {plan:#}");

    let r = t.run(&["chaos", "report", "-f", t.spec_str(), "--format", "json"]);
    let commands: Vec<String> = r.json()["data"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["command"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        commands,
        [
            "chaos drill partition",
            "chaos drill failover",
            "chaos partition",
            "chaos heal",
            "chaos corrupt"
        ]
    );
}
