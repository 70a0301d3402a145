//! Every listener serves every dialect; requests are told apart by path and headers, and each
//! dialect answers in its own format, never Vault's 404 body.

use crate::common::*;
use serde_json::Value;

#[test]
fn requests_reach_the_dialect_they_speak() {
    let s = dev();
    let c = &s.client;
    // AWS: POST / with X-Amz-Target (unsigned: AWS's own refusal, in its JSON shape)
    let r = c
        .post(format!("{}/", s.addr))
        .header("X-Amz-Target", "secretsmanager.GetSecretValue")
        .header("Content-Type", "application/x-amz-json-1.1")
        .body(r#"{"SecretId":"x"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().contains_key("x-amzn-requestid"));
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/x-amz-json-1.1"
    );
    let v: Value = r.json().unwrap();
    assert_eq!(v["__type"], "MissingAuthenticationTokenException");
    // an operation Secrets Manager does not have
    let r = c
        .post(format!("{}/", s.addr))
        .header("X-Amz-Target", "secretsmanager.DropAllTables")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["__type"], "UnknownOperationException");
    // Azure Key Vault: the bearer challenge first
    let r = c
        .get(format!("{}/secrets/db?api-version=7.4", s.addr))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let host = s.addr.trim_start_matches("http://");
    let resource = format!("https://{}", host.split_once('.').unwrap().1);
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        format!("Bearer authorization=\"https://{host}/adfs\", resource=\"{resource}\"")
    );
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], "Unauthorized");
    // ... and with a token, Key Vault's answers
    let r = c
        .get(format!("{}/secrets/db?api-version=7.4", s.addr))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], "SecretNotFound");
    // keys and certificates are not served
    let r = c
        .get(format!("{}/keys/k1?api-version=7.4", s.addr))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 501);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], "NotImplemented");
    // identity endpoints: OAuth's error shape
    let r = c
        .post(format!("{}/tenant/oauth2/v2.0/token", s.addr))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=password")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"], "unsupported_grant_type");
    // Vault, and nothing
    assert_eq!(s.req("GET", "sys/health", None, None).0, 200);
    let r = c.get(format!("{}/nothing-here", s.addr)).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().unwrap();
    assert_eq!(v, serde_json::json!({"errors": []}));
}
