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
    let mut bootstrap = json!({
        "dcs": crate::patroni::bootstrap_dcs(spec, admit),
        "initdb": [ { "encoding": "UTF8" }, { "locale": "C.UTF-8" }, "data-checksums" ],
    });
    if let Some(r) = &spec.spec.restore_from {
        restore_bootstrap(&mut bootstrap, r, spec.restores_in_place(), layout, m);
    }
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
        "bootstrap": bootstrap,
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

/// One member's pgBackRest configuration (`spec.backup`): logs and locks stay in the member's
/// directory.
pub fn pgbackrest_config(
    backup: &crate::spec::model::BackupSpec,
    layout: &Layout,
    m: &MemberLayout,
) -> String {
    let (log_dir, lock_dir) = (m.dir.join("pgbackrest-log"), m.dir.join("pgbackrest-lock"));
    crate::providers::pgbackrest::config(
        backup,
        &layout.cluster,
        &crate::providers::pgbackrest::Member {
            data_dir: &m.data_dir,
            port: m.pg_port,
            socket_dir: &m.socket_dir,
            log_dir: &log_dir,
            lock_dir: &lock_dir,
        },
    )
}

/// `spec.restore_from`: Patroni's custom bootstrap from pgBackRest, with `restore.conf` beside
/// the member's data directory (see [`crate::providers::pgbackrest::restore_bootstrap`]).
fn restore_bootstrap(
    bootstrap: &mut Value,
    r: &crate::spec::model::RestoreFrom,
    in_place: bool,
    layout: &Layout,
    m: &MemberLayout,
) {
    crate::providers::pgbackrest::restore_bootstrap(
        bootstrap,
        r,
        in_place,
        &m.dir.join(crate::spec::model::RESTORE_CONF),
        &m.data_dir,
        &layout.bin_dir.join("psql"),
    );
}

/// A restored member's pgBackRest configuration of the SOURCE repository
/// (`spec.restore_from`). Logs and locks stay in the member's directory.
pub fn restore_config(r: &crate::spec::model::RestoreFrom, m: &MemberLayout) -> String {
    let (log_dir, lock_dir) = (m.dir.join("pgbackrest-log"), m.dir.join("pgbackrest-lock"));
    crate::providers::pgbackrest::restore_config(
        r,
        &crate::providers::pgbackrest::Member {
            data_dir: &m.data_dir,
            port: m.pg_port,
            socket_dir: &m.socket_dir,
            log_dir: &log_dir,
            lock_dir: &lock_dir,
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::spec::model::Provider;

    const SPEC: &str = "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: rnew}\nspec:\n  provider:\n    local: {data_dir: /srv/rnew}\n  replicas: 1\n  restore_from:\n    repository: {path: /srv/src/repo}\n    stanza: src\n    backup_id: 20261202-061128F\n    target_time: \"2026-12-02 06:50:00.000000+00\"\n";

    #[test]
    fn restore_from_renders_patronis_custom_bootstrap_from_the_source_stanza() {
        let spec = crate::spec::load_str("t.yaml", SPEC.as_bytes()).unwrap();
        let Provider::Local(local) = &spec.spec.provider else {
            panic!("not local")
        };
        let layout = Layout::new(&spec, local);
        let m = &layout.members[0];
        let cfg = patroni_config(&spec, &layout, &[], m);
        let b = &cfg["bootstrap"];
        assert_eq!(b["method"], "pgbackrest");
        let p = &b["pgbackrest"];
        assert_eq!(p["keep_existing_recovery_conf"], true);
        assert_eq!(p["no_params"], true);
        let command = p["command"].as_str().unwrap();
        for want in [
            "pgbackrest --config=/srv/rnew/rnew-0/restore.conf --stanza=src",
            "--pg1-path=/srv/rnew/rnew-0/data",
            "--archive-mode=off",
            "--set=20261202-061128F",
            "--type=time",
            "'--target=2026-12-02 06:50:00.000000+00'",
            "--target-action=promote",
        ] {
            assert!(command.contains(want), "{want} not in {command}");
        }
        assert!(command.ends_with(" restore"), "{command}");
        let r = &p["recovery_conf"];
        assert_eq!(r["recovery_target_time"], "2026-12-02 06:50:00.000000+00");
        assert_eq!(r["recovery_target_action"], "promote");
        assert!(
            r["restore_command"]
                .as_str()
                .unwrap()
                .contains("--stanza=src archive-get %f")
        );
        assert!(
            b["post_bootstrap"]
                .as_str()
                .unwrap()
                .contains("ALTER SYSTEM RESET archive_mode")
        );
        // No archiving of the new cluster's own without spec.backup.
        assert!(b["dcs"]["postgresql"]["parameters"]["archive_command"].is_null());
        let conf = restore_config(spec.spec.restore_from.as_ref().unwrap(), m);
        assert!(conf.contains("repo1-path=/srv/src/repo\n"), "{conf}");
        assert!(
            conf.contains("[src]\npg1-path=/srv/rnew/rnew-0/data\n"),
            "{conf}"
        );
    }

    #[test]
    fn restoring_its_own_stanza_keeps_archiving_on() {
        // The cluster restores itself (backup restore --in-place): its own stanza and
        // repository, so the promoted timeline archives into the stanza it came from.
        let text = SPEC
            .replace("{name: rnew}", "{name: src}")
            .replace("data_dir: /srv/rnew", "data_dir: /srv/src")
            .replace(
                "  replicas: 1\n",
                "  replicas: 1\n  backup:\n    repository: {path: /srv/src/repo}\n",
            );
        let spec = crate::spec::load_str("t.yaml", text.as_bytes()).unwrap();
        assert!(spec.restores_in_place());
        let Provider::Local(local) = &spec.spec.provider else {
            panic!("not local")
        };
        let layout = Layout::new(&spec, local);
        let cfg = patroni_config(&spec, &layout, &[], &layout.members[0]);
        let b = &cfg["bootstrap"];
        assert_eq!(b["method"], "pgbackrest");
        let command = b["pgbackrest"]["command"].as_str().unwrap();
        assert!(!command.contains("--archive-mode=off"), "{command}");
        assert!(b["post_bootstrap"].is_null(), "{b:#}");
        assert_eq!(b["dcs"]["postgresql"]["parameters"]["archive_mode"], "on");
        // Another repository, or another stanza: a new cluster's restore, archiving off.
        let other = text.replace(
            "backup:\n    repository: {path: /srv/src/repo}",
            "backup:\n    repository: {path: /srv/own}",
        );
        let spec = crate::spec::load_str("t.yaml", other.as_bytes()).unwrap();
        assert!(!spec.restores_in_place());
    }

    #[test]
    fn without_restore_from_it_is_initdb() {
        let text = SPEC.split("  restore_from:").next().unwrap();
        let spec = crate::spec::load_str("t.yaml", text.as_bytes()).unwrap();
        let Provider::Local(local) = &spec.spec.provider else {
            panic!("not local")
        };
        let layout = Layout::new(&spec, local);
        let cfg = patroni_config(&spec, &layout, &[], &layout.members[0]);
        assert!(cfg["bootstrap"]["method"].is_null());
        assert!(cfg["bootstrap"]["initdb"].is_array());
    }
}
