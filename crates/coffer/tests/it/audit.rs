use crate::common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn entries(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

fn enable_file(s: &Server, log: &Path) {
    let (st, v) = s.root(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
    );
    assert_eq!(st, 204, "{v}");
}

fn verify_cli(s: &Server, files: &[&Path]) -> (bool, String) {
    let out = Command::new(bin())
        .arg("audit")
        .arg("verify")
        .args(files)
        .env("COFFER_ADDR", &s.addr)
        .env("COFFER_TOKEN", &s.token)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_request_and_response_is_recorded_and_hmaced() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let s = dev();
    enable_file(&s, &log);
    let marker = "AUDIT-MARKER-5d1e";
    let (st, _) = s.root(
        "POST",
        "secret/data/app",
        Some(json!({"data": {"password": marker}})),
    );
    assert_eq!(st, 200);
    let (_, v) = s.root("GET", "secret/data/app", None);
    assert_eq!(v["data"]["data"]["password"], marker);
    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"]})),
    );
    let new_token = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        s.req("GET", "secret/data/app", Some("bogus-token"), None).0,
        403
    );
    let (_, v) = s.root("LIST", "secret/metadata", None);
    assert_eq!(v["data"]["keys"], json!(["app"]));

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(marker),
        "secret value in clear in the audit log"
    );
    assert!(!text.contains(ROOT), "root token in clear in the audit log");
    assert!(
        !text.contains(&new_token),
        "issued token in clear in the audit log"
    );

    // every request id has one request and (unless refused before running) one response entry
    let all = entries(&log);
    let mut by_id: HashMap<String, Vec<String>> = HashMap::new();
    for e in &all {
        let id = e["request"]["id"].as_str().unwrap().to_string();
        by_id
            .entry(id)
            .or_default()
            .push(e["type"].as_str().unwrap().to_string());
        assert_eq!(e["dialect"], "vault");
        assert!(e["seq"].as_u64().is_some() && e["hash"].is_string());
    }
    // enable's own response + write + read + token create + denied + list
    assert!(by_id.len() >= 5, "{by_id:?}");
    for (id, kinds) in &by_id {
        let denied = all
            .iter()
            .any(|e| e["request"]["id"] == id.as_str() && e["error"] == "permission denied");
        if denied {
            assert_eq!(kinds, &vec!["request".to_string()], "denied request {id}");
        } else if kinds.len() == 2 {
            assert_eq!(kinds, &vec!["request".to_string(), "response".to_string()]);
        } else {
            // the enable call itself: only its response is written (the device did not exist yet)
            assert_eq!(kinds, &vec!["response".to_string()], "{id}");
        }
    }

    // sys/audit-hash computes the logged HMAC
    let (st, v) = s.root(
        "POST",
        "sys/audit-hash/file",
        Some(json!({"input": marker})),
    );
    assert_eq!(st, 200, "{v}");
    let hashed = v["data"]["hash"].as_str().unwrap().to_string();
    assert!(hashed.starts_with("hmac-sha256:"));
    let write = all
        .iter()
        .find(|e| {
            e["type"] == "request"
                && e["request"]["operation"] == "create"
                && e["request"]["path"] == "secret/data/app"
        })
        .expect("write request entry");
    assert_eq!(
        write["request"]["data"]["data"]["password"],
        hashed.as_str()
    );
    let read = all
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["operation"] == "read"
                && e["request"]["path"] == "secret/data/app"
        })
        .expect("read response entry");
    assert_eq!(
        read["response"]["data"]["data"]["password"],
        hashed.as_str()
    );
    assert!(read["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));

    // the devices list
    let (_, v) = s.root("GET", "sys/audit", None);
    assert_eq!(v["data"]["file/"]["type"], "file");
    // bad enable requests change nothing
    assert_eq!(
        s.root("PUT", "sys/audit/x", Some(json!({"type": "nope"})))
            .0,
        400
    );
    assert_eq!(
        s.root(
            "PUT",
            "sys/audit/y",
            Some(json!({"type": "file", "options": {}}))
        )
        .0,
        400
    );
    assert_eq!(
        s.root(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": "/tmp/x"}}))
        )
        .0,
        400
    );
    let (_, v) = s.root("GET", "sys/audit", None);
    assert_eq!(v["data"].as_object().unwrap().len(), 1);
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn fail_closed_when_the_only_file_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("logs");
    let log = logdir.join("audit.log");
    let s = dev();
    enable_file(&s, &log);
    s.root(
        "POST",
        "secret/data/k",
        Some(json!({"data": {"v": "before"}})),
    );
    // make the path unopenable (the directory becomes a plain file; even root cannot open it)
    std::fs::rename(&logdir, dir.path().join("moved")).unwrap();
    std::fs::write(&logdir, b"not a directory").unwrap();
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGHUP);
    }
    assert!(
        wait_until(|| s.root("GET", "sys/mounts", None).0 == 500),
        "requests must fail once the audit device cannot write"
    );
    let (st, v) = s.root(
        "POST",
        "secret/data/k",
        Some(json!({"data": {"v": "after"}})),
    );
    assert_eq!(st, 500, "{v}");
    assert!(v["errors"][0].as_str().unwrap().contains("audit"), "{v}");
    // restore the path: the device recovers, and the refused write changed nothing
    std::fs::remove_file(&logdir).unwrap();
    std::fs::create_dir(&logdir).unwrap();
    assert!(wait_until(|| s.root("GET", "secret/data/k", None).0 == 200));
    let (_, v) = s.root("GET", "secret/data/k", None);
    assert_eq!(v["data"]["data"]["v"], "before");
    assert_eq!(v["data"]["metadata"]["version"], 1);
}

