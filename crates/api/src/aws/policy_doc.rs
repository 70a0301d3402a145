//! Validation of a secret's resource policy (an IAM policy document), for PutResourcePolicy
//! (any problem: `MalformedPolicyDocumentException`) and ValidateResourcePolicy (the problems are
//! its `ValidationErrors`).
//!
//! What is checked: the document is a JSON object of at most [`MAX_POLICY_CHARS`] characters
//! without duplicate keys; `Version`, if given, is `2012-10-17` or `2008-10-17`; `Statement` is
//! one statement object or a non-empty list of them; in each statement `Effect` is `Allow` or
//! `Deny`, there is exactly one of `Action`/`NotAction` (`*` or `service:Action`, wildcards
//! allowed), exactly one of `Principal`/`NotPrincipal` (`*` or a map from `AWS`, `Service`,
//! `Federated` or `CanonicalUser` to one or more names), at most one of `Resource`/`NotResource`
//! (`*` or ARNs), `Condition` is a map from known operators to maps of keys and values, and a
//! `Sid` is a string not used by another statement. Elements nobody knows are problems too.
//!
//! Messages quote at most [`MAX_QUOTE_CHARS`] characters of the document at a time, and at most
//! [`MAX_PROBLEMS`] problems are reported.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::collections::BTreeSet;
use std::fmt;

/// Longest policy accepted, in characters (the AWS limit of `ResourcePolicy`).
pub const MAX_POLICY_CHARS: usize = 20480;
/// Most problems reported for one document.
pub const MAX_PROBLEMS: usize = 50;
/// Most characters of the document quoted in one message.
pub const MAX_QUOTE_CHARS: usize = 40;

/// Not JSON, not an object, a duplicate key, or an element of the wrong JSON type.
pub const SYNTAX_ERROR: &str = "SYNTAX_ERROR";
/// Empty, or over [`MAX_POLICY_CHARS`].
pub const POLICY_SIZE: &str = "POLICY_SIZE";
pub const INVALID_VERSION: &str = "INVALID_VERSION";
/// No `Statement`, or an empty list of them.
pub const MISSING_STATEMENT: &str = "MISSING_STATEMENT";
/// A statement that is not an object.
pub const INVALID_STATEMENT: &str = "INVALID_STATEMENT";
/// `Effect` missing or other than `Allow` / `Deny`.
pub const INVALID_EFFECT: &str = "INVALID_EFFECT";
/// Neither `Action` nor `NotAction`.
pub const MISSING_ACTION: &str = "MISSING_ACTION";
/// Both `Action` and `NotAction`, or a malformed action.
pub const INVALID_ACTION: &str = "INVALID_ACTION";
/// Neither `Principal` nor `NotPrincipal`.
pub const MISSING_PRINCIPAL: &str = "MISSING_PRINCIPAL";
/// Both `Principal` and `NotPrincipal`, or a malformed principal.
pub const INVALID_PRINCIPAL: &str = "INVALID_PRINCIPAL";
/// Both `Resource` and `NotResource`, or a malformed resource.
pub const INVALID_RESOURCE: &str = "INVALID_RESOURCE";
pub const INVALID_CONDITION: &str = "INVALID_CONDITION";
/// A `Sid` that is not a string.
pub const INVALID_SID: &str = "INVALID_SID";
pub const DUPLICATE_SID: &str = "DUPLICATE_SID";
/// An element the policy language does not have.
pub const UNKNOWN_ELEMENT: &str = "UNKNOWN_ELEMENT";

/// One thing wrong with a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub check_name: String,
    pub error_message: String,
}

/// Every problem of a resource policy document, in document order. Empty = valid.
pub fn validate(doc: &str) -> Vec<PolicyProblem> {
    let mut c = Checker::default();
    let chars = doc.chars().count();
    if chars > MAX_POLICY_CHARS {
        c.add(
            POLICY_SIZE,
            format!(
                "the policy is {chars} characters long; at most {MAX_POLICY_CHARS} are allowed"
            ),
        );
        return c.problems;
    }
    if doc.trim().is_empty() {
        c.add(POLICY_SIZE, "the policy is empty".to_string());
        return c.problems;
    }
    match parse_strict(doc) {
        Ok(Value::Object(top)) => c.document(&top),
        Ok(_) => c.add(SYNTAX_ERROR, "the policy must be a JSON object".to_string()),
        Err(e) => c.add(SYNTAX_ERROR, format!("the policy is not valid JSON: {e}")),
    }
    c.problems
}

