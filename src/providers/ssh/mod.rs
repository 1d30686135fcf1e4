//! The `ssh` provider: etcd, Patroni (running PostgreSQL) and PgBouncer on Linux hosts pgdba
//! reaches over SSH (russh; pgdba never shells out to `ssh`).
//!
//! On each host, everything of the cluster is under one directory (`data_dir`, default
//! `/var/lib/pgdba/<name>`) owned by `postgres`, and runs as `postgres`: member `NAME-i` on
//! `hosts[i]` (`<dir>/NAME-i/`: data, `patroni.yml`, log, pid file, socket directory), etcd node
//! `etcd-j` on the `j`th etcd host (`<dir>/etcd-j/`), PgBouncer with pgdba's supervisor on the
//! first host (`<dir>/pgbouncer/`). Each runs as a daemon in a session of its own, its pid in a
//! pid file beside it, as the local provider runs them; a file marks the directory with the
//! lineage that made it, which `destroy` checks first.
//!
//! Every command is one channel on the host's one SSH connection. Files are written through the
//! channel's standard input to a temporary file beside the target, given their mode and owner,
//! and renamed over it; secrets travel only that way.

pub mod config;
pub mod layout;
pub mod session;

use std::collections::BTreeMap;
use std::time::Duration;

use layout::{Layout, MARKER};
use session::{Hosts, Output, SshError, quote};

use super::{Access, Claim, Credentials, Inventory, ProviderError, Topology, pgbouncer};
use crate::observe::model::{Dcs, InventoryMember};
use crate::spec::model::{ClusterSpec, SshHost, SshProvider};

/// A command that only looks or writes a file.
const QUICK: Duration = Duration::from_secs(30);
/// A service has this long to come up.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// And this long to stop before it is killed.
const STOP_TIMEOUT_SECS: u64 = 60;

/// The shell functions every script may use: `live PID` (the process exists and is not a
/// zombie: one killed whose parent died is reaped only by init, at its leisure), `alive PIDFILE
/// PATTERN` (the pid file's process lives and its command line has PATTERN), `stop PIDFILE
/// PATTERN` (SIGTERM, then SIGKILL after the stop timeout).
fn prelude() -> String {
    format!(
        r#"live() {{ kill -0 "$1" 2>/dev/null || return 1; s=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | cut -c1); [ -n "$s" ] && [ "$s" != Z ]; }}
alive() {{ p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && live "$p" && tr '\0' ' ' < /proc/"$p"/cmdline 2>/dev/null | grep -q -- "$2"; }}
stop() {{
  alive "$1" "$2" || {{ rm -f "$1"; return 0; }}
  p=$(cat "$1"); kill -TERM "$p" 2>/dev/null || true
  i=0; while live "$p" && [ $i -lt {limit} ]; do sleep 0.1; i=$((i+1)); done
  live "$p" && kill -KILL "$p" 2>/dev/null || true
  rm -f "$1"
}}
"#,
        limit = STOP_TIMEOUT_SECS * 10
    )
}

/// What one host's probe found of the cluster's pieces it carries.
#[derive(Debug, Default, Clone)]
struct Probe {
    /// `exists`, `running`, `postgres` (PostgreSQL runs) per member or node name, and the
    /// lineage marker and PgBouncer.
    facts: BTreeMap<String, String>,
    /// Each member's `patroni.yml`.
    configs: BTreeMap<String, String>,
}

pub struct Ssh {
    spec: ClusterSpec,
    layout: Layout,
    topology: Topology,
    hosts: Hosts,
    http: reqwest::Client,
    install_packages: bool,
    /// The secrets of `spec.backup`, read once by the caller.
    backup_secrets: crate::secret::BackupSecrets,
}

impl Ssh {
    pub fn new(
        spec: &ClusterSpec,
        ssh: &SshProvider,
        backup_secrets: &crate::secret::BackupSecrets,
    ) -> Ssh {
        let layout = Layout::new(spec, ssh);
        Ssh {
            spec: spec.clone(),
            topology: layout.topology(),
            hosts: Hosts::new(ssh.known_hosts.clone(), ssh.sudo),
            install_packages: ssh.install_packages,
            backup_secrets: backup_secrets.clone(),
            layout,
            http: super::http_client(),
        }
    }

    fn ssh_error(e: SshError) -> ProviderError {
        match e {
            SshError::KeyChanged { .. } => ProviderError::HostKeyChanged(e.to_string()),
            SshError::Untrusted { .. } => ProviderError::HostKeyUntrusted(e.to_string()),
            SshError::Unreachable { .. } => ProviderError::HostUnreachable(e.to_string()),
            _ => ProviderError::Ssh(e.to_string()),
        }
    }

    /// Run `script` (after the prelude) on `host`; its output whatever its exit status.
    async fn exec(
        &self,
        host: &SshHost,
        script: &str,
        stdin: &[u8],
        within: Duration,
    ) -> Result<Output, ProviderError> {
        let full = format!("{}{script}", prelude());
        self.hosts
            .run(host, &full, stdin, within)
            .await
            .map_err(Self::ssh_error)
    }

    /// Run `script` on `host`; an exit status other than 0 is an error naming `what`.
    async fn must(
        &self,
        host: &SshHost,
        what: &str,
        script: &str,
        stdin: &[u8],
        within: Duration,
    ) -> Result<String, ProviderError> {
        let out = self.exec(host, script, stdin, within).await?;
        if out.code == 0 {
            Ok(out.stdout)
        } else {
            Err(ProviderError::Ssh(format!(
                "{what} on {} failed (exit {}): {}",
                host.endpoint(),
                out.code,
                tail(&format!("{}{}", out.stderr, out.stdout))
            )))
        }
    }

    /// Write `bytes` to `path` on `host` atomically (a temporary file beside it, renamed over
    /// it), with `mode` and owned by `postgres`; its directory is made if missing.
    async fn write_file(
        &self,
        host: &SshHost,
        path: &str,
        bytes: &[u8],
        mode: u32,
    ) -> Result<(), ProviderError> {
        let (dir, _) = path.rsplit_once('/').unwrap_or((".", path));
        let script = format!(
            "set -e; umask 077; d={d}; mkdir -p \"$d\"; chown postgres: \"$d\"; t=$(mktemp \"$d/.pgdba.XXXXXX\"); cat > \"$t\"; chmod {mode:o} \"$t\"; chown postgres: \"$t\"; mv -f \"$t\" {p}",
            d = quote(dir),
            p = quote(path),
        );
        self.must(host, &format!("writing {path}"), &script, bytes, QUICK)
            .await
            .map(|_| ())
    }

