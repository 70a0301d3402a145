//! Parameter constraints: how request values are matched against the value lists of
//! `allowed_parameters` and `denied_parameters`.

use serde_json::{Number, Value};
use std::borrow::Cow;

/// Lower-cases a parameter name, allocating only when it has upper-case characters.
pub(super) fn lower(name: &str) -> Cow<'_, str> {
    if name.chars().flat_map(char::to_lowercase).eq(name.chars()) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(name.to_lowercase())
    }
}

/// Vault's value match: strings use leading/trailing `*` globs, numbers compare by value, the
/// rest by structural equality.
fn entry_matches(entry: &Value, value: &Value) -> bool {
    match (entry, value) {
        (Value::String(pattern), Value::String(s)) => glob_match(pattern, s),
        (Value::String(_), _) | (_, Value::String(_)) => false,
        _ => json_equal(entry, value),
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Vault's `GlobbedStringsMatch`: a pattern of at least two characters may start and/or end
/// with `*`; anything else (including a lone `*`) must match exactly.
fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return pattern == value;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(rest), Some(_)) => rest
            .strip_suffix('*')
            .is_some_and(|middle| value.contains(middle)),
        (Some(suffix), None) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => pattern == value,
    }
}

fn in_list(value: &Value, list: &[Value]) -> bool {
    list.iter().any(|entry| entry_matches(entry, value))
}

/// Splits a comma-separated string value into trimmed elements, as Vault does for
/// comma-string parameters. Strings without a comma are not split.
fn comma_elements(value: &Value) -> Option<impl Iterator<Item = &str>> {
    match value {
        Value::String(s) if s.contains(',') => Some(s.split(',').map(str::trim)),
        _ => None,
    }
}

pub(super) fn allowed_value(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    if let Value::Array(items) = value {
        return items.iter().all(|v| in_list(v, list));
    }
    if let Some(mut parts) = comma_elements(value) {
        return parts.all(|p| list.iter().any(|e| str_entry_matches(e, p)));
    }
    false
}

pub(super) fn denied_value(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    if let Value::Array(items) = value {
        return items.iter().any(|v| in_list(v, list));
    }
    if let Some(mut parts) = comma_elements(value) {
        return parts.any(|p| list.iter().any(|e| str_entry_matches(e, p)));
    }
    false
}

fn str_entry_matches(entry: &Value, value: &str) -> bool {
    matches!(entry, Value::String(pattern) if glob_match(pattern, value))
}
