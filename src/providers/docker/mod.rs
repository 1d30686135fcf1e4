//! The `docker` provider: a 3-node etcd and each member's Patroni (which runs PostgreSQL) as
//! containers of pgdba's node image (`deployments/docker/`), on a bridge network of the
//! cluster's own, with data in named volumes and ports published on the host's loopback.
//!
//! Every object carries the cluster's labels (`layout::LABEL_*`): the inventory is read back
//! from Docker by label, a container that exists is adopted rather than created twice, and
//! `destroy` removes exactly what carries this cluster's name and lineage.

pub mod config;
pub mod layout;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, EndpointSettings, HostConfig,
    Ipam, IpamConfig, NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptions, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptions, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::sync::OnceCell;

use super::{Access, Claim, Credentials, Inventory, ProviderError, Topology, pgbouncer};
use crate::observe::model::{Dcs, InventoryMember};
use crate::poll::{Gave, Probe, poll_until};
use crate::spec::model::{ClusterSpec, DockerProvider};
use layout::{
    API_PORT, CONFIG_DIR, CONFIG_FILE, ETCD_CLIENT_PORT, ETCD_HOME, LABEL_CLUSTER, LABEL_LINEAGE,
    LABEL_NAME, LABEL_POOLER, LABEL_ROLE, Layout, Node, PG_HOME, PG_PORT,
};

/// How long a container's service may take to answer after its start.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Where ports are published: the host's loopback only.
const PUBLISH_ON: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn docker_error(what: &str, e: &bollard::errors::Error) -> ProviderError {
    ProviderError::Docker(format!("{what}: {e}"))
}

/// Is this Docker's "no such object" answer?
fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub struct Docker {
    spec: ClusterSpec,
    /// The secrets of `spec.backup` and `spec.restore_from`, read once by the caller.
    backup_secrets: crate::secret::BackupSecrets,
    layout: Layout,
    topology: Topology,
    http: reqwest::Client,
    engine: OnceCell<bollard::Docker>,
}

/// A container of this cluster as Docker lists it.
struct Seen {
    name: String,
    role: String,
    lineage: String,
    labels: HashMap<String, String>,
    running: bool,
    /// Docker's word for its state (`running`, `restarting`, `exited`).
    state: String,
    /// Published host port of each container port.
    ports: HashMap<u16, u16>,
}

impl Seen {
    fn of(c: &ContainerSummary) -> Option<Seen> {
        let labels = c.labels.as_ref()?;
        Some(Seen {
            name: labels.get(LABEL_NAME)?.clone(),
            role: labels.get(LABEL_ROLE)?.clone(),
            lineage: labels.get(LABEL_LINEAGE).cloned().unwrap_or_default(),
            labels: labels.clone(),
            running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
            state: c
                .state
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            ports: c
                .ports
                .iter()
                .flatten()
                .filter(|p| p.ip.as_deref() == Some(&PUBLISH_ON.to_string()))
                .filter_map(|p| Some((p.private_port, p.public_port?)))
                .collect(),
        })
    }

    fn url(&self, port: u16) -> Option<String> {
        Some(format!("http://{PUBLISH_ON}:{}", self.ports.get(&port)?))
    }
}

impl Docker {
    pub fn new(
        spec: &ClusterSpec,
        docker: &DockerProvider,
        backup_secrets: &crate::secret::BackupSecrets,
    ) -> Docker {
        let layout = Layout::new(spec, docker);
        Docker {
            spec: spec.clone(),
            backup_secrets: backup_secrets.clone(),
            topology: layout.topology(),
            layout,
            http: super::http_client(),
            engine: OnceCell::new(),
        }
    }

