use crate::common::*;
use serde_json::json;

/// `user_lockout_config` given through `sys/auth/<path>/tune` reaches the auth method.
#[test]
fn lockout_threshold_is_tunable() {
    let s = dev();
    assert_eq!(
        s.root(
            "POST",
            "sys/auth/userpass",
            Some(json!({"type": "userpass"}))
        )
        .0,
        204
    );
    let (st, v) = s.root(
        "POST",
        "sys/auth/userpass/tune",
        Some(json!({"user_lockout_config": {"lockout_threshold": "2", "lockout_duration": "10m"}})),
    );
    assert_eq!(st, 204, "{v}");
    assert_eq!(
        s.root(
            "POST",
            "auth/userpass/users/ann",
            Some(json!({"password": "right-pw", "token_policies": ["default"]}))
        )
        .0,
        204
    );
    let login = |pw: &str| {
        s.req(
            "POST",
            "auth/userpass/login/ann",
            None,
            Some(json!({"password": pw})),
        )
        .0
    };
    assert_eq!(login("right-pw"), 200);
    assert_eq!(login("wrong"), 400);
    assert_eq!(login("wrong"), 400);
    // two failures lock the user now (the default would have needed five)
    assert_eq!(login("right-pw"), 403);
    // a bad lockout config changes nothing
    let (st, _) = s.root(
        "POST",
        "sys/auth/userpass/tune",
        Some(json!({"user_lockout_config": 5})),
    );
    assert_eq!(st, 400);
}

/// AppRole end to end over HTTP: the login token carries the role's policies and works.
#[test]
fn approle_login_issues_a_working_token() {
    let s = dev();
    s.root("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    s.policy(
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }",
    );
    s.root(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"password": "pw"}})),
    );
    let (st, v) = s.root(
        "POST",
        "auth/approle/role/web",
        Some(json!({"token_policies": ["app"], "token_ttl": "1h", "secret_id_num_uses": 1})),
    );
    assert_eq!(st, 204, "{v}");
    let role_id = s.root("GET", "auth/approle/role/web/role-id", None).1["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = s.root("POST", "auth/approle/role/web/secret-id", None).1["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = s.req(
        "POST",
        "auth/approle/login",
        None,
        Some(json!({"role_id": role_id, "secret_id": secret_id})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["auth"]["policies"], json!(["app", "default"]));
    assert_eq!(v["auth"]["lease_duration"], 3600);
    let token = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        s.req("GET", "secret/data/app/db", Some(&token), None).1["data"]["data"]["password"],
        "pw"
    );
    assert_eq!(
        s.req(
            "POST",
            "secret/data/app/db",
            Some(&token),
            Some(json!({"data": {"x": "y"}}))
        )
        .0,
        403
    );
    // the secret id was single use
    let (st, _) = s.req(
        "POST",
        "auth/approle/login",
        None,
        Some(json!({"role_id": role_id, "secret_id": secret_id})),
    );
    assert_eq!(st, 400);
    // its lease lives under the login path, and disabling the method revokes the token
    let (_, v) = s.root("LIST", "sys/leases/lookup/auth/approle/login", None);
    assert_eq!(
        v["data"]["keys"].as_array().map(|k| k.len()),
        Some(1),
        "{v}"
    );
    assert_eq!(s.root("DELETE", "sys/auth/approle", None).0, 204);
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&token), None).0,
        403
    );
}
