//! The files the local provider writes: each member's `patroni.yml` and etcd's command line.
//! Pure: values in, text out. Patroni's passwords are not written here: Patroni gets them from
//! its environment (`PATRONI_SUPERUSER_PASSWORD`, ...). The one kind of secret written is a
//! backup repository's (S3 keys, the encryption passphrase), into the pgBackRest configuration
//! that PostgreSQL's `archive_command` reads, which has no other way to get them.

use serde_json::{Value, json};

use super::layout::{HOST, Layout, MemberLayout};
use crate::secret::RepoSecrets;
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

/// Where pgBackRest finds member `m`'s PostgreSQL; its logs and locks stay in its directory.
fn pgbackrest_member(m: &MemberLayout) -> crate::providers::pgbackrest::Member {
    crate::providers::pgbackrest::Member {
        data_dir: m.data_dir.clone(),
        port: m.pg_port,
        socket_dir: m.socket_dir.clone(),
        log_dir: m.dir.join("pgbackrest-log"),
        lock_dir: m.dir.join("pgbackrest-lock"),
    }
}

/// One member's pgBackRest configuration (`spec.backup`), with `secrets` (see
/// [`crate::providers::pgbackrest::config`]). With `from_standby` the stanza lists every other
/// member after this one: all are on this machine.
pub fn pgbackrest_config(
    backup: &crate::spec::model::BackupSpec,
    secrets: &RepoSecrets,
    layout: &Layout,
    m: &MemberLayout,
) -> String {
    let others: Vec<_> = layout
        .members
        .iter()
        .filter(|o| o.name != m.name)
        .map(pgbackrest_member)
        .collect();
    crate::providers::pgbackrest::config(
        backup,
        secrets,
        &layout.cluster,
        &pgbackrest_member(m),
        &others,
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
/// (`spec.restore_from`), with its `secrets`.
pub fn restore_config(
    r: &crate::spec::model::RestoreFrom,
    secrets: &RepoSecrets,
    m: &MemberLayout,
) -> String {
    crate::providers::pgbackrest::restore_config(r, secrets, &pgbackrest_member(m))
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
        let conf = restore_config(
            spec.spec.restore_from.as_ref().unwrap(),
            &RepoSecrets::default(),
            m,
        );
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

    const S3_SPEC: &str = "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {name: bk}\nspec:\n  provider:\n    local: {data_dir: /srv/bk}\n  replicas: 2\n  backup:\n    repository:\n      s3: {bucket: pgdba-bk, endpoint: s3.example.com, region: eu-west-1, key: {env: K}, key_secret: {env: S}, uri_style: path, verify_tls: false, ca_file: /etc/ca.pem, port: 9443}\n    encryption: {passphrase: {env: P}}\n    from_standby: true\n";

    fn secrets() -> RepoSecrets {
        RepoSecrets {
            s3_key: Some("AKIDKEY".to_owned()),
            s3_key_secret: Some("s3cr3t-value".to_owned()),
            cipher_pass: Some("pass-phrase".to_owned()),
        }
    }

    #[test]
    fn an_s3_repository_with_encryption_renders_pgbackrests_options() {
        let spec = crate::spec::load_str("t.yaml", S3_SPEC.as_bytes()).unwrap();
        let Provider::Local(local) = &spec.spec.provider else {
            panic!("not local")
        };
        let layout = Layout::new(&spec, local);
        let b = spec.spec.backup.as_ref().unwrap();
        let conf = pgbackrest_config(b, &secrets(), &layout, &layout.members[1]);
        for want in [
            "repo1-type=s3\n",
            "repo1-path=/pgdba\n",
            "repo1-s3-bucket=pgdba-bk\n",
            "repo1-s3-endpoint=s3.example.com\n",
            "repo1-s3-region=eu-west-1\n",
            "repo1-s3-key=AKIDKEY\n",
            "repo1-s3-key-secret=s3cr3t-value\n",
            "repo1-s3-uri-style=path\n",
            "repo1-storage-verify-tls=n\n",
            "repo1-storage-ca-file=/etc/ca.pem\n",
            "repo1-storage-port=9443\n",
            "repo1-cipher-type=aes-256-cbc\n",
            "repo1-cipher-pass=pass-phrase\n",
            "backup-standby=y\n",
        ] {
            assert!(conf.contains(want), "{want} not in\n{conf}");
        }
        // from_standby: this member is pg1, the others follow, each with its own PostgreSQL.
        let stanza = conf.split("[bk]\n").nth(1).unwrap();
        assert!(
            stanza.starts_with("pg1-path=/srv/bk/bk-1/data\npg1-port=15433\n"),
            "{stanza}"
        );
        assert!(stanza.contains("pg2-path=/srv/bk/bk-0/data\npg2-port=15432\n"));
        assert!(stanza.contains("pg3-path=/srv/bk/bk-2/data\npg3-port=15434\n"));
        assert!(stanza.contains("pg3-socket-path=/srv/bk/bk-2/run\npg3-user=postgres\n"));
        assert!(!conf.contains("repo1-path=/srv"), "{conf}");
        // A changed secret is a changed file: what config_current compares.
        let mut other = secrets();
        other.cipher_pass = Some("another".to_owned());
        assert_ne!(
            conf,
            pgbackrest_config(b, &other, &layout, &layout.members[1])
        );
    }

    #[test]
    fn a_path_repository_without_from_standby_lists_only_its_own_member() {
        let text = S3_SPEC
            .replace(
                "      s3: {bucket: pgdba-bk, endpoint: s3.example.com, region: eu-west-1, key: {env: K}, key_secret: {env: S}, uri_style: path, verify_tls: false, ca_file: /etc/ca.pem, port: 9443}\n",
                "      path: /srv/bk/repo\n",
            )
            .replace("    encryption: {passphrase: {env: P}}\n    from_standby: true\n", "");
        let spec = crate::spec::load_str("t.yaml", text.as_bytes()).unwrap();
        let Provider::Local(local) = &spec.spec.provider else {
            panic!("not local")
        };
        let layout = Layout::new(&spec, local);
        let b = spec.spec.backup.as_ref().unwrap();
        let conf = pgbackrest_config(b, &RepoSecrets::default(), &layout, &layout.members[0]);
        assert!(conf.starts_with("# Written by pgdba from spec.backup; edits are overwritten.\n[global]\nrepo1-path=/srv/bk/repo\nrepo1-retention-full=2\n"), "{conf}");
        for absent in ["repo1-type", "cipher", "backup-standby", "pg2-"] {
            assert!(!conf.contains(absent), "{absent} in\n{conf}");
        }
        assert!(conf.ends_with("[bk]\npg1-path=/srv/bk/bk-0/data\npg1-port=15432\npg1-socket-path=/srv/bk/bk-0/run\npg1-user=postgres\n"), "{conf}");
    }

    #[test]
    fn restore_from_an_encrypted_s3_repository_renders_its_secrets_into_restore_conf() {
        let text = SPEC.replace(
            "    repository: {path: /srv/src/repo}\n",
            "    repository: {s3: {bucket: src-bk, endpoint: s3.example.com, region: r1, path: /src, key: {env: K}, key_secret: {env: S}}}\n    encryption: {passphrase: {env: P}}\n",
        );
        let spec = crate::spec::load_str("t.yaml", text.as_bytes()).unwrap();
        let Provider::Local(local) = &spec.spec.provider else {
            panic!("not local")
        };
        let layout = Layout::new(&spec, local);
        let conf = restore_config(
            spec.spec.restore_from.as_ref().unwrap(),
            &secrets(),
            &layout.members[0],
        );
        for want in [
            "repo1-type=s3\n",
            "repo1-path=/src\n",
            "repo1-s3-bucket=src-bk\n",
            "repo1-s3-key-secret=s3cr3t-value\n",
            "repo1-s3-uri-style=host\n",
            "repo1-storage-verify-tls=y\n",
            "repo1-cipher-pass=pass-phrase\n",
            "[src]\npg1-path=/srv/rnew/rnew-0/data\n",
        ] {
            assert!(conf.contains(want), "{want} not in\n{conf}");
        }
        assert!(!conf.contains("repo1-storage-port"), "{conf}");
    }
}
