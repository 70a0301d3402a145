//! Request parameters with Vault's loose typing — the one parser every engine and the system
//! backend use. Query parameters arrive as strings and bodies as JSON, so numbers and booleans
//! are accepted in either form (Vault's weak decoding); a JSON `null` counts as "not given".
//! Error messages name the parameter, never its value.

use crate::error::{CoreError, Result};
use crate::util;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The parameter if given and not null.
pub fn present<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    data.get(key).filter(|v| !v.is_null())
}

/// A string parameter; numbers and booleans are accepted in their text form (Vault's weak
/// decoding), arrays and objects are refused.
pub fn string_param(data: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(CoreError::invalid(format!("{key} must be a string"))),
    }
}

/// A string parameter taken as sent (no weak decoding): for names and tokens.
pub fn str_param<'a>(data: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CoreError::invalid(format!("\"{key}\" must be a string"))),
    }
}

/// A secret string parameter, wiped from memory when dropped.
pub fn secret_param(data: &Map<String, Value>, key: &str) -> Result<Option<Zeroizing<String>>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(Zeroizing::new(s.clone()))),
        Some(Value::Number(n)) => Ok(Some(Zeroizing::new(n.to_string()))),
        Some(_) => Err(CoreError::invalid(format!("{key} must be a string"))),
    }
}

pub fn bool_param(data: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match present(data, key) {
        None => Ok(None),
        Some(v) => util::value_as_bool(v)
            .map(Some)
            .ok_or_else(|| CoreError::invalid(format!("{key} must be a boolean"))),
    }
}

/// An integer parameter (may be negative, so that callers can give Vault's messages).
pub fn int_param(data: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(0)),
        Some(v @ (Value::Number(_) | Value::String(_))) => util::value_as_i64(v)
            .map(Some)
            .ok_or_else(|| CoreError::invalid(format!("{key} must be an integer"))),
        Some(_) => Err(CoreError::invalid(format!("{key} must be an integer"))),
    }
}

/// A duration in whole seconds: a number of seconds or a duration string (`"1h30m"`). May be
/// negative, so that callers can give Vault's messages.
pub fn duration_param(data: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    let bad = || {
        CoreError::invalid(format!(
            "{key} must be a duration (e.g. \"30s\", \"1h\") or a number of seconds"
        ))
    };
    let Some(v) = present(data, key) else {
        return Ok(None);
    };
    let (negative, secs) = match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => (i < 0, i.unsigned_abs()),
            None => {
                let f = n.as_f64().filter(|f| f.is_finite()).ok_or_else(bad)?;
                let secs = util::parse_duration_value(&Value::from(f.abs()))
                    .map_err(|_| bad())?
                    .as_secs();
                (f < 0.0, secs)
            }
        },
        Value::String(s) => {
            let s = s.trim();
            let (negative, rest) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            let secs = util::parse_duration_str(rest).map_err(|_| bad())?.as_secs();
            (negative, secs)
        }
        _ => return Err(bad()),
    };
    if secs > util::MAX_DURATION_SECS {
        return Err(bad());
    }
    let secs = i64::try_from(secs).map_err(|_| bad())?;
    Ok(Some(if negative { -secs } else { secs }))
}

/// A non-negative duration with Vault's "'key' cannot be negative" message.
pub fn non_negative_duration(data: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match duration_param(data, key)? {
        None => Ok(None),
        Some(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| CoreError::invalid(format!("'{key}' cannot be negative"))),
    }
}

/// A list of strings: a JSON array or a comma-separated string.
pub fn list_param(data: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    match present(data, key) {
        None => Ok(None),
        Some(v) => util::value_as_string_list(v)
            .map(|l| Some(l.into_iter().filter(|s| !s.is_empty()).collect()))
            .ok_or_else(|| {
                CoreError::invalid(format!(
                    "{key} must be a list of strings or a comma-separated string"
                ))
            }),
    }
}
