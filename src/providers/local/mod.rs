//! The `local` provider: the cluster's etcd and each member's Patroni (which runs PostgreSQL)
//! as processes on this machine, as an unprivileged user, in the directories and on the ports
//! of its `Layout`.

pub mod config;
pub mod layout;
pub mod process;

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use super::{Access, Claim, Credentials, Inventory, ProviderError, Topology};
use crate::observe::model::{Dcs, InventoryMember};
use crate::poll::{Gave, Probe, poll_until};
use crate::roles::{ETCD_USER, RESTAPI_USER};
use crate::spec::model::{ClusterSpec, LocalProvider};
use layout::{Layout, MemberLayout};
use process::{RunAs, Spawn};

/// The file that marks a directory as a pgdba cluster's root.
pub const MARKER: &str = ".pgdba-cluster.json";

/// What the marker says: whose root it is, and whether pgdba created the directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Marker {
    cluster: String,
    lineage: String,
    created_root: bool,
}

fn read_marker(root: &Path) -> Option<Marker> {
    let path = root.join(MARKER);
    // Not through a link: a marker is a file pgdba wrote there itself.
    if !fs::symlink_metadata(&path).ok()?.is_file() {
        return None;
    }
    serde_json::from_slice(&fs::read(&path).ok()?).ok()
}

fn write_marker(root: &Path, m: &Marker) -> Result<(), ProviderError> {
    let path = root.join(MARKER);
    let bytes = serde_json::to_vec_pretty(m).map_err(|e| ProviderError::Config(e.to_string()))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| ProviderError::io(&path, e))?;
    std::io::Write::write_all(&mut f, &bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| ProviderError::io(&path, e))
}

/// The ports of `ports` something listens on already, each said with what it is for and, where
/// `/proc` tells, who holds it.
fn busy_ports(ports: &[(u16, String)]) -> Vec<String> {
    ports
        .iter()
        .filter(|(port, _)| !process::port_free(*port))
        .map(|(port, what)| match process::port_holder(*port) {
            Some(holder) => format!("port {port} ({what}) is already in use by {holder}"),
            None => format!("port {port} ({what}) is already in use"),
        })
        .collect()
}

pub struct Local {
    spec: ClusterSpec,
    /// The secrets of `spec.backup` and `spec.restore_from`, read once by the caller.
    backup_secrets: crate::secret::BackupSecrets,
    layout: Layout,
    topology: Topology,
    http: reqwest::Client,
}

