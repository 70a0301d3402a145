//! The same conformance suite against every backend, plus file-backend specifics
//! (reopen, group commit, per-request check failures inside a batch).

use std::sync::Arc;

use coffer_storage::{Backend, FileBackend, InmemBackend, StorageError, TxnOp};

fn put(key: &str, value: &[u8]) -> TxnOp {
    TxnOp::Put {
        key: key.to_string(),
        value: value.to_vec(),
    }
}

fn del(key: &str) -> TxnOp {
    TxnOp::Delete {
        key: key.to_string(),
    }
}

fn check(key: &str, expected: Option<&[u8]>) -> TxnOp {
    TxnOp::Check {
        key: key.to_string(),
        expected: expected.map(<[u8]>::to_vec),
    }
}

/// The whole suite. `b` must start empty.
async fn conformance(b: &dyn Backend) {
    basic_crud(b).await;
    list_semantics(b).await;
    transactions(b).await;
    invalid_keys(b).await;
}

async fn basic_crud(b: &dyn Backend) {
    assert_eq!(b.get("crud/a").await.unwrap(), None);
    b.put("crud/a", b"one".to_vec()).await.unwrap();
    assert_eq!(b.get("crud/a").await.unwrap().as_deref(), Some(&b"one"[..]));
    // overwrite
    b.put("crud/a", b"two".to_vec()).await.unwrap();
    assert_eq!(b.get("crud/a").await.unwrap().as_deref(), Some(&b"two"[..]));
    // empty value is a value, distinct from absence
    b.put("crud/empty", Vec::new()).await.unwrap();
    assert_eq!(b.get("crud/empty").await.unwrap(), Some(Vec::new()));
    // binary value
    let bin: Vec<u8> = (0..=255u8).collect();
    b.put("crud/bin", bin.clone()).await.unwrap();
    assert_eq!(b.get("crud/bin").await.unwrap(), Some(bin));
    // large value
    let big = vec![7u8; 1 << 20];
    b.put("crud/big", big.clone()).await.unwrap();
    assert_eq!(b.get("crud/big").await.unwrap(), Some(big));
    // delete, and delete of a missing key is fine
    b.delete("crud/a").await.unwrap();
    assert_eq!(b.get("crud/a").await.unwrap(), None);
    b.delete("crud/a").await.unwrap();
    b.delete("crud/never").await.unwrap();
    // a prefix of a key is not the key
    assert_eq!(b.get("crud/bi").await.unwrap(), None);
    assert_eq!(b.get("crud/").await.unwrap(), None);
    for k in ["crud/empty", "crud/bin", "crud/big"] {
        b.delete(k).await.unwrap();
    }
    assert_eq!(b.list("crud/").await.unwrap(), Vec::<String>::new());
}

async fn list_semantics(b: &dyn Backend) {
    for k in [
        "l/z",
        "l/a",
        "l/dir/x",
        "l/dir/y/deep",
        "l/dir/y/deeper/still",
        "l/dir",       // a key that is also a folder name
        "l/dir-x",     // sorts before "dir/" bytewise
        "l/dir0",      // sorts right after every "dir/..." key
        "l/m/",        // a key ending in '/'
        "l/ünïcode/k", // multi-byte folder name
        "lx",          // shares the string prefix "l" but not the folder
        "top",
    ] {
        b.put(k, b"v".to_vec()).await.unwrap();
    }

    assert_eq!(
        b.list("l/").await.unwrap(),
        vec!["a", "dir", "dir-x", "dir/", "dir0", "m/", "z", "ünïcode/"]
    );
    assert_eq!(b.list("l/dir/").await.unwrap(), vec!["x", "y/"]);
    assert_eq!(b.list("l/dir/y/").await.unwrap(), vec!["deep", "deeper/"]);
    assert_eq!(b.list("l/dir/y/deeper/").await.unwrap(), vec!["still"]);
    assert_eq!(b.list("l/m/").await.unwrap(), Vec::<String>::new());
    assert_eq!(b.list("l/ünïcode/").await.unwrap(), vec!["k"]);
    // empty prefix: top level of the whole store
    assert_eq!(b.list("").await.unwrap(), vec!["l/", "lx", "top"]);
    // missing folder
    assert_eq!(b.list("nope/").await.unwrap(), Vec::<String>::new());
    assert_eq!(b.list("l/a/").await.unwrap(), Vec::<String>::new());

    // many entries come back sorted
    for i in (0..50).rev() {
        b.put(&format!("s/k{i:03}"), vec![i]).await.unwrap();
        b.put(&format!("s/f{i:03}/child"), vec![i]).await.unwrap();
    }
    let listed = b.list("s/").await.unwrap();
    assert_eq!(listed.len(), 100);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert_eq!(listed[0], "f000/");
    assert_eq!(listed[99], "k049");

    // deleting the last child makes the folder disappear
    b.delete("l/dir/y/deeper/still").await.unwrap();
    assert_eq!(b.list("l/dir/y/").await.unwrap(), vec!["deep"]);
}

