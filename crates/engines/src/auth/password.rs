//! Password hashing: Argon2id with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane), a
//! random 16-byte salt from aws-lc, stored as a PHC string. Verification is constant-time (the
//! `password-hash` crate compares outputs with `subtle`) and reads the parameters from the
//! stored hash, so hashes made with older parameters keep working.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use coffer_core::barrier::random_bytes;
use coffer_core::error::{CoreError, Result};
use std::sync::OnceLock;

/// Memory cost in KiB.
pub(crate) const M_COST_KIB: u32 = 19 * 1024;
pub(crate) const T_COST: u32 = 2;
pub(crate) const P_COST: u32 = 1;
const SALT_LEN: usize = 16;

fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|_| CoreError::internal("invalid password hashing parameters"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a password (slow: run it off the async threads).
pub(crate) fn hash_password(password: &[u8]) -> Result<String> {
    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|_| CoreError::internal("could not encode a password salt"))?;
    let hash = hasher()?
        .hash_password(password, &salt)
        .map_err(|_| CoreError::internal("could not hash the password"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc` (slow: run it off the async threads). A
/// malformed stored hash never matches.
pub(crate) fn verify_password(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match hasher() {
        Ok(h) => h.verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password with the current parameters, verified against when the user
/// does not exist so that an unknown user costs the same time as a wrong password.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = zeroize::Zeroizing::new([0u8; 32]);
        // a failed RNG or hash leaves a string that parses as no hash: verification then fails
        // fast, which only matters for timing and the RNG failing is fatal elsewhere anyway
        if random_bytes(pw.as_mut()).is_err() {
            return String::new();
        }
        hash_password(pw.as_ref()).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password(b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(b"correct horse", &h));
        assert!(!verify_password(b"correct horsf", &h));
        assert!(!verify_password(b"correct horse", "not a hash"));
        let h2 = hash_password(b"correct horse").unwrap();
        assert_ne!(h, h2, "salts are random");
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert!(!verify_password(b"", dummy_hash()));
    }
}
