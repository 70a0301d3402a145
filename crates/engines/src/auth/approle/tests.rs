//! AppRole driven through the `Engine` trait over an in-memory barrier.

use super::*;
use crate::auth::common::MAX_HMAC_INPUT;
use crate::auth::test_util::{call_engine, ip, mount_entry, Env};
use coffer_core::error::ErrorCode;
use coffer_core::request::Operation::{Create, Delete, List, Read, Update};
use serde_json::json;

async fn env_with(options: Value) -> Env<AppRoleEngine> {
    Env::new(
        AppRoleEngine::new(),
        mount_entry("auth/approle/", "approle", options),
    )
    .await
}

async fn env() -> Env<AppRoleEngine> {
    env_with(json!({})).await
}

/// Create role `name` with `params`; returns its role_id.
async fn role(e: &Env<AppRoleEngine>, name: &str, params: Value) -> String {
    e.done(Create, &format!("role/{name}"), params).await;
    let r = e.ok(Read, &format!("role/{name}/role-id"), json!({})).await;
    r["role_id"].as_str().unwrap().to_string()
}

/// Generate a secret ID; returns (secret_id, accessor).
async fn secret(e: &Env<AppRoleEngine>, name: &str, params: Value) -> (String, String) {
    let r = e
        .ok(Update, &format!("role/{name}/secret-id"), params)
        .await;
    (
        r["secret_id"].as_str().unwrap().to_string(),
        r["secret_id_accessor"].as_str().unwrap().to_string(),
    )
}

async fn login(
    e: &Env<AppRoleEngine>,
    role_id: &str,
    secret_id: &str,
) -> Result<coffer_core::request::LoginAuth> {
    e.login_from(
        "login",
        json!({"role_id": role_id, "secret_id": secret_id}),
        ip("127.0.0.1"),
    )
    .await
}

#[tokio::test]
async fn role_crud_and_defaults() {
    let e = env().await;
    assert_eq!(e.exists(Create, "role/web").await, Some(false));
    assert_eq!(e.exists(Update, "role/web/secret-id").await, None);
    e.err_is(List, "role", json!({}), ErrorCode::NotFound, "")
        .await;
    e.err_is(Read, "role/web", json!({}), ErrorCode::NotFound, "")
        .await;

    e.done(Create, "role/web", json!({})).await;
    assert_eq!(e.exists(Update, "role/web").await, Some(true));
    let r = e.ok(Read, "role/web", json!({})).await;
    assert_eq!(
        r,
        json!({
            "bind_secret_id": true,
            "local_secret_ids": false,
            "secret_id_bound_cidrs": [],
            "secret_id_num_uses": 0,
            "secret_id_ttl": 0,
            "token_bound_cidrs": [],
            "token_explicit_max_ttl": 0,
            "token_max_ttl": 0,
            "token_no_default_policy": false,
            "token_num_uses": 0,
            "token_period": 0,
            "token_policies": [],
            "token_type": "default",
            "token_ttl": 0,
        })
    );

    // update keeps what is not sent; role names are case-insensitive
    e.done(
        Update,
        "role/WEB",
        json!({"token_policies": "dev, ops", "token_ttl": "1h", "token_max_ttl": 7200,
               "secret_id_ttl": "10m", "secret_id_num_uses": 5, "token_num_uses": "2",
               "token_bound_cidrs": ["10.0.0.0/8"], "secret_id_bound_cidrs": "127.0.0.0/8",
               "token_no_default_policy": true, "token_explicit_max_ttl": "3h",
               "token_type": "service"}),
    )
    .await;
    e.done(Update, "role/web", json!({"token_period": "30m"}))
        .await;
    let r = e.ok(Read, "role/web", json!({})).await;
    assert_eq!(r["token_policies"], json!(["dev", "ops"]));
    assert_eq!(r["token_ttl"], json!(3600));
    assert_eq!(r["token_max_ttl"], json!(7200));
    assert_eq!(r["token_explicit_max_ttl"], json!(10800));
    assert_eq!(r["token_period"], json!(1800));
    assert_eq!(r["secret_id_ttl"], json!(600));
    assert_eq!(r["secret_id_num_uses"], json!(5));
    assert_eq!(r["token_num_uses"], json!(2));
    assert_eq!(r["token_type"], json!("service"));
    assert_eq!(r["token_no_default_policy"], json!(true));
    assert_eq!(r["token_bound_cidrs"], json!(["10.0.0.0/8"]));
    assert_eq!(r["secret_id_bound_cidrs"], json!(["127.0.0.0/8"]));
    assert!(r.get("policies").is_none() && r.get("period").is_none());

    // legacy fields are accepted and echoed back
    e.done(Update, "role/web", json!({"policies": "B,a", "period": 60}))
        .await;
    let r = e.ok(Read, "role/web", json!({})).await;
    assert_eq!(r["policies"], json!(["a", "b"]));
    assert_eq!(r["token_policies"], json!(["a", "b"]));
    assert_eq!(
        (r["period"].clone(), r["token_period"].clone()),
        (json!(60), json!(60))
    );

    // token_type backwards compatibility: adjusted with a warning
    let resp = e
        .done(Update, "role/web", json!({"token_type": "default-service"}))
        .await
        .expect("warning");
    assert_eq!(
        resp.warnings,
        vec!["default-service has no useful meaning; adjusting to service"]
    );

    e.done(Create, "role/api", json!({})).await;
    assert_eq!(
        e.ok(List, "role/", json!({})).await["keys"],
        json!(["api", "web"])
    );
    e.done(Delete, "role/web", json!({})).await;
    e.done(Delete, "role/web", json!({})).await; // idempotent
    e.err_is(Read, "role/web", json!({}), ErrorCode::NotFound, "")
        .await;
    assert_eq!(e.ok(List, "role", json!({})).await["keys"], json!(["api"]));

    // routes
    e.err_is(
        Read,
        "role/bad name",
        json!({}),
        ErrorCode::NotFound,
        "no handler for route \"auth/approle/role/bad name\". route entry not found.",
    )
    .await;
    e.err_is(
        Read,
        "login",
        json!({}),
        ErrorCode::UnsupportedOperation,
        "unsupported operation",
    )
    .await;
    assert!(e
        .engine
        .paths()
        .is_some_and(|t| t.flags("login").unauthenticated));
}

