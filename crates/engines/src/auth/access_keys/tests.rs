//! aws-access-keys driven through the `Engine` trait over an in-memory barrier.

use super::*;
use crate::auth::test_util::{mount_entry, Env};
use coffer_core::error::ErrorCode;
use coffer_core::request::Operation::{Create, Delete, List, Read, Update};
use coffer_core::request::SigningScope;
use serde_json::json;

async fn env() -> Env<AccessKeysEngine> {
    Env::new(
        AccessKeysEngine::new(),
        mount_entry("auth/aws-keys/", MOUNT_TYPE, json!({})),
    )
    .await
}

const STS: &str = "AWS4-HMAC-SHA256\n20261201T120000Z\n20261201/us-east-1/secretsmanager/\
                   aws4_request\n0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A proof for `STS` signed with `secret`.
fn proof(id: &str, secret: &str) -> SignedProof {
    SignedProof {
        access_key_id: id.into(),
        string_to_sign: STS.into(),
        signature: coffer_core::sigv4::sign(
            secret.as_bytes(),
            "20261201",
            "us-east-1",
            "secretsmanager",
            STS,
        ),
        scope: SigningScope {
            date: "20261201".into(),
            region: "us-east-1".into(),
            service: "secretsmanager".into(),
        },
        security_token: None,
    }
}

async fn resolve(e: &Env<AccessKeysEngine>, p: &SignedProof) -> Result<Option<SignedIdentity>> {
    e.engine.resolve_signed(&e.view, p).await
}

