//! The same conformance suite against every backend, plus file-backend specifics
//! (reopen, group commit, per-request check failures inside a batch).

use std::sync::Arc;

use coffer_storage::{
    Backend, FileBackend, InmemBackend, NodeInfo, PostgresBackend, PostgresConfig, StorageError,
    TxnOp,
};

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
    cas_counter(Arc::new(FileBackend::open(dir.path()).unwrap())).await;
}

/// 20 tasks × 5 increments of one counter through compare-and-set with retries.
async fn cas_counter(b: Arc<dyn Backend>) {
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

// --- networked backends: PostgreSQL and etcd ---------------------------------------------------
// The test script starts both servers and sets COFFER_REQUIRE_BACKENDS=1: then a missing server
// fails these tests; elsewhere (a bare `cargo test`) they are skipped with a message.

fn require_backends() -> bool {
    std::env::var("COFFER_REQUIRE_BACKENDS").is_ok_and(|v| v == "1")
}

fn env_or_skip(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if require_backends() => panic!("{name} is not set (scripts/databases.sh sets it)"),
        _ => {
            eprintln!("skipped: {name} is not set (run through scripts/test)");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn pg_url() -> Option<String> {
    let port = env_or_skip("COFFER_TEST_PG_PORT")?;
    let user = env_or_skip("COFFER_TEST_PG_USER")?;
    let pw = env_or_skip("COFFER_TEST_PG_PASSWORD")?;
    Some(format!(
        "postgres://{user}:{pw}@127.0.0.1:{port}/postgres?sslmode=disable"
    ))
}

/// A PostgreSQL backend on tables of its own (dropped by [`pg_drop`]).
async fn pg_backend(ha: bool) -> Option<(PostgresBackend, PostgresConfig)> {
    let mut cfg = PostgresConfig::new(pg_url()?);
    cfg.table = unique("conf_kv");
    cfg.ha_table = unique("conf_ha");
    cfg.ha_enabled = ha;
    let b = PostgresBackend::open(cfg.clone()).await.unwrap();
    Some((b, cfg))
}

async fn pg_drop(cfg: &PostgresConfig) {
    let (client, conn) = tokio_postgres::connect(&cfg.connection_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS \"{}\"; DROP TABLE IF EXISTS \"{}\";",
            cfg.table, cfg.ha_table
        ))
        .await
        .unwrap();
}

fn node(n: &str) -> NodeInfo {
    NodeInfo {
        id: unique(n),
        hostname: "test".into(),
        api_addr: format!("http://{n}:8200"),
        cluster_addr: format!("https://{n}:8201"),
        version: "test".into(),
        auth: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_conformance() {
    let Some((b, cfg)) = pg_backend(false).await else {
        return;
    };
    assert_eq!(b.kind(), "postgresql");
    conformance(&b).await;
    let b = Arc::new(b);
    concurrent_puts(b.clone()).await;
    cas_counter(b.clone()).await;
    keys_in_order(b.as_ref()).await;
    pg_drop(&cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_reopen_keeps_data_and_bad_config_is_refused() {
    let Some((b, cfg)) = pg_backend(false).await else {
        return;
    };
    b.put("keep/a", b"alpha".to_vec()).await.unwrap();
    drop(b);
    let b = PostgresBackend::open(cfg.clone()).await.unwrap();
    assert_eq!(
        b.get("keep/a").await.unwrap().as_deref(),
        Some(&b"alpha"[..])
    );
    pg_drop(&cfg).await;
    for bad in ["x; DROP TABLE y", "a.b.c", "", "1abc"] {
        let mut c = cfg.clone();
        c.table = bad.to_string();
        assert!(matches!(
            PostgresBackend::open(c).await,
            Err(StorageError::Config(_))
        ));
    }
    // a wrong password fails at open, and the error does not carry it
    let mut c = cfg.clone();
    c.connection_url = c.connection_url.replace(
        &std::env::var("COFFER_TEST_PG_PASSWORD").unwrap(),
        "not-the-password-x9",
    );
    let err = PostgresBackend::open(c).await.unwrap_err().to_string();
    assert!(!err.contains("not-the-password-x9"), "{err}");
    // TLS without a CA to verify the server against is refused, before connecting
    for mode in ["require", "verify-ca", "verify-full"] {
        let mut c = cfg.clone();
        c.connection_url = format!("postgres://u:secretpw@127.0.0.1:1/db?sslmode={mode}");
        let err = PostgresBackend::open(c).await.unwrap_err().to_string();
        assert!(err.contains("sslrootcert"), "{err}");
        assert!(!err.contains("secretpw"), "{err}");
    }
    let mut c = cfg.clone();
    c.connection_url = "postgres://u:secretpw@127.0.0.1:1/db?sslmode=bogus".into();
    let err = PostgresBackend::open(c).await.unwrap_err().to_string();
    assert!(err.contains("sslmode"), "{err}");
}

/// TLS to PostgreSQL: verified against the CA in `sslrootcert` (the test server's own CA
/// works, another CA does not), and the connections really are TLS (pg_stat_ssl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_over_tls() {
    let (Some(url), Some(ca)) = (pg_url(), env_or_skip("COFFER_TEST_PG_CA")) else {
        return;
    };
    let app = unique("coffer_tls");
    let base = url.replace("?sslmode=disable", "");
    let mut cfg = PostgresConfig::new(format!(
        "{base}?sslmode=verify-full&sslrootcert={ca}&application_name={app}"
    ));
    cfg.table = unique("conf_tls");
    cfg.ha_table = unique("conf_tls_ha");
    let b = PostgresBackend::open(cfg.clone()).await.unwrap();
    b.put("tls/a", b"over tls".to_vec()).await.unwrap();
    assert_eq!(
        b.get("tls/a").await.unwrap().as_deref(),
        Some(&b"over tls"[..])
    );
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let (tls, all): (i64, i64) = (row.get(0), row.get(1));
    assert!(all >= 1 && tls == all, "{tls} of {all} connections use TLS");
    drop(b);
    // dropped over a plain connection (the helper's client speaks no TLS)
    let plain = |c: &PostgresConfig| PostgresConfig {
        connection_url: url.clone(),
        ..c.clone()
    };
    pg_drop(&plain(&cfg)).await;
    // a CA that did not sign the server's certificate: refused
    let mut other = cfg.clone();
    other.connection_url =
        format!("{base}?sslmode=require&sslrootcert=/etc/ssl/certs/ca-certificates.crt");
    let err = PostgresBackend::open(other).await.unwrap_err().to_string();
    assert!(err.contains("connect"), "{err}");
    // the key=value form too
    let mut kv = cfg.clone();
    kv.connection_url = format!(
        "host=127.0.0.1 port={} user={} password={} dbname=postgres sslmode=verify-full sslrootcert={ca}",
        std::env::var("COFFER_TEST_PG_PORT").unwrap(),
        std::env::var("COFFER_TEST_PG_USER").unwrap(),
        std::env::var("COFFER_TEST_PG_PASSWORD").unwrap(),
    );
    let b = PostgresBackend::open(kv.clone()).await.unwrap();
    b.put("tls/kv", b"1".to_vec()).await.unwrap();
    drop(b);
    pg_drop(&plain(&kv)).await;
}

async fn keys_in_order(b: &dyn Backend) {
    for k in ["keys/b", "keys/a/x", "keys/a/", "keys/c"] {
        b.put(k, b"v".to_vec()).await.unwrap();
    }
    let all = b.keys().await.unwrap();
    let ours: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|k| k.starts_with("keys/"))
        .collect();
    assert_eq!(ours, vec!["keys/a/", "keys/a/x", "keys/b", "keys/c"]);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
}

/// The HA contract on one backend: one holder at a time; a standby's writes are refused;
/// release hands over; and a holder whose hold was taken over is refused by the storage
/// engine itself even while it still believes it holds the lock.
async fn ha_contract(
    a: &dyn Backend,
    b: &dyn Backend,
    expire_a: impl std::future::Future<Output = ()>,
) {
    let (na, nb) = (node("a"), node("b"));
    // before any lock attempt writes are not fenced (initialization happens then)
    a.put("ha/init", b"1".to_vec()).await.unwrap();
    let la = a.ha_lock(na.clone()).expect("ha enabled");
    let lb = b.ha_lock(nb.clone()).expect("ha enabled");
    assert!(la.try_acquire().await.unwrap());
    assert!(!lb.try_acquire().await.unwrap());
    assert!(la.try_acquire().await.unwrap(), "holding again is fine");
    assert!(la.renew().await.unwrap());
    assert_eq!(la.leader().await.unwrap(), Some(na.clone()));
    assert_eq!(lb.leader().await.unwrap(), Some(na.clone()));
    a.put("ha/x", b"from-a".to_vec()).await.unwrap();
    assert!(matches!(
        b.put("ha/x", b"from-b".to_vec()).await,
        Err(StorageError::Fenced)
    ));
    assert!(matches!(
        b.transaction(vec![put("ha/y", b"b")]).await,
        Err(StorageError::Fenced)
    ));
    assert_eq!(
        b.get("ha/x").await.unwrap().as_deref(),
        Some(&b"from-a"[..])
    );
    // check-ins
    la.check_in().await.unwrap();
    lb.check_in().await.unwrap();
    let members = la.members().await.unwrap();
    let ids: Vec<&str> = members.iter().map(|m| m.node.id.as_str()).collect();
    assert!(
        ids.contains(&na.id.as_str()) && ids.contains(&nb.id.as_str()),
        "{ids:?}"
    );
    // release hands over
    la.release().await.unwrap();
    assert!(matches!(
        a.put("ha/x", b"late".to_vec()).await,
        Err(StorageError::Fenced)
    ));
    assert!(lb.try_acquire().await.unwrap());
    assert_eq!(la.leader().await.unwrap(), Some(nb.clone()));
    b.put("ha/x", b"from-b".to_vec()).await.unwrap();
    // b loses its hold behind its back; a takes over; b's own belief is stale but the
    // storage engine refuses b's write
    expire_a.await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !la.try_acquire().await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(matches!(
        b.put("ha/x", b"stale".to_vec()).await,
        Err(StorageError::Fenced)
    ));
    assert_eq!(
        a.get("ha/x").await.unwrap().as_deref(),
        Some(&b"from-b"[..])
    );
    assert!(!lb.renew().await.unwrap());
    a.put("ha/x", b"a-again".to_vec()).await.unwrap();
    la.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_ha_lock_and_fencing() {
    let Some((a, cfg)) = pg_backend(true).await else {
        return;
    };
    let b = PostgresBackend::open(cfg.clone()).await.unwrap();
    let url = cfg.connection_url.clone();
    let ha_table = cfg.ha_table.clone();
    // expire the current hold in the table, as a hold that was not renewed in time
    let expire = async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .execute(
                &format!(
                    "UPDATE \"{ha_table}\" SET valid_until = now() - interval '1 second' WHERE ha_key = 'leader'"
                ),
                &[],
            )
            .await
            .unwrap();
    };
    ha_contract(&a, &b, expire).await;
    pg_drop(&cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_lock_expires_without_renewal() {
    let Some((a, cfg)) = pg_backend(true).await else {
        return;
    };
    let b = PostgresBackend::open(cfg.clone()).await.unwrap();
    let la = a.ha_lock(node("a")).unwrap();
    let lb = b.ha_lock(node("b")).unwrap();
    assert!(la.try_acquire().await.unwrap());
    let start = std::time::Instant::now();
    while !lb.try_acquire().await.unwrap() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let took = start.elapsed();
    assert!(
        took >= coffer_storage::HA_TTL - std::time::Duration::from_millis(300)
            && took < coffer_storage::HA_TTL + std::time::Duration::from_secs(1),
        "{took:?}"
    );
    assert!(!la.renew().await.unwrap());
    pg_drop(&cfg).await;
}

#[cfg(feature = "etcd")]
mod etcd {
    use super::*;
    use coffer_storage::{EtcdBackend, EtcdConfig};

    fn config(ha: bool) -> Option<EtcdConfig> {
        let endpoints = env_or_skip("COFFER_TEST_ETCD_ENDPOINTS")?;
        let mut cfg = EtcdConfig::new(
            endpoints.split(',').map(str::to_string).collect(),
            &format!("/{}/", unique("conf")),
        );
        cfg.ha_enabled = ha;
        Some(cfg)
    }

    /// `etcdctl` (Debian's etcd-client, installed with the server) on the test cluster.
    fn etcdctl(endpoints: &[String], args: &[&str]) -> String {
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(args)
            .output()
            .expect("etcdctl runs");
        assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn clear(cfg: &EtcdConfig) {
        let base = cfg.path.trim_end_matches('/').to_string();
        etcdctl(&cfg.endpoints, &["del", "--prefix", &base]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_conformance() {
        let Some(cfg) = config(false) else {
            return;
        };
        let b = Arc::new(EtcdBackend::open(cfg.clone()).await.unwrap());
        assert_eq!(b.kind(), "etcd");
        conformance(b.as_ref()).await;
        concurrent_puts(b.clone()).await;
        cas_counter(b.clone()).await;
        keys_in_order(b.as_ref()).await;
        clear(&cfg).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_limits_are_clear_errors() {
        let Some(cfg) = config(false) else {
            return;
        };
        let b = EtcdBackend::open(cfg.clone()).await.unwrap();
        let err = b.put("big", vec![1u8; 2 << 20]).await.unwrap_err();
        assert!(matches!(err, StorageError::TooLarge(_)), "{err:?}");
        assert!(err.to_string().contains("max-request-bytes"), "{err}");
        assert_eq!(b.get("big").await.unwrap(), None);
        let ops: Vec<TxnOp> = (0..200).map(|i| put(&format!("many/{i}"), b"v")).collect();
        let err = b.transaction(ops).await.unwrap_err();
        assert!(err.to_string().contains("max-txn-ops"), "{err}");
        assert!(b.list("many/").await.unwrap().is_empty());
        // an unreachable cluster fails at open
        let mut bad = cfg.clone();
        bad.endpoints = vec!["http://127.0.0.1:1".into()];
        assert!(EtcdBackend::open(bad).await.is_err());
        clear(&cfg).await;
    }

    /// A single-member etcd of this test's own, serving TLS with the certificate that
    /// scripts/databases.sh made for PostgreSQL (127.0.0.1, signed by COFFER_TEST_PG_CA).
    struct TlsEtcd {
        child: std::process::Child,
        _dir: tempfile::TempDir,
        url: String,
    }

    impl Drop for TlsEtcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn tls_etcd(tls_dir: &std::path::Path) -> TlsEtcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("https://127.0.0.1:{client}");
        let cert = tls_dir.join("server.pem");
        let key = tls_dir.join("server.key");
        let child = std::process::Command::new("etcd")
            .args([
                "--name=coffer-tls-test",
                &format!("--data-dir={}", dir.path().join("data").display()),
                &format!("--listen-client-urls={url}"),
                &format!("--advertise-client-urls={url}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-cluster=coffer-tls-test=http://127.0.0.1:{peer}"),
                &format!("--cert-file={}", cert.display()),
                &format!("--key-file={}", key.display()),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcd runs (Debian etcd-server)");
        TlsEtcd {
            child,
            _dir: dir,
            url,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_over_tls() {
        let Some(ca) = env_or_skip("COFFER_TEST_PG_CA") else {
            return;
        };
        let ca_path = std::path::PathBuf::from(&ca);
        let server = tls_etcd(ca_path.parent().unwrap());
        let mut cfg = EtcdConfig::new(vec![server.url.clone()], "/tls-test/");
        cfg.tls_ca_file = Some(ca.clone());
        // the member needs a moment to elect itself
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let b = loop {
            match EtcdBackend::open(cfg.clone()).await {
                Ok(b) => break b,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("waiting for the TLS etcd: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        b.put("tls/a", b"over tls".to_vec()).await.unwrap();
        assert_eq!(
            b.get("tls/a").await.unwrap().as_deref(),
            Some(&b"over tls"[..])
        );
        assert_eq!(b.list("tls/").await.unwrap(), vec!["a"]);
        // a CA that did not sign the member's certificate: refused
        let mut wrong = cfg.clone();
        wrong.tls_ca_file = Some("/etc/ssl/certs/ca-certificates.crt".into());
        assert!(EtcdBackend::open(wrong).await.is_err());
        // TLS files with http:// addresses: a configuration error, not a clear-text connection
        let mut mixed = cfg.clone();
        mixed.endpoints = vec![server.url.replace("https://", "http://")];
        assert!(matches!(
            EtcdBackend::open(mixed).await,
            Err(StorageError::Config(_))
        ));
        // username and password: with etcd's authentication on, only the right pair works,
        // and no error carries the password
        let ctl = |args: &[&str]| {
            let out = std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", server.url))
                .arg(format!("--cacert={ca}"))
                .args(args)
                .output()
                .expect("etcdctl runs");
            assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
        };
        ctl(&["user", "add", "root:root-pw-7f3a"]);
        ctl(&["user", "add", "coffer:coffer-pw-9c1e"]);
        ctl(&["role", "add", "coffer"]);
        ctl(&[
            "role",
            "grant-permission",
            "coffer",
            "--prefix=true",
            "readwrite",
            "/tls-test",
        ]);
        ctl(&["user", "grant-role", "coffer", "coffer"]);
        ctl(&["auth", "enable"]);
        assert!(
            EtcdBackend::open(cfg.clone()).await.is_err(),
            "no credentials"
        );
        let mut auth = cfg.clone();
        auth.username = Some("coffer".into());
        auth.password = Some("coffer-pw-9c1e".into());
        let b = EtcdBackend::open(auth.clone()).await.unwrap();
        assert_eq!(
            b.get("tls/a").await.unwrap().as_deref(),
            Some(&b"over tls"[..])
        );
        b.put("tls/b", b"with auth".to_vec()).await.unwrap();
        let mut bad = auth.clone();
        bad.password = Some("wrong-pw-0d2b".into());
        let err = EtcdBackend::open(bad.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("wrong-pw-0d2b"), "{err}");
        assert!(!format!("{bad:?}").contains("wrong-pw-0d2b"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_ha_lock_and_fencing() {
        let Some(cfg) = config(true) else {
            return;
        };
        let a = EtcdBackend::open(cfg.clone()).await.unwrap();
        let b = EtcdBackend::open(cfg.clone()).await.unwrap();
        let endpoints = cfg.endpoints.clone();
        let lock_key = format!("{}.ha/lock", cfg.path.trim_end_matches('/'));
        // revoke the holder's lease behind its back, as a lease that ran out
        let expire = async move {
            let out = etcdctl(&endpoints, &["get", &lock_key, "-w", "json"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let lease = v["kvs"][0]["lease"]
                .as_i64()
                .expect("the lock key has a lease");
            etcdctl(&endpoints, &["lease", "revoke", &format!("{lease:x}")]);
        };
        ha_contract(&a, &b, expire).await;
        clear(&cfg).await;
    }
}
