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
    fn other_formats_are_not_verifiers() {
        assert_eq!(verify("x", "md5a3556571e93b0d20722ba62be61e8c2d"), None);
        assert_eq!(verify("x", "SCRAM-SHA-256$nonsense"), None);
        assert_eq!(verify("x", ""), None);
    }
}
