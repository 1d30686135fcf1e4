//! The files the local provider writes: each member's `patroni.yml` and etcd's command line.
//! Pure: values in, text out. Patroni's passwords are not written here: Patroni gets them from
//! its environment (`PATRONI_SUPERUSER_PASSWORD`, ...). The one kind of secret written is a
//! backup repository's (S3 keys, the encryption passphrase), into the pgBackRest configuration
//! that PostgreSQL's `archive_command` reads, which has no other way to get them.

use serde_json::{Value, json};

use super::layout::{HOST, Layout, MemberLayout};
use crate::secret::RepoSecrets;
use crate::spec::model::{BackupEncryption, BackupRepository, ClusterSpec};

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
        restore_bootstrap(&mut bootstrap, r, layout, m);
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

/// One member's pgBackRest configuration (`spec.backup`): the repository, retention and
/// compression, and the stanza (named after the cluster) with this member's PostgreSQL. Logs
/// and locks stay in the member's directory. With an S3 repository or encryption, it holds their
/// secrets (`secrets`, read by the caller): PostgreSQL's `archive_command` runs pgBackRest with
/// this file and nothing else, so the file is the run-as user's, mode 0600, as `patroni.yml` is.
///
/// With `from_standby`, the stanza also lists every other member (`pg2`, `pg3`, ...): pgBackRest
/// finds which one is the primary, and backs up from the first running standby it finds, which
/// is this member (`pg1`) when `backup` runs beside a replica.
pub fn pgbackrest_config(
    backup: &crate::spec::model::BackupSpec,
    secrets: &RepoSecrets,
    layout: &Layout,
    m: &MemberLayout,
) -> String {
    let mut global = vec!["# Written by pgdba from spec.backup; edits are overwritten.".to_owned()];
    global.push("[global]".to_owned());
    global.extend(repo_options(
        &backup.repository,
        backup.encryption.as_ref(),
        secrets,
    ));
    global.extend([
        format!("repo1-retention-full={}", backup.retention.full),
        format!("compress-type={}", backup.compression.as_str()),
        format!("log-path={}", m.dir.join("pgbackrest-log").display()),
        format!("lock-path={}", m.dir.join("pgbackrest-lock").display()),
        "log-level-console=warn".to_owned(),
        "log-level-file=info".to_owned(),
        "start-fast=y".to_owned(),
    ]);
    if let Some(diff) = backup.retention.diff {
        global.push(format!("repo1-retention-diff={diff}"));
    }
    if backup.from_standby {
        global.push("backup-standby=y".to_owned());
    }
    global.push(String::new());
    global.push(format!("[{}]", layout.cluster));
    global.extend(pg_options(1, m));
    if backup.from_standby {
        let others = layout.members.iter().filter(|o| o.name != m.name);
        for (i, o) in others.enumerate() {
            global.extend(pg_options(i + 2, o));
        }
    }
    let mut text = global.join("\n");
    text.push('\n');
    text
}

/// One PostgreSQL of the stanza: `pgN-path`, `-port`, `-socket-path`, `-user`.
fn pg_options(n: usize, m: &MemberLayout) -> [String; 4] {
    [
        format!("pg{n}-path={}", m.data_dir.display()),
        format!("pg{n}-port={}", m.pg_port),
        format!("pg{n}-socket-path={}", m.socket_dir.display()),
        format!("pg{n}-user={SUPERUSER}"),
    ]
}

/// A repository's options as pgBackRest names them (`repo1-...`): where it is (a directory or
/// an S3 bucket with its keys) and its encryption. A secret `secrets` lacks (it could not be
/// read; the caller refuses that before writing) is left out.
fn repo_options(
    repo: &BackupRepository,
    encryption: Option<&BackupEncryption>,
    secrets: &RepoSecrets,
) -> Vec<String> {
    let mut out = Vec::new();
    match repo {
        BackupRepository::Path(p) => out.push(format!("repo1-path={}", p.display())),
        BackupRepository::S3(s3) => {
            out.push("repo1-type=s3".to_owned());
            out.push(format!("repo1-path={}", s3.path));
            out.push(format!("repo1-s3-bucket={}", s3.bucket));
            out.push(format!("repo1-s3-endpoint={}", s3.endpoint));
            out.push(format!("repo1-s3-region={}", s3.region));
            if let Some(k) = &secrets.s3_key {
                out.push(format!("repo1-s3-key={k}"));
            }
            if let Some(k) = &secrets.s3_key_secret {
                out.push(format!("repo1-s3-key-secret={k}"));
            }
            out.push(format!("repo1-s3-uri-style={}", s3.uri_style.as_str()));
            out.push(format!(
                "repo1-storage-verify-tls={}",
                if s3.verify_tls { "y" } else { "n" }
            ));
            if let Some(ca) = &s3.ca_file {
                out.push(format!("repo1-storage-ca-file={}", ca.display()));
            }
            if let Some(port) = s3.port {
                out.push(format!("repo1-storage-port={port}"));
            }
        }
    }
    if let Some(e) = encryption {
        out.push(format!("repo1-cipher-type={}", e.cipher.as_str()));
        if let Some(p) = &secrets.cipher_pass {
            out.push(format!("repo1-cipher-pass={p}"));
        }
    }
    out
}

