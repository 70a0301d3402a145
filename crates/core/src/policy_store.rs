//! Stored ACL policies with compiled, cached ACLs. Any change clears the ACL cache before it
//! returns, so the next request sees it.

use crate::barrier::View;
use crate::error::{CoreError, Result};
use crate::policy::{default_policy_text, parse_policy, Acl, Policy};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    raw: String,
}

/// A compiled policy with the text it was written as.
type CachedPolicy = (Arc<Policy>, Arc<str>);

pub struct PolicyStore {
    view: View,
    policies: RwLock<HashMap<String, CachedPolicy>>,
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
    root_acl: Arc<Acl>,
    /// Bumped on every change; an ACL compiled under an older generation is not cached.
    generation: AtomicU64,
}

/// Policy names are case-insensitive and stored lowercase, as in Vault; a name that is not
/// canonical (whitespace, control or non-ASCII characters) is refused, never trimmed.
pub fn normalize_name(name: &str) -> Result<String> {
    crate::names::policy_name(name)
}

impl PolicyStore {
    pub fn new(view: View) -> Self {
        PolicyStore {
            view,
            policies: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
            root_acl: Arc::new(Acl::root()),
            generation: AtomicU64::new(0),
        }
    }

    /// Write the built-in `default` policy if it does not exist yet.
    pub async fn ensure_default(&self) -> Result<()> {
        if self.view.get("default").await?.is_none() {
            self.set("default", default_policy_text()).await?;
        }
        Ok(())
    }

    pub async fn get(&self, name: &str) -> Result<Option<(Arc<Policy>, Arc<str>)>> {
        let name = normalize_name(name)?;
        if let Some(p) = self.policies.read().get(&name) {
            return Ok(Some(p.clone()));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(stored) = self.view.get_json::<StoredPolicy>(&name).await? else {
            return Ok(None);
        };
        let policy = Arc::new(
            parse_policy(&name, &stored.raw).map_err(|e| CoreError::internal(e.to_string()))?,
        );
        let entry = (policy, Arc::<str>::from(stored.raw));
        let mut cache = self.policies.write();
        if self.generation.load(Ordering::SeqCst) == generation {
            cache.insert(name, entry.clone());
        }
        Ok(Some(entry))
    }

    pub async fn set(&self, name: &str, raw: &str) -> Result<()> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Err(CoreError::invalid("cannot update \"root\" policy"));
        }
        if name == crate::wrapping::WRAPPING_POLICY {
            return Err(CoreError::invalid(
                "the response-wrapping policy name is reserved",
            ));
        }
        parse_policy(&name, raw)
            .map_err(|e| CoreError::invalid(format!("failed to parse policy: {e}")))?;
        // invalidate before and after the write: a reader that loaded the old text meanwhile
        // cannot put it back into the cache
        self.invalidate(&name);
        self.view
            .put_json(
                &name,
                &StoredPolicy {
                    name: name.clone(),
                    raw: raw.to_string(),
                },
            )
            .await?;
        self.invalidate(&name);
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = normalize_name(name)?;
        if name == "root" || name == "default" {
            return Err(CoreError::invalid(format!(
                "cannot delete \"{name}\" policy"
            )));
        }
        self.invalidate(&name);
        self.view.delete(&name).await?;
        self.invalidate(&name);
        Ok(())
    }

    fn invalidate(&self, name: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.policies.write().remove(name);
        self.acls.write().clear();
    }

    pub async fn list(&self) -> Result<Vec<String>> {
        let mut names = self.view.list("").await?;
        names.push("root".to_string());
        names.sort();
        Ok(names)
    }

    /// The compiled ACL for a set of policy names (cached). Unknown names are ignored, as in Vault.
    pub async fn acl_for(&self, names: &[String]) -> Result<Arc<Acl>> {
        if names.iter().any(|n| n == "root") {
            return Ok(self.root_acl.clone());
        }
        if let Some(acl) = self.acls.read().get(names) {
            return Ok(acl.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let mut policies = Vec::with_capacity(names.len());
        for n in names {
            if let Some((p, _)) = self.get(n).await? {
                policies.push(p);
            }
        }
        let acl = Arc::new(Acl::new(&policies));
        let mut acls = self.acls.write();
        if self.generation.load(Ordering::SeqCst) == generation {
            acls.insert(names.to_vec(), acl.clone());
        }
        Ok(acl)
    }
}
