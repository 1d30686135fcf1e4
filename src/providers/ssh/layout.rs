//! Where an SSH cluster lives: which host carries which member and etcd node, its ports, and the
//! directories on each host, resolved from the spec and its defaults. Pure: no IO.

use crate::providers::{Claim, MemberSlot, Topology};
use crate::spec::model::{ClusterSpec, SshHost, SshProvider};

pub const DEFAULT_PG_PORT: u16 = 5432;
pub const DEFAULT_API_PORT: u16 = 8008;
pub const DEFAULT_ETCD_PORT: u16 = 2379;
pub const DEFAULT_POOLER_PORT: u16 = 6432;
/// etcd survives losing one of three.
pub const ETCD_NODES: usize = 3;
/// The file in the cluster's directory on every host that names the lineage that made it: what
/// `destroy` checks before it removes anything.
pub const MARKER: &str = ".pgdba-lineage";

/// The resolved layout of one SSH cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub cluster: String,
    /// The cluster's directory on every host.
    pub root: String,
    pub pg_port: u16,
    pub api_port: u16,
    pub etcd_port: u16,
    pub pooler_port: u16,
    pub bin_dir: String,
    pub patroni_bin: Option<String>,
    pub major: u32,
    /// Member `i` runs on `hosts[i]`.
    pub hosts: Vec<SshHost>,
    pub etcd_hosts: Vec<SshHost>,
    /// Every member slot the spec asks for, index 0 first.
    pub members: Vec<String>,
}

/// One etcd node: its name and host.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdNode {
    pub name: String,
    pub host: SshHost,
}

impl Layout {
    pub fn new(spec: &ClusterSpec, ssh: &SshProvider) -> Layout {
        let cluster = spec.metadata.name.clone();
        let major = spec.spec.postgres.version;
        let etcd_hosts = ssh
            .dcs_hosts
            .clone()
            .unwrap_or_else(|| ssh.hosts.iter().take(ETCD_NODES).cloned().collect());
        Layout {
            root: ssh
                .data_dir
                .clone()
                .unwrap_or_else(|| format!("/var/lib/pgdba/{cluster}")),
            pg_port: ssh.pg_port.unwrap_or(DEFAULT_PG_PORT),
            api_port: ssh.api_port.unwrap_or(DEFAULT_API_PORT),
            etcd_port: ssh.etcd_port.unwrap_or(DEFAULT_ETCD_PORT),
            pooler_port: spec
                .pgbouncer()
                .and_then(|p| p.port)
                .unwrap_or(DEFAULT_POOLER_PORT),
            bin_dir: ssh
                .bin_dir
                .clone()
                .unwrap_or_else(|| format!("/usr/lib/postgresql/{major}/bin")),
            patroni_bin: ssh.patroni_bin.clone(),
            major,
            hosts: ssh.hosts.clone(),
            etcd_hosts,
            members: (0..=spec.spec.replicas)
                .map(|i| crate::providers::member_name(&cluster, i))
                .collect(),
            cluster,
        }
    }

    /// The host member `name` runs on (also one beyond the spec's count, while a host is
    /// listed for it).
    pub fn member_host(&self, name: &str) -> Option<&SshHost> {
        let i = crate::providers::member_index(&self.cluster, name)?;
        self.hosts.get(usize::try_from(i).ok()?)
    }

