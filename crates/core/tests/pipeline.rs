//! The request pipeline driven in process, with a plain function call (no HTTP): a panicking
//! handler, canonical names and reserved policies.

use coffer_core::error::ErrorCode;
use coffer_core::request::{Operation, Request, Response};
use coffer_core::router::{Engine, EngineRegistry, EngineRequest};
use coffer_core::{Core, CoreConfig, Result};
use coffer_storage::InmemBackend;
use serde_json::{json, Value};
use std::sync::Arc;

/// An engine whose every request panics (stands in for a bug in any handler).
struct Panicking;

#[async_trait::async_trait]
impl Engine for Panicking {
    async fn handle(&self, _req: &EngineRequest<'_>) -> Result<Option<Response>> {
        panic!("a handler bug");
    }
}

async fn core() -> (Arc<Core>, String) {
    let mut registry = EngineRegistry::new();
    registry.register(
        "panicking",
        Arc::new(|_e: &coffer_core::router::MountEntry| Ok(Arc::new(Panicking) as Arc<dyn Engine>)),
    );
    let core = Core::new(
        Arc::new(InmemBackend::new()),
        CoreConfig::default(),
        registry,
    );
    let init = core
        .init(coffer_core::seal::InitParams {
            secret_shares: 1,
            secret_threshold: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    core.unseal(Some(&init.keys_base64[0]), false)
        .await
        .unwrap();
    (core, init.root_token.clone())
}

async fn call(
    core: &Core,
    token: &str,
    op: Operation,
    path: &str,
    data: Value,
) -> Result<Response> {
    let mut req = Request::new(op, path);
    req.token = Some(token.to_string());
    if let Value::Object(m) = data {
        req.data = m;
    }
    core.handle(req).await
}

fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_is_audited() {
    let (core, root) = core().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    call(
        &core,
        &root,
        Operation::Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
    )
    .await
    .unwrap();
    call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/boom",
        json!({"type": "panicking"}),
    )
    .await
    .unwrap();
    let err = call(&core, &root, Operation::Read, "boom/x", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    let lines = audit_lines(&log);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "response");
    assert_eq!(last["request"]["path"], "boom/x");
    assert!(last["error"].as_str().unwrap().contains("panicked"));
    // the server goes on serving
    call(&core, &root, Operation::Read, "sys/mounts", json!({}))
        .await
        .unwrap();
}

#[tokio::test]
async fn names_have_one_spelling_before_the_acl_runs() {
    let (core, root) = core().await;
    let policy = r#"
        path "sys/policy/*" { capabilities = ["create", "read", "update", "delete", "list"] }
        path "sys/policy/admin" { capabilities = ["deny"] }
        path "auth/token/roles/*" { capabilities = ["create", "read", "update", "delete"] }
        path "auth/token/roles/admin" { capabilities = ["deny"] }
    "#;
    call(
        &core,
        &root,
        Operation::Update,
        "sys/policy/limited",
        json!({ "policy": policy }),
    )
    .await
    .unwrap();
    let limited = call(
        &core,
        &root,
        Operation::Update,
        "auth/token/create",
        json!({"policies": ["limited"]}),
    )
    .await
    .unwrap()
    .auth
    .unwrap()
    .client_token;
    let admin =
        r#"path "*" { capabilities = ["sudo", "create", "read", "update", "delete", "list"] }"#;
    for spelled in [
        "admin ",
        " admin",
        "admin\u{a0}",
        "\u{2003}admin",
        "ad\u{200b}min",
    ] {
        let err = call(
            &core,
            &limited,
            Operation::Update,
            &format!("sys/policy/{spelled}"),
            json!({ "policy": admin }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{spelled:?}");
        let err = call(
            &core,
            &limited,
            Operation::Update,
            &format!("auth/token/roles/{spelled}"),
            json!({}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{spelled:?}");
    }
    for spelled in ["ADMIN", "Admin", "aDmIn"] {
        let err = call(
            &core,
            &limited,
            Operation::Update,
            &format!("sys/policy/{spelled}"),
            json!({ "policy": admin }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::PermissionDenied, "{spelled:?}");
        assert_eq!(err.message, "permission denied");
        let err = call(
            &core,
            &limited,
            Operation::Update,
            &format!("auth/token/roles/{spelled}"),
            json!({}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::PermissionDenied, "{spelled:?}");
    }
    assert!(
        call(&core, &root, Operation::Read, "sys/policy/admin", json!({}))
            .await
            .is_err(),
        "no admin policy was written"
    );
}

#[tokio::test]
async fn roles_cannot_grant_reserved_policies() {
    let (core, root) = core().await;
    for reserved in ["root", "ROOT", "response-wrapping"] {
        let err = call(
            &core,
            &root,
            Operation::Update,
            "auth/token/roles/r",
            json!({"allowed_policies": [reserved]}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{reserved}");
    }
}
