//! Typed parsing of request parameters. Query parameters arrive as strings, bodies as JSON, so
//! numbers and booleans are accepted in either form (as Vault's weak decoding does). A JSON
//! `null` counts as "not given". Error messages name the parameter, never its value.

use coffer_core::error::{CoreError, Result};
use coffer_core::util;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const MAX_CUSTOM_METADATA_KEYS: usize = 64;
pub const MAX_CUSTOM_METADATA_KEY_LEN: usize = 128;
pub const MAX_CUSTOM_METADATA_VALUE_LEN: usize = 512;
const CUSTOM_METADATA_ERR: &str = "custom_metadata validation failed";

pub use coffer_core::params::present;

pub fn opt_u32(data: &Map<String, Value>, key: &str) -> Result<Option<u32>> {
    let Some(v) = present(data, key) else {
        return Ok(None);
    };
    util::value_as_i64(v)
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| CoreError::invalid(format!("{key} must be a non-negative integer")))
}

pub fn opt_bool(data: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    coffer_core::params::bool_param(data, key)
}

/// A non-negative duration in whole seconds (number of seconds or a duration string).
pub fn opt_duration_secs(data: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    let Some(v) = present(data, key) else {
        return Ok(None);
    };
    let negative = match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f < 0.0),
        Value::String(s) => s.trim_start().starts_with('-'),
        _ => false,
    };
    if negative {
        return Err(CoreError::invalid(format!("{key} cannot be negative")));
    }
    match v {
        Value::Number(_) | Value::String(_) => util::parse_duration_value(v)
            .map(|d| Some(d.as_secs()))
            .map_err(|_| {
                CoreError::invalid(format!(
                    "{key} must be a duration (e.g. \"30s\", \"1h\") or seconds"
                ))
            }),
        _ => Err(CoreError::invalid(format!(
            "{key} must be a duration (e.g. \"30s\", \"1h\") or seconds"
        ))),
    }
}

/// A duration that may be negative (`-1s` disables `delete_version_after` mount-wide).
pub fn opt_signed_duration_secs(data: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    coffer_core::params::duration_param(data, key)
}

