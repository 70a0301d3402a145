//! userpass driven through the `Engine` trait over an in-memory barrier.

use super::*;
use crate::auth::test_util::{ip, mount_entry, obj, Env};
use coffer_core::error::ErrorCode;
use coffer_core::request::LoginAuth;
use coffer_core::request::Operation::{Create, Delete, List, Read, Update};
use serde_json::json;
use std::time::{Duration, Instant};

const PW: &str = "s3cret-Passw0rd!";

async fn env_with(options: Value) -> Env<UserpassEngine> {
    Env::new(
        UserpassEngine::new(),
        mount_entry("auth/userpass/", "userpass", options),
    )
    .await
}

async fn env() -> Env<UserpassEngine> {
    env_with(json!({})).await
}

async fn login(e: &Env<UserpassEngine>, user: &str, pw: &str) -> Result<LoginAuth> {
    e.login_from(
        &format!("login/{user}"),
        json!({"password": pw}),
        ip("127.0.0.1"),
    )
    .await
}

#[tokio::test]
async fn user_crud() {
    let e = env().await;
    assert_eq!(e.exists(Create, "users/bob").await, Some(false));
    e.err_is(List, "users", json!({}), ErrorCode::NotFound, "")
        .await;
    e.err_is(
        Create,
        "users/bob",
        json!({}),
        ErrorCode::InvalidRequest,
        "missing password",
    )
    .await;
    e.err_is(
        Create,
        "users/bob",
        json!({"password": ""}),
        ErrorCode::InvalidRequest,
        "missing password",
    )
    .await;
    e.done(
        Create,
        "users/Bob",
        json!({"password": PW, "token_policies": "dev,ops", "token_ttl": "1h",
               "token_bound_cidrs": "127.0.0.1/32", "token_num_uses": 5}),
    )
    .await;
    assert_eq!(e.exists(Update, "users/BOB").await, Some(true));
    let r = e.ok(Read, "users/bob", json!({})).await;
    assert_eq!(
        r,
        json!({
            "token_bound_cidrs": ["127.0.0.1/32"],
            "token_explicit_max_ttl": 0,
            "token_max_ttl": 0,
            "token_no_default_policy": false,
            "token_num_uses": 5,
            "token_period": 0,
            "token_policies": ["dev", "ops"],
            "token_type": "default",
            "token_ttl": 3600,
        }),
        "a read shows the settings and never the password or its hash"
    );
    // update without a password keeps it
    e.done(Update, "users/bob", json!({"token_max_ttl": "2h"}))
        .await;
    login(&e, "bob", PW).await.unwrap();
    // legacy fields
    e.done(
        Update,
        "users/bob",
        json!({"policies": "Admin", "ttl": 60, "max_ttl": "10m", "bound_cidrs": "127.0.0.0/8"}),
    )
    .await;
    let r = e.ok(Read, "users/bob", json!({})).await;
    assert_eq!(r["policies"], json!(["admin"]));
    assert_eq!(r["token_policies"], json!(["admin"]));
    assert_eq!(
        (r["ttl"].clone(), r["token_ttl"].clone()),
        (json!(60), json!(60))
    );
    assert_eq!(
        (r["max_ttl"].clone(), r["token_max_ttl"].clone()),
        (json!(600), json!(600))
    );
    assert_eq!(r["bound_cidrs"], json!(["127.0.0.0/8"]));

    e.done(Create, "users/alice", json!({"password": "another-pass"}))
        .await;
    assert_eq!(
        e.ok(List, "users/", json!({})).await["keys"],
        json!(["alice", "bob"])
    );

    // policies endpoint
    e.done(
        Update,
        "users/alice/policies",
        json!({"token_policies": "B, a"}),
    )
    .await;
    assert_eq!(
        e.ok(Read, "users/alice", json!({})).await["token_policies"],
        json!(["a", "b"])
    );
    e.err_is(
        Update,
        "users/nobody/policies",
        json!({"token_policies": "a"}),
        ErrorCode::InvalidRequest,
        "username does not exist",
    )
    .await;

    // password endpoint
    e.done(
        Update,
        "users/alice/password",
        json!({"password": "new-pass-1"}),
    )
    .await;
    assert!(login(&e, "alice", "another-pass").await.is_err());
    login(&e, "alice", "new-pass-1").await.unwrap();
    e.err_is(
        Update,
        "users/alice/password",
        json!({}),
        ErrorCode::InvalidRequest,
        "missing password",
    )
    .await;
    e.err_is(
        Update,
        "users/nobody/password",
        json!({"password": "x"}),
        ErrorCode::InvalidRequest,
        "username does not exist",
    )
    .await;

    e.done(Delete, "users/alice", json!({})).await;
    e.err_is(Read, "users/alice", json!({}), ErrorCode::NotFound, "")
        .await;
    assert!(login(&e, "alice", "new-pass-1").await.is_err());
    assert_eq!(e.ok(List, "users", json!({})).await["keys"], json!(["bob"]));

    // routes
    e.err_is(
        Read,
        "users/bob/password",
        json!({}),
        ErrorCode::UnsupportedOperation,
        "unsupported operation",
    )
    .await;
    e.err_is(
        Read,
        "users/-bad",
        json!({}),
        ErrorCode::NotFound,
        "no handler for route \"auth/userpass/users/-bad\". route entry not found.",
    )
    .await;
    e.err_is(
        Read,
        "login/bob",
        json!({}),
        ErrorCode::UnsupportedOperation,
        "unsupported operation",
    )
    .await;
    assert!(e
        .engine
        .paths()
        .is_some_and(|t| t.flags("login/bob").unauthenticated));
}

