use crate::common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn marker_never_reaches_storage_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = with_config(
        dir.path(),
        &format!("storage \"file\" {{ path = \"{}\" }}", data.display()),
        "",
    );
    s.init_and_unseal(3, 2);
    s.root(
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    s.root("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    let marker = "COFFER-MARKER-7f3a9c";
    for i in 0..20 {
        let (st, v) = s.root(
            "POST",
            &format!("secret/data/m{i}"),
            Some(json!({"data": {"password": format!("{marker}-{i}")}})),
        );
        assert_eq!(st, 200, "{v}");
    }
    s.root("POST", "kv1/m", Some(json!({"v": marker})));
    s.root(
        "POST",
        "secret/metadata/m1",
        Some(json!({"custom_metadata": {"note": marker}})),
    );
    s.policy(
        "markerpolicy",
        &format!("# {marker}\npath \"secret/*\" {{ capabilities = [\"read\"] }}"),
    );
    drop(s);
    let bytes = read_tree(&data);
    assert!(bytes.len() > 1000, "storage should hold data");
    assert!(
        !contains(&bytes, marker.as_bytes()),
        "marker found in storage files"
    );
    assert!(
        !contains(&bytes, b"7f3a9c"),
        "marker fragment found in storage files"
    );
}

/// SIGKILL the server in the middle of a write storm; after restart and unseal every write that
/// was acknowledged must be readable.
#[test]
fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let storage = format!("storage \"file\" {{ path = \"{}\" }}", data.display());
    let mut s = with_config(dir.path(), &storage, "");
    let (keys, root) = s.init_and_unseal(1, 1);
    s.root("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})));

    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let acked = acked.clone();
        let stop = stop.clone();
        let addr = s.addr.clone();
        let root = root.clone();
        workers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("w{w}/k{}", i % 7);
                let r = client
                    .post(format!("{addr}/v1/secret/data/{path}"))
                    .header("X-Vault-Token", &root)
                    .json(&json!({"data": {"n": i}}))
                    .send();
                match r {
                    Ok(r) if r.status().as_u16() == 200 => {
                        let v: serde_json::Value = r.json().unwrap();
                        let version = v["data"]["version"].as_u64().unwrap();
                        acked.lock().unwrap().push((path, version));
                    }
                    _ => break,
                }
                i += 1;
            }
        }));
    }
    while acked.lock().unwrap().len() < 300 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGKILL mid-storm
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGKILL);
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let _ = s.child.wait();
    drop(s);
    let acked = acked.lock().unwrap().clone();

    let mut s = with_config(dir.path(), &storage, "");
    s.unseal(&keys);
    s.token = root;
    let mut latest = std::collections::HashMap::new();
    for (p, v) in &acked {
        let e = latest.entry(p.clone()).or_insert(0u64);
        *e = (*e).max(*v);
    }
    for (p, v) in latest {
        let (st, body) = s.root("GET", &format!("secret/data/{p}?version={v}"), None);
        assert_eq!(st, 200, "acknowledged write {p} v{v} lost: {body}");
        let (_, meta) = s.root("GET", &format!("secret/metadata/{p}"), None);
        assert!(meta["data"]["current_version"].as_u64().unwrap() >= v);
    }
}
