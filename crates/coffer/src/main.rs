//! The `coffer` binary: `coffer server` runs the server; every other subcommand is a client of a
//! running server's Vault-dialect HTTP API.

mod cli;
mod rotation;
mod server;

#[cfg(test)]
mod config_fuzz;

/// The server allocates many small, short-lived objects per request; mimalloc handles that
/// pattern far better than the system allocator (measured with `bench`, see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = cli::main_with_args(std::env::args_os().collect());
    std::process::exit(code);
}
