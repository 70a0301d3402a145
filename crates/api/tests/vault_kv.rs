//! The kv engine as a Vault client sees it: `KvEngine` driven through the `Engine` trait over an
//! in-memory barrier, its typed results rendered by the Vault dialect (`vault_kv::render`).

use coffer_api::vault_kv;
use coffer_core::barrier::{Barrier, SecretKey, View};
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::{Engine, EngineRequest, MountEntry};
use coffer_engines::kv::store::{self, SecretStore};
use coffer_engines::kv::{kv_factory, model, KvEngine, KvVersion, DEFAULT_LEASE_TTL_SECS};
use coffer_storage::InmemBackend;
use serde_json::{json, Map, Value};
use std::sync::Arc;

struct Env {
    view: View,
    mount: MountEntry,
    engine: Arc<KvEngine>,
    /// The status the Vault dialect gave the last answer, when not 200.
    last_status: std::sync::Mutex<Option<u16>>,
}

fn mount_entry(kind: &str, options: Value) -> MountEntry {
    MountEntry {
        path: "secret/".into(),
        kind: kind.into(),
        description: String::new(),
        uuid: "00000000-0000-4000-8000-000000000000".into(),
        accessor: "kv_test".into(),
        config: Default::default(),
        options: match options {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        local: false,
        seal_wrap: false,
        plugin_version: String::new(),
    }
}

async fn env_with(kind: &str, options: Value) -> Env {
    let barrier = Arc::new(Barrier::new(Arc::new(InmemBackend::new())));
    barrier
        .initialize(&SecretKey::generate().unwrap())
        .await
        .unwrap();
    let mount = mount_entry(kind, options);
    let view = View::new(barrier, mount.storage_prefix());
    let engine = Arc::new(KvEngine::from_mount(&mount).unwrap());
    Env {
        view,
        mount,
        engine,
        last_status: std::sync::Mutex::new(None),
    }
}

async fn v2() -> Env {
    env_with("kv", json!({"version": "2"})).await
}

async fn v1() -> Env {
    env_with("kv", json!({})).await
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Env {
    async fn call_with(
        &self,
        engine: &KvEngine,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>> {
        let data = obj(data);
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
        engine.handle(&req).await
    }

    /// A call answered as the Vault dialect renders it: typed kv results in Vault's shapes (the
    /// status, when not 200, in `last_status`).
    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Option<Response>> {
        *self.last_status.lock().unwrap() = None;
        let resp = self.call_with(&self.engine, op, path, data).await?;
        Ok(resp.map(|mut r| {
            if r.kind.as_deref().is_some_and(|k| k.starts_with("kv.")) {
                let status = vault_kv::render(&mut r, op);
                if status != 200 {
                    *self.last_status.lock().unwrap() = Some(status.as_u16());
                }
            }
            r
        }))
    }

    /// Successful call with a body; returns `data` as a JSON value.
    async fn ok(&self, op: Operation, path: &str, data: Value) -> Value {
        let resp = self
            .call(op, path, data)
            .await
            .unwrap_or_else(|e| panic!("{op:?} {path}: {e:?}"))
            .unwrap_or_else(|| panic!("{op:?} {path}: no response"));
        assert_eq!(*self.last_status.lock().unwrap(), None, "{op:?} {path}");
        Value::Object(resp.data.unwrap_or_default())
    }

    /// Successful call answering 204.
    async fn no_content(&self, op: Operation, path: &str, data: Value) {
        let resp = self
            .call(op, path, data)
            .await
            .unwrap_or_else(|e| panic!("{op:?} {path}: {e:?}"));
        assert!(
            resp.is_none(),
            "{op:?} {path}: expected no content, got {resp:?}"
        );
    }

    async fn err(&self, op: Operation, path: &str, data: Value) -> CoreError {
        match self.call(op, path, data).await {
            Err(e) => e,
            Ok(r) => panic!("{op:?} {path}: expected an error, got {r:?}"),
        }
    }

    /// A read answered with a non-default status (e.g. 404 with data).
    async fn status(&self, op: Operation, path: &str, data: Value) -> (u16, Value) {
        let resp = self.call(op, path, data).await.unwrap().unwrap();
        (
            self.last_status.lock().unwrap().unwrap_or(200),
            Value::Object(resp.data.unwrap_or_default()),
        )
    }

    async fn exists(&self, op: Operation, path: &str) -> Option<bool> {
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

    /// Every storage key of the mount, recursively.
    async fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(p) = stack.pop() {
            for e in self.view.list(&p).await.unwrap() {
                let full = format!("{p}{e}");
                if e.ends_with('/') {
                    stack.push(full);
                } else {
                    out.push(full);
                }
            }
        }
        out.sort();
        out
    }

    /// Every record of the mount (decrypted), to prove that a failed request changed nothing.
    async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for k in self.keys().await {
            let v = self.view.get(&k).await.unwrap().unwrap();
            out.push((k, v.to_vec()));
        }
        out
    }
}

use Operation::{Create, Delete, List, Patch, Read, Update};

#[tokio::test]
async fn factory_versions() {
    let build = |kind: &str, opts: Value| KvVersion::from_mount(&mount_entry(kind, opts));
    assert_eq!(build("kv", json!({})).unwrap(), KvVersion::V1);
    assert_eq!(build("kv", json!({"version": "1"})).unwrap(), KvVersion::V1);
    assert_eq!(build("kv", json!({"version": ""})).unwrap(), KvVersion::V1);
    assert_eq!(build("kv", json!({"version": "2"})).unwrap(), KvVersion::V2);
    assert_eq!(build("kv", json!({"version": 2})).unwrap(), KvVersion::V2);
    assert_eq!(build("kv-v2", json!({})).unwrap(), KvVersion::V2);
    assert!(build("kv", json!({"version": "3"})).is_err());
    let f = kv_factory();
    assert!(f(&mount_entry("kv", json!({"version": "2"}))).is_ok());
    assert!(f(&mount_entry("kv", json!({"version": "x"}))).is_err());
}

#[tokio::test]
async fn v2_write_read_versions() {
    let e = v2().await;
    assert_eq!(e.exists(Create, "data/apps/payment").await, Some(false));
    let w1 = e
        .ok(
            Create,
            "data/apps/payment",
            json!({"options": {}, "data": {"user": "a", "n": 1}}),
        )
        .await;
    assert_eq!(w1["version"], 1);
    assert_eq!(w1["deletion_time"], "");
    assert_eq!(w1["destroyed"], false);
    assert_eq!(w1["custom_metadata"], Value::Null);
    assert!(model::parse_time(w1["created_time"].as_str().unwrap()).is_some());
    assert_eq!(e.exists(Update, "data/apps/payment").await, Some(true));
    assert_eq!(e.exists(Update, "metadata/apps/payment").await, Some(true));
    assert_eq!(e.exists(Update, "destroy/apps/payment").await, None);

    let w2 = e
        .ok(Update, "data/apps/payment", json!({"data": {"user": "b"}}))
        .await;
    assert_eq!(w2["version"], 2);

    let r = e.ok(Read, "data/apps/payment", json!({})).await;
    assert_eq!(r["data"], json!({"user": "b"}));
    assert_eq!(r["metadata"]["version"], 2);
    assert_eq!(r["metadata"]["deletion_time"], "");
    assert_eq!(r["metadata"]["destroyed"], false);
    assert_eq!(r["metadata"]["custom_metadata"], Value::Null);

    // query parameters arrive as strings
    let r1 = e
        .ok(Read, "data/apps/payment", json!({"version": "1"}))
        .await;
    assert_eq!(r1["data"], json!({"user": "a", "n": 1}));
    assert_eq!(r1["metadata"]["version"], 1);
    let r0 = e
        .ok(Read, "data/apps/payment", json!({"version": "0"}))
        .await;
    assert_eq!(r0["metadata"]["version"], 2);

    // missing version / missing secret: plain 404
    assert_eq!(
        e.err(Read, "data/apps/payment", json!({"version": 3}))
            .await
            .code,
        ErrorCode::NotFound
    );
    assert_eq!(
        e.err(Read, "data/apps/nothing", json!({})).await.code,
        ErrorCode::NotFound
    );
    assert_eq!(
        e.err(Read, "data/apps/payment", json!({"version": "abc"}))
            .await
            .code,
        ErrorCode::InvalidRequest
    );

    let m = e.ok(Read, "metadata/apps/payment", json!({})).await;
    assert_eq!(m["current_version"], 2);
    assert_eq!(m["oldest_version"], 0);
    assert_eq!(m["max_versions"], 0);
    assert_eq!(m["cas_required"], false);
    assert_eq!(m["delete_version_after"], "0s");
    assert_eq!(m["custom_metadata"], Value::Null);
    assert_eq!(m["created_time"], w1["created_time"]);
    assert_eq!(m["updated_time"], w2["created_time"]);
    assert_eq!(m["versions"]["1"]["created_time"], w1["created_time"]);
    assert_eq!(m["versions"]["2"]["deletion_time"], "");
    assert_eq!(m["versions"]["2"]["destroyed"], false);

    // the stored model carries the shared fields
    let meta = SecretStore::new(&e.view)
        .meta("apps/payment")
        .await
        .unwrap()
        .unwrap();
    let vm = &meta.versions[&2];
    assert_eq!(vm.encoding, model::CONTENT_TYPE_JSON);
    assert!(uuid::Uuid::parse_str(&vm.uuid).is_ok());
    assert!(vm.azure.enabled);
    assert_ne!(meta.versions[&1].uuid, vm.uuid);
    assert_eq!(
        e.keys().await,
        vec![
            "metadata/apps/payment",
            "versions/apps/payment/1",
            "versions/apps/payment/2"
        ]
    );
}

#[tokio::test]
async fn v2_check_and_set() {
    let e = v2().await;
    let w = e
        .ok(
            Create,
            "data/c",
            json!({"options": {"cas": 0}, "data": {"a": 1}}),
        )
        .await;
    assert_eq!(w["version"], 1);
    let err = e
        .err(
            Update,
            "data/c",
            json!({"options": {"cas": 0}, "data": {"a": 2}}),
        )
        .await;
    assert_eq!(err.code, ErrorCode::CasMismatch);
    assert_eq!(
        err.message,
        "check-and-set parameter did not match the current version"
    );
    let err = e
        .err(
            Update,
            "data/c",
            json!({"options": {"cas": 5}, "data": {"a": 2}}),
        )
        .await;
    assert_eq!(err.code, ErrorCode::CasMismatch);
    assert_eq!(
        e.ok(
            Update,
            "data/c",
            json!({"options": {"cas": "1"}, "data": {"a": 2}})
        )
        .await["version"],
        2
    );
    let err = e
        .err(
            Update,
            "data/c",
            json!({"options": {"cas": "x"}, "data": {"a": 2}}),
        )
        .await;
    assert_eq!(err.code, ErrorCode::InvalidRequest);

    // required by the secret's metadata
    e.no_content(Update, "metadata/c", json!({"cas_required": true}))
        .await;
    let err = e.err(Update, "data/c", json!({"data": {"a": 3}})).await;
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        err.message,
        "check-and-set parameter required for this call"
    );
    assert_eq!(
        e.ok(
            Update,
            "data/c",
            json!({"options": {"cas": 2}, "data": {"a": 3}})
        )
        .await["version"],
        3
    );

    // required by the mount config, for new secrets too
    e.no_content(Update, "config", json!({"cas_required": true}))
        .await;
    let err = e.err(Create, "data/other", json!({"data": {"a": 1}})).await;
    assert_eq!(
        err.message,
        "check-and-set parameter required for this call"
    );
    assert_eq!(
        e.ok(
            Create,
            "data/other",
            json!({"options": {"cas": 0}, "data": {"a": 1}})
        )
        .await["version"],
        1
    );
    // turning it off on a secret while the mount mandates it warns
    let resp = e
        .call(Update, "metadata/other", json!({"cas_required": false}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.warnings.len(), 1);
    assert_eq!(
        e.ok(Read, "data/c", json!({})).await["data"],
        json!({"a": 3})
    );
}

#[tokio::test]
async fn v2_patch() {
    let e = v2().await;
    assert_eq!(
        e.err(Patch, "data/p", json!({"data": {"a": 1}})).await.code,
        ErrorCode::NotFound
    );
    e.ok(
        Create,
        "data/p",
        json!({"data": {"a": 1, "b": {"c": 2, "d": 3}, "e": 4}}),
    )
    .await;
    let w = e
        .ok(
            Patch,
            "data/p",
            json!({"data": {"a": 9, "b": {"d": null}, "e": null, "f": "new"}}),
        )
        .await;
    assert_eq!(w["version"], 2);
    assert_eq!(
        e.ok(Read, "data/p", json!({})).await["data"],
        json!({"a": 9, "b": {"c": 2}, "f": "new"})
    );
    let err = e
        .err(
            Patch,
            "data/p",
            json!({"options": {"cas": 1}, "data": {"a": 0}}),
        )
        .await;
    assert_eq!(err.code, ErrorCode::CasMismatch);
    assert_eq!(
        e.ok(
            Patch,
            "data/p",
            json!({"options": {"cas": 2}, "data": {"a": 0}})
        )
        .await["version"],
        3
    );
    assert_eq!(
        e.err(Patch, "data/p", json!({})).await.message,
        "no data provided"
    );
    assert_eq!(
        e.err(Patch, "data/p", json!({"data": [1]})).await.code,
        ErrorCode::InvalidRequest
    );

    // latest version deleted: 404 with the version's metadata, and no new version
    e.no_content(Delete, "data/p", json!({})).await;
    let (status, body) = e.status(Patch, "data/p", json!({"data": {"a": 1}})).await;
    assert_eq!(status, 404);
    assert_eq!(body["version"], 3);
    assert_ne!(body["deletion_time"], "");
    assert_eq!(
        e.ok(Read, "metadata/p", json!({})).await["current_version"],
        3
    );
}

#[tokio::test]
async fn v2_delete_undelete_destroy() {
    let e = v2().await;
    for i in 1..=3 {
        e.ok(Create, "data/d", json!({"data": {"i": i}})).await;
    }
    // DELETE data = soft-delete the latest version
    e.no_content(Delete, "data/d", json!({})).await;
    let (status, body) = e.status(Read, "data/d", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["metadata"]["version"], 3);
    assert_ne!(body["metadata"]["deletion_time"], "");
    assert_eq!(body["metadata"]["destroyed"], false);
    assert_eq!(
        e.ok(Read, "data/d", json!({"version": 2})).await["data"],
        json!({"i": 2})
    );

    // delete/ specific versions
    e.no_content(Update, "delete/d", json!({"versions": [1, 2, 99]}))
        .await;
    assert_eq!(e.status(Read, "data/d", json!({"version": 1})).await.0, 404);
    assert_eq!(e.status(Read, "data/d", json!({"version": 2})).await.0, 404);
    assert_eq!(
        e.err(Update, "delete/d", json!({})).await.message,
        "No version number provided"
    );
    assert_eq!(
        e.err(Update, "delete/d", json!({"versions": "x"}))
            .await
            .code,
        ErrorCode::InvalidRequest
    );

    // undelete
    e.no_content(Update, "undelete/d", json!({"versions": "2,3"}))
        .await;
    assert_eq!(
        e.ok(Read, "data/d", json!({})).await["data"],
        json!({"i": 3})
    );
    assert_eq!(
        e.ok(Read, "data/d", json!({"version": 2})).await["metadata"]["deletion_time"],
        ""
    );
    assert_eq!(e.status(Read, "data/d", json!({"version": 1})).await.0, 404);

    // destroy removes the payload for good
    e.no_content(Create, "destroy/d", json!({"versions": [3]}))
        .await;
    let (status, body) = e.status(Read, "data/d", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["metadata"]["destroyed"], true);
    assert!(!e.keys().await.contains(&"versions/d/3".to_string()));
    // undelete cannot bring a destroyed version back
    e.no_content(Update, "undelete/d", json!({"versions": [3]}))
        .await;
    assert_eq!(e.status(Read, "data/d", json!({})).await.0, 404);
    let m = e.ok(Read, "metadata/d", json!({})).await;
    assert_eq!(m["versions"]["3"]["destroyed"], true);
    assert_eq!(m["versions"]["1"]["destroyed"], false);
    assert_ne!(m["versions"]["1"]["deletion_time"], "");

    // on a missing secret these all succeed quietly, like Vault
    e.no_content(Delete, "data/none", json!({})).await;
    e.no_content(Update, "delete/none", json!({"versions": [1]}))
        .await;
    e.no_content(Update, "destroy/none", json!({"versions": [1]}))
        .await;
    assert_eq!(
        e.err(Read, "destroy/d", json!({})).await.code,
        ErrorCode::UnsupportedOperation
    );
}

#[tokio::test]
async fn v2_metadata_read_write_patch_delete() {
    let e = v2().await;
    assert_eq!(
        e.err(Read, "metadata/m", json!({})).await.code,
        ErrorCode::NotFound
    );
    assert_eq!(e.exists(Create, "metadata/m").await, Some(false));
    // no recognised field: nothing is created
    e.no_content(Update, "metadata/m", json!({"unrelated": 1}))
        .await;
    assert_eq!(
        e.err(Read, "metadata/m", json!({})).await.code,
        ErrorCode::NotFound
    );

    e.no_content(
        Create,
        "metadata/m",
        json!({"max_versions": 5, "cas_required": false, "delete_version_after": "3h30m",
               "custom_metadata": {"owner": "team-a", "tier": 1}}),
    )
    .await;
    let m = e.ok(Read, "metadata/m", json!({})).await;
    assert_eq!(m["max_versions"], 5);
    assert_eq!(m["delete_version_after"], "3h30m0s");
    assert_eq!(
        m["custom_metadata"],
        json!({"owner": "team-a", "tier": "1"})
    );
    assert_eq!(m["current_version"], 0);
    assert_eq!(m["versions"], json!({}));
    // metadata exists but no version yet: a data read is a plain 404
    assert_eq!(
        e.err(Read, "data/m", json!({})).await.code,
        ErrorCode::NotFound
    );

    let w = e.ok(Create, "data/m", json!({"data": {"k": "v"}})).await;
    assert_eq!(
        w["custom_metadata"],
        json!({"owner": "team-a", "tier": "1"})
    );
    let dt = model::parse_time(w["deletion_time"].as_str().unwrap()).unwrap();
    let ct = model::parse_time(w["created_time"].as_str().unwrap()).unwrap();
    assert_eq!((dt - ct).whole_seconds(), 12600);

    // POST replaces custom_metadata; PATCH merges (null removes)
    e.no_content(
        Update,
        "metadata/m",
        json!({"custom_metadata": {"a": "1", "b": "2"}}),
    )
    .await;
    e.no_content(
        Patch,
        "metadata/m",
        json!({"custom_metadata": {"a": null, "c": "3"}, "max_versions": 7}),
    )
    .await;
    let m = e.ok(Read, "metadata/m", json!({})).await;
    assert_eq!(m["custom_metadata"], json!({"b": "2", "c": "3"}));
    assert_eq!(m["max_versions"], 7);
    assert_eq!(m["delete_version_after"], "3h30m0s");
    assert_eq!(
        e.err(Patch, "metadata/absent", json!({"max_versions": 1}))
            .await
            .code,
        ErrorCode::NotFound
    );

    // Vault's custom_metadata limits
    let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let err = e
        .err(Update, "metadata/m", json!({"custom_metadata": many}))
        .await;
    assert!(err.message.contains("at most 64 keys"), "{}", err.message);
    let long_key = "k".repeat(129);
    let err = e
        .err(
            Update,
            "metadata/m",
            json!({"custom_metadata": {long_key: "v"}}),
        )
        .await;
    assert!(err.message.contains("len(key) <= 128"), "{}", err.message);
    let err = e
        .err(
            Update,
            "metadata/m",
            json!({"custom_metadata": {"k": "v".repeat(513)}}),
        )
        .await;
    assert!(err.message.contains("len(value) <= 512"), "{}", err.message);
    let err = e
        .err(
            Update,
            "metadata/m",
            json!({"custom_metadata": {"k": {"nested": 1}}}),
        )
        .await;
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    let err = e
        .err(Update, "metadata/m", json!({"custom_metadata": "x"}))
        .await;
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    let ok64: Map<String, Value> = (0..64).map(|i| (format!("k{i}"), json!("v"))).collect();
    e.no_content(Update, "metadata/m", json!({"custom_metadata": ok64}))
        .await;
    // a patch that would push the merged set over the limit fails and changes nothing
    let err = e
        .err(
            Patch,
            "metadata/m",
            json!({"custom_metadata": {"one-more": "v"}}),
        )
        .await;
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        e.ok(Read, "metadata/m", json!({})).await["custom_metadata"]
            .as_object()
            .unwrap()
            .len(),
        64
    );
    // missing path
    assert_eq!(
        e.err(Update, "metadata/", json!({"max_versions": 1}))
            .await
            .message,
        "missing path"
    );

    // DELETE metadata removes every version and the record
    e.ok(Update, "data/m", json!({"data": {"k": "v2"}})).await;
    e.no_content(Delete, "metadata/m", json!({})).await;
    assert_eq!(
        e.err(Read, "metadata/m", json!({})).await.code,
        ErrorCode::NotFound
    );
    assert_eq!(
        e.err(Read, "data/m", json!({})).await.code,
        ErrorCode::NotFound
    );
    assert!(e.keys().await.is_empty(), "{:?}", e.keys().await);
    e.no_content(Delete, "metadata/m", json!({})).await;
    // writing again starts over at version 1
    assert_eq!(
        e.ok(Create, "data/m", json!({"data": {"k": "again"}}))
            .await["version"],
        1
    );
}

#[tokio::test]
async fn v2_list_with_folders() {
    let e = v2().await;
    assert_eq!(
        e.err(List, "metadata/", json!({})).await.code,
        ErrorCode::NotFound
    );
    for p in ["a", "b/c", "b/d/e", "b/d/f", "z/"] {
        if p.ends_with('/') {
            continue;
        }
        e.ok(Create, &format!("data/{p}"), json!({"data": {"x": 1}}))
            .await;
    }
    e.no_content(Update, "metadata/meta-only", json!({"max_versions": 2}))
        .await;
    assert_eq!(
        e.ok(List, "metadata/", json!({})).await["keys"],
        json!(["a", "b/", "meta-only"])
    );
    assert_eq!(
        e.ok(List, "metadata", json!({})).await["keys"],
        json!(["a", "b/", "meta-only"])
    );
    assert_eq!(
        e.ok(List, "metadata/b/", json!({})).await["keys"],
        json!(["c", "d/"])
    );
    assert_eq!(
        e.ok(List, "metadata/b", json!({})).await["keys"],
        json!(["c", "d/"])
    );
    assert_eq!(
        e.ok(List, "metadata/b/d/", json!({})).await["keys"],
        json!(["e", "f"])
    );
    assert_eq!(
        e.err(List, "metadata/nothing/", json!({})).await.code,
        ErrorCode::NotFound
    );
    // a soft-deleted secret is still listed; a metadata-deleted one is not
    e.no_content(Delete, "data/a", json!({})).await;
    e.no_content(Delete, "metadata/b/c", json!({})).await;
    assert_eq!(
        e.ok(List, "metadata/", json!({})).await["keys"],
        json!(["a", "b/", "meta-only"])
    );
    assert_eq!(
        e.ok(List, "metadata/b/", json!({})).await["keys"],
        json!(["d/"])
    );
    assert_eq!(
        e.err(List, "data/", json!({})).await.code,
        ErrorCode::NotFound
    );
    assert_eq!(
        e.err(List, "data/b", json!({})).await.code,
        ErrorCode::UnsupportedOperation
    );
}

#[tokio::test]
async fn v2_max_versions_pruning() {
    let e = v2().await;
    e.no_content(Update, "config", json!({"max_versions": 3}))
        .await;
    for i in 1..=5 {
        assert_eq!(
            e.ok(Create, "data/mv", json!({"data": {"i": i}})).await["version"],
            i
        );
    }
    let m = e.ok(Read, "metadata/mv", json!({})).await;
    assert_eq!(m["current_version"], 5);
    assert_eq!(m["oldest_version"], 3);
    let kept: Vec<&String> = m["versions"].as_object().unwrap().keys().collect();
    assert_eq!(kept, vec!["3", "4", "5"]);
    assert_eq!(
        e.err(Read, "data/mv", json!({"version": 1})).await.code,
        ErrorCode::NotFound
    );
    assert_eq!(
        e.ok(Read, "data/mv", json!({"version": 3})).await["data"],
        json!({"i": 3})
    );
    assert_eq!(
        e.keys().await,
        vec![
            "config",
            "metadata/mv",
            "versions/mv/3",
            "versions/mv/4",
            "versions/mv/5"
        ]
    );

    // the larger of secret and mount setting wins; lowering it prunes on the next write
    e.no_content(Update, "metadata/mv", json!({"max_versions": 4}))
        .await;
    e.ok(Update, "data/mv", json!({"data": {"i": 6}})).await;
    assert_eq!(
        e.ok(Read, "metadata/mv", json!({})).await["versions"]
            .as_object()
            .unwrap()
            .len(),
        4
    );
    e.no_content(Update, "metadata/mv", json!({"max_versions": 0}))
        .await;
    e.no_content(Update, "config", json!({"max_versions": 2}))
        .await;
    e.ok(Update, "data/mv", json!({"data": {"i": 7}})).await;
    let m = e.ok(Read, "metadata/mv", json!({})).await;
    assert_eq!(m["oldest_version"], 6);
    assert_eq!(
        m["versions"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["6", "7"]
    );
    assert_eq!(
        e.keys().await,
        vec!["config", "metadata/mv", "versions/mv/6", "versions/mv/7"]
    );

    // default: 10 versions
    e.no_content(Update, "config", json!({"max_versions": 0}))
        .await;
    for i in 1..=13 {
        e.ok(Create, "data/dflt", json!({"data": {"i": i}})).await;
    }
    let m = e.ok(Read, "metadata/dflt", json!({})).await;
    assert_eq!(m["versions"].as_object().unwrap().len(), 10);
    assert_eq!(m["oldest_version"], 4);
}

#[tokio::test]
async fn v2_delete_version_after() {
    let e = v2().await;
    e.no_content(Update, "metadata/t", json!({"delete_version_after": 1}))
        .await;
    let w = e.ok(Create, "data/t", json!({"data": {"v": 1}})).await;
    assert_ne!(w["deletion_time"], "");
    // readable until the deadline passes
    let r = e.ok(Read, "data/t", json!({})).await;
    assert_eq!(r["data"], json!({"v": 1}));
    assert_eq!(r["metadata"]["deletion_time"], w["deletion_time"]);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (status, body) = e.status(Read, "data/t", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["metadata"]["deletion_time"], w["deletion_time"]);
    // the smaller non-zero of mount and secret applies
    e.no_content(Update, "config", json!({"delete_version_after": "1h"}))
        .await;
    e.no_content(Update, "metadata/t", json!({"delete_version_after": "2h"}))
        .await;
    let w = e.ok(Update, "data/t", json!({"data": {"v": 2}})).await;
    let dt = model::parse_time(w["deletion_time"].as_str().unwrap()).unwrap();
    let ct = model::parse_time(w["created_time"].as_str().unwrap()).unwrap();
    assert_eq!((dt - ct).whole_seconds(), 3600);
    // a negative mount value disables it everywhere
    e.no_content(Update, "config", json!({"delete_version_after": "-1s"}))
        .await;
    assert_eq!(
        e.ok(Read, "config", json!({})).await["delete_version_after"],
        "-1s"
    );
    let w = e.ok(Update, "data/t", json!({"data": {"v": 3}})).await;
    assert_eq!(w["deletion_time"], "");
    assert_eq!(
        e.err(Update, "metadata/t", json!({"delete_version_after": "-5s"}))
            .await
            .code,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn v2_subkeys() {
    let e = v2().await;
    e.ok(
        Create,
        "data/s",
        json!({"data": {"foo": "abc", "bar": {"baz": 1, "deep": {"x": true}}, "empty": {}, "list": [1, 2]}}),
    )
    .await;
    let r = e.ok(Read, "subkeys/s", json!({})).await;
    assert_eq!(
        r["subkeys"],
        json!({"foo": null, "bar": {"baz": null, "deep": {"x": null}}, "empty": null, "list": null})
    );
    assert_eq!(r["metadata"]["version"], 1);
    let r = e.ok(Read, "subkeys/s", json!({"depth": "1"})).await;
    assert_eq!(
        r["subkeys"],
        json!({"foo": null, "bar": null, "empty": null, "list": null})
    );
    let r = e.ok(Read, "subkeys/s", json!({"depth": 2})).await;
    assert_eq!(r["subkeys"]["bar"], json!({"baz": null, "deep": null}));
    e.ok(Update, "data/s", json!({"data": {"only": 1}})).await;
    assert_eq!(
        e.ok(Read, "subkeys/s", json!({"version": 1})).await["subkeys"]["foo"],
        Value::Null
    );
    assert_eq!(
        e.ok(Read, "subkeys/s", json!({})).await["subkeys"],
        json!({"only": null})
    );
    e.no_content(Delete, "data/s", json!({})).await;
    let (status, body) = e.status(Read, "subkeys/s", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["subkeys"], Value::Null);
    assert_eq!(
        e.err(Read, "subkeys/none", json!({})).await.code,
        ErrorCode::NotFound
    );
    assert_eq!(
        e.err(Read, "subkeys/s", json!({"depth": "x"})).await.code,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn v2_config() {
    let e = v2().await;
    assert_eq!(
        e.ok(Read, "config", json!({})).await,
        json!({"max_versions": 0, "cas_required": false, "delete_version_after": "0s"})
    );
    e.no_content(
        Update,
        "config",
        json!({"max_versions": "20", "cas_required": "true"}),
    )
    .await;
    e.no_content(Update, "config", json!({"delete_version_after": 90}))
        .await;
    assert_eq!(
        e.ok(Read, "config", json!({})).await,
        json!({"max_versions": 20, "cas_required": true, "delete_version_after": "1m30s"})
    );
    e.no_content(Update, "config", json!({"delete_version_after": "0s"}))
        .await;
    assert_eq!(
        e.ok(Read, "config", json!({})).await["delete_version_after"],
        "0s"
    );
    assert_eq!(
        e.err(Delete, "config", json!({})).await.code,
        ErrorCode::UnsupportedOperation
    );
    assert_eq!(
        e.err(List, "config", json!({})).await.code,
        ErrorCode::UnsupportedOperation
    );
}

#[tokio::test]
async fn v2_bad_input_changes_nothing() {
    let e = v2().await;
    e.ok(Create, "data/x", json!({"data": {"a": 1}})).await;
    e.no_content(Update, "config", json!({"max_versions": 4}))
        .await;
    let before = e.dump().await;
    let cases = [
        (Update, "config", json!({"max_versions": "abc"})),
        (
            Update,
            "config",
            json!({"max_versions": -1, "cas_required": true}),
        ),
        (Update, "config", json!({"cas_required": "maybe"})),
        (
            Update,
            "config",
            json!({"max_versions": 9, "delete_version_after": "soon"}),
        ),
        (Update, "data/x", json!({"data": 5})),
        (Update, "data/x", json!({"data": "str"})),
        (Update, "data/x", json!({})),
        (
            Update,
            "data/x",
            json!({"data": {"a": 2}, "options": {"cas": -1}}),
        ),
        (
            Update,
            "data/x",
            json!({"data": {"a": 2}, "options": "cas"}),
        ),
        (Create, "data/new", json!({"data": [1, 2]})),
        (Patch, "data/x", json!({"data": 7})),
        (Update, "metadata/x", json!({"max_versions": "abc"})),
        (
            Update,
            "metadata/x",
            json!({"max_versions": 3, "cas_required": []}),
        ),
        (
            Update,
            "metadata/x",
            json!({"max_versions": 3, "delete_version_after": {}}),
        ),
        (
            Update,
            "metadata/x",
            json!({"max_versions": 3, "custom_metadata": {"": "v"}}),
        ),
        (
            Patch,
            "metadata/x",
            json!({"max_versions": 3, "custom_metadata": {"k": ""}}),
        ),
        (Update, "delete/x", json!({"versions": "x"})),
        (Update, "undelete/x", json!({"versions": [1, "y"]})),
        (Update, "destroy/x", json!({"versions": {"1": true}})),
        (Update, "data/../x", json!({"data": {"a": 1}})),
        (Update, "data/a//b", json!({"data": {"a": 1}})),
        (Update, "data/./b", json!({"data": {"a": 1}})),
    ];
    for (op, path, body) in cases {
        let err = e.err(op, path, body.clone()).await;
        assert_eq!(
            err.code,
            ErrorCode::InvalidRequest,
            "{op:?} {path} {body}: {err:?}"
        );
        assert!(!err.message.is_empty(), "{op:?} {path}: empty message");
    }
    assert_eq!(e.dump().await, before);
}

#[tokio::test]
async fn v2_paths_and_operations() {
    let e = v2().await;
    for (op, path) in [
        (Read, "foo/bar"),
        (Read, ""),
        (List, ""),
        (Update, "data/"),
        (Read, "data/a/"),
    ] {
        let err = e.err(op, path, json!({"data": {"a": 1}})).await;
        assert_eq!(err.code, ErrorCode::NotFound, "{op:?} {path}");
        assert!(
            err.message.contains("no handler for route"),
            "{}",
            err.message
        );
    }
    assert_eq!(
        e.err(Patch, "config", json!({})).await.code,
        ErrorCode::UnsupportedOperation
    );
    assert_eq!(
        e.err(Delete, "subkeys/a", json!({})).await.code,
        ErrorCode::UnsupportedOperation
    );
    assert_eq!(
        e.err(Delete, "undelete/a", json!({})).await.code,
        ErrorCode::UnsupportedOperation
    );
    assert_eq!(
        e.err(Read, "metadata/a/", json!({})).await.code,
        ErrorCode::NotFound
    );
    assert_eq!(
        e.err(Read, "data/..", json!({})).await.code,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn v2_concurrent_writes_lose_nothing() {
    let e = Arc::new(v2().await);
    e.no_content(Update, "metadata/hot", json!({"max_versions": 100}))
        .await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let r = e
                .ok(Update, "data/hot", json!({"data": {"writer": i}}))
                .await;
            r["version"].as_u64().unwrap()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=50).collect::<Vec<u64>>());
    let m = e.ok(Read, "metadata/hot", json!({})).await;
    assert_eq!(m["current_version"], 50);
    assert_eq!(m["versions"].as_object().unwrap().len(), 50);
    let mut writers: Vec<u64> = Vec::new();
    for v in 1..=50 {
        let r = e.ok(Read, "data/hot", json!({"version": v})).await;
        writers.push(r["data"]["writer"].as_u64().unwrap());
    }
    writers.sort_unstable();
    assert_eq!(writers, (0..50).collect::<Vec<u64>>());
}

/// Two engine instances over one store (as two nodes sharing a backend): no in-process lock is
/// shared, so only the storage-level check keeps updates from being lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_concurrent_writers_without_shared_lock() {
    let e = Arc::new(v2().await);
    let other = Arc::new(KvEngine::from_mount(&e.mount).unwrap());
    e.no_content(Update, "metadata/shared", json!({"max_versions": 100}))
        .await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let e = e.clone();
        let engine = if i % 2 == 0 {
            e.engine.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let data = json!({"data": {"writer": i}});
            let resp = e
                .call_with(&engine, Update, "data/shared", data)
                .await
                .unwrap()
                .unwrap();
            // the neutral result
            assert_eq!(resp.kind.as_deref(), Some("kv.version"));
            resp.data.unwrap()["number"].as_u64().unwrap()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=40).collect::<Vec<u64>>());
    assert_eq!(
        e.ok(Read, "metadata/shared", json!({})).await["current_version"],
        40
    );
}

#[tokio::test]
async fn no_secret_in_errors_or_debug() {
    let e = v2().await;
    let secret = "SUPERSECRET-7f3a";
    e.ok(Create, "data/s", json!({"data": {"password": secret}}))
        .await;
    let errs = [
        e.err(
            Update,
            "data/s",
            json!({"options": {"cas": 0}, "data": {"password": secret}}),
        )
        .await,
        e.err(Update, "data/s", json!({"data": secret})).await,
        e.err(Update, "metadata/s", json!({"max_versions": secret}))
            .await,
        e.err(
            Update,
            "metadata/s",
            json!({"delete_version_after": secret}),
        )
        .await,
        e.err(Update, "delete/s", json!({"versions": secret})).await,
    ];
    for err in errs {
        assert!(!err.message.contains(secret), "{err:?}");
        assert!(!format!("{err:?}").contains(secret));
    }
    let payload = SecretStore::new(&e.view)
        .payload("s", 1)
        .await
        .unwrap()
        .unwrap();
    assert!(!format!("{payload:?}").contains(secret));
    assert!(!format!("{:?}", e.engine).contains(secret));
}

#[tokio::test]
async fn kv_v1_basics() {
    let e = v1().await;
    assert_eq!(e.exists(Create, "app/db").await, Some(false));
    e.no_content(Create, "app/db", json!({"user": "u", "password": "p"}))
        .await;
    assert_eq!(e.exists(Update, "app/db").await, Some(true));
    let resp = e.call(Read, "app/db", json!({})).await.unwrap().unwrap();
    assert_eq!(
        Value::Object(resp.data.unwrap()),
        json!({"user": "u", "password": "p"})
    );
    assert_eq!(resp.lease_duration, DEFAULT_LEASE_TTL_SECS);
    // a write replaces the whole object
    e.no_content(Update, "app/db", json!({"user": "v", "ttl": "1h"}))
        .await;
    let resp = e.call(Read, "app/db", json!({})).await.unwrap().unwrap();
    assert_eq!(
        Value::Object(resp.data.unwrap()),
        json!({"user": "v", "ttl": "1h"})
    );
    assert_eq!(resp.lease_duration, 3600);

    e.no_content(Create, "app/cache/redis", json!({"k": 1}))
        .await;
    e.no_content(Create, "top", json!({"k": 1})).await;
    assert_eq!(
        e.ok(List, "", json!({})).await["keys"],
        json!(["app/", "top"])
    );
    assert_eq!(
        e.ok(List, "app/", json!({})).await["keys"],
        json!(["cache/", "db"])
    );
    assert_eq!(
        e.ok(List, "app", json!({})).await["keys"],
        json!(["cache/", "db"])
    );
    assert_eq!(
        e.err(List, "none/", json!({})).await.code,
        ErrorCode::NotFound
    );

    let before = e.dump().await;
    assert_eq!(
        e.err(Update, "app/db", json!({})).await.message,
        "missing data fields"
    );
    assert_eq!(
        e.err(Update, "app/db", json!({"ttl": "forever"}))
            .await
            .code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        e.err(Update, "app/", json!({"a": 1})).await.code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        e.err(Update, "a/../b", json!({"a": 1})).await.code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        e.err(Patch, "app/db", json!({"a": 1})).await.code,
        ErrorCode::UnsupportedOperation
    );
    assert_eq!(e.dump().await, before);

    e.no_content(Delete, "app/db", json!({})).await;
    assert_eq!(
        e.err(Read, "app/db", json!({})).await.code,
        ErrorCode::NotFound
    );
    // v1 paths that look like v2 endpoints are ordinary keys
    e.no_content(Update, "data/x", json!({"a": 1})).await;
    assert_eq!(e.ok(Read, "data/x", json!({})).await, json!({"a": 1}));
}

#[tokio::test]
async fn kv_v2_mount_type() {
    let e = env_with("kv-v2", json!({})).await;
    assert_eq!(e.engine.version(), KvVersion::V2);
    e.ok(Create, "data/a", json!({"data": {"x": 1}})).await;
}

#[tokio::test]
async fn stale_commit_is_refused_and_update_retries() {
    let e = v2().await;
    e.ok(Create, "data/r", json!({"data": {"n": 1}})).await;
    let store = SecretStore::new(&e.view);

    // a commit against metadata that changed since it was read fails with a storage conflict
    let snap = store.snapshot("r").await.unwrap();
    let stale = snap.meta.clone().unwrap();
    e.ok(Update, "data/r", json!({"data": {"n": 2}})).await;
    let err = store
        .commit("r", snap, Some(&stale), vec![], vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(
        e.ok(Read, "metadata/r", json!({})).await["current_version"],
        2
    );

    // `update` re-runs its step after losing a race (here: another node writes in between)
    let other = KvEngine::from_mount(&e.mount).unwrap();
    let locks = store::PathLocks::default();
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let (env, other, attempts_ref) = (&e, &other, &attempts);
    let seen = store
        .update(&locks, "r", |meta| async move {
            let meta = meta.unwrap();
            if attempts_ref.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                env.call_with(other, Update, "data/r", json!({"data": {"n": 3}}))
                    .await
                    .unwrap();
            }
            let seen = meta.current_version;
            let mut next = meta;
            next.description = "touched".into();
            Ok(store::Change::Commit {
                meta: Some(next),
                puts: vec![],
                deletes: vec![],
                result: seen,
            })
        })
        .await
        .unwrap();
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(seen, 3, "the retry must see the concurrent write");
    let meta = store.meta("r").await.unwrap().unwrap();
    assert_eq!(
        (meta.current_version, meta.description.as_str()),
        (3, "touched")
    );
}
