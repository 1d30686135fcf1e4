//! Reading a secret the spec points at (`password: {env: NAME}` or `{file: PATH}`). The value
//! lives in memory only: never in the state, a plan, a log or any output; errors name where it
//! was looked for, never what it is.

use crate::spec::model::SecretRef;

/// The secret's value (a file's trailing newline removed).
pub fn resolve(r: &SecretRef) -> Result<String, String> {
    match r {
        SecretRef::Env(name) => std::env::var(name)
            .map_err(|_| format!("environment variable {name} is not set (or not UTF-8)")),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| {
                s.strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&s)
                    .to_owned()
            })
            .map_err(|e| format!("cannot read the secret file {}: {e}", path.display())),
    }
    .and_then(|v| {
        if v.is_empty() {
            Err(format!("the secret from {} is empty", describe(r)))
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