#[tokio::test]
async fn role_validation() {
    let e = env().await;
    e.err_is(
        Create,
        "role/x",
        json!({"bind_secret_id": false}),
        ErrorCode::InvalidRequest,
        NO_CONSTRAINT,
    )
    .await;
    e.done(
        Create,
        "role/x",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "10.0.0.0/8"}),
    )
    .await;
    e.err_is(
        Update,
        "role/x",
        json!({"secret_id_bound_cidrs": []}),
        ErrorCode::InvalidRequest,
        NO_CONSTRAINT,
    )
    .await;
    e.err_is(
        Update,
        "role/x",
        json!({"local_secret_ids": true}),
        ErrorCode::InvalidRequest,
        "local_secret_ids can only be modified during role creation",
    )
    .await;
    e.err_is(
        Create,
        "role/y",
        json!({"secret_id_num_uses": -1}),
        ErrorCode::InvalidRequest,
        "secret_id_num_uses cannot be negative",
    )
    .await;
    e.err_is(
        Create,
        "role/y",
        json!({"token_ttl": "2h", "token_max_ttl": "1h"}),
        ErrorCode::InvalidRequest,
        "'token_ttl' cannot be greater than 'token_max_ttl'",
    )
    .await;
    e.err_is(
        Create,
        "role/y",
        json!({"period": "800h"}),
        ErrorCode::InvalidRequest,
        "period of \"800h0m0s\" is greater than the backend's maximum lease TTL of \"768h0m0s\"",
    )
    .await;
    let resp = e
        .done(Create, "role/y", json!({"token_max_ttl": "800h"}))
        .await
        .expect("warning");
    assert_eq!(resp.warnings.len(), 1);
    e.done(Create, "role/z", json!({"local_secret_ids": true}))
        .await;
    assert_eq!(
        e.ok(Read, "role/z/local-secret-ids", json!({})).await,
        json!({"local_secret_ids": true})
    );
}

#[tokio::test]
async fn wrong_types_are_400_and_change_nothing() {
    let e = env().await;
    let rid = role(&e, "web", json!({"secret_id_num_uses": 3})).await;
    let before = e.dump().await;
    for (path, body) in [
        ("role/web", json!({"secret_id_num_uses": "abc"})),
        ("role/web", json!({"secret_id_num_uses": [1]})),
        ("role/web", json!({"bind_secret_id": "perhaps"})),
        ("role/web", json!({"token_policies": {"a": 1}})),
        ("role/web", json!({"token_ttl": {"h": 1}})),
        ("role/web", json!({"token_ttl": "10 parsecs"})),
        ("role/web", json!({"secret_id_bound_cidrs": "not-a-cidr"})),
        ("role/web", json!({"token_bound_cidrs": ["10.0.0.0/33"]})),
        ("role/web", json!({"role_id": ["x"]})),
        ("role/new", json!({"token_num_uses": -2})),
        ("role/web/role-id", json!({"role_id": {"a": "b"}})),
        ("role/web/role-id", json!({})),
        ("role/web/secret-id", json!({"num_uses": "x"})),
        ("role/web/secret-id", json!({"ttl": true})),
        ("role/web/secret-id", json!({"metadata": 5})),
        ("role/web/secret-id", json!({"metadata": "{\"a\": 1}"})),
        ("role/web/secret-id", json!({"metadata": "novalue"})),
        ("role/web/secret-id", json!({"cidr_list": [1.5]})),
        ("role/web/secret-id", json!({"cidr_list": "300.1.1.1"})),
        ("role/web/custom-secret-id", json!({"secret_id": ["a"]})),
        ("role/web/custom-secret-id", json!({})),
        ("role/web/secret-id/lookup", json!({"secret_id": {}})),
        ("role/web/token-ttl", json!({})),
        ("role/web/token-ttl", json!({"token_ttl": "x"})),
        ("login", json!({"role_id": [rid.clone()]})),
        (
            "login",
            json!({"role_id": rid.clone(), "secret_id": {"x": 1}}),
        ),
    ] {
        let err = e.err(Update, path, body.clone()).await;
        assert_eq!(
            err.code,
            ErrorCode::InvalidRequest,
            "{path} {body}: {err:?}"
        );
    }
    assert_eq!(e.dump().await, before, "a refused request changed storage");
}

#[tokio::test]
async fn role_id_read_custom_and_unique() {
    let e = env().await;
    let rid = role(&e, "a", json!({})).await;
    assert_eq!(rid.len(), 36, "a UUID");
    let (sid, _) = secret(&e, "a", json!({})).await;
    login(&e, &rid, &sid).await.unwrap();

    e.done(Update, "role/a/role-id", json!({"role_id": "my-app-id"}))
        .await;
    assert_eq!(
        e.ok(Read, "role/a/role-id", json!({})).await,
        json!({"role_id": "my-app-id"})
    );
    // the old role_id no longer logs in, the new one does
    let err = login(&e, &rid, &sid).await.unwrap_err();
    assert_eq!(err.message, INVALID_CREDENTIALS);
    login(&e, "my-app-id", &sid).await.unwrap();

    // role_ids are unique across roles
    e.done(Create, "role/b", json!({})).await;
    e.err_is(
        Update,
        "role/b/role-id",
        json!({"role_id": "my-app-id"}),
        ErrorCode::InvalidRequest,
        "role_id already in use",
    )
    .await;
    e.err_is(
        Create,
        "role/c",
        json!({"role_id": "my-app-id"}),
        ErrorCode::InvalidRequest,
        "role_id already in use",
    )
    .await;
    e.err_is(Read, "role/c", json!({}), ErrorCode::NotFound, "")
        .await;
    // setting the same value again is fine; a custom role_id at creation too
    e.done(Update, "role/a/role-id", json!({"role_id": "my-app-id"}))
        .await;
    e.done(Create, "role/c", json!({"role_id": "c-id"})).await;
    assert_eq!(
        e.ok(Read, "role/c/role-id", json!({})).await["role_id"],
        json!("c-id")
    );
    // deleting a role frees its role_id
    e.done(Delete, "role/a", json!({})).await;
    e.done(Update, "role/b/role-id", json!({"role_id": "my-app-id"}))
        .await;
    e.err_is(
        Read,
        "role/missing/role-id",
        json!({}),
        ErrorCode::NotFound,
        "",
    )
    .await;
    e.err_is(
        Update,
        "role/missing/role-id",
        json!({"role_id": "z"}),
        ErrorCode::NotFound,
        "",
    )
    .await;
}

