//! The barrier: every byte Coffer stores passes through here and is encrypted with AES-256-GCM
//! (aws-lc-rs), a fresh random nonce per write and the storage key as associated data.
//!
//! Keys come from a keyring with numbered terms; `rotate` adds a term, and data written under an
//! older term stays readable. The keyring itself is stored encrypted under the root key, which
//! only exists in memory while unsealed. All key material is zeroized on drop; sealing drops it.

use crate::error::{CoreError, Result};
use arc_swap::ArcSwapOption;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use coffer_storage::{Backend, TxnOp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// Storage key of the keyring (encrypted under the root key, outside the barrier).
pub const KEYRING_PATH: &str = "core/keyring";
/// Keys that live outside the barrier; the barrier refuses to touch them.
const RAW_PREFIXES: [&str; 3] = ["core/keyring", "core/seal-config", "core/seal-wrapped"];

const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// Fill a buffer from the operating system's CSPRNG (via aws-lc).
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CoreError::internal("random number generator failed"))
}

/// A 256-bit key that wipes itself when dropped. Debug never shows the bytes.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn generate() -> Result<Self> {
        let mut k = [0u8; 32];
        random_bytes(&mut k)?;
        Ok(SecretKey(k))
    }
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CoreError::invalid("key must be 32 bytes"))?;
        Ok(SecretKey(arr))
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Encrypt `plaintext` under `key` (term number recorded in the header) with `aad`.
fn seal_with(key: &LessSafeKey, term: u32, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + AES_256_GCM.tag_len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| CoreError::internal("encryption failed"))?;
    out.extend_from_slice(&body);
    body.zeroize();
    Ok(out)
}

/// Parse the header of a sealed blob: (term, nonce, ciphertext-with-tag).
fn split_blob(blob: &[u8]) -> Result<(u32, [u8; NONCE_LEN], &[u8])> {
    if blob.len() < HEADER_LEN + AES_256_GCM.tag_len() || blob[0] != FORMAT_V1 {
        return Err(CoreError::internal(
            "stored value is not a valid barrier ciphertext",
        ));
    }
    let term = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[5..HEADER_LEN]);
    Ok((term, nonce, &blob[HEADER_LEN..]))
}

fn open_with(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(ct.to_vec());
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| CoreError::internal("decryption failed: wrong key or corrupted data"))?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn aead_key(key: &SecretKey) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&AES_256_GCM, key.as_bytes())
        .map_err(|_| CoreError::internal("invalid AES key"))?;
    Ok(LessSafeKey::new(unbound))
}

/// Encrypt a value under a standalone key (used for the keyring and static seal wrapping).
pub fn encrypt_standalone(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    seal_with(&aead_key(key)?, 0, aad, plaintext)
}

/// Decrypt a value produced by [`encrypt_standalone`].
pub fn decrypt_standalone(key: &SecretKey, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let (_, nonce, ct) = split_blob(blob)?;
    open_with(&aead_key(key)?, nonce, aad, ct)
}

struct TermKey {
    key: SecretKey,
    aead: LessSafeKey,
    install_time: String,
}

/// The unsealed keyring: root key plus every term's data key.
struct Keyring {
    root: SecretKey,
    active: u32,
    terms: BTreeMap<u32, TermKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    install_time: String,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    active_term: u32,
    keys: Vec<StoredTerm>,
}

