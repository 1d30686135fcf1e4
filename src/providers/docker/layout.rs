//! Where a Docker cluster lives: its network, containers, volumes and labels, resolved from the
//! spec and its defaults. Pure: no IO.

use crate::providers::{Claim, MemberSlot, Topology};
use crate::spec::model::{ClusterSpec, DockerProvider};

/// Labels on every object pgdba creates: the inventory is read back by them.
pub const LABEL_CLUSTER: &str = "io.pgdba.cluster";
pub const LABEL_LINEAGE: &str = "io.pgdba.lineage";
/// `etcd` or `member`.
pub const LABEL_ROLE: &str = "io.pgdba.role";
/// The member's (or etcd node's) name within the cluster.
pub const LABEL_NAME: &str = "io.pgdba.name";

/// On the pooler's container: what it was created with (`io.pgdba.pooler.pool_mode`, ...).
pub const LABEL_POOLER: &str = "io.pgdba.pooler.";
pub const POOLER_PORT: u16 = 6432;

/// The DCS survives losing one node.
pub const ETCD_NODES: u32 = 3;
pub const PG_PORT: u16 = 5432;
pub const API_PORT: u16 = 8008;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
/// Inside a member's container: the data volume's mount point, its data directory, the
/// configuration pgdba uploads and PostgreSQL's socket directory.
pub const PG_HOME: &str = "/var/lib/postgresql";
pub const DATA_DIR: &str = "/var/lib/postgresql/data";
pub const CONFIG_DIR: &str = "/etc/pgdba";
pub const CONFIG_FILE: &str = "patroni.yml";
pub const SOCKET_DIR: &str = "/var/run/postgresql";
/// `spec.backup`: the member's pgBackRest configuration beside its data directory (PostgreSQL
/// runs `archive_command` in the data directory: `$PWD/../pgbackrest.conf`), and its logs and
/// locks, all on the member's volume.
pub const PGBACKREST_CONF: &str = "/var/lib/postgresql/pgbackrest.conf";
pub const PGBACKREST_LOG: &str = "/var/lib/postgresql/pgbackrest-log";
pub const PGBACKREST_LOCK: &str = "/var/lib/postgresql/pgbackrest-lock";
/// `spec.restore_from`: the configuration of the source repository the bootstrap restores from.
pub const RESTORE_CONF: &str = "/var/lib/postgresql/restore.conf";
pub const ETCD_HOME: &str = "/var/lib/etcd";

/// The resolved layout of one Docker cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub cluster: String,
    pub network: String,
    pub subnet: Option<String>,
    pub image: String,
    pub major: u32,
    /// Every member slot the spec asks for, index 0 first.
    pub members: Vec<String>,
}

/// One container pgdba runs: what it is, its name, hostname and volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `etcd` or `member`.
    pub role: &'static str,
    /// Its name within the cluster (`demo-0`, `etcd-1`): hostname and network alias.
    pub name: String,
    /// The container's name, unique on the Docker host.
    pub container: String,
    /// The named volume for its data.
    pub volume: String,
}

impl Layout {
    pub fn new(spec: &ClusterSpec, docker: &DockerProvider) -> Layout {
        let cluster = spec.metadata.name.clone();
        let major = spec.spec.postgres.version;
        Layout {
            network: docker
                .network
                .clone()
                .unwrap_or_else(|| format!("pgdba-{cluster}")),
            subnet: docker.subnet.clone(),
            image: docker
                .image
                .clone()
                .unwrap_or_else(|| format!("pgdba/node:{major}")),
            major,
            members: (0..=spec.spec.replicas)
                .map(|i| crate::providers::member_name(&cluster, i))
                .collect(),
            cluster,
        }
    }

    fn node(&self, role: &'static str, name: &str) -> Node {
        let container = format!("pgdba-{}-{name}", self.cluster);
        Node {
            role,
            name: name.to_owned(),
            volume: format!("{container}-data"),
            container,
        }
    }