/// `spec.restore_from`: Patroni's custom bootstrap (`method: pgbackrest`), which the first
/// member runs instead of initdb. pgBackRest restores the source's backup from the source's
/// repository and stanza (`restore.conf`, beside the data directory: pgBackRest runs as the
/// run-as user, in no shell, so the file is named in full), with archiving off
/// (`--archive-mode=off`, written to `postgresql.auto.conf`): the restored instance pushes no
/// WAL anywhere while it recovers and promotes, least of all into the source's stanza. Once
/// Patroni has bootstrapped it, `post_bootstrap` resets that `archive_mode` (taking effect at
/// the next restart, when the value was `off` anyway unless the spec archives into its own
/// stanza). Patroni writes the same recovery settings (`recovery_conf`) and removes them
/// after the promotion.
fn restore_bootstrap(
    bootstrap: &mut Value,
    r: &crate::spec::model::RestoreFrom,
    layout: &Layout,
    m: &MemberLayout,
) {
    let conf = m.dir.join(crate::spec::model::RESTORE_CONF);
    let mut command = vec![
        "pgbackrest".to_owned(),
        format!("--config={}", conf.display()),
        format!("--stanza={}", r.stanza),
        format!("--pg1-path={}", m.data_dir.display()),
        "--archive-mode=off".to_owned(),
        "--log-level-console=warn".to_owned(),
    ];
    if let Some(id) = &r.backup_id {
        command.push(format!("--set={id}"));
    }
    let mut recovery = serde_json::Map::new();
    recovery.insert(
        "restore_command".to_owned(),
        json!(format!(
            "pgbackrest --config={} --stanza={} archive-get %f \"%p\"",
            conf.display(),
            r.stanza
        )),
    );
    recovery.insert("recovery_target_timeline".to_owned(), json!("latest"));
    if let Some((kind, param, value)) = r.target() {
        command.push(format!("--type={kind}"));
        command.push(format!("--target={value}"));
        command.push("--target-action=promote".to_owned());
        recovery.insert(param.to_owned(), json!(value));
        recovery.insert("recovery_target_action".to_owned(), json!("promote"));
    }
    command.push("restore".to_owned());
    // Patroni splits the command as a shell would (shlex), and runs no shell.
    let command = command
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(b) = bootstrap.as_object_mut() {
        b.insert("method".to_owned(), json!("pgbackrest"));
        b.insert(
            "pgbackrest".to_owned(),
            json!({
                "command": command,
                "keep_existing_recovery_conf": true,
                "no_params": true,
                "recovery_conf": recovery,
            }),
        );
        b.insert(
            "post_bootstrap".to_owned(),
            json!(format!(
                "{} -X -q -v ON_ERROR_STOP=1 -c 'ALTER SYSTEM RESET archive_mode'",
                shell_quote(&layout.bin_dir.join("psql").display().to_string())
            )),
        );
    }
}

/// One word as a POSIX shell (and Python's shlex) reads it back.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=/.:,+%@".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A restored member's pgBackRest configuration of the SOURCE repository
/// (`spec.restore_from`): only the bootstrap's `restore` and its `archive-get` read it. Logs and
/// locks stay in the member's directory. Holds the source repository's secrets (S3 keys, its
/// passphrase) when it has some: the run-as user's, mode 0600.
pub fn restore_config(
    r: &crate::spec::model::RestoreFrom,
    secrets: &RepoSecrets,
    m: &MemberLayout,
) -> String {
    let mut lines = vec![
        "# Written by pgdba from spec.restore_from: the source repository, read to restore."
            .to_owned(),
        "[global]".to_owned(),
    ];
    lines.extend(repo_options(&r.repository, r.encryption.as_ref(), secrets));
    lines.extend([
        format!("log-path={}", m.dir.join("pgbackrest-log").display()),
        format!("lock-path={}", m.dir.join("pgbackrest-lock").display()),
        "log-level-console=warn".to_owned(),
        "log-level-file=info".to_owned(),
        String::new(),
        format!("[{}]", r.stanza),
    ]);
    lines.extend(pg_options(1, m));
    let mut text = lines.join("\n");
    text.push('\n');
    text
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

    #[test]
    fn shell_quote_round_trips_through_a_shell_split() {
        assert_eq!(shell_quote("--type=time"), "--type=time");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