const TOP_LEVEL: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_ELEMENTS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];
const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];
const PRINCIPAL_KINDS: [&str; 4] = ["AWS", "Service", "Federated", "CanonicalUser"];
const CONDITION_OPERATORS: [&str; 27] = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Null",
];

#[derive(Default)]
struct Checker {
    problems: Vec<PolicyProblem>,
}

impl Checker {
    fn add(&mut self, check: &str, message: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(PolicyProblem {
                check_name: check.to_string(),
                error_message: message,
            });
        }
    }

    fn document(&mut self, top: &Map<String, Value>) {
        for key in top.keys() {
            if !TOP_LEVEL.contains(&key.as_str()) {
                self.add(
                    UNKNOWN_ELEMENT,
                    format!("unknown top-level element {}", quote(key)),
                );
            }
        }
        match top.get("Version") {
            None => {}
            Some(Value::String(v)) if VERSIONS.contains(&v.as_str()) => {}
            Some(Value::String(v)) => self.add(
                INVALID_VERSION,
                format!(
                    "Version must be \"2012-10-17\" or \"2008-10-17\", not {}",
                    quote(v)
                ),
            ),
            Some(_) => self.add(INVALID_VERSION, "Version must be a string".to_string()),
        }
        if let Some(id) = top.get("Id") {
            if !id.is_string() {
                self.add(SYNTAX_ERROR, "Id must be a string".to_string());
            }
        }
        let statements: Vec<&Value> = match top.get("Statement") {
            None => {
                self.add(MISSING_STATEMENT, "the policy has no Statement".to_string());
                return;
            }
            Some(Value::Array(list)) if list.is_empty() => {
                self.add(
                    MISSING_STATEMENT,
                    "Statement is an empty list; a policy needs at least one".to_string(),
                );
                return;
            }
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => {
                self.add(
                    INVALID_STATEMENT,
                    "Statement must be a statement object or a list of them".to_string(),
                );
                return;
            }
        };
        let mut sids = BTreeSet::new();
        for (i, st) in statements.iter().enumerate() {
            let n = i + 1;
            match st {
                Value::Object(st) => self.statement(n, st, &mut sids),
                _ => self.add(
                    INVALID_STATEMENT,
                    format!("statement {n} must be an object"),
                ),
            }
        }
    }

    fn statement<'a>(
        &mut self,
        n: usize,
        st: &'a Map<String, Value>,
        sids: &mut BTreeSet<&'a str>,
    ) {
        for key in st.keys() {
            if !STATEMENT_ELEMENTS.contains(&key.as_str()) {
                self.add(
                    UNKNOWN_ELEMENT,
                    format!("statement {n}: unknown element {}", quote(key)),
                );
            }
        }

        match st.get("Sid") {
            None => {}
            Some(Value::String(sid)) => {
                let first_use = sid.is_empty() || sids.insert(sid.as_str());
                if !first_use {
                    self.add(
                        DUPLICATE_SID,
                        format!(
                            "statement {n}: the Sid {} is used by an earlier statement",
                            quote(sid)
                        ),
                    );
                }
            }
            Some(_) => self.add(INVALID_SID, format!("statement {n}: Sid must be a string")),
        }

        match st.get("Effect") {
            Some(Value::String(e)) if e == "Allow" || e == "Deny" => {}
            Some(Value::String(e)) => self.add(
                INVALID_EFFECT,
                format!(
                    "statement {n}: Effect must be \"Allow\" or \"Deny\", not {}",
                    quote(e)
                ),
            ),
            Some(_) => self.add(
                INVALID_EFFECT,
                format!("statement {n}: Effect must be the string \"Allow\" or \"Deny\""),
            ),
            None => self.add(INVALID_EFFECT, format!("statement {n} has no Effect")),
        }

        match (st.get("Action"), st.get("NotAction")) {
            (Some(_), Some(_)) => self.add(
                INVALID_ACTION,
                format!("statement {n} has both Action and NotAction; use one"),
            ),
            (None, None) => self.add(
                MISSING_ACTION,
                format!("statement {n} has neither Action nor NotAction"),
            ),
            (Some(v), None) => self.actions(n, "Action", v),
            (None, Some(v)) => self.actions(n, "NotAction", v),
        }

        match (st.get("Principal"), st.get("NotPrincipal")) {
            (Some(_), Some(_)) => self.add(
                INVALID_PRINCIPAL,
                format!("statement {n} has both Principal and NotPrincipal; use one"),
            ),
            (None, None) => self.add(
                MISSING_PRINCIPAL,
                format!(
                    "statement {n} has neither Principal nor NotPrincipal; a resource policy \
                     must say whom it applies to"
                ),
            ),
            (Some(v), None) => self.principal(n, "Principal", v),
            (None, Some(v)) => self.principal(n, "NotPrincipal", v),
        }

        match (st.get("Resource"), st.get("NotResource")) {
            (Some(_), Some(_)) => self.add(
                INVALID_RESOURCE,
                format!("statement {n} has both Resource and NotResource; use one"),
            ),
            (None, None) => {}
            (Some(v), None) => self.resources(n, "Resource", v),
            (None, Some(v)) => self.resources(n, "NotResource", v),
        }

        if let Some(cond) = st.get("Condition") {
            self.condition(n, cond);
        }
    }

    /// A string or a non-empty list of strings; `None` (after reporting) otherwise.
    fn string_list<'v>(
        &mut self,
        n: usize,
        check: &str,
        element: &str,
        v: &'v Value,
    ) -> Option<Vec<&'v str>> {
        match v {
            Value::String(s) => Some(vec![s.as_str()]),
            Value::Array(items) if items.is_empty() => {
                self.add(check, format!("statement {n}: {element} is an empty list"));
                None
            }
            Value::Array(items) => {
                let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                if strings.is_none() {
                    self.add(
                        check,
                        format!("statement {n}: every entry of {element} must be a string"),
                    );
                }
                strings
            }
            _ => {
                self.add(
                    check,
                    format!("statement {n}: {element} must be a string or a list of strings"),
                );
                None
            }
        }
    }

    fn actions(&mut self, n: usize, element: &str, v: &Value) {
        let Some(actions) = self.string_list(n, INVALID_ACTION, element, v) else {
            return;
        };
        for a in actions {
            if !action_ok(a) {
                self.add(
                    INVALID_ACTION,
                    format!(
                        "statement {n}: {element} {} is not \"*\" or \"service:Action\"",
                        quote(a)
                    ),
                );
            }
        }
    }

    fn principal(&mut self, n: usize, element: &str, v: &Value) {
        match v {
            Value::String(s) if s == "*" => {}
            Value::String(s) => self.add(
                INVALID_PRINCIPAL,
                format!(
                    "statement {n}: {element} as a string must be \"*\", not {}; name \
                     principals in a map such as {{\"AWS\": \"...\"}}",
                    quote(s)
                ),
            ),
            Value::Object(map) if map.is_empty() => self.add(
                INVALID_PRINCIPAL,
                format!("statement {n}: {element} names no principal"),
            ),
            Value::Object(map) => {
                for (kind, names) in map {
                    if !PRINCIPAL_KINDS.contains(&kind.as_str()) {
                        self.add(
                            INVALID_PRINCIPAL,
                            format!(
                                "statement {n}: {element} has the unknown principal type {}; \
                                 use AWS, Service, Federated or CanonicalUser",
                                quote(kind)
                            ),
                        );
                        continue;
                    }
                    let Some(names) = self.string_list(n, INVALID_PRINCIPAL, element, names) else {
                        continue;
                    };
                    for name in names {
                        if !principal_ok(kind, name) {
                            self.add(
                                INVALID_PRINCIPAL,
                                format!(
                                    "statement {n}: {element} {kind} {} is not a valid principal",
                                    quote(name)
                                ),
                            );
                        }
                    }
                }
            }
            _ => self.add(
                INVALID_PRINCIPAL,
                format!("statement {n}: {element} must be \"*\" or a map of principals"),
            ),
        }
    }

    fn resources(&mut self, n: usize, element: &str, v: &Value) {
        let Some(resources) = self.string_list(n, INVALID_RESOURCE, element, v) else {
            return;
        };
        for r in resources {
            if !resource_ok(r) {
                self.add(
                    INVALID_RESOURCE,
                    format!(
                        "statement {n}: {element} {} is not \"*\" or an ARN",
                        quote(r)
                    ),
                );
            }
        }
    }

    fn condition(&mut self, n: usize, cond: &Value) {
        let Value::Object(ops) = cond else {
            self.add(
                INVALID_CONDITION,
                format!("statement {n}: Condition must be a map of condition operators"),
            );
            return;
        };
        for (op, keys) in ops {
            if !operator_ok(op) {
                self.add(
                    INVALID_CONDITION,
                    format!("statement {n}: {} is not a condition operator", quote(op)),
                );
                continue;
            }
            let Value::Object(keys) = keys else {
                self.add(
                    INVALID_CONDITION,
                    format!(
                        "statement {n}: the condition {} must map condition keys to values",
                        quote(op)
                    ),
                );
                continue;
            };
            if keys.is_empty() {
                self.add(
                    INVALID_CONDITION,
                    format!("statement {n}: the condition {} has no keys", quote(op)),
                );
            }
            for (key, value) in keys {
                if key.is_empty() {
                    self.add(
                        INVALID_CONDITION,
                        format!("statement {n}: a condition key is empty"),
                    );
                }
                let ok = match value {
                    Value::Array(items) => !items.is_empty() && items.iter().all(condition_scalar),
                    v => condition_scalar(v),
                };
                if !ok {
                    self.add(
                        INVALID_CONDITION,
                        format!(
                            "statement {n}: the value of condition key {} must be a string, \
                             number or boolean, or a non-empty list of them",
                            quote(key)
                        ),
                    );
                }
            }
        }
    }
}

