//! One member's pgBackRest configuration (`spec.backup`), as every provider renders it: the
//! repository, retention and compression, and the stanza (named after the cluster) with the
//! member's PostgreSQL as the provider runs it. The file sits beside the data directory (PostgreSQL
//! runs `archive_command` there: `$PWD/../pgbackrest.conf`). No secret is written here.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::secret::RepoSecrets;
use crate::spec::model::{BackupEncryption, BackupRepository, BackupSpec};

/// Where one member's PostgreSQL and pgBackRest's own files are, as its provider runs it.
pub struct Member {
    pub data_dir: PathBuf,
    pub port: u16,
    pub socket_dir: PathBuf,
    /// pgBackRest's log directory (pgBackRest does not make it: the provider does).
    pub log_dir: PathBuf,
    pub lock_dir: PathBuf,
}

/// One member's pgBackRest configuration (`spec.backup`): the repository, retention and
/// compression, and the stanza with this member's PostgreSQL (`me`). With an S3 repository or
/// encryption, it holds their secrets (`secrets`, read by the caller): PostgreSQL's
/// `archive_command` runs pgBackRest with this file and nothing else, so the provider writes it
/// for the user that runs PostgreSQL alone (mode 0600), as it writes `patroni.yml`.
///
/// With `from_standby`, the stanza also lists the `others` (`pg2`, `pg3`, ...): pgBackRest finds
/// which one is the primary, and backs up from the first running standby it finds, which is
/// this member (`pg1`) when `backup` runs beside a replica.
pub fn config(
    backup: &BackupSpec,
    secrets: &RepoSecrets,
    stanza: &str,
    me: &Member,
    others: &[Member],
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
        format!("log-path={}", me.log_dir.display()),
        format!("lock-path={}", me.lock_dir.display()),
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
    global.push(format!("[{stanza}]"));
    global.extend(pg_options(1, me));
    if backup.from_standby {
        for (i, o) in others.iter().enumerate() {
            global.extend(pg_options(i + 2, o));
        }
    }
    let mut text = global.join("\n");
    text.push('\n');
    text
}

/// One PostgreSQL of the stanza: `pgN-path`, `-port`, `-socket-path`, `-user`.
fn pg_options(n: usize, m: &Member) -> [String; 4] {
    [
        format!("pg{n}-path={}", m.data_dir.display()),
        format!("pg{n}-port={}", m.port),
        format!("pg{n}-socket-path={}", m.socket_dir.display()),
        format!("pg{n}-user={}", crate::roles::SUPERUSER),
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

/// A restored member's pgBackRest configuration of the SOURCE repository
/// (`spec.restore_from`): only the bootstrap's `restore` and its `archive-get` read it. Holds the
/// source repository's secrets (S3 keys, its passphrase) when it has some: the provider writes
/// it for the user that runs PostgreSQL alone (mode 0600).
pub fn restore_config(
    r: &crate::spec::model::RestoreFrom,
    secrets: &RepoSecrets,
    m: &Member,
) -> String {
    let mut lines = vec![
        "# Written by pgdba from spec.restore_from: the source repository, read to restore."
            .to_owned(),
        "[global]".to_owned(),
    ];
    lines.extend(repo_options(&r.repository, r.encryption.as_ref(), secrets));
    lines.extend([
        format!("log-path={}", m.log_dir.display()),
        format!("lock-path={}", m.lock_dir.display()),
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

/// `spec.restore_from`: Patroni's custom bootstrap (`method: pgbackrest`), which the first
/// member runs instead of initdb. pgBackRest restores the source's backup from the source's
/// repository and stanza (`conf`, the member's `restore.conf` beside its data directory:
/// pgBackRest runs in no shell, so the file is named in full). Into a new cluster, archiving is
/// off (`--archive-mode=off`, written to `postgresql.auto.conf`): the restored instance
/// pushes no WAL anywhere while it recovers and promotes, least of all into the source's
/// stanza; once Patroni has bootstrapped it, `post_bootstrap` resets that `archive_mode`
/// (taking effect at the next restart, when the value was `off` anyway unless the spec
/// archives into its own stanza). In place (`in_place`: the cluster restores its own stanza)
/// archiving stays as the spec sets it: the promoted timeline is archived into the stanza it
/// came from, as pgBackRest's own point-in-time recovery does. Patroni writes the same
/// recovery settings (`recovery_conf`) and removes them after the promotion.
pub fn restore_bootstrap(
    bootstrap: &mut Value,
    r: &crate::spec::model::RestoreFrom,
    in_place: bool,
    conf: &Path,
    data_dir: &Path,
    psql: &Path,
) {
    let mut command = vec![
        "pgbackrest".to_owned(),
        format!("--config={}", conf.display()),
        format!("--stanza={}", r.stanza),
        format!("--pg1-path={}", data_dir.display()),
        "--log-level-console=warn".to_owned(),
    ];
    if !in_place {
        command.push("--archive-mode=off".to_owned());
    }
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
        if in_place {
            return;
        }
        b.insert(
            "post_bootstrap".to_owned(),
            json!(format!(
                "{} -X -q -v ON_ERROR_STOP=1 -c 'ALTER SYSTEM RESET archive_mode'",
                shell_quote(&psql.display().to_string())
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

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_quote_round_trips_through_a_shell_split() {
        assert_eq!(shell_quote("--type=time"), "--type=time");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