    /// Start `argv` as `postgres` as a daemon in `dir` (log `dir/<what>.log`, pid file
    /// `dir/<what>.pid`) unless it runs already; `env` goes to its environment.
    async fn start_daemon(
        &self,
        host: &SshHost,
        dir: &str,
        what: &str,
        argv: &[String],
        env: &[(&str, String)],
    ) -> Result<(), ProviderError> {
        let pid = format!("{dir}/{what}.pid");
        let log = format!("{dir}/{what}.log");
        let program = argv.first().cloned().unwrap_or_default();
        let envs: Vec<String> = env
            .iter()
            .map(|(k, v)| quote(&format!("{k}={v}")))
            .collect();
        let script = format!(
            "set -e\nif alive {pid} {pat}; then exit 0; fi\ncd {dir}\nenv -i PATH=/usr/local/bin:/usr/bin:/bin HOME={dir} LANG=C.UTF-8 {envs} setsid setpriv --reuid=postgres --regid=postgres --init-groups -- {argv} >>{log} 2>&1 </dev/null &\necho $! > {pid}\n",
            pid = quote(&pid),
            pat = quote(&program),
            dir = quote(dir),
            envs = envs.join(" "),
            argv = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
            log = quote(&log),
        );
        self.must(host, &format!("starting {what}"), &script, b"", QUICK)
            .await
            .map(|_| ())
    }

    async fn stop_daemon(
        &self,
        host: &SshHost,
        dir: &str,
        what: &str,
        program: &str,
    ) -> Result<(), ProviderError> {
        let script = format!(
            "stop {} {}",
            quote(&format!("{dir}/{what}.pid")),
            quote(program)
        );
        self.must(
            host,
            &format!("stopping {what}"),
            &script,
            b"",
            Duration::from_secs(STOP_TIMEOUT_SECS + 15),
        )
        .await
        .map(|_| ())
    }

    /// The last lines of a log on a host, for an error.
    async fn log_tail(&self, host: &SshHost, log: &str) -> String {
        self.exec(host, &format!("tail -n 20 {}", quote(log)), b"", QUICK)
            .await
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    async fn wait_for<F, Fut>(
        &self,
        what: &str,
        host: &SshHost,
        log: &str,
        mut ready: F,
    ) -> Result<(), ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if ready().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(ProviderError::Timeout {
            what: what.to_owned(),
            secs: START_TIMEOUT.as_secs(),
            log: format!("{}:{log}", host.address),
            tail: self.log_tail(host, log).await,
        })
    }

    /// The patroni executable on `host`: the spec's, else `patroni` on `PATH`, else Debian's
    /// venv path pgdba's install script uses.
    fn patroni_lookup(&self) -> String {
        match &self.layout.patroni_bin {
            Some(p) => quote(p),
            None => "$(command -v patroni || echo /opt/patroni/bin/patroni)".to_owned(),
        }
    }

