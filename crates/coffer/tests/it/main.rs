//! End-to-end tests: each starts the real `coffer` binary and drives it over HTTP.

mod access_keys;
mod adversarial;
mod adversarial_transport;
mod audit;
mod auth;
mod cli;
mod common;
mod dev_tls;
mod dispatch;
mod kv;
mod leases;
mod policy;
mod seal;
mod security;
mod storage;
mod sys_admin;
mod tls;
mod tokens;
