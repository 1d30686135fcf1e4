//! SCRAM-SHA-256 verifiers as PostgreSQL stores them in `pg_authid.rolpassword`
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5803): checking a secret
//! against one without ever keeping the secret, and making one so that `ALTER ROLE ...
//! PASSWORD` sends a verifier, never the clear password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// A new verifier for `password`, with a random salt and PostgreSQL's default 4096 iterations.
pub fn make_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// The most PBKDF2 iterations pgdba spends on checking one stored verifier. PostgreSQL makes
/// them with 4096; one with billions (planted, or from an odd client) would stall every plan.
pub const MAX_ITERATIONS: u32 = 100_000;

/// The iteration count of a SCRAM-SHA-256 verifier, if it is one.
pub fn iterations(verifier: &str) -> Option<u32> {
    let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
    rest.split_once(':')?.0.parse().ok()
}

/// Does `password` match `verifier`? `None` when the verifier is not SCRAM-SHA-256 (an MD5
/// hash, say), or asks for more than [`MAX_ITERATIONS`]: pgdba treats it as not matching.
pub fn verify(password: &str, verifier: &str) -> Option<bool> {
    let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
    let (params, keys) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored_key, _server_key) = keys.split_once(':')?;
    let iterations: u32 = iterations.parse().ok()?;
    if iterations > MAX_ITERATIONS {
        return None;
    }
    let salt = STANDARD.decode(salt).ok()?;
    let stored_key = STANDARD.decode(stored_key).ok()?;
    // PostgreSQL normalizes with SASLprep and falls back to the raw bytes when that fails.
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_owned());
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2::<Hmac<Sha256>>(prepared.as_bytes(), &salt, iterations, &mut salted).ok()?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&salted).ok()?;
    mac.update(b"Client Key");
    let client_key = mac.finalize().into_bytes();
    let computed = Sha256::digest(client_key);
    Some(computed.as_slice() == stored_key.as_slice())
}

/// What earlier checks found to match, so that a plan does not pay 4096 PBKDF2 rounds per role
/// again for a verifier and a secret it has already seen together. Holds neither: each entry is
/// an HMAC, under this memo's own random key, of a verifier and a secret that matched. A
/// changed password (a new verifier) or a changed secret is simply not in it, and is checked.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Memo {
    key: String,
    matched: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memo({} entries)", self.matched.len())
    }
}

impl Default for Memo {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        Memo {
            key: hex::encode(key),
            matched: Default::default(),
        }
    }
}

impl Memo {
    fn tag(&self, verifier: &str, secret: &str) -> Option<String> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_bytes()).ok()?;
        mac.update(verifier.as_bytes());
        mac.update(&[0]);
        mac.update(secret.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// Has this secret been found to match this verifier before?
    pub fn known(&self, verifier: &str, secret: &str) -> bool {
        self.tag(verifier, secret)
            .is_some_and(|t| self.matched.contains(&t))
    }

    /// The entry to remember that they match.
    pub fn entry(&self, verifier: &str, secret: &str) -> Option<String> {
        self.tag(verifier, secret)
    }

    /// Keep only `entries` (those of the last check, so that old ones do not pile up).
    pub fn keep(&mut self, entries: std::collections::BTreeSet<String>) {
        self.matched = entries;
    }

    pub fn entries(&self) -> &std::collections::BTreeSet<String> {
        &self.matched
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_accepts_its_password_and_nothing_else() {
        let v = make_verifier("correct horse");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert_eq!(verify("correct horse", &v), Some(true));
        assert_eq!(verify("correct horsf", &v), Some(false));
        assert_eq!(verify("", &v), Some(false));
    }

    #[test]
    fn a_verifier_made_by_postgresql_itself() {
        // From PostgreSQL 15: CREATE ROLE x PASSWORD 'secret'; SELECT rolpassword FROM pg_authid.
        let v = "SCRAM-SHA-256$4096:MXJ6HVqiH3N5ygAYKDY+sg==$w57QjO2ZPDsHEY1il5Wf1tnO1AZiJpfHEcWsWdq4dJU=:lxbMRrDmpf7Ssnt8DPD2k2Xp1oPgOUIYKXdHCihFOww=";
        assert_eq!(verify("secret", v), Some(true));
        assert_eq!(verify("Secret", v), Some(false));
    }

    /// Issue 8: a verifier with 2^31 iterations would take minutes; it is not checked.
    #[test]
    fn a_verifier_with_too_many_iterations_is_not_checked() {
        let v = make_verifier("x").replacen("$4096:", "$2147483647:", 1);
        assert_eq!(iterations(&v), Some(2_147_483_647));
        let started = std::time::Instant::now();
        assert_eq!(verify("x", &v), None);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_memo_knows_only_what_matched_and_holds_neither_secret_nor_verifier() {
        let v = make_verifier("s3cret");
        let mut memo = Memo::default();
        assert!(!memo.known(&v, "s3cret"));
        let e = memo.entry(&v, "s3cret").unwrap();
        memo.keep([e].into());
        assert!(memo.known(&v, "s3cret"));
        assert!(!memo.known(&v, "other"));
        assert!(
            !memo.known(&make_verifier("s3cret"), "s3cret"),
            "a new salt is a new verifier"
        );
        let text = serde_json::to_string(&memo).unwrap();
        assert!(!text.contains("s3cret") && !text.contains(&v[20..40]));
    }

    #[test]
    fn other_formats_are_not_verifiers() {
        assert_eq!(verify("x", "md5a3556571e93b0d20722ba62be61e8c2d"), None);
        assert_eq!(verify("x", "SCRAM-SHA-256$nonsense"), None);
        assert_eq!(verify("x", ""), None);
    }
}
