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
    let mut bootstrap = json!({
        "dcs": crate::patroni::bootstrap_dcs(spec, admit),
        "initdb": [ { "encoding": "UTF8" }, { "locale": "C.UTF-8" }, "data-checksums" ],
    });
    if let Some(r) = &spec.spec.restore_from {
        crate::providers::pgbackrest::restore_bootstrap(
            &mut bootstrap,
            r,
            spec.restores_in_place(),
            std::path::Path::new(super::layout::RESTORE_CONF),
            std::path::Path::new(DATA_DIR),
            &std::path::Path::new(&layout.bin_dir()).join("psql"),
        );
    }
    json!({
        "scope": layout.cluster,
        "namespace": crate::patroni::dcs::NAMESPACE,
        "name": name,
        "log": { "level": "INFO" },
        "restapi": restapi,
        "etcd3": etcd3,
        "bootstrap": bootstrap,
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

/// A member's configuration without what may differ while it is current: the bootstrap
/// settings (only a new cluster reads them; the DCS holds the live ones) and the passwords.
pub fn comparable(mut cfg: Value) -> Value {
    if let Some(o) = cfg.as_object_mut() {
        o.remove("bootstrap");
    }
    if let Some(r) = cfg.get_mut("restapi").and_then(Value::as_object_mut) {
        r.remove("authentication");
    }
    if let Some(e) = cfg.get_mut("etcd3").and_then(Value::as_object_mut) {
        e.remove("username");
        e.remove("password");
    }
    if let Some(p) = cfg.get_mut("postgresql").and_then(Value::as_object_mut) {
        p.remove("authentication");
    }
    cfg
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

/// Where pgBackRest finds a member's PostgreSQL, its logs and locks, inside its container.
fn pgbackrest_member() -> crate::providers::pgbackrest::Member {
    use super::layout::{PG_PORT, PGBACKREST_LOCK, PGBACKREST_LOG, SOCKET_DIR};
    crate::providers::pgbackrest::Member {
        data_dir: DATA_DIR.into(),
        port: PG_PORT,
        socket_dir: SOCKET_DIR.into(),
        log_dir: PGBACKREST_LOG.into(),
        lock_dir: PGBACKREST_LOCK.into(),
    }
}

/// A restored member's configuration of the source repository (`spec.restore_from`): a
/// directory is mounted read-only at the same path into its container.
pub fn restore_config(
    r: &crate::spec::model::RestoreFrom,
    secrets: &crate::secret::RepoSecrets,
) -> String {
    crate::providers::pgbackrest::restore_config(r, secrets, &pgbackrest_member())
}

/// A member's pgBackRest configuration (`spec.backup`): a directory repository is the host's,
/// mounted at the same path into every member's container. Each member sees only its own
/// PostgreSQL (`from_standby` is refused on this provider).
pub fn pgbackrest_config(
    backup: &crate::spec::model::BackupSpec,
    secrets: &crate::secret::RepoSecrets,
    layout: &Layout,
) -> String {
    crate::providers::pgbackrest::config(
        backup,
        secrets,
        &layout.cluster,
        &pgbackrest_member(),
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(watchdog: &str) -> ClusterSpec {
        let yaml = format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {{name: d}}\nspec:\n  replicas: 1\n  provider: {{docker: {{}}}}\n  patroni: {{watchdog: {watchdog}}}\n"
        );
        crate::spec::load_str("d.yaml", yaml.as_bytes()).unwrap_or_else(|e| unreachable!("{e:?}"))
    }

    fn creds(p: &str) -> Credentials {
        Credentials {
            superuser: p.to_owned(),
            replication: p.to_owned(),
            rewind: p.to_owned(),
            restapi: Some(p.to_owned()),
            etcd: Some(p.to_owned()),
            pooler: None,
        }
    }

    fn rendered(watchdog: &str, password: &str) -> Value {
        let s = spec(watchdog);
        let crate::spec::model::Provider::Docker(d) = &s.spec.provider else {
            unreachable!("a docker spec")
        };
        let layout = Layout::new(&s, d);
        patroni_config(
            &s,
            &layout,
            &["samenet".to_owned()],
            "d-0",
            &creds(password),
        )
    }

    #[test]
    fn passwords_do_not_make_a_configuration_differ_and_settings_do() {
        let a = rendered("automatic", "one-password");
        assert!(a.to_string().contains("one-password"));
        let kept = comparable(a.clone());
        assert!(!kept.to_string().contains("one-password"), "{kept}");
        assert_eq!(kept, comparable(rendered("automatic", "another")));
        assert_ne!(kept, comparable(rendered("off", "one-password")));
    }
}
