//! The AWS Secrets Manager dialect (`POST /` with `X-Amz-Target: secretsmanager.<Op>`, JSON 1.1,
//! SigV4-signed). Built so far:
//!
//! - [`sigv4`]: parses a signed request (the `Authorization` header or presigned query
//!   parameters), checks its scope and time, and recomputes the string to sign; the result is a
//!   [`SignedProof`](coffer_core::request::SignedProof) that the core hands to the auth method
//!   that issued the key (`aws-access-keys`), which recomputes the signature with the secret.
//!
//! The operations themselves come later.

pub mod sigv4;