impl Keyring {
    fn serialize(&self) -> Result<Zeroizing<Vec<u8>>> {
        use base64::Engine;
        let stored = StoredKeyring {
            active_term: self.active,
            keys: self
                .terms
                .iter()
                .map(|(t, k)| StoredTerm {
                    term: *t,
                    key: base64::engine::general_purpose::STANDARD.encode(k.key.as_bytes()),
                    install_time: k.install_time.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| CoreError::internal(e.to_string()));
        let mut stored = stored;
        for k in &mut stored.keys {
            k.key.zeroize();
        }
        Ok(Zeroizing::new(bytes?))
    }

    fn deserialize(root: SecretKey, bytes: &[u8]) -> Result<Keyring> {
        use base64::Engine;
        let mut stored: StoredKeyring = serde_json::from_slice(bytes)
            .map_err(|_| CoreError::internal("keyring is corrupted"))?;
        let mut terms = BTreeMap::new();
        for t in &mut stored.keys {
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(t.key.as_bytes())
                    .map_err(|_| CoreError::internal("keyring is corrupted"))?,
            );
            t.key.zeroize();
            let key = SecretKey::from_slice(&raw)?;
            terms.insert(
                t.term,
                TermKey {
                    aead: aead_key(&key)?,
                    key,
                    install_time: t.install_time.clone(),
                },
            );
        }
        if !terms.contains_key(&stored.active_term) {
            return Err(CoreError::internal("keyring has no active term"));
        }
        Ok(Keyring {
            root,
            active: stored.active_term,
            terms,
        })
    }
}

/// What `sys/key-status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: String,
}

/// The encrypting wrapper around a physical backend.
pub struct Barrier {
    backend: Arc<dyn Backend>,
    keyring: ArcSwapOption<Keyring>,
}

/// The AAD of a sealed value: a NUL byte first, which no storage key (the AAD of stored
/// records) starts with, so a sealed value never opens as a record or the other way round.
fn sealed_value_aad(purpose: &str) -> String {
    format!("\0sealed-value\0{purpose}")
}

fn check_key(key: &str) -> Result<()> {
    if RAW_PREFIXES.iter().any(|p| key.starts_with(p)) {
        return Err(CoreError::internal("reserved storage key"));
    }
    Ok(())
}

fn now_rfc3339() -> String {
    crate::util::now_rfc3339()
}

