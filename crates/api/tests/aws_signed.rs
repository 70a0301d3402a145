//! A SigV4-signed request end to end in process: the request as received → the AWS dialect's
//! verifier (`aws::sigv4::verify`) → the core's pipeline, which asks the `aws-access-keys` auth
//! method that issued the key → the ACL of the key's policies.

mod common;

use axum::http::{HeaderMap, HeaderValue};
use coffer_api::aws::sigv4::{self, HttpParts, SigV4Error, VerifierConfig};
use coffer_core::error::ErrorCode;
use coffer_core::request::{Credential, Dialect, Operation, Request};
use coffer_core::Core;
use serde_json::{json, Value};
use std::sync::Arc;

async fn core() -> (Arc<Core>, String) {
    common::dev_core().await
}

async fn root_call(core: &Core, root: &str, op: Operation, path: &str, data: Value) -> Value {
    let resp = core
        .handle(Request::new(op, path).with_token(root).with_data(data))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    Value::Object(resp.data.unwrap_or_default())
}

const NOW: i64 = 1_796_126_400; // 2026-12-01T12:00:00Z

/// A Secrets Manager request signed with `(id, secret)` the way an SDK signs it.
fn signed_headers(id: &str, secret: &str, body: &[u8]) -> HeaderMap {
    let auth = |sig: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential={id}/20261201/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={sig}"
        )
    };
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:8200"));
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    h.insert(
        "x-amz-target",
        HeaderValue::from_static("secretsmanager.GetSecretValue"),
    );
    h.insert("x-amz-date", HeaderValue::from_static("20261201T120000Z"));
    h.insert("authorization", HeaderValue::from_str(&auth("0")).unwrap());
    // the string to sign does not depend on the signature: compute it, sign it, send it
    let sts = sigv4::verify(&parts(&h, body), NOW, &VerifierConfig::default())
        .unwrap()
        .string_to_sign;
    let sig = sigv4::sign(
        secret.as_bytes(),
        "20261201",
        "us-east-1",
        "secretsmanager",
        &sts,
    );
    h.insert("authorization", HeaderValue::from_str(&auth(&sig)).unwrap());
    h
}

fn parts<'a>(h: &'a HeaderMap, body: &'a [u8]) -> HttpParts<'a> {
    HttpParts {
        method: "POST",
        path: "/",
        query: None,
        headers: h,
        body,
    }
}

/// What the AWS dialect will do: verify, then hand the proof to the core.
async fn signed_read(
    core: &Core,
    h: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<Value, SigV4Error> {
    let proof = sigv4::verify(&parts(h, body), NOW, &VerifierConfig::default())?;
    let mut req = Request::new(Operation::Read, path);
    req.dialect = Dialect::Aws;
    req.operation_name = Some("secretsmanager.GetSecretValue".into());
    req.credential = Credential::Signed(proof);
    match core.handle(req).await {
        Ok(r) => Ok(Value::Object(r.data.unwrap_or_default())),
        Err(e) => Err(SigV4Error::from_core(&e)
            .unwrap_or_else(|| SigV4Error::InvalidSignature(format!("core: {:?}", e.code)))),
    }
}

#[tokio::test]
async fn a_signed_request_gets_its_keys_policies() {
    let (core, root) = core().await;
    root_call(
        &core,
        &root,
        Operation::Update,
        "sys/policy/app-reader",
        json!({"policy": r#"path "secret/data/app/*" { capabilities = ["read"] }"#}),
    )
    .await;
    root_call(
        &core,
        &root,
        Operation::Update,
        "sys/auth/aws-keys",
        json!({"type": "aws-access-keys"}),
    )
    .await;
    root_call(
        &core,
        &root,
        Operation::Update,
        "secret/data/app/db",
        json!({"data": {"password": "hunter2"}}),
    )
    .await;
    root_call(
        &core,
        &root,
        Operation::Update,
        "secret/data/other/db",
        json!({"data": {"password": "x"}}),
    )
    .await;
    let created = root_call(
        &core,
        &root,
        Operation::Update,
        "auth/aws-keys/keys/app",
        json!({"policies": ["app-reader"]}),
    )
    .await;
    let id = created["access_key_id"].as_str().unwrap().to_string();
    let secret = created["secret_access_key"].as_str().unwrap().to_string();
    let body = br#"{"SecretId":"app/db"}"#;

    // allowed by its policy
    let h = signed_headers(&id, &secret, body);
    let got = signed_read(&core, &h, body, "secret/data/app/db")
        .await
        .unwrap();
    assert_eq!(got["data"]["password"], "hunter2");

    // outside its policy: the core's permission denied (not a credential error)
    let mut req = Request::new(Operation::Read, "secret/data/other/db");
    req.credential = Credential::Signed(
        sigv4::verify(&parts(&h, body), NOW, &VerifierConfig::default()).unwrap(),
    );
    assert_eq!(
        core.handle(req).await.unwrap_err().code,
        ErrorCode::PermissionDenied
    );

    // a wrong secret for a known key, and an unknown key: AWS's two answers
    let wrong = signed_headers(&id, "not-the-secret-at-all", body);
    let e = signed_read(&core, &wrong, body, "secret/data/app/db")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    let unknown = signed_headers("AKIAUNKNOWNUNKNOWN00", &secret, body);
    let e = signed_read(&core, &unknown, body, "secret/data/app/db")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "UnrecognizedClientException");
    assert_eq!(
        e.to_string(),
        "The security token included in the request is invalid."
    );

    // a tampered body no longer matches
    let e = signed_read(&core, &h, br#"{"SecretId":"app/dc"}"#, "secret/data/app/db")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");

    // rotated: the old pair stops working, the new one works
    let rotated = root_call(
        &core,
        &root,
        Operation::Update,
        "auth/aws-keys/keys/app/rotate",
        json!({}),
    )
    .await;
    let e = signed_read(&core, &h, body, "secret/data/app/db")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "UnrecognizedClientException");
    let h = signed_headers(
        rotated["access_key_id"].as_str().unwrap(),
        rotated["secret_access_key"].as_str().unwrap(),
        body,
    );
    signed_read(&core, &h, body, "secret/data/app/db")
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_cannot_carry_reserved_policies() {
    let (core, root) = core().await;
    root_call(
        &core,
        &root,
        Operation::Update,
        "sys/auth/aws-keys",
        json!({"type": "aws-access-keys"}),
    )
    .await;
    for reserved in ["root", "Root", "response-wrapping"] {
        let e = core
            .handle(
                Request::new(Operation::Update, "auth/aws-keys/keys/k")
                    .with_token(&root)
                    .with_data(json!({"policies": [reserved]})),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{reserved}");
    }
}
