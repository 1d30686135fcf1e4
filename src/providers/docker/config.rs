//! What the docker provider renders: each member's `patroni.yml` and etcd's command line.
//! Pure: values in, text out.
//!
//! Unlike `local`'s, a member's `patroni.yml` holds its passwords: it is uploaded into the
//! member's own container (mode 0600, owned by `postgres`), never written on the host, and never
//! put in the container's environment or labels, which `docker inspect` shows to anyone who may
//! talk to the Docker engine.

use serde_json::{Value, json};

use super::layout::{
    API_PORT, DATA_DIR, ETCD_CLIENT_PORT, ETCD_HOME, ETCD_PEER_PORT, Layout, Node, PG_PORT,
    SOCKET_DIR,
};
use crate::providers::Credentials;
use crate::roles::{ETCD_USER, REPLICATION_USER, RESTAPI_USER, REWIND_USER, SUPERUSER};
use crate::spec::model::ClusterSpec;

/// One member's `patroni.yml` as a JSON value, with its passwords.
pub fn patroni_config(
    spec: &ClusterSpec,
    layout: &Layout,
    admit: &[String],
    name: &str,
    creds: &Credentials,
) -> Value {
    let mut etcd3 = json!({ "hosts": layout.etcd_hosts() });
    if let Some(p) = &creds.etcd {
        etcd3["username"] = json!(ETCD_USER);
        etcd3["password"] = json!(p);
    }
    let mut restapi = json!({
        "listen": format!("0.0.0.0:{API_PORT}"),
        "connect_address": format!("{name}:{API_PORT}"),
    });
    if let Some(p) = &creds.restapi {
        restapi["authentication"] = json!({ "username": RESTAPI_USER, "password": p });
    }
    json!({
        "scope": layout.cluster,
        "namespace": crate::patroni::dcs::NAMESPACE,
        "name": name,
        "log": { "level": "INFO" },
        "restapi": restapi,
        "etcd3": etcd3,
        "bootstrap": {
            "dcs": crate::patroni::bootstrap_dcs(spec, admit),
            "initdb": [ { "encoding": "UTF8" }, { "locale": "C.UTF-8" }, "data-checksums" ],
        },
        "postgresql": {
            "listen": format!("0.0.0.0:{PG_PORT}"),
            "connect_address": format!("{name}:{PG_PORT}"),
            "data_dir": DATA_DIR,
            "bin_dir": layout.bin_dir(),
            "pgpass": "/tmp/pgpass",
            // Patroni's own connections over the socket, as `postgres` by peer authentication.
            "use_unix_socket": true,
            "basebackup": [ { "checkpoint": "fast" } ],
            "authentication": {
                "superuser": { "username": SUPERUSER, "password": creds.superuser },
                "replication": { "username": REPLICATION_USER, "password": creds.replication },
                "rewind": { "username": REWIND_USER, "password": creds.rewind },
            },
            "parameters": {
                "unix_socket_directories": SOCKET_DIR,
            },
        },
        // A container has no watchdog device; `automatic` goes on without one.
        "watchdog": { "mode": spec.spec.patroni.watchdog.as_str(), "device": "/dev/watchdog", "safety_margin": 5 },
        "tags": { "nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false },
    })
}

/// etcd's command line for node `n` of the cluster's three.
pub fn etcd_cmd(layout: &Layout, n: &Node, token: &str) -> Vec<String> {
    let client = format!("http://{}:{ETCD_CLIENT_PORT}", n.name);
    let peer = format!("http://{}:{ETCD_PEER_PORT}", n.name);
    vec![
        "etcd".into(),
        "--name".into(),
        n.name.clone(),
        "--data-dir".into(),
        format!("{ETCD_HOME}/data"),
        "--listen-client-urls".into(),
        format!("http://0.0.0.0:{ETCD_CLIENT_PORT}"),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        format!("http://0.0.0.0:{ETCD_PEER_PORT}"),
        "--initial-advertise-peer-urls".into(),
        peer,
        "--initial-cluster".into(),
        layout.etcd_initial_cluster(),
        "--initial-cluster-state".into(),
        "new".into(),
        "--initial-cluster-token".into(),
        token.to_owned(),
        // See `local`'s: one 32-character password, no need for bcrypt's default cost.
        "--bcrypt-cost".into(),
        "4".into(),
    ]
}
