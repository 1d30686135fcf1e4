//! pgdba's own roles, in one table: who they are, what they may do, what for, which HBA rules
//! admit them and where their password is kept. Adding a system role is one row.
//!
//! Patroni creates the three it knows (superuser, replication, rewind) at bootstrap from its
//! configuration; pgdba checks their passwords on every plan and never lets the spec manage
//! them (a spec role of the same name is refused).

use crate::spec::model::ClusterSpec;

/// pgdba's superuser, which Patroni and pgdba connect as.
pub const SUPERUSER: &str = "postgres";
pub const REPLICATION_USER: &str = "replicator";
pub const REWIND_USER: &str = "rewind_user";
/// The user of the members' REST API for everything that changes the cluster.
pub const RESTAPI_USER: &str = "pgdba";
/// PgBouncer's auth user: it looks up the password verifier of whoever logs in through the
/// pooler (`auth_query`), and nothing else.
pub const POOLER_USER: &str = "pgbouncer";
/// etcd's user with every right: the one Patroni and pgdba use when etcd authenticates.
pub const ETCD_USER: &str = "root";

/// Where a system role's password is kept (a field of the state's secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSlot {
    Superuser,
    Replication,
    Rewind,
    Pooler,
}

/// Which connections of a role an HBA rule admits: over the socket (as the OS users of
/// pg_ident's `pgdba` map), or over TCP from each network the provider's topology admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// `local <database> <role> peer map=pgdba`
    Peer { database: &'static str },
    /// `host <database> <role> <network> scram-sha-256`, for each admitted network.
    Network { database: &'static str },
}

/// One of pgdba's own roles.
#[derive(Debug, Clone, Copy)]
pub struct SystemRole {
    pub name: &'static str,
    /// What pgdba uses it for.
    pub purpose: &'static str,
    /// Its attributes, as `CREATE ROLE` says them.
    pub attributes: &'static [&'static str],
    pub hba: &'static [Admit],
    pub secret: SecretSlot,
    /// Patroni creates it at bootstrap; else pgdba does, with SQL, once the primary is up.
    pub by_patroni: bool,
    /// Whether a cluster of this spec has it.
    pub needed: fn(&ClusterSpec) -> bool,
}

fn always(_: &ClusterSpec) -> bool {
    true
}

fn with_pooler(spec: &ClusterSpec) -> bool {
    spec.pgbouncer().is_some()
}

/// The table. Its order is the order of their HBA rules after the peer and replication ones
/// (see [`hba_rules`]), which existing clusters carry in their DCS: append, do not reorder.
pub const SYSTEM_ROLES: &[SystemRole] = &[
    SystemRole {
        name: SUPERUSER,
        purpose: "superuser: pgdba, Patroni, the OS user over the socket",
        attributes: &[
            "LOGIN",
            "SUPERUSER",
            "CREATEDB",
            "CREATEROLE",
            "REPLICATION",
            "BYPASSRLS",
        ],
        hba: &[
            Admit::Peer { database: "all" },
            Admit::Network { database: "all" },
        ],
        secret: SecretSlot::Superuser,
        by_patroni: true,
        needed: always,
    },
    SystemRole {
        name: REPLICATION_USER,
        purpose: "streaming replication",
        attributes: &["LOGIN", "REPLICATION"],
        hba: &[Admit::Network {
            database: "replication",
        }],
        secret: SecretSlot::Replication,
        by_patroni: true,
        needed: always,
    },
    SystemRole {
        name: REWIND_USER,
        purpose: "pg_rewind after a failover",
        attributes: &["LOGIN"],
        hba: &[Admit::Network { database: "all" }],
        secret: SecretSlot::Rewind,
        by_patroni: true,
        needed: always,
    },
    SystemRole {
        name: POOLER_USER,
        purpose: "PgBouncer's auth user: looks up the verifier of who logs in through the pooler",
        attributes: &["LOGIN"],
        hba: &[Admit::Network { database: "all" }],
        secret: SecretSlot::Pooler,
        by_patroni: false,
        needed: with_pooler,
    },
];

/// The system roles a cluster of `spec` has.
pub fn needed(spec: &ClusterSpec) -> impl Iterator<Item = &'static SystemRole> + '_ {
    // An adopted cluster has its owner's roles; pgdba adds none.
    SYSTEM_ROLES
        .iter()
        .filter(move |r| !spec.is_adopted() && (r.needed)(spec))
}

/// Is `name` one of pgdba's own roles?
pub fn is_system(name: &str) -> bool {
    system(name).is_some()
}

/// The row of pgdba's own role `name`.
pub fn system(name: &str) -> Option<&'static SystemRole> {
    SYSTEM_ROLES.iter().find(|r| r.name == name)
}

impl SystemRole {
    pub fn has(&self, attribute: &str) -> bool {
        self.attributes.contains(&attribute)
    }
}

/// The HBA rules of pgdba's own roles (those `spec` needs), for the networks in `admit`: every
/// peer rule first, then the replication rules, then the others, each group in the table's
/// order.
pub fn hba_rules(spec: &ClusterSpec, admit: &[String]) -> Vec<String> {
    let mut peer = Vec::new();
    let mut replication = Vec::new();
    let mut net = Vec::new();
    for r in needed(spec) {
        for a in r.hba {
            match a {
                Admit::Peer { database } => {
                    peer.push(format!("local {database} {} peer map=pgdba", r.name));
                }
                Admit::Network { database } => {
                    let group = if *database == "replication" {
                        &mut replication
                    } else {
                        &mut net
                    };
                    for n in admit {
                        group.push(format!("host {database} {} {n} scram-sha-256", r.name));
                    }
                }
            }
        }
    }
    peer.extend(replication);
    peer.extend(net);
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pooler: bool) -> ClusterSpec {
        let yaml = format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {{name: t}}\nspec:\n  replicas: 1\n  provider: {{docker: {{}}}}\n{}",
            if pooler {
                "  pooler: {pgbouncer: {}}\n"
            } else {
                "  pooler: {}\n"
            }
        );
        crate::spec::load_str("t.yaml", yaml.as_bytes()).unwrap_or_else(|e| unreachable!("{e:?}"))
    }

    #[test]
    fn rules_of_the_table_on_one_machine() {
        assert_eq!(
            hba_rules(&spec(false), &["127.0.0.1/32".to_owned()]),
            [
                "local all postgres peer map=pgdba",
                "host replication replicator 127.0.0.1/32 scram-sha-256",
                "host all postgres 127.0.0.1/32 scram-sha-256",
                "host all rewind_user 127.0.0.1/32 scram-sha-256",
            ]
        );
    }

    #[test]
    fn every_network_gets_each_rule() {
        let rules = hba_rules(
            &spec(false),
            &["127.0.0.1/32".to_owned(), "samenet".to_owned()],
        );
        assert_eq!(rules.len(), 1 + 3 * 2);
        assert!(rules.contains(&"host all rewind_user samenet scram-sha-256".to_owned()));
    }

    #[test]
    fn the_pooler_adds_its_auth_user() {
        let rules = hba_rules(&spec(true), &["samenet".to_owned()]);
        assert_eq!(
            rules.last().map(String::as_str),
            Some("host all pgbouncer samenet scram-sha-256")
        );
        assert_eq!(needed(&spec(false)).count(), 3);
        assert_eq!(needed(&spec(true)).count(), 4);
    }
}
