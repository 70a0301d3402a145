//! End-to-end tests: each starts the real `coffer` binary and drives it over HTTP.

mod audit;
mod common;
mod kv;
mod leases;
mod policy;
mod seal;
mod storage;
mod tls;
mod tokens;