    /// The Docker engine, connected on first use (`DOCKER_HOST` when it names a Unix socket,
    /// else Docker's default one), speaking API 1.41 (Docker 20.10), which later engines also
    /// accept: no version negotiation, one round trip less on every plan.
    async fn engine(&self) -> Result<&bollard::Docker, ProviderError> {
        self.engine
            .get_or_try_init(|| async {
                let host = std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|h| h.starts_with("unix://"))
                    .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
                bollard::Docker::connect_with_local(
                    &host,
                    120,
                    &bollard::ClientVersion {
                        major_version: 1,
                        minor_version: 41,
                    },
                )
                .map_err(|e| docker_error("cannot reach the Docker engine", &e))
            })
            .await
    }

    fn cluster_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_CLUSTER}={}", self.layout.cluster)],
        )])
    }

    /// This cluster's containers, running or not.
    async fn containers(&self) -> Result<Vec<Seen>, ProviderError> {
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.cluster_filter())
            .build();
        let list = self
            .engine()
            .await?
            .list_containers(Some(opts))
            .await
            .map_err(|e| docker_error("listing containers", &e))?;
        Ok(list.iter().filter_map(Seen::of).collect())
    }

    fn labels(&self, lineage: &str, role: &str, name: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_CLUSTER.to_owned(), self.layout.cluster.clone()),
            (LABEL_LINEAGE.to_owned(), lineage.to_owned()),
            (LABEL_ROLE.to_owned(), role.to_owned()),
            (LABEL_NAME.to_owned(), name.to_owned()),
        ])
    }

    fn access_of(&self, s: &Seen) -> Option<Access> {
        Some(Access {
            host: PUBLISH_ON.to_string(),
            port: *s.ports.get(&PG_PORT)?,
            api_url: s.url(API_PORT)?,
            socket_dir: None,
            data_dir: format!("volume {}", self.layout.member(&s.name).volume),
        })
    }

    /// The lineage the cluster's network carries: everything else pgdba creates for the
    /// cluster carries it too.
    async fn network_lineage(&self) -> Result<Option<String>, ProviderError> {
        match self
            .engine()
            .await?
            .inspect_network(&self.layout.network, None)
            .await
        {
            Ok(n) => {
                let labels = n.labels.unwrap_or_default();
                if labels.get(LABEL_CLUSTER) != Some(&self.layout.cluster) {
                    return Err(ProviderError::InUse(format!(
                        "Docker network {} exists and is not cluster {}'s; choose another spec.provider.docker.network",
                        self.layout.network, self.layout.cluster
                    )));
                }
                Ok(labels.get(LABEL_LINEAGE).cloned())
            }
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(docker_error("inspecting the network", &e)),
        }
    }

    /// The lineage of the cluster's network, which must exist: it is created with the DCS,
    /// before members and the pooler.
    async fn required_lineage(&self) -> Result<String, ProviderError> {
        self.network_lineage().await?.ok_or_else(|| {
            ProviderError::Config(format!(
                "Docker network {} does not exist: the DCS is created first",
                self.layout.network
            ))
        })
    }

    /// The Docker networks whose subnet overlaps the spec's.
    async fn overlapping_networks(&self) -> Result<Vec<String>, ProviderError> {
        let Some(subnet) = &self.layout.subnet else {
            return Ok(Vec::new());
        };
        let nets = self
            .engine()
            .await?
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(|e| docker_error("listing networks", &e))?;
        Ok(nets
            .iter()
            .filter(|n| n.name.as_deref() != Some(&self.layout.network))
            .flat_map(|n| {
                let name = n.name.clone().unwrap_or_default();
                n.ipam
                    .iter()
                    .flat_map(|i| i.config.iter().flatten())
                    .filter_map(|c| c.subnet.clone())
                    .filter(|s| super::subnets_overlap(subnet, s))
                    .map(move |s| format!("{name} ({s})"))
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    async fn check_subnet(&self) -> Result<(), ProviderError> {
        let clash = self.overlapping_networks().await?;
        if clash.is_empty() {
            return Ok(());
        }
        Err(ProviderError::InUse(format!(
            "spec.provider.docker.subnet {} overlaps Docker network {}; choose another subnet",
            self.layout.subnet.as_deref().unwrap_or_default(),
            clash.join(", ")
        )))
    }

    async fn check_image(&self) -> Result<(), ProviderError> {
        match self.engine().await?.inspect_image(&self.layout.image).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Err(ProviderError::Config(format!(
                "image {} is not on this Docker host: build it with deployments/docker/build.sh {}",
                self.layout.image, self.layout.major
            ))),
            Err(e) => Err(docker_error("inspecting the image", &e)),
        }
    }

    /// The cluster's network, made when missing (with the spec's subnet, after checking that no
    /// other network overlaps it).
    async fn ensure_network(&self, lineage: &str) -> Result<(), ProviderError> {
        match self.network_lineage().await? {
            Some(l) if l == lineage => return Ok(()),
            Some(l) => {
                return Err(ProviderError::InUse(format!(
                    "Docker network {} belongs to another lineage of cluster {} ({l}); destroy that one first",
                    self.layout.network, self.layout.cluster
                )));
            }
            None => {}
        }
        self.check_subnet().await?;
        let req = NetworkCreateRequest {
            name: self.layout.network.clone(),
            driver: Some("bridge".to_owned()),
            ipam: self.layout.subnet.as_ref().map(|s| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(s.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(HashMap::from([
                (LABEL_CLUSTER.to_owned(), self.layout.cluster.clone()),
                (LABEL_LINEAGE.to_owned(), lineage.to_owned()),
            ])),
            ..Default::default()
        };
        self.engine()
            .await?
            .create_network(req)
            .await
            .map(|_| ())
            .map_err(|e| docker_error(&format!("creating network {}", self.layout.network), &e))
    }

    async fn ensure_volume(&self, n: &Node, lineage: &str) -> Result<(), ProviderError> {
        // Creating a volume that exists returns it: idempotent.
        self.engine()
            .await?
            .create_volume(VolumeCreateRequest {
                name: Some(n.volume.clone()),
                labels: Some(self.labels(lineage, n.role, &n.name)),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| docker_error(&format!("creating volume {}", n.volume), &e))
    }

    /// Create node `n`'s container unless it exists; `cmd` and `user` run in it, `ports` are
    /// published on the host's loopback (on the given host port, or one Docker picks), its
    /// volume is mounted at `mount`.
    #[allow(clippy::too_many_arguments)]
    async fn ensure_container(
        &self,
        n: &Node,
        lineage: &str,
        user: &str,
        cmd: Vec<String>,
        ports: &[(u16, Option<u16>)],
        mount: Option<&str>,
        labels: HashMap<String, String>,
    ) -> Result<bool, ProviderError> {
        let engine = self.engine().await?;
        match engine.inspect_container(&n.container, None).await {
            Ok(c) => {
                let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
                if labels.get(LABEL_CLUSTER) != Some(&self.layout.cluster)
                    || labels.get(LABEL_LINEAGE).map(String::as_str) != Some(lineage)
                {
                    return Err(ProviderError::InUse(format!(
                        "container {} exists and is not this cluster's (lineage {lineage})",
                        n.container
                    )));
                }
                return Ok(false);
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(docker_error("inspecting a container", &e)),
        }
        if mount.is_some() {
            self.ensure_volume(n, lineage).await?;
        }
        let bindings = ports
            .iter()
            .map(|(p, host)| {
                (
                    format!("{p}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some(PUBLISH_ON.to_string()),
                        host_port: Some(host.map(|h| h.to_string()).unwrap_or_default()),
                    }]),
                )
            })
            .collect();
        let mut all_labels = self.labels(lineage, n.role, &n.name);
        all_labels.extend(labels);
        let body = ContainerCreateBody {
            hostname: Some(n.name.clone()),
            user: Some(user.to_owned()),
            image: Some(self.layout.image.clone()),
            cmd: Some(cmd),
            labels: Some(all_labels),
            exposed_ports: Some(ports.iter().map(|(p, _)| format!("{p}/tcp")).collect()),
            stop_timeout: Some(60),
            host_config: Some(HostConfig {
                binds: mount.map(|m| {
                    let mut binds = vec![format!("{}:{m}", n.volume)];
                    if n.role == "member" {
                        binds.extend(self.repository_bind());
                        binds.extend(self.source_repository_bind());
                    }
                    binds
                }),
                port_bindings: Some(bindings),
                network_mode: Some(self.layout.network.clone()),
                // A member cut off its network must fail to resolve its peers' and etcd's names
                // fast: with the resolver's default (5 s, twice) Patroni's leader spends 10 s per
                // etcd name before it gives up on the DCS, and demotes itself only after a
                // replica took over (seen in `chaos drill partition`: 12 s of two leaders).
                dns_options: Some(vec!["timeout:1".to_owned(), "attempts:1".to_owned()]),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.layout.network.clone(),
                    EndpointSettings {
                        aliases: Some(vec![n.name.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        engine
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::new()
                        .name(&n.container)
                        .build(),
                ),
                body,
            )
            .await
            .map_err(|e| docker_error(&format!("creating container {}", n.container), &e))?;
        Ok(true)
    }

    async fn start_container(&self, n: &Node) -> Result<(), ProviderError> {
        self.engine()
            .await?
            .start_container(&n.container, None)
            .await
            .map_err(|e| docker_error(&format!("starting container {}", n.container), &e))
    }

    /// The last lines of a container's log, for an error.
    async fn tail(&self, container: &str) -> String {
        let Ok(engine) = self.engine().await else {
            return String::new();
        };
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail("15")
            .build();
        let chunks: Vec<_> = engine.logs(container, Some(opts)).collect().await;
        chunks
            .into_iter()
            .filter_map(Result::ok)
            .map(|c| c.to_string())
            .collect()
    }

    /// Wait until `up` while `container` runs.
    async fn wait_started<F, Fut>(
        &self,
        what: &str,
        container: &str,
        mut up: F,
    ) -> Result<(), ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let engine = self.engine().await?;
        let waited = poll_until(START_TIMEOUT, Duration::from_millis(200), || {
            let check = up();
            async move {
                if check.await {
                    return Probe::Done(());
                }
                match engine.inspect_container(container, None).await {
                    Ok(c) if c.state.as_ref().and_then(|s| s.running) == Some(false) => {
                        Probe::Fail("exited".to_owned())
                    }
                    _ => Probe::NotYet(String::new()),
                }
            }
        })
        .await;
        match waited {
            Ok(()) => Ok(()),
            Err(g) => {
                let tail = self.tail(container).await;
                let log = format!("docker logs {container}");
                Err(match g {
                    Gave::Failed(_) => ProviderError::Exited {
                        what: what.to_owned(),
                        log,
                        tail,
                    },
                    Gave::Up { .. } => ProviderError::Timeout {
                        what: what.to_owned(),
                        secs: START_TIMEOUT.as_secs(),
                        log,
                        tail,
                    },
                })
            }
        }
    }

    /// The etcd endpoints published on the host, node 0 first; `None` for a node not running.
    async fn etcd_endpoints(&self) -> Result<Vec<Option<String>>, ProviderError> {
        Ok(self.endpoints_of(&self.containers().await?))
    }

    fn endpoints_of(&self, seen: &[Seen]) -> Vec<Option<String>> {
        self.layout
            .etcd_nodes()
            .iter()
            .map(|n| {
                seen.iter()
                    .find(|s| s.role == "etcd" && s.name == n.name && s.running)
                    .and_then(|s| s.url(ETCD_CLIENT_PORT))
            })
            .collect()
    }

    fn location_of(&self, seen: &[Seen]) -> crate::patroni::dcs::Location {
        crate::patroni::dcs::Location::etcd3(
            self.endpoints_of(seen).into_iter().flatten().collect(),
            crate::patroni::dcs::NAMESPACE,
            &self.layout.cluster,
        )
    }

    async fn all_etcd_healthy(&self) -> bool {
        let Ok(endpoints) = self.etcd_endpoints().await else {
            return false;
        };
        let checks = endpoints.iter().map(|e| async move {
            match e {
                Some(endpoint) => {
                    super::etcd::Etcd {
                        http: &self.http,
                        endpoint: endpoint.clone(),
                    }
                    .healthy()
                    .await
                }
                None => false,
            }
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .all(|h| h)
    }

    /// One etcd node that answers, for pgdba's own requests.
    async fn some_etcd(&self) -> Result<super::etcd::Etcd<'_>, ProviderError> {
        for endpoint in self.etcd_endpoints().await?.into_iter().flatten() {
            let e = super::etcd::Etcd {
                http: &self.http,
                endpoint,
            };
            if e.healthy().await {
                return Ok(e);
            }
        }
        Err(ProviderError::Etcd {
            endpoint: self.topology.dcs_endpoint.clone(),
            message: "no etcd node answers".to_owned(),
        })
    }

    /// The numeric owner of the image's `postgres` user, from the container's `/etc/passwd`.
    /// A file of a container, as text.
    async fn read_file(&self, container: &str, path: &str) -> Result<String, ProviderError> {
        let opts = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut bytes = Vec::new();
        let mut stream = self
            .engine()
            .await?
            .download_from_container(container, Some(opts));
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(
                &chunk.map_err(|e| docker_error(&format!("reading {path} of {container}"), &e))?,
            );
        }
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut text = String::new();
        for entry in archive
            .entries()
            .map_err(|e| ProviderError::Docker(e.to_string()))?
        {
            let mut entry = entry.map_err(|e| ProviderError::Docker(e.to_string()))?;
            std::io::Read::read_to_string(&mut entry, &mut text)
                .map_err(|e| ProviderError::Docker(e.to_string()))?;
        }
        Ok(text)
    }

    /// Is member `name`'s `patroni.yml` what the spec renders now (bootstrap settings and
    /// passwords aside)? `None` when it cannot be read.
    async fn config_current(&self, name: &str) -> Option<bool> {
        if !self.backup_secrets.errors().is_empty() {
            return None;
        }
        let container = self.layout.member(name).container;
        let path = format!("{CONFIG_DIR}/{CONFIG_FILE}");
        let text = self.read_file(&container, &path).await.ok()?;
        let on_disk: serde_json::Value = serde_yaml::from_str(&text).ok()?;
        let wanted = config::patroni_config(
            &self.spec,
            &self.layout,
            &self.topology.admit,
            name,
            &Credentials {
                superuser: String::new(),
                replication: String::new(),
                rewind: String::new(),
                restapi: Some(String::new()),
                etcd: Some(String::new()),
                pooler: None,
            },
        );
        // With `spec.backup`, its pgBackRest configuration too.
        let backup_current = match &self.spec.spec.backup {
            None => true,
            Some(b) => self
                .read_file(&container, layout::PGBACKREST_CONF)
                .await
                .is_ok_and(|t| {
                    t == config::pgbackrest_config(b, self.backup_secrets.backup(), &self.layout)
                }),
        };
        Some(config::comparable(on_disk) == config::comparable(wanted) && backup_current)
    }

    /// The numeric owner of the image's `postgres` user, from the container's `/etc/passwd`.
    async fn postgres_ids(&self, container: &str) -> Result<(u64, u64), ProviderError> {
        let text = self.read_file(container, "/etc/passwd").await?;
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&"postgres"))
                    .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
                    .flatten()
            })
            .ok_or_else(|| {
                ProviderError::Config(format!("image {} has no postgres user", self.layout.image))
            })
    }

    /// Upload member `name`'s `patroni.yml` into its container, and with `spec.backup` its
    /// pgBackRest configuration and log directory.
    async fn upload_config(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let n = self.layout.member(name);
        let cfg =
            config::patroni_config(&self.spec, &self.layout, &self.topology.admit, name, creds);
        let yaml = serde_yaml::to_string(&cfg).map_err(|e| ProviderError::Config(e.to_string()))?;
        self.upload(&n.container, &[(CONFIG_FILE, yaml.as_bytes(), 0o600)])
            .await?;
        if let Some(e) = self.backup_secrets.first_error() {
            return Err(ProviderError::Config(e));
        }
        let mut files = Vec::new();
        if let Some(backup) = &self.spec.spec.backup {
            files.push((
                layout::PGBACKREST_CONF,
                config::pgbackrest_config(backup, self.backup_secrets.backup(), &self.layout),
            ));
        }
        if let Some(r) = &self.spec.spec.restore_from {
            files.push((
                layout::RESTORE_CONF,
                config::restore_config(r, self.backup_secrets.restore_from()),
            ));
        }
        if !files.is_empty() {
            self.upload_beside_data(&n.container, &files).await?;
        }
        Ok(())
    }

    /// `spec.backup`'s repository, a directory of the Docker host mounted at the same path in
    /// every member's container.
    fn repository_bind(&self) -> Option<String> {
        let repo = self.spec.spec.backup.as_ref()?.repository.path()?;
        Some(format!("{}:{}", repo.display(), repo.display()))
    }

    /// `spec.restore_from`'s repository (another cluster's), mounted read-only: the new
    /// cluster can restore from it and never write into it. None when it is the cluster's own
    /// (an in-place restore), which `repository_bind` mounts.
    fn source_repository_bind(&self) -> Option<String> {
        if self.spec.restores_in_place() {
            return None;
        }
        let repo = self.spec.spec.restore_from.as_ref()?.repository.path()?;
        Some(format!("{}:{}:ro", repo.display(), repo.display()))
    }

    /// Make `spec.backup`'s repository on the Docker host when it does not exist, owned by the
    /// image's `postgres` user (as `container` has it), who runs pgBackRest. One that exists
    /// is left as it is.
    async fn ensure_repository(&self, container: &str) -> Result<(), ProviderError> {
        let Some(backup) = &self.spec.spec.backup else {
            return Ok(());
        };
        let Some(repo) = backup.repository.path() else {
            return Ok(());
        };
        if std::fs::symlink_metadata(repo).is_ok() {
            return Ok(());
        }
        let (uid, gid) = self.postgres_ids(container).await?;
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(repo)
                .map_err(|e| ProviderError::io(repo, e))?;
        }
        let (uid, gid) = (u32::try_from(uid).ok(), u32::try_from(gid).ok());
        std::os::unix::fs::chown(repo, uid, gid).map_err(|e| ProviderError::io(repo, e))
    }

    /// Does member container `container` have `spec.backup`'s repository mounted (it is
    /// mounted when the container is made)? `None` when it cannot be inspected.
    async fn repository_mounted(&self, container: &str) -> Option<bool> {
        let bind = self.repository_bind()?;
        let c = self
            .engine()
            .await
            .ok()?
            .inspect_container(container, None)
            .await
            .ok()?;
        Some(
            c.host_config
                .and_then(|h| h.binds)
                .is_some_and(|b| b.contains(&bind)),
        )
    }

    /// Upload the member's pgBackRest configuration files (path, content) beside its data
    /// directory, on its volume, with the log directory pgBackRest does not make itself; owned
    /// by `postgres`.
    async fn upload_beside_data(
        &self,
        container: &str,
        files: &[(&str, String)],
    ) -> Result<(), ProviderError> {
        use layout::PGBACKREST_LOG;
        let (uid, gid) = self.postgres_ids(container).await?;
        let tar_err = |e: std::io::Error| ProviderError::Config(e.to_string());
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o750);
        dir.set_uid(uid);
        dir.set_gid(gid);
        dir.set_size(0);
        builder
            .append_data(
                &mut dir,
                PGBACKREST_LOG.trim_start_matches('/'),
                std::io::empty(),
            )
            .map_err(tar_err)?;
        for (path, text) in files {
            let mut file = tar::Header::new_gnu();
            file.set_mode(0o600);
            file.set_uid(uid);
            file.set_gid(gid);
            file.set_size(text.len() as u64);
            builder
                .append_data(&mut file, path.trim_start_matches('/'), text.as_bytes())
                .map_err(tar_err)?;
        }
        let tar = builder.into_inner().map_err(tar_err)?;
        self.engine()
            .await?
            .upload_to_container(
                container,
                Some(UploadToContainerOptionsBuilder::new().path("/").build()),
                bollard::body_full(tar.into()),
            )
            .await
            .map_err(|e| {
                docker_error(
                    &format!("uploading pgBackRest's configuration into {container}"),
                    &e,
                )
            })
    }

    /// Upload `files` (name, content, mode) into `CONFIG_DIR` of `container`, owned by the
    /// image's `postgres` user: configuration with passwords never touches the host's disk.
    async fn upload(
        &self,
        container: &str,
        files: &[(&str, &[u8], u32)],
    ) -> Result<(), ProviderError> {
        let (uid, gid) = self.postgres_ids(container).await?;
        let tar_err = |e: std::io::Error| ProviderError::Config(e.to_string());
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o700);
        dir.set_uid(uid);
        dir.set_gid(gid);
        dir.set_size(0);
        let dir_name = CONFIG_DIR.trim_start_matches('/');
        builder
            .append_data(&mut dir, dir_name, std::io::empty())
            .map_err(tar_err)?;
        for (name, content, mode) in files {
            let mut file = tar::Header::new_gnu();
            file.set_mode(*mode);
            file.set_uid(uid);
            file.set_gid(gid);
            file.set_size(content.len() as u64);
            builder
                .append_data(&mut file, format!("{dir_name}/{name}"), *content)
                .map_err(tar_err)?;
        }
        let tar = builder.into_inner().map_err(tar_err)?;
        self.engine()
            .await?
            .upload_to_container(
                container,
                Some(UploadToContainerOptionsBuilder::new().path("/").build()),
                bollard::body_full(tar.into()),
            )
            .await
            .map_err(|e| docker_error(&format!("uploading configuration into {container}"), &e))
    }

    fn pooler_of(&self, s: &Seen) -> crate::observe::model::Pooler {
        crate::observe::model::Pooler {
            running: s.running,
            settings: s
                .labels
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(LABEL_POOLER)?.to_owned(), v.clone())))
                .collect(),
            address: s
                .ports
                .get(&layout::POOLER_PORT)
                .map(|p| (PUBLISH_ON.to_string(), *p)),
        }
    }

    /// Wait until PgBouncer answers on its published port (it listens once its supervisor
    /// found the leader).
    async fn wait_pooler(&self) -> Result<(), ProviderError> {
        let n = self.layout.pooler();
        self.wait_started("PgBouncer", &n.container, || async {
            let Some((host, port)) = self.pooler_address().await else {
                return false;
            };
            pgbouncer::answers(&host, port).await
        })
        .await
    }

    async fn pooler_address(&self) -> Option<(String, u16)> {
        let seen = self.containers().await.ok()?;
        let s = seen.iter().find(|s| s.role == "pgbouncer" && s.running)?;
        self.pooler_of(s).address
    }

    async fn stop_container(&self, container: &str) -> Result<(), ProviderError> {
        match self
            .engine()
            .await?
            .stop_container(
                container,
                Some(StopContainerOptionsBuilder::new().t(60).build()),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(docker_error(&format!("stopping {container}"), &e)),
        }
    }

    async fn remove_container_and_volume(&self, n: &Node) -> Result<(), ProviderError> {
        let engine = self.engine().await?;
        match engine
            .remove_container(
                &n.container,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(docker_error(&format!("removing {}", n.container), &e)),
        }
        match engine
            .remove_volume(&n.volume, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(docker_error(&format!("removing volume {}", n.volume), &e)),
        }
    }
}