#[tokio::test]
async fn secret_id_lifecycle() {
    let e = env().await;
    let rid = role(
        &e,
        "web",
        json!({"secret_id_num_uses": 10, "secret_id_ttl": "1h"}),
    )
    .await;
    e.err_is(
        List,
        "role/web/secret-id",
        json!({}),
        ErrorCode::NotFound,
        "",
    )
    .await;

    let r = e
        .ok(
            Update,
            "role/web/secret-id",
            json!({"metadata": "{\"team\": \"payments\"}", "cidr_list": "127.0.0.1/32,10.0.0.0/8",
                   "token_bound_cidrs": ["10.1.0.0/16"], "num_uses": 4, "ttl": "30m"}),
        )
        .await;
    let sid = r["secret_id"].as_str().unwrap().to_string();
    let acc = r["secret_id_accessor"].as_str().unwrap().to_string();
    assert_eq!(r["secret_id_ttl"], json!(1800));
    assert_eq!(r["secret_id_num_uses"], json!(4));
    assert_eq!(sid.len(), 36);
    assert_ne!(sid, acc);

    // defaults come from the role
    let (_, acc2) = secret(&e, "web", json!({})).await;
    let keys = e.ok(List, "role/web/secret-id/", json!({})).await["keys"].clone();
    let mut keys: Vec<String> = serde_json::from_value(keys).unwrap();
    keys.sort();
    let mut want = vec![acc.clone(), acc2.clone()];
    want.sort();
    assert_eq!(keys, want);

    let l = e
        .ok(
            Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": sid}),
        )
        .await;
    assert_eq!(l["secret_id_accessor"], json!(acc));
    assert_eq!(l["secret_id_num_uses"], json!(4));
    assert_eq!(l["secret_id_ttl"], json!(1800));
    assert_eq!(l["metadata"], json!({"team": "payments"}));
    assert_eq!(l["cidr_list"], json!(["127.0.0.1/32", "10.0.0.0/8"]));
    assert_eq!(l["token_bound_cidrs"], json!(["10.1.0.0/16"]));
    let created = util::parse_rfc3339(l["creation_time"].as_str().unwrap()).unwrap();
    let expires = util::parse_rfc3339(l["expiration_time"].as_str().unwrap()).unwrap();
    assert!((expires - created - 1800.0).abs() < 1.0);
    assert!(l["last_updated_time"].is_string());

    let la = e
        .ok(
            Update,
            "role/web/secret-id-accessor/lookup",
            json!({"secret_id_accessor": acc}),
        )
        .await;
    assert_eq!(la, l);

    // unknown secret: 204; unknown accessor: 404
    assert!(e
        .done(
            Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": "nope"})
        )
        .await
        .is_none());
    e.err_is(
        Update,
        "role/web/secret-id-accessor/lookup",
        json!({"secret_id_accessor": "nope"}),
        ErrorCode::NotFound,
        ACCESSOR_NOT_FOUND,
    )
    .await;
    e.err_is(
        Update,
        "role/nope/secret-id/lookup",
        json!({"secret_id": sid}),
        ErrorCode::InvalidRequest,
        "role \"nope\" does not exist",
    )
    .await;
    e.err_is(
        Update,
        "role/nope/secret-id",
        json!({}),
        ErrorCode::NotFound,
        "role \"nope\" does not exist",
    )
    .await;

    // an accessor of one role is not visible through another
    role(&e, "other", json!({})).await;
    e.err_is(
        Update,
        "role/other/secret-id-accessor/lookup",
        json!({"secret_id_accessor": acc}),
        ErrorCode::NotFound,
        ACCESSOR_NOT_FOUND,
    )
    .await;
    assert!(e
        .done(
            Update,
            "role/other/secret-id/lookup",
            json!({"secret_id": sid})
        )
        .await
        .is_none());

    // login works, then destroy by value and by accessor
    let auth = login(&e, &rid, &sid).await.unwrap();
    assert_eq!(auth.bound_cidrs, vec!["10.1.0.0/16"]);
    assert_eq!(auth.metadata["team"], json!("payments"));
    e.done(
        Update,
        "role/web/secret-id/destroy",
        json!({"secret_id": sid}),
    )
    .await;
    assert_eq!(
        login(&e, &rid, &sid).await.unwrap_err().message,
        INVALID_CREDENTIALS
    );
    e.done(
        Update,
        "role/web/secret-id/destroy",
        json!({"secret_id": sid}),
    )
    .await; // idempotent
    e.err_is(
        Update,
        "role/web/secret-id-accessor/lookup",
        json!({"secret_id_accessor": acc}),
        ErrorCode::NotFound,
        ACCESSOR_NOT_FOUND,
    )
    .await;
    e.done(
        Delete,
        "role/web/secret-id-accessor/destroy",
        json!({"secret_id_accessor": acc2}),
    )
    .await;
    e.err_is(
        Update,
        "role/web/secret-id-accessor/destroy",
        json!({"secret_id_accessor": acc2}),
        ErrorCode::NotFound,
        ACCESSOR_NOT_FOUND,
    )
    .await;
    e.err_is(
        List,
        "role/web/secret-id",
        json!({}),
        ErrorCode::NotFound,
        "",
    )
    .await;
    // nothing is left behind
    let keys: Vec<String> = e.dump().await.into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter()
            .all(|k| !k.starts_with("secret_id/") && !k.starts_with("accessor/")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn secret_id_limits_from_role() {
    let e = env().await;
    role(
        &e,
        "web",
        json!({"secret_id_num_uses": 3, "secret_id_ttl": "1h",
                           "secret_id_bound_cidrs": "10.0.0.0/8",
                           "token_bound_cidrs": "192.168.0.0/16"}),
    )
    .await;
    for (body, msg) in [
        (
            json!({"num_uses": 4}),
            "num_uses cannot be higher than the role's secret_id_num_uses",
        ),
        (
            json!({"num_uses": 0}),
            "num_uses cannot be higher than the role's secret_id_num_uses",
        ),
        (json!({"num_uses": -1}), "num_uses cannot be negative"),
        (
            json!({"ttl": "2h"}),
            "ttl cannot be longer than the role's secret_id_ttl",
        ),
        (
            json!({"ttl": 0}),
            "ttl cannot be longer than the role's secret_id_ttl",
        ),
        (
            json!({"cidr_list": "11.0.0.0/8"}),
            "failed to verify subset relationship between CIDR blocks on the role and CIDR blocks on the secret ID",
        ),
        (
            json!({"token_bound_cidrs": "10.0.0.0/8"}),
            "failed to verify subset relationship between token CIDR blocks on the role and token CIDR blocks on the secret ID",
        ),
    ] {
        e.err_is(Update, "role/web/secret-id", body, ErrorCode::InvalidRequest, msg).await;
    }
    let r = e
        .ok(
            Update,
            "role/web/secret-id",
            json!({"num_uses": 2, "ttl": 60, "cidr_list": "10.1.0.0/16"}),
        )
        .await;
    assert_eq!(
        (r["secret_id_num_uses"].clone(), r["secret_id_ttl"].clone()),
        (json!(2), json!(60))
    );

    // the mount's max lease TTL caps the secret ID TTL
    let mut e2 = env().await;
    e2.mount.config.max_lease_ttl = 120;
    role(&e2, "web", json!({"secret_id_ttl": "1h"})).await;
    let r = e2.ok(Update, "role/web/secret-id", json!({})).await;
    assert_eq!(r["secret_id_ttl"], json!(120));

    // bind_secret_id=false: no secret IDs
    e.done(
        Create,
        "role/open",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.1/32"}),
    )
    .await;
    e.err_is(
        Update,
        "role/open/secret-id",
        json!({}),
        ErrorCode::InvalidRequest,
        "bind_secret_id is not set on the role",
    )
    .await;
}

#[tokio::test]
async fn custom_secret_id() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let custom = "my-very-own-secret-id-123";
    let r = e
        .ok(
            Update,
            "role/web/custom-secret-id",
            json!({"secret_id": custom, "metadata": "env=prod,tier=web"}),
        )
        .await;
    assert_eq!(r["secret_id"], json!(custom));
    assert_eq!(r["secret_id_num_uses"], json!(0));
    e.err_is(
        Update,
        "role/web/custom-secret-id",
        json!({"secret_id": custom}),
        ErrorCode::InvalidRequest,
        "SecretID is already registered",
    )
    .await;
    let auth = login(&e, &rid, custom).await.unwrap();
    assert_eq!(
        Value::Object(auth.metadata),
        json!({"env": "prod", "tier": "web", "role_name": "web"})
    );
    e.assert_not_stored(custom).await;
}

#[tokio::test]
async fn login_returns_the_role_settings() {
    let e = env().await;
    let rid = role(
        &e,
        "web",
        json!({"token_policies": ["dev", "ops"], "token_ttl": "20m", "token_max_ttl": "1h",
               "token_explicit_max_ttl": "2h", "token_period": 0, "token_num_uses": 7,
               "token_bound_cidrs": "10.0.0.0/8, 127.0.0.1", "token_no_default_policy": true}),
    )
    .await;
    let (sid, _) = secret(&e, "web", json!({"metadata": "{\"app\": \"shop\"}"})).await;
    let auth = login(&e, &format!("  {rid} "), &sid).await.unwrap();
    assert_eq!(
        auth,
        coffer_core::request::LoginAuth {
            policies: vec!["dev".into(), "ops".into()],
            metadata: crate::auth::test_util::obj(json!({"app": "shop", "role_name": "web"})),
            display_name: "approle".into(),
            ttl: 1200,
            max_ttl: 3600,
            explicit_max_ttl: 7200,
            period: 0,
            num_uses: 7,
            renewable: true,
            bound_cidrs: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
            no_default_policy: true,
        }
    );

    // a mount elsewhere gives its own display name, as Vault derives it from the path
    let e2 = Env::new(
        AppRoleEngine::new(),
        mount_entry("auth/ci/", "approle", json!({})),
    )
    .await;
    let rid2 = role(&e2, "x", json!({})).await;
    let (sid2, _) = secret(&e2, "x", json!({})).await;
    assert_eq!(login(&e2, &rid2, &sid2).await.unwrap().display_name, "ci");
}

#[tokio::test]
async fn login_failures_are_vault_shaped() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let (sid, _) = secret(&e, "web", json!({"num_uses": 0})).await;
    let (sid_b, _) = {
        role(&e, "other", json!({})).await;
        secret(&e, "other", json!({})).await
    };
    e.err_is(
        Update,
        "login",
        json!({}),
        ErrorCode::InvalidRequest,
        "missing role_id",
    )
    .await;
    e.err_is(
        Update,
        "login",
        json!({"role_id": "  "}),
        ErrorCode::InvalidRequest,
        "missing role_id",
    )
    .await;
    e.err_is(
        Update,
        "login",
        json!({"role_id": rid}),
        ErrorCode::InvalidRequest,
        "missing secret_id",
    )
    .await;
    for (r, s) in [
        ("not-a-role-id", sid.as_str()),
        (rid.as_str(), "not-a-secret-id"),
        // a secret ID of another role
        (rid.as_str(), sid_b.as_str()),
    ] {
        let err = login(&e, r, s).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(err.message, INVALID_CREDENTIALS);
        assert!(!err.message.contains(s) && !format!("{err:?}").contains(s));
    }
    login(&e, &rid, &sid).await.unwrap();
}

