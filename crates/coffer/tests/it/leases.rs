use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn wrapped(s: &Server, method: &str, path: &str, body: Option<Value>, ttl: &str) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = s
        .client
        .request(m, format!("{}/v1/{path}", s.addr))
        .header("X-Vault-Token", &s.token)
        .header("X-Vault-Wrap-TTL", ttl);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    decode(rb.send().unwrap())
}

#[test]
fn wrap_unwrap_lookup_single_use() {
    let s = dev();
    s.root(
        "POST",
        "secret/data/w",
        Some(json!({"data": {"pw": "wrapped-secret"}})),
    );
    let (st, v) = wrapped(&s, "GET", "secret/data/w", None, "60s");
    assert_eq!(st, 200, "{v}");
    assert!(v["data"].is_null(), "wrapped answers carry no data: {v}");
    let info = &v["wrap_info"];
    assert_eq!(info["ttl"], 60);
    assert_eq!(info["creation_path"], "secret/data/w");
    let wt = info["token"].as_str().unwrap().to_string();

    let (st, v) = s.req(
        "POST",
        "sys/wrapping/lookup",
        None,
        Some(json!({"token": wt})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["creation_path"], "secret/data/w");
    assert_eq!(v["data"]["creation_ttl"], 60);
    // unwrap with the wrapping token as the request token
    let (st, v) = s.req("POST", "sys/wrapping/unwrap", Some(&wt), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["data"]["pw"], "wrapped-secret");
    // single use
    let (st, v) = s.req("POST", "sys/wrapping/unwrap", Some(&wt), None);
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        s.req(
            "POST",
            "sys/wrapping/lookup",
            None,
            Some(json!({"token": wt}))
        )
        .0,
        400
    );

    // a wrapped token creation: the token is only in the wrap
    let (st, v) = wrapped(
        &s,
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"]})),
        "5m",
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["auth"].is_null());
    let wt = v["wrap_info"]["token"].as_str().unwrap().to_string();
    let wrapped_accessor = v["wrap_info"]["wrapped_accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = s.root("POST", "sys/wrapping/unwrap", Some(json!({"token": wt})));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["auth"]["accessor"], wrapped_accessor.as_str());
    let inner = v["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(inner), None).0,
        200
    );

    // rewrap gives a new token for the same content and kills the old one
    let (_, v) = s.root("POST", "sys/wrapping/wrap", Some(json!({"k": "v"})));
    assert!(
        v["errors"].is_array(),
        "wrap without a TTL header is refused: {v}"
    );
    let (st, v) = wrapped(
        &s,
        "POST",
        "sys/wrapping/wrap",
        Some(json!({"k": "v"})),
        "60",
    );
    assert_eq!(st, 200, "{v}");
    let first = v["wrap_info"]["token"].as_str().unwrap().to_string();
    let (st, v) = s.root("POST", "sys/wrapping/rewrap", Some(json!({"token": first})));
    assert_eq!(st, 200, "{v}");
    let second = v["wrap_info"]["token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        s.root("POST", "sys/wrapping/unwrap", Some(json!({"token": first})))
            .0,
        400
    );
    let (_, v) = s.root(
        "POST",
        "sys/wrapping/unwrap",
        Some(json!({"token": second})),
    );
    assert_eq!(v["data"]["k"], "v");
    // bad wrap TTLs change nothing
    assert_eq!(wrapped(&s, "GET", "secret/data/w", None, "soon").0, 400);
}

#[test]
fn cubbyholes_are_private_per_token() {
    let s = dev();
    let a = s.token_with(&["default"]);
    let b = s.token_with(&["default"]);
    let (st, v) = s.req(
        "POST",
        "cubbyhole/note",
        Some(&a),
        Some(json!({"msg": "for a only"})),
    );
    assert_eq!(st, 204, "{v}");
    let (st, v) = s.req("GET", "cubbyhole/note", Some(&a), None);
    assert_eq!((st, v["data"]["msg"].clone()), (200, json!("for a only")));
    assert_eq!(s.req("GET", "cubbyhole/note", Some(&b), None).0, 404);
    assert_eq!(
        s.root("GET", "cubbyhole/note", None).0,
        404,
        "not even root sees another's cubbyhole"
    );
    let (_, v) = s.req("LIST", "cubbyhole", Some(&a), None);
    assert_eq!(v["data"]["keys"], json!(["note"]));
    // destroyed with the token
    s.root("POST", "auth/token/revoke", Some(json!({"token": a})));
    let a2 = s.token_with(&["default"]);
    assert_eq!(s.req("GET", "cubbyhole/note", Some(&a2), None).0, 404);
}

#[test]
fn lease_lookup_renew_revoke_and_prefix() {
    let s = dev();
    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"], "ttl": "1h"})),
    );
    let t1 = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"], "ttl": "1h"})),
    );
    let t2 = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, v) = s.root("LIST", "sys/leases/lookup/auth/token/create", None);
    assert_eq!(st, 200, "{v}");
    let keys: Vec<String> = v["data"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    let lease = format!("auth/token/create/{}", keys[0]);
    let (st, v) = s.root("PUT", "sys/leases/lookup", Some(json!({"lease_id": lease})));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["id"], lease.as_str());
    assert!(v["data"]["ttl"].as_u64().unwrap() <= 3600);
    assert!(v["data"]["last_renewal"].is_null());
    // a token's lease is renewed through the token (as in Vault), which updates the lease
    let (st, v) = s.root(
        "PUT",
        "sys/leases/renew",
        Some(json!({"lease_id": lease, "increment": "2h"})),
    );
    assert_eq!(st, 400, "{v}");
    for t in [&t1, &t2] {
        let (st, v) = s.root(
            "POST",
            "auth/token/renew",
            Some(json!({"token": t, "increment": "2h"})),
        );
        assert_eq!(st, 200, "{v}");
        assert!(v["auth"]["lease_duration"].as_u64().unwrap() > 3600);
    }
    let (_, v) = s.root("PUT", "sys/leases/lookup", Some(json!({"lease_id": lease})));
    assert!(v["data"]["last_renewal"].is_string(), "{v}");
    assert!(v["data"]["ttl"].as_u64().unwrap() > 3600, "{v}");
    // a non-sudo token may not list leases
    let plain = s.token_with(&["default"]);
    assert_eq!(
        s.req(
            "LIST",
            "sys/leases/lookup/auth/token/create",
            Some(&plain),
            None
        )
        .0,
        403
    );
    // bad input
    assert_eq!(
        s.root(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": "../x"}))
        )
        .0,
        400
    );
    assert_eq!(s.root("PUT", "sys/leases/lookup", Some(json!({}))).0, 400);
    // revoke one lease → its token is revoked
    let (st, _) = s.root("PUT", "sys/leases/revoke", Some(json!({"lease_id": lease})));
    assert_eq!(st, 204);
    let alive: Vec<bool> = [&t1, &t2]
        .iter()
        .map(|t| s.req("GET", "auth/token/lookup-self", Some(t), None).0 == 200)
        .collect();
    assert_eq!(alive.iter().filter(|a| **a).count(), 1);
    // revoke-prefix takes the rest
    let (st, _) = s.root("PUT", "sys/leases/revoke-prefix/auth/token/create", None);
    assert_eq!(st, 204);
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&t1), None).0,
        403
    );
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&t2), None).0,
        403
    );
}