/// `version` of a read: 0 (or absent, or negative, as in Vault) means the latest.
pub fn version_param(data: &Map<String, Value>) -> Result<u64> {
    let Some(v) = present(data, "version") else {
        return Ok(0);
    };
    if matches!(v, Value::String(s) if s.trim().is_empty()) {
        return Ok(0);
    }
    let n =
        util::value_as_i64(v).ok_or_else(|| CoreError::invalid("version must be an integer"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `depth` of a subkeys read: 0 = unlimited.
pub fn depth_param(data: &Map<String, Value>) -> Result<u32> {
    Ok(opt_u32(data, "depth")?.unwrap_or(0))
}

/// `versions` of delete / undelete / destroy: a list of numbers (or numeric strings), a
/// comma-separated string or a single number.
pub fn versions_param(data: &Map<String, Value>) -> Result<Vec<u64>> {
    let bad = || CoreError::invalid("versions must be a list of version numbers");
    let one = |v: &Value| -> Result<u64> {
        util::value_as_i64(v)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(bad)
    };
    let versions = match present(data, "versions") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(one).collect::<Result<Vec<_>>>()?,
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<Vec<_>>>()?,
        Some(v @ Value::Number(_)) => vec![one(v)?],
        Some(_) => return Err(bad()),
    };
    if versions.is_empty() {
        return Err(CoreError::invalid("No version number provided"));
    }
    Ok(versions)
}

/// `options.cas` of a data write or patch.
pub fn cas_option(data: &Map<String, Value>) -> Result<Option<u64>> {
    let options = match present(data, "options") {
        None => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(CoreError::invalid("options must be a JSON object")),
    };
    match present(options, "cas") {
        None => Ok(None),
        Some(v) => util::value_as_i64(v)
            .and_then(|n| u64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| CoreError::invalid("error parsing check-and-set parameter")),
    }
}

/// The `data` object of a v2 write or patch.
pub fn data_object(data: &Map<String, Value>) -> Result<&Map<String, Value>> {
    match present(data, "data") {
        None => Err(CoreError::invalid("no data provided")),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(CoreError::invalid("data must be a JSON object")),
    }
}

/// Parse `custom_metadata`. With `patch`, a null value means "remove this key" (`None`);
/// otherwise null is an invalid (empty) value.
pub fn custom_metadata(v: &Value, patch: bool) -> Result<BTreeMap<String, Option<String>>> {
    let Value::Object(m) = v else {
        return Err(CoreError::invalid(format!(
            "{CUSTOM_METADATA_ERR}: custom_metadata must be a JSON object"
        )));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let s = match v {
            Value::Null if patch => None,
            Value::Null => Some(String::new()),
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                return Err(CoreError::invalid(format!(
                    "{CUSTOM_METADATA_ERR}: value for key {k:?} must be a string"
                )))
            }
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Vault's limits: at most 64 keys; 0 < key length <= 128 bytes; 0 < value length <= 512
/// bytes; no unprintable characters. Reports every problem found.
pub fn validate_custom_metadata(m: &BTreeMap<String, String>) -> Result<()> {
    if m.len() > MAX_CUSTOM_METADATA_KEYS {
        return Err(CoreError::invalid(format!(
            "{CUSTOM_METADATA_ERR}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, provided {}",
            m.len()
        )));
    }
    let mut errs = Vec::new();
    for (k, v) in m {
        if k.is_empty() || k.len() > MAX_CUSTOM_METADATA_KEY_LEN {
            errs.push(format!(
                "{CUSTOM_METADATA_ERR}: length of key {k:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_LEN}",
                k.len()
            ));
        }
        if v.is_empty() || v.len() > MAX_CUSTOM_METADATA_VALUE_LEN {
            errs.push(format!(
                "{CUSTOM_METADATA_ERR}: length of value for key {k:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_LEN}",
                v.len()
            ));
        }
        if !printable(k) {
            errs.push(format!(
                "{CUSTOM_METADATA_ERR}: key {k:?} contains unprintable characters"
            ));
        }
        if !printable(v) {
            errs.push(format!(
                "{CUSTOM_METADATA_ERR}: value for key {k:?} contains unprintable characters"
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(CoreError::invalid(errs.join("; ")))
    }
}

/// Drop every value of a JSON object, keeping its structure: leaves (non-objects and empty
/// objects) become null; objects deeper than `depth` (0 = unlimited) become null too.
pub fn subkeys(data: &Map<String, Value>, depth: u32) -> Map<String, Value> {
    fn walk(m: &Map<String, Value>, level: u32, depth: u32) -> Map<String, Value> {
        m.iter()
            .map(|(k, v)| {
                let out = match v {
                    Value::Object(inner) if !inner.is_empty() && (depth == 0 || level < depth) => {
                        Value::Object(walk(inner, level + 1, depth))
                    }
                    _ => Value::Null,
                };
                (k.clone(), out)
            })
            .collect()
    }
    walk(data, 1, depth)
}

/// RFC 7396 JSON merge patch of `patch` onto `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
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
    fn merge_patch_rfc7396_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1]});
        merge_patch(&mut t, &json!({"a": {"b": "c"}}));
        assert_eq!(t, json!({"a": {"b": "c"}}));
        let mut t = json!({"a": {"b": 1}});
        merge_patch(&mut t, &json!({"a": {"b": null, "c": {"d": null}}}));
        assert_eq!(t, json!({"a": {"c": {}}}));
    }

    #[test]
    fn subkeys_depth() {
        let d = obj(json!({"a": {"b": {"c": 1}}, "e": 2, "f": {}}));
        assert_eq!(
            Value::Object(subkeys(&d, 0)),
            json!({"a": {"b": {"c": null}}, "e": null, "f": null})
        );
        assert_eq!(
            Value::Object(subkeys(&d, 1)),
            json!({"a": null, "e": null, "f": null})
        );
        assert_eq!(
            Value::Object(subkeys(&d, 2)),
            json!({"a": {"b": null}, "e": null, "f": null})
        );
    }

    #[test]
    fn params() {
        let d = obj(
            json!({"versions": "1, 2", "max_versions": "7", "x": null, "dva": "-1s", "bad": "abc"}),
        );
        assert_eq!(versions_param(&d).unwrap(), vec![1, 2]);
        assert_eq!(opt_u32(&d, "max_versions").unwrap(), Some(7));
        assert_eq!(opt_u32(&d, "x").unwrap(), None);
        assert!(opt_u32(&d, "bad").is_err());
        assert_eq!(opt_signed_duration_secs(&d, "dva").unwrap(), Some(-1));
        assert!(opt_duration_secs(&d, "dva").is_err());
        assert!(versions_param(&obj(json!({"versions": "x"}))).is_err());
        assert!(versions_param(&obj(json!({"versions": []}))).is_err());
        assert_eq!(
            versions_param(&obj(json!({"versions": [3, "4"]}))).unwrap(),
            vec![3, 4]
        );
        assert_eq!(
            cas_option(&obj(json!({"options": {"cas": "0"}}))).unwrap(),
            Some(0)
        );
        assert!(cas_option(&obj(json!({"options": {"cas": "x"}}))).is_err());
        assert!(cas_option(&obj(json!({"options": 3}))).is_err());
    }
}