#[tokio::test]
async fn num_uses_are_counted_and_exhausted() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let (sid, acc) = secret(&e, "web", json!({"num_uses": 2})).await;
    login(&e, &rid, &sid).await.unwrap();
    let l = e
        .ok(
            Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": sid}),
        )
        .await;
    assert_eq!(l["secret_id_num_uses"], json!(1));
    login(&e, &rid, &sid).await.unwrap();
    assert_eq!(
        login(&e, &rid, &sid).await.unwrap_err().message,
        INVALID_CREDENTIALS
    );
    // the exhausted secret ID and its accessor are gone
    e.err_is(
        Update,
        "role/web/secret-id-accessor/lookup",
        json!({"secret_id_accessor": acc}),
        ErrorCode::NotFound,
        ACCESSOR_NOT_FOUND,
    )
    .await;
    assert!(e
        .dump()
        .await
        .iter()
        .all(|(k, _)| !k.starts_with("secret_id/") && !k.starts_with("accessor/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_never_exceed_num_uses() {
    // lockout off: the 13 refused logins would lock the role_id out otherwise
    let e = env_with(json!({"user_lockout_config": {"lockout_disable": true}})).await;
    let rid = role(&e, "web", json!({})).await;
    let (sid, _) = secret(&e, "web", json!({"num_uses": 3})).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (engine, view, mount) = (e.engine.clone(), e.view.clone(), e.mount.clone());
        let body = json!({"role_id": rid, "secret_id": sid});
        tasks.push(tokio::spawn(async move {
            call_engine(
                engine.as_ref(),
                &view,
                &mount,
                Update,
                "login",
                body,
                ip("127.0.0.1"),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Some(r)) if r.login.is_some() => ok += 1,
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(err) => assert_eq!(err.message, INVALID_CREDENTIALS, "{err:?}"),
        }
    }
    assert_eq!(ok, 3, "exactly num_uses logins succeed");
    assert!(login(&e, &rid, &sid).await.is_err());
}

#[tokio::test]
async fn secret_id_ttl_expiry_and_tidy() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let (short, short_acc) = secret(&e, "web", json!({"ttl": 1})).await;
    let (long, _) = secret(&e, "web", json!({"ttl": "1h"})).await;
    let (forever, _) = secret(&e, "web", json!({})).await;
    let l = e
        .ok(
            Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": forever}),
        )
        .await;
    assert_eq!(l["expiration_time"], json!(ZERO_TIME));
    login(&e, &rid, &short).await.unwrap();

    e.engine.clock.advance(1.5);
    assert_eq!(
        login(&e, &rid, &short).await.unwrap_err().message,
        INVALID_CREDENTIALS
    );
    login(&e, &rid, &long).await.unwrap();
    login(&e, &rid, &forever).await.unwrap();
    // the expired one is still listed until tidy
    let before: Vec<String> =
        serde_json::from_value(e.ok(List, "role/web/secret-id", json!({})).await["keys"].clone())
            .unwrap();
    assert!(before.contains(&short_acc));

    let resp = e
        .call(Update, "tidy/secret-id", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(resp.accepted);
    assert_eq!(resp.warnings.len(), 1);
    assert!(resp.data.is_none());
    let after: Vec<String> =
        serde_json::from_value(e.ok(List, "role/web/secret-id", json!({})).await["keys"].clone())
            .unwrap();
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&short_acc));
    login(&e, &rid, &long).await.unwrap();

    // after an hour the other TTL'd one expires too
    e.engine.clock.advance(3600.0);
    assert!(login(&e, &rid, &long).await.is_err());
    login(&e, &rid, &forever).await.unwrap();
}

#[tokio::test]
async fn cidr_restrictions_refuse_and_consume_nothing() {
    let e = env().await;
    let rid = role(&e, "web", json!({"secret_id_bound_cidrs": "10.0.0.0/8"})).await;
    let (sid, _) = secret(
        &e,
        "web",
        json!({"cidr_list": "10.1.0.0/16", "num_uses": 2}),
    )
    .await;
    let body = json!({"role_id": rid, "secret_id": sid});

    // outside the secret ID's list (but inside the role's)
    let err = e
        .login_from("login", body.clone(), ip("10.2.0.1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        err.message,
        "source address \"10.2.0.1\" unauthorized through CIDR restrictions on the secret ID"
    );
    // outside both
    assert!(e
        .login_from("login", body.clone(), ip("192.168.1.1"))
        .await
        .is_err());
    // unknown address
    assert!(e.login_from("login", body.clone(), None).await.is_err());
    // nothing was consumed
    let l = e
        .ok(
            Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": sid}),
        )
        .await;
    assert_eq!(l["secret_id_num_uses"], json!(2));
    // and a CIDR refusal is no failed login for the lockout
    for _ in 0..5 {
        let err = e
            .login_from("login", body.clone(), ip("10.2.0.1"))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }
    assert!(e.view.list("lockout/").await.unwrap().is_empty());
    // IPv4-mapped IPv6 peers match IPv4 blocks
    e.login_from("login", body.clone(), ip("::ffff:10.1.2.3"))
        .await
        .unwrap();
    e.login_from("login", body, ip("10.1.2.3")).await.unwrap();

    // the role's list is checked at login even when the secret ID has none, and for roles
    // without secret IDs
    let (sid2, _) = secret(&e, "web", json!({})).await;
    let err = e
        .login_from(
            "login",
            json!({"role_id": rid, "secret_id": sid2}),
            ip("11.0.0.1"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "source address \"11.0.0.1\" unauthorized by CIDR restrictions on the role"
    );
    let open = role(
        &e,
        "open",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.0/8"}),
    )
    .await;
    e.login_from("login", json!({"role_id": open}), ip("127.0.0.9"))
        .await
        .unwrap();
    assert!(e
        .login_from("login", json!({"role_id": open}), ip("10.0.0.1"))
        .await
        .is_err());
    // a role bound only by token CIDRs logs in from anywhere; the token carries the binding
    let tok = role(
        &e,
        "tok",
        json!({"bind_secret_id": false, "token_bound_cidrs": "10.9.0.0/16"}),
    )
    .await;
    let auth = e
        .login_from("login", json!({"role_id": tok}), ip("8.8.8.8"))
        .await
        .unwrap();
    assert_eq!(auth.bound_cidrs, vec!["10.9.0.0/16"]);
}

#[tokio::test]
async fn secrets_are_stored_hashed() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let mut secrets = Vec::new();
    for i in 0..3 {
        let (sid, _accessor) = secret(&e, "web", json!({"num_uses": i + 2})).await;
        login(&e, &rid, &sid).await.unwrap();
        secrets.push(sid);
    }
    let custom = "custom-secret-id-do-not-store";
    e.ok(
        Update,
        "role/web/custom-secret-id",
        json!({"secret_id": custom}),
    )
    .await;
    secrets.push(custom.into());
    for s in &secrets {
        e.assert_not_stored(s).await;
    }
    // and the HMAC is keyed: a plain SHA-256 of the secret is not what is stored either
    let plain = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        custom.as_bytes(),
    ));
    e.assert_not_stored(&plain).await;
}