#[tokio::test]
async fn login_success() {
    let e = env().await;
    e.done(
        Create,
        "users/Mary",
        json!({"password": PW, "token_policies": ["admins"], "token_ttl": "20m",
               "token_max_ttl": "1h", "token_period": "0", "token_explicit_max_ttl": 7200,
               "token_num_uses": 3, "token_bound_cidrs": ["127.0.0.0/8"],
               "token_no_default_policy": true}),
    )
    .await;
    let auth = login(&e, "MARY", PW).await.unwrap();
    assert_eq!(
        auth,
        LoginAuth {
            policies: vec!["admins".into()],
            metadata: obj(json!({"username": "mary"})),
            display_name: "userpass-mary".into(),
            ttl: 1200,
            max_ttl: 3600,
            explicit_max_ttl: 7200,
            period: 0,
            num_uses: 3,
            renewable: true,
            bound_cidrs: vec!["127.0.0.0/8".into()],
            no_default_policy: true,
        }
    );
    // token_bound_cidrs are enforced at login too, as Vault does (403)
    let err = e
        .login_from("login/mary", json!({"password": PW}), ip("10.0.0.1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::PermissionDenied);
    // wrong types
    let err = e
        .login_from("login/mary", json!({"password": ["x"]}), ip("127.0.0.1"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    e.err_is(
        Update,
        "login/mary",
        json!({}),
        ErrorCode::InvalidRequest,
        "missing password",
    )
    .await;
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let e = env().await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    let wrong = login(&e, "bob", "not-the-password").await.unwrap_err();
    let unknown = login(&e, "nobody", "not-the-password").await.unwrap_err();
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.code, ErrorCode::InvalidRequest);
    assert_eq!(wrong.message, "invalid username or password");
    assert!(!format!("{wrong:?}").contains("not-the-password"));

    // both cost exactly one Argon2 verification (against a dummy hash for the unknown user)
    let count = || {
        e.engine
            .verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let n = count();
    let _ = login(&e, "bob", "again-wrong").await;
    assert_eq!(count(), n + 1);
    let _ = login(&e, "nobody", "again-wrong").await;
    assert_eq!(count(), n + 2);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_take_similar_time() {
    // lockout off, so that every attempt runs the full check
    let e = env_with(json!({"user_lockout_config": {"lockout_disable": true}})).await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    let _ = login(&e, "warm-up", "x").await; // builds the dummy hash once
    let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
    // interleaved, fastest of each: robust against other tests loading the machine; without
    // the dummy hash an unknown user would answer about a thousand times faster
    for _ in 0..5 {
        let t = Instant::now();
        let _ = login(&e, "bob", "not-the-password").await;
        known = known.min(t.elapsed());
        let t = Instant::now();
        let _ = login(&e, "nobody", "not-the-password").await;
        unknown = unknown.min(t.elapsed());
    }
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (0.05..20.0).contains(&ratio),
        "known {known:?} vs unknown {unknown:?}"
    );
}

#[tokio::test]
async fn lockout_after_five_failures() {
    let e = env().await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    for _ in 0..4 {
        assert_eq!(
            login(&e, "bob", "wrong").await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
    // a success resets the counter
    login(&e, "bob", PW).await.unwrap();
    assert!(e.view.get("lockout/bob").await.unwrap().is_none());
    for _ in 0..5 {
        assert_eq!(
            login(&e, "bob", "wrong").await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
    // locked: even the right password is refused, with Vault's 403
    let locked = login(&e, "bob", PW).await.unwrap_err();
    assert_eq!(locked.code, ErrorCode::PermissionDenied);
    assert_eq!(locked.message, "permission denied");
    // the state lives in storage: a new engine on the same storage sees it
    let other = Env {
        backend: e.backend.clone(),
        view: e.view.clone(),
        mount: e.mount.clone(),
        engine: Arc::new(UserpassEngine::new()),
    };
    assert_eq!(
        login(&other, "bob", PW).await.unwrap_err().code,
        ErrorCode::PermissionDenied
    );
    // still locked after 14 minutes, free after 15
    e.engine.clock.advance(14.0 * 60.0);
    assert!(login(&e, "bob", PW).await.is_err());
    e.engine.clock.advance(61.0);
    login(&e, "bob", PW).await.unwrap();
    // after the lockout the counter starts over
    for _ in 0..4 {
        assert_eq!(
            login(&e, "bob", "wrong").await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
    login(&e, "bob", PW).await.unwrap();
}

#[tokio::test]
async fn failures_spread_over_the_reset_window_do_not_lock() {
    let e = env().await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    for _ in 0..4 {
        assert!(login(&e, "bob", "wrong").await.is_err());
    }
    e.engine.clock.advance(15.0 * 60.0 + 1.0);
    for _ in 0..4 {
        assert_eq!(
            login(&e, "bob", "wrong").await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
    login(&e, "bob", PW).await.unwrap();
}

#[tokio::test]
async fn unknown_users_are_locked_out_the_same_way() {
    let e = env().await;
    for _ in 0..5 {
        let err = login(&e, "ghost", "guess").await.unwrap_err();
        assert_eq!(err.message, "invalid username or password");
    }
    assert_eq!(
        login(&e, "ghost", "guess").await.unwrap_err().code,
        ErrorCode::PermissionDenied
    );
    // failures of names that do not exist are kept in memory only: nothing durable is written
    assert!(e.view.list("lockout/").await.unwrap().is_empty());
    assert!(login(&e, "someone-else", "x").await.is_err());
    assert!(e.view.list("lockout/").await.unwrap().is_empty());
    // ... and run out like any other lockout
    e.engine.clock.advance(16.0 * 60.0);
    assert_eq!(
        login(&e, "ghost", "guess").await.unwrap_err().message,
        "invalid username or password"
    );
}

/// Concurrent logins cannot check more passwords than the threshold: the attempt is reserved
/// before the password is hashed, so of 40 simultaneous wrong guesses at most 5 are checked and
/// the rest are refused with 403 without a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_never_check_more_than_the_threshold() {
    let e = std::sync::Arc::new(env().await);
    e.done(Create, "users/bob", json!({"password": PW})).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            login(&e, "bob", &format!("guess-{i}")).await
        }));
    }
    let (mut checked, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => panic!("a wrong password logged in"),
            Err(err) if err.code == ErrorCode::PermissionDenied => refused += 1,
            Err(err) => {
                assert_eq!(err.message, "invalid username or password");
                checked += 1
            }
        }
    }
    assert!(checked <= 5, "{checked} passwords checked");
    assert_eq!(checked + refused, 40);
    // locked: the right password is refused too
    assert_eq!(
        login(&e, "bob", PW).await.unwrap_err().code,
        ErrorCode::PermissionDenied
    );
    // nothing is left reserved: once the lockout runs out, a login is checked again
    e.engine.clock.advance(16.0 * 60.0);
    login(&e, "bob", PW).await.unwrap();
    assert_eq!(e.engine.lockout.tracked(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_are_all_counted() {
    let e = env().await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (engine, view, mount) = (e.engine.clone(), e.view.clone(), e.mount.clone());
        tasks.push(tokio::spawn(async move {
            crate::auth::test_util::call_engine(
                engine.as_ref(),
                &view,
                &mount,
                Update,
                "login/bob",
                json!({"password": "wrong"}),
                ip("127.0.0.1"),
            )
            .await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_err());
    }
    assert_eq!(
        login(&e, "bob", PW).await.unwrap_err().code,
        ErrorCode::PermissionDenied
    );
}

#[tokio::test]
async fn lockout_config_from_mount_options() {
    let e = env_with(json!({"user_lockout_config": {
        "lockout_threshold": "2", "lockout_duration": "1m", "lockout_counter_reset": "30s"}}))
    .await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    assert!(login(&e, "bob", "wrong").await.is_err());
    assert!(login(&e, "bob", "wrong").await.is_err());
    assert_eq!(
        login(&e, "bob", PW).await.unwrap_err().code,
        ErrorCode::PermissionDenied
    );
    e.engine.clock.advance(61.0);
    login(&e, "bob", PW).await.unwrap();

    let e = env_with(json!({"user_lockout_config": {"lockout_disable": true}})).await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    for _ in 0..7 {
        assert!(login(&e, "bob", "wrong").await.is_err());
    }
    login(&e, "bob", PW).await.unwrap();
    assert!(e.view.list("lockout/").await.unwrap().is_empty());

    let cfg = LockoutConfig::from_mount(&mount_entry(
        "auth/userpass/",
        "userpass",
        json!({"user_lockout_config": {"lockout_threshold": "many"}}),
    ));
    assert_eq!(cfg, LockoutConfig::default());
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_only() {
    let e = env().await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    e.done(
        Update,
        "users/bob/password",
        json!({"password": "second-Passw0rd"}),
    )
    .await;
    e.done(Create, "users/carol", json!({"password": "third-Passw0rd"}))
        .await;
    let _ = login(&e, "bob", PW).await;
    let _ = login(&e, "nobody", "fourth-Passw0rd").await;
    for pw in [PW, "second-Passw0rd", "third-Passw0rd", "fourth-Passw0rd"] {
        e.assert_not_stored(pw).await;
    }
    let stored: Value =
        serde_json::from_slice(&e.view.get("user/bob").await.unwrap().unwrap()).unwrap();
    let hash = stored["password_hash"].as_str().unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[tokio::test]
async fn wrong_types_are_400_and_change_nothing() {
    let e = env().await;
    e.done(Create, "users/bob", json!({"password": PW})).await;
    let before = e.dump().await;
    for (path, body) in [
        ("users/bob", json!({"password": {"a": 1}})),
        ("users/bob", json!({"password": ""})),
        ("users/bob", json!({"token_ttl": [1]})),
        ("users/bob", json!({"token_num_uses": "many"})),
        ("users/bob", json!({"token_bound_cidrs": "999.0.0.0/8"})),
        ("users/bob", json!({"token_policies": 5.5, "password": "x"})),
        ("users/bob", json!({"bound_cidrs": "nope"})),
        (
            "users/new",
            json!({"password": "x", "token_no_default_policy": "sometimes"}),
        ),
        ("users/bob/password", json!({"password": true})),
        ("users/bob/policies", json!({"token_policies": {"x": 1}})),
    ] {
        let err = e.err(Update, path, body.clone()).await;
        assert_eq!(
            err.code,
            ErrorCode::InvalidRequest,
            "{path} {body}: {err:?}"
        );
    }
    assert_eq!(e.dump().await, before, "a refused request changed storage");
    login(&e, "bob", PW).await.unwrap();
}

#[tokio::test]
async fn factory_builds_an_engine() {
    let f = userpass_factory();
    let engine = f(&mount_entry("auth/userpass/", "userpass", json!({}))).unwrap();
    assert!(engine
        .paths()
        .is_some_and(|t| t.flags("login/bob").unauthenticated));
    assert!(format!("{:?}", UserpassEngine::new()).starts_with("UserpassEngine"));
}

#[tokio::test]
async fn renewal_needs_the_user_and_its_policies() {
    use crate::auth::test_util::login_token;
    let e = env().await;
    e.done(
        Create,
        "users/bob",
        json!({"password": PW, "token_policies": "dev,ops"}),
    )
    .await;
    let auth = login(&e, "bob", PW).await.unwrap();
    // the core adds `default` to the token's policies
    let token = login_token(
        "auth/userpass/login/bob",
        Value::Object(auth.metadata.clone()),
        &["default", "dev", "ops"],
    );
    e.renew_check("login/bob", Some(&token)).await.unwrap();
    e.renew_check("login/bob", None).await.unwrap();
    // other changes to the user do not matter, nor does the order or `default`
    e.done(
        Update,
        "users/bob",
        json!({"token_ttl": "5m", "token_policies": ["ops", "default", "dev"]}),
    )
    .await;
    e.renew_check("login/bob", Some(&token)).await.unwrap();
    e.done(
        Update,
        "users/bob/password",
        json!({"password": "new-Passw0rd"}),
    )
    .await;
    e.renew_check("login/bob", Some(&token)).await.unwrap();

    // a policy more or less: refused, with Vault's message
    for policies in [json!(["dev"]), json!(["dev", "ops", "admin"])] {
        e.done(
            Update,
            "users/bob/policies",
            json!({"token_policies": policies}),
        )
        .await;
        let err = e.renew_check("login/bob", Some(&token)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(err.message, "policies have changed, not renewing");
    }
    e.done(
        Update,
        "users/bob/policies",
        json!({"token_policies": "dev,ops"}),
    )
    .await;
    e.renew_check("login/bob", Some(&token)).await.unwrap();

    // a user without policies: its token has only `default`
    e.done(Create, "users/carol", json!({"password": PW})).await;
    let carol = login_token(
        "auth/userpass/login/carol",
        json!({"username": "carol"}),
        &["default"],
    );
    e.renew_check("login/carol", Some(&carol)).await.unwrap();

    // the user is gone: no renewal
    e.done(Delete, "users/bob", json!({})).await;
    let err = e.renew_check("login/bob", Some(&token)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(err.message, "user no longer exists, not renewing");
    // without metadata the login path names the user
    let bare = login_token("auth/userpass/login/carol", json!({}), &["default"]);
    e.renew_check("login/carol", Some(&bare)).await.unwrap();
    e.done(Delete, "users/carol", json!({})).await;
    assert!(e.renew_check("login/carol", Some(&bare)).await.is_err());
    assert!(e.renew_check("", Some(&bare)).await.is_err());
}

/// The table's flags are Vault's: `login/*` is unauthenticated (Vault's
/// `PathsSpecial.Unauthenticated`, a prefix), nothing is root-protected, and only a user's own
/// path has an existence check (`userExistenceCheck`).
#[test]
fn path_flags_are_vaults() {
    assert!(PATHS.problems().is_empty(), "{:?}", PATHS.problems());
    for p in ["login/bob", "login/", "login/a/b"] {
        assert!(PATHS.flags(p).unauthenticated, "{p}");
    }
    for p in ["login", "users/bob", "users/bob/password", "users/"] {
        assert!(!PATHS.flags(p).unauthenticated, "{p}");
    }
    assert!(PATHS.entries().iter().all(|e| !e.flags.sudo));
    assert!(PATHS.flags("users/bob").existence_check);
    assert!(!PATHS.flags("users/bob/password").existence_check);
    assert!(!PATHS.flags("login/bob").existence_check);
}
