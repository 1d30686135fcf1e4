//! Reading a secret the spec points at (`password: {env: NAME}` or `{file: PATH}`). The value
//! lives in memory only: never in the state, a plan, a log or any output; errors name where it
//! was looked for, never what it is.

use std::collections::BTreeMap;

use crate::spec::model::{BackupRepository, ClusterSpec, SecretRef};

/// Why a secret could not be read: where it was looked for, never what it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(String);

/// The spec's role passwords, read once per run at the CLI's edge and handed to observation
/// (which checks them against the cluster's verifiers) and to apply (which sets them).
#[derive(Clone, Default)]
pub struct RoleSecrets {
    values: BTreeMap<String, String>,
    errors: BTreeMap<String, SecretError>,
}

impl RoleSecrets {
    /// Read every password the spec's roles point at.
    pub fn resolve(spec: &ClusterSpec) -> RoleSecrets {
        let mut out = RoleSecrets::default();
        for r in &spec.spec.roles {
            if let Some(source) = &r.password {
                match resolve(source) {
                    Ok(v) => {
                        out.values.insert(r.name.clone(), v);
                    }
                    Err(e) => {
                        out.errors.insert(r.name.clone(), e);
                    }
                }
            }
        }
        out
    }

    /// Role `name`'s password: `Ok(None)` when the spec gives it none, an error when it could
    /// not be read.
    pub fn get(&self, name: &str) -> Result<Option<&str>, &SecretError> {
        match self.errors.get(name) {
            Some(e) => Err(e),
            None => Ok(self.values.get(name).map(String::as_str)),
        }
    }

    /// The passwords that could not be read, by role.
    pub fn errors(&self) -> &BTreeMap<String, SecretError> {
        &self.errors
    }

    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl std::fmt::Debug for RoleSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoleSecrets(sensitive)")
    }
}

/// One pgBackRest repository's secrets, read: the S3 keys and the cipher passphrase its spec
/// points at (each `None` when the spec has none, or when it could not be read).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepoSecrets {
    pub s3_key: Option<String>,
    pub s3_key_secret: Option<String>,
    pub cipher_pass: Option<String>,
}

impl std::fmt::Debug for RepoSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepoSecrets(sensitive)")
    }
}

/// The secrets of `spec.backup` and `spec.restore_from` (S3 keys, encryption passphrases), read
/// once per run at the CLI's edge and handed to the provider, which writes them into each
/// member's pgBackRest configuration (and compares them with what is there). A secret that
/// cannot be read is kept as an error naming the spec's field: plan and apply refuse it.
#[derive(Clone, Default)]
pub struct BackupSecrets {
    backup: RepoSecrets,
    restore_from: RepoSecrets,
    errors: Vec<(String, SecretError)>,
}

impl BackupSecrets {
    /// Read every secret `spec.backup` and `spec.restore_from` point at.
    pub fn resolve(spec: &ClusterSpec) -> BackupSecrets {
        let mut out = BackupSecrets::default();
        if let Some(b) = &spec.spec.backup {
            out.backup = out.read(
                "spec.backup",
                &b.repository,
                b.encryption.as_ref().map(|e| &e.passphrase),
            );
        }
        if let Some(r) = &spec.spec.restore_from {
            out.restore_from = out.read(
                "spec.restore_from",
                &r.repository,
                r.encryption.as_ref().map(|e| &e.passphrase),
            );
        }
        out
    }