#[tokio::test]
async fn deleting_a_role_kills_its_secret_ids() {
    let e = env().await;
    let rid = role(&e, "web", json!({"role_id": "fixed-id"})).await;
    assert_eq!(rid, "fixed-id");
    let (sid, _) = secret(&e, "web", json!({})).await;
    e.done(Delete, "role/web", json!({})).await;
    assert!(login(&e, "fixed-id", &sid).await.is_err());
    assert!(e
        .dump()
        .await
        .iter()
        .all(|(k, _)| !k.starts_with("secret_id/") && !k.starts_with("accessor/")));
    // the same name and role_id again: the old secret ID stays dead
    role(&e, "web", json!({"role_id": "fixed-id"})).await;
    assert!(login(&e, "fixed-id", &sid).await.is_err());
}

#[tokio::test]
async fn field_endpoints() {
    let e = env().await;
    role(&e, "web", json!({"token_policies": "a"})).await;
    assert_eq!(
        e.ok(Read, "role/web/policies", json!({})).await,
        json!({"token_policies": ["a"]})
    );
    e.done(Update, "role/web/policies", json!({"policies": "x,y"}))
        .await;
    assert_eq!(
        e.ok(Read, "role/web/policies", json!({})).await,
        json!({"token_policies": ["x", "y"], "policies": ["x", "y"]})
    );
    e.done(Update, "role/web/token-ttl", json!({"token_ttl": "5m"}))
        .await;
    assert_eq!(
        e.ok(Read, "role/web/token-ttl", json!({})).await,
        json!({"token_ttl": 300})
    );
    e.done(
        Update,
        "role/web/secret-id-num-uses",
        json!({"secret_id_num_uses": 4}),
    )
    .await;
    e.done(Delete, "role/web/secret-id-num-uses", json!({}))
        .await;
    assert_eq!(
        e.ok(Read, "role/web/secret-id-num-uses", json!({})).await,
        json!({"secret_id_num_uses": 0})
    );
    // other fields in the body of a field endpoint are ignored
    e.done(
        Update,
        "role/web/token-max-ttl",
        json!({"token_max_ttl": "1h", "token_ttl": "9h"}),
    )
    .await;
    let r = e.ok(Read, "role/web", json!({})).await;
    assert_eq!(
        (r["token_ttl"].clone(), r["token_max_ttl"].clone()),
        (json!(300), json!(3600))
    );
    e.err_is(
        Update,
        "role/web/token-bound-cidrs",
        json!({}),
        ErrorCode::InvalidRequest,
        "missing token_bound_cidrs",
    )
    .await;
    // bind_secret_id cannot be turned off without another constraint
    e.err_is(
        Update,
        "role/web/bind-secret-id",
        json!({"bind_secret_id": false}),
        ErrorCode::InvalidRequest,
        NO_CONSTRAINT,
    )
    .await;
    e.err_is(
        Read,
        "role/nope/token-ttl",
        json!({}),
        ErrorCode::NotFound,
        "",
    )
    .await;
    e.err_is(
        Update,
        "role/web/local-secret-ids",
        json!({"local_secret_ids": true}),
        ErrorCode::UnsupportedOperation,
        "unsupported operation",
    )
    .await;
    e.err_is(
        Read,
        "role/web/unknown-field",
        json!({}),
        ErrorCode::NotFound,
        "no handler for route \"auth/approle/role/web/unknown-field\". route entry not found.",
    )
    .await;
}