fn accessors(s: &Server) -> Vec<String> {
    let (_, v) = s.root("LIST", "auth/token/accessors", None);
    v["data"]["keys"]
        .as_array()
        .map(|a| a.iter().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Leases outlive a restart and are revoked on schedule by the expiration manager, without
/// anyone presenting the token again.
#[test]
fn leases_expire_on_schedule_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, seal) = static_seal_config(dir.path());
    let (short_acc, long_acc, root);
    {
        let mut s = with_config(dir.path(), &storage, &seal);
        root = s.init_static();
        let (_, v) = s.root(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"], "ttl": "4s"})),
        );
        short_acc = v["auth"]["accessor"].as_str().unwrap().to_string();
        let (_, v) = s.root(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"], "ttl": "1h"})),
        );
        long_acc = v["auth"]["accessor"].as_str().unwrap().to_string();
        assert!(accessors(&s).contains(&short_acc));
    }
    // restarted before the short lease ends
    let mut s = with_config(dir.path(), &storage, &seal);
    s.token = root;
    assert!(accessors(&s).contains(&short_acc), "not expired yet");
    let deadline = Instant::now() + Duration::from_secs(15);
    while accessors(&s).contains(&short_acc) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let now = accessors(&s);
    assert!(
        !now.contains(&short_acc),
        "the expired lease was not revoked on schedule"
    );
    assert!(now.contains(&long_acc), "the long lease must survive");
}