fn condition_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// `*`, or `service:Action` where the service is letters, digits and dashes and the action is
/// letters, digits and the wildcards `*` and `?`.
fn action_ok(a: &str) -> bool {
    if a == "*" {
        return true;
    }
    let Some((service, action)) = a.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !action.is_empty()
        && action
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
}

/// `AWS`: `*`, a 12-digit account ID or an ARN; the other types: any name without spaces.
fn principal_ok(kind: &str, name: &str) -> bool {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return false;
    }
    if kind == "AWS" {
        name == "*"
            || (name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit()))
            || arn_ok(name)
    } else {
        true
    }
}

/// `*` or an ARN.
fn resource_ok(r: &str) -> bool {
    r == "*" || arn_ok(r)
}

/// `arn:partition:service:region:account:resource` (parts may be empty or hold wildcards, the
/// resource may hold more colons).
fn arn_ok(s: &str) -> bool {
    s.starts_with("arn:") && s.matches(':').count() >= 5 && !s.chars().any(char::is_whitespace)
}

/// A known operator, optionally with a `ForAnyValue:` / `ForAllValues:` set qualifier and an
/// `IfExists` suffix (which `Null` does not take).
fn operator_ok(op: &str) -> bool {
    let op = op
        .strip_prefix("ForAnyValue:")
        .or_else(|| op.strip_prefix("ForAllValues:"))
        .unwrap_or(op);
    if CONDITION_OPERATORS.contains(&op) {
        return true;
    }
    op.strip_suffix("IfExists")
        .is_some_and(|base| base != "Null" && CONDITION_OPERATORS.contains(&base))
}

