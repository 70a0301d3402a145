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
    unsealed_core(registry).await
}

/// An initialized, unsealed in-memory core with these engines, and its root token.
async fn unsealed_core(registry: EngineRegistry) -> (Arc<Core>, String) {
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
    req.credential = coffer_core::request::Credential::Token(token.to_string());
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

/// An engine that counts its requests and, while handling one, looks at the audit log: the
/// request entry must already be there (the request is audited before anything runs).
struct Recorder {
    log: std::path::PathBuf,
    seen: Arc<std::sync::atomic::AtomicUsize>,
    audited_first: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl Engine for Recorder {
    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let audited = text.lines().any(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
            v["type"] == "request" && v["request"]["id"] == req.request_id
        });
        self.audited_first
            .store(audited, std::sync::atomic::Ordering::SeqCst);
        Ok(Some(Response::from_value(json!({"ok": true}))))
    }

    fn issues_signing_keys(&self) -> bool {
        true
    }

    async fn resolve_signed(
        &self,
        _storage: &coffer_core::barrier::View,
        proof: &coffer_core::request::SignedProof,
    ) -> Result<Option<coffer_core::request::SignedIdentity>> {
        Ok(match proof.access_key_id.as_str() {
            "AKIARECORDER" => Some(coffer_core::request::SignedIdentity {
                policies: vec!["rec-reader".into()],
                display_name: "access-key-recorder".into(),
                accessor: "AKIARECORDER".into(),
                metadata: Default::default(),
            }),
            "AKIAROOT" => Some(coffer_core::request::SignedIdentity {
                policies: vec!["root".into()],
                ..Default::default()
            }),
            _ => None,
        })
    }
}

struct Recording {
    core: Arc<Core>,
    root: String,
    log: std::path::PathBuf,
    seen: Arc<std::sync::atomic::AtomicUsize>,
    audited_first: Arc<std::sync::atomic::AtomicBool>,
    _dir: tempfile::TempDir,
}

async fn recording_core() -> Recording {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let audited_first = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut registry = EngineRegistry::new();
    let (l, s, a) = (log.clone(), seen.clone(), audited_first.clone());
    registry.register(
        "recorder",
        Arc::new(move |_e: &coffer_core::router::MountEntry| {
            Ok(Arc::new(Recorder {
                log: l.clone(),
                seen: s.clone(),
                audited_first: a.clone(),
            }) as Arc<dyn Engine>)
        }),
    );
    let (core, root) = unsealed_core(registry).await;
    call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/rec",
        json!({"type": "recorder"}),
    )
    .await
    .unwrap();
    Recording {
        core,
        root,
        log,
        seen,
        audited_first,
        _dir: dir,
    }
}

#[tokio::test]
async fn stages_run_in_order_request_audited_before_dispatch_response_after() {
    let r = recording_core().await;
    call(
        &r.core,
        &r.root,
        Operation::Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": r.log.to_str().unwrap()}}),
    )
    .await
    .unwrap();
    let resp = call(&r.core, &r.root, Operation::Read, "rec/x", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.data.unwrap()["ok"], true);
    assert_eq!(r.seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(r.audited_first.load(std::sync::atomic::Ordering::SeqCst));
    let lines = audit_lines(&r.log);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "response");
    assert_eq!(last["request"]["path"], "rec/x");
    assert_eq!(last["auth"]["credential_type"], "token");
}

