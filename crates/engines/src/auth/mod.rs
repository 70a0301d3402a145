//! Auth methods mounted under `auth/`: they check credentials and answer a login with a
//! [`LoginAuth`](coffer_core::request::LoginAuth); the core creates the token.
//!
//! - [`approle`]: Vault's AppRole (`role_id` + `secret_id`), secret IDs stored HMAC'd.
//! - [`userpass`]: Vault's userpass, passwords hashed with Argon2id.
//! - [`access_keys`]: AWS-style access key pairs for SigV4-signed requests (`aws-access-keys`).
//!
//! AppRole and userpass lock a login name out after repeated failures (Vault's user lockout,
//! `lockout`).

pub mod access_keys;
pub mod approle;
mod common;
mod lockout;
mod password;
#[cfg(test)]
mod test_util;
pub mod userpass;

pub use access_keys::{access_keys_factory, AccessKeysEngine};
pub use approle::{approle_factory, AppRoleEngine};
pub use userpass::{userpass_factory, UserpassEngine};