impl Barrier {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Barrier {
            backend,
            keyring: ArcSwapOption::empty(),
        }
    }

    /// The physical backend, for the few raw (unencrypted) records: seal config, sealed keyring.
    pub fn raw(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Whether a keyring has ever been written (the server is initialized).
    pub async fn initialized(&self) -> Result<bool> {
        Ok(self.backend.get(KEYRING_PATH).await?.is_some())
    }

    /// Create a fresh keyring (term 1) protected by `root`, and unseal with it.
    pub async fn initialize(&self, root: &SecretKey) -> Result<()> {
        if self.initialized().await? {
            return Err(CoreError::new(
                crate::error::ErrorCode::AlreadyInitialized,
                "the server is already initialized",
            ));
        }
        let key = SecretKey::generate()?;
        let mut terms = BTreeMap::new();
        terms.insert(
            1,
            TermKey {
                aead: aead_key(&key)?,
                key,
                install_time: now_rfc3339(),
            },
        );
        let ring = Keyring {
            root: root.clone(),
            active: 1,
            terms,
        };
        self.persist(&ring).await?;
        self.keyring.store(Some(Arc::new(ring)));
        Ok(())
    }

    async fn persist(&self, ring: &Keyring) -> Result<()> {
        let plain = ring.serialize()?;
        let blob = encrypt_standalone(&ring.root, KEYRING_PATH.as_bytes(), &plain)?;
        self.backend.put(KEYRING_PATH, blob).await?;
        Ok(())
    }

    /// Load the keyring with the root key. A wrong key fails and leaves the barrier sealed.
    pub async fn unseal(&self, root: &SecretKey) -> Result<()> {
        let blob = self.backend.get(KEYRING_PATH).await?.ok_or_else(|| {
            CoreError::new(
                crate::error::ErrorCode::NotInitialized,
                "the server is not initialized",
            )
        })?;
        let plain = decrypt_standalone(root, KEYRING_PATH.as_bytes(), &blob)
            .map_err(|_| CoreError::invalid("unseal failed: invalid key"))?;
        let ring = Keyring::deserialize(root.clone(), &plain)?;
        self.keyring.store(Some(Arc::new(ring)));
        Ok(())
    }

    /// HMAC-SHA256 of `msg` under a key derived for `purpose` from the keyring's first term key
    /// (the nodes of a cluster, unsealed with the same keyring, agree on it; nothing else knows
    /// it; key rotations and rekeys leave the first term in place).
    pub fn mac(&self, purpose: &str, msg: &[u8]) -> Result<Vec<u8>> {
        use aws_lc_rs::hmac;
        let ring = self.ring()?;
        let first = ring
            .terms
            .values()
            .next()
            .ok_or_else(|| CoreError::internal("the keyring has no key"))?;
        let derive = hmac::Key::new(hmac::HMAC_SHA256, first.key.as_bytes());
        let derived = hmac::sign(&derive, format!("coffer-mac/{purpose}").as_bytes());
        let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        Ok(hmac::sign(&key, msg).as_ref().to_vec())
    }

    /// Whether `tag` is [`Barrier::mac`]'s tag of `msg` (compared in constant time).
    pub fn verify_mac(&self, purpose: &str, msg: &[u8], tag: &[u8]) -> bool {
        match self.mac(purpose, msg) {
            Ok(expected) => bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_slice(), tag)),
            Err(_) => false,
        }
    }

    /// Read the keyring again from storage (another node may have rotated it), with the root
    /// key this barrier was unsealed with.
    pub async fn reload(&self) -> Result<()> {
        let root = self.ring()?.root.clone();
        self.unseal(&root).await
    }

    /// Forget every key. In-flight operations holding the old keyring finish; the keys are wiped
    /// when the last of them drops it.
    pub fn seal(&self) {
        self.keyring.store(None);
    }

    pub fn is_sealed(&self) -> bool {
        self.keyring.load().is_none()
    }

    fn ring(&self) -> Result<Arc<Keyring>> {
        self.keyring.load_full().ok_or_else(CoreError::sealed)
    }

    /// Add a new key term; new writes use it, old data stays readable.
    pub async fn rotate(&self) -> Result<KeyStatus> {
        let old = self.ring()?;
        let mut terms = BTreeMap::new();
        for (t, k) in &old.terms {
            terms.insert(
                *t,
                TermKey {
                    aead: aead_key(&k.key)?,
                    key: k.key.clone(),
                    install_time: k.install_time.clone(),
                },
            );
        }
        let next = old.active + 1;
        let key = SecretKey::generate()?;
        let install_time = now_rfc3339();
        terms.insert(
            next,
            TermKey {
                aead: aead_key(&key)?,
                key,
                install_time: install_time.clone(),
            },
        );
        let ring = Keyring {
            root: old.root.clone(),
            active: next,
            terms,
        };
        self.persist(&ring).await?;
        self.keyring.store(Some(Arc::new(ring)));
        Ok(KeyStatus {
            term: next,
            install_time,
        })
    }

    /// Whether `candidate` is the root key protecting the keyring (compared in constant time).
    pub fn verify_root(&self, candidate: &[u8]) -> Result<bool> {
        let ring = self.ring()?;
        Ok(subtle::ConstantTimeEq::ct_eq(ring.root.as_bytes().as_slice(), candidate).into())
    }

    /// Protect the keyring with `new_root` from now on (rekey). The re-encrypted keyring is
    /// written in one transaction with `extra` raw records (the new seal configuration), so the
    /// stored keyring and the seal configuration never disagree. The data keys stay as they are.
    pub async fn rekey(&self, new_root: &SecretKey, extra: Vec<TxnOp>) -> Result<()> {
        let old = self.ring()?;
        let mut terms = BTreeMap::new();
        for (t, k) in &old.terms {
            terms.insert(
                *t,
                TermKey {
                    aead: aead_key(&k.key)?,
                    key: k.key.clone(),
                    install_time: k.install_time.clone(),
                },
            );
        }
        let ring = Keyring {
            root: new_root.clone(),
            active: old.active,
            terms,
        };
        let plain = ring.serialize()?;
        let blob = encrypt_standalone(&ring.root, KEYRING_PATH.as_bytes(), &plain)?;
        let mut ops = vec![TxnOp::Put {
            key: KEYRING_PATH.to_string(),
            value: blob,
        }];
        ops.extend(extra);
        self.backend.transaction(ops).await?;
        self.keyring.store(Some(Arc::new(ring)));
        Ok(())
    }

    pub fn key_status(&self) -> Result<KeyStatus> {
        let ring = self.ring()?;
        let active = ring
            .terms
            .get(&ring.active)
            .ok_or_else(|| CoreError::internal("keyring has no active term"))?;
        Ok(KeyStatus {
            term: ring.active,
            install_time: active.install_time.clone(),
        })
    }

    fn encrypt(&self, ring: &Keyring, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let term = ring
            .terms
            .get(&ring.active)
            .ok_or_else(|| CoreError::internal("keyring has no active term"))?;
        seal_with(&term.aead, ring.active, key.as_bytes(), value)
    }

    fn decrypt(&self, ring: &Keyring, key: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (term, nonce, ct) = split_blob(blob)?;
        let tk = ring
            .terms
            .get(&term)
            .ok_or_else(|| CoreError::internal("value encrypted under an unknown key term"))?;
        open_with(&tk.aead, nonce, key.as_bytes(), ct)
    }

    /// Seal a value that leaves the storage (e.g. a secret's backup) under the active data key,
    /// bound to `purpose` (the AAD, kept apart from every storage key's). Only a Coffer holding
    /// the same keyring opens it ([`Self::open_value`]); key rotation keeps old terms, so it
    /// still opens after a rotation.
    pub fn seal_value(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let ring = self.ring()?;
        self.encrypt(&ring, &sealed_value_aad(purpose), plaintext)
    }

    /// Open a value sealed by [`Self::seal_value`] for the same `purpose`.
    pub fn open_value(&self, purpose: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let ring = self.ring()?;
        self.decrypt(&ring, &sealed_value_aad(purpose), blob)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        check_key(key)?;
        let ring = self.ring()?;
        match self.backend.get(key).await? {
            None => Ok(None),
            Some(blob) => Ok(Some(self.decrypt(&ring, key, &blob)?)),
        }
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        check_key(key)?;
        let ring = self.ring()?;
        let blob = self.encrypt(&ring, key, value)?;
        self.backend.put(key, blob).await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.ring()?;
        self.backend.delete(key).await?;
        Ok(())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.ring()?;
        Ok(self.backend.list(prefix).await?)
    }

    /// Atomically apply plaintext operations. A `Check` compares plaintext: the current value is
    /// read and decrypted, and the physical transaction then checks the exact ciphertext it saw,
    /// so a concurrent change between the read and the commit fails the transaction.
    pub async fn transaction(&self, ops: Vec<BarrierOp>) -> Result<()> {
        let ring = self.ring()?;
        let mut phys = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                BarrierOp::Put { key, value } => {
                    check_key(&key)?;
                    let blob = self.encrypt(&ring, &key, &value)?;
                    phys.push(TxnOp::Put { key, value: blob });
                }
                BarrierOp::Delete { key } => {
                    check_key(&key)?;
                    phys.push(TxnOp::Delete { key });
                }
                BarrierOp::Check { key, expected } => {
                    check_key(&key)?;
                    let current = self.backend.get(&key).await?;
                    let matches = match (&current, &expected) {
                        (None, None) => true,
                        (Some(blob), Some(want)) => {
                            let plain = self.decrypt(&ring, &key, blob)?;
                            subtle::ConstantTimeEq::ct_eq(plain.as_slice(), want.as_slice()).into()
                        }
                        _ => false,
                    };
                    if !matches {
                        return Err(coffer_storage::StorageError::CasFailed(key).into());
                    }
                    phys.push(TxnOp::Check {
                        key,
                        expected: current,
                    });
                }
            }
        }
        self.backend.transaction(phys).await?;
        Ok(())
    }
}

