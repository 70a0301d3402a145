//! Secrets engines mounted behind the core's router.
//!
//! - [`kv`]: Vault's KV v1 and KV v2 over the shared secret model ([`kv::model`]) that the AWS
//!   and Azure dialects also read and write.
//! - [`auth`]: the auth methods AppRole and userpass (mount types `approle`, `userpass`).

pub mod auth;
pub mod kv;

pub use auth::{approle_factory, userpass_factory, AppRoleEngine, UserpassEngine};
pub use kv::{kv_factory, KvEngine, KvVersion, SecretMeta, VersionMeta};
