//! Coffer's HTTP layer. Each dialect parses its protocol, authenticates the caller, translates
//! to core requests and renders the answers; it never decides anything itself.
//!
//! - [`dispatch`] picks the dialect of a request by path and headers;
//! - [`common`] is the plumbing every dialect shares (bodies, decoding, JSON answers);
//! - [`vault`] is the HashiCorp Vault dialect (`/v1/…`);
//! - [`aws`] is the AWS Secrets Manager dialect (`POST /` with `X-Amz-Target`);
//! - [`azure`] is the Azure Key Vault dialect (`/secrets…`) and its token endpoints;
//! - [`listener`] serves the router over plain TCP or TLS.

pub mod aws;
pub mod azure;
pub mod common;
pub mod dispatch;
pub mod forward;
pub mod listener;
pub mod vault;
pub mod vault_kv;

pub use common::RemoteAddr;
pub use dispatch::{router, router_with, DialectSettings};
pub use listener::{bind, serve, Bound, ListenerConfig, TlsFiles};

/// Largest request body accepted (Vault's default `max_request_size`).
pub const MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;
