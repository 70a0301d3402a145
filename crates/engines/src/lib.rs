//! Secrets engines mounted behind the core's router.
//!
//! - [`kv`]: Vault's KV v1 and KV v2 over the shared secret model ([`kv::model`]) that the AWS
//!   and Azure dialects also read and write.

pub mod kv;

pub use kv::{kv_factory, KvEngine, KvVersion, SecretMeta, VersionMeta};
