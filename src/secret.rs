//! Reading a secret the spec points at (`password: {env: NAME}` or `{file: PATH}`). The value
//! lives in memory only: never in the state, a plan, a log or any output; errors name where it
//! was looked for, never what it is.

use std::collections::BTreeMap;

use crate::spec::model::{ClusterSpec, SecretRef};

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
