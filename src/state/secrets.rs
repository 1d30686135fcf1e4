//! Passwords pgdba generates for its own roles. They live only in `<cluster>.secrets.json`
//! (mode 0600), never in the state and never in a `Debug` or log line.

use std::fmt;
use std::path::Path;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use super::StateError;
use super::fsutil::{self, Install, Written};

/// Length of generated passwords: 32 alphanumeric characters, about 190 bits.
pub(super) const PASSWORD_LEN: usize = 32;

/// Mode of the secrets file, from its creation on.
pub(super) const SECRETS_MODE: u32 = 0o600;

/// The passwords of the roles pgdba manages. `Debug` prints `(sensitive)`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub superuser_password: String,
    pub replication_password: String,
    pub rewind_password: String,
    /// Basic authentication of the members' Patroni REST API for everything that changes the
    /// cluster (user `pgdba`). Absent in clusters made before pgdba protected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restapi_password: Option<String>,
    /// The password of etcd's `root` user: etcd runs with authentication on. Absent in clusters
    /// made before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_password: Option<String>,
    /// The password of PgBouncer's auth user (`pgbouncer`). Absent in clusters made before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler_password: Option<String>,
}

impl Secrets {
    /// Fresh random passwords from a CSPRNG (`rand::rng()`, ChaCha seeded from the OS).
    pub(super) fn generate() -> Self {
        Self {
            superuser_password: random_password(),
            replication_password: random_password(),
            rewind_password: random_password(),
            restapi_password: Some(random_password()),
            etcd_password: Some(random_password()),
            pooler_password: Some(random_password()),
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

fn random_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Secrets, StateError> {
    serde_json::from_slice(bytes).map_err(|source| StateError::CorruptSecrets {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads the secrets at `path` if they exist; never creates them (for read-only commands).
pub(super) fn load(path: &Path) -> Result<Option<Secrets>, StateError> {
    fsutil::read_optional(path)?
        .map(|bytes| parse(path, &bytes))
        .transpose()
}

/// Loads the secrets at `path`, or generates them and creates the file. Two processes racing here
/// end up with the same secrets: the file is created exclusively and the loser reads the winner's.
pub(super) fn load_or_create(path: &Path) -> Result<Secrets, StateError> {
    if let Some(bytes) = fsutil::read_optional(path)? {
        return parse(path, &bytes);
    }
    fsutil::create_dir_all(fsutil::parent_dir(path))?;
    let secrets = Secrets::generate();
    let mut bytes = serde_json::to_vec_pretty(&secrets).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    match fsutil::write_atomic(path, &bytes, SECRETS_MODE, Install::CreateNew)? {
        Written::Installed => Ok(secrets),
        Written::AlreadyExists => {
            let bytes = std::fs::read(path).map_err(fsutil::io_err("read", path))?;
            parse(path, &bytes)
        }
    }
}

/// Creates the secrets file of an adopted cluster with the passwords its owner gave (only its
/// superuser's: pgdba has no roles of its own there). Refuses to replace an existing file.
pub(super) fn create_adopted(path: &Path, superuser_password: &str) -> Result<(), StateError> {
    fsutil::create_dir_all(fsutil::parent_dir(path))?;
    let secrets = Secrets {
        superuser_password: superuser_password.to_owned(),
        replication_password: String::new(),
        rewind_password: String::new(),
        restapi_password: None,
        etcd_password: None,
        pooler_password: None,
    };
    let mut bytes = serde_json::to_vec_pretty(&secrets).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    match fsutil::write_atomic(path, &bytes, SECRETS_MODE, Install::CreateNew)? {
        Written::Installed => Ok(()),
        Written::AlreadyExists => Err(StateError::Io {
            action: "create",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a secrets file is already there",
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_values() {
        let s = Secrets::generate();
        let debug = format!("{s:?} {s:#?}");
        assert_eq!(format!("{s:?}"), "(sensitive)");
        for value in [
            &s.superuser_password,
            &s.replication_password,
            &s.rewind_password,
        ] {
            assert!(!debug.contains(value.as_str()));
        }
    }

    #[test]
    fn passwords_are_32_alphanumerics_and_distinct() {
        let s = Secrets::generate();
        for p in [
            &s.superuser_password,
            &s.replication_password,
            &s.rewind_password,
        ] {
            assert_eq!(p.len(), PASSWORD_LEN);
            assert!(p.chars().all(|c| c.is_ascii_alphanumeric()), "{}", p.len());
        }
        assert_ne!(s.superuser_password, s.replication_password);
        assert_ne!(s.replication_password, s.rewind_password);
    }
}