#[tokio::test]
async fn hmac_key_is_created_once_and_reused() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let (sid, _) = secret(&e, "web", json!({})).await;
    let key1 = e.view.get("hmac_key").await.unwrap().unwrap().to_vec();
    // a fresh engine on the same storage (restart, another node) uses the stored key
    let other = Env {
        backend: e.backend.clone(),
        view: e.view.clone(),
        mount: e.mount.clone(),
        engine: Arc::new(AppRoleEngine::new()),
    };
    login(&other, &rid, &sid).await.unwrap();
    assert_eq!(
        e.view.get("hmac_key").await.unwrap().unwrap().to_vec(),
        key1
    );
}

#[tokio::test]
async fn factory_builds_an_engine() {
    let f = approle_factory();
    let engine = f(&mount_entry("auth/approle/", "approle", json!({}))).unwrap();
    assert!(engine
        .paths()
        .is_some_and(|t| t.flags("login").unauthenticated));
    assert!(format!("{:?}", AppRoleEngine::new()).starts_with("AppRoleEngine"));
}

/// The lockout records of the mount.
async fn lockout_keys(e: &Env<AppRoleEngine>) -> Vec<String> {
    e.view.list("lockout/").await.unwrap()
}

#[tokio::test]
async fn lockout_after_five_failures() {
    let e = env().await;
    let rid = role(&e, "web", json!({"role_id": "web-role-id-1"})).await;
    let (sid, _) = secret(&e, "web", json!({"num_uses": 5})).await;
    let other = role(&e, "other", json!({})).await;
    let (other_sid, _) = secret(&e, "other", json!({})).await;
    let wrong = |i: usize| format!("wrong-secret-{i}");
    let status = |r: Result<coffer_core::request::LoginAuth>| r.unwrap_err().code;

    for i in 0..4 {
        assert_eq!(
            status(login(&e, &rid, &wrong(i)).await),
            ErrorCode::InvalidRequest
        );
    }
    // a success resets the counter (and its record goes away)
    login(&e, &rid, &sid).await.unwrap();
    assert!(lockout_keys(&e).await.is_empty());
    for i in 0..4 {
        assert_eq!(
            status(login(&e, &rid, &wrong(i)).await),
            ErrorCode::InvalidRequest
        );
    }
    // a missing secret ID is no failed login (nor is a CIDR refusal: see the CIDR test)
    e.err_is(
        Update,
        "login",
        json!({"role_id": rid}),
        ErrorCode::InvalidRequest,
        "missing secret_id",
    )
    .await;
    let err = login(&e, &rid, &wrong(9)).await.unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::InvalidRequest, INVALID_CREDENTIALS)
    );

    // locked: even the right secret ID gets Vault's 403, and no use of it is spent
    let locked = login(&e, &rid, &sid).await.unwrap_err();
    assert_eq!(locked.code, ErrorCode::PermissionDenied);
    assert_eq!(locked.message, "permission denied");
    e.err_is(
        Update,
        "login",
        json!({"role_id": rid}),
        ErrorCode::PermissionDenied,
        "permission denied",
    )
    .await;
    let l = e
        .ok(
            Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": sid}),
        )
        .await;
    assert_eq!(l["secret_id_num_uses"], json!(4));
    // failures while locked do not extend the lockout
    assert_eq!(
        status(login(&e, &rid, &wrong(10)).await),
        ErrorCode::PermissionDenied
    );

    // other role_ids are not affected
    login(&e, &other, &other_sid).await.unwrap();
    // the record is keyed by the role_id's HMAC, never the role_id itself
    let keys = lockout_keys(&e).await;
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains("web-role-id-1"));

    // the state lives in storage: a new engine on the same storage sees it
    let twin = Env {
        backend: e.backend.clone(),
        view: e.view.clone(),
        mount: e.mount.clone(),
        engine: Arc::new(AppRoleEngine::new()),
    };
    assert_eq!(
        status(login(&twin, &rid, &sid).await),
        ErrorCode::PermissionDenied
    );

    // still locked after 14 minutes, free after 15
    e.engine.clock.advance(14.0 * 60.0);
    assert_eq!(
        status(login(&e, &rid, &sid).await),
        ErrorCode::PermissionDenied
    );
    e.engine.clock.advance(61.0);
    login(&e, &rid, &sid).await.unwrap();
    // and the count starts over
    for i in 0..4 {
        assert_eq!(
            status(login(&e, &rid, &wrong(i)).await),
            ErrorCode::InvalidRequest
        );
    }
    login(&e, &rid, &sid).await.unwrap();
}

