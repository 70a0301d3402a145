use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn token_lifecycle_and_children() {
    let s = dev();
    let (st, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["p1"], "ttl": "1h", "meta": {"app": "x"}, "display_name": "svc"})),
    );
    assert_eq!(st, 200, "{v}");
    let parent = v["auth"]["client_token"].as_str().unwrap().to_string();
    let accessor = v["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(v["auth"]["policies"], json!(["default", "p1"]));
    assert_eq!(v["auth"]["lease_duration"], 3600);

    let (st, v) = s.req("GET", "auth/token/lookup-self", Some(&parent), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["display_name"], "token-svc");
    assert_eq!(v["data"]["id"], parent);
    let (_, v) = s.root(
        "POST",
        "auth/token/lookup-accessor",
        Some(json!({"accessor": accessor})),
    );
    assert_eq!(v["data"]["id"], "");
    assert_eq!(v["data"]["meta"]["app"], "x");

    // a child of the parent (root creates it on the parent's behalf by using the parent's token)
    s.policy(
        "p1",
        "path \"auth/token/create\" { capabilities = [\"update\"] }",
    );
    let (st, v) = s.req(
        "POST",
        "auth/token/create",
        Some(&parent),
        Some(json!({"policies": ["p1"]})),
    );
    assert_eq!(st, 200, "{v}");
    let child = v["auth"]["client_token"].as_str().unwrap().to_string();
    // a child may not get policies its parent lacks
    let (st, _) = s.req(
        "POST",
        "auth/token/create",
        Some(&parent),
        Some(json!({"policies": ["other"]})),
    );
    assert_eq!(st, 400);

    let (st, v) = s.root(
        "POST",
        "auth/token/renew",
        Some(json!({"token": parent, "increment": "2h"})),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["auth"]["lease_duration"].as_u64().unwrap() > 3600);

    // revoking the parent revokes the child
    let (st, _) = s.root("POST", "auth/token/revoke", Some(json!({"token": parent})));
    assert_eq!(st, 204);
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&parent), None)
            .0,
        403
    );
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&child), None).0,
        403
    );
}

#[test]
fn orphan_revocation_and_accessor_revocation() {
    let s = dev();
    let parent = s.token_with(&["root"]);
    let (_, v) = s.req(
        "POST",
        "auth/token/create",
        Some(&parent),
        Some(json!({"policies": ["default"]})),
    );
    let child = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, _) = s.root(
        "POST",
        "auth/token/revoke-orphan",
        Some(json!({"token": parent})),
    );
    assert_eq!(st, 204);
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&parent), None)
            .0,
        403
    );
    let (st, v) = s.req("GET", "auth/token/lookup-self", Some(&child), None);
    assert_eq!(st, 200);
    assert_eq!(v["data"]["orphan"], true);
    let acc = v["data"]["accessor"].as_str().unwrap().to_string();
    let (st, _) = s.root(
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({"accessor": acc})),
    );
    assert_eq!(st, 204);
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&child), None).0,
        403
    );
}

#[test]
fn tokens_expire_and_use_limits() {
    let s = dev();
    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"ttl": "2s", "policies": ["default"]})),
    );
    let t = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&t), None).0,
        200
    );
    std::thread::sleep(Duration::from_millis(2600));
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&t), None).0,
        403
    );

    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"num_uses": 2, "policies": ["default"]})),
    );
    let t = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&t), None).0,
        200
    );
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&t), None).0,
        200
    );
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&t), None).0,
        403
    );
}

#[test]
fn token_roles() {
    let s = dev();
    let (st, _) = s.root(
        "POST",
        "auth/token/roles/web",
        Some(json!({"allowed_policies": ["web"], "orphan": true, "token_period": "1h"})),
    );
    assert_eq!(st, 204);
    let (st, v) = s.root("GET", "auth/token/roles/web", None);
    assert_eq!(st, 200);
    assert_eq!(v["data"]["allowed_policies"], json!(["web"]));
    let (st, v) = s.root("POST", "auth/token/create/web", Some(json!({})));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["auth"]["orphan"], true);
    assert_eq!(v["auth"]["policies"], json!(["default", "web"]));
    let (st, _) = s.root(
        "POST",
        "auth/token/create/web",
        Some(json!({"policies": ["admin"]})),
    );
    assert_eq!(st, 400);
    let (_, v) = s.root("LIST", "auth/token/roles", None);
    assert_eq!(v["data"]["keys"], json!(["web"]));
}

#[test]
fn concurrent_requests_never_spend_a_use_twice() {
    let s = dev();
    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"num_uses": 3, "policies": ["default"]})),
    );
    let t = v["auth"]["client_token"].as_str().unwrap().to_string();
    let addr = s.addr.clone();
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let (addr, t) = (addr.clone(), t.clone());
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .get(format!("{addr}/v1/auth/token/lookup-self"))
                    .header("X-Vault-Token", t)
                    .send()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 3, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 403), "{codes:?}");
    // the used-up token left no accessor or lease behind
    let (_, v) = s.root("LIST", "auth/token/accessors", None);
    assert_eq!(
        v["data"]["keys"].as_array().unwrap().len(),
        1,
        "only root's accessor: {v}"
    );
}

#[test]
fn privilege_rules_for_token_creation() {
    let s = dev();
    s.policy(
        "creator",
        "path \"auth/token/create*\" { capabilities = [\"update\"] }",
    );
    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["creator"]})),
    );
    let t = v["auth"]["client_token"].as_str().unwrap().to_string();
    // a role without allowed_policies keeps the parent-subset rule
    assert_eq!(
        s.root("POST", "auth/token/roles/open", Some(json!({}))).0,
        204
    );
    let (st, v) = s.req(
        "POST",
        "auth/token/create/open",
        Some(&t),
        Some(json!({"policies": ["admin"]})),
    );
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.req("POST", "auth/token/create/open", Some(&t), Some(json!({})));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["auth"]["policies"], json!(["creator", "default"]));
    // periodic tokens need root
    let (st, _) = s.req(
        "POST",
        "auth/token/create",
        Some(&t),
        Some(json!({"period": "1h"})),
    );
    assert_eq!(st, 400);
    assert_eq!(
        s.root("POST", "auth/token/create", Some(json!({"period": "1h"})))
            .0,
        200
    );
    // the wrapping policy is reserved
    assert_eq!(
        s.root(
            "PUT",
            "sys/policy/response-wrapping",
            Some(json!({"policy": ""}))
        )
        .0,
        400
    );
    assert_eq!(
        s.root(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["response-wrapping"]}))
        )
        .0,
        400
    );
    // auth methods are not mounted through sys/mounts
    assert_eq!(
        s.root(
            "POST",
            "sys/mounts/auth/sneaky",
            Some(json!({"type": "kv"}))
        )
        .0,
        400
    );
}
