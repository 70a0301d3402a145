//! The `aws-access-keys` auth method: AWS-style access key pairs that sign requests with SigV4
//! (the AWS Secrets Manager dialect). Each named key is bound to policies; a signed request made
//! with it gets exactly those policies (plus `default`), with no token stored.
//!
//! Endpoints (relative to the mount, e.g. `auth/aws-keys/`):
//!
//! | path | operations |
//! |---|---|
//! | `keys/` | list the key names |
//! | `keys/<name>` | write: create (answers the pair, the secret shown this once) or change `policies`; read (never the secret); delete |
//! | `keys/<name>/rotate` | write: a new pair; the old one stops working at once |
//! | `config` | read / write `account_id` (12 digits, kept for the ARNs the dialect will build) |
//!
//! A create may bring its own pair (`access_key_id` + `secret_access_key`), for dev mode and for
//! migrating clients that already hold one; otherwise the pair is generated: `AKIA` + 16
//! characters of `[A-Z2-7]`, and a 40-character secret (30 random bytes, base64).
//!
//! Storage layout (under the mount's view, so the barrier encrypts every record; SigV4 needs
//! the secret itself, so it cannot be hashed):
//!
//! | key | record |
//! |---|---|
//! | `key/<name>` | access key id, secret, policies, created, last used (date) |
//! | `id/<access key id>` | the key's name (the index a signed request is resolved by) |
//! | `config` | the account id |
//!
//! Signed requests ([`Engine::resolve_signed`]): an unknown access key id is `Ok(None)` (the
//! core answers "unauthenticated", the AWS dialect `UnrecognizedClientException`); a known id
//! with a wrong signature is an `Unauthenticated` error whose message is
//! [`coffer_core::sigv4::SIGNATURE_MISMATCH`] (the dialect answers
//! `InvalidSignatureException`); a session token (`X-Amz-Security-Token`) is refused with
//! [`coffer_core::sigv4::INVALID_SECURITY_TOKEN`], since Coffer issues none yet.

#[cfg(test)]
mod tests;

use super::common::{
    is_write, list_param, load, not_found, op_check, op_delete, op_put, parse_policies, present,
    secret_param, string_param, unsupported_path, valid_name, Clock,
};
use async_trait::async_trait;
use coffer_core::barrier::{random_bytes, View};
use coffer_core::error::{CoreError, Result};
use coffer_core::optimistic::{commit_with_retries, Step};
use coffer_core::request::{Operation, Response, SignedIdentity, SignedProof};
use coffer_core::router::{Engine, EngineFactory, EngineRequest, MountEntry};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The mount type.
pub const MOUNT_TYPE: &str = "aws-access-keys";

/// Longest access key id accepted on import (AWS's limit).
const MAX_KEY_ID_LEN: usize = 128;
/// Longest secret accepted on import.
const MAX_SECRET_LEN: usize = 128;

const CONFIG_KEY: &str = "config";

/// The engine of one `aws-access-keys` mount.
#[derive(Default)]
pub struct AccessKeysEngine {
    clock: Clock,
    /// Signing keys derived for recent requests (used only with the secret they came from).
    signing_keys: coffer_core::sigv4::SigningKeyCache,
    /// Keys resolved for recent signed requests, by access key id.
    resolved: Resolved,
}

/// Access keys as signed requests resolve them, kept in memory so a signed request does not read
/// and decrypt three records. Emptied after every write this engine handles (keys, rotations,
/// deletions, config), and an entry read before a write is never stored after it (the
/// generation). The mount's storage is written only through this engine. With several nodes
/// writing one store, this needs a cross-node invalidation (as the policy cache does).
#[derive(Default)]
struct Resolved {
    entries: parking_lot::Mutex<std::collections::HashMap<String, Arc<ResolvedKey>>>,
    generation: std::sync::atomic::AtomicU64,
}

/// Most resolved keys kept.
const RESOLVED_CAPACITY: usize = 4096;

struct ResolvedKey {
    name: String,
    secret: Zeroizing<String>,
    policies: Vec<String>,
    account: Option<String>,
    /// The day the key was last recorded as used.
    last_used: parking_lot::Mutex<Option<String>>,
}

impl Resolved {
    fn get(&self, id: &str) -> Option<Arc<ResolvedKey>> {
        self.entries.lock().get(id).cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keep `key` unless a write happened since `generation` was read.
    fn put(&self, id: &str, key: Arc<ResolvedKey>, generation: u64) {
        let mut entries = self.entries.lock();
        if self.generation() != generation {
            return;
        }
        if entries.len() >= RESOLVED_CAPACITY {
            entries.clear();
        }
        entries.insert(id.to_string(), key);
    }

    fn invalidate(&self) {
        let mut entries = self.entries.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        entries.clear();
    }
}

impl std::fmt::Debug for AccessKeysEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeysEngine").finish_non_exhaustive()
    }
}