#[tokio::test]
async fn lockout_counts_spent_and_expired_secret_ids_and_spread_failures_reset() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let (once, _) = secret(&e, "web", json!({"num_uses": 1})).await;
    let (short, _) = secret(&e, "web", json!({"ttl": "10s"})).await;
    let (sid, _) = secret(&e, "web", json!({})).await;
    login(&e, &rid, &once).await.unwrap();
    e.engine.clock.advance(11.0);
    assert!(login(&e, &rid, &once).await.is_err());
    assert!(login(&e, &rid, &short).await.is_err());
    let oversized = "x".repeat(MAX_HMAC_INPUT + 1);
    assert!(login(&e, &rid, &oversized).await.is_err());
    // three failures so far; more than 15 minutes later they no longer add up
    e.engine.clock.advance(15.0 * 60.0 + 1.0);
    for i in 0..4 {
        let err = login(&e, &rid, &format!("wrong-{i}")).await.unwrap_err();
        assert_eq!(err.message, INVALID_CREDENTIALS);
    }
    login(&e, &rid, &sid).await.unwrap();
    // with the three earlier ones they would have locked it
    assert!(login(&e, &rid, &once).await.is_err());
    assert!(login(&e, &rid, &short).await.is_err());
    assert!(login(&e, &rid, &oversized).await.is_err());
    assert!(login(&e, &rid, "wrong-a").await.is_err());
    assert!(login(&e, &rid, "wrong-b").await.is_err());
    assert_eq!(
        login(&e, &rid, &sid).await.unwrap_err().message,
        "permission denied"
    );
}