#[tokio::test]
async fn audit_is_fail_closed_nothing_runs_without_a_device_that_records() {
    let r = recording_core().await;
    let logdir = r.log.parent().unwrap().join("logs");
    let log = logdir.join("audit.log");
    call(
        &r.core,
        &r.root,
        Operation::Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
    )
    .await
    .unwrap();
    call(&r.core, &r.root, Operation::Read, "rec/x", json!({}))
        .await
        .unwrap();
    assert_eq!(r.seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    // the only device's path becomes unopenable, and the device reopens it (as on SIGHUP)
    std::fs::rename(&logdir, logdir.with_extension("moved")).unwrap();
    std::fs::write(&logdir, b"not a directory").unwrap();
    let _ = r.core.active().unwrap().audit.reopen().await;
    let err = call(&r.core, &r.root, Operation::Read, "rec/x", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AuditFailed);
    assert_eq!(
        r.seen.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the handler did not run again"
    );
}

#[tokio::test]
async fn a_sealed_core_is_inert() {
    let r = recording_core().await;
    r.core.seal().await.unwrap();
    for path in [
        "rec/x",
        "sys/mounts",
        "auth/token/lookup-self",
        "secret/data/x",
    ] {
        let err = call(&r.core, &r.root, Operation::Read, path, json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Sealed, "{path}");
    }
    assert_eq!(r.seen.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn use_limited_tokens_are_spent_once_per_request() {
    let r = recording_core().await;
    let t = call(
        &r.core,
        &r.root,
        Operation::Update,
        "auth/token/create",
        json!({"policies": ["default"], "num_uses": 2}),
    )
    .await
    .unwrap()
    .auth
    .unwrap()
    .client_token;
    for _ in 0..2 {
        call(
            &r.core,
            &t,
            Operation::Read,
            "auth/token/lookup-self",
            json!({}),
        )
        .await
        .unwrap();
    }
    let err = call(
        &r.core,
        &t,
        Operation::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn signed_requests_resolve_to_the_issuers_policies() {
    let r = recording_core().await;
    call(
        &r.core,
        &r.root,
        Operation::Update,
        "sys/policy/rec-reader",
        json!({"policy": r#"path "rec/allowed" { capabilities = ["read"] }"#}),
    )
    .await
    .unwrap();
    let signed = |key: &str, path: &str| {
        let mut req = Request::new(Operation::Read, path);
        req.dialect = coffer_core::request::Dialect::Aws;
        req.operation_name = Some("secretsmanager.GetSecretValue".into());
        req.credential =
            coffer_core::request::Credential::Signed(coffer_core::request::SignedProof {
                access_key_id: key.into(),
                string_to_sign: "sts".into(),
                signature: "sig".into(),
                scope: coffer_core::request::SigningScope {
                    date: "20261201".into(),
                    region: "us-east-1".into(),
                    service: "secretsmanager".into(),
                },
                security_token: None,
            });
        req
    };
    r.core
        .handle(signed("AKIARECORDER", "rec/allowed"))
        .await
        .unwrap();
    let err = r
        .core
        .handle(signed("AKIARECORDER", "rec/other"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::PermissionDenied);
    let err = r
        .core
        .handle(signed("AKIAUNKNOWN", "rec/allowed"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthenticated);
    // an issuer that answers with a reserved policy gets nothing
    let err = r
        .core
        .handle(signed("AKIAROOT", "rec/other"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthenticated);
    assert_eq!(r.seen.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A device path that is not a regular file (here one whose every write fails) neither hangs the
/// enable request nor lets requests run unrecorded.
#[tokio::test]
async fn an_audit_device_on_dev_full_is_fail_closed_and_does_not_hang() {
    let r = recording_core().await;
    let enabled = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        call(
            &r.core,
            &r.root,
            Operation::Update,
            "sys/audit/full",
            json!({"type": "file", "options": {"file_path": "/dev/full"}}),
        ),
    )
    .await
    .expect("enabling must not hang");
    assert!(enabled.is_err(), "its own response entry cannot be written");
    let err = call(&r.core, &r.root, Operation::Read, "rec/x", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AuditFailed);
    assert_eq!(r.seen.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn coffer_acts_on_its_own_behalf_only_on_internal_requests() {
    use coffer_core::request::{Credential, Dialect};
    let (core, _root) = core().await;
    let internal = |dialect: Dialect| {
        let mut req = Request::new(Operation::Read, "sys/mounts");
        req.credential = Credential::Internal("rotation-scheduler".into());
        req.dialect = dialect;
        req
    };
    core.handle(internal(Dialect::Internal)).await.unwrap();
    for dialect in [Dialect::Vault, Dialect::Aws, Dialect::Azure] {
        let e = core.handle(internal(dialect)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthenticated, "{e:?}");
    }
    // and what it does is audited under the actor's name
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let mut enable = Request::new(Operation::Update, "sys/audit/file");
    enable.credential = Credential::Internal("rotation-scheduler".into());
    enable.dialect = Dialect::Internal;
    enable.data = json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})
        .as_object()
        .unwrap()
        .clone();
    core.handle(enable).await.unwrap();
    core.handle(internal(Dialect::Internal)).await.unwrap();
    let lines = audit_lines(&log);
    let entry = lines
        .iter()
        .find(|l| l["request"]["path"] == "sys/mounts" && l["type"] == "request")
        .unwrap();
    assert_eq!(entry["auth"]["display_name"], "coffer-rotation-scheduler");
    assert_eq!(entry["dialect"], "internal");
}

/// An engine handing out leased secrets, recording what it is asked to revoke and renew.
#[derive(Default)]
struct Leasing {
    revoked: parking_lot::Mutex<Vec<String>>,
    renewed: parking_lot::Mutex<Vec<(String, f64)>>,
}

#[async_trait::async_trait]
impl Engine for Leasing {
    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let user = format!("u-{}", uuid::Uuid::new_v4());
        let ttl = req.data.get("ttl").and_then(Value::as_u64).unwrap_or(60);
        Ok(Some(Response {
            data: Some(json!({ "username": user }).as_object().unwrap().clone()),
            secret: Some(coffer_core::request::SecretLease {
                ttl,
                max_ttl: 30,
                renewable: true,
                internal: json!({ "username": user }).as_object().unwrap().clone(),
            }),
            ..Default::default()
        }))
    }

    async fn revoke_secret(
        &self,
        _storage: &coffer_core::barrier::View,
        internal: &serde_json::Map<String, Value>,
    ) -> Result<()> {
        self.revoked
            .lock()
            .push(internal["username"].as_str().unwrap().to_string());
        Ok(())
    }

    async fn renew_secret(
        &self,
        _storage: &coffer_core::barrier::View,
        internal: &serde_json::Map<String, Value>,
        expire_time: f64,
    ) -> Result<()> {
        self.renewed.lock().push((
            internal["username"].as_str().unwrap().to_string(),
            expire_time,
        ));
        Ok(())
    }
}

#[tokio::test]
async fn engine_secrets_are_leased_renewed_and_revoked_by_their_engine() {
    let engine = Arc::new(Leasing::default());
    let mut registry = EngineRegistry::new();
    let e = engine.clone();
    registry.register(
        "leasing",
        Arc::new(move |_e: &coffer_core::router::MountEntry| Ok(e.clone() as Arc<dyn Engine>)),
    );
    let (core, root) = unsealed_core(registry).await;
    call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/db",
        json!({"type": "leasing"}),
    )
    .await
    .unwrap();
    let issue = |ttl: u64| {
        let (core, root) = (core.clone(), root.clone());
        async move {
            call(
                &core,
                &root,
                Operation::Read,
                "db/creds/app",
                json!({ "ttl": ttl }),
            )
            .await
            .unwrap()
        }
    };
    // a TTL over the secret's max TTL is capped
    assert_eq!(issue(60).await.lease_duration, 30);
    let a = issue(20).await;
    assert!(a.lease_id.starts_with("db/creds/app/"), "{}", a.lease_id);
    assert_eq!((a.lease_duration, a.renewable), (20, true));
    let user_a = a.data.as_ref().unwrap()["username"]
        .as_str()
        .unwrap()
        .to_string();
    // renew: the engine extends it first; never past max_ttl (30 s from issue... capped to 30)
    let r = call(
        &core,
        &root,
        Operation::Update,
        "sys/leases/renew",
        json!({"lease_id": a.lease_id, "increment": 3600}),
    )
    .await
    .unwrap();
    assert!(r.lease_duration <= 30, "{}", r.lease_duration);
    // an increment of 0 (the CLI's default) keeps the duration, never ends the lease
    let r0 = call(
        &core,
        &root,
        Operation::Update,
        "sys/leases/renew",
        json!({"lease_id": a.lease_id, "increment": 0}),
    )
    .await
    .unwrap();
    assert!(r0.lease_duration > 0, "{}", r0.lease_duration);
    assert_eq!(engine.renewed.lock()[0].0, user_a);
    // revoke: the engine revokes it, the lease is gone
    call(
        &core,
        &root,
        Operation::Update,
        "sys/leases/revoke",
        json!({"lease_id": a.lease_id}),
    )
    .await
    .unwrap();
    assert!(engine.revoked.lock().contains(&user_a));
    assert!(call(
        &core,
        &root,
        Operation::Update,
        "sys/leases/lookup",
        json!({"lease_id": a.lease_id})
    )
    .await
    .is_err());
    // expiry: the expiration manager revokes it through the engine
    let b = issue(1).await;
    let user_b = b.data.as_ref().unwrap()["username"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !engine.revoked.lock().contains(&user_b) {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired lease was not revoked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // disabling the mount revokes what it still has out
    let c = issue(60).await;
    let user_c = c.data.as_ref().unwrap()["username"]
        .as_str()
        .unwrap()
        .to_string();
    call(&core, &root, Operation::Delete, "sys/mounts/db", json!({}))
        .await
        .unwrap();
    assert!(engine.revoked.lock().contains(&user_c));
}