/// At most [`MAX_QUOTE_CHARS`] characters of `s`, quoted and escaped.
fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_QUOTE_CHARS).collect();
    if s.chars().count() > MAX_QUOTE_CHARS {
        out.push('…');
    }
    format!("{out:?}")
}

/// Parse JSON like `serde_json::from_str::<Value>`, but refuse an object with a key twice (a
/// plain `Value` keeps the last one silently, which would hide a statement's real meaning).
fn parse_strict(doc: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(doc);
    let v = Strict::deserialize(&mut de)?;
    de.end()?;
    Ok(v.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number is not finite"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the key {} appears twice in one object",
                    quote(&key)
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CROSS_ACCOUNT: &str = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowReadFromAnotherAccount",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:role/Reader"},
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*"
            }
        ]
    }"#;

    fn checks(doc: &str) -> Vec<String> {
        validate(doc).into_iter().map(|p| p.check_name).collect()
    }

    fn only(doc: &str, check: &str) -> String {
        let problems = validate(doc);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].check_name, check, "{problems:?}");
        problems[0].error_message.clone()
    }

    /// A valid one-statement policy with `element` replaced (or removed when `None`).
    fn with(element: &str, value: Option<Value>) -> String {
        let mut st = json!({
            "Effect": "Allow",
            "Principal": {"AWS": "111122223333"},
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*"
        });
        let obj = st.as_object_mut().expect("object");
        match value {
            Some(v) => {
                obj.insert(element.to_string(), v);
            }
            None => {
                obj.remove(element);
            }
        }
        json!({"Version": "2012-10-17", "Statement": [st]}).to_string()
    }

    #[test]
    fn the_typical_cross_account_policy_is_valid() {
        assert_eq!(validate(CROSS_ACCOUNT), vec![]);
    }

    #[test]
    fn other_valid_policies() {
        let docs = [
            // A single statement object, old version, no resource.
            r#"{"Version":"2008-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"*"}}"#,
            // No version at all, Id, lists everywhere, NotAction / NotPrincipal / NotResource.
            r#"{"Id":"p1","Statement":[
                {"Sid":"a","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:root","444455556666"]},
                 "NotAction":["secretsmanager:Describe*","secretsmanager:List?ecrets"],
                 "NotResource":["arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/*"]},
                {"Sid":"b","Effect":"Allow","Principal":{"Service":"rds.amazonaws.com","Federated":"cognito-identity.amazonaws.com","CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},
                 "Action":["secretsmanager:*"],"Resource":"*"}
            ]}"#,
            // Conditions of every value shape.
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"secretsmanager:GetSecretValue","Resource":"*",
                "Condition":{
                    "StringNotEquals":{"aws:PrincipalOrgID":"o-abc123"},
                    "Bool":{"aws:SecureTransport":false},
                    "NumericLessThan":{"secretsmanager:RecoveryWindowInDays":7},
                    "ForAnyValue:StringLike":{"aws:TagKeys":["team*","env"]},
                    "IpAddressIfExists":{"aws:SourceIp":"203.0.113.0/24"},
                    "Null":{"aws:TokenIssueTime":"true"}
                }}]}"#,
            // An empty Condition and an empty Sid twice.
            r#"{"Statement":[
                {"Sid":"","Effect":"Allow","Principal":"*","Action":"*","Condition":{}},
                {"Sid":"","Effect":"Allow","Principal":"*","Action":"*"}]}"#,
        ];
        for d in docs {
            assert_eq!(validate(d), vec![], "{d}");
        }
    }

    #[test]
    fn not_json_is_a_syntax_error() {
        for d in [
            "{",
            "not json",
            r#"{"Statement": []} trailing"#,
            r#"{"Statement": [,]}"#,
        ] {
            let m = only(d, SYNTAX_ERROR);
            assert!(m.contains("not valid JSON"), "{m}");
        }
        for d in ["[]", "\"policy\"", "42", "null"] {
            let m = only(d, SYNTAX_ERROR);
            assert!(m.contains("JSON object"), "{m}");
        }
    }

    #[test]
    fn duplicate_keys_are_a_syntax_error() {
        let d = r#"{"Statement":{"Effect":"Allow","Effect":"Deny","Principal":"*","Action":"*"}}"#;
        let m = only(d, SYNTAX_ERROR);
        assert!(m.contains("\"Effect\" appears twice"), "{m}");
        let d = r#"{"Statement":[],"Statement":[]}"#;
        assert_eq!(checks(d), [SYNTAX_ERROR]);
        // The same key in different objects is fine.
        let d = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*"},{"Effect":"Allow","Principal":"*","Action":"*"}]}"#;
        assert_eq!(validate(d), vec![]);
    }

    #[test]
    fn deep_nesting_is_a_syntax_error_not_a_crash() {
        let d = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(checks(&d), [SYNTAX_ERROR]);
    }

    #[test]
    fn size_limits() {
        assert!(only("", POLICY_SIZE).contains("empty"));
        assert!(only("  \n", POLICY_SIZE).contains("empty"));

        // Pad a valid policy with whitespace up to the limit exactly: still valid.
        let pad = MAX_POLICY_CHARS - CROSS_ACCOUNT.chars().count();
        let at_limit = format!("{CROSS_ACCOUNT}{}", " ".repeat(pad));
        assert_eq!(validate(&at_limit), vec![]);
        let over = format!("{at_limit} ");
        let m = only(&over, POLICY_SIZE);
        assert!(m.contains("20481") && m.contains("20480"), "{m}");
        // Characters, not bytes.
        let multibyte = with("Sid", Some(json!("é".repeat(10_200))));
        assert!(multibyte.len() > MAX_POLICY_CHARS);
        assert!(multibyte.chars().count() <= MAX_POLICY_CHARS);
        assert_eq!(validate(&multibyte), vec![]);
    }

    #[test]
    fn version() {
        for v in [json!("2012-10-17"), json!("2008-10-17")] {
            let d =
                json!({"Version": v, "Statement": {"Effect":"Allow","Principal":"*","Action":"*"}});
            assert_eq!(validate(&d.to_string()), vec![]);
        }
        for v in [
            json!("2012-10-18"),
            json!("latest"),
            json!(""),
            json!(2012),
            json!(null),
        ] {
            let d =
                json!({"Version": v, "Statement": {"Effect":"Allow","Principal":"*","Action":"*"}});
            assert_eq!(checks(&d.to_string()), [INVALID_VERSION], "{v}");
        }
    }

    #[test]
    fn statement_presence_and_shape() {
        assert!(only(r#"{"Version":"2012-10-17"}"#, MISSING_STATEMENT).contains("no Statement"));
        assert!(only(r#"{"Statement":[]}"#, MISSING_STATEMENT).contains("empty"));
        assert_eq!(checks(r#"{"Statement":"Allow"}"#), [INVALID_STATEMENT]);
        assert_eq!(checks(r#"{"Statement":null}"#), [INVALID_STATEMENT]);
        let d = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*"}, 3, []]}"#;
        let problems = validate(d);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.check_name == INVALID_STATEMENT));
        assert!(problems[0].error_message.contains("statement 2"));
        assert!(problems[1].error_message.contains("statement 3"));
    }

    #[test]
    fn effect() {
        assert_eq!(validate(&with("Effect", Some(json!("Deny")))), vec![]);
        for bad in [json!("allow"), json!("ALLOW"), json!("Permit"), json!("")] {
            let m = only(&with("Effect", Some(bad.clone())), INVALID_EFFECT);
            assert!(m.contains("\"Allow\" or \"Deny\""), "{m}");
        }
        assert_eq!(checks(&with("Effect", Some(json!(true)))), [INVALID_EFFECT]);
        assert_eq!(
            checks(&with("Effect", Some(json!(["Allow"])))),
            [INVALID_EFFECT]
        );
        assert!(only(&with("Effect", None), INVALID_EFFECT).contains("no Effect"));
    }

    #[test]
    fn action() {
        for good in [
            json!("*"),
            json!("secretsmanager:*"),
            json!("secretsmanager:Get*"),
            json!("secretsmanager:?etSecretValue"),
            json!("kms:Decrypt"),
            json!("resource-groups:GetGroup"),
            json!([
                "secretsmanager:GetSecretValue",
                "secretsmanager:DescribeSecret"
            ]),
        ] {
            assert_eq!(
                validate(&with("Action", Some(good.clone()))),
                vec![],
                "{good}"
            );
        }
        for bad in [
            json!("GetSecretValue"),
            json!("secretsmanager:"),
            json!(":GetSecretValue"),
            json!("secrets manager:Get"),
            json!("secretsmanager:Get Secret"),
            json!("secretsmanager:Get:Value"),
            json!(""),
            json!("**"),
        ] {
            assert_eq!(
                checks(&with("Action", Some(bad.clone()))),
                [INVALID_ACTION],
                "{bad}"
            );
        }
        for bad in [
            json!([]),
            json!(["*", 3]),
            json!(7),
            json!({"a": "b"}),
            json!(null),
        ] {
            assert_eq!(
                checks(&with("Action", Some(bad.clone()))),
                [INVALID_ACTION],
                "{bad}"
            );
        }
        // One problem per bad entry.
        assert_eq!(
            checks(&with(
                "Action",
                Some(json!(["nope", "kms:Decrypt", "also nope"]))
            )),
            [INVALID_ACTION, INVALID_ACTION]
        );
        assert!(only(&with("Action", None), MISSING_ACTION).contains("neither"));
        // NotAction instead is fine; both is not.
        let d = with("Action", None);
        let mut v: Value = serde_json::from_str(&d).expect("json");
        v["Statement"][0]["NotAction"] = json!("secretsmanager:DeleteSecret");
        assert_eq!(validate(&v.to_string()), vec![]);
        v["Statement"][0]["Action"] = json!("*");
        assert!(only(&v.to_string(), INVALID_ACTION).contains("both"));
    }

    #[test]
    fn principal() {
        for good in [
            json!("*"),
            json!({"AWS": "*"}),
            json!({"AWS": "111122223333"}),
            json!({"AWS": ["arn:aws:iam::111122223333:user/alice", "arn:aws:iam::444455556666:root"]}),
            json!({"Service": "lambda.amazonaws.com"}),
            json!({"Federated": "accounts.google.com"}),
            json!({"CanonicalUser": "abc123"}),
            json!({"AWS": "111122223333", "Service": ["a.amazonaws.com", "b.amazonaws.com"]}),
        ] {
            assert_eq!(
                validate(&with("Principal", Some(good.clone()))),
                vec![],
                "{good}"
            );
        }
        for bad in [
            json!("111122223333"),
            json!("arn:aws:iam::111122223333:root"),
            json!(""),
            json!({}),
            json!({"aws": "*"}),
            json!({"User": "alice"}),
            json!({"AWS": []}),
            json!({"AWS": [1]}),
            json!({"AWS": {"x": "y"}}),
            json!({"AWS": "alice"}),
            json!({"AWS": "11112222333"}),
            json!({"AWS": ""}),
            json!({"Service": ""}),
            json!({"Service": "two words"}),
            json!(["*"]),
            json!(true),
        ] {
            assert_eq!(
                checks(&with("Principal", Some(bad.clone()))),
                [INVALID_PRINCIPAL],
                "{bad}"
            );
        }
        let m = only(&with("Principal", None), MISSING_PRINCIPAL);
        assert!(m.contains("resource policy"), "{m}");

        let mut v: Value = serde_json::from_str(&with("Principal", None)).expect("json");
        v["Statement"][0]["NotPrincipal"] = json!({"AWS": "111122223333"});
        assert_eq!(validate(&v.to_string()), vec![]);
        v["Statement"][0]["Principal"] = json!("*");
        assert!(only(&v.to_string(), INVALID_PRINCIPAL).contains("both"));
    }

    #[test]
    fn resource() {
        assert_eq!(validate(&with("Resource", None)), vec![]);
        for good in [
            json!("*"),
            json!("arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"),
            json!("arn:aws:secretsmanager:*:*:secret:*"),
            json!([
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:a",
                "*"
            ]),
        ] {
            assert_eq!(
                validate(&with("Resource", Some(good.clone()))),
                vec![],
                "{good}"
            );
        }
        for bad in [
            json!("my-secret"),
            json!(""),
            json!("arn:aws:secretsmanager"),
            json!("arn:aws:secretsmanager:us-east-1:1:secret:has space"),
            json!([]),
            json!(["*", null]),
            json!(5),
        ] {
            assert_eq!(
                checks(&with("Resource", Some(bad.clone()))),
                [INVALID_RESOURCE],
                "{bad}"
            );
        }
        let mut v: Value = serde_json::from_str(&with("Resource", None)).expect("json");
        v["Statement"][0]["NotResource"] = json!("arn:aws:secretsmanager:*:*:secret:prod/*");
        assert_eq!(validate(&v.to_string()), vec![]);
        v["Statement"][0]["Resource"] = json!("*");
        assert!(only(&v.to_string(), INVALID_RESOURCE).contains("both"));
    }

    #[test]
    fn condition() {
        for bad in [
            json!("aws:SecureTransport"),
            json!([]),
            json!({"StringEquals": "x"}),
            json!({"StringEquals": {}}),
            json!({"StringEqualz": {"aws:username": "a"}}),
            json!({"stringequals": {"aws:username": "a"}}),
            json!({"NullIfExists": {"aws:username": "true"}}),
            json!({"ForSomeValues:StringLike": {"aws:TagKeys": "a"}}),
            json!({"StringEquals": {"aws:username": null}}),
            json!({"StringEquals": {"aws:username": []}}),
            json!({"StringEquals": {"aws:username": {"a": "b"}}}),
            json!({"StringEquals": {"aws:username": ["a", ["b"]]}}),
            json!({"StringEquals": {"": "a"}}),
        ] {
            assert_eq!(
                checks(&with("Condition", Some(bad.clone()))),
                [INVALID_CONDITION],
                "{bad}"
            );
        }
        let good = json!({
            "ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]},
            "DateGreaterThanIfExists": {"aws:CurrentTime": "2024-01-01T00:00:00Z"},
            "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ops-*"}
        });
        assert_eq!(validate(&with("Condition", Some(good))), vec![]);
    }

    #[test]
    fn sid() {
        assert_eq!(validate(&with("Sid", Some(json!("Reader 1")))), vec![]);
        assert_eq!(checks(&with("Sid", Some(json!(1)))), [INVALID_SID]);
        assert_eq!(checks(&with("Sid", Some(json!(null)))), [INVALID_SID]);

        let st =
            |sid: &str| json!({"Sid": sid, "Effect": "Allow", "Principal": "*", "Action": "*"});
        let d = json!({"Statement": [st("a"), st("b"), st("a"), st("A"), st("b")]});
        let problems = validate(&d.to_string());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.check_name == DUPLICATE_SID));
        assert!(problems[0].error_message.contains("statement 3"));
        assert!(problems[1].error_message.contains("statement 5"));
    }

    #[test]
    fn unknown_elements() {
        let d = r#"{"Version":"2012-10-17","Policy":"x","Statement":{"Effect":"Allow","Principal":"*","Action":"*","Actions":"*","effect":"Allow"}}"#;
        let problems = validate(d);
        assert_eq!(
            problems
                .iter()
                .map(|p| p.check_name.as_str())
                .collect::<Vec<_>>(),
            [UNKNOWN_ELEMENT, UNKNOWN_ELEMENT, UNKNOWN_ELEMENT]
        );
        assert!(problems[0].error_message.contains("top-level"));
        assert!(problems[0].error_message.contains("\"Policy\""));
        assert!(problems[1].error_message.contains("statement 1"));
        // Id must be a string.
        let d = r#"{"Id":5,"Statement":{"Effect":"Allow","Principal":"*","Action":"*"}}"#;
        assert_eq!(checks(d), [SYNTAX_ERROR]);
    }

    #[test]
    fn several_problems_in_one_statement_are_all_reported() {
        let d = r#"{"Statement":{"Effect":"Maybe","Resource":"bucket"}}"#;
        assert_eq!(
            checks(d),
            [
                INVALID_EFFECT,
                MISSING_ACTION,
                MISSING_PRINCIPAL,
                INVALID_RESOURCE
            ]
        );
    }

    #[test]
    fn problems_are_capped() {
        let st = json!({"Effect": "x", "Action": "y", "Principal": "z"});
        let d = json!({"Statement": vec![st; 100]});
        assert_eq!(validate(&d.to_string()).len(), MAX_PROBLEMS);
    }

    #[test]
    fn messages_never_echo_much_input() {
        let long = "A".repeat(1000);
        let st = json!({
            "Sid": long, "Effect": long, "Action": long, "Principal": long, "Resource": long,
            "Condition": {long.clone(): {"k": "v"}}, long.clone(): 1
        });
        let d = json!({"Version": long, "Statement": [st.clone(), st], long.clone(): 1});
        let problems = validate(&d.to_string());
        assert!(problems.len() >= 10, "{problems:?}");
        for p in &problems {
            let run = p
                .error_message
                .split(|c: char| c != 'A')
                .map(str::len)
                .max()
                .unwrap_or(0);
            assert!(run <= MAX_QUOTE_CHARS, "{}", p.error_message);
            assert!(p.error_message.len() < 300, "{}", p.error_message);
        }
        let dup = format!(r#"{{"{long}":1,"{long}":2}}"#);
        let m = only(&dup, SYNTAX_ERROR);
        assert!(m.len() < 300, "{m}");
    }
}