const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Local {
    pub fn new(
        spec: &ClusterSpec,
        local: &LocalProvider,
        backup_secrets: &crate::secret::BackupSecrets,
    ) -> Local {
        let layout = Layout::new(spec, local);
        Local {
            spec: spec.clone(),
            backup_secrets: backup_secrets.clone(),
            topology: layout.topology(),
            layout,
            http: super::http_client(),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// What the tools run beside a member's PostgreSQL need in their environment: its
    /// pgBackRest configuration (Patroni's environment, which PostgreSQL and its
    /// `archive_command` inherit, has the same).
    fn beside_env(&self, m: &layout::MemberLayout) -> Vec<(String, String)> {
        vec![
            (
                "PGBACKREST_CONFIG".to_owned(),
                m.pgbackrest_config().display().to_string(),
            ),
            ("PGHOST".to_owned(), m.socket_dir.display().to_string()),
            ("PGPORT".to_owned(), m.pg_port.to_string()),
        ]
    }

    fn run_as(&self) -> Result<RunAs, ProviderError> {
        RunAs::resolve(&self.layout.run_as)
    }

    /// What exists on this machine: the DCS and every member directory of this cluster.
    /// Reads directories and `/proc`; never fails (a missing root means nothing exists).
    fn scan(&self) -> (Dcs, Vec<InventoryMember>) {
        let e = &self.layout.etcd;
        let dcs = Dcs {
            endpoint: e.endpoint(),
            exists: e.data_dir.exists(),
            running: process::running(&e.pidfile).is_some(),
            healthy: false,
        };
        let mut members = Vec::new();
        if let Ok(entries) = fs::read_dir(&self.layout.root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if layout::member_index(&self.layout.cluster, &name).is_none() {
                    continue;
                }
                let Some(m) = self.layout.member(&name) else {
                    continue;
                };
                members.push(InventoryMember {
                    exists: m.data_dir.exists() || m.config.exists(),
                    running: process::running(&m.pidfile).is_some(),
                    postgres_running: process::postmaster(&m.data_dir, &self.layout.bin_dir)
                        .is_some(),
                    config_current: self.config_current(&m),
                    access: Some(m.access()),
                    name,
                });
            }
        }
        members.sort_by_key(|m| layout::member_index(&self.layout.cluster, &m.name));
        (dcs, members)
    }

    /// Is a member's `patroni.yml` what the spec renders now? Bootstrap settings aside: only
    /// a new cluster reads them, and the DCS holds the live ones. Not known (`None`) while a
    /// secret of `spec.backup` cannot be read: plan refuses that, naming the field.
    fn config_current(&self, m: &MemberLayout) -> Option<bool> {
        if !self.backup_secrets.errors().is_empty() {
            return None;
        }
        let text = fs::read_to_string(&m.config).ok()?;
        let mut on_disk: serde_json::Value = serde_yaml::from_str(&text).ok()?;
        let mut wanted = config::patroni_config(&self.spec, &self.layout, &self.topology.admit, m);
        for v in [&mut on_disk, &mut wanted] {
            if let Some(o) = v.as_object_mut() {
                o.remove("bootstrap");
            }
        }
        // With `spec.backup`, its pgBackRest configuration too, secrets included (a changed
        // S3 key or passphrase is a changed file; only a yes or no comes out of here).
        let backup_current = self.spec.spec.backup.as_ref().is_none_or(|b| {
            fs::read_to_string(m.pgbackrest_config()).is_ok_and(|t| {
                t == config::pgbackrest_config(b, self.backup_secrets.backup(), &self.layout, m)
            })
        });
        Some(on_disk == wanted && backup_current)
    }

    /// Write a member's `patroni.yml` as the spec renders it now; its Patroni reads it on a
    /// reload.
    fn write_config(&self, name: &str) -> Result<(), ProviderError> {
        let m = self.member_layout(name)?;
        let cfg = config::patroni_config(&self.spec, &self.layout, &self.topology.admit, &m);
        let yaml = serde_yaml::to_string(&cfg).map_err(|e| ProviderError::Config(e.to_string()))?;
        let run_as = self.run_as()?;
        run_as.write_file(&m.config, yaml.as_bytes(), 0o600)?;
        self.write_backup_config(&run_as, &m)
    }

    /// What the plan needs from this machine that it does not have: a watchdog device the spec
    /// requires.
    fn check_watchdog(&self) -> Result<(), ProviderError> {
        if self.spec.spec.patroni.watchdog == crate::spec::model::WatchdogMode::Required
            && !Path::new("/dev/watchdog").exists()
        {
            return Err(ProviderError::Config(
                "spec.patroni.watchdog is `required`, but this machine has no /dev/watchdog (load Linux's softdog: modprobe softdog; or use `automatic`)".to_owned(),
            ));
        }
        Ok(())
    }

    fn etcd(&self) -> super::etcd::Etcd<'_> {
        super::etcd::Etcd {
            http: &self.http,
            endpoint: self.layout.etcd.endpoint(),
        }
    }

    /// Does etcd answer its health check?
    async fn etcd_healthy(&self) -> bool {
        self.etcd().healthy().await
    }

    fn check_ports(&self, ports: &[(u16, String)]) -> Result<(), ProviderError> {
        let busy = busy_ports(ports);
        if busy.is_empty() {
            return Ok(());
        }
        Err(ProviderError::PortInUse(format!(
            "{} on {}; choose other ports in spec.provider.local",
            busy.join("; "),
            layout::HOST
        )))
    }

    /// Before a plan is shown: the ports its actions will listen on are free. An action that
    /// creates or starts etcd needs etcd's two ports; one that creates or starts a member, that
    /// member's PostgreSQL and REST API ports.
    fn check_plan(&self, plan: &crate::plan::Plan) -> Result<(), ProviderError> {
        use crate::plan::ActionKind;
        let mut needed = Vec::new();
        let mut runs_postgres = false;
        for a in &plan.actions {
            match &a.kind {
                ActionKind::CreateDcs | ActionKind::StartDcs => {
                    let e = &self.layout.etcd;
                    needed.push((e.client_port, "etcd client".to_owned()));
                    needed.push((e.peer_port, "etcd peer".to_owned()));
                }
                ActionKind::CreateMember { .. } | ActionKind::StartMember => {
                    runs_postgres = true;
                    if let Some(m) = a.member().and_then(|n| self.layout.member(n)) {
                        needed.push((m.pg_port, format!("member {} PostgreSQL", m.name)));
                        needed.push((m.api_port, format!("member {} Patroni REST API", m.name)));
                    }
                }
                ActionKind::CreatePooler | ActionKind::StartPooler => {
                    if let Some(p) = &self.layout.pooler {
                        needed.push((p.port, "PgBouncer".to_owned()));
                    }
                }
                _ => {}
            }
        }
        if runs_postgres {
            self.check_postgres_installed()?;
        }
        self.check_watchdog()?;
        self.check_ports(&needed)
    }

    /// The chosen major's `postgres` is on this machine: refused before anything is created,
    /// rather than Patroni failing to start a member later.
    fn check_postgres_installed(&self) -> Result<(), ProviderError> {
        let version = self.spec.spec.postgres.version;
        let postgres = self.layout.bin_dir.join("postgres");
        if postgres.is_file() {
            return Ok(());
        }
        let default_dir = format!("/usr/lib/postgresql/{version}/bin");
        let hint = if self.layout.bin_dir == Path::new(&default_dir) {
            "spec.postgres.version; or set spec.provider.local.bin_dir"
        } else {
            "spec.provider.local.bin_dir"
        };
        Err(ProviderError::Config(format!(
            "PostgreSQL {version} is not installed here: {} does not exist ({hint})",
            postgres.display()
        )))
    }

    /// Create the cluster's root and its etcd, start etcd and wait until it is healthy.
    ///
    /// The root is created by pgdba (root-owned, below directories only root can change) and
    /// marked with `lineage`. An existing root is used only when it is empty or carries this
    /// lineage's marker: pgdba never takes over a directory with someone else's files, nor
    /// changes the owner or mode of a directory it did not create.
    async fn create_etcd(&self, lineage: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let run_as = self.run_as()?;
        let root = &self.layout.root;
        let created = process::create_root(root)?;
        match read_marker(root) {
            Some(m) if m.lineage == lineage && m.cluster == self.layout.cluster => {}
            Some(m) => {
                return Err(ProviderError::Config(format!(
                    "{} belongs to cluster {} (lineage {}), not to this one; choose another spec.provider.local.data_dir",
                    root.display(),
                    m.cluster,
                    m.lineage
                )));
            }
            None => {
                let empty = fs::read_dir(root)
                    .map_err(|e| ProviderError::io(root, e))?
                    .next()
                    .is_none();
                if !empty {
                    return Err(ProviderError::Config(format!(
                        "{} exists, is not empty and is not a pgdba cluster's directory; choose another spec.provider.local.data_dir",
                        root.display()
                    )));
                }
                write_marker(
                    root,
                    &Marker {
                        cluster: self.layout.cluster.clone(),
                        lineage: lineage.to_owned(),
                        created_root: created,
                    },
                )?;
            }
        }
        let dir = self.layout.etcd.data_dir.parent().unwrap_or(root);
        run_as.make_dir(dir, 0o700)?;
        self.start_etcd().await?;
        if let Some(password) = &creds.etcd {
            self.etcd().enable_auth(password).await?;
        }
        Ok(())
    }

    /// Start the existing etcd and wait until it is healthy.
    async fn start_etcd(&self) -> Result<(), ProviderError> {
        let e = &self.layout.etcd;
        if process::running(&e.pidfile).is_none() {
            let run_as = self.run_as()?;
            self.check_ports(&[
                (e.client_port, "etcd client".to_owned()),
                (e.peer_port, "etcd peer".to_owned()),
            ])?;
            let dir = e
                .data_dir
                .parent()
                .unwrap_or(&self.layout.root)
                .to_path_buf();
            process::spawn(
                run_as,
                Spawn {
                    program: &self.layout.etcd_bin,
                    args: config::etcd_args(&self.layout),
                    envs: Vec::new(),
                    cwd: &dir,
                    log: &e.log,
                    pidfile: &e.pidfile,
                },
            )?;
        }
        self.wait_started("etcd", &e.pidfile, &e.log, || self.etcd_healthy())
            .await
    }

    /// Wait until `up` (a health check, an answer) while the process of `pidfile` lives.
    async fn wait_started<F, Fut>(
        &self,
        what: &str,
        pidfile: &Path,
        log: &Path,
        mut up: F,
    ) -> Result<(), ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let waited = poll_until(START_TIMEOUT, Duration::from_millis(100), || {
            let check = up();
            async move {
                if check.await {
                    Probe::Done(())
                } else if process::running(pidfile).is_none() {
                    Probe::Fail("exited".to_owned())
                } else {
                    Probe::NotYet(String::new())
                }
            }
        })
        .await;
        waited.map_err(|g| match g {
            Gave::Failed(_) => ProviderError::Exited {
                what: what.to_owned(),
                log: log.display().to_string(),
                tail: process::tail(log, 15),
            },
            Gave::Up { .. } => ProviderError::Timeout {
                what: what.to_owned(),
                secs: START_TIMEOUT.as_secs(),
                log: log.display().to_string(),
                tail: process::tail(log, 15),
            },
        })
    }

    fn pooler_layout(&self) -> Result<&layout::PoolerLayout, ProviderError> {
        self.layout
            .pooler
            .as_ref()
            .ok_or_else(|| ProviderError::Config("the spec has no pooler".to_owned()))
    }

    /// The pooler as it is on this machine: its directory, its supervisor's pidfile, the
    /// settings it was created with.
    fn pgbouncer_seen(&self) -> Option<crate::observe::model::Pooler> {
        let dir = self.layout.root.join("pgbouncer");
        let settings_file = dir.join("settings.json");
        if !dir.exists() {
            return None;
        }
        let settings = fs::read(&settings_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let running = process::running(&dir.join("pgbouncer.pid")).is_some();
        let port = self.layout.pooler.as_ref().map(|p| p.port);
        Some(crate::observe::model::Pooler {
            running,
            settings,
            address: port
                .filter(|_| running)
                .map(|p| (layout::HOST.to_owned(), p)),
        })
    }

    /// Write PgBouncer's files (the supervisor, its configuration, the auth user's password in
    /// a 0600 file of the run-as user: PgBouncer reads it from nowhere else) and start it.
    async fn create_pgbouncer(&self, creds: &Credentials) -> Result<(), ProviderError> {
        let p = self.pooler_layout()?;
        let Some(pgbouncer) = self.spec.pgbouncer() else {
            return Err(ProviderError::Config("the spec has no pooler".to_owned()));
        };
        let password = creds.pooler_password()?;
        let run_as = self.run_as()?;
        self.check_ports(&[(p.port, "PgBouncer".to_owned())])?;
        run_as.make_dir(&p.dir, 0o750)?;
        let dir = p.dir.display().to_string();
        let base = super::pgbouncer::base_ini(pgbouncer, layout::HOST, p.port, &dir);
        let settings = serde_json::to_vec(&crate::diff::pooler_settings(&self.spec))
            .map_err(|e| ProviderError::Config(e.to_string()))?;
        for (name, content, mode) in [
            (
                super::pgbouncer::FOLLOW_FILE,
                super::pgbouncer::FOLLOW_SCRIPT.as_bytes(),
                0o755,
            ),
            (super::pgbouncer::BASE_FILE, base.as_bytes(), 0o600),
            (
                super::pgbouncer::USERLIST_FILE,
                super::pgbouncer::userlist(password).as_bytes(),
                0o600,
            ),
            ("settings.json", settings.as_slice(), 0o644),
        ] {
            run_as.write_file(&p.dir.join(name), content, mode)?;
        }
        self.start_pgbouncer().await
    }

    /// Start the pooler's supervisor (which starts PgBouncer once it knows the leader) and wait
    /// until PgBouncer accepts connections.
    async fn start_pgbouncer(&self) -> Result<(), ProviderError> {
        let p = self.pooler_layout()?;
        if process::running(&p.pidfile).is_none() {
            let run_as = self.run_as()?;
            self.check_ports(&[(p.port, "PgBouncer".to_owned())])?;
            let mut args = vec![
                p.dir
                    .join(super::pgbouncer::FOLLOW_FILE)
                    .display()
                    .to_string(),
                p.dir.display().to_string(),
            ];
            args.extend(self.layout.members.iter().map(MemberLayout::api_url));
            process::spawn(
                run_as,
                Spawn {
                    program: Path::new("/usr/bin/python3"),
                    args,
                    envs: vec![(
                        "PGBOUNCER".to_owned(),
                        layout::DEFAULT_PGBOUNCER_BIN.to_owned(),
                    )],
                    cwd: &p.dir,
                    log: &p.log,
                    pidfile: &p.pidfile,
                },
            )?;
        }
        let port = p.port;
        self.wait_started("PgBouncer", &p.pidfile, &p.log, || {
            super::pgbouncer::answers(layout::HOST, port)
        })
        .await
    }

    /// Stop the pooler and remove its directory.
    async fn delete_pgbouncer(&self) -> Result<(), ProviderError> {
        let dir = self.layout.root.join("pgbouncer");
        if let Some(id) = process::running(&dir.join("pgbouncer.pid")) {
            process::stop(&id, Duration::from_secs(30)).await?;
        }
        if dir.exists() {
            process::remove_dir(&dir)?;
        }
        Ok(())
    }

    fn member_layout(&self, name: &str) -> Result<MemberLayout, ProviderError> {
        self.layout
            .member(name)
            .ok_or_else(|| ProviderError::UnknownMember(name.to_owned()))
    }

    /// Create a member's directories and configuration and start its Patroni. Patroni then
    /// initializes the cluster (the first member) or clones the primary (the others).
    /// Returns once its REST API answers; the health gate waits for the rest.
    async fn create(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let m = self.member_layout(name)?;
        let run_as = self.run_as()?;
        // Nothing is written unless the member can start: a failed create leaves no trace,
        // so the next plan creates it again.
        self.check_ports(&[
            (m.pg_port, format!("member {name} PostgreSQL")),
            (m.api_port, format!("member {name} Patroni REST API")),
        ])?;
        run_as.make_dir(&m.dir, 0o750)?;
        run_as.make_dir_as_user(&m.socket_dir, 0o755)?;
        let cfg = config::patroni_config(&self.spec, &self.layout, &self.topology.admit, &m);
        let yaml = serde_yaml::to_string(&cfg).map_err(|e| ProviderError::Config(e.to_string()))?;
        run_as.write_file(&m.config, yaml.as_bytes(), 0o600)?;
        self.write_backup_config(&run_as, &m)?;
        self.start(name, creds).await
    }

    /// `spec.backup`: the member's pgBackRest configuration, and the repository directory for
    /// the run-as user. A repository inside the cluster's root is made by pgdba, as the
    /// cluster's other directories; anywhere else it is made as the run-as user, so it can only
    /// be where that user may write.
    fn write_backup_config(&self, run_as: &RunAs, m: &MemberLayout) -> Result<(), ProviderError> {
        if let Some(e) = self.backup_secrets.first_error() {
            return Err(ProviderError::Config(e));
        }
        self.write_restore_config(run_as, m)?;
        let Some(backup) = &self.spec.spec.backup else {
            return Ok(());
        };
        // pgBackRest writes its logs there but does not make the directory.
        run_as.make_dir_as_user(&m.dir.join("pgbackrest-log"), 0o750)?;
        let text = config::pgbackrest_config(backup, self.backup_secrets.backup(), &self.layout, m);
        // 0600, the run-as user's: it may hold the repository's secrets.
        let write = || run_as.write_file(&m.pgbackrest_config(), text.as_bytes(), 0o600);
        let Some(repo) = backup.repository.path() else {
            return write();
        };
        match repo.strip_prefix(&self.layout.root) {
            Ok(rel) if !rel.as_os_str().is_empty() => {
                let mut dir = self.layout.root.clone();
                for part in rel.components() {
                    dir.push(part);
                    run_as.make_dir(&dir, 0o750)?;
                }
            }
            _ => run_as
                .as_user(|| {
                    use std::os::unix::fs::DirBuilderExt;
                    fs::DirBuilder::new().recursive(true).mode(0o750).create(repo)
                })
                .map_err(|e| {
                    ProviderError::Config(format!(
                        "the backup repository {} cannot be made by user {}: {e}; create it for that user (install -d -o {} -m 750 {})",
                        repo.display(),
                        self.layout.run_as,
                        self.layout.run_as,
                        repo.display()
                    ))
                })?,
        }
        write()
    }

    /// `spec.restore_from`: the member's pgBackRest configuration of the source repository
    /// (`restore.conf`), which Patroni's custom bootstrap reads, and its log directory. The
    /// source repository is only read, never made or written here.
    fn write_restore_config(&self, run_as: &RunAs, m: &MemberLayout) -> Result<(), ProviderError> {
        let Some(restore) = &self.spec.spec.restore_from else {
            return Ok(());
        };
        run_as.make_dir_as_user(&m.dir.join("pgbackrest-log"), 0o750)?;
        let text = config::restore_config(restore, self.backup_secrets.restore_from(), m);
        run_as.write_file(
            &m.dir.join(crate::spec::model::RESTORE_CONF),
            text.as_bytes(),
            0o600,
        )
    }

    /// Start an existing member's Patroni; returns once its REST API answers.
    async fn start(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let m = self.member_layout(name)?;
        if process::running(&m.pidfile).is_none() {
            let run_as = self.run_as()?;
            self.check_ports(&[
                (m.pg_port, format!("member {name} PostgreSQL")),
                (m.api_port, format!("member {name} Patroni REST API")),
            ])?;
            let envs = vec![
                (
                    "PATRONI_SUPERUSER_PASSWORD".to_owned(),
                    creds.superuser.clone(),
                ),
                (
                    "PATRONI_REPLICATION_PASSWORD".to_owned(),
                    creds.replication.clone(),
                ),
                ("PATRONI_REWIND_PASSWORD".to_owned(), creds.rewind.clone()),
            ];
            let mut envs = envs;
            if let Some(p) = &creds.restapi {
                envs.push((
                    "PATRONI_RESTAPI_USERNAME".to_owned(),
                    RESTAPI_USER.to_owned(),
                ));
                envs.push(("PATRONI_RESTAPI_PASSWORD".to_owned(), p.clone()));
            }
            if let Some(p) = &creds.etcd {
                // Patroni takes etcd's credentials from the environment only together with
                // its hosts.
                envs.push((
                    "PATRONI_ETCD3_HOSTS".to_owned(),
                    format!("{}:{}", layout::HOST, self.layout.etcd.client_port),
                ));
                envs.push(("PATRONI_ETCD3_USERNAME".to_owned(), ETCD_USER.to_owned()));
                envs.push(("PATRONI_ETCD3_PASSWORD".to_owned(), p.clone()));
            }
            process::spawn(
                run_as,
                Spawn {
                    program: &self.layout.patroni_bin,
                    args: vec![m.config.display().to_string()],
                    envs,
                    cwd: &m.dir,
                    log: &m.log,
                    pidfile: &m.pidfile,
                },
            )?;
        }
        let url = format!("{}/patroni", m.api_url());
        self.wait_started(
            &format!("Patroni of member {name}"),
            &m.pidfile,
            &m.log,
            || async { self.http.get(&url).send().await.is_ok() },
        )
        .await
    }

    /// Stop a member's Patroni (which stops its PostgreSQL cleanly).
    async fn stop(&self, name: &str) -> Result<(), ProviderError> {
        let m = self.member_layout(name)?;
        if let Some(id) = process::running(&m.pidfile) {
            process::stop(&id, Duration::from_secs(60)).await?;
        }
        // Patroni stops PostgreSQL on SIGTERM; a postmaster left behind (Patroni killed)
        // is stopped through its own pidfile, once it is shown to be that data directory's.
        if let Some(id) = process::postmaster(&m.data_dir, &self.layout.bin_dir) {
            process::stop(&id, Duration::from_secs(30)).await?;
        }
        Ok(())
    }

    /// Stop a member, forget it in the DCS and remove its directory.
    async fn delete(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let m = self.member_layout(name)?;
        self.stop(name).await?;
        self.etcd()
            .forget_member(&self.layout.dcs().prefix, name, creds)
            .await?;
        process::remove_dir(&m.dir)
    }

    /// Stop every member and etcd, and remove what pgdba created in the cluster's root: its
    /// etcd, its members' directories and its marker; the root itself only when pgdba created
    /// it and nothing else is left in it. Refused unless the root carries the marker of this
    /// lineage.
    async fn remove_all(&self, lineage: &str) -> Result<(), ProviderError> {
        let root = &self.layout.root;
        if fs::symlink_metadata(root).is_err() {
            return Ok(());
        }
        let marker = read_marker(root).ok_or_else(|| {
            ProviderError::Config(format!(
                "{} carries no pgdba marker: pgdba does not delete a directory it cannot prove it created",
                root.display()
            ))
        })?;
        if marker.lineage != lineage || marker.cluster != self.layout.cluster {
            return Err(ProviderError::Config(format!(
                "{} belongs to cluster {} (lineage {}), not to the one in the state (lineage {lineage}); nothing was removed",
                root.display(),
                marker.cluster,
                marker.lineage
            )));
        }
        self.delete_pgbouncer().await?;
        let (_, members) = self.scan();
        let stops = members.iter().map(|m| self.stop(&m.name));
        for r in futures::future::join_all(stops).await {
            r?;
        }
        if let Some(id) = process::running(&self.layout.etcd.pidfile) {
            process::stop(&id, Duration::from_secs(30)).await?;
        }
        for m in &members {
            if let Some(l) = self.layout.member(&m.name) {
                process::remove_dir(&l.dir)?;
            }
        }
        if let Some(etcd) = self.layout.etcd.data_dir.parent() {
            process::remove_dir(etcd)?;
        }
        let marker_path = root.join(MARKER);
        fs::remove_file(&marker_path).map_err(|e| ProviderError::io(&marker_path, e))?;
        if marker.created_root {
            // Only if empty: whatever someone else put there stays, with the directory.
            let _ = fs::remove_dir(root);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::Provider for Local {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn claims(&self) -> Vec<Claim> {
        self.layout.claims()
    }

    fn location(&self) -> String {
        self.layout.root.display().to_string()
    }

    fn spec_section(&self) -> &'static str {
        "spec.provider.local"
    }

    fn remains(&self) -> String {
        "its data_dir".to_owned()
    }

    async fn inventory(&self) -> Inventory {
        let (dcs, members) = self.scan();
        Inventory {
            dcs,
            members,
            pooler: self.pgbouncer_seen(),
            dcs_location: self.layout.dcs(),
            unreachable: Vec::new(),
        }
    }

    async fn dcs_location(&self) -> crate::patroni::dcs::Location {
        self.layout.dcs()
    }

    async fn dcs_healthy(&self) -> bool {
        self.etcd_healthy().await
    }

    async fn access(&self, name: &str) -> Result<Access, ProviderError> {
        Ok(self.member_layout(name)?.access())
    }

    async fn preflight(&self, plan: &crate::plan::Plan) -> Result<(), ProviderError> {
        self.check_plan(plan)
    }

    async fn create_dcs(&self, lineage: &str, creds: &Credentials) -> Result<(), ProviderError> {
        self.create_etcd(lineage, creds).await
    }

    async fn start_dcs(&self) -> Result<(), ProviderError> {
        self.start_etcd().await
    }

    async fn create_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        self.create(name, creds).await
    }

    async fn start_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        self.start(name, creds).await
    }

    async fn write_member_config(
        &self,
        name: &str,
        _creds: &Credentials,
    ) -> Result<(), ProviderError> {
        // Patroni gets the passwords through its environment, not its file.
        self.write_config(name)
    }

    async fn delete_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        self.delete(name, creds).await
    }

    async fn create_pooler(&self, creds: &Credentials) -> Result<(), ProviderError> {
        self.create_pgbouncer(creds).await
    }

    async fn start_pooler(&self) -> Result<(), ProviderError> {
        self.start_pgbouncer().await
    }

    async fn delete_pooler(&self) -> Result<(), ProviderError> {
        self.delete_pgbouncer().await
    }

    async fn destroy(&self, lineage: &str) -> Result<(), ProviderError> {
        self.remove_all(lineage).await
    }

    async fn kill_member(&self, name: &str) -> Result<(), ProviderError> {
        let m = self.member_layout(name)?;
        // Both at once, as a machine that dies takes both: Patroni first, so that it cannot
        // notice and restart its PostgreSQL in between.
        let patroni = process::running(&m.pidfile);
        let postmaster = process::postmaster(&m.data_dir, &self.layout.bin_dir);
        // The postmaster's children too, as a crash takes them: left alone they linger a moment
        // after it, holding its shared memory and ports, and a start right away fails.
        // Listed before the kill, while they are still its children.
        let family: Vec<process::ProcessId> = postmaster
            .as_ref()
            .map(|id| process::with_descendants(id.pid))
            .unwrap_or_default()
            .into_iter()
            .filter_map(process::ProcessId::of)
            .collect();
        if let Some(id) = &patroni {
            process::kill_now(id).await?;
        }
        for id in &family {
            process::kill_now(id).await?;
        }
        Ok(())
    }

    async fn freeze_member(&self, name: &str, frozen: bool) -> Result<(), ProviderError> {
        let m = self.member_layout(name)?;
        let patroni = process::running(&m.pidfile);
        let postmaster = process::postmaster(&m.data_dir, &self.layout.bin_dir);
        if patroni.is_none() && postmaster.is_none() {
            return Err(ProviderError::Config(format!(
                "member {name} does not run: there is nothing to {}",
                if frozen { "freeze" } else { "thaw" }
            )));
        }
        // PostgreSQL first when freezing (Patroni cannot react), Patroni first when thawing.
        let mut order = [postmaster, patroni];
        if !frozen {
            order.reverse();
        }
        for id in order.iter().flatten() {
            process::pause(id, frozen);
        }
        Ok(())
    }

    fn partitions(&self) -> bool {
        false
    }

    async fn isolate_member(&self, name: &str, _isolated: bool) -> Result<(), ProviderError> {
        Err(ProviderError::Config(format!(
            "member {name} shares this machine's loopback with the others, which cannot be cut: `chaos freeze --member {name}` stops its processes instead"
        )))
    }

    async fn damage_file(
        &self,
        name: &str,
        file: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), ProviderError> {
        use std::io::{Seek, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let m = self.member_layout(name)?;
        let file = super::relation_file(file)?;
        if process::postmaster(&m.data_dir, &self.layout.bin_dir).is_some() {
            return Err(ProviderError::Config(format!(
                "member {name}'s PostgreSQL runs: its files are damaged only while it is stopped"
            )));
        }
        // Within the data directory once every link is resolved, and not a link itself.
        let path = m.data_dir.join(file);
        let real = std::fs::canonicalize(&path).map_err(|e| ProviderError::io(&path, e))?;
        let root =
            std::fs::canonicalize(&m.data_dir).map_err(|e| ProviderError::io(&m.data_dir, e))?;
        if !real.starts_with(&root) {
            return Err(ProviderError::Config(format!(
                "{} leads out of member {name}'s data directory",
                path.display()
            )));
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| ProviderError::io(&path, e))?;
        let len = f.metadata().map_err(|e| ProviderError::io(&path, e))?.len();
        if offset + bytes.len() as u64 > len {
            return Err(ProviderError::Config(format!(
                "{} has {len} bytes: nothing to overwrite at {offset}",
                path.display()
            )));
        }
        f.seek(std::io::SeekFrom::Start(offset))
            .and_then(|_| f.write_all(bytes))
            .and_then(|()| f.sync_all())
            .map_err(|e| ProviderError::io(&path, e))
    }

    async fn forget_cluster(&self, creds: &Credentials) -> Result<(), ProviderError> {
        self.etcd()
            .forget_prefix(&self.layout.dcs().prefix, creds)
            .await
    }

    async fn run_beside(
        &self,
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        within: std::time::Duration,
    ) -> Result<super::Ran, ProviderError> {
        let m = self.member_layout(name)?;
        let run_as = self.run_as()?;
        let Some((program, args)) = argv.split_first() else {
            return Err(ProviderError::Config("nothing to run".to_owned()));
        };
        let mut envs = self.beside_env(&m);
        envs.extend(env.iter().cloned());
        process::run(&run_as, program, args, &envs, &m.dir, within).await
    }
}
