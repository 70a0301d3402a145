use crate::common::*;
use serde_json::json;

#[test]
fn kv2_roundtrip_versions_and_cas() {
    let s = dev();
    let (st, v) = s.root(
        "POST",
        "secret/data/apps/payment",
        Some(json!({"data": {"api_key": "k1"}})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["version"], 1);
    let (st, v) = s.root(
        "POST",
        "secret/data/apps/payment",
        Some(json!({"options": {"cas": 1}, "data": {"api_key": "k2"}})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["version"], 2);
    // cas mismatch changes nothing
    let (st, v) = s.root(
        "POST",
        "secret/data/apps/payment",
        Some(json!({"options": {"cas": 1}, "data": {"api_key": "k3"}})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("check-and-set"),
        "{v}"
    );
    let (_, v) = s.root("GET", "secret/data/apps/payment", None);
    assert_eq!(v["data"]["data"]["api_key"], "k2");
    assert_eq!(v["data"]["metadata"]["version"], 2);
    let (_, v) = s.root("GET", "secret/data/apps/payment?version=1", None);
    assert_eq!(v["data"]["data"]["api_key"], "k1");
    // soft delete: 404 with metadata.deletion_time
    let (st, _) = s.root("DELETE", "secret/data/apps/payment", None);
    assert_eq!(st, 204);
    let (st, v) = s.root("GET", "secret/data/apps/payment", None);
    assert_eq!(st, 404, "{v}");
    assert!(v["data"]["data"].is_null());
    assert_ne!(v["data"]["metadata"]["deletion_time"], "");
    // LIST verb and ?list=true
    let (st, v) = s.root("LIST", "secret/metadata/apps", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["keys"], json!(["payment"]));
    let (st, v) = s.root("GET", "secret/metadata/?list=true", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["keys"], json!(["apps/"]));
}

#[test]
fn kv2_patch_requires_merge_patch_content_type() {
    let s = dev();
    s.root(
        "POST",
        "secret/data/p",
        Some(json!({"data": {"a": "1", "b": "2"}})),
    );
    let (st, _) = s.raw(
        "PATCH",
        "secret/data/p",
        Some(ROOT),
        br#"{"data":{"b":"3"}}"#.to_vec(),
        "application/json",
    );
    assert_eq!(st, 415);
    let (st, v) = s.raw(
        "PATCH",
        "secret/data/p",
        Some(ROOT),
        br#"{"data":{"b":"3","c":"4"}}"#.to_vec(),
        "application/merge-patch+json",
    );
    assert_eq!(st, 200, "{v}");
    let (_, v) = s.root("GET", "secret/data/p", None);
    assert_eq!(v["data"]["data"], json!({"a": "1", "b": "3", "c": "4"}));
}

#[test]
fn bad_input_is_rejected_and_changes_nothing() {
    let s = dev();
    s.root(
        "POST",
        "secret/data/x",
        Some(json!({"data": {"v": "orig"}})),
    );
    let before = s.root("GET", "secret/metadata/x", None).1["data"]["current_version"].clone();

    // malformed JSON
    let (st, v) = s.raw(
        "POST",
        "secret/data/x",
        Some(ROOT),
        b"{not json".to_vec(),
        "application/json",
    );
    assert_eq!(st, 400);
    assert!(v["errors"].is_array());
    // wrong types
    let (st, v) = s.root(
        "POST",
        "secret/data/x",
        Some(json!({"data": "not an object"})),
    );
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.root(
        "POST",
        "secret/metadata/x",
        Some(json!({"max_versions": "lots"})),
    );
    assert_eq!(st, 400, "{v}");
    // body not an object
    let (st, _) = s.raw(
        "POST",
        "secret/data/x",
        Some(ROOT),
        b"[1,2]".to_vec(),
        "application/json",
    );
    assert_eq!(st, 400);
    // oversize body (> 32 MiB)
    let big = format!(
        "{{\"data\":{{\"v\":\"{}\"}}}}",
        "a".repeat(33 * 1024 * 1024)
    );
    let (st, v) = s.raw(
        "POST",
        "secret/data/x",
        Some(ROOT),
        big.into_bytes(),
        "application/json",
    );
    assert_eq!(st, 413, "{v}");
    assert!(v["errors"].is_array());
    // unknown mount
    let (st, v) = s.root("GET", "nosuchmount/data/x", None);
    assert_eq!(st, 404, "{v}");
    assert!(v["errors"].is_array());
    // path traversal (sent raw: HTTP client libraries normalise `..` away)
    for path in [
        "secret/data/a/../x",
        "secret/data/%2e%2e/x",
        "secret/data/a/%2E%2E/x",
        "secret/data/./x",
    ] {
        let (st, body) = s.raw_http("GET", path, "");
        assert_eq!(st, 400, "{path}: {body}");
        assert!(body.contains("\"errors\""), "{body}");
        let (st, _) = s.raw_http("POST", path, r#"{"data":{"v":"evil"}}"#);
        assert_eq!(st, 400, "{path}");
    }
    // wrong method
    let (st, _) = s.root("PATCH", "sys/mounts", None);
    assert!(st == 405 || st == 415, "{st}");

    let (_, v) = s.root("GET", "secret/data/x", None);
    assert_eq!(v["data"]["data"]["v"], "orig");
    assert_eq!(
        s.root("GET", "secret/metadata/x", None).1["data"]["current_version"],
        before
    );
}

#[test]
fn missing_or_invalid_token_is_403() {
    let s = dev();
    let (st, v) = s.req("GET", "secret/data/x", None, None);
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["errors"][0], "permission denied");
    let (st, _) = s.req("GET", "auth/token/lookup-self", Some("bogus"), None);
    assert_eq!(st, 403);
    // Bearer works like X-Vault-Token
    let r = s
        .client
        .get(format!("{}/v1/auth/token/lookup-self", s.addr))
        .header("Authorization", format!("Bearer {ROOT}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn mounts_enable_tune_disable() {
    let s = dev();
    let (st, v) = s.root(
        "POST",
        "sys/mounts/kv1",
        Some(json!({"type": "kv", "description": null, "config": null, "options": {"version": "1"}, "plugin_name": null, "local": false, "seal_wrap": false})),
    );
    assert_eq!(st, 204, "{v}");
    let (st, _) = s.root("POST", "kv1/foo", Some(json!({"a": "b"})));
    assert_eq!(st, 204);
    assert_eq!(s.root("GET", "kv1/foo", None).1["data"]["a"], "b");
    let (_, v) = s.root("GET", "sys/mounts", None);
    assert_eq!(v["data"]["kv1/"]["type"], "kv");
    assert_eq!(v["kv1/"]["type"], "kv");
    assert_eq!(v["data"]["secret/"]["options"]["version"], "2");
    let (st, _) = s.root(
        "POST",
        "sys/mounts/kv1/tune",
        Some(json!({"max_lease_ttl": "1h", "description": "tuned"})),
    );
    assert_eq!(st, 204);
    let (_, v) = s.root("GET", "sys/mounts/kv1/tune", None);
    assert_eq!(v["data"]["max_lease_ttl"], 3600);
    assert_eq!(v["data"]["description"], "tuned");
    // mounting over an existing path fails
    let (st, _) = s.root("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    assert_eq!(st, 400);
    let (st, _) = s.root("POST", "sys/mounts/bad", Some(json!({"type": "nope"})));
    assert_eq!(st, 400);
    let (st, _) = s.root("DELETE", "sys/mounts/kv1", None);
    assert_eq!(st, 204);
    let (st, _) = s.root("GET", "kv1/foo", None);
    assert_eq!(st, 404);
}

#[test]
fn any_token_may_ask_which_mount_serves_a_path() {
    let s = dev();
    s.policy(
        "app-ro",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }",
    );
    let t = s.token_with(&["app-ro"]);
    // a token with nothing under the mount does not learn about it
    let nothing = s.token_with(&["default"]);
    assert_eq!(
        s.req(
            "GET",
            "sys/internal/ui/mounts/secret/x",
            Some(&nothing),
            None
        )
        .0,
        403
    );
    // the user-facing path (without data/) works too: the token reaches something in the mount
    assert_eq!(
        s.req("GET", "sys/internal/ui/mounts/secret/app/x", Some(&t), None)
            .0,
        200
    );
    let (st, v) = s.req(
        "GET",
        "sys/internal/ui/mounts/secret/data/app/x",
        Some(&t),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["path"], "secret/");
    assert_eq!(v["data"]["type"], "kv");
    assert_eq!(v["data"]["options"]["version"], "2");
    assert_eq!(
        s.req("GET", "sys/internal/ui/mounts/secret/x", None, None)
            .0,
        403
    );
    assert_eq!(
        s.req(
            "GET",
            "sys/internal/ui/mounts/secret/x",
            Some("bogus"),
            None
        )
        .0,
        403
    );
    // the data itself stays behind the ACL
    assert_eq!(s.req("GET", "secret/data/other", Some(&t), None).0, 403);
}

/// A Vault client sees Vault's version pruning: with max_versions=1 only the latest version is
/// kept (the staging labels of the shared model stay out of secrets written only through Vault).
#[test]
fn max_versions_one_keeps_one_version() {
    let s = dev();
    let (st, _) = s.root(
        "POST",
        "secret/metadata/one",
        Some(serde_json::json!({"max_versions": 1})),
    );
    assert_eq!(st, 204);
    for v in ["a", "b", "c"] {
        let (st, _) = s.root(
            "POST",
            "secret/data/one",
            Some(serde_json::json!({"data": {"v": v}})),
        );
        assert_eq!(st, 200);
    }
    let (_, m) = s.root("GET", "secret/metadata/one", None);
    let versions = m["data"]["versions"].as_object().unwrap();
    assert_eq!(versions.keys().collect::<Vec<_>>(), vec!["3"], "{m}");
    assert_eq!(m["data"]["oldest_version"], 3);
}
