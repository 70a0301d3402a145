//! Databases: the connections shared by the built-in database rotators ([`conn`]).

pub mod conn;
