//! The durable embedded backend: one redb database file, `<dir>/coffer.redb`.
//!
//! Writes go through a single writer thread that groups every request queued at the time into
//! one redb write transaction and one durable commit (group commit), then acknowledges each
//! request. Nothing is acknowledged before its commit has returned, so a crash (even `kill -9`)
//! never loses an acknowledged write. Reads use redb read transactions (MVCC snapshots) on the
//! blocking pool and never wait for the writer.
//!
//! A write whose future is dropped after it has been queued is still applied.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use tokio::sync::{mpsc, oneshot};

use crate::{collapse_list, validate_key, validate_ops, Backend, StorageError, TxnOp};

/// The single table holding every key.
const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("coffer");

/// File name of the database inside the backend directory.
pub const DB_FILE_NAME: &str = "coffer.redb";

/// The writer stops draining the queue into the current batch once it holds this many ops.
const MAX_BATCH_OPS: usize = 4096;

/// Requests that may wait in the queue before writers are pushed back.
const QUEUE_DEPTH: usize = 4096;

type Reply = oneshot::Sender<Result<(), StorageError>>;

struct WriteRequest {
    ops: Vec<TxnOp>,
    reply: Reply,
}

struct Shared {
    db: Database,
    commits: AtomicU64,
}

/// Page cache of the embedded database.
const CACHE_SIZE: usize = 64 * 1024 * 1024;

/// Durable backend on a redb database with group commit. See the module documentation.
pub struct FileBackend {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// Mode of the storage directory: the server's user only, whatever the umask.
const DIR_MODE: u32 = 0o700;
/// Mode of the database file.
const FILE_MODE: u32 = 0o600;

/// Create `dir` (and missing parents) with [`DIR_MODE`]. An existing directory is tightened to
/// it when it is Coffer's own (it holds `db`, or nothing yet); a directory holding other files
/// may be shared and keeps its mode, with a warning if others can enter it.
fn private_dir(dir: &Path, db: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let ctx = || format!("create directory {}", dir.display());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| io_err(&ctx(), e))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| io_err(&ctx(), e))?
        .permissions()
        .mode()
        & 0o777;
    if mode == DIR_MODE {
        return Ok(());
    }
    let ours = db.exists()
        || std::fs::read_dir(dir)
            .map_err(|e| io_err(&ctx(), e))?
            .next()
            .is_none();
    if ours {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| io_err(&format!("restrict permissions of {}", dir.display()), e))?;
    } else if mode & 0o077 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:o}"),
            "storage directory holds other files and is accessible to other users; its mode is left as is"
        );
    }
    Ok(())
}

/// Create the database file with [`FILE_MODE`] (or tighten an existing one) before redb opens it.
fn private_file(path: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| io_err(&format!("create database {}", path.display()), e))?;
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .map_err(|e| io_err(&format!("restrict permissions of {}", path.display()), e))
}

fn io_err(context: &str, err: impl std::fmt::Display) -> StorageError {
    StorageError::Io(format!("{context}: {err}"))
}

