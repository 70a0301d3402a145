//! Coffer's HTTP layer. Each dialect parses its protocol, authenticates the caller, translates
//! to core requests and renders the answers; it never decides anything itself.

pub mod listener;
pub mod vault;
pub mod vault_kv;

pub use listener::{bind, serve, Bound, ListenerConfig, TlsFiles};
pub use vault::router;

/// Largest request body accepted (Vault's default `max_request_size`).
pub const MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;
