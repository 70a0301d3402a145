//! Transport-level abuse: slow and idle clients, connection floods, oversized unauthenticated
//! bodies, caller-chosen health status lines, file modes of the stored state, and shutdown.

use crate::common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn hostport(s: &Server) -> String {
    s.addr.trim_start_matches("http://").to_string()
}

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(hostport(s)).unwrap();
    c.set_nodelay(true).unwrap();
    c
}

/// Whether the peer has closed `c`: waits up to `wait` for EOF or a reset.
fn closed_within(c: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Read one HTTP response (headers and a `Content-Length` body): (status, head, body).
fn read_response(c: &mut TcpStream, wait: Duration) -> Option<(u16, String, String)> {
    c.set_read_timeout(Some(wait)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    Some((status, head, body))
}

fn get_request(s: &Server, path: &str) -> String {
    format!("GET /v1/{path} HTTP/1.1\r\nHost: {}\r\n\r\n", hostport(s))
}

fn server_with_listener(dir: &Path, listener_hcl: &str) -> Server {
    with_listener(dir, "storage \"inmem\" {}", listener_hcl, "", |_| {})
}

/// A client that sends its request headers one line at a time, slower than the header timeout
/// allows, is disconnected; one that sends nothing at all too; one that is slow but in time is
/// served.
#[test]
fn slow_request_headers_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_listener(
        dir.path(),
        "  http_read_header_timeout = \"1s\"\n  http_idle_timeout = \"30s\"",
    );

    // slow but within the timeout: served
    let mut c = connect(&s);
    for part in [
        "GET /v1/sys/seal-status HTTP/1.1\r\n".to_string(),
        format!("Host: {}\r\n", hostport(&s)),
        "\r\n".to_string(),
    ] {
        c.write_all(part.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _, _) = read_response(&mut c, Duration::from_secs(5)).expect("response");
    assert_eq!(status, 200);

    // a header line every 300 ms, forever: cut off after about a second
    let mut c = connect(&s);
    let start = Instant::now();
    c.write_all(b"GET /v1/sys/seal-status HTTP/1.1\r\n")
        .unwrap();
    let mut closed = false;
    for i in 0..20 {
        if c.write_all(format!("X-Drip-{i}: x\r\n").as_bytes())
            .is_err()
            || closed_within(&mut c, Duration::from_millis(300))
        {
            closed = true;
            break;
        }
    }
    let took = start.elapsed();
    assert!(closed, "a dripping client kept its connection for {took:?}");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "closed after {took:?}, expected about 1 s"
    );

    // connected, nothing sent: cut off too
    let mut c = connect(&s);
    let start = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(4)));
    assert!(start.elapsed() >= Duration::from_millis(800));

    // the server still serves
    let (st, _) = s.req("GET", "sys/seal-status", None, None);
    assert_eq!(st, 200);
}

/// A keep-alive connection is reused while it is used, and closed once it has been idle for
/// `http_idle_timeout` (which is independent of the header timeout).
#[test]
fn idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_listener(
        dir.path(),
        "  http_read_header_timeout = \"20s\"\n  http_idle_timeout = \"1s\"",
    );
    let mut c = connect(&s);
    for _ in 0..3 {
        c.write_all(get_request(&s, "sys/seal-status").as_bytes())
            .unwrap();
        let (status, head, _) = read_response(&mut c, Duration::from_secs(5)).expect("response");
        assert_eq!(status, 200);
        assert!(!head.to_ascii_lowercase().contains("connection: close"));
        std::thread::sleep(Duration::from_millis(400));
    }
    let start = Instant::now();
    assert!(
        closed_within(&mut c, Duration::from_secs(5)),
        "idle connection left open"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "closed {took:?} after the last request's 400 ms pause, expected about 600 ms"
    );
}

