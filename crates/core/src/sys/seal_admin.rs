//! Seal administration with key shares: `sys/rekey/*`, `sys/generate-root/*` and
//! `sys/decode-token`. As in Vault these need key shares, not a token (except the rekey
//! backup), and answer bare JSON objects; the work is done by the core (`crate::rekey`).

use crate::core::Core;
use crate::error::{CoreError, Result};
use crate::params::str_param;
use crate::rekey::{RekeyParams, RekeyUpdate, RekeyVerifyUpdate};
use crate::request::{Operation, Response};
use crate::util::{value_as_bool, value_as_i64};
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The paths served here that need no token (Vault serves them before its token check).
pub(super) fn unauthenticated(rest: &str) -> bool {
    matches!(
        rest,
        "rekey/init"
            | "rekey/update"
            | "rekey/verify"
            | "rekey-recovery-key/init"
            | "rekey-recovery-key/update"
            | "rekey-recovery-key/verify"
            | "generate-root/attempt"
            | "generate-root/update"
            | "decode-token"
    )
}

/// Whether `rest` (the path below `sys/`) is served here.
pub(super) fn owns(rest: &str) -> bool {
    unauthenticated(rest) || matches!(rest, "rekey/backup" | "rekey/recovery-key-backup")
}

/// An answer whose data is `v` (how the dialect frames it is the dialect's business: Vault
/// sends these particular answers without its envelope).
fn bare(v: impl serde::Serialize) -> Result<Response> {
    match serde_json::to_value(v).map_err(|e| CoreError::internal(e.to_string()))? {
        Value::Object(m) => Ok(Response::data(m)),
        _ => Err(CoreError::internal("status is not an object")),
    }
}

fn count(d: &Map<String, Value>, key: &str) -> Result<usize> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => value_as_i64(v)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| CoreError::invalid(format!("\"{key}\" must be a non-negative integer"))),
    }
}

fn flag(d: &Map<String, Value>, key: &str) -> Result<bool> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(v) => value_as_bool(v)
            .ok_or_else(|| CoreError::invalid(format!("\"{key}\" must be a boolean"))),
    }
}

fn rekey_params(d: &Map<String, Value>) -> Result<RekeyParams> {
    let pgp = matches!(d.get("pgp_keys"), Some(Value::Array(a)) if !a.is_empty());
    if pgp {
        return Err(CoreError::invalid("pgp_keys is not supported by Coffer"));
    }
    if flag(d, "backup")? {
        return Err(CoreError::invalid(
            "cannot request a backup of the new keys without providing PGP keys for encryption",
        ));
    }
    Ok(RekeyParams {
        secret_shares: count(d, "secret_shares")?,
        secret_threshold: count(d, "secret_threshold")?,
        require_verification: flag(d, "require_verification")?,
    })
}

/// The `key` and `nonce` of an update.
fn key_and_nonce(d: &Map<String, Value>) -> Result<(&str, &str)> {
    let key = str_param(d, "key")?.unwrap_or("");
    if key.is_empty() {
        return Err(CoreError::invalid(
            "'key' must be specified in request body as JSON",
        ));
    }
    Ok((key, str_param(d, "nonce")?.unwrap_or("")))
}

pub(super) async fn dispatch(
    core: &Core,
    rest: &str,
    op: Operation,
    d: &Map<String, Value>,
) -> Result<Response> {
    match (rest, op) {
        ("rekey/init", Operation::Read) => bare(core.rekey_status().await?),
        ("rekey/init", Operation::Update) => bare(core.rekey_init(rekey_params(d)?).await?),
        ("rekey/init", Operation::Delete) => {
            core.rekey_cancel().await?;
            Ok(Response::default())
        }
        ("rekey/update", Operation::Update) => {
            let (key, nonce) = key_and_nonce(d)?;
            match core.rekey_update(key, nonce).await? {
                RekeyUpdate::Progress(st) => bare(st),
                RekeyUpdate::Complete(r) => {
                    let mut m = Map::new();
                    m.insert("nonce".into(), r.nonce.clone().into());
                    m.insert("complete".into(), true.into());
                    let keys: Vec<String> =
                        r.keys.iter().map(|k| hex::encode(k.as_slice())).collect();
                    let b64: Vec<String> = r
                        .keys
                        .iter()
                        .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_slice()))
                        .collect();
                    m.insert("keys".into(), json!(keys));
                    m.insert("keys_base64".into(), json!(b64));
                    m.insert("pgp_fingerprints".into(), Value::Null);
                    m.insert("backup".into(), false.into());
                    m.insert(
                        "verification_required".into(),
                        r.verification_required.into(),
                    );
                    if r.verification_required {
                        m.insert(
                            "verification_nonce".into(),
                            r.verification_nonce.clone().into(),
                        );
                    }
                    bare(m)
                }
            }
        }
        ("rekey/verify", Operation::Read) => bare(core.rekey_verify_status().await?),
        ("rekey/verify", Operation::Delete) => bare(core.rekey_verify_restart().await?),
        ("rekey/verify", Operation::Update) => {
            let (key, nonce) = key_and_nonce(d)?;
            match core.rekey_verify_update(key, nonce).await? {
                RekeyVerifyUpdate::Progress(st) => bare(st),
                RekeyVerifyUpdate::Complete(nonce) => {
                    bare(json!({"nonce": nonce, "complete": true}))
                }
            }
        }
        // Vault keeps a backup only of PGP-encrypted new keys; Coffer refuses PGP keys
        ("rekey/backup" | "rekey/recovery-key-backup", Operation::Read) => {
            Err(CoreError::invalid("no backed-up keys found"))
        }
        ("rekey/backup" | "rekey/recovery-key-backup", Operation::Delete) => {
            Ok(Response::default())
        }
        (p, _) if p.starts_with("rekey-recovery-key/") => {
            Err(CoreError::invalid("recovery rekeying not supported"))
        }
        ("generate-root/attempt", Operation::Read) => bare(core.generate_root_status().await?),
        ("generate-root/attempt", Operation::Update) => {
            if matches!(str_param(d, "pgp_key")?, Some(k) if !k.is_empty()) {
                return Err(CoreError::invalid("pgp_key is not supported by Coffer"));
            }
            bare(core.generate_root_init(str_param(d, "otp")?).await?)
        }
        ("generate-root/attempt", Operation::Delete) => {
            core.generate_root_cancel().await?;
            Ok(Response::default())
        }
        ("generate-root/update", Operation::Update) => {
            let (key, nonce) = key_and_nonce(d)?;
            bare(core.generate_root_update(key, nonce).await?)
        }
        ("decode-token", Operation::Update) => {
            let encoded = str_param(d, "encoded_token")?.unwrap_or("");
            if encoded.is_empty() {
                return Err(CoreError::invalid(
                    "'encoded_token' must be specified in request body as JSON",
                ));
            }
            let otp = str_param(d, "otp")?.unwrap_or("");
            if otp.is_empty() {
                return Err(CoreError::invalid(
                    "'otp' must be specified in request body as JSON",
                ));
            }
            let token = crate::rekey::decode_token(encoded, otp)?;
            bare(json!({"token": token.as_str()}))
        }
        _ => Err(CoreError::unsupported_operation()),
    }
}
