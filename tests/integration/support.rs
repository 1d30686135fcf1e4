//! Shared helpers for tests that run the real binary against real etcd/Patroni/PostgreSQL.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

pub const PATRONICTL: &str = "/opt/patroni/bin/patronictl";

/// Everything one test's cluster needs: a temp dir (traversable by the `postgres` user), its
/// own ports, a spec file and a state dir. Dropping it destroys the cluster.
pub struct TestCluster {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
    pub state_dir: PathBuf,
    pub pg_port: u16,
    pub api_port: u16,
    pub etcd_port: u16,
    /// Everything the binary printed, for the secrets check.
    pub transcript: std::cell::RefCell<String>,
    /// Environment variables for every pgdba run (secrets the spec names).
    pub envs: std::cell::RefCell<Vec<(String, String)>>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pgdba")
}

impl TestCluster {
    /// `port_base` must be unique per test: the test owns base..base+9 for PostgreSQL,
    /// base+10.. for the REST APIs and base+20, base+21 for etcd. Keep every test port below
    /// 32768, where the kernel's ephemeral range starts: an outgoing connection may take a port
    /// above it at any moment.
    pub fn new(name: &str, port_base: u16) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pgdba-{name}-"))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        TestCluster {
            name: name.to_owned(),
            spec: dir.path().join(format!("{name}.yaml")),
            state_dir: dir.path().join("state"),
            pg_port: port_base,
            api_port: port_base + 10,
            etcd_port: port_base + 20,
            dir,
            transcript: Default::default(),
            envs: Default::default(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Write the spec with these parameters and replicas.
    pub fn write_spec(&self, replicas: u32, params: &[(&str, &str)]) {
        self.write_spec_with(replicas, params, "");
    }

    /// Write the spec with these parameters and replicas, and `extra` YAML under `spec:`.
    pub fn write_spec_with(&self, replicas: u32, params: &[(&str, &str)], extra: &str) {
        let params: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("      {k}: {v}"))
            .collect();
        let text = format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata:\n  name: {name}\n  labels: {{env: test}}\nspec:\n  provider:\n    local:\n      data_dir: {data}\n      pg_port: {pg}\n      api_port: {api}\n      etcd_port: {etcd}\n  postgres:\n    version: 15\n    parameters:\n{params}\n  replicas: {replicas}\n  patroni: {{ttl: 30, loop_wait: 10, retry_timeout: 10}}\n{extra}",
            name = self.name,
            data = self.data_dir().display(),
            pg = self.pg_port,
            api = self.api_port,
            etcd = self.etcd_port,
            params = params.join("\n"),
            extra = extra,
        );
        std::fs::write(&self.spec, text).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("PGDBA_STATE_DIR", &self.state_dir)
            .env_remove("PGDBA_LOG")
            .current_dir(self.dir.path());
        c.envs(
            self.envs
                .borrow()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        c
    }

    fn record(&self, args: &[&str], out: &Output) -> Run {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_ne!(run.code, 101, "pgdba panicked on {args:?}: {run:?}");
        let mut t = self.transcript.borrow_mut();
        t.push_str(&format!(
            "$ pgdba {}\n{}\n{}\n",
            args.join(" "),
            run.stdout,
            run.stderr
        ));
        run
    }