#[test]
fn fail_closed_when_the_socket_peer_is_gone() {
    let s = dev();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = std::thread::spawn(move || {
        use std::io::Read;
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 65536];
        let mut total = Vec::new();
        // read a little, then hang up and stop listening
        let deadline = Instant::now() + Duration::from_millis(300);
        conn.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        while Instant::now() < deadline {
            if let Ok(n) = conn.read(&mut buf) {
                total.extend_from_slice(&buf[..n]);
            }
        }
        total
    });
    let (st, v) = s.root(
        "PUT",
        "sys/audit/sock",
        Some(json!({"type": "socket", "options": {"address": addr.to_string(), "socket_type": "tcp"}})),
    );
    assert_eq!(st, 204, "{v}");
    s.root(
        "POST",
        "secret/data/k",
        Some(json!({"data": {"v": "before"}})),
    );
    let received = collector.join().unwrap();
    assert!(!received.is_empty(), "the socket device sent entries");
    // the peer is gone: requests are refused
    assert!(wait_until(|| s.root("GET", "sys/mounts", None).0 == 500));
    let (st, _) = s.root(
        "POST",
        "secret/data/k",
        Some(json!({"data": {"v": "after"}})),
    );
    assert_eq!(st, 500);
    // a new peer on the same address: the device reconnects and nothing had changed
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let _sink = std::thread::spawn(move || {
        use std::io::Read;
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut buf = [0u8; 65536];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    assert!(wait_until(|| s.root("GET", "secret/data/k", None).0 == 200));
    let (_, v) = s.root("GET", "secret/data/k", None);
    assert_eq!(v["data"]["data"]["v"], "before");
}

#[test]
fn verify_passes_clean_logs_and_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let s = dev();
    enable_file(&s, &log);
    for i in 0..5 {
        s.root(
            "POST",
            &format!("secret/data/v{i}"),
            Some(json!({"data": {"n": i}})),
        );
    }
    let (ok, text) = verify_cli(&s, &[&log]);
    assert!(ok, "{text}");
    assert!(text.contains("OK"), "{text}");

    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 10);
    let case = |name: &str, content: String, expect: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let (ok, text) = verify_cli(&s, &[&p]);
        assert!(!ok, "{name}: tampering not detected: {text}");
        assert!(
            text.contains(expect),
            "{name}: expected {expect:?} in {text}"
        );
    };
    let join = |ls: &[&str]| format!("{}\n", ls.join("\n"));
    // edited field
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    edited[4] = edited[4]
        .replace("\"update\"", "\"delete\"")
        .replace("\"create\"", "\"delete\"");
    assert_ne!(edited[4], lines[4]);
    case("edited.log", format!("{}\n", edited.join("\n")), "line 5");
    // deleted line
    let mut deleted = lines.clone();
    deleted.remove(3);
    case("deleted.log", join(&deleted), "missing");
    // swapped lines
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    case("swapped.log", join(&swapped), "out of order");
    // inserted forged line
    let mut inserted: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    inserted.insert(3, lines[2].replace("secret/data/", "secret/data/forged-"));
    case(
        "inserted.log",
        format!("{}\n", inserted.join("\n")),
        "line 4",
    );
    // truncated tail: last two lines removed, and a cut mid-line
    case(
        "truncated.log",
        join(&lines[..lines.len() - 2]),
        "truncated",
    );
    case(
        "cut.log",
        original[..original.len() - 7].to_string(),
        "truncated",
    );
}

#[test]
fn sighup_rotation_keeps_a_verifiable_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.1");
    let s = dev();
    enable_file(&s, &log);
    for i in 0..3 {
        s.root(
            "POST",
            &format!("secret/data/r{i}"),
            Some(json!({"data": {"n": i}})),
        );
    }
    std::fs::rename(&log, &rotated).unwrap();
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGHUP);
    }
    assert!(wait_until(|| {
        s.root("GET", "sys/mounts", None);
        log.exists()
    }));
    for i in 3..6 {
        s.root(
            "POST",
            &format!("secret/data/r{i}"),
            Some(json!({"data": {"n": i}})),
        );
    }
    let (ok, text) = verify_cli(&s, &[&rotated, &log]);
    assert!(ok, "{text}");
    // the files in the wrong order do not verify
    let (ok, _) = verify_cli(&s, &[&log, &rotated]);
    assert!(!ok);
    // the chain continues across the files
    let first_new = &entries(&log)[0];
    let last_old = entries(&rotated).last().cloned().unwrap();
    assert_eq!(
        first_new["seq"].as_u64().unwrap(),
        last_old["seq"].as_u64().unwrap() + 1
    );
    assert_eq!(first_new["prev_hash"], last_old["hash"]);
}