#[tokio::test]
async fn unknown_role_ids_are_not_counted_and_leave_no_state() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let (sid, _) = secret(&e, "web", json!({})).await;
    for i in 0..20 {
        e.err_is(
            Update,
            "login",
            json!({"role_id": format!("no-such-role-id-{}", i % 2), "secret_id": sid}),
            ErrorCode::InvalidRequest,
            INVALID_CREDENTIALS,
        )
        .await;
    }
    assert!(lockout_keys(&e).await.is_empty());
    login(&e, &rid, &sid).await.unwrap();
    // a deleted role's role_id is unknown again: 400, whatever its lockout state was
    for i in 0..5 {
        assert!(login(&e, &rid, &format!("wrong-{i}")).await.is_err());
    }
    assert_eq!(
        login(&e, &rid, &sid).await.unwrap_err().message,
        "permission denied"
    );
    e.done(Delete, "role/web", json!({})).await;
    e.err_is(
        Update,
        "login",
        json!({"role_id": rid, "secret_id": sid}),
        ErrorCode::InvalidRequest,
        INVALID_CREDENTIALS,
    )
    .await;
    // records with nothing left to remember are swept on a later failure
    role(&e, "other", json!({"role_id": "other-id"})).await;
    e.engine.clock.advance(31.0 * 60.0);
    assert!(login(&e, "other-id", "wrong").await.is_err());
    assert_eq!(
        lockout_keys(&e).await.len(),
        1,
        "only the new record is left"
    );
}

#[tokio::test]
async fn lockout_config_from_mount_options() {
    let e = env_with(json!({"user_lockout_config": {
        "lockout_threshold": "2", "lockout_duration": "1m", "lockout_counter_reset": "30s"}}))
    .await;
    let rid = role(&e, "web", json!({})).await;
    let (sid, _) = secret(&e, "web", json!({})).await;
    assert!(login(&e, &rid, "wrong").await.is_err());
    assert!(login(&e, &rid, "wrong").await.is_err());
    assert_eq!(
        login(&e, &rid, &sid).await.unwrap_err().message,
        "permission denied"
    );
    e.engine.clock.advance(61.0);
    login(&e, &rid, &sid).await.unwrap();

    // options are strings on a real mount: the config may come as JSON text
    let e = env_with(json!({"user_lockout_config": "{\"lockout_disable\": true}"})).await;
    let rid = role(&e, "web", json!({})).await;
    let (sid, _) = secret(&e, "web", json!({})).await;
    for _ in 0..7 {
        assert!(login(&e, &rid, "wrong").await.is_err());
    }
    login(&e, &rid, &sid).await.unwrap();
    assert!(lockout_keys(&e).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_are_all_counted() {
    let e = env().await;
    let rid = role(&e, "web", json!({})).await;
    let (sid, _) = secret(&e, "web", json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (engine, view, mount) = (e.engine.clone(), e.view.clone(), e.mount.clone());
        let body = json!({"role_id": rid, "secret_id": format!("wrong-{i}")});
        tasks.push(tokio::spawn(async move {
            call_engine(
                engine.as_ref(),
                &view,
                &mount,
                Update,
                "login",
                body,
                ip("127.0.0.1"),
            )
            .await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_err());
    }
    assert_eq!(
        login(&e, &rid, &sid).await.unwrap_err().message,
        "permission denied"
    );
}

#[tokio::test]
async fn renewal_needs_the_role() {
    use crate::auth::test_util::login_token;
    let e = env().await;
    let rid = role(&e, "web", json!({"token_policies": "dev"})).await;
    let (sid, _) = secret(&e, "web", json!({"metadata": {"team": "a"}})).await;
    let auth = login(&e, &rid, &sid).await.unwrap();
    let token = login_token(
        "auth/approle/login",
        Value::Object(auth.metadata.clone()),
        &["default", "dev"],
    );
    e.renew_check("login", Some(&token)).await.unwrap();
    // tokens whose login came from elsewhere, or no token at all: nothing to check
    e.renew_check("login", None).await.unwrap();
    // the role's settings may change; only its existence matters (as in Vault)
    e.done(Update, "role/web", json!({"token_policies": "other"}))
        .await;
    e.renew_check("login", Some(&token)).await.unwrap();

    e.done(Delete, "role/web", json!({})).await;
    let err = e.renew_check("login", Some(&token)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(err.message, "role \"web\" does not exist during renewal");

    let no_role = login_token("auth/approle/login", json!({"team": "a"}), &["default"]);
    let err = e.renew_check("login", Some(&no_role)).await.unwrap_err();
    assert_eq!(err.message, "failed to fetch role_name during renewal");
    let odd = login_token("auth/approle/login", json!({"role_name": "../x"}), &[]);
    assert!(e.renew_check("login", Some(&odd)).await.is_err());
}

/// The table's flags are Vault's: `login` is the one unauthenticated path (Vault's
/// `PathsSpecial.Unauthenticated`), nothing is root-protected, and only a role's own path has an
/// existence check (`pathRoleExistenceCheck`).
#[test]
fn path_flags_are_vaults() {
    assert!(PATHS.problems().is_empty(), "{:?}", PATHS.problems());
    let unauth: Vec<&str> = PATHS
        .entries()
        .iter()
        .filter(|e| e.flags.unauthenticated)
        .map(|e| e.pattern)
        .collect();
    assert_eq!(unauth, ["login"]);
    assert!(PATHS.entries().iter().all(|e| !e.flags.sudo));
    let checked: Vec<&str> = PATHS
        .entries()
        .iter()
        .filter(|e| e.flags.existence_check)
        .map(|e| e.pattern)
        .collect();
    assert_eq!(checked, ["role/{role_name}/?"]);
    // and on concrete paths
    assert!(PATHS.flags("login").unauthenticated);
    assert!(!PATHS.flags("login/").unauthenticated);
    assert!(!PATHS.flags("role/web").unauthenticated);
    assert!(PATHS.flags("role/web").existence_check);
    assert!(!PATHS.flags("role/web/secret-id").existence_check);
    assert!(!PATHS.flags("tidy/secret-id").sudo);
}
