//! The cryptographic half of AWS Signature Version 4, shared by the dialect that parses signed
//! requests (`coffer_api::aws::sigv4`) and the auth method that holds the secret keys
//! (`coffer_engines::auth::access_keys`). It lives in the core because engines cannot depend on
//! the HTTP layer; it knows nothing of HTTP itself.
//!
//! The signing key is derived with HMAC-SHA256 (aws-lc-rs):
//! `kDate = HMAC("AWS4" + secret, date)`, `kRegion = HMAC(kDate, region)`,
//! `kService = HMAC(kRegion, service)`, `kSigning = HMAC(kService, "aws4_request")`, and the
//! signature is `hex(HMAC(kSigning, string_to_sign))`.
//!
//! Also here: the messages an issuer answers a signed request with, so that the dialect can
//! tell "this key is unknown" from "this key is known but the signature is wrong" (AWS answers
//! them differently: `UnrecognizedClientException` vs `InvalidSignatureException`). Both are
//! [`ErrorCode::Unauthenticated`](crate::error::ErrorCode::Unauthenticated); only the message
//! differs.

use crate::error::{CoreError, ErrorCode};
use crate::request::SignedProof;
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

/// SigV4's algorithm name (`Authorization: AWS4-HMAC-SHA256 …`, first line of the string to
/// sign).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The message of an issuer's refusal when the key is known but the signature does not match
/// (AWS's wording; the AWS dialect answers it as `InvalidSignatureException`).
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
signature you provided. Check your AWS Secret Access Key and signing method. Consult the service \
documentation for details.";

/// The message of a refusal for an unknown key or a session token Coffer did not issue (AWS's
/// wording; answered as `UnrecognizedClientException`).
pub const INVALID_SECURITY_TOKEN: &str = "The security token included in the request is invalid.";

/// The refusal for a known key whose signature does not match.
pub fn signature_mismatch() -> CoreError {
    CoreError::new(ErrorCode::Unauthenticated, SIGNATURE_MISMATCH)
}