/// A plaintext operation of [`Barrier::transaction`].
pub enum BarrierOp {
    Put {
        key: String,
        value: Zeroizing<Vec<u8>>,
    },
    Delete {
        key: String,
    },
    Check {
        key: String,
        expected: Option<Zeroizing<Vec<u8>>>,
    },
}

impl fmt::Debug for BarrierOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarrierOp::Put { key, .. } => write!(f, "Put({key})"),
            BarrierOp::Delete { key } => write!(f, "Delete({key})"),
            BarrierOp::Check { key, .. } => write!(f, "Check({key})"),
        }
    }
}

/// A prefixed window onto the barrier, handed to one mount or subsystem.
#[derive(Clone)]
pub struct View {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl View {
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        View {
            barrier,
            prefix: prefix.into(),
        }
    }
    pub fn sub(&self, prefix: &str) -> View {
        View {
            barrier: self.barrier.clone(),
            prefix: format!("{}{}", self.prefix, prefix),
        }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    fn full(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
    /// [`Barrier::seal_value`].
    pub fn seal_value(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.barrier.seal_value(purpose, plaintext)
    }
    /// [`Barrier::open_value`].
    pub fn open_value(&self, purpose: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.barrier.open_value(purpose, blob)
    }
    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        self.barrier.get(&self.full(key)).await
    }
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| CoreError::internal(format!("stored record {key} is corrupted"))),
        }
    }
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.barrier.put(&self.full(key), value).await
    }
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| CoreError::internal(e.to_string()))?,
        );
        self.put(key, &bytes).await
    }
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.barrier.delete(&self.full(key)).await
    }
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.barrier.list(&self.full(prefix)).await
    }
    /// Transaction with keys relative to this view.
    pub async fn transaction(&self, ops: Vec<BarrierOp>) -> Result<()> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BarrierOp::Put { key, value } => BarrierOp::Put {
                    key: self.full(&key),
                    value,
                },
                BarrierOp::Delete { key } => BarrierOp::Delete {
                    key: self.full(&key),
                },
                BarrierOp::Check { key, expected } => BarrierOp::Check {
                    key: self.full(&key),
                    expected,
                },
            })
            .collect();
        self.barrier.transaction(ops).await
    }
    /// Delete every key under `prefix` (recursively).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let mut stack = vec![prefix.to_string()];
        while let Some(p) = stack.pop() {
            for entry in self.list(&p).await? {
                let full = format!("{p}{entry}");
                if entry.ends_with('/') {
                    stack.push(full);
                } else {
                    self.delete(&full).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_storage::InmemBackend;

    #[tokio::test]
    async fn roundtrip_rotate_and_seal() {
        let backend: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let b = Barrier::new(backend.clone());
        let root = SecretKey::generate().unwrap();
        b.initialize(&root).await.unwrap();
        b.put("logical/a", b"MARKER-abc").await.unwrap();
        let raw = backend.get("logical/a").await.unwrap().unwrap();
        assert!(!raw.windows(6).any(|w| w == b"MARKER"));
        let st = b.rotate().await.unwrap();
        assert_eq!(st.term, 2);
        b.put("logical/b", b"second").await.unwrap();
        assert_eq!(&**b.get("logical/a").await.unwrap().unwrap(), b"MARKER-abc");
        b.seal();
        assert!(b.get("logical/a").await.is_err());
        let wrong = SecretKey::generate().unwrap();
        assert!(b.unseal(&wrong).await.is_err());
        assert!(b.is_sealed());
        b.unseal(&root).await.unwrap();
        assert_eq!(&**b.get("logical/b").await.unwrap().unwrap(), b"second");
        assert_eq!(b.key_status().unwrap().term, 2);
    }

    #[tokio::test]
    async fn rekey_changes_the_root_and_keeps_the_data() {
        let backend: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let b = Barrier::new(backend.clone());
        let old = SecretKey::generate().unwrap();
        b.initialize(&old).await.unwrap();
        b.put("logical/a", b"kept").await.unwrap();
        assert!(b.verify_root(old.as_bytes()).unwrap());
        let new = SecretKey::generate().unwrap();
        let extra = vec![TxnOp::Put {
            key: "core/seal-config".into(),
            value: b"cfg".to_vec(),
        }];
        b.rekey(&new, extra).await.unwrap();
        assert!(b.verify_root(new.as_bytes()).unwrap());
        assert!(!b.verify_root(old.as_bytes()).unwrap());
        assert_eq!(
            backend.get("core/seal-config").await.unwrap().unwrap(),
            b"cfg"
        );
        b.seal();
        assert!(
            b.unseal(&old).await.is_err(),
            "the old root key must no longer open it"
        );
        b.unseal(&new).await.unwrap();
        assert_eq!(&**b.get("logical/a").await.unwrap().unwrap(), b"kept");
    }

    #[test]
    fn secret_key_wipes_itself_on_drop() {
        let mut slot = std::mem::ManuallyDrop::new(SecretKey([0x5a; 32]));
        // run the destructor in place, then look at the memory it leaves behind
        unsafe { std::ptr::drop_in_place(&mut *slot) };
        assert_eq!(slot.0, [0u8; 32]);
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = SecretKey([0x41; 32]);
        assert_eq!(format!("{k:?}"), "SecretKey(<redacted>)");
    }

    #[tokio::test]
    async fn ciphertext_bound_to_key() {
        let backend: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let b = Barrier::new(backend.clone());
        b.initialize(&SecretKey::generate().unwrap()).await.unwrap();
        b.put("x", b"v").await.unwrap();
        let blob = backend.get("x").await.unwrap().unwrap();
        backend.put("y", blob).await.unwrap();
        assert!(
            b.get("y").await.is_err(),
            "moved ciphertext must not decrypt"
        );
        assert!(b.put("core/keyring", b"x").await.is_err());
    }

    #[tokio::test]
    async fn sealed_values_open_only_for_their_purpose_and_keyring() {
        let backend: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let b = Barrier::new(backend.clone());
        b.initialize(&SecretKey::generate().unwrap()).await.unwrap();
        let blob = b.seal_value("kv-backup/a", b"MARKER-payload").unwrap();
        assert!(!blob.windows(6).any(|w| w == b"MARKER"));
        assert_eq!(
            &**b.open_value("kv-backup/a", &blob).unwrap(),
            b"MARKER-payload"
        );
        assert!(
            b.open_value("kv-backup/b", &blob).is_err(),
            "bound to its purpose"
        );
        // a sealed value is not a stored record, and a stored record is not a sealed value
        backend.put("kv-backup/a", blob.clone()).await.unwrap();
        assert!(b.get("kv-backup/a").await.is_err());
        b.put("x", b"v").await.unwrap();
        let record = backend.get("x").await.unwrap().unwrap();
        assert!(b.open_value("x", &record).is_err());
        // still opens after a key rotation; never in another keyring
        b.rotate().await.unwrap();
        assert_eq!(
            &**b.open_value("kv-backup/a", &blob).unwrap(),
            b"MARKER-payload"
        );
        let other = Barrier::new(Arc::new(InmemBackend::new()));
        other
            .initialize(&SecretKey::generate().unwrap())
            .await
            .unwrap();
        assert!(other.open_value("kv-backup/a", &blob).is_err());
        b.seal();
        assert!(
            b.seal_value("kv-backup/a", b"x").is_err(),
            "sealed means inert"
        );
    }
}