impl AccessKeysEngine {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Factory for mount type `aws-access-keys`.
pub fn access_keys_factory() -> EngineFactory {
    Arc::new(|_entry: &MountEntry| -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(AccessKeysEngine::new()))
    })
}

fn key_path(name: &str) -> String {
    format!("key/{name}")
}

fn id_path(id: &str) -> String {
    format!("id/{id}")
}

/// A stored key. No `Debug`, and the secret is wiped on drop.
#[derive(Clone, Serialize, Deserialize)]
struct KeyEntry {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    policies: Vec<String>,
    /// RFC 3339.
    created: String,
    /// `YYYY-MM-DD` of the last signed request that verified (best effort).
    #[serde(default)]
    last_used: Option<String>,
}

impl Drop for KeyEntry {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret_access_key);
    }
}

impl KeyEntry {
    /// As a read shows it: never the secret.
    fn data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "access_key_id".into(),
            Value::from(self.access_key_id.clone()),
        );
        m.insert("policies".into(), Value::from(self.policies.clone()));
        m.insert("created".into(), Value::from(self.created.clone()));
        m.insert(
            "last_used".into(),
            self.last_used
                .clone()
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        m
    }
}

#[derive(Serialize, Deserialize)]
struct IdEntry {
    name: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
}

/// A new or imported pair; the secret is wiped on drop.
struct KeyPair {
    id: String,
    secret: Zeroizing<String>,
}

impl KeyPair {
    /// `AKIA` + 16 characters of the base32 alphabet, and a 40-character base64 secret.
    fn generate() -> Result<KeyPair> {
        use base64::Engine as _;
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut raw = [0u8; 16];
        random_bytes(&mut raw)?;
        let mut id = String::from("AKIA");
        // 256 is a multiple of 32: no bias
        id.extend(raw.iter().map(|b| ALPHABET[usize::from(b % 32)] as char));
        let mut secret_raw = Zeroizing::new([0u8; 30]);
        random_bytes(secret_raw.as_mut())?;
        let secret =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(secret_raw.as_ref()));
        Ok(KeyPair { id, secret })
    }

    /// An imported pair (`access_key_id` + `secret_access_key`, both or neither); `None` when
    /// neither was sent.
    fn imported(data: &Map<String, Value>) -> Result<Option<KeyPair>> {
        let id = string_param(data, "access_key_id")?;
        let secret = secret_param(data, "secret_access_key")?;
        match (id, secret) {
            (None, None) => Ok(None),
            (Some(id), Some(secret)) => {
                if !valid_key_id(&id) {
                    return Err(CoreError::invalid(format!(
                        "access_key_id must be 1 to {MAX_KEY_ID_LEN} letters, digits or '_'"
                    )));
                }
                if secret.is_empty()
                    || secret.len() > MAX_SECRET_LEN
                    || !secret.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(CoreError::invalid(format!(
                        "secret_access_key must be 1 to {MAX_SECRET_LEN} printable ASCII \
                         characters without spaces"
                    )));
                }
                Ok(Some(KeyPair { id, secret }))
            }
            _ => Err(CoreError::invalid(
                "access_key_id and secret_access_key are given together or not at all",
            )),
        }
    }

    fn answer(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("access_key_id".into(), Value::from(self.id.clone()));
        m.insert(
            "secret_access_key".into(),
            Value::from(self.secret.as_str()),
        );
        m
    }
}

/// Access key ids Coffer stores and looks up: `[A-Za-z0-9_]{1,128}` (what a SigV4 credential
/// scope can carry, and a safe storage key).
fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `keys/<name>[/<rest>]` → (lowercased name, rest).
fn parse_name(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix("keys/")?;
    let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    if !valid_name(name) {
        return None;
    }
    Some((name.to_lowercase(), sub))
}

fn policies_param(data: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    list_param(data, "policies")?
        .map(parse_policies)
        .transpose()
}

/// Today (UTC) as `YYYY-MM-DD`.
fn day_of(unix: f64) -> String {
    coffer_core::util::format_unix(unix)
        .get(..10)
        .unwrap_or_default()
        .to_string()
}

impl AccessKeysEngine {
    async fn list_keys(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let keys = req.storage.list("key/").await?;
        if keys.is_empty() {
            return Err(not_found());
        }
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Ok(Some(Response::data(m)))
    }

    async fn read_key(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let entry = req
            .storage
            .get_json::<KeyEntry>(&key_path(name))
            .await?
            .ok_or_else(not_found)?;
        Ok(Some(Response::data(entry.data())))
    }