/// The refusal for a session token (Coffer issues none yet, so every one is invalid).
pub fn invalid_security_token() -> CoreError {
    CoreError::new(ErrorCode::Unauthenticated, INVALID_SECURITY_TOKEN)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Zeroizing<[u8; 32]> {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(tag.as_ref());
    out
}

/// The signing key `kSigning` for one day, region and service.
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> Zeroizing<[u8; 32]> {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret);
    let k_date = hmac_sha256(&k_secret, date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    hmac_sha256(k_service.as_ref(), b"aws4_request")
}

/// The SigV4 signature (lowercase hex) of `string_to_sign` with `secret`.
pub fn sign(
    secret: &[u8],
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    let key = signing_key(secret, date, region, service);
    hex::encode(hmac_sha256(key.as_ref(), string_to_sign.as_bytes()).as_ref())
}

/// Whether `proof` was signed with `secret`: the signature is recomputed from the proof's
/// scope and string to sign, and compared in constant time.
pub fn verify(secret: &[u8], proof: &SignedProof) -> bool {
    use subtle::ConstantTimeEq;
    let expected = sign(
        secret,
        &proof.scope.date,
        &proof.scope.region,
        &proof.scope.service,
        &proof.string_to_sign,
    );
    // lengths are public (64 hex digits); a client's uppercase hex is not AWS's form either
    expected.len() == proof.signature.len()
        && bool::from(expected.as_bytes().ct_eq(proof.signature.as_bytes()))
}

/// Signing keys already derived, per access key, day, region and service: deriving one takes
/// four HMACs, and a client signs every request of a day with the same one. An entry is used
/// only for the very secret it was derived from (compared in constant time), so a rotated or
/// re-imported key never verifies with a stale one. Bounded: emptied when full.
#[derive(Default)]
pub struct SigningKeyCache {
    entries: parking_lot::Mutex<std::collections::HashMap<CacheKey, CachedKey>>,
}

type CacheKey = (String, String, String, String);

struct CachedKey {
    secret: Zeroizing<Vec<u8>>,
    key: Zeroizing<[u8; 32]>,
}

/// Most signing keys kept.
const CACHE_CAPACITY: usize = 4096;

impl SigningKeyCache {
    /// [`verify`], with the signing key taken from the cache when it was derived from `secret`.
    pub fn verify(&self, access_key_id: &str, secret: &[u8], proof: &SignedProof) -> bool {
        use subtle::ConstantTimeEq;
        let id = (
            access_key_id.to_string(),
            proof.scope.date.clone(),
            proof.scope.region.clone(),
            proof.scope.service.clone(),
        );
        let cached = {
            let entries = self.entries.lock();
            entries.get(&id).and_then(|e| {
                let same =
                    e.secret.len() == secret.len() && bool::from(e.secret.as_slice().ct_eq(secret));
                same.then(|| e.key.clone())
            })
        };
        let key = match cached {
            Some(k) => k,
            None => {
                let k = signing_key(secret, &id.1, &id.2, &id.3);
                let mut entries = self.entries.lock();
                if entries.len() >= CACHE_CAPACITY {
                    entries.clear();
                }
                entries.insert(
                    id,
                    CachedKey {
                        secret: Zeroizing::new(secret.to_vec()),
                        key: k.clone(),
                    },
                );
                k
            }
        };
        let expected = hex::encode(hmac_sha256(key.as_ref(), proof.string_to_sign.as_bytes()));
        expected.len() == proof.signature.len()
            && bool::from(expected.as_bytes().ct_eq(proof.signature.as_bytes()))
    }

    /// Forget every key derived for `access_key_id` (it was rotated or deleted).
    pub fn forget(&self, access_key_id: &str) {
        self.entries.lock().retain(|k, _| k.0 != access_key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::SigningScope;

    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn the_cache_verifies_as_verify_does_and_never_with_another_secret() {
        let proof = |secret: &[u8]| SignedProof {
            access_key_id: "AKID".into(),
            string_to_sign: "AWS4-HMAC-SHA256\n20261201T000000Z\nscope\nhash".into(),
            signature: sign(
                secret,
                "20261201",
                "us-east-1",
                "secretsmanager",
                "AWS4-HMAC-SHA256\n20261201T000000Z\nscope\nhash",
            ),
            scope: SigningScope {
                date: "20261201".into(),
                region: "us-east-1".into(),
                service: "secretsmanager".into(),
            },
            security_token: None,
        };
        let cache = SigningKeyCache::default();
        let good = proof(SECRET);
        for _ in 0..2 {
            assert!(cache.verify("AKID", SECRET, &good));
            assert!(verify(SECRET, &good));
        }
        // the key was rotated: the cached key of the old secret is not used
        let other = b"another secret entirely, forty chars...";
        assert!(!cache.verify("AKID", other, &good));
        assert!(cache.verify("AKID", other, &proof(other)));
        assert!(!cache.verify("AKID", SECRET, &proof(other)));
        cache.forget("AKID");
        assert!(cache.entries.lock().is_empty());
    }

    /// The worked example of the AWS General Reference ("Examples of how to derive a signing
    /// key" / "Calculate the signature": IAM ListUsers, 2015-08-30).
    #[test]
    fn general_reference_example() {
        let sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
                   f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
        assert_eq!(
            sign(SECRET, "20150830", "us-east-1", "iam", sts),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert_eq!(
            hex::encode(signing_key(SECRET, "20150830", "us-east-1", "iam").as_ref()),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn verify_is_exact() {
        let sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
                   bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63";
        let mut proof = SignedProof {
            access_key_id: "AKIDEXAMPLE".into(),
            string_to_sign: sts.into(),
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into(),
            scope: SigningScope {
                date: "20150830".into(),
                region: "us-east-1".into(),
                service: "service".into(),
            },
            security_token: None,
        };
        assert!(verify(SECRET, &proof));
        assert!(!verify(b"another secret", &proof));
        proof.signature = proof.signature.to_uppercase();
        assert!(!verify(SECRET, &proof));
        proof.signature = "5fa0".into();
        assert!(!verify(SECRET, &proof));
        proof.signature = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into();
        proof.scope.region = "eu-west-1".into();
        assert!(!verify(SECRET, &proof));
    }
}
