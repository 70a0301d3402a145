//! The `coffer` binary: `coffer server` runs the server; every other subcommand is a client of a
//! running server's Vault-dialect HTTP API.

mod cli;
mod server;

fn main() {
    let code = cli::main_with_args(std::env::args_os().collect());
    std::process::exit(code);
}
