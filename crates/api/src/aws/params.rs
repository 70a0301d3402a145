//! The members of a JSON 1.1 request body, read with AWS's errors: a member of the wrong JSON type
//! is a `SerializationException`, a missing required one or one outside its length bounds a
//! `ValidationException` (the service model's constraints, which the SDKs check too).

use super::error::AwsError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A request body.
pub struct Params<'a>(pub &'a Map<String, Value>);

fn wrong_type(key: &str, what: &str) -> AwsError {
    AwsError::serialization(format!("{key} must be {what}"))
}

impl<'a> Params<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A string member, its length (characters) checked against `min..=max`.
    pub fn str_opt(&self, key: &str, min: usize, max: usize) -> Result<Option<&'a str>, AwsError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n < min || n > max {
                    return Err(AwsError::validation(format!(
                        "1 validation error detected: Value at '{}' failed to satisfy \
                         constraint: Member must have length between {min} and {max}",
                        lower_first(key)
                    )));
                }
                Ok(Some(s.as_str()))
            }
            Some(_) => Err(wrong_type(key, "a string")),
        }
    }

    pub fn str_req(&self, key: &str, min: usize, max: usize) -> Result<&'a str, AwsError> {
        self.str_opt(key, min, max)?.ok_or_else(|| {
            AwsError::validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: \
                 Member must not be null",
                lower_first(key)
            ))
        })
    }

    pub fn bool_opt(&self, key: &str) -> Result<Option<bool>, AwsError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(wrong_type(key, "a boolean")),
        }
    }

    /// An integer member within `min..=max` (`InvalidParameterException` outside).
    pub fn int_opt(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, AwsError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = v.as_i64().ok_or_else(|| wrong_type(key, "an integer"))?;
                if n < min || n > max {
                    return Err(AwsError::invalid_parameter(format!(
                        "{key} must be between {min} and {max}."
                    )));
                }
                Ok(Some(n))
            }
        }
    }

    /// A list of strings.
    pub fn str_list(&self, key: &str) -> Result<Option<Vec<String>>, AwsError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| wrong_type(key, "a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong_type(key, "a list of strings")),
        }
    }

    /// `Tags`: `[{"Key": "...", "Value": "..."}]` (AWS: at most 50, keys 1–128, values 0–256
    /// characters, no key twice).
    pub fn tags(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, AwsError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let items = v
            .as_array()
            .ok_or_else(|| wrong_type(key, "a list of {Key, Value}"))?;
        let mut out = BTreeMap::new();
        for item in items {
            let obj = item
                .as_object()
                .ok_or_else(|| wrong_type(key, "a list of {Key, Value}"))?;
            let tag = Params(obj);
            let k = tag.str_req("Key", 1, 128)?;
            let v = tag.str_opt("Value", 0, 256)?.unwrap_or("");
            if k.to_ascii_lowercase().starts_with("aws:") {
                return Err(AwsError::invalid_parameter(
                    "Tag keys beginning with aws: are reserved.",
                ));
            }
            if out.insert(k.to_string(), v.to_string()).is_some() {
                return Err(AwsError::invalid_parameter(format!(
                    "The tag key {k} appears more than once."
                )));
            }
        }
        if out.len() > 50 {
            return Err(AwsError::invalid_parameter(
                "A secret can have at most 50 tags.",
            ));
        }
        Ok(Some(out))
    }

    /// A list of objects.
    pub fn objects(&self, key: &str) -> Result<Option<Vec<&'a Map<String, Value>>>, AwsError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_object()
                        .ok_or_else(|| wrong_type(key, "a list of objects"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong_type(key, "a list of objects")),
        }
    }

    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.get(key)
    }
}

/// `SecretId` → `secretId`, as AWS names members in validation messages.
fn lower_first(key: &str) -> String {
    let mut c = key.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}