    /// A member's node, also for one beyond the spec's count (one to be removed).
    pub fn member(&self, name: &str) -> Node {
        // Member names already start with the cluster's: `pgdba-demo-0`, not `pgdba-demo-demo-0`.
        let container = format!("pgdba-{name}");
        Node {
            role: "member",
            name: name.to_owned(),
            volume: format!("{container}-data"),
            container,
        }
    }

    /// PgBouncer's container (it keeps no data: its volume is not made).
    pub fn pooler(&self) -> Node {
        self.node("pgbouncer", "pgbouncer")
    }

    pub fn etcd_nodes(&self) -> Vec<Node> {
        (0..ETCD_NODES)
            .map(|i| self.node("etcd", &format!("etcd-{i}")))
            .collect()
    }

    /// etcd's client URLs as the members reach them, on the cluster's network.
    pub fn etcd_hosts(&self) -> Vec<String> {
        self.etcd_nodes()
            .iter()
            .map(|n| format!("{}:{ETCD_CLIENT_PORT}", n.name))
            .collect()
    }

    /// etcd's `--initial-cluster`: every node's peer URL.
    pub fn etcd_initial_cluster(&self) -> String {
        self.etcd_nodes()
            .iter()
            .map(|n| format!("{}=http://{}:{ETCD_PEER_PORT}", n.name, n.name))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn bin_dir(&self) -> String {
        format!("/usr/lib/postgresql/{}/bin", self.major)
    }

    /// What this cluster holds alone on the Docker host: its network, and its subnet when the
    /// spec fixes one.
    pub fn claims(&self) -> Vec<Claim> {
        std::iter::once(Claim::Network(self.network.clone()))
            .chain(self.subnet.iter().map(|s| Claim::Subnet(s.clone())))
            .collect()
    }

    /// What the engine sees of it: containers on the cluster's network; pgdba's own HBA rules
    /// admit that network (`samenet`: the members, and pgdba through the published ports,
    /// which Docker forwards from the network's gateway).
    pub fn topology(&self) -> Topology {
        Topology {
            cluster: self.cluster.clone(),
            dcs_endpoint: format!(
                "{} on network {}",
                self.etcd_nodes()
                    .iter()
                    .map(|n| format!("http://{}:{ETCD_CLIENT_PORT}", n.name))
                    .collect::<Vec<_>>()
                    .join(","),
                self.network
            ),
            members: self
                .members
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let n = self.member(name);
                    let mut placement = serde_json::Map::new();
                    placement.insert("container".to_owned(), n.container.into());
                    placement.insert("image".to_owned(), self.image.clone().into());
                    placement.insert("volume".to_owned(), n.volume.into());
                    MemberSlot {
                        name: name.clone(),
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        placement,
                    }
                })
                .collect(),
            admit: vec!["samenet".to_owned()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(yaml: &str) -> Layout {
        let spec = crate::spec::load_str("test.yaml", yaml.as_bytes())
            .unwrap_or_else(|e| unreachable!("{e:?}"));
        let crate::spec::model::Provider::Docker(d) = &spec.spec.provider else {
            unreachable!("a docker spec")
        };
        Layout::new(&spec, d)
    }

    const SPEC: &str = "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  replicas: 2\n  provider: {docker: {}}\n";

    #[test]
    fn names_and_defaults() {
        let l = layout(SPEC);
        assert_eq!(l.network, "pgdba-demo");
        assert_eq!(l.image, "pgdba/node:15");
        assert_eq!(l.members, ["demo-0", "demo-1", "demo-2"]);
        assert_eq!(l.member("demo-1").container, "pgdba-demo-1");
        assert_eq!(l.member("demo-1").volume, "pgdba-demo-1-data");
        assert_eq!(l.etcd_nodes()[2].container, "pgdba-demo-etcd-2");
        assert_eq!(
            l.etcd_initial_cluster(),
            "etcd-0=http://etcd-0:2380,etcd-1=http://etcd-1:2380,etcd-2=http://etcd-2:2380"
        );
        assert_eq!(l.topology().admit, ["samenet"]);
        assert_eq!(l.claims(), [Claim::Network("pgdba-demo".to_owned())]);
    }
}