    /// Create (answers the pair once) or change the policies of an existing key (204).
    async fn write_key(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let policies = policies_param(req.data)?;
        let imported = KeyPair::imported(req.data)?;
        let key = &key_path(name);
        let existing = load::<KeyEntry>(req.storage, key, "access key").await?;
        if existing.is_some() {
            if imported.is_some() {
                return Err(CoreError::invalid(
                    "the pair of an existing key is replaced with keys/<name>/rotate",
                ));
            }
            let policies = &policies;
            return commit_with_retries(req.storage, || async move {
                let (mut entry, bytes) = load::<KeyEntry>(req.storage, key, "access key")
                    .await?
                    .ok_or_else(not_found)?;
                if let Some(p) = policies {
                    entry.policies = p.clone();
                }
                Ok(Step::Commit(
                    vec![
                        op_check(key.clone(), Some(&bytes)),
                        op_put(key.clone(), &entry)?,
                    ],
                    None,
                ))
            })
            .await;
        }
        let pair = match imported {
            Some(p) => p,
            None => KeyPair::generate()?,
        };
        let entry = KeyEntry {
            access_key_id: pair.id.clone(),
            secret_access_key: pair.secret.to_string(),
            policies: policies.unwrap_or_default(),
            created: coffer_core::util::now_rfc3339(),
            last_used: None,
        };
        let ops = vec![
            op_check(key.clone(), None),
            op_check(id_path(&pair.id), None),
            op_put(key.clone(), &entry)?,
            op_put(
                id_path(&pair.id),
                &IdEntry {
                    name: name.to_string(),
                },
            )?,
        ];
        req.storage.transaction(ops).await.map_err(|e| {
            if super::common::is_cas_failure(&e) {
                CoreError::new(
                    coffer_core::error::ErrorCode::AlreadyExists,
                    "the key or its access key id exists already",
                )
            } else {
                e
            }
        })?;
        let mut data = pair.answer();
        data.insert("policies".into(), Value::from(entry.policies.clone()));
        Ok(Some(Response::data(data)))
    }

    async fn rotate(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let key = &key_path(name);
        let pair = &KeyPair::generate()?;
        commit_with_retries(req.storage, || async move {
            let (mut entry, bytes) = load::<KeyEntry>(req.storage, key, "access key")
                .await?
                .ok_or_else(not_found)?;
            let old_id = std::mem::replace(&mut entry.access_key_id, pair.id.clone());
            entry.secret_access_key = pair.secret.to_string();
            entry.last_used = None;
            self.signing_keys.forget(&old_id);
            Ok(Step::Commit(
                vec![
                    op_check(key.clone(), Some(&bytes)),
                    op_check(id_path(&pair.id), None),
                    op_delete(id_path(&old_id)),
                    op_put(
                        id_path(&pair.id),
                        &IdEntry {
                            name: name.to_string(),
                        },
                    )?,
                    op_put(key.clone(), &entry)?,
                ],
                (),
            ))
        })
        .await?;
        Ok(Some(Response::data(pair.answer())))
    }

    async fn delete_key(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let key = &key_path(name);
        commit_with_retries(req.storage, || async move {
            let Some((entry, bytes)) = load::<KeyEntry>(req.storage, key, "access key").await?
            else {
                return Ok(Step::Done(()));
            };
            self.signing_keys.forget(&entry.access_key_id);
            Ok(Step::Commit(
                vec![
                    op_check(key.clone(), Some(&bytes)),
                    op_delete(id_path(&entry.access_key_id)),
                    op_delete(key.clone()),
                ],
                (),
            ))
        })
        .await?;
        Ok(None)
    }

    async fn config(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let stored = req
            .storage
            .get_json::<Config>(CONFIG_KEY)
            .await?
            .unwrap_or_default();
        match req.operation {
            Operation::Read => {
                let mut m = Map::new();
                m.insert(
                    "account_id".into(),
                    stored.account_id.map(Value::from).unwrap_or(Value::Null),
                );
                Ok(Some(Response::data(m)))
            }
            op if is_write(op) => {
                let mut cfg = stored;
                if present(req.data, "account_id").is_some() {
                    cfg.account_id = match string_param(req.data, "account_id")? {
                        Some(a) if a.is_empty() => None,
                        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => {
                            Some(a)
                        }
                        _ => return Err(CoreError::invalid("account_id must be 12 digits")),
                    };
                }
                req.storage.put_json(CONFIG_KEY, &cfg).await?;
                Ok(None)
            }
            _ => Err(CoreError::unsupported_operation()),
        }
    }

