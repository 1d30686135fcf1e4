//! `spec.backup` with an S3 repository and encryption on a real local cluster (issue 11), against
//! a real S3-compatible server: moto (`/opt/moto`, `scripts/install.sh`) run plain, behind an
//! nginx of the test's own terminating TLS with a certificate openssl makes in the test's temp
//! dir (pgBackRest speaks S3 over TLS only). pgBackRest 2.45 creates the stanza, archives WAL,
//! backs up, verifies and restores through it; the repository is encrypted; and no secret (the
//! S3 key's secret, the passphrase) appears in a plan, an output or a file of the state dir.
//! Also `from_standby`: `backup create` runs beside a streaming replica.
//!
//! Ports: 31000-31099 (the clusters at 31000, 31040 and, restored, 31070; the S3 servers at
//! 31090-31093).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{TestCluster, all_files, wait_for};

const MOTO: &str = "/opt/moto/bin/moto_server";
const NGINX: &str = "/usr/sbin/nginx";
const BUCKET: &str = "pgdba-s3test";
const KEY: &str = "AKIDPGDBATEST";
const KEY_SECRET: &str = "s3-Secret-7d1e93c4a8b2";
const PASSPHRASE: &str = "backup-Passphrase-5c20f7e9d6";

/// moto on `plain_port` and nginx terminating TLS on `tls_port` in front of it, with a bucket.
/// Dropping it stops both (by the pids this test started).
struct S3Server {
    dir: tempfile::TempDir,
    moto: Child,
    nginx: Child,
    plain_port: u16,
}

impl S3Server {
    fn start(plain_port: u16, tls_port: u16) -> S3Server {
        for (bin, what) in [(MOTO, "moto"), (NGINX, "nginx")] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: scripts/install.sh installs {what}"
            );
        }
        for port in [plain_port, tls_port] {
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} is taken"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("pgdba-s3-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let moto = Command::new(MOTO)
            .args(["-H", "127.0.0.1", "-p", &plain_port.to_string()])
            .stdout(std::fs::File::create(d.join("moto.log")).unwrap())
            .stderr(std::fs::File::create(d.join("moto.err")).unwrap())
            .spawn()
            .unwrap();
        let openssl = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem"))
            .output()
            .unwrap();
        assert!(openssl.status.success(), "openssl: {openssl:?}");
        let conf = format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{tls_port} ssl;\n    ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n    client_max_body_size 0;\n    location / {{\n      proxy_pass http://127.0.0.1:{plain_port};\n      proxy_set_header Host $http_host;\n      proxy_http_version 1.1;\n    }}\n  }}\n}}\n",
            d = d.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let nginx = Command::new(NGINX)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("nginx.err")).unwrap())
            .spawn()
            .unwrap();
        let s = S3Server {
            dir,
            moto,
            nginx,
            plain_port,
        };
        // moto answers, then the bucket through it; nginx answers over TLS.
        wait_for("moto to answer", Duration::from_secs(30), || {
            s.curl(&["-X", "PUT", &s.url(BUCKET)])
                .filter(|(code, _)| *code == 200)
        });
        wait_for("nginx to answer over TLS", Duration::from_secs(30), || {
            let out = Command::new("curl")
                .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("https://127.0.0.1:{tls_port}/{BUCKET}"))
                .output()
                .ok()?;
            (out.stdout == b"200").then_some(())
        });
        s
    }

    fn url(&self, key: &str) -> String {
        format!("http://127.0.0.1:{}/{key}", self.plain_port)
    }

    /// curl on moto's plain port: (HTTP status, body).
    fn curl(&self, args: &[&str]) -> Option<(u16, Vec<u8>)> {
        let body = self.dir.path().join("curl.out");
        let out = Command::new("curl")
            .args(["-s", "-o"])
            .arg(&body)
            .args(["-w", "%{http_code}"])
            .args(args)
            .output()
            .ok()?;
        let code = String::from_utf8_lossy(&out.stdout).parse().ok()?;
        Some((code, std::fs::read(&body).unwrap_or_default()))
    }

    /// A signed request (moto answers anonymous reads of a private bucket with 403).
    fn signed(&self, url: &str) -> Option<(u16, Vec<u8>)> {
        let user = format!("{KEY}:{KEY_SECRET}");
        self.curl(&["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user, url])
    }

    /// An object of the bucket, as stored (fetched through moto, not through pgBackRest).
    fn object(&self, key: &str) -> Vec<u8> {
        let (code, body) = self.signed(&self.url(&format!("{BUCKET}/{key}"))).unwrap();
        assert_eq!(code, 200, "{key}: {}", String::from_utf8_lossy(&body));
        body
    }

    /// The keys of the bucket's objects under `prefix`.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let (code, body) = self
            .signed(&format!("{}?prefix={prefix}", self.url(BUCKET)))
            .unwrap();
        assert_eq!(code, 200);
        let text = String::from_utf8_lossy(&body);
        text.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // nginx's master stops its worker on SIGTERM; moto is one process.
        let _ = Command::new("kill")
            .args(["-TERM", &self.nginx.id().to_string()])
            .status();
        let _ = self.nginx.wait();
        let _ = self.moto.kill();
        let _ = self.moto.wait();
    }
}

