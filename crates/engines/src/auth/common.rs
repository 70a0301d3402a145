//! Pieces shared by the auth methods: parameter parsing with Vault's weak typing, the common
//! `token_*` fields (Vault's `tokenutil`), name validation, the per-mount HMAC key, a clock that
//! tests can move forward, and the storage retry loop.
//!
//! Error messages name parameters, never their values.

use coffer_core::barrier::{random_bytes, BarrierOp, View};
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::optimistic::{commit_with_retries, Step};
use coffer_core::request::LoginAuth;
use coffer_core::router::EngineRequest;
use coffer_core::util;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use zeroize::Zeroizing;

/// Vault's system maximum lease TTL (768h), used when the mount sets none.
pub(crate) const SYSTEM_MAX_LEASE_TTL: u64 = 768 * 3600;

/// How many times a read-check-write cycle is retried when a concurrent writer won the race.
pub(crate) use coffer_core::optimistic::MAX_ATTEMPTS as MAX_CAS_RETRIES;

/// Longest name or credential Vault HMACs (role names, secret IDs).
pub(crate) const MAX_HMAC_INPUT: usize = 4096;

/// The mount's maximum lease TTL in seconds.
pub(crate) fn mount_max_ttl(req: &EngineRequest<'_>) -> u64 {
    match req.mount.config.max_lease_ttl {
        0 => SYSTEM_MAX_LEASE_TTL,
        n => n,
    }
}

/// Vault's `GenericNameRegex` (see [`coffer_core::names::is_generic_name`]).
pub(crate) fn valid_name(name: &str) -> bool {
    coffer_core::names::is_generic_name(name)
}

/// The token display name prefix Vault derives from the mount path: `auth/userpass/` →
/// `userpass-`.
pub(crate) fn display_source(mount_path: &str) -> String {
    mount_path
        .strip_prefix("auth/")
        .unwrap_or(mount_path)
        .replace('/', "-")
}

pub(crate) fn is_write(op: coffer_core::request::Operation) -> bool {
    use coffer_core::request::Operation;
    matches!(op, Operation::Create | Operation::Update)
}

pub(crate) fn is_cas_failure(e: &CoreError) -> bool {
    e.code == ErrorCode::Conflict
}

pub(crate) fn too_much_contention() -> CoreError {
    CoreError::new(
        ErrorCode::Conflict,
        "too many concurrent changes; please retry",
    )
}

/// Vault answers a missing item with a bare 404.
pub(crate) fn not_found() -> CoreError {
    CoreError::not_found("")
}

pub(crate) fn unsupported_path(req: &EngineRequest<'_>) -> CoreError {
    CoreError::unsupported_path(&format!("{}{}", req.mount.path, req.path))
}

pub(crate) fn to_json_bytes<T: Serialize>(v: &T) -> Result<Zeroizing<Vec<u8>>> {
    serde_json::to_vec(v)
        .map(Zeroizing::new)
        .map_err(|_| CoreError::internal("could not encode a record"))
}

pub(crate) fn from_json_bytes<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|_| CoreError::internal(format!("stored {what} record is corrupted")))
}

/// Read a JSON record together with the exact bytes read (for a later `BarrierOp::Check`).
pub(crate) async fn load<T: serde::de::DeserializeOwned>(
    storage: &View,
    key: &str,
    what: &str,
) -> Result<Option<(T, Zeroizing<Vec<u8>>)>> {
    match storage.get(key).await? {
        None => Ok(None),
        Some(bytes) => Ok(Some((from_json_bytes(&bytes, what)?, bytes))),
    }
}

pub(crate) fn op_check(key: impl Into<String>, expected: Option<&Zeroizing<Vec<u8>>>) -> BarrierOp {
    BarrierOp::Check {
        key: key.into(),
        expected: expected.cloned(),
    }
}

pub(crate) fn op_put<T: Serialize>(key: impl Into<String>, v: &T) -> Result<BarrierOp> {
    Ok(BarrierOp::Put {
        key: key.into(),
        value: to_json_bytes(v)?,
    })
}