    fn read(
        &mut self,
        section: &str,
        repo: &BackupRepository,
        passphrase: Option<&SecretRef>,
    ) -> RepoSecrets {
        let mut one = |field: &str, source: Option<&SecretRef>| -> Option<String> {
            let source = source?;
            // One line of pgBackRest's configuration file holds it.
            let one_line = |v: String| {
                if v.contains(['\n', '\r']) {
                    Err(SecretError(format!(
                        "the secret from {} holds a line break, which pgBackRest's configuration cannot",
                        describe(source)
                    )))
                } else {
                    Ok(v)
                }
            };
            match resolve(source).and_then(one_line) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.errors.push((format!("{section}.{field}"), e));
                    None
                }
            }
        };
        let s3 = match repo {
            BackupRepository::S3(s3) => Some(s3),
            BackupRepository::Path(_) => None,
        };
        RepoSecrets {
            s3_key: one("repository.s3.key", s3.map(|s| &s.key)),
            s3_key_secret: one("repository.s3.key_secret", s3.map(|s| &s.key_secret)),
            cipher_pass: one("encryption.passphrase", passphrase),
        }
    }

    /// `spec.backup`'s.
    pub fn backup(&self) -> &RepoSecrets {
        &self.backup
    }

    /// `spec.restore_from`'s (the source repository's).
    pub fn restore_from(&self) -> &RepoSecrets {
        &self.restore_from
    }

    /// The secrets that could not be read: the spec's field, and why.
    pub fn errors(&self) -> &[(String, SecretError)] {
        &self.errors
    }

    /// The first secret that could not be read, as one message naming its field.
    pub fn first_error(&self) -> Option<String> {
        self.errors
            .first()
            .map(|(field, e)| format!("{field}: {e}"))
    }
}

impl std::fmt::Debug for BackupSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupSecrets(sensitive)")
    }
}

/// The secret's value (a file's trailing newline removed).
pub fn resolve(r: &SecretRef) -> Result<String, SecretError> {
    match r {
        SecretRef::Env(name) => std::env::var(name).map_err(|_| {
            SecretError(format!(
                "environment variable {name} is not set (or not UTF-8)"
            ))
        }),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| {
                s.strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&s)
                    .to_owned()
            })
            .map_err(|e| {
                SecretError(format!(
                    "cannot read the secret file {}: {e}",
                    path.display()
                ))
            }),
    }
    .and_then(|v| {
        if v.is_empty() {
            Err(SecretError(format!(
                "the secret from {} is empty",
                describe(r)
            )))
        } else {
            Ok(v)
        }
    })
}

/// Where a secret comes from, for messages.
pub fn describe(r: &SecretRef) -> String {
    match r {
        SecretRef::Env(name) => format!("environment variable {name}"),
        SecretRef::File(path) => format!("file {}", path.display()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backup_secrets_are_read_and_a_missing_one_names_its_spec_field() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "AKID\n").unwrap();
        let two_lines = dir.path().join("two");
        std::fs::write(&two_lines, "a\nb\n").unwrap();
        let text = format!(
            "apiVersion: pgdba/v1\nkind: Cluster\nmetadata: {{name: a}}\nspec:\n  provider: {{local: {{}}}}\n  replicas: 1\n  backup:\n    repository: {{s3: {{bucket: bkt, endpoint: s3.example.com, region: r, key: {{file: {}}}, key_secret: {{file: {}}}}}}}\n    encryption: {{passphrase: {{file: {}}}}}\n",
            key.display(),
            dir.path().join("missing").display(),
            two_lines.display()
        );
        let spec = crate::spec::load_str("t.yaml", text.as_bytes()).unwrap();
        let s = BackupSecrets::resolve(&spec);
        assert_eq!(s.backup().s3_key.as_deref(), Some("AKID"));
        assert_eq!(s.backup().s3_key_secret, None);
        assert_eq!(s.backup().cipher_pass, None);
        let fields: Vec<&str> = s.errors().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.backup.repository.s3.key_secret",
                "spec.backup.encryption.passphrase"
            ]
        );
        let first = s.first_error().unwrap();
        assert!(
            first.starts_with("spec.backup.repository.s3.key_secret: cannot read the secret file"),
            "{first}"
        );
        assert!(s.errors()[1].1.to_string().contains("line break"));
        // Never shown: the values are sensitive.
        assert_eq!(format!("{s:?}"), "BackupSecrets(sensitive)");
        assert_eq!(format!("{:?}", s.backup()), "RepoSecrets(sensitive)");
    }
}