fn s3_section(tls_port: u16, stanza_prefix: &str) -> String {
    format!(
        "  backup:\n    repository:\n      s3:\n        bucket: {BUCKET}\n        endpoint: 127.0.0.1\n        region: us-east-1\n        path: /{stanza_prefix}\n        key: {{env: PGDBA_TEST_S3_KEY}}\n        key_secret: {{env: PGDBA_TEST_S3_KEY_SECRET}}\n        uri_style: path\n        verify_tls: false\n        port: {tls_port}\n    encryption: {{passphrase: {{env: PGDBA_TEST_BACKUP_PASSPHRASE}}}}\n"
    )
}

fn set_secrets(t: &TestCluster, key_secret: &str) {
    *t.envs.borrow_mut() = vec![
        ("PGDBA_TEST_S3_KEY".to_owned(), KEY.to_owned()),
        ("PGDBA_TEST_S3_KEY_SECRET".to_owned(), key_secret.to_owned()),
        (
            "PGDBA_TEST_BACKUP_PASSPHRASE".to_owned(),
            PASSPHRASE.to_owned(),
        ),
    ];
}

fn leader(t: &TestCluster) -> String {
    t.patronictl_list()
        .iter()
        .find(|m| m["Role"] == "Leader")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .unwrap()
}

fn backup_create(t: &TestCluster) -> Value {
    let r = t.run(&[
        "backup", "create", "--name", &t.name, "--type", "full", "--format", "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()["data"].clone()
}

#[test]
fn s3_repository_encrypted_backs_up_verifies_and_restores_without_showing_its_secrets() {
    let s3 = S3Server::start(31090, 31091);
    let t = TestCluster::new("s3t", 31000);
    t.write_spec_with(1, &[("max_connections", "100")], &s3_section(31091, "repo"));

    // A secret that cannot be read: plan refuses, naming the spec's field (exit 1).
    let r = t.run(&["plan", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["code"], "SECRET_UNAVAILABLE", "{v:#}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.backup.repository.s3.key") && message.contains("PGDBA_TEST_S3_KEY"),
        "{message}"
    );

    set_secrets(&t, KEY_SECRET);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan:#}");
    t.apply();
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");

    // The secrets are in each member's pgBackRest configuration only: 0600, the postgres
    // user's (PostgreSQL's archive_command reads it).
    for m in ["s3t-0", "s3t-1"] {
        let conf = t.data_dir().join(m).join("pgbackrest.conf");
        let meta = std::fs::metadata(&conf).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600, "{}", conf.display());
        let postgres_uid = nix_uid("postgres");
        assert_eq!(meta.uid(), postgres_uid, "{}", conf.display());
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(text.contains("repo1-type=s3\n"), "{text}");
        assert!(text.contains(&format!("repo1-s3-key-secret={KEY_SECRET}\n")));
        assert!(text.contains(&format!("repo1-cipher-pass={PASSPHRASE}\n")));
    }

    // WAL reaches the bucket; a full backup is taken, verified, listed and restored.
    let l = leader(&t);
    let port = t.members().into_iter().find(|(n, _)| n == &l).unwrap().1;
    t.psql(
        &l,
        port,
        "CREATE TABLE t AS SELECT g AS i FROM generate_series(1, 1000) g",
    );
    t.psql(&l, port, "SELECT pg_switch_wal()");
    let created = backup_create(&t);
    let id = created["backup"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["backup"]["verified"], true, "{created:#}");
    assert_eq!(created["member"], l.as_str(), "{created:#}");
    let r = t.run(&["backup", "list", "--name", "s3t", "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let listed = r.json()["data"]["backups"].clone();
    assert!(
        listed.as_array().unwrap().iter().any(|b| b["id"] == id),
        "{listed:#}"
    );
    let r = t.run(&[
        "backup",
        "verify-restore",
        "--name",
        "s3t",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");

    // A new cluster restored from the encrypted S3 repository (`spec.restore_from` carries the
    // repository and its encryption, secrets as the same references).
    let new = restored_cluster(&t, "s3r");
    let r = t.run(&[
        "backup",
        "restore",
        "--name",
        "s3t",
        "--to-cluster",
        "s3r",
        "--out",
        new.spec_str(),
        "--data-dir",
        new.data_dir().to_str().unwrap(),
        "--pg-port",
        "31070",
        "--api-port",
        "31080",
        "--etcd-port",
        "31084",
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "backup restore: {r:?}");
    let text = std::fs::read_to_string(&new.spec).unwrap();
    assert!(
        text.contains("PGDBA_TEST_BACKUP_PASSPHRASE") && text.contains("s3:"),
        "{text}"
    );
    let restore_conf = new.data_dir().join("s3r-0").join("restore.conf");
    assert_eq!(
        std::fs::metadata(&restore_conf).unwrap().mode() & 0o777,
        0o600
    );
    let nleader = leader(&new);
    let nport = new
        .members()
        .into_iter()
        .find(|(n, _)| n == &nleader)
        .unwrap()
        .1;
    assert_eq!(new.psql(&nleader, nport, "SELECT count(*) FROM t"), "1000");

    // Encrypted at rest: what the bucket holds is OpenSSL's salted format, not pgBackRest's
    // plain text (`[backrest]` opens an unencrypted info file).
    let info = s3.object("repo/backup/s3t/backup.info");
    assert!(
        info.starts_with(b"Salted__"),
        "{:?}",
        &info[..info.len().min(40)]
    );
    assert!(!String::from_utf8_lossy(&info).contains("[backrest]"));
    let wal: Vec<String> = s3
        .keys("repo/archive/s3t/")
        .into_iter()
        .filter(|k| k.contains("/0000000"))
        .collect();
    assert!(!wal.is_empty(), "no archived WAL in the bucket");
    let segment = s3.object(&wal[0]);
    assert!(segment.starts_with(b"Salted__"), "{}", wal[0]);
    let manifest = s3.object(&format!("repo/backup/s3t/{id}/backup.manifest"));
    assert!(manifest.starts_with(b"Salted__"));

    // A changed secret is a changed configuration of every member, shown without its value.
    set_secrets(&t, "another-Secret-0b9f");
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2, "{plan:#}");
    let changes = plan["data"]["clusters"][0]["changes"].as_array().unwrap();
    for m in ["member.s3t-0", "member.s3t-1"] {
        assert!(
            changes.iter().any(|c| c["address"] == m),
            "{m} not reconfigured: {plan:#}"
        );
    }
    let r = t.run(&["plan", "-f", t.spec_str()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("another-Secret-0b9f"));
    set_secrets(&t, KEY_SECRET);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    let r = t.run(&["plan", "-f", t.spec_str(), "--format", "markdown"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = t.run(&["state", "show", "s3t", "-vv", "--format", "yaml"]);
    assert_eq!(r.code, 0, "{r:?}");

    // No secret in anything pgdba printed, in the state dir, or in a file of the cluster's
    // directory but the pgBackRest configuration (logs included: pgBackRest redacts them).
    let transcript = t.transcript.borrow().clone();
    for secret in [KEY_SECRET, PASSPHRASE, "another-Secret-0b9f"] {
        assert!(
            !transcript.contains(secret),
            "a secret appears in pgdba's output"
        );
        for f in all_files(&t.state_dir) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "a secret appears in {}",
                f.display()
            );
        }
        let transcript = new.transcript.borrow().clone();
        assert!(
            !transcript.contains(secret),
            "a secret appears in pgdba's output"
        );
        for f in all_files(&t.data_dir())
            .into_iter()
            .chain(all_files(&new.data_dir()))
        {
            if crate::support::is_pg_binary(&f)
                || f.file_name()
                    .is_some_and(|n| n == "pgbackrest.conf" || n == "restore.conf")
            {
                continue;
            }
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "a secret appears in {}",
                f.display()
            );
        }
    }
    drop(new);
    drop(t);
    drop(s3);
}

/// The cluster `backup restore --to-cluster` makes, as a `TestCluster` of the source's state
/// dir (with the source's secrets in its environment): dropping it destroys it.
fn restored_cluster(source: &TestCluster, name: &str) -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix(&format!("pgdba-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    TestCluster {
        name: name.to_owned(),
        spec: dir.path().join(format!("{name}.yaml")),
        state_dir: source.state_dir.clone(),
        pg_port: 31070,
        api_port: 31080,
        etcd_port: 31084,
        dir,
        transcript: Default::default(),
        envs: source.envs.clone(),
    }
}

/// `from_standby`: `backup create` runs beside a streaming replica (named as `member`), and the
/// backup is good (verified by pgBackRest, then restored by `verify-restore`).
#[test]
fn s3_from_standby_backs_up_beside_a_streaming_replica() {
    let _s3 = S3Server::start(31092, 31093);
    let t = TestCluster::new("s3sb", 31040);
    let section = s3_section(31093, "sb")
        .replace("    encryption:", "    from_standby: true\n    encryption:");
    t.write_spec_with(1, &[("max_connections", "100")], &section);
    set_secrets(&t, KEY_SECRET);
    t.apply();
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");
    let l = leader(&t);
    let replica = ["s3sb-0", "s3sb-1"].into_iter().find(|m| *m != l).unwrap();
    wait_for("the replica to stream", Duration::from_secs(60), || {
        t.patronictl_list()
            .iter()
            .any(|m| m["Member"] == replica && m["State"] == "streaming")
            .then_some(())
    });
    let created = backup_create(&t);
    assert_eq!(created["member"], replica, "{created:#}");
    assert_eq!(created["backup"]["verified"], true, "{created:#}");
    // pgBackRest's own log on the replica says it backed up from the standby (it waits for
    // the standby to replay up to the backup's start, which a backup of the primary never does).
    let log_dir = t.data_dir().join(replica).join("pgbackrest-log");
    let logs: String = all_files(&log_dir)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("--backup-standby") && logs.contains("replay on the standby reached"),
        "{}",
        log_dir.display()
    );
    let r = t.run(&[
        "backup",
        "verify-restore",
        "--name",
        "s3sb",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
}

fn nix_uid(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