pub(crate) fn op_delete(key: impl Into<String>) -> BarrierOp {
    BarrierOp::Delete { key: key.into() }
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

pub(crate) use coffer_core::params::{
    bool_param, duration_param, int_param, list_param, non_negative_duration, present,
    secret_param, string_param,
};

/// A list of CIDR blocks (bare addresses allowed), validated; `msg` is the error to give.
pub(crate) fn cidr_param(
    data: &Map<String, Value>,
    key: &str,
    msg: &str,
) -> Result<Option<Vec<String>>> {
    let Some(list) = list_param(data, key)? else {
        return Ok(None);
    };
    util::parse_cidrs(&list).map_err(|_| CoreError::invalid(msg))?;
    Ok(Some(list))
}

/// Whether every block of `inner` lies inside some block of `outer` (an empty `outer` allows
/// anything).
pub(crate) fn cidrs_subset(inner: &[String], outer: &[String]) -> bool {
    if inner.is_empty() || outer.is_empty() {
        return true;
    }
    let (Ok(inner), Ok(outer)) = (util::parse_cidrs(inner), util::parse_cidrs(outer)) else {
        return false;
    };
    inner
        .iter()
        .all(|i| outer.iter().any(|o| o.contains(&i.trunc())))
}

/// Vault's `policyutil.ParsePolicies` (for the legacy `policies` field): canonical names
/// (lowercase), without empties or duplicates, sorted. Reserved policies (`root`,
/// `response-wrapping`) and names that are not canonical are refused: auth methods cannot
/// create root tokens.
pub(crate) fn parse_policies(list: Vec<String>) -> Result<Vec<String>> {
    let mut out = policy_names(list)?;
    out.sort();
    Ok(out)
}

/// Vault's `policyutil.EquivalentPolicies`: the same set of policies, leaving out `default`
/// (the core may have added it to a token after the method's login answered).
pub(crate) fn equivalent_policies(a: &[String], b: &[String]) -> bool {
    use std::collections::BTreeSet;
    let set = |l: &[String]| -> BTreeSet<String> {
        l.iter().filter(|p| *p != "default").cloned().collect()
    };
    set(a) == set(b)
}

/// `token_policies`: canonical names, without empties or duplicates, order kept; reserved
/// policies and names that are not canonical are refused.
fn policy_names(list: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for p in list {
        if p.is_empty() {
            continue;
        }
        let p = coffer_core::names::policy_name(&p)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    coffer_core::names::refuse_reserved_policies(&out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Token fields
// ---------------------------------------------------------------------------------------------

/// The common token settings of a role or user (Vault's `tokenutil.TokenParams`). Durations in
/// seconds.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Debug)]
pub(crate) struct TokenParams {
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    #[serde(default)]
    pub token_explicit_max_ttl: u64,
    #[serde(default)]
    pub token_max_ttl: u64,
    #[serde(default)]
    pub token_no_default_policy: bool,
    #[serde(default)]
    pub token_num_uses: u64,
    #[serde(default)]
    pub token_period: u64,
    #[serde(default)]
    pub token_policies: Vec<String>,
    /// `default`, `service` or `batch`.
    #[serde(default = "default_token_type")]
    pub token_type: String,
    #[serde(default)]
    pub token_ttl: u64,
}

fn default_token_type() -> String {
    "default".into()
}

impl TokenParams {
    pub fn new() -> Self {
        TokenParams {
            token_type: default_token_type(),
            ..Default::default()
        }
    }

    /// Apply the `token_*` parameters present in `data` (Vault's `ParseTokenFields`).
    pub fn parse(&mut self, data: &Map<String, Value>) -> Result<()> {
        if let Some(c) = cidr_param(
            data,
            "token_bound_cidrs",
            "invalid CIDR block in token_bound_cidrs",
        )? {
            self.token_bound_cidrs = c;
        }
        if let Some(v) = non_negative_duration(data, "token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = v;
        }
        if let Some(v) = non_negative_duration(data, "token_max_ttl")? {
            self.token_max_ttl = v;
        }
        if let Some(v) = bool_param(data, "token_no_default_policy")? {
            self.token_no_default_policy = v;
        }
        if let Some(v) = non_negative_duration(data, "token_period")? {
            self.token_period = v;
        }
        if let Some(v) = list_param(data, "token_policies")? {
            self.token_policies = policy_names(v)?;
        }
        if let Some(t) = string_param(data, "token_type")? {
            self.token_type = match t.as_str() {
                "" | "default" => "default".into(),
                "service" => "service".into(),
                "batch" => "batch".into(),
                _ => return Err(CoreError::invalid("invalid 'token_type' value")),
            };
        }
        if let Some(n) = int_param(data, "token_num_uses")? {
            self.token_num_uses = u64::try_from(n)
                .map_err(|_| CoreError::invalid("'token_num_uses' cannot be negative"))?;
        }
        if self.token_type == "batch" {
            if self.token_period != 0 {
                return Err(CoreError::invalid(
                    "'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens",
                ));
            }
            if self.token_num_uses != 0 {
                return Err(CoreError::invalid(
                    "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count",
                ));
            }
        }
        if let Some(v) = non_negative_duration(data, "token_ttl")? {
            self.token_ttl = v;
        }
        if self.token_ttl > 0 && self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(CoreError::invalid(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        Ok(())
    }

    /// The fields as Vault reads them back (`PopulateTokenData`).
    pub fn populate(&self, m: &mut Map<String, Value>) {
        m.insert(
            "token_bound_cidrs".into(),
            Value::from(self.token_bound_cidrs.clone()),
        );
        m.insert(
            "token_explicit_max_ttl".into(),
            Value::from(self.token_explicit_max_ttl),
        );
        m.insert("token_max_ttl".into(), Value::from(self.token_max_ttl));
        m.insert(
            "token_no_default_policy".into(),
            Value::from(self.token_no_default_policy),
        );
        m.insert("token_num_uses".into(), Value::from(self.token_num_uses));
        m.insert("token_period".into(), Value::from(self.token_period));
        m.insert(
            "token_policies".into(),
            Value::from(self.token_policies.clone()),
        );
        m.insert("token_type".into(), Value::from(self.token_type.clone()));
        m.insert("token_ttl".into(), Value::from(self.token_ttl));
    }

    /// The login answer for these settings (`PopulateTokenAuth`).
    pub fn login_auth(&self, display_name: String, metadata: Map<String, Value>) -> LoginAuth {
        LoginAuth {
            policies: self.token_policies.clone(),
            metadata,
            display_name,
            ttl: self.token_ttl,
            max_ttl: self.token_max_ttl,
            explicit_max_ttl: self.token_explicit_max_ttl,
            period: self.token_period,
            num_uses: self.token_num_uses,
            renewable: true,
            bound_cidrs: self.token_bound_cidrs.clone(),
            no_default_policy: self.token_no_default_policy,
        }
    }
}

/// Vault's `tokenutil.UpgradeValue`: a legacy field (`policies`, `period`, ...) and its
/// `token_*` replacement. Given only the legacy one, both take its value; given the new one,
/// the legacy one mirrors it if it was also sent and is cleared otherwise.
pub(crate) fn upgrade_legacy<T: Clone + Default>(
    new_given: bool,
    legacy: Option<T>,
    old: &mut T,
    new: &mut T,
) {
    match (new_given, legacy) {
        (false, Some(v)) => {
            *old = v.clone();
            *new = v;
        }
        (false, None) => {}
        (true, Some(_)) => *old = new.clone(),
        (true, None) => *old = T::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------------------------

/// Wall-clock time in unix seconds; tests move it forward instead of sleeping.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    skew_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> f64 {
        util::unix_now() + self.skew_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }

    #[cfg(test)]
    pub fn advance(&self, secs: f64) {
        self.skew_ms
            .fetch_add((secs * 1000.0) as i64, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// HMAC key
// ---------------------------------------------------------------------------------------------

const HMAC_KEY_PATH: &str = "hmac_key";

#[derive(Serialize, Deserialize)]
struct StoredHmacKey {
    /// base64 of 32 random bytes.
    key: String,
}

impl Drop for StoredHmacKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// The mount's random HMAC-SHA256 key, created on first use and kept in the mount's storage
/// (under the barrier); cached once read.
#[derive(Default)]
pub(crate) struct MountHmacKey {
    cell: tokio::sync::OnceCell<aws_lc_rs::hmac::Key>,
}

impl std::fmt::Debug for MountHmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MountHmacKey(<redacted>)")
    }
}

impl MountHmacKey {
    pub async fn get(&self, storage: &View) -> Result<&aws_lc_rs::hmac::Key> {
        self.cell
            .get_or_try_init(|| load_or_create_key(storage))
            .await
    }

    /// Hex HMAC-SHA256 of `value` under the mount's key.
    pub async fn hmac(&self, storage: &View, value: &[u8]) -> Result<String> {
        let key = self.get(storage).await?;
        Ok(hex::encode(aws_lc_rs::hmac::sign(key, value).as_ref()))
    }
}

fn key_from_record(rec: &StoredHmacKey) -> Result<aws_lc_rs::hmac::Key> {
    use base64::Engine as _;
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(rec.key.as_bytes())
            .map_err(|_| CoreError::internal("stored HMAC key is corrupted"))?,
    );
    if bytes.len() != 32 {
        return Err(CoreError::internal("stored HMAC key is corrupted"));
    }
    Ok(aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        &bytes,
    ))
}

async fn load_or_create_key(storage: &View) -> Result<aws_lc_rs::hmac::Key> {
    use base64::Engine as _;
    let rec = commit_with_retries(storage, || async move {
        if let Some(rec) = storage.get_json::<StoredHmacKey>(HMAC_KEY_PATH).await? {
            return Ok(Step::Done(rec));
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        random_bytes(raw.as_mut())?;
        let rec = StoredHmacKey {
            key: base64::engine::general_purpose::STANDARD.encode(raw.as_ref()),
        };
        // create only if nobody else did in the meantime (another request or node)
        let ops = vec![op_check(HMAC_KEY_PATH, None), op_put(HMAC_KEY_PATH, &rec)?];
        Ok(Step::Commit(ops, rec))
    })
    .await?;
    key_from_record(&rec)
}

/// A random UUID (v4) from the OS CSPRNG via aws-lc.
pub(crate) fn random_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    random_bytes(&mut b)?;
    Ok(uuid::Builder::from_random_bytes(b).into_uuid().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "web", "my-role", "a.b", "x@y", "A_1", "a..b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", ".a", "a/b", "a b", "é", "a\n"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(display_source("auth/userpass/"), "userpass-");
        assert_eq!(display_source("auth/team/a/"), "team-a-");
    }

    #[test]
    fn token_params() {
        let mut t = TokenParams::new();
        t.parse(&obj(json!({
            "token_policies": "a, b,,a",
            "token_ttl": "1h",
            "token_max_ttl": 7200,
            "token_bound_cidrs": ["10.0.0.0/8", "127.0.0.1"],
            "token_num_uses": "3",
            "token_type": "service",
        })))
        .unwrap();
        assert_eq!(t.token_policies, vec!["a", "b"]);
        assert_eq!(
            (t.token_ttl, t.token_max_ttl, t.token_num_uses),
            (3600, 7200, 3)
        );
        let mut t2 = t.clone();
        assert!(t2.parse(&obj(json!({"token_ttl": "3h"}))).is_err());
        assert!(t2.parse(&obj(json!({"token_num_uses": -1}))).is_err());
        assert!(t2.parse(&obj(json!({"token_ttl": "-5s"}))).is_err());
        assert!(t2.parse(&obj(json!({"token_type": "weird"}))).is_err());
        assert!(t2
            .parse(&obj(json!({"token_bound_cidrs": "nope"})))
            .is_err());
        assert!(t2.parse(&obj(json!({"token_policies": {"a": 1}}))).is_err());
        assert!(t2
            .parse(&obj(json!({"token_no_default_policy": "maybe"})))
            .is_err());
        let mut b = TokenParams::new();
        assert!(b
            .parse(&obj(json!({"token_type": "batch", "token_period": 60})))
            .is_err());
    }

    #[test]
    fn legacy_and_policies() {
        assert_eq!(
            parse_policies(vec!["B".into(), "a".into(), "b".into(), "".into()]).unwrap(),
            vec!["a", "b"]
        );
        for reserved in ["root", "ROOT", "response-wrapping", "Response-Wrapping"] {
            assert!(parse_policies(vec!["a".into(), reserved.into()]).is_err());
            let mut t = TokenParams::new();
            assert!(t
                .parse(&obj(json!({"token_policies": ["a", reserved]})))
                .is_err());
        }
        for spelled in [" a", "a ", "a\u{a0}", "\u{2003}a"] {
            assert!(parse_policies(vec![spelled.into()]).is_err(), "{spelled:?}");
        }
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(equivalent_policies(
            &v(&["a", "b"]),
            &v(&["b", "default", "a", "a"])
        ));
        assert!(equivalent_policies(&[], &v(&["default"])));
        assert!(equivalent_policies(&v(&["default"]), &[]));
        assert!(!equivalent_policies(&v(&["a"]), &v(&["a", "b"])));
        assert!(!equivalent_policies(
            &v(&["a", "default"]),
            &v(&["default"])
        ));
        assert!(!equivalent_policies(&v(&["A"]), &v(&["a"])));
        let (mut old, mut new) = (vec![], vec![]);
        upgrade_legacy(false, Some(vec!["x".to_string()]), &mut old, &mut new);
        assert_eq!(
            (old.clone(), new.clone()),
            (vec!["x".into()], vec!["x".into()])
        );
        new = vec!["y".into()];
        upgrade_legacy(true, None, &mut old, &mut new);
        assert!(old.is_empty());
    }

    #[test]
    fn cidr_subsets() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(cidrs_subset(&s(&["10.1.0.0/16"]), &s(&["10.0.0.0/8"])));
        assert!(cidrs_subset(&s(&["10.1.2.3"]), &s(&["10.0.0.0/8"])));
        assert!(!cidrs_subset(&s(&["11.0.0.0/16"]), &s(&["10.0.0.0/8"])));
        assert!(!cidrs_subset(&s(&["0.0.0.0/0"]), &s(&["10.0.0.0/8"])));
        assert!(cidrs_subset(&s(&["0.0.0.0/0"]), &[]));
    }

    #[test]
    fn durations() {
        let d = obj(json!({"a": "90s", "b": 5, "c": "-1h", "d": [1], "e": "x", "f": ""}));
        assert_eq!(duration_param(&d, "a").unwrap(), Some(90));
        assert_eq!(duration_param(&d, "b").unwrap(), Some(5));
        assert_eq!(duration_param(&d, "c").unwrap(), Some(-3600));
        assert!(duration_param(&d, "d").is_err());
        assert!(duration_param(&d, "e").is_err());
        assert_eq!(duration_param(&d, "f").unwrap(), Some(0));
        assert!(non_negative_duration(&d, "c").is_err());
    }
}