/// The one regular file of a `docker cp` archive, with `bytes` written over it at `offset`,
/// as an archive again (its name, owner and mode kept).
fn rewrite_tar(tar_bytes: &[u8], offset: u64, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| e.to_string();
    let mut archive = tar::Archive::new(tar_bytes);
    let mut entry = archive
        .entries()
        .map_err(io)?
        .next()
        .ok_or("an empty archive")?
        .map_err(io)?;
    if entry.header().entry_type() != tar::EntryType::Regular {
        return Err("not a regular file".to_owned());
    }
    let mut header = entry.header().clone();
    let name = entry.path().map_err(io)?.into_owned();
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut content).map_err(io)?;
    let at = usize::try_from(offset).unwrap_or(usize::MAX);
    let len = content.len();
    let target = content
        .get_mut(at..at.saturating_add(bytes.len()))
        .ok_or_else(|| format!("{len} bytes: nothing to overwrite at {offset}"))?;
    target.copy_from_slice(bytes);
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_data(&mut header, &name, content.as_slice())
        .map_err(io)?;
    builder.into_inner().map_err(io)
}

#[async_trait::async_trait]
impl super::Provider for Docker {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn claims(&self) -> Vec<Claim> {
        self.layout.claims()
    }

    fn location(&self) -> String {
        format!("Docker network {}", self.layout.network)
    }

