//! What the ssh provider renders: each member's `patroni.yml` and etcd's command line. Pure:
//! values in, text out.
//!
//! As with `docker`, a member's `patroni.yml` holds its passwords: it is written on the member's
//! host with mode 0600, owned by `postgres`, through the SSH channel's standard input; no
//! password is ever on a command line there.

use serde_json::{Value, json};

use super::layout::{EtcdNode, Layout, url_host};
use crate::providers::Credentials;
use crate::roles::{ETCD_USER, REPLICATION_USER, RESTAPI_USER, REWIND_USER, SUPERUSER};
use crate::spec::model::{ClusterSpec, SshHost};

/// One member's `patroni.yml` as a JSON value, with its passwords.
pub fn patroni_config(
    spec: &ClusterSpec,
    layout: &Layout,
    admit: &[String],
    name: &str,
    host: &SshHost,
    creds: &Credentials,
) -> Value {
    let address = url_host(&host.address);
    let mut etcd3 = json!({ "hosts": layout.etcd_hosts_list() });
    if let Some(p) = &creds.etcd {
        etcd3["username"] = json!(ETCD_USER);
        etcd3["password"] = json!(p);
    }
    let mut restapi = json!({
        "listen": format!("0.0.0.0:{}", layout.api_port),
        "connect_address": format!("{address}:{}", layout.api_port),
    });
    if let Some(p) = &creds.restapi {
        restapi["authentication"] = json!({ "username": RESTAPI_USER, "password": p });
    }
    let bootstrap = json!({
        "dcs": crate::patroni::bootstrap_dcs(spec, admit),
        "initdb": [ { "encoding": "UTF8" }, { "locale": "C.UTF-8" }, "data-checksums" ],
    });
    json!({
        "scope": layout.cluster,
        "namespace": crate::patroni::dcs::NAMESPACE,
        "name": name,
        "log": { "level": "INFO" },
        "restapi": restapi,
        "etcd3": etcd3,
        "bootstrap": bootstrap,
        "postgresql": {
            "listen": format!("0.0.0.0:{}", layout.pg_port),
            "connect_address": format!("{address}:{}", layout.pg_port),
            "data_dir": layout.data_dir(name),
            "bin_dir": layout.bin_dir,
            "pgpass": format!("{}/pgpass", layout.member_dir(name)),
            "use_unix_socket": true,
            "basebackup": [ { "checkpoint": "fast" } ],
            "authentication": {
                "superuser": { "username": SUPERUSER, "password": creds.superuser },
                "replication": { "username": REPLICATION_USER, "password": creds.replication },
                "rewind": { "username": REWIND_USER, "password": creds.rewind },
            },
            "parameters": {
                "unix_socket_directories": layout.socket_dir(name),
            },
        },
        "watchdog": { "mode": spec.spec.patroni.watchdog.as_str(), "device": "/dev/watchdog", "safety_margin": 5 },
        "tags": { "nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false },
    })
}

/// A member's configuration without what may differ while it is current: the bootstrap
/// settings and the passwords (the docker provider's rule).
pub fn comparable(cfg: Value) -> Value {
    crate::providers::docker::config::comparable(cfg)
}

/// Member `name`'s pgBackRest configuration (`spec.backup`): a directory repository is the
/// DBA's storage, mounted at the same path on every host (NFS, say), or S3. Each member sees
/// only its own PostgreSQL (`from_standby` is refused on this provider).
pub fn pgbackrest_config(
    backup: &crate::spec::model::BackupSpec,
    secrets: &crate::secret::RepoSecrets,
    layout: &Layout,
    name: &str,
) -> String {
    let dir = layout.member_dir(name);
    let me = crate::providers::pgbackrest::Member {
        data_dir: layout.data_dir(name).into(),
        port: layout.pg_port,
        socket_dir: layout.socket_dir(name).into(),
        log_dir: format!("{dir}/pgbackrest-log").into(),
        lock_dir: format!("{dir}/pgbackrest-lock").into(),
    };
    crate::providers::pgbackrest::config(backup, secrets, &layout.cluster, &me, &[])
}

/// etcd's arguments for `node`.
pub fn etcd_args(layout: &Layout, node: &EtcdNode, token: &str) -> Vec<String> {
    let client = layout.etcd_client_url(node);
    let peer = layout.etcd_peer_url(node);
    vec![
        "--name".into(),
        node.name.clone(),
        "--data-dir".into(),
        format!("{}/data", layout.etcd_dir(node)),
        "--listen-client-urls".into(),
        format!("http://0.0.0.0:{}", layout.etcd_port),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        format!("http://0.0.0.0:{}", layout.etcd_port + 1),
        "--initial-advertise-peer-urls".into(),
        peer,
        "--initial-cluster".into(),
        layout.etcd_initial_cluster(),
        "--initial-cluster-state".into(),
        "new".into(),
        "--initial-cluster-token".into(),
        token.to_owned(),
        "--bcrypt-cost".into(),
        "4".into(),
    ]
}
