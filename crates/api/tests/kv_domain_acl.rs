//! The kv domain's neutral paths (`domain/…`, which the AWS dialect and later ones use) are
//! governed by the policy rules written for Vault's paths: one rule decides for every dialect.
//! In process, through the core's pipeline, with tokens of a restricted policy.

mod common;

use coffer_core::error::ErrorCode;
use coffer_core::request::{Operation, Request};
use coffer_core::Core;
use serde_json::{json, Value};
use std::sync::Arc;

async fn core() -> (Arc<Core>, String) {
    common::dev_core().await
}

async fn call(
    core: &Core,
    token: &str,
    op: Operation,
    path: &str,
    data: Value,
) -> Result<Value, ErrorCode> {
    core.handle(Request::new(op, path).with_token(token).with_data(data))
        .await
        .map(|r| Value::Object(r.data.unwrap_or_default()))
        .map_err(|e| e.code)
}

/// A token with exactly `policy` (and `default`).
async fn token_with(core: &Core, root: &str, hcl: &str) -> String {
    call(
        core,
        root,
        Operation::Update,
        "sys/policies/acl/restricted",
        json!({ "policy": hcl }),
    )
    .await
    .unwrap();
    let t = core
        .handle(
            Request::new(Operation::Update, "auth/token/create")
                .with_token(root)
                .with_data(json!({"policies": ["restricted"]})),
        )
        .await
        .unwrap();
    t.auth.unwrap().client_token
}

