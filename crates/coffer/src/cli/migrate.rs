//! `coffer operator migrate -config=migrate.hcl [-start=KEY]`: copy every entry from one
//! storage backend to another, offline (no server may be using either).
//!
//! Entries are copied as stored (already ciphertext, bound to their keys), in key order, so an
//! interrupted migration resumes with `-start=<the key it reports>`. Without `-start` the
//! destination must be empty. Progress goes to stderr;
//! the last line on stdout is `copied N entries`.

use std::io::Write;
use std::time::{Duration, Instant};

use super::error::{CliError, CliResult};
use super::operator::MigrateArgs;
use crate::server::{load_migrate_config, open_backend};

pub fn run(args: &MigrateArgs) -> CliResult {
    let (src, dst) =
        load_migrate_config(&args.config).map_err(|e| CliError::usage(format!("{e:#}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("starting the async runtime: {e}")))?;
    rt.block_on(async {
        let source = open_backend(&src)
            .await
            .map_err(|e| CliError::failure(format!("storage_source: {e:#}")))?;
        let dest = open_backend(&dst)
            .await
            .map_err(|e| CliError::failure(format!("storage_destination: {e:#}")))?;
        // a store in use (another cluster's keyring, say) is never mixed with the source's
        // entries: only an empty destination, or one a migration already started (-start)
        if args.start.is_none() {
            let there = dest
                .keys()
                .await
                .map_err(|e| CliError::failure(format!("listing the destination: {e}")))?;
            if !there.is_empty() {
                return Err(CliError::failure(format!(
                    "storage_destination is not empty ({} entries): migrate into an empty store, or resume an interrupted migration with -start=<key>",
                    there.len()
                )));
            }
        }
        let mut keys = source
            .keys()
            .await
            .map_err(|e| CliError::failure(format!("listing the source: {e}")))?;
        if let Some(start) = &args.start {
            keys.retain(|k| k.as_str() >= start.as_str());
        }
        let total = keys.len();
        eprintln!(
            "migrating {total} entries from {} to {}",
            src.kind(),
            dst.kind()
        );
        let mut copied = 0usize;
        let mut last_report = Instant::now();
        for key in &keys {
            let fail = |what: &str, e: coffer_storage::StorageError| {
                CliError::failure(format!(
                    "{what} {key}: {e}\n{copied} of {total} entries were copied; resume with -start={key}"
                ))
            };
            let Some(value) = source.get(key).await.map_err(|e| fail("reading", e))? else {
                continue;
            };
            dest.put(key, value).await.map_err(|e| fail("writing", e))?;
            copied += 1;
            if last_report.elapsed() >= Duration::from_millis(200) || copied == total {
                last_report = Instant::now();
                let width = 30usize;
                let done = copied * width / total.max(1);
                eprint!(
                    "\r[{}{}] {copied}/{total}",
                    "#".repeat(done),
                    " ".repeat(width - done)
                );
                let _ = std::io::stderr().flush();
            }
        }
        if total > 0 {
            eprintln!();
        }
        println!("copied {copied} entries");
        Ok(0)
    })
}
