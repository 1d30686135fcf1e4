//! One member's pgBackRest configuration (`spec.backup`), as every provider renders it: the
//! repository, retention and compression, and the stanza (named after the cluster) with the
//! member's PostgreSQL as the provider runs it. The file sits beside the data directory (PostgreSQL
//! runs `archive_command` there: `$PWD/../pgbackrest.conf`). No secret is written here.

use std::path::Path;

use serde_json::{Value, json};

use crate::spec::model::BackupSpec;

/// Where one member's PostgreSQL and pgBackRest's own files are, as its provider runs it.
pub struct Member<'a> {
    pub data_dir: &'a Path,
    pub port: u16,
    pub socket_dir: &'a Path,
    /// pgBackRest's log directory (pgBackRest does not make it: the provider does).
    pub log_dir: &'a Path,
    pub lock_dir: &'a Path,
}

pub fn config(backup: &BackupSpec, stanza: &str, m: &Member<'_>) -> String {
    let mut global = vec![
        format!("repo1-path={}", backup.repository.path.display()),
        format!("repo1-retention-full={}", backup.retention.full),
        format!("compress-type={}", backup.compression.as_str()),
        format!("log-path={}", m.log_dir.display()),
        format!("lock-path={}", m.lock_dir.display()),
        "log-level-console=warn".to_owned(),
        "log-level-file=info".to_owned(),
        "start-fast=y".to_owned(),
    ];
    if let Some(diff) = backup.retention.diff {
        global.push(format!("repo1-retention-diff={diff}"));
    }
    format!(
        "# Written by pgdba from spec.backup; edits are overwritten.\n[global]\n{}\n\n[{stanza}]\npg1-path={}\npg1-port={}\npg1-socket-path={}\npg1-user={}\n",
        global.join("\n"),
        m.data_dir.display(),
        m.port,
        m.socket_dir.display(),
        crate::roles::SUPERUSER,
    )
}

/// A restored member's pgBackRest configuration of the SOURCE repository
/// (`spec.restore_from`): only the bootstrap's `restore` and its `archive-get` read it.
pub fn restore_config(r: &crate::spec::model::RestoreFrom, m: &Member<'_>) -> String {
    format!(
        "# Written by pgdba from spec.restore_from: the source repository, read to restore.\n[global]\nrepo1-path={}\nlog-path={}\nlock-path={}\nlog-level-console=warn\nlog-level-file=info\n\n[{}]\npg1-path={}\npg1-port={}\npg1-socket-path={}\npg1-user={}\n",
        r.repository.path.display(),
        m.log_dir.display(),
        m.lock_dir.display(),
        r.stanza,
        m.data_dir.display(),
        m.port,
        m.socket_dir.display(),
        crate::roles::SUPERUSER,
    )
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
