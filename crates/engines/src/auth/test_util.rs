//! Test harness for the auth methods: an engine driven through the `Engine` trait over an
//! in-memory barrier, with helpers to call it and to inspect everything it stored.

use coffer_core::barrier::{Barrier, SecretKey, View};
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::request::{LoginAuth, Operation, Response};
use coffer_core::router::{Engine, EngineRequest, MountEntry};
use coffer_core::token::TokenEntry;
use coffer_storage::{Backend, InmemBackend};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::sync::Arc;

pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) fn mount_entry(path: &str, kind: &str, options: Value) -> MountEntry {
    MountEntry {
        path: path.into(),
        kind: kind.into(),
        description: String::new(),
        uuid: "11111111-2222-4333-8444-555555555555".into(),
        accessor: format!("auth_{kind}_test"),
        config: Default::default(),
        options: obj(options),
        local: false,
        seal_wrap: false,
        plugin_version: String::new(),
    }
}

/// One call through the `Engine` trait (usable from spawned tasks).
pub(crate) async fn call_engine(
    engine: &dyn Engine,
    view: &View,
    mount: &MountEntry,
    op: Operation,
    path: &str,
    data: Value,
    remote: Option<IpAddr>,
) -> Result<Option<Response>> {
    let data = obj(data);
    let req = EngineRequest {
        operation: op,
        path,
        data: &data,
        storage: view,
        mount,
        token: None,
        client_token: None,
        request_id: "test-request",
        remote_addr: remote,
        acl: None,
    };
    engine.handle(&req).await
}

/// A token as the core stores it after a login that answered with `meta` (`policies` as the
/// core made them, i.e. with `default` added).
pub(crate) fn login_token(path: &str, meta: Value, policies: &[&str]) -> TokenEntry {
    serde_json::from_value(serde_json::json!({
        "hash": "0".repeat(64),
        "accessor": "test-accessor",
        "policies": policies,
        "meta": meta,
        "creation_time": 0.0,
        "ttl": 60,
        "renewable": true,
        "path": path,
    }))
    .expect("a token entry")
}

pub(crate) struct Env<E: Engine> {
    pub backend: Arc<InmemBackend>,
    pub view: View,
    pub mount: MountEntry,
    pub engine: Arc<E>,
}

pub(crate) fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("test IP address"))
}

impl<E: Engine> Env<E> {
    pub async fn new(engine: E, mount: MountEntry) -> Self {
        let backend = Arc::new(InmemBackend::new());
        let barrier = Arc::new(Barrier::new(backend.clone()));
        barrier
            .initialize(&SecretKey::generate().unwrap())
            .await
            .unwrap();
        let view = View::new(barrier, mount.storage_prefix());
        Env {
            backend,
            view,
            mount,
            engine: Arc::new(engine),
        }
    }

    pub async fn call_from(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        remote: Option<IpAddr>,
    ) -> Result<Option<Response>> {
        call_engine(
            self.engine.as_ref(),
            &self.view,
            &self.mount,
            op,
            path,
            data,
            remote,
        )
        .await
    }

    pub async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Option<Response>> {
        self.call_from(op, path, data, ip("127.0.0.1")).await
    }

    /// A successful call with a body; its `data` as a JSON value.
    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Value {
        let resp = self
            .call(op, path, data)
            .await
            .unwrap_or_else(|e| panic!("{op:?} {path}: {e:?}"))
            .unwrap_or_else(|| panic!("{op:?} {path}: no response"));
        Value::Object(resp.data.unwrap_or_default())
    }

    /// A successful call answering 204 (or only warnings).
    pub async fn done(&self, op: Operation, path: &str, data: Value) -> Option<Response> {
        let resp = self
            .call(op, path, data)
            .await
            .unwrap_or_else(|e| panic!("{op:?} {path}: {e:?}"));
        if let Some(r) = &resp {
            assert!(r.data.is_none(), "{op:?} {path}: unexpected data");
        }
        resp
    }

