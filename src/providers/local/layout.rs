//! Where a local cluster lives: directories and ports, resolved from the spec and its defaults.
//! Pure: no IO.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::providers::{Access, Claim, MemberSlot, Topology};
use crate::spec::model::{ClusterSpec, LocalProvider};

pub const DEFAULT_ROOT: &str = "/var/lib/pgdba";
pub const DEFAULT_PG_PORT: u16 = 15432;
pub const DEFAULT_API_PORT: u16 = 18008;
pub const DEFAULT_ETCD_PORT: u16 = 12379;
pub const DEFAULT_POOLER_PORT: u16 = 16432;
pub const DEFAULT_PGBOUNCER_BIN: &str = "/usr/sbin/pgbouncer";
pub const DEFAULT_RUN_AS: &str = "postgres";
pub const DEFAULT_PATRONI_BIN: &str = "/opt/patroni/bin/patroni";
pub const DEFAULT_ETCD_BIN: &str = "/usr/bin/etcd";
pub const HOST: &str = "127.0.0.1";

/// The resolved layout of one local cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub cluster: String,
    pub root: PathBuf,
    pub run_as: String,
    pub bin_dir: PathBuf,
    pub patroni_bin: PathBuf,
    pub etcd_bin: PathBuf,
    pub etcd: EtcdLayout,
    /// Every member slot the spec asks for, index 0 first.
    pub members: Vec<MemberLayout>,
    /// PgBouncer and its supervisor, when the spec asks for a pooler.
    pub pooler: Option<PoolerLayout>,
}

/// Where the pooler lives: its directory (configuration, pidfile, log) and port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolerLayout {
    pub dir: PathBuf,
    pub port: u16,
    pub pidfile: PathBuf,
    pub log: PathBuf,
    /// What it was created with (`diff::pooler_settings`), for the inventory.
    pub settings: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EtcdLayout {
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub pidfile: PathBuf,
}

impl EtcdLayout {
    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}", self.client_port)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberLayout {
    pub name: String,
    pub index: u32,
    pub pg_port: u16,
    pub api_port: u16,
    /// The member's own directory: config, logs, pidfile, socket dir and `data/`.
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub pidfile: PathBuf,
}

impl MemberLayout {
    /// Its pgBackRest configuration file, beside its data directory (where
    /// `archive_command` looks for it).
    pub fn pgbackrest_config(&self) -> PathBuf {
        self.dir.join(crate::spec::model::PGBACKREST_CONF)
    }

    pub fn api_url(&self) -> String {
        format!("http://{HOST}:{}", self.api_port)
    }

    /// How pgdba reaches it: over loopback, or its socket.
    pub fn access(&self) -> Access {
        Access {
            host: HOST.to_owned(),
            port: self.pg_port,
            api_url: self.api_url(),
            socket_dir: Some(self.socket_dir.clone()),
            data_dir: self.data_dir.display().to_string(),
        }
    }
}

pub use crate::providers::{member_index, member_name};