    /// Record the day a key was last used: at most one write per key and day, and a failure
    /// (a concurrent change, a sealed barrier) only skips the record.
    async fn touch(&self, storage: &View, name: &str, id: &str) {
        let today = day_of(self.clock.now());
        let key = key_path(name);
        let result: Result<()> = async {
            let Some((mut entry, bytes)) = load::<KeyEntry>(storage, &key, "access key").await?
            else {
                return Ok(());
            };
            if entry.access_key_id != id || entry.last_used.as_deref() == Some(today.as_str()) {
                return Ok(());
            }
            entry.last_used = Some(today.clone());
            storage
                .transaction(vec![
                    op_check(key.clone(), Some(&bytes)),
                    op_put(key.clone(), &entry)?,
                ])
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(code = ?e.code, "aws-access-keys: last_used not recorded");
        }
    }
}

impl AccessKeysEngine {
    async fn handle_request(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let op = req.operation;
        if req.path == "keys" || req.path == "keys/" {
            return if op == Operation::List {
                self.list_keys(req).await
            } else {
                Err(CoreError::unsupported_operation())
            };
        }
        if req.path == CONFIG_KEY {
            return self.config(req).await;
        }
        let Some((name, sub)) = parse_name(req.path) else {
            return Err(unsupported_path(req));
        };
        let name = name.as_str();
        match (sub, op) {
            ("", Operation::Read) => self.read_key(req, name).await,
            ("", op) if is_write(op) => self.write_key(req, name).await,
            ("", Operation::Delete) => self.delete_key(req, name).await,
            ("rotate", op) if is_write(op) => self.rotate(req, name).await,
            ("" | "rotate", _) => Err(CoreError::unsupported_operation()),
            _ => Err(unsupported_path(req)),
        }
    }
}

#[async_trait]
impl Engine for AccessKeysEngine {
    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let result = self.handle_request(req).await;
        if !matches!(req.operation, Operation::Read | Operation::List) {
            // whatever was written (or may have been), resolve afresh from storage
            self.resolved.invalidate();
        }
        result
    }

    async fn exists(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        if !is_write(req.operation) {
            return Ok(None);
        }
        match parse_name(req.path) {
            Some((name, "")) => Ok(Some(req.storage.get(&key_path(&name)).await?.is_some())),
            _ => Ok(None),
        }
    }

    /// `keys/<name>`: one lowercase spelling for the ACL and the handler.
    fn canonical_path<'a>(&self, rel: &'a str) -> Result<std::borrow::Cow<'a, str>> {
        coffer_core::names::canonical_segment(rel, &["keys/"], |n| {
            coffer_core::names::object_name("key name", n)
        })
    }

    fn issues_signing_keys(&self) -> bool {
        true
    }

    async fn resolve_signed(
        &self,
        storage: &View,
        proof: &SignedProof,
    ) -> Result<Option<SignedIdentity>> {
        let id = proof.access_key_id.as_str();
        if !valid_key_id(id) {
            return Ok(None);
        }
        let key = match self.resolved.get(id) {
            Some(k) => k,
            None => {
                let generation = self.resolved.generation();
                let Some(index) = storage.get_json::<IdEntry>(&id_path(id)).await? else {
                    return Ok(None);
                };
                let Some(entry) = storage.get_json::<KeyEntry>(&key_path(&index.name)).await?
                else {
                    return Ok(None);
                };
                // a stale index (the key was rotated in between): the id is no longer issued
                if entry.access_key_id != id {
                    return Ok(None);
                }
                // the account the key belongs to (the AWS dialect shows it in ARNs)
                let account = storage
                    .get_json::<Config>(CONFIG_KEY)
                    .await?
                    .and_then(|c| c.account_id);
                let key = Arc::new(ResolvedKey {
                    name: index.name,
                    secret: Zeroizing::new(entry.secret_access_key.clone()),
                    policies: entry.policies.clone(),
                    account,
                    last_used: parking_lot::Mutex::new(entry.last_used.clone()),
                });
                self.resolved.put(id, key.clone(), generation);
                key
            }
        };
        if proof.security_token.is_some() {
            return Err(coffer_core::sigv4::invalid_security_token());
        }
        if !self.signing_keys.verify(id, key.secret.as_bytes(), proof) {
            return Err(coffer_core::sigv4::signature_mismatch());
        }
        let today = day_of(self.clock.now());
        let stale = key.last_used.lock().as_deref() != Some(today.as_str());
        if stale {
            self.touch(storage, &key.name, id).await;
            *key.last_used.lock() = Some(today);
        }
        let mut metadata = Map::new();
        metadata.insert("key_name".into(), Value::from(key.name.clone()));
        if let Some(account) = &key.account {
            metadata.insert("account_id".into(), Value::from(account.clone()));
        }
        Ok(Some(SignedIdentity {
            policies: key.policies.clone(),
            display_name: format!("aws-{}", key.name),
            accessor: id.to_string(),
            metadata,
        }))
    }
}