    pub async fn err(&self, op: Operation, path: &str, data: Value) -> CoreError {
        match self.call(op, path, data).await {
            Err(e) => e,
            Ok(r) => panic!("{op:?} {path}: expected an error, got {r:?}"),
        }
    }

    /// An error with this code and message.
    pub async fn err_is(&self, op: Operation, path: &str, data: Value, code: ErrorCode, msg: &str) {
        let e = self.err(op, path, data).await;
        assert_eq!(e.code, code, "{op:?} {path}: {e:?}");
        assert_eq!(e.message, msg, "{op:?} {path}");
    }

    pub async fn login_from(
        &self,
        path: &str,
        data: Value,
        remote: Option<IpAddr>,
    ) -> Result<LoginAuth> {
        let resp = self
            .call_from(Operation::Update, path, data, remote)
            .await?;
        let resp = resp.expect("a login answers");
        assert!(resp.data.is_none() && resp.auth.is_none());
        Ok(resp.login.expect("a login answers with LoginAuth"))
    }

    pub async fn exists(&self, op: Operation, path: &str) -> Option<bool> {
        let data = Map::new();
        let req = EngineRequest {
            operation: op,
            path,
            data: &data,
            storage: &self.view,
            mount: &self.mount,
            token: None,
            client_token: None,
            request_id: "test-request",
            remote_addr: None,
            acl: None,
        };
        self.engine.exists(&req).await.unwrap()
    }

    /// The engine's verdict on renewing `token`, issued at `login_path` (relative to the mount).
    pub async fn renew_check(&self, login_path: &str, token: Option<&TokenEntry>) -> Result<()> {
        let data = Map::new();
        let req = EngineRequest {
            operation: Operation::Update,
            path: login_path,
            data: &data,
            storage: &self.view,
            mount: &self.mount,
            token,
            client_token: None,
            request_id: "",
            remote_addr: None,
            acl: None,
        };
        self.engine.renew_check(&req).await
    }

    /// Every record of the mount, decrypted, sorted by key.
    pub async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(p) = stack.pop() {
            for e in self.view.list(&p).await.unwrap() {
                let full = format!("{p}{e}");
                if e.ends_with('/') {
                    stack.push(full);
                } else {
                    let v = self.view.get(&full).await.unwrap().unwrap();
                    out.push((full, v.to_vec()));
                }
            }
        }
        out.sort();
        out
    }

    /// Every raw (encrypted) key and value in the physical backend.
    pub async fn raw_dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(p) = stack.pop() {
            for e in self.backend.list(&p).await.unwrap() {
                let full = format!("{p}{e}");
                if e.ends_with('/') {
                    stack.push(full);
                } else if let Some(v) = self.backend.get(&full).await.unwrap() {
                    out.push((full, v));
                }
            }
        }
        out
    }

    /// Assert that `needle` appears in no stored key or value, decrypted or raw.
    pub async fn assert_not_stored(&self, needle: &str) {
        assert!(needle.len() >= 8, "needle too short to be meaningful");
        let n = needle.as_bytes();
        let contains = |hay: &[u8]| hay.windows(n.len()).any(|w| w == n);
        for (k, v) in self.dump().await.into_iter().chain(self.raw_dump().await) {
            assert!(!k.contains(needle), "stored key {k} contains the secret");
            assert!(!contains(&v), "stored value at {k} contains the secret");
        }
    }

    /// Assert that `needle` appears in no raw (encrypted) key or value: for secrets an engine
    /// must keep (under the barrier) but storage must never see.
    pub async fn assert_not_stored_raw(&self, needle: &str) {
        assert!(needle.len() >= 8, "needle too short to be meaningful");
        let n = needle.as_bytes();
        for (k, v) in self.raw_dump().await {
            assert!(!k.contains(needle), "raw key {k} contains the secret");
            assert!(
                !v.windows(n.len()).any(|w| w == n),
                "raw value at {k} contains the secret"
            );
        }
    }
}
