//! The files the local provider writes: each member's `patroni.yml` and etcd's command line.
//! Pure: values in, text out. Passwords are not written here: Patroni gets them from its
//! environment (`PATRONI_SUPERUSER_PASSWORD`, ...), so no configuration file holds a secret.

use serde_json::{Value, json};

use super::layout::{HOST, Layout, MemberLayout};
use crate::spec::model::ClusterSpec;

use crate::roles::{REPLICATION_USER, REWIND_USER, SUPERUSER};

/// One member's `patroni.yml` as a JSON value (rendered to YAML by the caller).
pub fn patroni_config(
    spec: &ClusterSpec,
    layout: &Layout,
    admit: &[String],
    m: &MemberLayout,
) -> Value {
    json!({
        "scope": layout.cluster,
        "namespace": crate::patroni::dcs::NAMESPACE,
        "name": m.name,
        "log": { "level": "INFO" },
        "restapi": {
            "listen": format!("{HOST}:{}", m.api_port),
            "connect_address": format!("{HOST}:{}", m.api_port),
        },
        "etcd3": { "hosts": format!("{HOST}:{}", layout.etcd.client_port) },
        "bootstrap": {
            "dcs": crate::patroni::bootstrap_dcs(spec, admit),
            "initdb": [ { "encoding": "UTF8" }, { "locale": "C.UTF-8" }, "data-checksums" ],
        },
        "postgresql": {
            "listen": format!("{HOST}:{}", m.pg_port),
            "connect_address": format!("{HOST}:{}", m.pg_port),
            "data_dir": m.data_dir,
            "bin_dir": layout.bin_dir,
            "pgpass": m.dir.join("pgpass"),
            // An immediate checkpoint for the base backup of a new replica, not a spread one.
            "basebackup": [ { "checkpoint": "fast" } ],
            "authentication": {
                "superuser": { "username": SUPERUSER },
                "replication": { "username": REPLICATION_USER },
                "rewind": { "username": REWIND_USER },
            },
            "parameters": {
                "unix_socket_directories": m.socket_dir,
            },
        },
        "watchdog": { "mode": spec.spec.patroni.watchdog.as_str(), "device": "/dev/watchdog", "safety_margin": 5 },
        "tags": { "nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false },
    })
}

/// etcd's command line for a single-member DCS on loopback.
pub fn etcd_args(layout: &Layout) -> Vec<String> {
    let e = &layout.etcd;
    let name = format!("pgdba-{}", layout.cluster);
    let client = format!("http://{HOST}:{}", e.client_port);
    let peer = format!("http://{HOST}:{}", e.peer_port);
    vec![
        "--name".into(),
        name.clone(),
        "--data-dir".into(),
        e.data_dir.display().to_string(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("{name}={peer}"),
        "--initial-cluster-state".into(),
        "new".into(),
        "--initial-cluster-token".into(),
        format!("pgdba-{}", layout.cluster),
        // Its one user's password is 32 random characters (about 190 bits): bcrypt's work
        // factor adds nothing to that, and at etcd's default each login costs tens of
        // milliseconds of CPU on every plan.
        "--bcrypt-cost".into(),
        "4".into(),
    ]
}

/// One member's pgBackRest configuration (`spec.backup`): the repository, retention and
/// compression, and the stanza (named after the cluster) with this member's PostgreSQL. Logs
/// and locks stay in the member's directory. No secret is written here.
pub fn pgbackrest_config(
    backup: &crate::spec::model::BackupSpec,
    layout: &Layout,
    m: &MemberLayout,
) -> String {
    let mut global = vec![
        format!("repo1-path={}", backup.repository.path.display()),
        format!("repo1-retention-full={}", backup.retention.full),
        format!("compress-type={}", backup.compression.as_str()),
        format!("log-path={}", m.dir.join("pgbackrest-log").display()),
        format!("lock-path={}", m.dir.join("pgbackrest-lock").display()),
        "log-level-console=warn".to_owned(),
        "log-level-file=info".to_owned(),
        "start-fast=y".to_owned(),
    ];
    if let Some(diff) = backup.retention.diff {
        global.push(format!("repo1-retention-diff={diff}"));
    }
    format!(
        "# Written by pgdba from spec.backup; edits are overwritten.\n[global]\n{}\n\n[{}]\npg1-path={}\npg1-port={}\npg1-socket-path={}\npg1-user={}\n",
        global.join("\n"),
        layout.cluster,
        m.data_dir.display(),
        m.pg_port,
        m.socket_dir.display(),
        SUPERUSER,
    )
}