    /// One host's pieces of the cluster, in one command.
    async fn probe(&self, host: &SshHost) -> Result<Probe, ProviderError> {
        let l = &self.layout;
        let mut script = String::new();
        script.push_str(&format!(
            "echo \"marker $(cat {} 2>/dev/null)\"\n",
            quote(&format!("{}/{MARKER}", l.root))
        ));
        for (i, h) in l.hosts.iter().enumerate() {
            if h.endpoint() != host.endpoint() {
                continue;
            }
            let name = l.member_on(i);
            let dir = l.member_dir(&name);
            script.push_str(&format!(
                "n={n}; d={d}\n\
                 [ -d \"$d/data\" ] && echo \"exists $n\"\n\
                 alive \"$d/patroni.pid\" patroni && echo \"running $n\"\n\
                 pm=$(head -1 \"$d/data/postmaster.pid\" 2>/dev/null) && [ -n \"$pm\" ] && live \"$pm\" && echo \"postgres $n\"\n\
                 [ -f \"$d/patroni.yml\" ] && echo \"config $n $(base64 -w0 \"$d/patroni.yml\")\"\n\
                 [ -f \"$d/pgbackrest.conf\" ] && echo \"pgbackrest $n $(base64 -w0 \"$d/pgbackrest.conf\")\"\n",
                n = quote(&name),
                d = quote(&dir),
            ));
        }
        for node in l.etcd_nodes() {
            if node.host.endpoint() != host.endpoint() {
                continue;
            }
            script.push_str(&format!(
                "n={n}; d={d}\n[ -d \"$d/data\" ] && echo \"exists $n\"\nalive \"$d/etcd.pid\" etcd && echo \"running $n\"\n",
                n = quote(&node.name),
                d = quote(&l.etcd_dir(&node)),
            ));
        }
        if l.pooler_host()
            .is_some_and(|p| p.endpoint() == host.endpoint())
        {
            script.push_str(&format!(
                "d={d}\n[ -f \"$d/settings.json\" ] && echo \"exists pgbouncer\" && echo \"pooler_settings $(base64 -w0 \"$d/settings.json\")\"\nalive \"$d/pgbouncer.pid\" {f} && echo \"running pgbouncer\"\n",
                d = quote(&l.pooler_dir()),
                f = quote(pgbouncer::FOLLOW_FILE),
            ));
        }
        script.push_str("true\n");
        let out = self.exec(host, &script, b"", QUICK).await?;
        let mut p = Probe::default();
        for line in out.stdout.lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(k), Some(a)) = (parts.next(), parts.next()) else {
                continue;
            };
            let rest = parts.next().unwrap_or_default();
            match k {
                "config" | "pgbackrest" => {
                    use base64::Engine as _;
                    if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(rest) {
                        let key = if k == "config" {
                            a.to_owned()
                        } else {
                            format!("pgbackrest {a}")
                        };
                        p.configs
                            .insert(key, String::from_utf8_lossy(&b).into_owned());
                    }
                }
                "pooler_settings" => {
                    use base64::Engine as _;
                    if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(a) {
                        p.facts.insert(
                            "pooler_settings".to_owned(),
                            String::from_utf8_lossy(&b).into_owned(),
                        );
                    }
                }
                "marker" => {
                    p.facts.insert("marker".to_owned(), a.to_owned());
                }
                _ => {
                    p.facts.insert(format!("{k} {a}"), String::new());
                }
            }
        }
        Ok(p)
    }

    /// Every host's probe, in parallel; a host that cannot be probed maps to its error.
    async fn probe_all(&self) -> BTreeMap<String, Result<Probe, ProviderError>> {
        let hosts = self.layout.all_hosts();
        let probes = futures::future::join_all(hosts.iter().map(|h| self.probe(h))).await;
        hosts.iter().map(|h| h.endpoint()).zip(probes).collect()
    }

    fn access_of(&self, name: &str) -> Option<Access> {
        let host = self.layout.member_host(name)?;
        Some(Access {
            host: host.address.clone(),
            port: self.layout.pg_port,
            api_url: self.layout.api_url(host),
            socket_dir: None,
            data_dir: format!("{}:{}", host.address, self.layout.data_dir(name)),
        })
    }

    fn location(&self) -> crate::patroni::dcs::Location {
        crate::patroni::dcs::Location::etcd3(
            self.layout
                .etcd_nodes()
                .iter()
                .map(|n| self.layout.etcd_client_url(n))
                .collect(),
            crate::patroni::dcs::NAMESPACE,
            &self.layout.cluster,
        )
    }

    fn etcd(&self, endpoint: String) -> super::etcd::Etcd<'_> {
        super::etcd::Etcd {
            http: &self.http,
            endpoint,
        }
    }

    async fn all_etcd_healthy(&self) -> bool {
        let nodes = self.layout.etcd_nodes();
        let checks = nodes
            .iter()
            .map(|n| async move { self.etcd(self.layout.etcd_client_url(n)).healthy().await });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .all(|h| h)
    }

    async fn some_etcd(&self) -> Result<super::etcd::Etcd<'_>, ProviderError> {
        for n in self.layout.etcd_nodes() {
            let e = self.etcd(self.layout.etcd_client_url(&n));
            if e.healthy().await {
                return Ok(e);
            }
        }
        Err(ProviderError::Etcd {
            endpoint: self.topology.dcs_endpoint.clone(),
            message: "no etcd node answers".to_owned(),
        })
    }

    /// The lineage marker on `host`, `None` when there is none.
    async fn marker(&self, host: &SshHost) -> Result<Option<String>, ProviderError> {
        let out = self
            .must(
                host,
                "reading the lineage marker",
                &format!(
                    "cat {} 2>/dev/null || true",
                    quote(&format!("{}/{MARKER}", self.layout.root))
                ),
                b"",
                QUICK,
            )
            .await?;
        let l = out.trim();
        Ok((!l.is_empty()).then(|| l.to_owned()))
    }

    /// Make the cluster's directory on `host`, marked with `lineage`; refused when it is
    /// another lineage's.
    async fn ensure_root(&self, host: &SshHost, lineage: &str) -> Result<(), ProviderError> {
        match self.marker(host).await? {
            Some(l) if l == lineage => return Ok(()),
            Some(l) => {
                return Err(ProviderError::InUse(format!(
                    "{} on host {} belongs to cluster lineage {l}, not this one ({lineage})",
                    self.layout.root,
                    host.endpoint()
                )));
            }
            None => {}
        }
        let script = format!(
            "set -e; r={r}; if [ -e \"$r\" ] && [ -n \"$(ls -A \"$r\" 2>/dev/null)\" ]; then echo \"$r exists and is not empty\" >&2; exit 3; fi; mkdir -p \"$r\"; chown postgres: \"$r\"; chmod 700 \"$r\"",
            r = quote(&self.layout.root)
        );
        self.must(host, "making the cluster's directory", &script, b"", QUICK)
            .await?;
        self.write_file(
            host,
            &format!("{}/{MARKER}", self.layout.root),
            format!("{lineage}\n").as_bytes(),
            0o644,
        )
        .await
    }

    async fn required_lineage(&self, host: &SshHost) -> Result<String, ProviderError> {
        if let Some(l) = self.marker(host).await? {
            return Ok(l);
        }
        // A member host that carries no etcd: its directory is made with the first host's
        // lineage.
        let first =
            self.layout.etcd_hosts.first().ok_or_else(|| {
                ProviderError::Config("spec.provider.ssh has no hosts".to_owned())
            })?;
        let l = self.marker(first).await?.ok_or_else(|| {
            ProviderError::Config(format!(
                "host {} has no cluster directory {}: the DCS was not created",
                first.endpoint(),
                self.layout.root
            ))
        })?;
        self.ensure_root(host, &l).await?;
        Ok(l)
    }

    /// Send `signal` to member `name`'s Patroni, its postmaster and the postmaster's children,
    /// all at once (`what` names it in an error).
    async fn signal_member(
        &self,
        name: &str,
        signal: &str,
        what: &str,
    ) -> Result<(), ProviderError> {
        let host = self.member_host(name)?.clone();
        let script = format!(
            "d={d}\np=$(cat \"$d/patroni.pid\" 2>/dev/null); pm=$(head -1 \"$d/data/postmaster.pid\" 2>/dev/null)\nkids=$( [ -n \"$pm\" ] && pgrep -P \"$pm\" )\nkill -{signal} $p $pm $kids 2>/dev/null\ntrue",
            d = quote(&self.layout.member_dir(name))
        );
        self.must(&host, &format!("{what} member {name}"), &script, b"", QUICK)
            .await
            .map(|_| ())
    }

    /// Remove directory `dir` of `host` and everything in it (`what` names it in an error).
    async fn remove_dir(&self, host: &SshHost, what: &str, dir: &str) -> Result<(), ProviderError> {
        self.must(
            host,
            &format!("removing {what}"),
            &format!("rm -rf {}", quote(dir)),
            b"",
            QUICK,
        )
        .await
        .map(|_| ())
    }

    /// The host PgBouncer runs on.
    fn pooler_host(&self) -> Result<SshHost, ProviderError> {
        self.layout
            .pooler_host()
            .cloned()
            .ok_or_else(|| ProviderError::Config("spec.provider.ssh has no hosts".to_owned()))
    }

    fn member_host(&self, name: &str) -> Result<&SshHost, ProviderError> {
        self.layout
            .member_host(name)
            .ok_or_else(|| ProviderError::UnknownMember(name.to_owned()))
    }

    async fn write_config(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let host = self.member_host(name)?;
        let cfg = config::patroni_config(
            &self.spec,
            &self.layout,
            &self.topology.admit,
            name,
            host,
            creds,
        );
        let yaml = serde_yaml::to_string(&cfg).map_err(|e| ProviderError::Config(e.to_string()))?;
        self.write_file(host, &self.layout.config_file(name), yaml.as_bytes(), 0o600)
            .await?;
        let Some(backup) = &self.spec.spec.backup else {
            return Ok(());
        };
        if let Some(e) = self.backup_secrets.first_error() {
            return Err(ProviderError::Config(e));
        }
        // Its log and lock directories, and a directory repository (the DBA's storage every
        // host mounts at the same path) when it is not there yet.
        let dir = self.layout.member_dir(name);
        let mut script = format!(
            "set -e; for d in {log} {lock}; do mkdir -p \"$d\"; chown postgres: \"$d\"; done",
            log = quote(&format!("{dir}/pgbackrest-log")),
            lock = quote(&format!("{dir}/pgbackrest-lock")),
        );
        if let Some(repo) = backup.repository.path() {
            script.push_str(&format!(
                "; r={r}; if [ ! -e \"$r\" ]; then mkdir -p \"$r\"; chmod 750 \"$r\"; chown postgres: \"$r\"; fi",
                r = quote(&repo.display().to_string())
            ));
        }
        self.must(host, "making pgBackRest's directories", &script, b"", QUICK)
            .await?;
        let conf =
            config::pgbackrest_config(backup, self.backup_secrets.backup(), &self.layout, name);
        self.write_file(host, &self.pgbackrest_conf(name), conf.as_bytes(), 0o600)
            .await
    }

    /// A member's pgBackRest configuration, beside its data directory (PostgreSQL's
    /// `archive_command` reads `$PWD/../pgbackrest.conf`).
    fn pgbackrest_conf(&self, name: &str) -> String {
        format!("{}/pgbackrest.conf", self.layout.member_dir(name))
    }

    fn config_current(&self, name: &str, text: &str, pgbackrest: Option<&str>) -> Option<bool> {
        if !self.backup_secrets.errors().is_empty() {
            return None;
        }
        let backup_current = match &self.spec.spec.backup {
            None => true,
            Some(b) => {
                pgbackrest
                    == Some(
                        config::pgbackrest_config(
                            b,
                            self.backup_secrets.backup(),
                            &self.layout,
                            name,
                        )
                        .as_str(),
                    )
            }
        };
        let host = self.layout.member_host(name)?;
        let on_disk: serde_json::Value = serde_yaml::from_str(text).ok()?;
        let wanted = config::patroni_config(
            &self.spec,
            &self.layout,
            &self.topology.admit,
            name,
            host,
            &Credentials {
                superuser: String::new(),
                replication: String::new(),
                rewind: String::new(),
                restapi: Some(String::new()),
                etcd: Some(String::new()),
                pooler: None,
            },
        );
        Some(config::comparable(on_disk) == config::comparable(wanted) && backup_current)
    }

    async fn api_answers(&self, name: &str) -> bool {
        let Some(host) = self.layout.member_host(name) else {
            return false;
        };
        self.http
            .get(format!("{}/patroni", self.layout.api_url(host)))
            .send()
            .await
            .is_ok()
    }

    /// What `host` needs for its part of the cluster and lacks, as packages to name (the
    /// Debian names with what they provide).
    async fn missing_on(&self, host: &SshHost) -> Result<Vec<Package>, ProviderError> {
        let l = &self.layout;
        let same = |h: &SshHost| h.endpoint() == host.endpoint();
        let mut wanted = Vec::new();
        if l.hosts.iter().any(same) {
            wanted.push(Package::Postgres);
            wanted.push(Package::Patroni);
            if self.spec.spec.backup.is_some() {
                wanted.push(Package::PgBackRest);
            }
        }
        if l.etcd_hosts.iter().any(same) {
            wanted.push(Package::Etcd);
        }
        if self.spec.pgbouncer().is_some() && l.pooler_host().is_some_and(same) {
            wanted.push(Package::PgBouncer);
        }
        let mut script = String::new();
        for p in &wanted {
            let test = match p {
                Package::Postgres => format!("[ -x {}/postgres ]", quote(&l.bin_dir)),
                Package::Patroni => format!("[ -x \"{}\" ]", self.patroni_lookup()),
                Package::Etcd => "command -v etcd >/dev/null".to_owned(),
                Package::PgBackRest => "command -v pgbackrest >/dev/null".to_owned(),
                Package::PgBouncer => {
                    "{ command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null && command -v python3 >/dev/null".to_owned()
                }
            };
            script.push_str(&format!("{test} || echo {}\n", p.key()));
        }
        script.push_str("true\n");
        let out = self
            .must(host, "checking what is installed", &script, b"", QUICK)
            .await?;
        Ok(wanted
            .into_iter()
            .filter(|p| out.lines().any(|l| l.trim() == p.key()))
            .collect())
    }

    /// What `host` must have before `plan` creates anything on it: Linux, 1 GiB free where the
    /// cluster's directory goes, a clock within 5 s of this machine's, and nothing listening on
    /// the ports the plan's new pieces there will listen on. Problems, as sentences.
    async fn host_problems(
        &self,
        host: &SshHost,
        ports: &[(u16, &'static str)],
    ) -> Result<Vec<String>, ProviderError> {
        let mut script = format!(
            "echo \"os $(uname -s)\"\nd={r}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done\necho \"disk $(df -Pk \"$d\" | awk 'NR==2 {{print $4}}')\"\nbusy() {{ h=$(printf ':%04X' \"$1\"); cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h=\"$h\" '$4 == \"0A\" && substr($2, length($2) - 4) == h {{ f = 1 }} END {{ exit !f }}'; }}\n",
            r = quote(&self.layout.root)
        );
        for (port, _) in ports {
            script.push_str(&format!("busy {port} && echo \"port {port}\"\n"));
        }
        script.push_str("echo \"clock $(date +%s.%N)\"\n");
        let before = std::time::SystemTime::now();
        let out = self
            .must(host, "checking the host", &script, b"", QUICK)
            .await?;
        let after = std::time::SystemTime::now();
        let secs = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let mut problems = Vec::new();
        for line in out.lines() {
            let Some((k, v)) = line.split_once(' ') else {
                continue;
            };
            match k {
                "os" if v != "Linux" => problems.push(format!("it runs {v}, not Linux")),
                "disk" => {
                    if let Ok(kb) = v.trim().parse::<u64>()
                        && kb < MIN_FREE_KB
                    {
                        problems.push(format!(
                            "{} MB free where {} goes; at least {} MB are needed",
                            kb / 1024,
                            self.layout.root,
                            MIN_FREE_KB / 1024
                        ));
                    }
                }
                "port" => {
                    let port: u16 = v.trim().parse().unwrap_or_default();
                    let what = ports
                        .iter()
                        .find(|(p, _)| *p == port)
                        .map_or("", |(_, w)| *w);
                    problems.push(format!("port {port} ({what}) is already in use"));
                }
                "clock" => {
                    if let Ok(t) = v.trim().parse::<f64>() {
                        let skew = t - (secs(before) + secs(after)) / 2.0;
                        if skew.abs() > MAX_SKEW_SECS {
                            problems.push(format!(
                                "its clock is {skew:+.1} s off this machine's (more than {MAX_SKEW_SECS} s): synchronize it (chrony, systemd-timesyncd)"
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(problems)
    }

    /// Install `missing` on `host` with apt-get, keeping the services the packages start on
    /// their own off: Debian's main PostgreSQL cluster is not created, and its etcd and
    /// PgBouncer services are stopped and disabled (pgdba runs its own).
    async fn install(&self, host: &SshHost, missing: &[Package]) -> Result<(), ProviderError> {
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing
            .iter()
            .map(|p| p.debian_name(self.layout.major))
            .collect();
        let script = format!(
            "set -e\ncommand -v apt-get >/dev/null || {{ echo 'install_packages needs apt-get (Debian, Ubuntu); install {list} by hand' >&2; exit 3; }}\nexport DEBIAN_FRONTEND=noninteractive\nmkdir -p /etc/postgresql-common/createcluster.d\necho 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/pgdba.conf\napt-get update -qq\napt-get install -y -qq --no-install-recommends {list}\nif command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then for s in etcd pgbouncer; do systemctl disable --now $s >/dev/null 2>&1 || true; done; fi\n",
            list = names.join(" ")
        );
        self.must(
            host,
            &format!("installing {}", names.join(", ")),
            &script,
            b"",
            Duration::from_secs(900),
        )
        .await
        .map(|_| ())
    }

    /// Before the first thing is made on `host`: what it lacks, installed when the spec says
    /// so (else refused).
    async fn provision(&self, host: &SshHost) -> Result<(), ProviderError> {
        let missing = self.missing_on(host).await?;
        if missing.is_empty() {
            return Ok(());
        }
        if self.install_packages {
            return self.install(host, &missing).await;
        }
        Err(ProviderError::Config(format!(
            "host {} lacks {}",
            host.endpoint(),
            missing
                .iter()
                .map(|p| p.describe())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// A host needs this much free space where the cluster's directory goes.
const MIN_FREE_KB: u64 = 1 << 20;
/// And a clock this close to pgdba's (etcd warns from 1 s).
const MAX_SKEW_SECS: f64 = 5.0;

/// What a host may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Package {
    Postgres,
    Patroni,
    Etcd,
    PgBouncer,
    PgBackRest,
}

impl Package {
    fn key(self) -> &'static str {
        match self {
            Package::Postgres => "postgres",
            Package::Patroni => "patroni",
            Package::Etcd => "etcd",
            Package::PgBouncer => "pgbouncer",
            Package::PgBackRest => "pgbackrest",
        }
    }

    fn debian_name(self, major: u32) -> String {
        match self {
            Package::Postgres => format!("postgresql-{major}"),
            Package::Patroni => "patroni".to_owned(),
            Package::Etcd => "etcd-server".to_owned(),
            Package::PgBouncer => "pgbouncer python3".to_owned(),
            Package::PgBackRest => "pgbackrest".to_owned(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Package::Postgres => "PostgreSQL (its server binaries in bin_dir)",
            Package::Patroni => "Patroni (patroni)",
            Package::Etcd => "etcd (etcd)",
            Package::PgBouncer => "PgBouncer and python3 (pgbouncer, python3)",
            Package::PgBackRest => "pgBackRest (pgbackrest), for spec.backup",
        }
    }
}

/// The last lines of a command's output, for an error.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.trim().lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

#[async_trait::async_trait]
impl super::Provider for Ssh {
    fn kind(&self) -> &'static str {
        "ssh"
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn claims(&self) -> Vec<Claim> {
        self.layout.claims()
    }

    /// The directory on every host: the same whichever hosts carry members (adding a
    /// replica's host does not move the cluster).
    fn location(&self) -> String {
        format!("{} on each of its hosts", self.layout.root)
    }

    fn spec_section(&self) -> &'static str {
        "spec.provider.ssh"
    }

    fn remains(&self) -> String {
        format!(
            "{} on every host (after stopping the processes whose pid files are in it)",
            self.layout.root
        )
    }

    fn trust_host_keys(&self, keys: &BTreeMap<String, String>) {
        self.hosts.trust(keys);
    }

    fn untrusted_host_keys(&self) -> BTreeMap<String, String> {
        self.hosts.offered()
    }

    async fn check_hosts(&self) -> Result<(), ProviderError> {
        let hosts = self.layout.all_hosts();
        let reached = futures::future::join_all(hosts.iter().map(|h| self.hosts.reach(h))).await;
        for r in reached {
            if let Err(e @ SshError::KeyChanged { .. }) = r {
                return Err(Self::ssh_error(e));
            }
        }
        Ok(())
    }

    async fn inventory(&self) -> Inventory {
        let probes = self.probe_all().await;
        let fact = |endpoint: &str, key: &str| {
            probes
                .get(endpoint)
                .and_then(|p| p.as_ref().ok())
                .is_some_and(|p| p.facts.contains_key(key))
        };
        let nodes = self.layout.etcd_nodes();
        let etcd_exists = nodes
            .iter()
            .filter(|n| fact(&n.host.endpoint(), &format!("exists {}", n.name)))
            .count();
        let etcd_running = nodes
            .iter()
            .filter(|n| fact(&n.host.endpoint(), &format!("running {}", n.name)))
            .count();
        let dcs = Dcs {
            endpoint: self.topology.dcs_endpoint.clone(),
            exists: etcd_exists > 0,
            running: etcd_running > 0,
            healthy: false,
        };
        let mut unreachable = Vec::new();
        for (endpoint, probe) in &probes {
            let Err(e) = probe else { continue };
            if matches!(e, ProviderError::HostKeyUntrusted(_)) {
                continue;
            }
            let mut addresses: Vec<crate::diff::Address> = self
                .layout
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.endpoint() == *endpoint)
                .map(|(i, _)| crate::diff::Address::Member(self.layout.member_on(i)))
                .collect();
            if nodes.iter().any(|n| n.host.endpoint() == *endpoint) {
                addresses.push(crate::diff::Address::Dcs);
            }
            for address in addresses {
                unreachable.push(crate::observe::model::Unreachable {
                    address,
                    source: crate::observe::model::HOST_UNREACHABLE.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        let mut members = Vec::new();
        for (i, host) in self.layout.hosts.iter().enumerate() {
            let name = self.layout.member_on(i);
            let endpoint = host.endpoint();
            match probes.get(&endpoint) {
                Some(Ok(p)) => {
                    if !p.facts.contains_key(&format!("exists {name}")) {
                        continue;
                    }
                    let running = p.facts.contains_key(&format!("running {name}"));
                    members.push(InventoryMember {
                        name: name.clone(),
                        exists: true,
                        running,
                        postgres_running: p.facts.contains_key(&format!("postgres {name}")),
                        config_current: p.configs.get(&name).and_then(|t| {
                            self.config_current(
                                &name,
                                t,
                                p.configs
                                    .get(&format!("pgbackrest {name}"))
                                    .map(String::as_str),
                            )
                        }),
                        access: self.access_of(&name),
                    });
                }
                // A host pgdba cannot reach: its member is said to run, so that observation
                // tries it and names what did not answer, rather than concluding it is gone.
                Some(Err(e)) if !matches!(e, ProviderError::HostKeyUntrusted(_)) => {
                    members.push(InventoryMember {
                        name: name.clone(),
                        exists: true,
                        running: true,
                        postgres_running: true,
                        config_current: None,
                        access: self.access_of(&name),
                    });
                }
                _ => {}
            }
        }
        // PgBouncer on a host pgdba cannot reach: said to run as the spec asks, and named as
        // not looked at, rather than concluded gone.
        let pooler_unseen = self.spec.pgbouncer().is_some()
            && self.layout.pooler_host().is_some_and(|h| {
                matches!(probes.get(&h.endpoint()), Some(Err(e)) if !matches!(e, ProviderError::HostKeyUntrusted(_)))
            });
        if pooler_unseen
            && let Some(h) = self.layout.pooler_host()
            && let Some(Err(e)) = probes.get(&h.endpoint())
        {
            unreachable.push(crate::observe::model::Unreachable {
                address: crate::diff::Address::Pooler,
                source: crate::observe::model::HOST_UNREACHABLE.to_owned(),
                reason: e.to_string(),
            });
        }
        let pooler = self.layout.pooler_host().and_then(|h| {
            if pooler_unseen {
                return Some(crate::observe::model::Pooler {
                    running: true,
                    settings: crate::diff::pooler_settings(&self.spec).unwrap_or_default(),
                    address: None,
                });
            }
            let p = probes.get(&h.endpoint())?.as_ref().ok()?;
            p.facts.contains_key("exists pgbouncer").then(|| {
                let running = p.facts.contains_key("running pgbouncer");
                crate::observe::model::Pooler {
                    running,
                    settings: p
                        .facts
                        .get("pooler_settings")
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or_default(),
                    address: running.then(|| (h.address.clone(), self.layout.pooler_port)),
                }
            })
        });
        Inventory {
            dcs,
            members,
            pooler,
            dcs_location: self.location(),
            unreachable,
        }
    }

    async fn dcs_location(&self) -> crate::patroni::dcs::Location {
        self.location()
    }

    async fn dcs_healthy(&self) -> bool {
        self.all_etcd_healthy().await
    }

    async fn access(&self, name: &str) -> Result<Access, ProviderError> {
        self.access_of(name)
            .ok_or_else(|| ProviderError::UnknownMember(name.to_owned()))
    }

    async fn preflight(&self, plan: &crate::plan::Plan) -> Result<(), ProviderError> {
        use crate::plan::ActionKind;
        let creates = plan.actions.iter().any(|a| {
            matches!(
                a.kind,
                ActionKind::CreateDcs | ActionKind::CreateMember { .. } | ActionKind::CreatePooler
            )
        });
        if !creates {
            return Ok(());
        }
        if self.spec.spec.patroni.watchdog == crate::spec::model::WatchdogMode::Required {
            return Err(ProviderError::Config(
                "spec.patroni.watchdog `required` is not supported on the ssh provider yet; use `automatic` or `off`".to_owned(),
            ));
        }
        // What each host gets: the ports of the pieces this plan makes there.
        let mut ports: BTreeMap<String, Vec<(u16, &'static str)>> = BTreeMap::new();
        let l = &self.layout;
        for a in &plan.actions {
            match &a.kind {
                ActionKind::CreateDcs => {
                    for n in l.etcd_nodes() {
                        let p = ports.entry(n.host.endpoint()).or_default();
                        p.push((l.etcd_port, "etcd client"));
                        p.push((l.etcd_port + 1, "etcd peer"));
                    }
                }
                ActionKind::CreateMember { .. } => {
                    if let Some(h) = a.member().and_then(|m| l.member_host(m)) {
                        let p = ports.entry(h.endpoint()).or_default();
                        p.push((l.pg_port, "PostgreSQL"));
                        p.push((l.api_port, "Patroni REST API"));
                    }
                }
                ActionKind::CreatePooler => {
                    if let Some(h) = l.pooler_host() {
                        ports
                            .entry(h.endpoint())
                            .or_default()
                            .push((l.pooler_port, "PgBouncer"));
                    }
                }
                _ => {}
            }
        }
        let hosts: Vec<SshHost> = l
            .all_hosts()
            .into_iter()
            .filter(|h| ports.contains_key(&h.endpoint()))
            .collect();
        let ports = &ports;
        let checks = hosts.iter().map(|h| async move {
            let problems = self
                .host_problems(h, ports.get(&h.endpoint()).map_or(&[][..], Vec::as_slice))
                .await?;
            let missing = self.missing_on(h).await?;
            Ok::<_, ProviderError>((problems, missing))
        });
        let found = futures::future::join_all(checks).await;
        let mut refused = Vec::new();
        let mut busy = Vec::new();
        for (h, f) in hosts.iter().zip(found) {
            match f {
                Ok((problems, missing)) => {
                    for p in problems {
                        if p.starts_with("port ") {
                            busy.push(format!("host {}: {p}", h.endpoint()));
                        } else {
                            refused.push(format!("host {}: {p}", h.endpoint()));
                        }
                    }
                    if !missing.is_empty() && !self.install_packages {
                        refused.push(format!(
                            "host {} lacks {} (install them with its package manager, or set spec.provider.ssh.install_packages)",
                            h.endpoint(),
                            missing.iter().map(|p| p.describe()).collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
                // Not trusted yet: the plan records its key; the host is checked on apply.
                Err(ProviderError::HostKeyUntrusted(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if !busy.is_empty() {
            return Err(ProviderError::PortInUse(busy.join("; ")));
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(ProviderError::Config(refused.join("; ")))
        }
    }

    async fn create_dcs(&self, lineage: &str, creds: &Credentials) -> Result<(), ProviderError> {
        for host in self.layout.all_hosts() {
            self.ensure_root(&host, lineage).await?;
        }
        for node in self.layout.etcd_nodes() {
            self.provision(&node.host).await?;
        }
        for node in self.layout.etcd_nodes() {
            let dir = self.layout.etcd_dir(&node);
            self.must(
                &node.host,
                "making etcd's directory",
                &format!(
                    "set -e; mkdir -p {d}/data; chown -R postgres: {d}; chmod 700 {d}/data",
                    d = quote(&dir)
                ),
                b"",
                QUICK,
            )
            .await?;
        }
        self.start_dcs().await?;
        if let Some(password) = &creds.etcd {
            self.some_etcd().await?.enable_auth(password).await?;
        }
        Ok(())
    }

    async fn start_dcs(&self) -> Result<(), ProviderError> {
        let nodes = self.layout.etcd_nodes();
        let first = nodes
            .first()
            .ok_or_else(|| ProviderError::Config("no etcd host".to_owned()))?;
        let lineage = self.marker(&first.host).await?.unwrap_or_default();
        let token = format!("pgdba-{}-{lineage}", self.layout.cluster);
        for node in &nodes {
            let dir = self.layout.etcd_dir(node);
            let mut argv = vec!["etcd".to_owned()];
            argv.extend(config::etcd_args(&self.layout, node, &token));
            self.start_daemon(&node.host, &dir, "etcd", &argv, &[])
                .await?;
        }
        // The nodes find each other once all have started: wait for all, not each in turn.
        let log = format!("{}/etcd.log", self.layout.etcd_dir(first));
        self.wait_for("etcd", &first.host, &log, || self.all_etcd_healthy())
            .await
    }

    async fn create_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let host = self.member_host(name)?.clone();
        self.required_lineage(&host).await?;
        self.provision(&host).await?;
        let dir = self.layout.member_dir(name);
        self.must(
            &host,
            "making the member's directories",
            &format!(
                "set -e; mkdir -p {d}/data {d}/run; chown -R postgres: {d}; chmod 700 {d}/data",
                d = quote(&dir)
            ),
            b"",
            QUICK,
        )
        .await?;
        self.write_config(name, creds).await?;
        self.start_member(name, creds).await
    }

    async fn start_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let host = self.member_host(name)?.clone();
        let dir = self.layout.member_dir(name);
        let running = self
            .exec(
                &host,
                &format!("alive {} patroni", quote(&format!("{dir}/patroni.pid"))),
                b"",
                QUICK,
            )
            .await?
            .code
            == 0;
        if !running {
            self.write_config(name, creds).await?;
            let patroni = self
                .must(
                    &host,
                    "finding patroni",
                    &format!("echo {}", self.patroni_lookup()),
                    b"",
                    QUICK,
                )
                .await?;
            let argv = vec![patroni.trim().to_owned(), self.layout.config_file(name)];
            self.start_daemon(&host, &dir, "patroni", &argv, &[])
                .await?;
        }
        let what = format!("Patroni of member {name}");
        let log = format!("{dir}/patroni.log");
        self.wait_for(&what, &host, &log, || self.api_answers(name))
            .await
    }

    async fn write_member_config(
        &self,
        name: &str,
        creds: &Credentials,
    ) -> Result<(), ProviderError> {
        self.write_config(name, creds).await
    }

    async fn delete_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let host = self.member_host(name)?.clone();
        let dir = self.layout.member_dir(name);
        self.stop_daemon(&host, &dir, "patroni", "patroni").await?;
        let prefix = self.location().prefix;
        self.some_etcd()
            .await?
            .forget_member(&prefix, name, creds)
            .await?;
        self.remove_dir(&host, "the member's directory", &dir).await
    }

    async fn create_pooler(&self, creds: &Credentials) -> Result<(), ProviderError> {
        let Some(pgb) = self.spec.pgbouncer() else {
            return Err(ProviderError::Config("the spec has no pooler".to_owned()));
        };
        let password = creds.pooler_password()?;
        let host = self.pooler_host()?;
        self.required_lineage(&host).await?;
        self.provision(&host).await?;
        let dir = self.layout.pooler_dir();
        let base = pgbouncer::base_ini(pgb, "0.0.0.0", self.layout.pooler_port, &dir);
        let settings =
            serde_json::to_string(&crate::diff::pooler_settings(&self.spec).unwrap_or_default())
                .map_err(|e| ProviderError::Config(e.to_string()))?;
        for (file, bytes, mode) in [
            (
                pgbouncer::FOLLOW_FILE,
                pgbouncer::FOLLOW_SCRIPT.as_bytes(),
                0o755,
            ),
            (pgbouncer::BASE_FILE, base.as_bytes(), 0o600),
            (
                pgbouncer::USERLIST_FILE,
                pgbouncer::userlist(password).as_bytes(),
                0o600,
            ),
            ("settings.json", settings.as_bytes(), 0o644),
        ] {
            self.write_file(&host, &format!("{dir}/{file}"), bytes, mode)
                .await?;
        }
        self.start_pooler().await
    }

    async fn start_pooler(&self) -> Result<(), ProviderError> {
        let host = self.pooler_host()?;
        let dir = self.layout.pooler_dir();
        let mut argv = vec![
            "python3".to_owned(),
            format!("{dir}/{}", pgbouncer::FOLLOW_FILE),
            dir.clone(),
        ];
        argv.extend(self.layout.hosts.iter().map(|h| self.layout.api_url(h)));
        self.start_daemon(
            &host,
            &dir,
            "pgbouncer",
            &argv,
            &[("PATH", "/usr/sbin:/usr/bin:/bin".to_owned())],
        )
        .await?;
        let address = host.address.clone();
        let port = self.layout.pooler_port;
        self.wait_for("PgBouncer", &host, &format!("{dir}/pgbouncer.log"), || {
            pgbouncer::answers(&address, port)
        })
        .await
    }

    async fn delete_pooler(&self) -> Result<(), ProviderError> {
        let Some(host) = self.layout.pooler_host().cloned() else {
            return Ok(());
        };
        let dir = self.layout.pooler_dir();
        self.stop_daemon(&host, &dir, "pgbouncer", pgbouncer::FOLLOW_FILE)
            .await?;
        self.remove_dir(&host, "PgBouncer's directory", &dir).await
    }

    async fn destroy(&self, lineage: &str) -> Result<(), ProviderError> {
        let hosts = self.layout.all_hosts();
        for h in &hosts {
            if let Some(l) = self.marker(h).await?
                && l != lineage
            {
                return Err(ProviderError::Config(format!(
                    "{} on host {} carries lineage {l}, not the state's ({lineage}); nothing was removed",
                    self.layout.root,
                    h.endpoint()
                )));
            }
        }
        // The pooler, then the members (they stop cleanly while the DCS is there), then etcd.
        self.delete_pooler().await?;
        let stops = self.layout.hosts.iter().enumerate().map(|(i, h)| {
            let name = self.layout.member_on(i);
            let dir = self.layout.member_dir(&name);
            async move { self.stop_daemon(h, &dir, "patroni", "patroni").await }
        });
        for r in futures::future::join_all(stops).await {
            r?;
        }
        for node in self.layout.etcd_nodes() {
            let dir = self.layout.etcd_dir(&node);
            self.stop_daemon(&node.host, &dir, "etcd", "etcd").await?;
        }
        // The directory pgdba made for its clusters goes too, once empty.
        let parent = self
            .layout
            .root
            .rsplit_once('/')
            .map(|(p, _)| p.to_owned())
            .filter(|p| p.ends_with("/pgdba"));
        let remove = match &parent {
            Some(p) => format!(
                "rm -rf {r} && {{ rmdir {p} 2>/dev/null || true; }}",
                r = quote(&self.layout.root),
                p = quote(p)
            ),
            None => format!("rm -rf {}", quote(&self.layout.root)),
        };
        for h in &hosts {
            self.must(h, "removing the cluster's directory", &remove, b"", QUICK)
                .await?;
        }
        self.hosts.close().await;
        Ok(())
    }

    /// Patroni and the postmaster at once, and the postmaster's children: a crash.
    async fn kill_member(&self, name: &str) -> Result<(), ProviderError> {
        self.signal_member(name, "KILL", "killing").await
    }

    async fn freeze_member(&self, name: &str, frozen: bool) -> Result<(), ProviderError> {
        let signal = if frozen { "STOP" } else { "CONT" };
        self.signal_member(name, signal, "signalling").await
    }

    fn partitions(&self) -> bool {
        true
    }

    /// The member's host firewall drops every packet but SSH's (so that pgdba can heal it) and
    /// loopback's, in two chains of the cluster's own jumped to first from INPUT and OUTPUT;
    /// healing removes the jumps and the chains. Either is a no-op when already so.
    async fn isolate_member(&self, name: &str, isolated: bool) -> Result<(), ProviderError> {
        use sha2::Digest as _;
        let host = self.member_host(name)?.clone();
        let tag = hex::encode(&sha2::Sha256::digest(self.layout.cluster.as_bytes())[..4]);
        let (cin, cout) = (format!("PGDBA-{tag}-IN"), format!("PGDBA-{tag}-OUT"));
        let heal = format!(
            "while iptables -w -D INPUT -j {cin} 2>/dev/null; do :; done
while iptables -w -D OUTPUT -j {cout} 2>/dev/null; do :; done
for c in {cin} {cout}; do iptables -w -F $c 2>/dev/null || true; iptables -w -X $c 2>/dev/null || true; done
true
"
        );
        let script = if isolated {
            format!(
                "set -e
command -v iptables >/dev/null || {{ echo 'iptables is not installed' >&2; exit 3; }}
{heal}iptables -w -N {cin}
iptables -w -A {cin} -i lo -j RETURN
iptables -w -A {cin} -p tcp --dport {ssh} -j RETURN
iptables -w -A {cin} -j DROP
iptables -w -N {cout}
iptables -w -A {cout} -o lo -j RETURN
iptables -w -A {cout} -p tcp --sport {ssh} -j RETURN
iptables -w -A {cout} -j DROP
iptables -w -I INPUT 1 -j {cin}
iptables -w -I OUTPUT 1 -j {cout}
",
                ssh = host.port.unwrap_or(22)
            )
        } else {
            heal
        };
        self.must(
            &host,
            &format!(
                "{} member {name}",
                if isolated { "cutting off" } else { "joining" }
            ),
            &script,
            b"",
            QUICK,
        )
        .await
        .map(|_| ())
    }

    async fn damage_file(
        &self,
        name: &str,
        file: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), ProviderError> {
        let file = super::relation_file(file)?;
        let host = self.member_host(name)?.clone();
        let data = self.layout.data_dir(name);
        let script = format!(
            "set -e\nd={d}\npm=$(head -1 \"$d/postmaster.pid\" 2>/dev/null || true)\nif [ -n \"$pm\" ] && live \"$pm\"; then echo 'PostgreSQL runs: its files are damaged only while it is stopped' >&2; exit 3; fi\nf=\"$d/\"{f}\n[ -f \"$f\" ] && [ ! -L \"$f\" ] || {{ echo \"no file $f\" >&2; exit 3; }}\ndd of=\"$f\" bs=1 seek={offset} conv=notrunc status=none",
            d = quote(&data),
            f = quote(file),
        );
        self.must(
            &host,
            &format!("damaging {file} of {name}"),
            &script,
            bytes,
            QUICK,
        )
        .await
        .map(|_| ())
    }

    async fn forget_cluster(&self, creds: &Credentials) -> Result<(), ProviderError> {
        let prefix = self.location().prefix;
        self.some_etcd().await?.forget_prefix(&prefix, creds).await
    }

    async fn run_beside(
        &self,
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        within: Duration,
    ) -> Result<super::Ran, ProviderError> {
        let host = self.member_host(name)?.clone();
        // The environment may hold secrets (a repository's keys): it goes on standard input,
        // one `KEY=VALUE` a line, never on the host's command line.
        let mut envs = vec![
            format!("PGBACKREST_CONFIG={}", self.pgbackrest_conf(name)),
            format!("PGHOST={}", self.layout.socket_dir(name)),
            format!("PGPORT={}", self.layout.pg_port),
        ];
        envs.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        if let Some(bad) = envs.iter().find(|e| e.contains('\n')) {
            let key = bad.split('=').next().unwrap_or_default();
            return Err(ProviderError::Config(format!(
                "environment variable {key} holds a newline"
            )));
        }
        let mut stdin = envs.join("\n");
        stdin.push('\n');
        let script = format!(
            "cd {d} || exit 125\nwhile IFS= read -r kv; do export \"$kv\"; done\nexec setpriv --reuid=postgres --regid=postgres --init-groups -- {argv} </dev/null",
            d = quote(&self.layout.member_dir(name)),
            argv = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        );
        let out = self.exec(&host, &script, stdin.as_bytes(), within).await?;
        Ok(super::Ran {
            code: out.code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}
