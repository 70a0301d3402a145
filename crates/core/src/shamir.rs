//! Shamir secret sharing of the root key over GF(256), via the maintained `vsss-rs` crate.

use crate::error::{CoreError, Result};
use zeroize::Zeroizing;

/// An adapter from aws-lc's CSPRNG to the `rand_core` traits `vsss-rs` asks for.
struct OsRng;

impl rand_core::TryRng for OsRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> std::result::Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> std::result::Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), Self::Error> {
        self.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for OsRng {}

impl OsRng {
    fn fill(&mut self, dst: &mut [u8]) {
        // aws-lc's RNG does not fail in practice; if it ever does, abort rather than hand out
        // predictable shares.
        if aws_lc_rs::rand::fill(dst).is_err() {
            std::process::abort();
        }
    }
}

/// Split `secret` into `shares` parts of which any `threshold` recover it.
/// With one share the share is the secret itself (as Vault does).
pub fn split(secret: &[u8], shares: usize, threshold: usize) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    if shares == 0 || threshold == 0 || threshold > shares || shares > 255 {
        return Err(CoreError::invalid("invalid secret_shares/secret_threshold"));
    }
    if shares == 1 {
        return Ok(vec![Zeroizing::new(secret.to_vec())]);
    }
    if threshold < 2 {
        return Err(CoreError::invalid(
            "threshold must be greater than one for multiple shares",
        ));
    }
    let parts = vsss_rs::Gf256::split_bytes(threshold, shares, secret, OsRng)
        .map_err(|_| CoreError::internal("secret sharing failed"))?;
    Ok(parts.into_iter().map(Zeroizing::new).collect())
}

/// Recover the secret from shares. With a single configured share the share is the secret.
pub fn combine(
    parts: &[Zeroizing<Vec<u8>>],
    configured_shares: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    if configured_shares == 1 {
        return parts
            .first()
            .cloned()
            .ok_or_else(|| CoreError::invalid("no unseal key"));
    }
    let raw: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
    let out = vsss_rs::Gf256::combine_bytes(&raw)
        .map_err(|_| CoreError::invalid("unseal failed: invalid key shares"));
    let mut raw = raw;
    for r in &mut raw {
        zeroize::Zeroize::zeroize(r);
    }
    Ok(Zeroizing::new(out?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_threshold_subset_recovers(shares in 2usize..8, t_off in 0usize..6, seed in any::<u64>()) {
            let threshold = 2 + t_off % (shares - 1);
            let secret: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(31).wrapping_add(seed as u8)).collect();
            let parts = split(&secret, shares, threshold).unwrap();
            // every window of `threshold` consecutive shares (rotated by seed) recovers
            let start = (seed as usize) % shares;
            let subset: Vec<_> = (0..threshold).map(|i| parts[(start + i) % shares].clone()).collect();
            prop_assert_eq!(combine(&subset, shares).unwrap().to_vec(), secret.clone());
            // fewer than threshold does not
            if threshold > 1 {
                let fewer: Vec<_> = subset[..threshold - 1].to_vec();
                let got = combine(&fewer, shares);
                prop_assert!(got.map(|g| g.to_vec() != secret).unwrap_or(true));
            }
        }
    }

    #[test]
    fn single_share_is_the_key() {
        let parts = split(b"0123456789abcdef0123456789abcdef", 1, 1).unwrap();
        assert_eq!(parts[0].as_slice(), b"0123456789abcdef0123456789abcdef");
        assert!(split(b"k", 3, 1).is_err());
        assert!(split(b"k", 2, 3).is_err());
    }
}