async fn transactions(b: &dyn Backend) {
    // empty transaction
    b.transaction(Vec::new()).await.unwrap();

    // check for absence, then create
    b.transaction(vec![check("t/a", None), put("t/a", b"1"), put("t/b", b"2")])
        .await
        .unwrap();
    assert_eq!(b.get("t/a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(b.get("t/b").await.unwrap().as_deref(), Some(&b"2"[..]));

    // check for absence fails when present: nothing applied
    let err = b
        .transaction(vec![put("t/c", b"3"), check("t/a", None), del("t/b")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::CasFailed(k) if k == "t/a"),
        "{err:?}"
    );
    assert_eq!(b.get("t/c").await.unwrap(), None);
    assert_eq!(b.get("t/b").await.unwrap().as_deref(), Some(&b"2"[..]));

    // a value check with the wrong value fails; the passing checks do not matter
    let err = b
        .transaction(vec![
            check("t/a", Some(b"1")),
            check("t/b", Some(b"wrong")),
            put("t/a", b"changed"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::CasFailed(k) if k == "t/b"),
        "{err:?}"
    );
    assert_eq!(b.get("t/a").await.unwrap().as_deref(), Some(&b"1"[..]));

    // check for a value on a missing key fails
    let err = b
        .transaction(vec![check("t/missing", Some(b"")), put("t/z", b"z")])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::CasFailed(_)), "{err:?}");
    assert_eq!(b.get("t/z").await.unwrap(), None);

    // compare-and-set succeeds with the right values; puts and deletes applied in order
    b.transaction(vec![
        check("t/a", Some(b"1")),
        check("t/b", Some(b"2")),
        put("t/a", b"10"),
        del("t/b"),
        put("t/d", b"first"),
        put("t/d", b"second"),
        put("t/e", b"e"),
        del("t/e"),
    ])
    .await
    .unwrap();
    assert_eq!(b.get("t/a").await.unwrap().as_deref(), Some(&b"10"[..]));
    assert_eq!(b.get("t/b").await.unwrap(), None);
    assert_eq!(b.get("t/d").await.unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(b.get("t/e").await.unwrap(), None);
    assert_eq!(b.list("t/").await.unwrap(), vec!["a", "d"]);

    // checks see the state before the transaction, not its own writes
    let err = b
        .transaction(vec![put("t/new", b"x"), check("t/new", Some(b"x"))])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::CasFailed(_)), "{err:?}");
    assert_eq!(b.get("t/new").await.unwrap(), None);
}

