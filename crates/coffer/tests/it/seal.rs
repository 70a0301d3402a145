use crate::common::*;
use serde_json::json;

#[test]
fn config_mode_init_unseal_seal_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_config(dir.path(), "storage \"inmem\" {}", "");
    // uninitialized
    let (st, v) = s.req("GET", "sys/health", None, None);
    assert_eq!(st, 501, "{v}");
    assert_eq!(v["initialized"], false);
    let (st, v) = s.req("GET", "sys/init", None, None);
    assert_eq!((st, v["initialized"].clone()), (200, json!(false)));
    // bad init parameters change nothing
    let (st, _) = s.req(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 2, "secret_threshold": 3})),
    );
    assert_eq!(st, 400);
    let (st, _) = s.req(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": "x", "secret_threshold": 3})),
    );
    assert_eq!(st, 400);
    assert_eq!(s.req("GET", "sys/init", None, None).1["initialized"], false);

    let (st, v) = s.req(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 5, "secret_threshold": 3})),
    );
    assert_eq!(st, 200, "{v}");
    let keys: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 5);
    assert_eq!(v["keys_base64"].as_array().unwrap().len(), 5);
    let root = v["root_token"].as_str().unwrap().to_string();
    s.token = root.clone();
    let (st, _) = s.req(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(st, 400, "second init must fail");

    // sealed: health 503 (or sealedcode), everything else 503
    let (st, v) = s.req("GET", "sys/health", None, None);
    assert_eq!(st, 503, "{v}");
    let (st, _) = s.req(
        "GET",
        "sys/health?sealedcode=299&standbyok=True",
        None,
        None,
    );
    assert_eq!(st, 299);
    let r = s
        .client
        .head(format!("{}/v1/sys/health", s.addr))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    for (m, p) in [
        ("GET", "secret/data/x"),
        ("GET", "sys/mounts"),
        ("GET", "auth/token/lookup-self"),
        ("PUT", "sys/policy/x"),
    ] {
        let (st, v) = s.req(m, p, Some(&root), Some(json!({"policy": ""})));
        assert_eq!(st, 503, "{m} {p}: {v}");
        assert_eq!(v["errors"][0], "Vault is sealed");
    }

    // progressive unseal with progress, nonce and reset
    let (_, v) = s.req("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})));
    assert_eq!(v["progress"], 1);
    assert_eq!(v["sealed"], true);
    assert_ne!(v["nonce"], "");
    let (_, v) = s.req("PUT", "sys/unseal", None, Some(json!({"reset": true})));
    assert_eq!(v["progress"], 0);
    let (st, _) = s.req(
        "PUT",
        "sys/unseal",
        None,
        Some(json!({"key": "not-a-key!"})),
    );
    assert_eq!(st, 400);
    s.unseal(&keys[2..5]);
    let (st, v) = s.req("GET", "sys/health", None, None);
    assert_eq!(st, 200, "{v}");

    // mount kv v2 and use it, then seal via API (needs sudo → root ok)
    let (st, v) = s.root(
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204, "{v}");
    s.root("POST", "secret/data/a", Some(json!({"data": {"k": "v"}})));
    let other = s.token_with(&["default"]);
    let (st, _) = s.req("PUT", "sys/seal", Some(&other), None);
    assert_eq!(st, 403, "seal needs sudo");
    let (st, _) = s.root("PUT", "sys/seal", None);
    assert_eq!(st, 204);
    assert_eq!(
        s.req("GET", "sys/seal-status", None, None).1["sealed"],
        true
    );
    assert_eq!(s.root("GET", "secret/data/a", None).0, 503);
    // wrong key set fails and stays sealed
    s.unseal(&[keys[1].clone(), keys[3].clone(), keys[4].clone()]);
    assert_eq!(
        s.root("GET", "secret/data/a", None).1["data"]["data"]["k"],
        "v"
    );
}

#[test]
fn key_rotation_keeps_old_data_readable() {
    let s = dev();
    s.root(
        "POST",
        "secret/data/before",
        Some(json!({"data": {"k": "old"}})),
    );
    let (_, v) = s.root("GET", "sys/key-status", None);
    assert_eq!(v["data"]["term"], 1);
    let (st, _) = s.root("POST", "sys/rotate", None);
    assert_eq!(st, 204);
    assert_eq!(s.root("GET", "sys/key-status", None).1["data"]["term"], 2);
    s.root(
        "POST",
        "secret/data/after",
        Some(json!({"data": {"k": "new"}})),
    );
    assert_eq!(
        s.root("GET", "secret/data/before", None).1["data"]["data"]["k"],
        "old"
    );
    assert_eq!(
        s.root("GET", "secret/data/after", None).1["data"]["data"]["k"],
        "new"
    );
    let t = s.token_with(&["default"]);
    assert_eq!(s.req("POST", "sys/rotate", Some(&t), None).0, 403);
}

#[test]
fn static_seal_auto_unseals_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, seal) = static_seal_config(dir.path());
    let root;
    {
        let mut s = with_config(dir.path(), &storage, &seal);
        root = s.init_static();
        assert_eq!(
            s.req("GET", "sys/seal-status", None, None).1["sealed"],
            false
        );
        s.root("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})));
        let (st, v) = s.root("POST", "secret/data/x", Some(json!({"data": {"k": "v"}})));
        assert_eq!(st, 200, "{v}");
    }
    let mut s = with_config(dir.path(), &storage, &seal);
    s.token = root;
    let (_, v) = s.req("GET", "sys/seal-status", None, None);
    assert_eq!(v["sealed"], false, "{v}");
    assert_eq!(v["type"], "static");
    assert_eq!(
        s.root("GET", "secret/data/x", None).1["data"]["data"]["k"],
        "v"
    );
}

#[test]
fn version_command() {
    for arg in ["version", "-version", "--version"] {
        let out = std::process::Command::new(bin()).arg(arg).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            text.trim(),
            format!("Coffer v{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