    /// Run pgdba and wait for it.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        self.record(args, &out)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn finish(&self, args: &[&str], child: Child) -> Run {
        let out = child.wait_with_output().unwrap();
        self.record(args, &out)
    }

    pub fn spec_str(&self) -> &str {
        self.spec.to_str().unwrap()
    }

    pub fn apply(&self) -> Run {
        let r = self.run(&[
            "apply",
            "-f",
            self.spec_str(),
            "--auto-approve",
            "--format",
            "json",
        ]);
        assert_eq!(r.code, 0, "apply failed: {r:?}");
        r
    }

    pub fn plan_json(&self) -> (i32, Value) {
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

    pub fn member_config(&self, i: u32) -> PathBuf {
        self.data_dir()
            .join(format!("{}-{i}", self.name))
            .join("patroni.yml")
    }

    pub fn socket_dir(&self, member: &str) -> PathBuf {
        self.data_dir().join(member).join("run")
    }

    /// A secret pgdba generated for this cluster, from its 0600 secrets file.
    pub fn secret(&self, field: &str) -> Option<String> {
        let path = self.state_dir.join(format!("{}.secrets.json", self.name));
        let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        v[field].as_str().map(str::to_owned)
    }

    /// patronictl with what a DBA would give it: the REST API's and etcd's credentials from
    /// pgdba's secrets file (Patroni reads them from the environment).
    fn patronictl_command(&self) -> Command {
        let mut c = Command::new(PATRONICTL);
        if let Some(p) = self.secret("restapi_password") {
            c.env("PATRONI_RESTAPI_USERNAME", "pgdba")
                .env("PATRONI_RESTAPI_PASSWORD", p);
        }
        if let Some(p) = self.secret("etcd_password") {
            c.env(
                "PATRONI_ETCD3_HOSTS",
                format!("127.0.0.1:{}", self.etcd_port),
            )
            .env("PATRONI_ETCD3_USERNAME", "root")
            .env("PATRONI_ETCD3_PASSWORD", p);
        }
        c
    }

    /// `patronictl list` as JSON, through a member's config (any that still exists).
    pub fn patronictl_list(&self) -> Vec<Value> {
        let config = (0..10)
            .map(|i| self.member_config(i))
            .find(|p| p.exists())
            .expect("no member config");
        let out = self
            .patronictl_command()
            .args(["-c", config.to_str().unwrap(), "list", "-f", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "patronictl list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn patronictl(&self, args: &[&str]) -> Output {
        let config = (0..10)
            .map(|i| self.member_config(i))
            .find(|p| p.exists())
            .expect("no member config");
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.patronictl_command().args(&all).output().unwrap();
        assert!(
            out.status.success(),
            "patronictl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Like `psql`, but `None` when the member does not answer (it may be restarting).
    pub fn try_psql(&self, member: &str, port: u16, sql: &str) -> Option<String> {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-h"])
            .arg(self.socket_dir(member))
            .args(["-p", &port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// psql as the `postgres` OS user over the member's Unix socket (peer authentication).
    pub fn psql(&self, member: &str, port: u16, sql: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-h"])
            .arg(self.socket_dir(member))
            .args(["-p", &port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql on {member}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// (name, port) of every member in the state.
    pub fn members(&self) -> Vec<(String, u16)> {
        let r = self.run(&["state", "show", &self.name, "--format", "json"]);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()["data"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["port"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.state_dir.join(format!("{}.json", self.name)).exists() {
            let _ = self
                .command(&[
                    "destroy",
                    "-f",
                    self.spec.to_str().unwrap_or_default(),
                    "--confirm",
                    "--format",
                    "json",
                ])
                .output();
        }
        // Whatever is left (a test that failed half-way): stop processes under our data dir.
        let _ = Command::new("pkill")
            .args(["-f", &self.data_dir().display().to_string()])
            .status();
    }
}

/// A call to the cluster's etcd v3 JSON gateway (`/v3/kv/range`, `/v3/kv/put`, ...): what the
/// tests use to read and write the DCS directly, without Patroni in between.
pub fn etcd(t: &TestCluster, path: &str, body: &Value) -> Value {
    etcd_as(t, path, body, etcd_token(t).as_deref())
}

/// etcd's token for its root user, with the password from pgdba's secrets file.
pub fn etcd_token(t: &TestCluster) -> Option<String> {
    let password = t.secret("etcd_password")?;
    let v = etcd_as(
        t,
        "auth/authenticate",
        &serde_json::json!({ "name": "root", "password": password }),
        None,
    );
    v["token"].as_str().map(str::to_owned)
}

/// A call to etcd's JSON gateway with `token` (or none: what any local user could send).
pub fn etcd_as(t: &TestCluster, path: &str, body: &Value, token: Option<&str>) -> Value {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "10", "-X", "POST"]);
    if let Some(token) = token {
        c.args(["-H", &format!("Authorization: {token}")]);
    }
    let out = c
        .arg(format!("http://127.0.0.1:{}/v3/{path}", t.etcd_port))
        .arg("-d")
        .arg(body.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {path}: {out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("etcd {path}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The cluster's DCS config key (Patroni's dynamic configuration): its JSON value and its
/// `mod_revision`, read linearizably.
pub fn dcs_config(t: &TestCluster) -> (Value, i64) {
    let key = b64(format!("/service/{}/config", t.name).as_bytes());
    let v = etcd(t, "kv/range", &serde_json::json!({ "key": key }));
    let kv = &v["kvs"][0];
    let value = base64::engine::general_purpose::STANDARD
        .decode(kv["value"].as_str().unwrap())
        .unwrap();
    (
        serde_json::from_slice(&value).unwrap(),
        kv["mod_revision"].as_str().unwrap().parse().unwrap(),
    )
}

/// Write the DCS config key directly, as another tool would (not through Patroni).
pub fn put_dcs_config(t: &TestCluster, config: &Value) {
    let key = b64(format!("/service/{}/config", t.name).as_bytes());
    let value = b64(config.to_string().as_bytes());
    etcd(
        t,
        "kv/put",
        &serde_json::json!({ "key": key, "value": value }),
    );
}

/// Poll `f` until it returns Some, or panic after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A spec fixture under `tests/fixtures/specs/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/specs")
        .join(rel)
}

/// The diagnostics of a fixture that must not load.
pub fn diagnostics(rel: &str) -> Vec<pgdba::spec::Diagnostic> {
    match pgdba::spec::load_file(&fixture(rel)) {
        Ok(_) => panic!("{rel} loaded, but it has problems"),
        Err(d) => d,
    }
}

/// Asserts a fixture's diagnostics are exactly these, in this order: (line, column, message
/// fragment).
#[track_caller]
pub fn assert_diags(rel: &str, want: &[(usize, usize, &str)]) {
    let got = diagnostics(rel);
    let shown = got
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        got.len(),
        want.len(),
        "{rel}: wrong number of diagnostics:\n{shown}"
    );
    for (d, (line, column, fragment)) in got.iter().zip(want) {
        assert_eq!(
            (d.line, d.column),
            (*line, *column),
            "{rel}: position of {d}\nall:\n{shown}"
        );
        assert!(
            d.message.contains(fragment),
            "{rel}: {:?} does not contain {fragment:?}",
            d.message
        );
        assert!(d.file.ends_with(rel), "{rel}: file {}", d.file);
    }
}

/// PostgreSQL's relation, WAL and commit-log files: binary, and no place a secret could be
/// written in clear (the secrets greps skip them).
pub fn is_pg_binary(path: &Path) -> bool {
    let p = path.display().to_string();
    ["/pg_wal/", "/base/", "/global/", "/pg_xact/"]
        .iter()
        .any(|d| p.contains(d))
}

/// A plain PostgreSQL 15 server (no Patroni) on `port`, run as the `postgres` OS user in its
/// own temp dir, with a password for the `postgres` role over TCP. Dropping it stops it.
pub struct PlainPg {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub password: String,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl PlainPg {
    /// `extra_conf` lines go into postgresql.conf (`shared_preload_libraries = ...`).
    pub fn start(port: u16, extra_conf: &[&str]) -> PlainPg {
        let dir = tempfile::Builder::new()
            .prefix("pgdba-plain-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .arg(&run)
            .status()
            .unwrap();
        assert!(chown.success());
        let password = "plain-test-password".to_owned();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).unwrap();
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&pwfile)
            .status()
            .unwrap();
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/initdb")])
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb: {initdb:?}");
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            run.display()
        );
        for l in extra_conf {
            conf.push_str(l);
            conf.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        let start = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl")])
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(
            start.status.success(),
            "pg_ctl start: {start:?}\n{}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        PlainPg {
            dir,
            port,
            password,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// psql over the socket as postgres; the output unaligned, tuples only.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/psql")])
            .arg("-h")
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The environment that points pgdba at this server (plain PostgreSQL mode).
    pub fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGDBA_PG_HOST", "127.0.0.1".to_owned()),
            ("PGDBA_PG_PORT", self.port.to_string()),
            ("PGDBA_PG_USER", "postgres".to_owned()),
            ("PGDBA_PG_PASSWORD", self.password.clone()),
            ("PGDBA_PG_DATABASE", "postgres".to_owned()),
        ]
    }

    /// Run pgdba against this server (no state dir, no spec).
    pub fn pgdba(&self, args: &[&str]) -> Run {
        let mut c = Command::new(bin());
        c.args(args)
            .envs(self.envs())
            .env("PGDBA_STATE_DIR", self.dir.path().join("state"))
            .env_remove("PGDBA_LOG")
            .current_dir(self.dir.path());
        run_pgdba(c, args)
    }
}

impl Drop for PlainPg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl")])
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Run a prepared pgdba command to its end; a panic (exit 101) fails the test.
pub fn run_pgdba(mut c: Command, args: &[&str]) -> Run {
    let out = c.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_ne!(run.code, 101, "pgdba panicked on {args:?}: {run:?}");
    run
}

/// The pid in the first line of a pid file (`postmaster.pid`).
pub fn pid_file(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The pid of a JSON pid file pgdba writes (`{"pid": ...}`).
pub fn pid_file_json(path: &Path) -> i32 {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    i32::try_from(v["pid"].as_u64().unwrap()).unwrap()
}
