//! Secrets engines mounted behind the core's router.
//!
//! - [`kv`]: Vault's KV v1 and KV v2 over the shared secret model ([`kv::model`]) that the AWS
//!   and Azure dialects also read and write.
//! - [`auth`]: the auth methods AppRole, userpass and AWS access keys (mount types `approle`,
//!   `userpass`, `aws-access-keys`).
//! - [`database`]: Vault's database secrets engine (mount type `database`) and the database
//!   connections the rotators share.

pub mod auth;
pub mod database;
pub mod kv;

pub use auth::{
    access_keys_factory, approle_factory, userpass_factory, AccessKeysEngine, AppRoleEngine,
    UserpassEngine,
};
pub use database::database_factory;
pub use kv::{kv_factory, KvEngine, KvVersion, SecretMeta, VersionMeta};
