//! What the API crate's in-process tests share: a dev core with the engines they use.

use coffer_core::router::EngineRegistry;
use coffer_core::{Core, CoreConfig};
use coffer_storage::InmemBackend;
use std::sync::Arc;

/// An unsealed in-memory core with kv v2 at `secret/` (dev setup), the `kv` and
/// `aws-access-keys` engines registered; answers the root token.
pub async fn dev_core() -> (Arc<Core>, String) {
    let mut registry = EngineRegistry::new();
    registry.register("kv", coffer_engines::kv_factory());
    registry.register("aws-access-keys", coffer_engines::access_keys_factory());
    let core = Core::new(
        Arc::new(InmemBackend::new()),
        CoreConfig::default(),
        registry,
    );
    let (root, _key) = core.dev_setup(None).await.unwrap();
    (core, root)
}