impl Layout {
    pub fn new(spec: &ClusterSpec, local: &LocalProvider) -> Layout {
        let cluster = spec.metadata.name.clone();
        let root = local
            .data_dir
            .clone()
            .unwrap_or_else(|| Path::new(DEFAULT_ROOT).join(&cluster));
        let pg_port = local.pg_port.unwrap_or(DEFAULT_PG_PORT);
        let api_port = local.api_port.unwrap_or(DEFAULT_API_PORT);
        let etcd_port = local.etcd_port.unwrap_or(DEFAULT_ETCD_PORT);
        let etcd_dir = root.join("etcd");
        let etcd = EtcdLayout {
            client_port: etcd_port,
            peer_port: etcd_port.saturating_add(1),
            data_dir: etcd_dir.join("data"),
            log: etcd_dir.join("etcd.log"),
            pidfile: etcd_dir.join("etcd.pid"),
        };
        let members = (0..=spec.spec.replicas)
            .map(|i| Self::member_at(&cluster, &root, pg_port, api_port, i))
            .collect();
        let pooler = spec.pgbouncer().map(|p| {
            let dir = root.join("pgbouncer");
            PoolerLayout {
                port: p.port.unwrap_or(DEFAULT_POOLER_PORT),
                pidfile: dir.join("pgbouncer.pid"),
                log: dir.join("pgbouncer.log"),
                settings: dir.join("settings.json"),
                dir,
            }
        });
        Layout {
            pooler,
            run_as: local
                .run_as
                .clone()
                .unwrap_or_else(|| DEFAULT_RUN_AS.to_owned()),
            bin_dir: local.bin_dir.clone().unwrap_or_else(|| {
                PathBuf::from(format!(
                    "/usr/lib/postgresql/{}/bin",
                    spec.spec.postgres.version
                ))
            }),
            patroni_bin: local
                .patroni_bin
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_PATRONI_BIN)),
            etcd_bin: local
                .etcd_bin
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_ETCD_BIN)),
            cluster,
            root,
            etcd,
            members,
        }
    }

    fn member_at(
        cluster: &str,
        root: &Path,
        pg_port: u16,
        api_port: u16,
        index: u32,
    ) -> MemberLayout {
        let name = member_name(cluster, index);
        let dir = root.join(&name);
        let offset = u16::try_from(index).unwrap_or(u16::MAX);
        MemberLayout {
            pg_port: pg_port.saturating_add(offset),
            api_port: api_port.saturating_add(offset),
            data_dir: dir.join("data"),
            socket_dir: dir.join("run"),
            config: dir.join("patroni.yml"),
            log: dir.join("patroni.log"),
            pidfile: dir.join("patroni.pid"),
            dir,
            name,
            index,
        }
    }

    /// The layout of a member by name, also for a member beyond the spec's count
    /// (one that is to be removed).
    pub fn member(&self, name: &str) -> Option<MemberLayout> {
        if let Some(m) = self.members.iter().find(|m| m.name == name) {
            return Some(m.clone());
        }
        let index = member_index(&self.cluster, name)?;
        let first = self.members.first()?;
        let pg = first.pg_port;
        let api = first.api_port;
        Some(Self::member_at(&self.cluster, &self.root, pg, api, index))
    }

    /// Where Patroni's keys for this cluster are: its etcd, Patroni's namespace, the scope.
    pub fn dcs(&self) -> crate::patroni::dcs::Location {
        crate::patroni::dcs::Location::etcd3(
            vec![self.etcd.endpoint()],
            crate::patroni::dcs::NAMESPACE,
            &self.cluster,
        )
    }

    /// Every port this cluster uses, with what for: etcd's, then each member's.
    pub fn ports(&self) -> Vec<(u16, String)> {
        let mut out = vec![
            (self.etcd.client_port, "etcd client".to_owned()),
            (self.etcd.peer_port, "etcd peer".to_owned()),
        ];
        for m in &self.members {
            out.push((m.pg_port, format!("member {} PostgreSQL", m.name)));
            out.push((m.api_port, format!("member {} Patroni REST API", m.name)));
        }
        if let Some(p) = &self.pooler {
            out.push((p.port, "PgBouncer".to_owned()));
        }
        out
    }

    /// What this cluster holds alone on this machine: its directory and its ports.
    pub fn claims(&self) -> Vec<Claim> {
        std::iter::once(Claim::Dir(self.root.clone()))
            .chain(self.ports().into_iter().map(|(p, w)| Claim::Port(p, w)))
            .collect()
    }

    /// What the engine sees of it: members on loopback ports, data in directories.
    pub fn topology(&self) -> Topology {
        Topology {
            cluster: self.cluster.clone(),
            dcs_endpoint: self.etcd.endpoint(),
            members: self
                .members
                .iter()
                .map(|m| {
                    let mut placement = serde_json::Map::new();
                    placement.insert("pg_port".to_owned(), m.pg_port.into());
                    placement.insert("api_port".to_owned(), m.api_port.into());
                    placement.insert(
                        "data_dir".to_owned(),
                        m.data_dir.display().to_string().into(),
                    );
                    MemberSlot {
                        name: m.name.clone(),
                        index: m.index,
                        placement,
                    }
                })
                .collect(),
            admit: vec![format!("{HOST}/32")],
        }
    }

    pub fn member_names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }
}