    /// The member a host carries, by its index in `hosts`.
    pub fn member_on(&self, index: usize) -> String {
        crate::providers::member_name(&self.cluster, u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// Member `name`'s directory on its host: its data directory, configuration, logs, pid
    /// file and socket directory are in it.
    pub fn member_dir(&self, name: &str) -> String {
        format!("{}/{name}", self.root)
    }

    pub fn data_dir(&self, name: &str) -> String {
        format!("{}/data", self.member_dir(name))
    }

    pub fn socket_dir(&self, name: &str) -> String {
        format!("{}/run", self.member_dir(name))
    }

    pub fn config_file(&self, name: &str) -> String {
        format!("{}/patroni.yml", self.member_dir(name))
    }

    pub fn pooler_dir(&self) -> String {
        format!("{}/pgbouncer", self.root)
    }

    /// PgBouncer runs on the first host.
    pub fn pooler_host(&self) -> Option<&SshHost> {
        self.hosts.first()
    }

    pub fn etcd_nodes(&self) -> Vec<EtcdNode> {
        self.etcd_hosts
            .iter()
            .enumerate()
            .map(|(i, h)| EtcdNode {
                name: format!("etcd-{i}"),
                host: h.clone(),
            })
            .collect()
    }

    pub fn etcd_dir(&self, node: &EtcdNode) -> String {
        format!("{}/{}", self.root, node.name)
    }

    pub fn etcd_client_url(&self, node: &EtcdNode) -> String {
        format!("http://{}:{}", url_host(&node.host.address), self.etcd_port)
    }

    pub fn etcd_peer_url(&self, node: &EtcdNode) -> String {
        format!(
            "http://{}:{}",
            url_host(&node.host.address),
            self.etcd_port + 1
        )
    }

    /// etcd's `--initial-cluster`: every node's peer URL.
    pub fn etcd_initial_cluster(&self) -> String {
        self.etcd_nodes()
            .iter()
            .map(|n| format!("{}={}", n.name, self.etcd_peer_url(n)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// etcd's client endpoints (`host:port`), as Patroni's `etcd3.hosts` takes them.
    pub fn etcd_hosts_list(&self) -> Vec<String> {
        self.etcd_nodes()
            .iter()
            .map(|n| format!("{}:{}", url_host(&n.host.address), self.etcd_port))
            .collect()
    }

    pub fn api_url(&self, host: &SshHost) -> String {
        format!("http://{}:{}", url_host(&host.address), self.api_port)
    }

    /// Every distinct host, member hosts first.
    pub fn all_hosts(&self) -> Vec<SshHost> {
        let mut out: Vec<SshHost> = Vec::new();
        for h in self.hosts.iter().chain(&self.etcd_hosts) {
            if !out.iter().any(|o| o.endpoint() == h.endpoint()) {
                out.push(h.clone());
            }
        }
        out
    }

    /// What this cluster holds alone: on each host, its directory and ports. Two clusters on
    /// the same host may not share them.
    pub fn claims(&self) -> Vec<Claim> {
        self.all_hosts()
            .iter()
            .map(|h| Claim::Dir(format!("{}:{}", h.address, self.root).into()))
            .collect()
    }

    /// What the engine sees of it: members on their hosts; pgdba's own HBA rules admit every
    /// host and the hosts' own network (`samenet`: pgdba reaches them from it).
    pub fn topology(&self) -> Topology {
        let mut admit: Vec<String> = self
            .all_hosts()
            .iter()
            .map(|h| hba_address(&h.address))
            .collect();
        admit.push("samenet".to_owned());
        Topology {
            cluster: self.cluster.clone(),
            dcs_endpoint: self
                .etcd_nodes()
                .iter()
                .map(|n| self.etcd_client_url(n))
                .collect::<Vec<_>>()
                .join(","),
            members: self
                .members
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let mut placement = serde_json::Map::new();
                    if let Some(h) = self.hosts.get(i) {
                        placement.insert("host".to_owned(), h.address.clone().into());
                    }
                    placement.insert("pg_port".to_owned(), self.pg_port.into());
                    placement.insert("data_dir".to_owned(), self.data_dir(name).into());
                    MemberSlot {
                        name: name.clone(),
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        placement,
                    }
                })
                .collect(),
            admit,
        }
    }
}

/// An address in a URL: IPv6 in brackets.
pub fn url_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    }
}

/// An address in an HBA rule: an IP as a single-address CIDR, a name as it is.
fn hba_address(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => format!("{address}/32"),
        Ok(std::net::IpAddr::V6(_)) => format!("{address}/128"),
        Err(_) => address.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  replicas: 2\n  provider:\n    ssh:\n      hosts:\n        - {address: 10.0.0.1, key: {file: /k}}\n        - {address: 10.0.0.2, key: {file: /k}}\n        - {address: db3.example, port: 2222, user: admin, key: {file: /k}}\n        - {address: 10.0.0.4, key: {file: /k}}\n";

    fn layout(yaml: &str) -> Layout {
        let spec = crate::spec::load_str("test.yaml", yaml.as_bytes())
            .unwrap_or_else(|e| unreachable!("{e:?}"));
        let crate::spec::model::Provider::Ssh(s) = &spec.spec.provider else {
            unreachable!("an ssh spec")
        };
        Layout::new(&spec, s)
    }

    #[test]
    fn members_and_etcd_are_placed_on_the_hosts_in_order() {
        let l = layout(SPEC);
        assert_eq!(l.members, ["demo-0", "demo-1", "demo-2"]);
        assert_eq!(
            l.member_host("demo-2").map(|h| h.endpoint()),
            Some("db3.example:2222".to_owned())
        );
        assert_eq!(l.etcd_hosts.len(), 3);
        assert_eq!(
            l.etcd_initial_cluster(),
            "etcd-0=http://10.0.0.1:2380,etcd-1=http://10.0.0.2:2380,etcd-2=http://db3.example:2380"
        );
        assert_eq!(l.data_dir("demo-1"), "/var/lib/pgdba/demo/demo-1/data");
        assert_eq!(l.all_hosts().len(), 4);
        let t = l.topology();
        assert_eq!(
            t.admit,
            [
                "10.0.0.1/32",
                "10.0.0.2/32",
                "db3.example",
                "10.0.0.4/32",
                "samenet"
            ]
        );
        assert_eq!(t.members[2].placement["host"], "db3.example");
    }
}
