//! Parsing: a neutral tree built from HCL or JSON, then validated into rules.

use super::{bounded, invalid_rule, merge_param_map, Capabilities, PathRule, Policy, PolicyError};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

/// Deepest nesting of lists / objects accepted in a policy document.
const MAX_NESTING: usize = 32;

/// Parses a policy document. Text whose first non-blank character is `{` is read as JSON
/// (`{"path": {"secret/*": {"capabilities": ["read"]}}}`), anything else as HCL.
pub fn parse_policy(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let blocks = if text.trim_start().starts_with('{') {
        parse_json_blocks(text)?
    } else {
        parse_hcl_blocks(text)?
    };
    let mut rules: Vec<PathRule> = Vec::with_capacity(blocks.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(blocks.len());
    for (path, entries) in blocks {
        let rule = build_rule(&path, entries)?;
        match index.get(&rule.path) {
            Some(&i) => {
                if let Some(existing) = rules.get_mut(i) {
                    existing.merge(&rule);
                }
            }
            None => {
                index.insert(rule.path.clone(), rules.len());
                rules.push(rule);
            }
        }
    }
    Ok(Policy {
        name: name.to_owned(),
        rules,
    })
}

// ------------------------------------------------------------------------------------------------
// Parsing: a neutral tree built from HCL or JSON, then validated into rules
// ------------------------------------------------------------------------------------------------

/// A document value, from HCL or JSON. Objects keep duplicate keys and their order, so repeated
/// entries are merged rather than silently dropped.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    List(Vec<Node>),
    Obj(Vec<(String, Node)>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Num(_) => "a number",
            Node::Str(_) => "a string",
            Node::List(_) => "a list",
            Node::Obj(_) => "an object",
        }
    }

    fn into_json(self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Num(n) => Value::Number(n),
            Node::Str(s) => Value::String(s),
            Node::List(items) => Value::Array(items.into_iter().map(Node::into_json).collect()),
            Node::Obj(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, v.into_json()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

/// One `path "<pattern>" { ... }` block: the pattern and the block's entries.
type RawBlock = (String, Vec<(String, Node)>);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Num(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Num(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Number::from_f64(v)
            .map(Node::Num)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Node>()? {
            entries.push((k, v));
        }
        Ok(Node::Obj(entries))
    }
}

fn parse_json_blocks(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    let root: Node =
        serde_json::from_str(text).map_err(|e| PolicyError::Json(bounded(e.to_string())))?;
    let Node::Obj(entries) = root else {
        return Err(PolicyError::Invalid(format!(
            "a JSON policy must be an object, not {}",
            root.kind()
        )));
    };
    let mut blocks = Vec::new();
    for (key, value) in entries {
        match key.as_str() {
            // Vault ignores a name inside the document: the name comes from the API path.
            "name" => {}
            "path" => collect_path_node(value, &mut blocks)?,
            _ => return Err(PolicyError::UnknownKey { key, path: None }),
        }
    }
    Ok(blocks)
}

/// Collects path blocks from `{"<pattern>": {...}, ...}`, a list of such objects, or a pattern
/// mapped to a list of bodies (all forms HCL's JSON dialect produces for repeated blocks).
fn collect_path_node(node: Node, blocks: &mut Vec<RawBlock>) -> Result<(), PolicyError> {
    match node {
        Node::Obj(entries) => {
            for (path, body) in entries {
                match body {
                    Node::Obj(fields) => blocks.push((path, fields)),
                    Node::List(items) => {
                        for item in items {
                            match item {
                                Node::Obj(fields) => blocks.push((path.clone(), fields)),
                                other => {
                                    return Err(invalid_rule(
                                        &path,
                                        format!("expected an object, found {}", other.kind()),
                                    ))
                                }
                            }
                        }
                    }
                    other => {
                        return Err(invalid_rule(
                            &path,
                            format!("expected an object, found {}", other.kind()),
                        ))
                    }
                }
            }
            Ok(())
        }
        Node::List(items) => {
            for item in items {
                match item {
                    Node::Obj(_) => collect_path_node(item, blocks)?,
                    other => {
                        return Err(PolicyError::Invalid(format!(
                            "\"path\" must hold objects, found {}",
                            other.kind()
                        )))
                    }
                }
            }
            Ok(())
        }
        other => Err(PolicyError::Invalid(format!(
            "\"path\" must be an object of path rules, found {}",
            other.kind()
        ))),
    }
}

/// Rejects documents nested deeper than [`MAX_NESTING`] before the HCL parser (which recurses)
/// sees them. Brackets inside strings and comments are not counted.
fn check_hcl_nesting(text: &str) -> Result<(), PolicyError> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(PolicyError::Invalid(format!(
                        "policy is nested more than {MAX_NESTING} levels deep"
                    )));
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn parse_hcl_blocks(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    check_hcl_nesting(text)?;
    let body = hcl::parse(text).map_err(|e| PolicyError::Hcl(bounded(e.to_string())))?;
    let mut blocks = Vec::new();
    for structure in body.0 {
        match structure {
            hcl::Structure::Attribute(attr) => match attr.key.as_str() {
                "name" => {}
                "path" => collect_path_node(expr_to_node(attr.expr, 0)?, &mut blocks)?,
                other => {
                    return Err(PolicyError::UnknownKey {
                        key: other.to_owned(),
                        path: None,
                    })
                }
            },
            hcl::Structure::Block(block) => {
                if block.identifier.as_str() != "path" {
                    return Err(PolicyError::UnknownKey {
                        key: block.identifier.as_str().to_owned(),
                        path: None,
                    });
                }
                let mut labels = block.labels.into_iter();
                let path = match (labels.next(), labels.next()) {
                    (Some(label), None) => label.into_inner(),
                    _ => {
                        return Err(PolicyError::Invalid(
                            "a path block takes exactly one label: path \"<pattern>\" { ... }"
                                .to_owned(),
                        ))
                    }
                };
                let entries = body_to_entries(block.body, 1)?;
                blocks.push((path, entries));
            }
        }
    }
    Ok(blocks)
}

fn too_deep() -> PolicyError {
    PolicyError::Invalid(format!(
        "policy is nested more than {MAX_NESTING} levels deep"
    ))
}

fn body_to_entries(body: hcl::Body, depth: usize) -> Result<Vec<(String, Node)>, PolicyError> {
    if depth > MAX_NESTING {
        return Err(too_deep());
    }
    let mut entries = Vec::with_capacity(body.0.len());
    for structure in body.0 {
        match structure {
            hcl::Structure::Attribute(attr) => {
                let key = attr.key.as_str().to_owned();
                entries.push((key, expr_to_node(attr.expr, depth + 1)?));
            }
            // `key { ... }` is read as `key = { ... }`, and `key "a" { ... }` as
            // `key = { "a" = { ... } }`, like HCL 1 (which Vault uses) does.
            hcl::Structure::Block(block) => {
                let mut node = Node::Obj(body_to_entries(block.body, depth + 1)?);
                for label in block.labels.into_iter().rev() {
                    node = Node::Obj(vec![(label.into_inner(), node)]);
                }
                entries.push((block.identifier.as_str().to_owned(), node));
            }
        }
    }
    Ok(entries)
}

fn expr_to_node(expr: hcl::Expression, depth: usize) -> Result<Node, PolicyError> {
    if depth > MAX_NESTING {
        return Err(too_deep());
    }
    Ok(match expr {
        hcl::Expression::Null => Node::Null,
        hcl::Expression::Bool(b) => Node::Bool(b),
        hcl::Expression::Number(n) => Node::Num(hcl_number(&n)?),
        hcl::Expression::String(s) => Node::Str(s),
        hcl::Expression::Array(items) => Node::List(
            items
                .into_iter()
                .map(|e| expr_to_node(e, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        hcl::Expression::Object(object) => {
            let mut entries = Vec::with_capacity(object.len());
            for (key, value) in object {
                let key = match key {
                    hcl::ObjectKey::Identifier(id) => id.as_str().to_owned(),
                    hcl::ObjectKey::Expression(hcl::Expression::String(s)) => s,
                    _ => {
                        return Err(PolicyError::Invalid(
                            "object keys must be names or plain strings".to_owned(),
                        ))
                    }
                };
                entries.push((key, expr_to_node(value, depth + 1)?));
            }
            Node::Obj(entries)
        }
        hcl::Expression::Parenthesis(inner) => expr_to_node(*inner, depth + 1)?,
        hcl::Expression::TemplateExpr(_) => {
            return Err(PolicyError::Invalid(
                "string templates (\"${...}\", \"%{...}\", heredocs) are not allowed in \
                 policies; write $${ or %%{ for a literal"
                    .to_owned(),
            ))
        }
        other => {
            let kind = match other {
                hcl::Expression::Variable(_) => "a variable",
                hcl::Expression::Traversal(_) => "an attribute or index traversal",
                hcl::Expression::FuncCall(_) => "a function call",
                hcl::Expression::Conditional(_) => "a conditional",
                hcl::Expression::Operation(_) => "an operation",
                hcl::Expression::ForExpr(_) => "a for expression",
                _ => "an expression",
            };
            return Err(PolicyError::Invalid(format!(
                "only literal values are allowed in policies, found {kind}"
            )));
        }
    })
}

fn hcl_number(n: &hcl::Number) -> Result<Number, PolicyError> {
    if let Some(i) = n.as_i64() {
        return Ok(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Ok(u.into());
    }
    n.as_f64()
        .and_then(Number::from_f64)
        .ok_or_else(|| PolicyError::Invalid(format!("invalid number {n}")))
}

/// Validates one path block into a rule.
fn build_rule(raw_path: &str, entries: Vec<(String, Node)>) -> Result<PathRule, PolicyError> {
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    validate_pattern(path)?;

    let mut seen: HashSet<String> = HashSet::new();
    let mut capabilities: Vec<String> = Vec::new();
    let mut shorthand: Option<String> = None;
    let mut required: Vec<String> = Vec::new();
    let mut allowed = BTreeMap::new();
    let mut denied = BTreeMap::new();
    let mut min_ttl = None;
    let mut max_ttl = None;

    for (key, value) in entries {
        if !seen.insert(key.clone()) {
            return Err(invalid_rule(path, format!("duplicate key {key:?}")));
        }
        match key.as_str() {
            "capabilities" => capabilities = string_list(path, &key, value)?,
            "policy" => match value {
                Node::Str(s) => shorthand = Some(s),
                other => {
                    return Err(invalid_rule(
                        path,
                        format!("\"policy\" must be a string, found {}", other.kind()),
                    ))
                }
            },
            "required_parameters" => {
                for name in string_list(path, &key, value)? {
                    if name.contains('*') {
                        return Err(invalid_rule(
                            path,
                            format!("required_parameters: wildcard not permitted in {name:?}"),
                        ));
                    }
                    let name = name.to_lowercase();
                    if !required.contains(&name) {
                        required.push(name);
                    }
                }
            }
            "allowed_parameters" => allowed = param_map(path, &key, value)?,
            "denied_parameters" => denied = param_map(path, &key, value)?,
            "min_wrapping_ttl" => min_ttl = parse_ttl(path, &key, &value)?,
            "max_wrapping_ttl" => max_ttl = parse_ttl(path, &key, &value)?,
            "comment" => {}
            "mfa_methods" | "control_group" | "subscribe_event_types" => {
                return Err(PolicyError::Unsupported {
                    feature: format!("the policy key {key:?}"),
                    path: Some(path.to_owned()),
                })
            }
            _ => {
                return Err(PolicyError::UnknownKey {
                    key,
                    path: Some(path.to_owned()),
                })
            }
        }
    }

    if let (Some(min), Some(max)) = (min_ttl, max_ttl) {
        if max < min {
            return Err(invalid_rule(
                path,
                "max_wrapping_ttl cannot be less than min_wrapping_ttl",
            ));
        }
    }

    let mut caps = Capabilities::empty();
    if let Some(short) = shorthand {
        caps |= match short.as_str() {
            "deny" => Capabilities::DENY,
            "read" => Capabilities::READ | Capabilities::LIST,
            "write" => {
                Capabilities::CREATE
                    | Capabilities::READ
                    | Capabilities::UPDATE
                    | Capabilities::DELETE
                    | Capabilities::LIST
            }
            "sudo" => {
                Capabilities::CREATE
                    | Capabilities::READ
                    | Capabilities::UPDATE
                    | Capabilities::DELETE
                    | Capabilities::LIST
                    | Capabilities::SUDO
            }
            _ => {
                return Err(invalid_rule(
                    path,
                    format!(
                    "invalid policy {short:?} (expected \"deny\", \"read\", \"write\" or \"sudo\")"
                ),
                ))
            }
        };
    }
    for name in &capabilities {
        match Capabilities::from_name(name) {
            Some(c) if c == Capabilities::ROOT => {
                return Err(invalid_rule(
                    path,
                    "the \"root\" capability cannot be granted by a policy",
                ))
            }
            Some(c) => caps |= c,
            None => {
                return Err(PolicyError::UnknownCapability {
                    capability: name.clone(),
                    path: Some(path.to_owned()),
                })
            }
        }
    }

    let mut rule = PathRule {
        path: path.to_owned(),
        capabilities: caps,
        required_parameters: required,
        allowed_parameters: allowed,
        denied_parameters: denied,
        min_wrapping_ttl: min_ttl,
        max_wrapping_ttl: max_ttl,
    };
    if rule.is_deny() {
        rule.deny_only();
    }
    Ok(rule)
}

fn validate_pattern(path: &str) -> Result<(), PolicyError> {
    if path.contains("+*") {
        return Err(invalid_rule(
            path,
            "invalid use of wildcards: '+*' is forbidden (write '+/*' to match below any segment)",
        ));
    }
    if let Some(pos) = path.find('*') {
        if pos + 1 != path.len() {
            return Err(invalid_rule(
                path,
                "'*' is only allowed as the last character of a path",
            ));
        }
    }
    if path.contains("{{") {
        return Err(PolicyError::Unsupported {
            feature: "identity templating ({{...}})".to_owned(),
            path: Some(path.to_owned()),
        });
    }
    Ok(())
}

fn string_list(path: &str, key: &str, node: Node) -> Result<Vec<String>, PolicyError> {
    let Node::List(items) = node else {
        return Err(invalid_rule(
            path,
            format!("{key:?} must be a list of strings, found {}", node.kind()),
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            Node::Str(s) => Ok(s),
            other => Err(invalid_rule(
                path,
                format!("{key:?} must be a list of strings, found {}", other.kind()),
            )),
        })
        .collect()
}

fn param_map(
    path: &str,
    key: &str,
    node: Node,
) -> Result<BTreeMap<String, Vec<Value>>, PolicyError> {
    // HCL 1 may present an object as a list of objects; accept both.
    let entries: Vec<(String, Node)> = match node {
        Node::Obj(entries) => entries,
        Node::List(items) => {
            let mut all = Vec::new();
            for item in items {
                match item {
                    Node::Obj(entries) => all.extend(entries),
                    other => {
                        return Err(invalid_rule(
                            path,
                            format!(
                                "{key:?} must map parameter names to lists of values, found {}",
                                other.kind()
                            ),
                        ))
                    }
                }
            }
            all
        }
        other => {
            return Err(invalid_rule(
                path,
                format!(
                    "{key:?} must map parameter names to lists of values, found {}",
                    other.kind()
                ),
            ))
        }
    };
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (name, values) in entries {
        if name.contains('*') && name != "*" {
            return Err(invalid_rule(
                path,
                format!("{key}: parameter name {name:?} cannot contain a wildcard unless it is exactly \"*\""),
            ));
        }
        if name.starts_with('/') {
            return Err(PolicyError::Unsupported {
                feature: format!("JSON-pointer parameter name {name:?} in {key}"),
                path: Some(path.to_owned()),
            });
        }
        let Node::List(items) = values else {
            return Err(invalid_rule(
                path,
                format!(
                    "{key}: the values of parameter {name:?} must be a list ([] for any value), found {}",
                    values.kind()
                ),
            ));
        };
        let values: Vec<Value> = items.into_iter().map(Node::into_json).collect();
        let single = BTreeMap::from([(name.to_lowercase(), values)]);
        merge_param_map(&mut map, &single);
    }
    Ok(map)
}

fn parse_ttl(path: &str, key: &str, node: &Node) -> Result<Option<Duration>, PolicyError> {
    let bad = |detail: &str| invalid_rule(path, format!("{key}: {detail}"));
    let dur = match node {
        Node::Null => return Ok(None),
        Node::Num(n) => {
            if let Some(u) = n.as_u64() {
                Duration::from_secs(u)
            } else {
                match n.as_f64() {
                    Some(f) if (0.0..1e15).contains(&f) => Duration::from_secs_f64(f),
                    _ => return Err(bad("must be a non-negative number of seconds")),
                }
            }
        }
        Node::Str(s) => parse_duration(s).map_err(|e| bad(&e))?,
        other => {
            return Err(bad(&format!(
                "must be seconds or a duration string, found {}",
                other.kind()
            )))
        }
    };
    // Vault treats a zero TTL as "not set".
    Ok((!dur.is_zero()).then_some(dur))
}

/// Parses Vault's duration syntax: plain seconds (`"300"`), whole days (`"7d"`), or a Go
/// duration (`"1h30m"`, `"1.5h"`, `"90s"`, `"250ms"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if let Some(days) = s.strip_suffix('d') {
        if let Ok(d) = days.parse::<u64>() {
            return d
                .checked_mul(86_400)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("duration {text:?} is too large"));
        }
    }
    let invalid = || format!("invalid duration {text:?}");
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(invalid());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if !total.is_finite() || total >= 1e15 {
        return Err(format!("duration {text:?} is too large"));
    }
    Ok(Duration::from_secs_f64(total))
}