impl FileBackend {
    /// Opens (creating if needed) the database `<dir>/coffer.redb`, creating `dir` if missing,
    /// and starts the writer thread.
    pub fn open(dir: &Path) -> Result<FileBackend, StorageError> {
        let path = dir.join(DB_FILE_NAME);
        private_dir(dir, &path)?;
        private_file(&path)?;
        // redb's default page cache is 1 GiB; the barrier's data is small and the OS page cache
        // keeps hot pages anyway
        let db = redb::Builder::new()
            .set_cache_size(CACHE_SIZE)
            .create(&path)
            .map_err(|e| io_err(&format!("open database {}", path.display()), e))?;

        // Create the table up front, so that readers always find it.
        let txn = db
            .begin_write()
            .map_err(|e| io_err("begin write transaction", e))?;
        txn.open_table(TABLE).map_err(|e| io_err("open table", e))?;
        txn.commit().map_err(|e| io_err("commit", e))?;

        let shared = Arc::new(Shared {
            db,
            commits: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("coffer-storage-writer".to_string())
            .spawn(move || writer_loop(&writer_shared, rx))
            .map_err(|e| io_err("spawn writer thread", e))?;

        Ok(FileBackend {
            shared,
            tx: Some(tx),
            writer: Some(writer),
            path,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of write transactions committed by the writer thread since `open` (one per group
    /// of writes). For tests, benchmarks and metrics.
    pub fn commit_count(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Queues `ops` for the writer thread and waits until they are committed (or rejected).
    async fn submit(&self, ops: Vec<TxnOp>) -> Result<(), StorageError> {
        let tx = self.tx.as_ref().ok_or(StorageError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(WriteRequest { ops, reply })
            .await
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Runs a read against the database on the blocking pool (directly when no tokio runtime).
    async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || f(&shared.db))
                .await
                .map_err(|e| io_err("read task failed", e))?,
            Err(_) => f(&shared.db),
        }
    }
}

impl std::fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBackend")
            .field("path", &self.path)
            .field("commits", &self.commit_count())
            .finish()
    }
}

impl Drop for FileBackend {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is queued and then exit; joining it
        // means the database file is released when the backend is gone.
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("storage writer thread panicked");
            }
        }
    }
}

#[async_trait]
impl Backend for FileBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = key.to_string();
        self.read(move |db| read_get(db, &key)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        validate_key(key)?;
        self.submit(vec![TxnOp::Put {
            key: key.to_string(),
            value,
        }])
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        self.submit(vec![TxnOp::Delete {
            key: key.to_string(),
        }])
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = prefix.to_string();
        self.read(move |db| read_list(db, &prefix)).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), StorageError> {
        validate_ops(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        self.submit(ops).await
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

fn read_get(db: &Database, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
    let txn = db
        .begin_read()
        .map_err(|e| io_err("begin read transaction", e))?;
    let table = match txn.open_table(TABLE) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(io_err("open table", e)),
    };
    let value = table.get(key).map_err(|e| io_err("read", e))?;
    Ok(value.map(|guard| guard.value().to_vec()))
}

/// Range scan over keys starting with `prefix`. When a key reveals a sub-folder (`name/`), the
/// scan jumps past all of that folder's descendants (to `prefix + name + '0'`, `'0'` being the
/// byte after `'/'`), so a listing costs one seek per entry rather than one step per descendant.
fn read_list(db: &Database, prefix: &str) -> Result<Vec<String>, StorageError> {
    let txn = db
        .begin_read()
        .map_err(|e| io_err("begin read transaction", e))?;
    let table = match txn.open_table(TABLE) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(io_err("open table", e)),
    };

    // One representative full key per entry, in key order.
    let mut keys: Vec<String> = Vec::new();
    let mut start = prefix.to_string();
    'seek: loop {
        let range = table
            .range::<&str>(start.as_str()..)
            .map_err(|e| io_err("list", e))?;
        for item in range {
            let (key, _) = item.map_err(|e| io_err("list", e))?;
            let key = key.value();
            let Some(rest) = key.strip_prefix(prefix) else {
                break 'seek;
            };
            if let Some(slash) = rest.find('/') {
                keys.push(key.to_string());
                start = format!("{prefix}{}0", &rest[..slash]);
                continue 'seek;
            }
            keys.push(key.to_string());
        }
        break;
    }
    Ok(collapse_list(prefix, keys.iter().map(String::as_str)))
}

// ---------------------------------------------------------------------------------------------
// The writer thread

fn writer_loop(shared: &Shared, mut rx: mpsc::Receiver<WriteRequest>) {
    while let Some(first) = rx.blocking_recv() {
        let mut ops = first.ops.len();
        let mut batch = vec![first];
        while ops < MAX_BATCH_OPS {
            match rx.try_recv() {
                Ok(req) => {
                    ops += req.ops.len();
                    batch.push(req);
                }
                Err(_) => break,
            }
        }
        commit_batch(shared, batch);
    }
    tracing::debug!("storage writer thread exiting");
}

/// Why an attempt to commit a batch failed.
enum AttemptError {
    /// Request `.0` cannot be applied (e.g. its value is too large): retry without it.
    Request(usize, StorageError),
    /// The transaction or commit failed: every request of the batch fails.
    Batch(StorageError),
}