    fn spec_section(&self) -> &'static str {
        "spec.provider.docker"
    }

    fn remains(&self) -> String {
        format!(
            "the containers, volumes and network labelled {LABEL_CLUSTER}={}",
            self.layout.cluster
        )
    }

    async fn inventory(&self) -> Inventory {
        let seen = self.containers().await.unwrap_or_default();
        let etcd: Vec<&Seen> = seen.iter().filter(|s| s.role == "etcd").collect();
        let dcs = Dcs {
            endpoint: self.topology.dcs_endpoint.clone(),
            exists: etcd.len() >= layout::ETCD_NODES as usize,
            running: !etcd.is_empty() && etcd.iter().all(|s| s.running),
            healthy: false,
        };
        let member_seen: Vec<&Seen> = seen.iter().filter(|s| s.role == "member").collect();
        let current = futures::future::join_all(member_seen.iter().map(|s| async move {
            if s.running {
                self.config_current(&s.name).await
            } else {
                None
            }
        }))
        .await;
        let mut members: Vec<InventoryMember> = member_seen
            .iter()
            .zip(current)
            .map(|(s, config_current)| InventoryMember {
                name: s.name.clone(),
                exists: true,
                // Patroni is the container's process: the container runs while it does, and
                // PostgreSQL does not outlive it.
                running: s.running,
                postgres_running: s.running,
                config_current,
                access: self.access_of(s),
            })
            .collect();
        members.sort_by_key(|m| crate::providers::member_index(&self.layout.cluster, &m.name));
        let pooler = seen
            .iter()
            .find(|s| s.role == "pgbouncer")
            .map(|s| self.pooler_of(s));
        Inventory {
            dcs,
            members,
            pooler,
            dcs_location: self.location_of(&seen),
            unreachable: Vec::new(),
        }
    }

    async fn dcs_location(&self) -> crate::patroni::dcs::Location {
        self.location_of(&self.containers().await.unwrap_or_default())
    }

    async fn dcs_healthy(&self) -> bool {
        self.all_etcd_healthy().await
    }

    async fn access(&self, name: &str) -> Result<Access, ProviderError> {
        let seen = self.containers().await?;
        let Some(s) = seen.iter().find(|s| s.role == "member" && s.name == name) else {
            return Err(ProviderError::UnknownMember(name.to_owned()));
        };
        self.access_of(s).ok_or_else(|| {
            ProviderError::Docker(format!(
                "container {} of member {name} is {} and publishes no port",
                self.layout.member(name).container,
                s.state
            ))
        })
    }

    async fn preflight(&self, plan: &crate::plan::Plan) -> Result<(), ProviderError> {
        use crate::plan::ActionKind;
        let creates = plan.actions.iter().any(|a| {
            matches!(
                a.kind,
                ActionKind::CreateDcs | ActionKind::CreateMember { .. }
            )
        });
        // The repository is mounted when a member's container is made: one made before
        // `spec.backup` has no repository to archive into.
        if self.spec.spec.backup.is_some() {
            for s in self.containers().await? {
                if s.role != "member" {
                    continue;
                }
                let container = self.layout.member(&s.name).container;
                if self.repository_mounted(&container).await == Some(false) {
                    return Err(ProviderError::Config(format!(
                        "member {}'s container was made without spec.backup's repository mounted (Docker mounts a directory only when it makes a container): remove and add the member again (`pgdba replica remove` / `replica add`), or make the cluster with spec.backup",
                        s.name
                    )));
                }
            }
        }
        if !creates {
            return Ok(());
        }
        if self.spec.spec.patroni.watchdog == crate::spec::model::WatchdogMode::Required {
            return Err(ProviderError::Config(
                "spec.patroni.watchdog is `required`, but containers have no watchdog device; use `automatic` or `off` with the docker provider".to_owned(),
            ));
        }
        self.check_image().await?;
        if self.network_lineage().await?.is_none() {
            self.check_subnet().await?;
        }
        Ok(())
    }

    async fn create_dcs(&self, lineage: &str, creds: &Credentials) -> Result<(), ProviderError> {
        self.check_image().await?;
        self.ensure_network(lineage).await?;
        let token = format!("pgdba-{}-{lineage}", self.layout.cluster);
        for n in self.layout.etcd_nodes() {
            let cmd = config::etcd_cmd(&self.layout, &n, &token);
            self.ensure_container(
                &n,
                lineage,
                "etcd",
                cmd,
                &[(ETCD_CLIENT_PORT, None)],
                Some(ETCD_HOME),
                HashMap::new(),
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
        let seen = self.containers().await?;
        let nodes = self.layout.etcd_nodes();
        for n in &nodes {
            if !seen.iter().any(|s| s.name == n.name && s.running) {
                self.start_container(n).await?;
            }
        }
        // The nodes find each other once all have started: wait for all, not each in turn.
        let first = nodes
            .first()
            .map(|n| n.container.clone())
            .unwrap_or_default();
        self.wait_started("etcd", &first, || self.all_etcd_healthy())
            .await
    }

    async fn create_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let lineage = self.required_lineage().await?;
        let n = self.layout.member(name);
        let cmd = vec!["patroni".to_owned(), format!("{CONFIG_DIR}/{CONFIG_FILE}")];
        self.ensure_container(
            &n,
            &lineage,
            "postgres",
            cmd,
            &[(PG_PORT, None), (API_PORT, None)],
            Some(PG_HOME),
            HashMap::new(),
        )
        .await?;
        self.ensure_repository(&n.container).await?;
        self.upload_config(name, creds).await?;
        self.start_member(name, creds).await
    }

    async fn start_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let n = self.layout.member(name);
        let running = self
            .containers()
            .await?
            .iter()
            .any(|s| s.name == name && s.running);
        if !running {
            // An apply stopped between creating the container and uploading its
            // configuration leaves a container Patroni cannot start in: upload it again.
            self.upload_config(name, creds).await?;
            self.start_container(&n).await?;
        }
        let what = format!("Patroni of member {name}");
        self.wait_started(&what, &n.container, || async {
            match self.access(name).await {
                Ok(a) => self
                    .http
                    .get(format!("{}/patroni", a.api_url))
                    .send()
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        })
        .await
    }

    async fn write_member_config(
        &self,
        name: &str,
        creds: &Credentials,
    ) -> Result<(), ProviderError> {
        self.upload_config(name, creds).await
    }

    async fn delete_member(&self, name: &str, creds: &Credentials) -> Result<(), ProviderError> {
        let n = self.layout.member(name);
        self.stop_container(&n.container).await?;
        let prefix = self.dcs_location().await.prefix;
        self.some_etcd()
            .await?
            .forget_member(&prefix, name, creds)
            .await?;
        self.remove_container_and_volume(&n).await
    }

    async fn kill_member(&self, name: &str) -> Result<(), ProviderError> {
        let container = self.layout.member(name).container;
        self.engine()
            .await?
            .kill_container(
                &container,
                Some(
                    bollard::query_parameters::KillContainerOptionsBuilder::new()
                        .signal("SIGKILL")
                        .build(),
                ),
            )
            .await
            .map_err(|e| docker_error(&format!("killing container {container}"), &e))
    }

    async fn freeze_member(&self, name: &str, frozen: bool) -> Result<(), ProviderError> {
        let container = self.layout.member(name).container;
        let engine = self.engine().await?;
        let done = if frozen {
            engine.pause_container(&container).await
        } else {
            engine.unpause_container(&container).await
        };
        done.map_err(|e| {
            docker_error(
                &format!(
                    "{} container {container}",
                    if frozen { "pausing" } else { "unpausing" }
                ),
                &e,
            )
        })
    }

    fn partitions(&self) -> bool {
        true
    }

    async fn isolate_member(&self, name: &str, isolated: bool) -> Result<(), ProviderError> {
        let container = self.layout.member(name).container;
        let network = &self.layout.network;
        let engine = self.engine().await?;
        let joined = engine
            .inspect_container(&container, None)
            .await
            .map_err(|e| docker_error(&format!("inspecting container {container}"), &e))?
            .network_settings
            .and_then(|n| n.networks)
            .is_some_and(|n| n.contains_key(network));
        if joined != isolated {
            return Ok(());
        }
        let done = if isolated {
            engine
                .disconnect_network(
                    network,
                    bollard::models::NetworkDisconnectRequest {
                        container: container.clone(),
                        force: Some(true),
                    },
                )
                .await
        } else {
            engine
                .connect_network(
                    network,
                    bollard::models::NetworkConnectRequest {
                        container: container.clone(),
                        endpoint_config: Some(EndpointSettings {
                            aliases: Some(vec![name.to_owned()]),
                            ..Default::default()
                        }),
                    },
                )
                .await
        };
        done.map_err(|e| {
            docker_error(
                &format!(
                    "{} container {container} {} network {network}",
                    if isolated {
                        "disconnecting"
                    } else {
                        "connecting"
                    },
                    if isolated { "from" } else { "to" }
                ),
                &e,
            )
        })
    }

    async fn damage_file(
        &self,
        name: &str,
        file: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), ProviderError> {
        /// The file is copied out of the stopped container and back (Docker's archive API works
        /// on stopped containers; `exec` does not): no bigger than this.
        const MOST: u64 = 256 << 20;
        let file = super::relation_file(file)?;
        let container = self.layout.member(name).container;
        let engine = self.engine().await?;
        let running = engine
            .inspect_container(&container, None)
            .await
            .map_err(|e| docker_error(&format!("inspecting container {container}"), &e))?
            .state
            .and_then(|s| s.running)
            .unwrap_or(false);
        if running {
            return Err(ProviderError::Config(format!(
                "container {container} runs: member {name}'s files are damaged only while it is stopped"
            )));
        }
        let path = format!("{}/{file}", layout::DATA_DIR);
        let mut stream = engine.download_from_container(
            &container,
            Some(
                DownloadFromContainerOptionsBuilder::new()
                    .path(&path)
                    .build(),
            ),
        );
        let mut tar_bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar_bytes.extend_from_slice(
                &chunk.map_err(|e| docker_error(&format!("reading {path} of {container}"), &e))?,
            );
            if tar_bytes.len() as u64 > MOST + 4096 {
                return Err(ProviderError::Config(format!(
                    "{path} of {container} is over {} MB: chaos corrupt copies it out and back",
                    MOST >> 20
                )));
            }
        }
        let tar = rewrite_tar(&tar_bytes, offset, bytes)
            .map_err(|e| ProviderError::Config(format!("{path} of {container}: {e}")))?;
        let parent = path.rsplit_once('/').map_or("/", |(p, _)| p).to_owned();
        engine
            .upload_to_container(
                &container,
                Some(UploadToContainerOptionsBuilder::new().path(&parent).build()),
                bollard::body_full(tar.into()),
            )
            .await
            .map_err(|e| docker_error(&format!("writing {path} of {container}"), &e))
    }

    async fn forget_cluster(&self, creds: &Credentials) -> Result<(), ProviderError> {
        let prefix = self.dcs_location().await.prefix;
        self.some_etcd().await?.forget_prefix(&prefix, creds).await
    }

    async fn create_pooler(&self, creds: &Credentials) -> Result<(), ProviderError> {
        let Some(pgbouncer) = self.spec.pgbouncer() else {
            return Err(ProviderError::Config("the spec has no pooler".to_owned()));
        };
        let password = creds.pooler_password()?;
        let lineage = self.required_lineage().await?;
        let n = self.layout.pooler();
        let apis = self
            .layout
            .members
            .iter()
            .map(|m| format!("http://{m}:{API_PORT}"));
        let cmd = [
            "python3".to_owned(),
            format!("{CONFIG_DIR}/{}", pgbouncer::FOLLOW_FILE),
            CONFIG_DIR.to_owned(),
        ]
        .into_iter()
        .chain(apis)
        .collect();
        let labels = crate::diff::pooler_settings(&self.spec)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (format!("{LABEL_POOLER}{k}"), v))
            .collect();
        let created = self
            .ensure_container(
                &n,
                &lineage,
                "postgres",
                cmd,
                &[(layout::POOLER_PORT, pgbouncer.port)],
                None,
                labels,
            )
            .await?;
        if created {
            let base = pgbouncer::base_ini(pgbouncer, "0.0.0.0", layout::POOLER_PORT, CONFIG_DIR);
            let users = pgbouncer::userlist(password);
            self.upload(
                &n.container,
                &[
                    (
                        pgbouncer::FOLLOW_FILE,
                        pgbouncer::FOLLOW_SCRIPT.as_bytes(),
                        0o755,
                    ),
                    (pgbouncer::BASE_FILE, base.as_bytes(), 0o600),
                    (pgbouncer::USERLIST_FILE, users.as_bytes(), 0o600),
                ],
            )
            .await?;
        }
        self.start_pooler().await
    }

    async fn start_pooler(&self) -> Result<(), ProviderError> {
        let n = self.layout.pooler();
        let running = self
            .containers()
            .await?
            .iter()
            .any(|s| s.role == "pgbouncer" && s.running);
        if !running {
            self.start_container(&n).await?;
        }
        self.wait_pooler().await
    }

    async fn delete_pooler(&self) -> Result<(), ProviderError> {
        let n = self.layout.pooler();
        self.stop_container(&n.container).await?;
        self.remove_container_and_volume(&n).await
    }

    async fn destroy(&self, lineage: &str) -> Result<(), ProviderError> {
        let seen = self.containers().await?;
        if let Some(other) = seen.iter().find(|s| s.lineage != lineage) {
            return Err(ProviderError::Config(format!(
                "container of {} carries lineage {}, not the state's ({lineage}); nothing was removed",
                other.name, other.lineage
            )));
        }
        let network = self.network_lineage().await?;
        if let Some(l) = &network
            && l != lineage
        {
            return Err(ProviderError::Config(format!(
                "Docker network {} carries lineage {l}, not the state's ({lineage}); nothing was removed",
                self.layout.network
            )));
        }
        // The pooler, then the members (they stop cleanly while the DCS is there), then etcd.
        if seen.iter().any(|s| s.role == "pgbouncer") {
            self.delete_pooler().await?;
        }
        let members: Vec<Node> = seen
            .iter()
            .filter(|s| s.role == "member")
            .map(|s| self.layout.member(&s.name))
            .collect();
        let stops = members.iter().map(|n| self.stop_container(&n.container));
        for r in futures::future::join_all(stops).await {
            r?;
        }
        for n in members.iter().chain(self.layout.etcd_nodes().iter()) {
            self.remove_container_and_volume(n).await?;
        }
        if network.is_some() {
            match self
                .engine()
                .await?
                .remove_network(&self.layout.network)
                .await
            {
                Ok(()) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(docker_error("removing the network", &e)),
            }
        }
        Ok(())
    }

    async fn run_beside(
        &self,
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        within: Duration,
    ) -> Result<super::Ran, ProviderError> {
        let engine = self.engine().await?;
        let container = self.layout.member(name).container;
        let mut envs = vec![
            format!("PGBACKREST_CONFIG={}", layout::PGBACKREST_CONF),
            format!("PGHOST={}", layout::SOCKET_DIR),
            format!("PGPORT={PG_PORT}"),
        ];
        envs.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let exec = engine
            .create_exec(
                &container,
                bollard::exec::CreateExecOptions {
                    cmd: Some(argv.to_vec()),
                    env: Some(envs),
                    user: Some("postgres".to_owned()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| docker_error(&format!("exec in {container}"), &e))?;
        let collect = async {
            let mut stdout = String::new();
            let mut stderr = String::new();
            if let bollard::exec::StartExecResults::Attached { mut output, .. } = engine
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| docker_error(&format!("exec in {container}"), &e))?
            {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(|e| docker_error(&format!("exec in {container}"), &e))? {
                        bollard::container::LogOutput::StdErr { message } => {
                            stderr.push_str(&String::from_utf8_lossy(&message));
                        }
                        other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                    }
                }
            }
            Ok::<_, ProviderError>((stdout, stderr))
        };
        let (stdout, stderr) = tokio::time::timeout(within, collect).await.map_err(|_| {
            ProviderError::Docker(format!(
                "{} in {container} did not finish within {}s",
                argv.join(" "),
                within.as_secs()
            ))
        })??;
        let code = engine
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| docker_error(&format!("exec in {container}"), &e))?
            .exit_code
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(-1);
        Ok(super::Ran {
            code,
            stdout,
            stderr,
        })
    }
}
