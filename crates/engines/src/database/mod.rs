//! Databases: Vault's database secrets engine ([`engine`]; mount type `database`), the
//! connections it shares with the built-in database rotators ([`conn`]), and the plugin
//! details (connection URLs, generated names, statement templates: [`plugin`]).

pub mod conn;
pub mod engine;
pub mod plugin;
pub mod pool;
pub mod static_roles;

pub use engine::{database_factory, DatabaseEngine};