/// Commits `batch` in one write transaction and answers every request.
fn commit_batch(shared: &Shared, batch: Vec<WriteRequest>) {
    // Requests that could not be applied at all, with their error; excluded from retries.
    let mut rejected: Vec<Option<StorageError>> = batch.iter().map(|_| None).collect();
    let outcome = loop {
        match try_commit(&shared.db, &batch, &rejected) {
            Ok(results) => {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                break Ok(results);
            }
            Err(AttemptError::Request(i, err)) => {
                tracing::warn!(error = %err, "storage write rejected");
                rejected[i] = Some(err);
            }
            Err(AttemptError::Batch(err)) => {
                tracing::error!(error = %err, requests = batch.len(), "storage commit failed");
                break Err(err);
            }
        }
    };

    match outcome {
        Ok(results) => {
            for ((req, result), rejected) in batch.into_iter().zip(results).zip(rejected) {
                let result = match rejected {
                    Some(err) => Err(err),
                    None => result,
                };
                // The caller may have gone away; its write is committed regardless.
                let _ = req.reply.send(result);
            }
        }
        Err(err) => {
            let msg = err.to_string();
            for (req, rejected) in batch.into_iter().zip(rejected) {
                let result = match rejected {
                    Some(err) => Err(err),
                    None => Err(StorageError::Io(msg.clone())),
                };
                let _ = req.reply.send(result);
            }
        }
    }
}

/// One attempt: applies every request not in `rejected`, each atomically (its checks, then its
/// writes), and commits. Returns each request's result (`CasFailed` for a failed check; `Ok` for
/// rejected requests, whose error the caller keeps).
fn try_commit(
    db: &Database,
    batch: &[WriteRequest],
    rejected: &[Option<StorageError>],
) -> Result<Vec<Result<(), StorageError>>, AttemptError> {
    let txn = db
        .begin_write()
        .map_err(|e| AttemptError::Batch(io_err("begin write transaction", e)))?;
    let applied = apply_batch(&txn, batch, rejected);
    match applied {
        Ok(results) => {
            txn.commit()
                .map_err(|e| AttemptError::Batch(io_err("commit", e)))?;
            Ok(results)
        }
        Err(err) => {
            if let Err(e) = txn.abort() {
                tracing::error!(error = %e, "storage abort failed");
            }
            Err(err)
        }
    }
}

fn apply_batch(
    txn: &redb::WriteTransaction,
    batch: &[WriteRequest],
    rejected: &[Option<StorageError>],
) -> Result<Vec<Result<(), StorageError>>, AttemptError> {
    let mut table = txn
        .open_table(TABLE)
        .map_err(|e| AttemptError::Batch(io_err("open table", e)))?;
    let mut results = Vec::with_capacity(batch.len());
    for (i, (req, rejected)) in batch.iter().zip(rejected).enumerate() {
        if rejected.is_some() {
            results.push(Ok(()));
            continue;
        }
        match apply_request(&mut table, &req.ops) {
            Ok(result) => results.push(result),
            Err(e @ redb::StorageError::ValueTooLarge(_)) => {
                return Err(AttemptError::Request(i, io_err("write", e)));
            }
            Err(e) => return Err(AttemptError::Batch(io_err("write", e))),
        }
    }
    Ok(results)
}

/// Applies one request atomically within the write transaction: every `Check` is evaluated
/// first (against the state left by the earlier requests of the batch); only if all pass are the
/// writes applied. The outer error is a redb failure, the inner one a failed check.
fn apply_request(
    table: &mut redb::Table<&str, &[u8]>,
    ops: &[TxnOp],
) -> Result<Result<(), StorageError>, redb::StorageError> {
    for op in ops {
        if let TxnOp::Check { key, expected } = op {
            let current = table.get(key.as_str())?;
            let matches = match (&current, expected) {
                (None, None) => true,
                (Some(current), Some(expected)) => current.value() == expected.as_slice(),
                _ => false,
            };
            if !matches {
                return Ok(Err(StorageError::CasFailed(key.clone())));
            }
        }
    }
    for op in ops {
        match op {
            TxnOp::Put { key, value } => {
                table.insert(key.as_str(), value.as_slice())?;
            }
            TxnOp::Delete { key } => {
                table.remove(key.as_str())?;
            }
            TxnOp::Check { .. } => {}
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn storage_is_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        // created fresh (explicit modes, so the process umask does not matter)
        let dir = tmp.path().join("a/b");
        drop(FileBackend::open(&dir).unwrap());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DB_FILE_NAME)), 0o600);
        // an existing world-readable store (made by an earlier version) is tightened
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            dir.join(DB_FILE_NAME),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        drop(FileBackend::open(&dir).unwrap());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DB_FILE_NAME)), 0o600);
        // a directory shared with other files keeps its mode; the database is still private
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::write(shared.join("other"), b"x").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(FileBackend::open(&shared).unwrap());
        assert_eq!(mode(&shared), 0o755);
        assert_eq!(mode(&shared.join(DB_FILE_NAME)), 0o600);
    }
}