fn pair(v: &Value) -> (String, String) {
    (
        v["access_key_id"].as_str().unwrap().to_string(),
        v["secret_access_key"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn create_read_list_delete() {
    let e = env().await;
    e.err_is(List, "keys", json!({}), ErrorCode::NotFound, "")
        .await;
    assert_eq!(e.exists(Create, "keys/ci").await, Some(false));
    let created = e.ok(Create, "keys/CI", json!({"policies": "b,a"})).await;
    let (id, secret) = pair(&created);
    assert_eq!(id.len(), 20);
    assert!(id.starts_with("AKIA"));
    assert!(id[4..]
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    assert_eq!(secret.len(), 40);
    assert_eq!(created["policies"], json!(["a", "b"]));
    assert_eq!(e.exists(Update, "keys/ci").await, Some(true));

    // a read shows the id, policies and dates, never the secret
    let read = e.ok(Read, "keys/ci", json!({})).await;
    assert_eq!(read["access_key_id"], json!(id));
    assert_eq!(read["policies"], json!(["a", "b"]));
    assert!(read["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(read["last_used"], Value::Null);
    assert!(!read.to_string().contains(&secret), "{read}");
    assert_eq!(e.ok(List, "keys", json!({})).await, json!({"keys": ["ci"]}));

    // a write to an existing key changes policies only, and shows nothing
    e.done(Update, "keys/ci", json!({"policies": ["c"]})).await;
    let read = e.ok(Read, "keys/ci", json!({})).await;
    assert_eq!(
        (read["access_key_id"].clone(), read["policies"].clone()),
        (json!(id), json!(["c"]))
    );
    e.err_is(
        Update,
        "keys/ci",
        json!({"access_key_id": "AKIAOTHER", "secret_access_key": "x"}),
        ErrorCode::InvalidRequest,
        "the pair of an existing key is replaced with keys/<name>/rotate",
    )
    .await;
    // the secret is under the barrier: the physical backend never holds it in the clear
    e.assert_not_stored_raw(&secret).await;

    e.done(Delete, "keys/ci", json!({})).await;
    e.err_is(Read, "keys/ci", json!({}), ErrorCode::NotFound, "")
        .await;
    assert!(
        e.dump().await.is_empty(),
        "the key and its id index are gone"
    );
    assert_eq!(resolve(&e, &proof(&id, &secret)).await.unwrap(), None);
    // deleting what is not there is fine
    e.done(Delete, "keys/ci", json!({})).await;
}

#[tokio::test]
async fn reserved_and_bad_input_refused() {
    let e = env().await;
    for reserved in ["root", "ROOT", "response-wrapping"] {
        let err = e
            .err(Create, "keys/k", json!({"policies": ["a", reserved]}))
            .await;
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{reserved}");
    }
    for (data, msg) in [
        (json!({"access_key_id": "AKIA1"}), "given together"),
        (json!({"secret_access_key": "s"}), "given together"),
        (
            json!({"access_key_id": "a/b", "secret_access_key": "s"}),
            "access_key_id must be",
        ),
        (
            json!({"access_key_id": "AK", "secret_access_key": "a b"}),
            "secret_access_key must be",
        ),
        (
            json!({"access_key_id": "AK", "secret_access_key": ""}),
            "secret_access_key must be",
        ),
    ] {
        let err = e.err(Create, "keys/k", data).await;
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.message.contains(msg), "{}", err.message);
        assert!(!err.message.contains("a b"));
    }
    assert!(e.dump().await.is_empty(), "a refusal changes nothing");
    e.err(Read, "keys/-bad", json!({})).await;
    e.err(Update, "keys/k/other", json!({})).await;
    e.err_is(
        Read,
        "keys/k/rotate",
        json!({}),
        ErrorCode::UnsupportedOperation,
        "unsupported operation",
    )
    .await;
}

#[tokio::test]
async fn names_are_canonical() {
    let e = env().await;
    let c = |p: &str| e.engine.canonical_path(p).map(|c| c.into_owned());
    assert_eq!(c("keys/CI-Deploy").unwrap(), "keys/ci-deploy");
    assert_eq!(c("keys/CI/rotate").unwrap(), "keys/ci/rotate");
    assert_eq!(c("keys/").unwrap(), "keys/");
    assert_eq!(c("config").unwrap(), "config");
    assert!(c("keys/ci ").is_err());
    assert!(c("keys/é").is_err());
}

#[tokio::test]
async fn imported_pairs_and_their_uniqueness() {
    let e = env().await;
    let created = e
        .ok(
            Create,
            "keys/dev",
            json!({"policies": ["dev"], "access_key_id": "FOOBARKEY", "secret_access_key": "dev-secret-key"}),
        )
        .await;
    assert_eq!(
        pair(&created),
        ("FOOBARKEY".into(), "dev-secret-key".into())
    );
    // the same id for another key is refused
    let err = e
        .err(
            Create,
            "keys/other",
            json!({"access_key_id": "FOOBARKEY", "secret_access_key": "another-secret"}),
        )
        .await;
    assert_eq!(err.code, ErrorCode::AlreadyExists);
    assert!(!err.message.contains("another-secret"));
    let who = resolve(&e, &proof("FOOBARKEY", "dev-secret-key"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who.policies, vec!["dev"]);
}

#[tokio::test]
async fn resolve_signed_right_wrong_unknown() {
    let e = env().await;
    let (id, secret) = pair(&e.ok(Create, "keys/ci", json!({"policies": "deploy"})).await);
    let who = resolve(&e, &proof(&id, &secret)).await.unwrap().unwrap();
    assert_eq!(
        who,
        SignedIdentity {
            policies: vec!["deploy".into()],
            display_name: "aws-ci".into(),
            accessor: id.clone(),
            metadata: serde_json::from_value(json!({"key_name": "ci"})).unwrap(),
        }
    );
    // last used: today, recorded once
    let read = e.ok(Read, "keys/ci", json!({})).await;
    assert_eq!(
        read["last_used"],
        json!(day_of(coffer_core::util::unix_now()))
    );

    // a wrong signature for a known key: told apart from an unknown key
    let err = resolve(&e, &proof(&id, "not-the-secret"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            ErrorCode::Unauthenticated,
            coffer_core::sigv4::SIGNATURE_MISMATCH
        )
    );
    assert!(!format!("{err:?}").contains(&secret));
    let mut tampered = proof(&id, &secret);
    tampered.string_to_sign.push('x');
    assert!(resolve(&e, &tampered).await.is_err());
    // unknown and malformed ids: not this engine's
    assert_eq!(
        resolve(&e, &proof("AKIAUNKNOWN0000000000", &secret))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        resolve(&e, &proof("../key/ci", &secret)).await.unwrap(),
        None
    );
    assert_eq!(resolve(&e, &proof("", &secret)).await.unwrap(), None);
    // a session token: Coffer issues none
    let mut with_token = proof(&id, &secret);
    with_token.security_token = Some("FwoGZXIvYXdzEXAMPLE".into());
    let err = resolve(&e, &with_token).await.unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            ErrorCode::Unauthenticated,
            coffer_core::sigv4::INVALID_SECURITY_TOKEN
        )
    );
    assert!(!format!("{with_token:?}").contains("FwoG"));
}

#[tokio::test]
async fn rotate_replaces_the_pair() {
    let e = env().await;
    let (old_id, old_secret) = pair(&e.ok(Create, "keys/ci", json!({"policies": "p"})).await);
    resolve(&e, &proof(&old_id, &old_secret))
        .await
        .unwrap()
        .unwrap();
    let rotated = e.ok(Update, "keys/CI/rotate", json!({})).await;
    let (new_id, new_secret) = pair(&rotated);
    assert_ne!(new_id, old_id);
    assert_ne!(new_secret, old_secret);
    // the old pair stops working at once; the new one works with the same policies
    assert_eq!(
        resolve(&e, &proof(&old_id, &old_secret)).await.unwrap(),
        None
    );
    let who = resolve(&e, &proof(&new_id, &new_secret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (who.policies, who.accessor),
        (vec!["p".to_string()], new_id.clone())
    );
    let read = e.ok(Read, "keys/ci", json!({})).await;
    assert_eq!(read["access_key_id"], json!(new_id));
    assert!(!read.to_string().contains(&new_secret));
    let keys: Vec<String> = e.dump().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![format!("id/{new_id}"), "key/ci".to_string()]);
    e.err_is(
        Update,
        "keys/nope/rotate",
        json!({}),
        ErrorCode::NotFound,
        "",
    )
    .await;
}

#[tokio::test]
async fn account_id_config() {
    let e = env().await;
    assert_eq!(
        e.ok(Read, "config", json!({})).await,
        json!({"account_id": null})
    );
    e.done(Update, "config", json!({"account_id": "123456789012"}))
        .await;
    assert_eq!(
        e.ok(Read, "config", json!({})).await,
        json!({"account_id": "123456789012"})
    );
    for bad in ["12345", "12345678901x", "1234567890123"] {
        e.err_is(
            Update,
            "config",
            json!({"account_id": bad}),
            ErrorCode::InvalidRequest,
            "account_id must be 12 digits",
        )
        .await;
    }
}

#[tokio::test]
async fn resolved_keys_follow_every_change() {
    let e = env().await;
    let (id, secret) = pair(&e.ok(Create, "keys/ci", json!({"policies": "p1"})).await);
    let p = proof(&id, &secret);
    assert_eq!(resolve(&e, &p).await.unwrap().unwrap().policies, vec!["p1"]);
    // resolved once and kept: a second request answers the same
    assert_eq!(resolve(&e, &p).await.unwrap().unwrap().policies, vec!["p1"]);
    // new policies apply to the next request
    e.done(Update, "keys/ci", json!({"policies": "p2"})).await;
    assert_eq!(resolve(&e, &p).await.unwrap().unwrap().policies, vec!["p2"]);
    // a new account shows at once
    e.done(Update, "config", json!({"account_id": "123456789012"}))
        .await;
    let who = resolve(&e, &p).await.unwrap().unwrap();
    assert_eq!(who.metadata["account_id"], "123456789012");
    // a deleted key stops working at once
    e.done(Delete, "keys/ci", json!({})).await;
    assert_eq!(resolve(&e, &p).await.unwrap(), None);
}

#[test]
fn an_entry_read_before_a_write_is_not_kept_after_it() {
    let r = Resolved::default();
    let key = || {
        Arc::new(ResolvedKey {
            name: "ci".into(),
            secret: Zeroizing::new("s".into()),
            policies: vec![],
            account: None,
            last_used: parking_lot::Mutex::new(None),
        })
    };
    let before = r.generation();
    r.invalidate();
    r.put("AKID", key(), before);
    assert!(r.get("AKID").is_none());
    r.put("AKID", key(), r.generation());
    assert!(r.get("AKID").is_some());
    r.invalidate();
    assert!(r.get("AKID").is_none());
}