async fn invalid_keys(b: &dyn Backend) {
    assert!(matches!(
        b.put("", b"v".to_vec()).await,
        Err(StorageError::InvalidKey(_))
    ));
    assert!(matches!(
        b.transaction(vec![put("ok/key", b"v"), put("", b"v")])
            .await,
        Err(StorageError::InvalidKey(_))
    ));
    assert_eq!(b.get("ok/key").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inmem_conformance() {
    let b = InmemBackend::new();
    assert_eq!(b.kind(), "inmem");
    conformance(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::open(dir.path()).unwrap();
    assert_eq!(b.kind(), "file");
    conformance(&b).await;
}

#[tokio::test(flavor = "current_thread")]
async fn file_conformance_current_thread() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::open(dir.path()).unwrap();
    conformance(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_inmem() {
    concurrent_puts(Arc::new(InmemBackend::new())).await;
}

async fn concurrent_puts(b: Arc<dyn Backend>) {
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let b = Arc::clone(&b);
            tokio::spawn(async move { b.put(&format!("c/{i:04}"), vec![i as u8; 32]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for i in 0..200 {
        assert_eq!(
            b.get(&format!("c/{i:04}")).await.unwrap(),
            Some(vec![i as u8; 32])
        );
    }
    assert_eq!(b.list("c/").await.unwrap().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = FileBackend::open(dir.path()).unwrap();
        b.put("keep/a", b"alpha".to_vec()).await.unwrap();
        b.put("keep/gone", b"x".to_vec()).await.unwrap();
        b.transaction(vec![put("keep/dir/b", b"beta"), del("keep/gone")])
            .await
            .unwrap();
    }
    let b = FileBackend::open(dir.path()).unwrap();
    assert!(b.path().ends_with("coffer.redb"));
    assert_eq!(
        b.get("keep/a").await.unwrap().as_deref(),
        Some(&b"alpha"[..])
    );
    assert_eq!(
        b.get("keep/dir/b").await.unwrap().as_deref(),
        Some(&b"beta"[..])
    );
    assert_eq!(b.get("keep/gone").await.unwrap(), None);
    assert_eq!(b.list("keep/").await.unwrap(), vec!["a", "dir/"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_open_creates_missing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    let b = FileBackend::open(&nested).unwrap();
    b.put("k", b"v".to_vec()).await.unwrap();
    assert!(nested.join("coffer.redb").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileBackend::open(dir.path()).unwrap());
    let before = file.commit_count();
    concurrent_puts(file.clone() as Arc<dyn Backend>).await;
    let commits = file.commit_count() - before;
    assert!(commits >= 1);
    assert!(
        commits < 200,
        "expected concurrent puts to share commits, got {commits} commits for 200 puts"
    );
    drop(file);

    let b = FileBackend::open(dir.path()).unwrap();
    for i in 0..200 {
        assert_eq!(
            b.get(&format!("c/{i:04}")).await.unwrap(),
            Some(vec![i as u8; 32])
        );
    }
    assert_eq!(b.list("c/").await.unwrap().len(), 200);
}

/// Many concurrent compare-and-set transactions on one key, batched together by the writer:
/// exactly one "create if absent" wins; failures in a batch do not affect the other requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_failed_check_fails_only_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let b: Arc<dyn Backend> = Arc::new(FileBackend::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..100u8)
        .map(|i| {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                // Every request also writes its own key: that write must land iff it won.
                let won = b
                    .transaction(vec![
                        check("race/lock", None),
                        put("race/lock", &[i]),
                        put(&format!("race/winner-{i:03}"), &[i]),
                    ])
                    .await;
                // An unconditional put in the same batches always succeeds.
                b.put(&format!("plain/{i:03}"), vec![i]).await.unwrap();
                (i, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        match won {
            Ok(()) => winners.push(i),
            Err(StorageError::CasFailed(k)) => assert_eq!(k, "race/lock"),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let w = winners[0];
    assert_eq!(b.get("race/lock").await.unwrap(), Some(vec![w]));
    assert_eq!(
        b.list("race/").await.unwrap(),
        vec!["lock".to_string(), format!("winner-{w:03}")]
    );
    assert_eq!(b.list("plain/").await.unwrap().len(), 100);
}

/// Concurrent increments through compare-and-set with retries: no lost updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_cas_counter() {
    let dir = tempfile::tempdir().unwrap();
    let b: Arc<dyn Backend> = Arc::new(FileBackend::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                for _ in 0..5 {
                    loop {
                        let cur = b.get("counter").await.unwrap();
                        let n = cur
                            .as_deref()
                            .map(|v| u64::from_le_bytes(v.try_into().unwrap()))
                            .unwrap_or(0);
                        let res = b
                            .transaction(vec![
                                TxnOp::Check {
                                    key: "counter".into(),
                                    expected: cur,
                                },
                                put("counter", &(n + 1).to_le_bytes()),
                            ])
                            .await;
                        match res {
                            Ok(()) => break,
                            Err(StorageError::CasFailed(_)) => continue,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let v = b.get("counter").await.unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(v.try_into().unwrap()), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_second_open_fails_cleanly_and_drop_releases() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileBackend::open(dir.path()).unwrap();
    a.put("k", b"v".to_vec()).await.unwrap();
    let err = FileBackend::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Io(_)), "{err:?}");
    drop(a);
    let b = FileBackend::open(dir.path()).unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_and_errors_hide_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = FileBackend::open(dir.path()).unwrap();
    let mem = InmemBackend::new();
    for b in [&file as &dyn Backend, &mem] {
        b.put("secret", b"hunter2".to_vec()).await.unwrap();
        let err = b
            .transaction(vec![
                check("secret", Some(b"hunter3")),
                put("x", b"hunter4"),
            ])
            .await
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter"), "{text}");
    }
    let text = format!("{file:?} {mem:?}");
    assert!(!text.contains("hunter"), "{text}");
}

#[test]
fn file_backend_drops_outside_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::open(dir.path()).unwrap();
    drop(b);
    // Reopen works: the writer thread released the database.
    let b = FileBackend::open(dir.path()).unwrap();
    drop(b);
}

const CHILD_DIR_ENV: &str = "COFFER_STORAGE_KILL9_DIR";

/// Not a test on its own: the writer process for `file_kill9_keeps_acknowledged_writes`.
/// Writes forever (several concurrent writers), printing each key once its put is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let b = Arc::new(FileBackend::open(std::path::Path::new(&dir)).unwrap());
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                for i in 0u64.. {
                    let key = format!("k/{w}-{i}");
                    b.put(&key, key.as_bytes().to_vec()).await.unwrap();
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {key}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}

/// SIGKILL a process in the middle of writing: every acknowledged write survives.
#[test]
fn file_kill9_keeps_acknowledged_writes() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill9_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut acked = Vec::new();
    while acked.len() < 500 {
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(key) = line.strip_prefix("ACK ") {
            acked.push(key.to_string());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acknowledgements already in the pipe count too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(key) = line.strip_prefix("ACK ") {
            acked.push(key.to_string());
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = FileBackend::open(dir.path()).unwrap();
        for key in &acked {
            assert_eq!(
                b.get(key).await.unwrap().as_deref(),
                Some(key.as_bytes()),
                "acknowledged write {key} lost"
            );
        }
    });
}
