//! Coffer's core: everything between a dialect's parsed request and the encrypted store.
//! No HTTP here: the core is driven by plain function calls.

pub mod audit;
pub mod auth_token;
pub mod barrier;
pub mod core;
pub mod cubbyhole;
pub mod error;
pub mod ha;
pub mod lease;
pub mod names;
pub mod optimistic;
pub mod params;
pub mod password;
pub mod paths;
pub mod pipeline;
pub mod policy;
pub mod policy_store;
pub mod rekey;
pub mod remount;
pub mod request;
pub mod router;
pub mod seal;
pub mod shamir;
pub mod sigv4;
mod sys;
pub use sys::leader_json;
pub mod token;
pub mod util;
pub mod wrapping;

pub use crate::core::{Core, CoreConfig};
pub use error::{CoreError, ErrorCode, Result};