/// A TLS listener does not wait forever for a handshake.
#[test]
fn stalled_tls_handshake_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let cfg = dir.path().join("tls.hcl");
    std::fs::write(
        &cfg,
        format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n address = \"127.0.0.1:{port}\"\n tls_cert_file = \"{}\"\n tls_key_file = \"{}\"\n http_read_header_timeout = \"1s\"\n}}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .arg("server")
        .arg(format!("-config={}", cfg.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut conn = None;
    for _ in 0..400 {
        if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
            conn = Some(c);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let mut c = conn.expect("TLS listener never came up");
    let start = Instant::now();
    let closed = closed_within(&mut c, Duration::from_secs(4));
    let _ = child.kill();
    let _ = child.wait();
    assert!(closed, "a client that never starts the handshake is kept");
    assert!(start.elapsed() >= Duration::from_millis(800));
}

/// With `max_connections` reached, further clients wait in the accept queue (they are neither
/// served nor refused) and are served once a slot frees up.
#[test]
fn connection_cap_queues_clients() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_listener(
        dir.path(),
        "  max_connections = 2\n  http_read_header_timeout = \"30s\"\n  http_idle_timeout = \"30s\"",
    );
    // two silent connections fill the listener (with the harness's pooled one, if still open)
    let hogs: Vec<TcpStream> = (0..2).map(|_| connect(&s)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut probe = connect(&s);
    probe
        .write_all(get_request(&s, "sys/seal-status").as_bytes())
        .unwrap();
    assert!(
        read_response(&mut probe, Duration::from_secs(1)).is_none(),
        "a client beyond max_connections was served"
    );
    drop(hogs);
    let (status, _, _) =
        read_response(&mut probe, Duration::from_secs(5)).expect("queued client never served");
    assert_eq!(status, 200);
}

/// Under an open-file limit too low for the connection cap, the cap is lowered to fit (no
/// "Too many open files" storm in the log) and the server serves again once clients leave.
#[test]
fn low_open_file_limit_does_not_flood_or_wedge() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_listener(
        dir.path(),
        "storage \"inmem\" {}",
        "  max_connections = 10000\n  http_read_header_timeout = \"30s\"",
        "",
        |cmd| {
            // SAFETY: setrlimit is async-signal-safe
            unsafe {
                cmd.pre_exec(|| {
                    let lim = libc::rlimit {
                        rlim_cur: 160,
                        rlim_max: 160,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    let hogs: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(hostport(&s)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let out = s.output();
    let storms = out.matches("Too many open files").count();
    assert!(storms <= 2, "{storms} accept errors logged:\n{out}");
    assert!(out.contains("max_connections lowered"), "{out}");
    drop(hogs);
    let mut c = connect(&s);
    c.write_all(get_request(&s, "sys/seal-status").as_bytes())
        .unwrap();
    let (status, _, _) =
        read_response(&mut c, Duration::from_secs(10)).expect("server wedged after the flood");
    assert_eq!(status, 200);
}

/// A large body with a token that does not resolve is refused before it is read: with
/// `Expect: 100-continue` the 413 comes at once (no `100 Continue`, so no body is sent).
#[test]
fn unauthenticated_large_body_is_refused_unread() {
    let s = dev();
    let mut c = connect(&s);
    let five_mib = 5 * 1024 * 1024;
    c.write_all(
        format!(
            "POST /v1/secret/data/big HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: bogus\r\nContent-Type: application/json\r\nContent-Length: {five_mib}\r\nExpect: 100-continue\r\n\r\n",
            hostport(&s)
        )
        .as_bytes(),
    )
    .unwrap();
    let (status, _, body) =
        read_response(&mut c, Duration::from_secs(3)).expect("no answer without the body");
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("errors"), "{body}");

    // sent in full: 413 rather than buffering it to answer 403
    let big = vec![b' '; five_mib];
    let (st, v) = s.raw(
        "POST",
        "secret/data/big",
        Some("bogus"),
        big.clone(),
        "application/json",
    );
    assert_eq!(st, 413, "{v}");
    assert!(v["errors"].is_array());
    let (st, _) = s.raw("POST", "sys/unseal", None, big, "application/json");
    assert_eq!(st, 413);

    // chunked (no declared length): cut off at the unauthenticated limit too
    let reader = std::io::Cursor::new(vec![b' '; 3 * 1024 * 1024]);
    let r = s
        .client
        .post(format!("{}/v1/secret/data/big", s.addr))
        .header("X-Vault-Token", "bogus")
        .body(reqwest::blocking::Body::new(reader))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    // small unauthenticated bodies are unaffected
    let (st, _) = s.req(
        "POST",
        "secret/data/big",
        Some("bogus"),
        Some(serde_json::json!({"data": {"a": "b"}})),
    );
    assert_eq!(st, 403);
}

/// A valid token still writes bodies above the unauthenticated limit.
#[test]
fn authenticated_large_body_is_accepted() {
    let s = dev();
    let value = "v".repeat(2 * 1024 * 1024);
    let (st, v) = s.root(
        "POST",
        "secret/data/big",
        Some(serde_json::json!({"data": {"blob": value}})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.root("GET", "secret/data/big", None);
    assert_eq!(st, 200);
    assert_eq!(
        v["data"]["data"]["blob"].as_str().map(str::len),
        Some(value.len())
    );
}

/// `sys/health` honours only status codes 200–599 and answers only GET and HEAD.
#[test]
fn health_status_codes_and_methods_are_checked() {
    let s = dev();
    for bad in ["101", "100", "199", "600", "999", "0", "-1", "abc", "65536"] {
        let (st, v) = s.req("GET", &format!("sys/health?activecode={bad}"), None, None);
        assert_eq!(st, 400, "activecode={bad}: {v}");
        assert!(
            v["errors"][0].as_str().unwrap().contains("activecode"),
            "{v}"
        );
    }
    // a bad code is refused even when it would not be used (the server is active)
    let (st, _) = s.req("GET", "sys/health?sealedcode=42", None, None);
    assert_eq!(st, 400);
    let (st, v) = s.req("GET", "sys/health?activecode=299", None, None);
    assert_eq!(st, 299);
    assert_eq!(v["sealed"], false);
    let (st, _) = s.req("GET", "sys/health?activecode=599", None, None);
    assert_eq!(st, 599);
    let (st, v) = s.req("GET", "sys/health", None, None);
    assert_eq!(st, 200);
    assert_eq!(v["initialized"], true);
    let r = s
        .client
        .head(format!("{}/v1/sys/health", s.addr))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let (st, v) = s.req(m, "sys/health", None, None);
        assert_eq!(st, 405, "{m}: {v}");
        assert!(v["errors"].is_array(), "{m}: {v}");
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Under umask 022 the storage directory is 0700 and its files 0600 (an existing empty
/// directory is tightened), and so is a directory created for an audit log.
#[test]
fn stored_state_is_private_under_a_permissive_umask() {
    let dir = tempfile::tempdir().unwrap();
    let (_, seal) = static_seal_config(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = with_listener(
        dir.path(),
        &format!("storage \"file\" {{ path = \"{}\" }}", data.display()),
        "",
        &seal,
        |cmd| {
            // SAFETY: umask is async-signal-safe
            unsafe {
                cmd.pre_exec(|| {
                    libc::umask(0o022);
                    Ok(())
                });
            }
        },
    );
    s.init_static();
    let audit = dir.path().join("logs/audit/audit.log");
    let (st, v) = s.root(
        "PUT",
        "sys/audit/file",
        Some(serde_json::json!({"type": "file", "options": {"file_path": audit}})),
    );
    assert!(st == 200 || st == 204, "{v}");
    assert_eq!(mode(&data), 0o700);
    let mut files = 0;
    for e in std::fs::read_dir(&data).unwrap().flatten() {
        let p = e.path();
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
        files += 1;
    }
    assert!(files > 0);
    assert_eq!(mode(&dir.path().join("logs")), 0o700);
    assert_eq!(mode(&dir.path().join("logs/audit")), 0o700);
    assert_eq!(mode(&audit), 0o600);
}

/// A busy port gives one clean error line (the cause is not repeated).
#[test]
fn busy_port_error_is_stated_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = dir.path().join("busy.hcl");
    std::fs::write(
        &cfg,
        format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n address = \"{addr}\"\n tls_disable = true\n}}\n"),
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("server")
        .arg(format!("-config={}", cfg.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
}

/// SIGTERM ends a server promptly, even with idle keep-alive and half-sent requests open.
#[test]
fn sigterm_exits_promptly() {
    let mut s = dev();
    let (st, _) = s.root(
        "POST",
        "secret/data/x",
        Some(serde_json::json!({"data": {"a": "b"}})),
    );
    assert_eq!(st, 200);
    // an idle keep-alive connection, and one in the middle of its headers
    let mut idle = connect(&s);
    idle.write_all(get_request(&s, "sys/health").as_bytes())
        .unwrap();
    read_response(&mut idle, Duration::from_secs(5)).expect("response");
    let mut partial = connect(&s);
    partial
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    // SAFETY: plain kill(2) of our own child
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGTERM);
    }
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "server still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(s.output().contains("shutting down"), "{}", s.output());
}
