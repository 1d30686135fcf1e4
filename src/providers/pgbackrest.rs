//! One member's pgBackRest configuration (`spec.backup`), as every provider renders it: the
//! repository, retention and compression, and the stanza (named after the cluster) with the
//! member's PostgreSQL as the provider runs it. The file sits beside the data directory (PostgreSQL
//! runs `archive_command` there: `$PWD/../pgbackrest.conf`). No secret is written here.

use std::path::Path;

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