const POLICY: &str = r#"
path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/data/prod/*" { capabilities = ["deny"] }
path "secret/metadata/hidden/*" { capabilities = ["deny"] }
path "secret/undelete/*" { capabilities = ["deny"] }
"#;

#[tokio::test]
async fn domain_paths_are_checked_as_the_vault_paths_they_act_on() {
    let (core, root) = core().await;
    for name in ["prod/x", "dev/x", "hidden/x"] {
        call(
            &core,
            &root,
            Operation::Update,
            &format!("secret/domain/versions/{name}"),
            json!({"text": "v1"}),
        )
        .await
        .unwrap();
    }
    let t = token_with(&core, &root, POLICY).await;
    let read = |name: &'static str| {
        let (core, t) = (core.clone(), t.clone());
        async move {
            call(
                &core,
                &t,
                Operation::Read,
                &format!("secret/domain/versions/{name}"),
                json!({}),
            )
            .await
        }
    };
    // reading a version is `read` on data/<name>: denied under prod/, allowed elsewhere
    assert_eq!(
        read("prod/x").await.unwrap_err(),
        ErrorCode::PermissionDenied
    );
    assert_eq!(read("dev/x").await.unwrap()["value"], "v1");
    // every spelling of the path reaches the same decision
    for spelling in [
        "secret/domain/versions/prod/x/",
        "secret/domain/versions//prod/x",
    ] {
        let r = call(&core, &t, Operation::Read, spelling, json!({})).await;
        assert!(r.is_err(), "{spelling}: {r:?}");
    }
    // putting a version is create/update on data/<name>
    let put = call(
        &core,
        &t,
        Operation::Update,
        "secret/domain/versions/prod/x",
        json!({"text": "v2"}),
    )
    .await;
    assert_eq!(put.unwrap_err(), ErrorCode::PermissionDenied);
    // describing is `read` on metadata/<name>: allowed for prod/x (only its data is denied)
    let d = call(
        &core,
        &t,
        Operation::Read,
        "secret/domain/secrets/prod/x",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(d["current_version"], 1);
    // the denied put changed nothing
    let v = call(
        &core,
        &root,
        Operation::Read,
        "secret/domain/versions/prod/x",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(v["value"], "v1");
    // scheduling deletion is `delete` on metadata/<name>; restoring is `update` on undelete/
    call(
        &core,
        &t,
        Operation::Delete,
        "secret/domain/secrets/dev/x",
        json!({}),
    )
    .await
    .unwrap();
    let restore = call(
        &core,
        &t,
        Operation::Update,
        "secret/domain/restore/dev/x",
        json!({}),
    )
    .await;
    assert_eq!(restore.unwrap_err(), ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn listings_show_only_what_the_caller_may_read() {
    let (core, root) = core().await;
    for name in ["a", "hidden/b", "open/c"] {
        call(
            &core,
            &root,
            Operation::Update,
            &format!("secret/domain/versions/{name}"),
            json!({"text": "v"}),
        )
        .await
        .unwrap();
    }
    let t = token_with(&core, &root, POLICY).await;
    let page = call(
        &core,
        &t,
        Operation::List,
        "secret/domain/secrets/",
        json!({"recursive": true, "describe": true}),
    )
    .await
    .unwrap();
    assert_eq!(page["keys"], json!(["a", "open/c"]));
    let described: Vec<&str> = page["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(described, ["a", "open/c"]);
    // root sees everything
    let page = call(
        &core,
        &root,
        Operation::List,
        "secret/domain/secrets/",
        json!({"recursive": true}),
    )
    .await
    .unwrap();
    assert_eq!(page["keys"], json!(["a", "hidden/b", "open/c"]));
    // a caller without `list` on metadata/ lists nothing
    let none = token_with(
        &core,
        &root,
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    let r = call(
        &core,
        &none,
        Operation::List,
        "secret/domain/secrets/",
        json!({"recursive": true}),
    )
    .await;
    assert_eq!(r.unwrap_err(), ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn backups_are_reads_of_data_and_restores_creates_of_it() {
    let (core, root) = core().await;
    for name in ["open", "locked"] {
        call(
            &core,
            &root,
            Operation::Update,
            &format!("secret/domain/versions/{name}"),
            json!({"text": "MARKER-value"}),
        )
        .await
        .unwrap();
    }
    // read and metadata rights everywhere, but no read of data/locked and no create of data/
    let t = token_with(
        &core,
        &root,
        r#"
path "secret/data/open" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "list", "delete", "update"] }
"#,
    )
    .await;
    let backup = |token: String, name: &'static str| {
        let core = core.clone();
        async move {
            call(
                &core,
                &token,
                Operation::Read,
                &format!("secret/domain/backup/{name}"),
                json!({}),
            )
            .await
        }
    };
    let blob = backup(t.clone(), "open").await.unwrap()["backup"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!blob.contains("MARKER"));
    assert_eq!(
        backup(t.clone(), "locked").await.unwrap_err(),
        ErrorCode::PermissionDenied
    );
    // purge it (root), then restoring needs create on data/open, which t lacks
    for (op, path) in [
        (Operation::Delete, "secret/domain/secrets/open"),
        (Operation::Delete, "secret/domain/purge/open"),
    ] {
        call(&core, &root, op, path, json!({})).await.unwrap();
    }
    let restore = |token: String| {
        let (core, blob) = (core.clone(), blob.clone());
        async move {
            call(
                &core,
                &token,
                Operation::Create,
                "secret/domain/restore-backup/open",
                json!({ "backup": blob }),
            )
            .await
        }
    };
    assert_eq!(
        restore(t.clone()).await.unwrap_err(),
        ErrorCode::PermissionDenied
    );
    let reader = token_with(
        &core,
        &root,
        r#"path "secret/data/open" { capabilities = ["create", "read"] }"#,
    )
    .await;
    restore(reader.clone()).await.unwrap();
    let v = call(
        &core,
        &reader,
        Operation::Read,
        "secret/domain/versions/open",
        json!({"as_text": true}),
    )
    .await
    .unwrap();
    assert_eq!(v["value"], "MARKER-value");
    // a backup of one name does not restore under another, whatever the caller may do there
    assert_eq!(
        call(
            &core,
            &root,
            Operation::Create,
            "secret/domain/restore-backup/other",
            json!({ "backup": blob }),
        )
        .await
        .unwrap_err(),
        ErrorCode::InvalidRequest
    );
}
