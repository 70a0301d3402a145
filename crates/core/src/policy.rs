//! Vault's ACL policy language: parsing (HCL or JSON), merging and compiled access checks.
//!
//! A [`Policy`] is one named document of `path "<pattern>" { ... }` rules. An [`Acl`] is the
//! compiled union of every policy a token carries; it is built once per policy set and cached by
//! the caller (it is immutable, `Send` and `Sync`).
//!
//! # Path patterns
//!
//! * `secret/foo` — exact; an exact rule always beats every glob rule.
//! * `secret/foo*` — prefix glob: a single trailing `*` matches any suffix, `/` included.
//! * `secret/+/teamb` — `+` is a whole path segment matching exactly one segment (anything but
//!   `/`). `+` segments may appear anywhere and combine with a trailing `*` (`secret/+/team*`),
//!   but `+*` is rejected, as Vault does. A `+` inside a segment (`a+b`) is a literal character.
//! * A `*` anywhere but at the end, and identity templating (`{{identity.entity.id}}`), are
//!   rejected with a clear error instead of silently never matching.
//! * A leading `/` on a rule path or a request path is ignored.
//!
//! When several glob rules match, the most specific wins, using Vault's documented priority:
//! 1. the rule whose first wildcard (`+` or `*`) occurs later wins;
//! 2. then a rule not ending in `*` beats one ending in `*`;
//! 3. then the rule with fewer `+` segments wins;
//! 4. then the longer rule wins;
//! 5. then the lexicographically greater rule wins.
//!
//! # Merging
//!
//! Rules for the same pattern — repeated blocks in one policy, or the same pattern in several
//! policies of one token — are merged the way Vault merges them: capabilities are united and
//! `deny` overrides everything for that pattern; parameter constraints accumulate (a value list
//! of `[]`, "any value", absorbs every other list for that parameter; required parameters are
//! united); for wrapping TTLs the smallest specified value is kept. Only the single best
//! matching pattern decides a request, so a `deny` on `secret/*` does not override a grant on
//! the more specific `secret/foo` — exactly as in Vault.
//!
//! # Listing
//!
//! A list of `a/b/` and of `a/b` is the same request: [`Acl::check`] looks for an exact rule
//! `a/b/`, then `a/b`, then the best glob rule matching either form, so `a/b/*`, `a/*` and
//! `+/b` all govern a listing of `a/b/`. (Vault tries the glob rules for the two forms one
//! after the other; ranking them together keeps a more specific rule such as `a/b/*` from being
//! shadowed by `a/*`.) Like Vault's, [`Acl::capabilities`] also falls back from `a/b/` to
//! `a/b` (but never adds a slash).
//!
//! # Parameter constraints
//!
//! `required_parameters`, `allowed_parameters` and `denied_parameters` are checked for
//! create, update and patch requests. Parameter names are case-insensitive (lower-cased, as in
//! Vault). A value list of `[]` means any value; `"*"` as a parameter name means every
//! parameter. String entries may start and/or end with `*` (`"prefix-*"`, `"*-suffix"`,
//! `"*middle*"`; a lone `"*"` is the literal string, as in Vault). A request value that is a
//! list, or a string containing commas, is checked element by element (Vault 1.21+ behaviour):
//! for `allowed_parameters` every element must be allowed, for `denied_parameters` any denied
//! element denies. `denied_parameters` wins over `allowed_parameters`.
//!
//! # Wrapping TTLs
//!
//! `min_wrapping_ttl` / `max_wrapping_ttl` (seconds, or durations such as `"90s"`, `"1h30m"`,
//! `"2d"`) require the response to be wrapped with a TTL in range; [`Acl::check`] assumes no
//! wrapping, so such rules deny unless the caller uses [`Acl::check_wrapped`].

use crate::request::Operation;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::sync::Arc;
use std::time::Duration;

/// Name of Vault's built-in policy attached to tokens by default.
pub const DEFAULT_POLICY_NAME: &str = "default";
/// Name of the built-in root policy (see [`Acl::root`]).
pub const ROOT_POLICY_NAME: &str = "root";

/// Deepest nesting of lists / objects accepted in a policy document.
const MAX_NESTING: usize = 32;

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

/// Why a policy document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not valid HCL.
    #[error("failed to parse policy HCL: {0}")]
    Hcl(String),
    /// The text starts with `{` but is not valid JSON.
    #[error("failed to parse policy JSON: {0}")]
    Json(String),
    /// A key Vault's policy language does not know.
    #[error("unknown key {key:?}{}", in_path(path))]
    UnknownKey { key: String, path: Option<String> },
    /// A capability name that does not exist.
    #[error("unknown capability {capability:?}{}", in_path(path))]
    UnknownCapability {
        capability: String,
        path: Option<String>,
    },
    /// A valid policy key for a feature Coffer does not implement (Vault Enterprise features,
    /// identity templating, JSON-pointer parameter names).
    #[error("{feature} is not supported by Coffer{}", in_path(path))]
    Unsupported {
        feature: String,
        path: Option<String>,
    },
    /// A path block whose content is malformed.
    #[error("path {path:?}: {message}")]
    InvalidRule { path: String, message: String },
    /// A malformed document outside any path block.
    #[error("invalid policy: {0}")]
    Invalid(String),
}

fn in_path(path: &Option<String>) -> String {
    match path {
        Some(p) => format!(" in path {p:?}"),
        None => String::new(),
    }
}

/// Longest error message kept from a parser (they quote the offending source line).
const MAX_MESSAGE: usize = 1024;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

fn invalid_rule(path: &str, message: impl Into<String>) -> PolicyError {
    PolicyError::InvalidRule {
        path: path.to_owned(),
        message: message.into(),
    }
}

// ------------------------------------------------------------------------------------------------
// Capabilities
// ------------------------------------------------------------------------------------------------

/// A set of ACL capabilities (a small bit set).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    pub const DENY: Capabilities = Capabilities(1 << 0);
    pub const CREATE: Capabilities = Capabilities(1 << 1);
    pub const READ: Capabilities = Capabilities(1 << 2);
    pub const UPDATE: Capabilities = Capabilities(1 << 3);
    pub const PATCH: Capabilities = Capabilities(1 << 4);
    pub const DELETE: Capabilities = Capabilities(1 << 5);
    pub const LIST: Capabilities = Capabilities(1 << 6);
    pub const SUDO: Capabilities = Capabilities(1 << 7);
    /// Only ever held by the root policy; a policy document cannot grant it.
    pub const ROOT: Capabilities = Capabilities(1 << 8);

    /// Every capability with its Vault name, in Vault's canonical order.
    const NAMED: [(Capabilities, &'static str); 9] = [
        (Capabilities::CREATE, "create"),
        (Capabilities::READ, "read"),
        (Capabilities::UPDATE, "update"),
        (Capabilities::PATCH, "patch"),
        (Capabilities::DELETE, "delete"),
        (Capabilities::LIST, "list"),
        (Capabilities::SUDO, "sudo"),
        (Capabilities::DENY, "deny"),
        (Capabilities::ROOT, "root"),
    ];

    /// The empty set.
    pub const fn empty() -> Capabilities {
        Capabilities(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every capability of `other` is in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when `self` and `other` share a capability.
    pub const fn intersects(self, other: Capabilities) -> bool {
        self.0 & other.0 != 0
    }

    /// The capability named `name` (`"read"`, `"deny"`, ...), if it exists.
    pub fn from_name(name: &str) -> Option<Capabilities> {
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| *c)
    }

    /// The union of the named capabilities. Names are case-sensitive, as in Vault. No
    /// normalisation is done here: a policy rule collapses a set containing `deny` to `deny`.
    pub fn from_names(names: &[&str]) -> Result<Capabilities, PolicyError> {
        let mut caps = Capabilities::empty();
        for name in names {
            caps |=
                Capabilities::from_name(name).ok_or_else(|| PolicyError::UnknownCapability {
                    capability: (*name).to_owned(),
                    path: None,
                })?;
        }
        Ok(caps)
    }

    /// The names of the capabilities in the set, in Vault's canonical order
    /// (create, read, update, patch, delete, list, sudo, deny, root).
    pub fn names(&self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .map(|(_, n)| *n)
            .collect()
    }

    /// The capability an operation needs.
    pub const fn for_operation(op: Operation) -> Capabilities {
        match op {
            Operation::Read => Capabilities::READ,
            Operation::Create => Capabilities::CREATE,
            Operation::Update => Capabilities::UPDATE,
            Operation::Patch => Capabilities::PATCH,
            Operation::Delete => Capabilities::DELETE,
            Operation::List => Capabilities::LIST,
        }
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Capabilities) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Capabilities {
    type Output = Capabilities;
    fn bitand(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 & rhs.0)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

// ------------------------------------------------------------------------------------------------
// Policy and rules
// ------------------------------------------------------------------------------------------------

/// The rule of one path pattern (all blocks of that pattern in a policy, merged).
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The pattern as written, leading `/` removed, trailing `*` kept.
    pub path: String,
    /// Granted capabilities; exactly [`Capabilities::DENY`] for a deny rule.
    pub capabilities: Capabilities,
    /// Lower-cased parameter names that must be present.
    pub required_parameters: Vec<String>,
    /// Lower-cased parameter name → allowed values (`[]` = any value; `"*"` = any parameter).
    pub allowed_parameters: BTreeMap<String, Vec<Value>>,
    /// Lower-cased parameter name → denied values (`[]` = any value; `"*"` = every parameter).
    pub denied_parameters: BTreeMap<String, Vec<Value>>,
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
}

impl PathRule {
    /// True for an explicit `deny` rule.
    pub fn is_deny(&self) -> bool {
        self.capabilities.contains(Capabilities::DENY)
    }

    fn deny_only(&mut self) {
        self.capabilities = Capabilities::DENY;
        self.required_parameters.clear();
        self.allowed_parameters.clear();
        self.denied_parameters.clear();
        self.min_wrapping_ttl = None;
        self.max_wrapping_ttl = None;
    }

    /// Merges another rule for the same pattern into this one, with Vault's semantics.
    fn merge(&mut self, other: &PathRule) {
        if self.is_deny() {
            return;
        }
        if other.is_deny() {
            self.deny_only();
            return;
        }
        self.capabilities |= other.capabilities;
        self.min_wrapping_ttl = min_specified(self.min_wrapping_ttl, other.min_wrapping_ttl);
        self.max_wrapping_ttl = min_specified(self.max_wrapping_ttl, other.max_wrapping_ttl);
        merge_param_map(&mut self.allowed_parameters, &other.allowed_parameters);
        merge_param_map(&mut self.denied_parameters, &other.denied_parameters);
        for p in &other.required_parameters {
            if !self.required_parameters.contains(p) {
                self.required_parameters.push(p.clone());
            }
        }
    }
}

fn min_specified(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Vault's merge of two parameter maps: values are appended on a name conflict, and an empty
/// list ("any value") absorbs every other list.
fn merge_param_map(into: &mut BTreeMap<String, Vec<Value>>, from: &BTreeMap<String, Vec<Value>>) {
    for (name, values) in from {
        match into.get_mut(name) {
            None => {
                into.insert(name.clone(), values.clone());
            }
            Some(existing) => {
                if values.is_empty() || existing.is_empty() {
                    existing.clear();
                } else {
                    existing.extend(values.iter().cloned());
                }
            }
        }
    }
}

/// A parsed ACL policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    rules: Vec<PathRule>,
}

impl Policy {
    /// The rules, one per distinct pattern, in order of first appearance.
    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }

    /// The merged rule for `pattern` exactly as written in the policy (leading `/` ignored).
    pub fn rule(&self, pattern: &str) -> Option<&PathRule> {
        let pattern = pattern.strip_prefix('/').unwrap_or(pattern);
        self.rules.iter().find(|r| r.path == pattern)
    }
}

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

/// The text of the built-in `default` policy: what every ordinary token may do to and about
/// itself (look itself up, renew and revoke itself, ask its capabilities, use its cubbyhole,
/// response wrapping, hashing, lease lookup and renewal).
pub fn default_policy_text() -> &'static str {
    DEFAULT_POLICY
}

const DEFAULT_POLICY: &str = r#"# Coffer's built-in "default" policy. It may be edited but not deleted.

# A token may read its own properties...
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# ...extend its own lifetime...
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# ...and revoke itself.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# A token may ask which capabilities it has on a path.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# The UI reads the token's combined ACL from here.
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# Renew a lease given its lease_id (legacy and current endpoints).
path "sys/renew" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}

# Look up a lease's metadata; the lease id must already be known.
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Every token owns a private cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap a value, inspect a wrapping token, unwrap it.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# General-purpose hashing helper.
path "sys/tools/hash" {
  capabilities = ["update"]
}
path "sys/tools/hash/*" {
  capabilities = ["update"]
}

# Check the status of a control-group request whose accessor the caller holds.
path "sys/control-group/request" {
  capabilities = ["update"]
}

# Authorization endpoint of identity OIDC providers.
path "identity/oidc/provider/+/authorize" {
  capabilities = ["read", "update"]
}
"#;

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

// ------------------------------------------------------------------------------------------------
// Compiled ACL
// ------------------------------------------------------------------------------------------------

/// The outcome of [`Acl::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclDecision {
    pub allowed: bool,
    /// The request may use sudo-protected paths: the matched rule grants `sudo`, or the ACL is
    /// root. Always false when `allowed` is false.
    pub root_privs: bool,
    /// Why the request was denied (for logs and audit). Names parameters but never contains
    /// their values.
    pub reason: Option<String>,
}

impl AclDecision {
    fn allow(root_privs: bool) -> AclDecision {
        AclDecision {
            allowed: true,
            root_privs,
            reason: None,
        }
    }

    fn deny(reason: impl Into<String>) -> AclDecision {
        AclDecision {
            allowed: false,
            root_privs: false,
            reason: Some(reason.into()),
        }
    }
}

/// The merged, compiled permissions of one pattern.
#[derive(Debug)]
struct Perms {
    caps: Capabilities,
    required: Vec<Box<str>>,
    allowed: HashMap<Box<str>, Vec<Value>>,
    denied: HashMap<Box<str>, Vec<Value>>,
    min_wrap: Option<Duration>,
    max_wrap: Option<Duration>,
}

impl Perms {
    fn from_rule(rule: PathRule) -> Perms {
        Perms {
            caps: rule.capabilities,
            required: rule
                .required_parameters
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            allowed: rule
                .allowed_parameters
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
            denied: rule
                .denied_parameters
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
            min_wrap: rule.min_wrapping_ttl,
            max_wrap: rule.max_wrapping_ttl,
        }
    }

    fn decide(
        &self,
        op: Operation,
        data: Option<&Map<String, Value>>,
        wrap_ttl: Option<Duration>,
    ) -> AclDecision {
        if self.caps.contains(Capabilities::DENY) {
            return AclDecision::deny("permission denied: explicitly denied by policy");
        }
        if !self.caps.contains(Capabilities::for_operation(op)) {
            return AclDecision::deny(format!(
                "permission denied: no policy grants {:?} on this path",
                op.as_str()
            ));
        }
        if let Some(max) = self.max_wrap {
            if wrap_ttl.is_none_or(|t| t > max) {
                return AclDecision::deny(format!(
                    "permission denied: the response must be wrapped with a TTL of at most {}s",
                    max.as_secs()
                ));
            }
        }
        if let Some(min) = self.min_wrap {
            if wrap_ttl.is_none_or(|t| t < min) {
                return AclDecision::deny(format!(
                    "permission denied: the response must be wrapped with a TTL of at least {}s",
                    min.as_secs()
                ));
            }
        }
        if matches!(op, Operation::Create | Operation::Update | Operation::Patch) {
            if let Err(reason) = self.check_parameters(data) {
                return AclDecision::deny(reason);
            }
        }
        AclDecision::allow(self.caps.contains(Capabilities::SUDO))
    }

    fn check_parameters(&self, data: Option<&Map<String, Value>>) -> Result<(), String> {
        for name in &self.required {
            if !data.is_some_and(|d| d.contains_key(&**name)) {
                return Err(format!(
                    "permission denied: missing required parameter {name:?}"
                ));
            }
        }
        let Some(data) = data.filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        if !self.denied.is_empty() {
            if self.denied.contains_key("*") {
                return Err("permission denied: all parameters are denied on this path".to_owned());
            }
            for (name, value) in data {
                if let Some(list) = self.denied.get(&*lower(name)) {
                    if denied_value(value, list) {
                        return Err(format!(
                            "permission denied: parameter {name:?} is denied or has a denied value"
                        ));
                    }
                }
            }
        }
        if self.allowed.is_empty() {
            return Ok(());
        }
        let allow_all = self.allowed.contains_key("*");
        if allow_all && self.allowed.len() == 1 {
            return Ok(());
        }
        for (name, value) in data {
            match self.allowed.get(&*lower(name)) {
                None if allow_all => {}
                None => {
                    return Err(format!(
                        "permission denied: parameter {name:?} is not allowed"
                    ))
                }
                Some(list) => {
                    if !allowed_value(value, list) {
                        return Err(format!(
                            "permission denied: parameter {name:?} has a value that is not allowed"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Lower-cases a parameter name, allocating only when it has upper-case characters.
fn lower(name: &str) -> Cow<'_, str> {
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

fn allowed_value(value: &Value, list: &[Value]) -> bool {
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

fn denied_value(value: &Value, list: &[Value]) -> bool {
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

/// One segment of a `+` pattern.
#[derive(Debug)]
enum Segment {
    Any,
    Lit(Box<str>),
}

/// A pattern containing `+` segments.
#[derive(Debug)]
struct SegmentRule {
    /// The pattern without its trailing `*`.
    pattern: Box<str>,
    segments: Vec<Segment>,
    is_prefix: bool,
    first_wildcard: usize,
    wildcards: usize,
    perms: Perms,
}

impl SegmentRule {
    fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        let last = self.segments.len().saturating_sub(1);
        for (i, segment) in self.segments.iter().enumerate() {
            let Some(part) = parts.next() else {
                return false;
            };
            match segment {
                Segment::Any => {}
                Segment::Lit(lit) => {
                    let ok = if self.is_prefix && i == last {
                        part.starts_with(&**lit)
                    } else {
                        part == &**lit
                    };
                    if !ok {
                        return false;
                    }
                }
            }
        }
        self.is_prefix || parts.next().is_none()
    }
}

/// A matching non-exact rule, ranked with Vault's priority order.
#[derive(Clone, Copy)]
struct Candidate<'a> {
    first_wildcard: usize,
    is_prefix: bool,
    wildcards: usize,
    pattern: &'a str,
    perms: &'a Perms,
}

impl Candidate<'_> {
    /// True when `self` has priority over `other`.
    fn outranks(&self, other: &Candidate<'_>) -> bool {
        if self.first_wildcard != other.first_wildcard {
            return self.first_wildcard > other.first_wildcard;
        }
        if self.is_prefix != other.is_prefix {
            return !self.is_prefix;
        }
        if self.wildcards != other.wildcards {
            return self.wildcards < other.wildcards;
        }
        if self.pattern.len() != other.pattern.len() {
            return self.pattern.len() > other.pattern.len();
        }
        self.pattern > other.pattern
    }
}

/// The compiled union of a token's policies. Build it once per policy set and share it.
pub struct Acl {
    root: bool,
    exact: HashMap<Box<str>, Perms>,
    /// Prefix rules keyed by the pattern without its trailing `*`.
    prefix: HashMap<Box<str>, Perms>,
    /// The distinct lengths of the keys of `prefix`, longest first.
    prefix_lens: Vec<usize>,
    segment: Vec<SegmentRule>,
}

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acl")
            .field("root", &self.root)
            .field("exact", &self.exact.len())
            .field("prefix", &self.prefix.len())
            .field("segment", &self.segment.len())
            .finish()
    }
}

impl Acl {
    /// Compiles several policies into one ACL. Rules for the same pattern are merged (see the
    /// module documentation). A policy *named* "root" gets no special power here: root tokens
    /// use [`Acl::root`].
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        let mut order: Vec<String> = Vec::new();
        let mut merged: HashMap<String, PathRule> = HashMap::new();
        for policy in policies {
            for rule in policy.rules() {
                match merged.get_mut(&rule.path) {
                    Some(existing) => existing.merge(rule),
                    None => {
                        order.push(rule.path.clone());
                        merged.insert(rule.path.clone(), rule.clone());
                    }
                }
            }
        }

        let mut acl = Acl {
            root: false,
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lens: Vec::new(),
            segment: Vec::new(),
        };
        for pattern in order {
            let Some(rule) = merged.remove(&pattern) else {
                continue;
            };
            let (body, is_prefix) = match pattern.strip_suffix('*') {
                Some(body) => (body, true),
                None => (pattern.as_str(), false),
            };
            let has_plus = body.split('/').any(|s| s == "+");
            if has_plus {
                let mut segments = Vec::new();
                let mut first_wildcard = None;
                let mut wildcards = 0;
                let mut offset = 0;
                for seg in body.split('/') {
                    if seg == "+" {
                        wildcards += 1;
                        first_wildcard.get_or_insert(offset);
                        segments.push(Segment::Any);
                    } else {
                        segments.push(Segment::Lit(seg.into()));
                    }
                    offset += seg.len() + 1;
                }
                acl.segment.push(SegmentRule {
                    pattern: body.into(),
                    segments,
                    is_prefix,
                    first_wildcard: first_wildcard.unwrap_or(body.len()),
                    wildcards,
                    perms: Perms::from_rule(rule),
                });
            } else if is_prefix {
                acl.prefix.insert(body.into(), Perms::from_rule(rule));
            } else {
                acl.exact.insert(body.into(), Perms::from_rule(rule));
            }
        }
        let mut lens: Vec<usize> = acl.prefix.keys().map(|k| k.len()).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        acl.prefix_lens = lens;
        acl
    }

    /// The root ACL: everything is allowed, sudo included.
    pub fn root() -> Acl {
        Acl {
            root: true,
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lens: Vec::new(),
            segment: Vec::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// What `sys/capabilities` reports for `path`: `["root"]` for the root ACL, `["deny"]`
    /// when nothing (or an explicit deny) applies, otherwise the granted capabilities sorted
    /// alphabetically, as Vault returns them. Like Vault, the lookup uses list semantics (a
    /// trailing `/` may be dropped to find a rule).
    pub fn capabilities(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        let path = path.trim_start_matches('/');
        let caps = self
            .find(path, path.strip_suffix('/'))
            .map(|p| p.caps)
            .unwrap_or_default();
        if caps.is_empty() || caps.contains(Capabilities::DENY) {
            return vec!["deny"];
        }
        let mut names = caps.names();
        names.sort_unstable();
        names
    }

    /// The effective capabilities on `path`, as a set (empty when nothing matches).
    pub fn capability_set(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ROOT;
        }
        let path = path.trim_start_matches('/');
        self.find(path, path.strip_suffix('/'))
            .map(|p| p.caps)
            .unwrap_or_default()
    }

    /// Checks a request that is not response-wrapped. `data` is the request body, checked
    /// against parameter constraints for create, update and patch.
    pub fn check(
        &self,
        op: Operation,
        path: &str,
        data: Option<&Map<String, Value>>,
    ) -> AclDecision {
        self.check_wrapped(op, path, data, None)
    }

    /// Like [`Acl::check`], for a request whose response will be wrapped with `wrap_ttl`
    /// (`None` when not wrapped); needed by rules with `min_wrapping_ttl`/`max_wrapping_ttl`.
    pub fn check_wrapped(
        &self,
        op: Operation,
        path: &str,
        data: Option<&Map<String, Value>>,
        wrap_ttl: Option<Duration>,
    ) -> AclDecision {
        if self.root {
            return AclDecision::allow(true);
        }
        let path = path.trim_start_matches('/');
        let with_slash: String;
        let perms = if op == Operation::List {
            // A listing of "a/b" and of "a/b/" is the same request: check it as "a/b/", falling
            // back to "a/b".
            match path.strip_suffix('/') {
                Some(trimmed) => self.find(path, Some(trimmed)),
                None => {
                    with_slash = format!("{path}/");
                    self.find(&with_slash, Some(path))
                }
            }
        } else {
            self.find(path, None)
        };
        match perms {
            Some(perms) => perms.decide(op, data, wrap_ttl),
            None => AclDecision::deny("permission denied: no policy rule matches this path"),
        }
    }

    /// The permissions deciding `path`: an exact rule for `path`, then for `alt`; otherwise the
    /// highest-priority glob rule matching either.
    fn find(&self, path: &str, alt: Option<&str>) -> Option<&Perms> {
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        if let Some(p) = alt.and_then(|a| self.exact.get(a)) {
            return Some(p);
        }
        let mut best = self.best_glob(path, None);
        if let Some(a) = alt {
            best = self.best_glob(a, best);
        }
        best.map(|c| c.perms)
    }

    fn best_glob<'a>(
        &'a self,
        path: &str,
        mut best: Option<Candidate<'a>>,
    ) -> Option<Candidate<'a>> {
        let mut consider = |c: Candidate<'a>| {
            if best.as_ref().is_none_or(|b| c.outranks(b)) {
                best = Some(c);
            }
        };
        for &len in &self.prefix_lens {
            let Some(head) = path.get(..len) else {
                continue;
            };
            if let Some((key, perms)) = self.prefix.get_key_value(head) {
                consider(Candidate {
                    first_wildcard: len,
                    is_prefix: true,
                    wildcards: 0,
                    pattern: key,
                    perms,
                });
                break;
            }
        }
        for rule in &self.segment {
            if rule.matches(path) {
                consider(Candidate {
                    first_wildcard: rule.first_wildcard,
                    is_prefix: rule.is_prefix,
                    wildcards: rule.wildcards,
                    pattern: &rule.pattern,
                    perms: &rule.perms,
                });
            }
        }
        best
    }
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn acl(texts: &[&str]) -> Acl {
        let policies: Vec<Arc<Policy>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| match parse_policy(&format!("p{i}"), t) {
                Ok(p) => Arc::new(p),
                Err(e) => panic!("policy {i} failed to parse: {e}"),
            })
            .collect();
        Acl::new(&policies)
    }

    fn data(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test data must be an object"),
        }
    }

    fn allowed(acl: &Acl, op: Operation, path: &str) -> bool {
        acl.check(op, path, None).allowed
    }

    fn err(text: &str) -> String {
        match parse_policy("bad", text) {
            Ok(p) => panic!("expected an error, parsed {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    use Operation::{Create, Delete, List, Patch, Read, Update};

    // --- Capabilities ---------------------------------------------------------------------

    #[test]
    fn capability_names_round_trip_in_vault_order() {
        let all = [
            "root", "deny", "sudo", "list", "delete", "patch", "update", "read", "create",
        ];
        let caps = Capabilities::from_names(&all).unwrap();
        assert_eq!(
            caps.names(),
            vec!["create", "read", "update", "patch", "delete", "list", "sudo", "deny", "root"]
        );
        assert_eq!(
            Capabilities::from_names(&["read", "list"]).unwrap(),
            Capabilities::READ | Capabilities::LIST
        );
        assert!(Capabilities::from_names(&[]).unwrap().is_empty());
        let e = Capabilities::from_names(&["read", "xyz"]).unwrap_err();
        assert_eq!(e.to_string(), "unknown capability \"xyz\"");
        assert!(
            Capabilities::from_names(&["Read"]).is_err(),
            "names are case-sensitive"
        );
        assert_eq!(
            format!("{:?}", Capabilities::READ | Capabilities::SUDO),
            "{\"read\", \"sudo\"}"
        );
    }

    // --- Parsing --------------------------------------------------------------------------

    const HCL_SAMPLE: &str = r#"
        # comment
        path "secret/*" {
          capabilities = ["read", "list"]
        }
        path "secret/foo" {
          capabilities = ["create", "update"]
          required_parameters = ["Bar"]
          allowed_parameters = {
            "bar" = ["zip", "zap*"]
            "*"   = []
          }
          denied_parameters = {
            "secret" = []
          }
          min_wrapping_ttl = "1m"
          max_wrapping_ttl = 3600
        }
        path "/secret/super-secret" {
          capabilities = ["deny"]
        }
    "#;

    const JSON_SAMPLE: &str = r#"{
        "path": {
            "secret/*": {"capabilities": ["read", "list"]},
            "secret/foo": {
                "capabilities": ["create", "update"],
                "required_parameters": ["Bar"],
                "allowed_parameters": {"bar": ["zip", "zap*"], "*": []},
                "denied_parameters": {"secret": []},
                "min_wrapping_ttl": "1m",
                "max_wrapping_ttl": 3600
            },
            "/secret/super-secret": {"capabilities": ["deny"]}
        }
    }"#;

    #[test]
    fn hcl_and_json_parse_to_the_same_policy() {
        let h = parse_policy("p", HCL_SAMPLE).unwrap();
        let j = parse_policy("p", JSON_SAMPLE).unwrap();
        assert_eq!(h, j);
        assert_eq!(h.rules().len(), 3);
        let foo = h.rule("secret/foo").unwrap();
        assert_eq!(
            foo.capabilities,
            Capabilities::CREATE | Capabilities::UPDATE
        );
        assert_eq!(foo.required_parameters, vec!["bar"]);
        assert_eq!(
            foo.allowed_parameters["bar"],
            vec![json!("zip"), json!("zap*")]
        );
        assert!(foo.allowed_parameters["*"].is_empty());
        assert_eq!(foo.min_wrapping_ttl, Some(Duration::from_secs(60)));
        assert_eq!(foo.max_wrapping_ttl, Some(Duration::from_secs(3600)));
        assert!(h.rule("secret/super-secret").unwrap().is_deny());
    }

    #[test]
    fn repeated_blocks_merge_in_hcl_and_json() {
        let h = parse_policy(
            "p",
            r#"
            path "a/b" { capabilities = ["read"] }
            path "a/b" { capabilities = ["list"] }
            path "a/c" { capabilities = ["read"] }
            path "a/c" { capabilities = ["deny"] }
            path "a/c" { capabilities = ["update"] }
            "#,
        )
        .unwrap();
        assert_eq!(h.rules().len(), 2);
        assert_eq!(
            h.rule("a/b").unwrap().capabilities,
            Capabilities::READ | Capabilities::LIST
        );
        assert_eq!(h.rule("a/c").unwrap().capabilities, Capabilities::DENY);

        // Duplicate keys in a JSON object are kept and merged, not silently dropped.
        let j = parse_policy(
            "p",
            r#"{"path": {"a/c": {"capabilities": ["deny"]}, "a/c": {"capabilities": ["read"]},
                         "a/b": {"capabilities": ["read"]}, "a/b": {"capabilities": ["list"]}}}"#,
        )
        .unwrap();
        assert_eq!(j.rule("a/c").unwrap().capabilities, Capabilities::DENY);
        assert_eq!(
            j.rule("a/b").unwrap().capabilities,
            Capabilities::READ | Capabilities::LIST
        );
        // HCL's JSON dialect for repeated blocks: a list of bodies, or a list of path objects.
        let l = parse_policy(
            "p",
            r#"{"path": [{"a/b": {"capabilities": ["read"]}}, {"a/b": [{"capabilities": ["list"]}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            l.rule("a/b").unwrap().capabilities,
            Capabilities::READ | Capabilities::LIST
        );
    }

    #[test]
    fn repeated_blocks_merge_parameters_like_vault() {
        let p = parse_policy(
            "p",
            r#"
            path "x" {
              capabilities = ["update"]
              allowed_parameters = { "a" = ["1"], "b" = ["1"] }
              required_parameters = ["r1"]
              max_wrapping_ttl = "1h"
            }
            path "x" {
              capabilities = ["create"]
              allowed_parameters = { "a" = ["2"], "b" = [], "c" = ["3"] }
              required_parameters = ["r2", "r1"]
              max_wrapping_ttl = "10m"
              min_wrapping_ttl = "1m"
            }
            "#,
        )
        .unwrap();
        let r = p.rule("x").unwrap();
        assert_eq!(r.capabilities, Capabilities::CREATE | Capabilities::UPDATE);
        assert_eq!(r.allowed_parameters["a"], vec![json!("1"), json!("2")]);
        assert!(
            r.allowed_parameters["b"].is_empty(),
            "[] absorbs other lists"
        );
        assert_eq!(r.allowed_parameters["c"], vec![json!("3")]);
        assert_eq!(r.required_parameters, vec!["r1", "r2"]);
        assert_eq!(r.max_wrapping_ttl, Some(Duration::from_secs(600)));
        assert_eq!(r.min_wrapping_ttl, Some(Duration::from_secs(60)));
    }

    #[test]
    fn block_syntax_for_parameter_maps_and_path_attribute_are_accepted() {
        let a = parse_policy(
            "p",
            r#"
            path "x" {
              capabilities = ["update"]
              allowed_parameters {
                foo = ["bar"]
              }
            }
            "#,
        )
        .unwrap();
        let b = parse_policy(
            "p",
            r#"path = { "x" = { capabilities = ["update"], allowed_parameters = { foo = ["bar"] } } }"#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.rule("x").unwrap().allowed_parameters["foo"],
            vec![json!("bar")]
        );
    }

    #[test]
    fn policy_shorthand_maps_to_capabilities() {
        let p = parse_policy(
            "p",
            r#"
            path "r" { policy = "read" }
            path "w" { policy = "write" }
            path "s" { policy = "sudo" }
            path "d" {
              policy = "deny"
              capabilities = ["read"]
            }
            path "c" {
              policy = "read"
              capabilities = ["create"]
            }
            "#,
        )
        .unwrap();
        let caps = |path: &str| p.rule(path).unwrap().capabilities.names();
        assert_eq!(caps("r"), vec!["read", "list"]);
        assert_eq!(
            caps("w"),
            vec!["create", "read", "update", "delete", "list"]
        );
        assert_eq!(
            caps("s"),
            vec!["create", "read", "update", "delete", "list", "sudo"]
        );
        assert_eq!(caps("d"), vec!["deny"]);
        assert_eq!(caps("c"), vec!["create", "read", "list"]);
    }

    #[test]
    fn empty_and_trivial_policies_are_allowed() {
        for text in [
            "",
            "   \n# only a comment\n",
            "{}",
            r#"{"path": {}}"#,
            r#"name = "x""#,
        ] {
            let p = parse_policy("empty", text).unwrap();
            assert!(p.rules().is_empty(), "{text:?}");
        }
        let p = parse_policy("p", r#"path "x" {}"#).unwrap();
        assert!(p.rule("x").unwrap().capabilities.is_empty());
        let a = Acl::new(&[Arc::new(p)]);
        assert_eq!(a.capabilities("x"), vec!["deny"]);
        assert!(!allowed(&a, Read, "x"));
    }

    #[test]
    fn bad_policies_are_rejected_with_clear_messages() {
        let e = err(r#"path "bar" { capabilities = ["read", "xyz"] }"#);
        assert_eq!(e, "unknown capability \"xyz\" in path \"bar\"");
        let e = err(r#"path "bar" { foo = 1 }"#);
        assert_eq!(e, "unknown key \"foo\" in path \"bar\"");
        let e = err(r#"paths "bar" {}"#);
        assert_eq!(e, "unknown key \"paths\"");
        let e = err(r#"{"path": {"bar": {"capabilites": ["read"]}}}"#);
        assert_eq!(e, "unknown key \"capabilites\" in path \"bar\"");
        let e = err(r#"{"paths": {}}"#);
        assert_eq!(e, "unknown key \"paths\"");
        let e = err(r#"path "bar" { capabilities = ["root"] }"#);
        assert!(e.contains("\"root\" capability cannot be granted"), "{e}");
        let e = err(r#"path "bar" { capabilities = "read" }"#);
        assert!(e.contains("must be a list of strings"), "{e}");
        let e = err(r#"path "bar" { capabilities = [1] }"#);
        assert!(
            e.contains("must be a list of strings, found a number"),
            "{e}"
        );
        let e = err(r#"path "bar" { policy = "admin" }"#);
        assert!(e.contains("invalid policy \"admin\""), "{e}");
        let e = err(r#"path "bar" {"#);
        assert!(e.starts_with("failed to parse policy HCL: "), "{e}");
        let e = err(r#"{"path": "#);
        assert!(e.starts_with("failed to parse policy JSON: "), "{e}");
        let e = err(r#"path "a/+*" { capabilities = ["read"] }"#);
        assert!(e.contains("'+*' is forbidden"), "{e}");
        let e = err(r#"path "a/*/b" { capabilities = ["read"] }"#);
        assert!(
            e.contains("'*' is only allowed as the last character"),
            "{e}"
        );
        let e = err("path \"x\" {\n capabilities = [\"read\"]\n capabilities = [\"list\"]\n}");
        assert!(e.contains("redefined attribute"), "{e}");
        let e = err(r#"{"path": {"x": {"capabilities": ["read"], "capabilities": ["list"]}}}"#);
        assert_eq!(e, "path \"x\": duplicate key \"capabilities\"");
        let e = err(r#"path "x" { allowed_parameters = { "a*" = [] } }"#);
        assert!(e.contains("cannot contain a wildcard"), "{e}");
        let e = err(r#"path "x" { allowed_parameters = { "a" = "b" } }"#);
        assert!(e.contains("must be a list"), "{e}");
        let e = err(r#"path "x" { required_parameters = ["*"] }"#);
        assert!(e.contains("wildcard not permitted"), "{e}");
        let e = err("path \"x\" {\n min_wrapping_ttl = \"10m\"\n max_wrapping_ttl = \"1m\"\n}");
        assert!(
            e.contains("max_wrapping_ttl cannot be less than min_wrapping_ttl"),
            "{e}"
        );
        let e = err(r#"path "x" { max_wrapping_ttl = "soon" }"#);
        assert!(e.contains("invalid duration \"soon\""), "{e}");
        let e = err(r#"path "x" { control_group = {} }"#);
        assert!(e.contains("not supported by Coffer"), "{e}");
        let e =
            err(r#"path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }"#);
        assert!(e.contains("templating"), "{e}");
        let e = err(r#"path "x" { capabilities = [var.x] }"#);
        assert!(e.contains("only literal values"), "{e}");
        let e = err(r#"path "x" { comment = "${foo}" }"#);
        assert!(e.contains("templates"), "{e}");
        let e = err(r#"path "a" "b" {}"#);
        assert!(e.contains("exactly one label"), "{e}");
        let e = err("[1]");
        assert!(e.starts_with("failed to parse policy HCL"), "{e}");
        let e = err(r#"{"path": {"x": 1}}"#);
        assert_eq!(e, "path \"x\": expected an object, found a number");
        let deep = format!(
            "path \"x\" {{ comment = {}1{} }}",
            "[".repeat(500),
            "]".repeat(500)
        );
        assert!(err(&deep).contains("nested more than"));
        let deep_json = format!(
            "{{\"path\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(err(&deep_json).contains("JSON"));
        let long = format!("path \"x\" {{ comment = {}true }}", "!".repeat(100_000));
        assert!(
            err(&long).len() < 2 * MAX_MESSAGE,
            "parser messages are bounded"
        );
        let deep_hcl = "[".repeat(100_000);
        assert!(err(&deep_hcl).contains("nested more than"));
    }

    #[test]
    fn durations_follow_vault_syntax() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("h").is_err());
        let p = parse_policy("p", r#"path "x" { max_wrapping_ttl = 0 }"#).unwrap();
        assert_eq!(
            p.rule("x").unwrap().max_wrapping_ttl,
            None,
            "zero means unset"
        );
    }

    // --- Matching -------------------------------------------------------------------------

    #[test]
    fn exact_rule_beats_glob() {
        let a = acl(&[r#"
            path "secret/*"   { capabilities = ["read"] }
            path "secret/foo" { capabilities = ["update"] }
        "#]);
        assert!(allowed(&a, Read, "secret/bar"));
        assert!(!allowed(&a, Update, "secret/bar"));
        assert!(allowed(&a, Update, "secret/foo"));
        assert!(
            !allowed(&a, Read, "secret/foo"),
            "exact rule replaces the glob's grant"
        );
        assert!(!allowed(&a, Read, "secret"), "secret/* needs the slash");
        assert!(allowed(&a, Read, "secret/"));
        assert!(allowed(&a, Read, "/secret/bar"), "leading slash ignored");
    }

    #[test]
    fn star_is_a_string_prefix_and_longest_prefix_wins() {
        let a = acl(&[r#"
            path "secret/*"       { capabilities = ["read"] }
            path "secret/team*"   { capabilities = ["update"] }
            path "secret/team-a/*" { capabilities = ["delete"] }
            path "*"              { capabilities = ["list"] }
        "#]);
        assert!(allowed(&a, Read, "secret/x/y/z"));
        assert!(allowed(&a, Update, "secret/teams/x"));
        assert!(allowed(&a, Update, "secret/team"));
        assert!(!allowed(&a, Read, "secret/teams"));
        assert!(allowed(&a, Delete, "secret/team-a/k"));
        assert!(!allowed(&a, Update, "secret/team-a/k"));
        assert!(allowed(&a, Update, "secret/team-a"));
        assert!(allowed(&a, List, "other/"));
        assert!(allowed(&a, List, "anything"));
        assert!(!allowed(&a, Read, "other/x"));
    }

    #[test]
    fn plus_matches_exactly_one_segment() {
        let a = acl(&[r#"path "secret/+/teamb" { capabilities = ["read"] }"#]);
        assert!(allowed(&a, Read, "secret/foo/teamb"));
        assert!(!allowed(&a, Read, "secret/foo/bar/teamb"));
        assert!(!allowed(&a, Read, "secret/teamb"));
        assert!(!allowed(&a, Read, "secret/foo/teamb/x"));
        assert!(!allowed(&a, Read, "secret/foo/teambx"));
        assert!(
            allowed(&a, Read, "secret//teamb"),
            "an empty segment is a segment"
        );

        let b = acl(&[r#"
            path "+/data/*"         { capabilities = ["read"] }
            path "secret/+/team*"   { capabilities = ["update"] }
            path "+"                { capabilities = ["list"] }
            path "a/+/+/d"          { capabilities = ["delete"] }
            path "a+b/c"            { capabilities = ["patch"] }
        "#]);
        assert!(allowed(&b, Read, "kv/data/x/y"));
        assert!(!allowed(&b, Read, "kv/data"));
        assert!(allowed(&b, Update, "secret/x/team"));
        assert!(allowed(&b, Update, "secret/x/teams/deep/er"));
        assert!(!allowed(&b, Update, "secret/x/y/team"));
        assert!(allowed(&b, List, "anything"));
        assert!(!allowed(&b, List, "any/thing"));
        assert!(allowed(&b, Delete, "a/1/2/d"));
        assert!(!allowed(&b, Delete, "a/1/d"));
        assert!(allowed(&b, Patch, "a+b/c"), "+ inside a segment is literal");
        assert!(!allowed(&b, Patch, "axb/c"));
    }

    #[test]
    fn priority_matching_follows_vault_rules() {
        // 1. The later first wildcard wins.
        let a = acl(&[r#"
            path "secret/+/bar/*" { capabilities = ["read"] }
            path "secret/foo/+/*" { capabilities = ["update"] }
        "#]);
        assert!(allowed(&a, Update, "secret/foo/bar/x"));
        assert!(!allowed(&a, Read, "secret/foo/bar/x"));
        // A plain prefix whose '*' comes after a '+' beats it, and vice versa.
        let a = acl(&[r#"
            path "secret/foo/*"  { capabilities = ["read"] }
            path "secret/+/bar"  { capabilities = ["update"] }
        "#]);
        assert!(allowed(&a, Read, "secret/foo/bar"));
        assert!(!allowed(&a, Update, "secret/foo/bar"));
        assert!(allowed(&a, Update, "secret/baz/bar"));
        let a = acl(&[r#"
            path "secret/*"        { capabilities = ["read"] }
            path "secret/foo/+"    { capabilities = ["update"] }
        "#]);
        assert!(allowed(&a, Update, "secret/foo/x"));
        assert!(!allowed(&a, Read, "secret/foo/x"));

        // 2. Same first wildcard: not ending in '*' beats ending in '*'.
        let a = acl(&[r#"
            path "secret/+"  { capabilities = ["update"] }
            path "secret/*"  { capabilities = ["read"] }
            path "x/+/bar"   { capabilities = ["update"] }
            path "x/+/ba*"   { capabilities = ["read"] }
        "#]);
        assert!(allowed(&a, Update, "secret/foo"));
        assert!(!allowed(&a, Read, "secret/foo"));
        assert!(allowed(&a, Read, "secret/foo/bar"));
        assert!(allowed(&a, Update, "x/1/bar"));
        assert!(!allowed(&a, Read, "x/1/bar"));
        assert!(allowed(&a, Read, "x/1/bart"));

        // 3. Fewer '+' segments wins.
        let a = acl(&[r#"
            path "a/+/b/+" { capabilities = ["read"] }
            path "a/+/b/c" { capabilities = ["update"] }
        "#]);
        assert!(allowed(&a, Update, "a/x/b/c"));
        assert!(!allowed(&a, Read, "a/x/b/c"));
        assert!(allowed(&a, Read, "a/x/b/d"));

        // 4. Longer wins.
        let a = acl(&[r#"
            path "a/+/bar/b*"  { capabilities = ["read"] }
            path "a/+/bar/ba*" { capabilities = ["update"] }
        "#]);
        assert!(allowed(&a, Update, "a/x/bar/baz"));
        assert!(!allowed(&a, Read, "a/x/bar/baz"));
        assert!(allowed(&a, Read, "a/x/bar/bz"));

        // 5. Lexicographically greater wins ('a' > '+').
        let a = acl(&[r#"
            path "+/a/+" { capabilities = ["read"] }
            path "+/+/b" { capabilities = ["update"] }
        "#]);
        assert!(allowed(&a, Read, "x/a/b"));
        assert!(!allowed(&a, Update, "x/a/b"));
    }

    #[test]
    fn deny_wins_for_the_same_pattern_across_policies() {
        let a = acl(&[
            r#"path "secret/*" { capabilities = ["read", "list", "sudo"] }"#,
            r#"path "secret/*" { capabilities = ["deny"] }"#,
            r#"path "secret/*" { capabilities = ["update"] }"#,
        ]);
        for op in [Read, List, Update, Create, Delete, Patch] {
            let d = a.check(op, "secret/x", None);
            assert!(!d.allowed);
            assert!(!d.root_privs);
            assert_eq!(
                d.reason.as_deref(),
                Some("permission denied: explicitly denied by policy")
            );
        }
        assert_eq!(a.capabilities("secret/x"), vec!["deny"]);

        // Capabilities of the same pattern in different policies are united.
        let b = acl(&[
            r#"path "secret/*" { capabilities = ["read"] }"#,
            r#"path "secret/*" { capabilities = ["update"] }"#,
        ]);
        assert!(allowed(&b, Read, "secret/x") && allowed(&b, Update, "secret/x"));

        // A deny on a less specific pattern does not override a more specific grant (Vault).
        let c = acl(&[
            r#"path "secret/*" { capabilities = ["deny"] }"#,
            r#"path "secret/open" { capabilities = ["read"] }"#,
        ]);
        assert!(allowed(&c, Read, "secret/open"));
        assert!(!allowed(&c, Read, "secret/closed"));
        // And a more specific deny wins over a broader grant.
        let d = acl(&[
            r#"path "secret/*" { capabilities = ["read"] }"#,
            r#"path "secret/private/*" { capabilities = ["deny"] }"#,
        ]);
        assert!(!allowed(&d, Read, "secret/private/x"));
        assert!(!allowed(&d, List, "secret/private/"));
        assert!(allowed(&d, Read, "secret/public"));
    }

    #[test]
    fn list_matches_with_and_without_trailing_slash() {
        let exact_slash = acl(&[r#"path "secret/metadata/foo/" { capabilities = ["list"] }"#]);
        let exact_bare = acl(&[r#"path "secret/metadata/foo" { capabilities = ["list"] }"#]);
        let glob_child = acl(&[r#"path "secret/metadata/foo/*" { capabilities = ["list"] }"#]);
        let glob_parent = acl(&[r#"path "secret/metadata/*" { capabilities = ["list"] }"#]);
        let seg = acl(&[r#"path "+/metadata/foo" { capabilities = ["list"] }"#]);
        for a in [&exact_slash, &exact_bare, &glob_child, &glob_parent, &seg] {
            assert!(allowed(a, List, "secret/metadata/foo/"), "{a:?}");
            assert!(allowed(a, List, "secret/metadata/foo"), "{a:?}");
            assert!(!allowed(a, List, "secret/other/x/"), "{a:?}");
        }
        // The trailing-slash fallback is for list only.
        assert!(!exact_bare.check(Read, "secret/metadata/foo/", None).allowed);
        // A more specific deny under the listed directory applies to the listing.
        let a = acl(&[r#"
            path "secret/metadata/*"     { capabilities = ["list"] }
            path "secret/metadata/foo/*" { capabilities = ["deny"] }
        "#]);
        assert!(!allowed(&a, List, "secret/metadata/foo/"));
        assert!(allowed(&a, List, "secret/metadata/bar/"));
    }

    #[test]
    fn root_acl_allows_everything() {
        let r = Acl::root();
        assert!(r.is_root());
        let d = r.check(Delete, "sys/seal", None);
        assert_eq!(
            d,
            AclDecision {
                allowed: true,
                root_privs: true,
                reason: None
            }
        );
        assert_eq!(r.capabilities("anything"), vec!["root"]);
        assert_eq!(r.capability_set("x"), Capabilities::ROOT);
        // A policy merely *named* root is an ordinary policy.
        let p = parse_policy("root", "").unwrap();
        let a = Acl::new(&[Arc::new(p)]);
        assert!(!a.is_root());
        assert!(!allowed(&a, Read, "x"));
    }

    #[test]
    fn sudo_gives_root_privs() {
        let a = acl(&[r#"
            path "sys/audit/*" { capabilities = ["create", "update", "sudo"] }
            path "sys/mounts"  { capabilities = ["read"] }
        "#]);
        let d = a.check(Update, "sys/audit/file", None);
        assert!(d.allowed && d.root_privs);
        let d = a.check(Read, "sys/mounts", None);
        assert!(d.allowed && !d.root_privs);
        let d = a.check(Read, "sys/audit/file", None);
        assert!(!d.allowed && !d.root_privs);
        assert_eq!(
            d.reason.as_deref(),
            Some("permission denied: no policy grants \"read\" on this path")
        );
        let d = a.check(Read, "nowhere", None);
        assert_eq!(
            d.reason.as_deref(),
            Some("permission denied: no policy rule matches this path")
        );
    }

    #[test]
    fn capabilities_output_is_sorted_like_vault() {
        let a = acl(&[r#"
            path "secret/*" { capabilities = ["update", "sudo", "read", "create", "list", "delete", "patch"] }
            path "secret/ro" { capabilities = ["read"] }
            path "secret/metadata/" { capabilities = ["list"] }
        "#]);
        assert_eq!(
            a.capabilities("secret/x"),
            vec!["create", "delete", "list", "patch", "read", "sudo", "update"]
        );
        assert_eq!(a.capabilities("secret/ro"), vec!["read"]);
        assert_eq!(a.capabilities("other"), vec!["deny"]);
        assert_eq!(a.capabilities("/secret/ro"), vec!["read"]);
        assert_eq!(
            a.capabilities("secret/metadata"),
            a.capabilities("secret/x")
        );
        assert_eq!(a.capabilities("secret/metadata/"), vec!["list"]);
        assert_eq!(
            a.capability_set("secret/ro/"),
            Capabilities::READ,
            "capabilities use list semantics: the trailing slash may be dropped"
        );
    }

    #[test]
    fn default_policy_parses_and_grants_self_service() {
        let p = parse_policy(DEFAULT_POLICY_NAME, default_policy_text()).unwrap();
        assert_eq!(p.name, "default");
        let a = Acl::new(&[Arc::new(p)]);
        assert!(allowed(&a, Read, "auth/token/lookup-self"));
        assert!(allowed(&a, Update, "auth/token/renew-self"));
        assert!(allowed(&a, Update, "auth/token/revoke-self"));
        assert!(allowed(&a, Update, "sys/capabilities-self"));
        assert!(allowed(&a, Update, "sys/leases/lookup"));
        assert!(allowed(&a, Update, "sys/wrapping/unwrap"));
        assert!(allowed(&a, Update, "sys/tools/hash/sha2-256"));
        assert!(allowed(&a, Update, "sys/control-group/request"));
        assert!(allowed(&a, Create, "cubbyhole/mine"));
        assert!(allowed(&a, List, "cubbyhole/"));
        assert!(allowed(&a, Read, "identity/oidc/provider/p1/authorize"));
        assert!(!allowed(&a, Update, "auth/token/lookup-self"));
        assert!(!allowed(&a, Read, "secret/data/x"));
        assert!(!allowed(&a, Update, "sys/policies/acl/default"));
        assert!(!a.check(Read, "auth/token/lookup-self", None).root_privs);
    }

    // --- Parameter constraints --------------------------------------------------------------

    #[test]
    fn required_parameters() {
        let a = acl(&[r#"
            path "x" {
              capabilities = ["create", "update", "read"]
              required_parameters = ["Name", "ttl"]
            }
        "#]);
        let ok = data(json!({"name": "n", "ttl": 1, "extra": true}));
        assert!(a.check(Create, "x", Some(&ok)).allowed);
        let missing = data(json!({"name": "n"}));
        let d = a.check(Update, "x", Some(&missing));
        assert!(!d.allowed);
        assert_eq!(
            d.reason.as_deref(),
            Some("permission denied: missing required parameter \"ttl\"")
        );
        assert!(!a.check(Update, "x", None).allowed);
        assert!(
            a.check(Read, "x", None).allowed,
            "reads are not parameter-checked"
        );
    }

    #[test]
    fn denied_parameters() {
        let a = acl(&[r#"
            path "x" {
              capabilities = ["create", "update", "patch"]
              denied_parameters = {
                "secret" = []
                "env"    = ["prod", "*-live", "*danger*"]
                "n"      = [5, true]
              }
            }
            path "all" {
              capabilities = ["update"]
              denied_parameters = { "*" = [] }
            }
        "#]);
        let check = |v: Value| a.check(Update, "x", Some(&data(v))).allowed;
        assert!(check(json!({"other": 1})));
        assert!(!check(json!({"secret": "anything"})));
        assert!(
            !check(json!({"SECRET": "anything"})),
            "names are case-insensitive"
        );
        assert!(!check(json!({"env": "prod"})));
        assert!(check(json!({"env": "production"})));
        assert!(!check(json!({"env": "eu-live"})));
        assert!(!check(json!({"env": "so-danger-ous"})));
        assert!(
            !check(json!({"env": ["dev", "prod"]})),
            "any denied element denies"
        );
        assert!(
            !check(json!({"env": "dev, prod"})),
            "comma strings are split"
        );
        assert!(check(json!({"env": ["dev", "qa"]})));
        assert!(!check(json!({"n": 5})));
        assert!(!check(json!({"n": 5.0})), "numbers compare by value");
        assert!(!check(json!({"n": true})));
        assert!(check(json!({"n": 6})));
        assert!(check(json!({"n": "5"})), "a string is not the number 5");
        assert!(
            a.check(Update, "all", None).allowed,
            "no data, nothing to deny"
        );
        let d = a.check(Update, "all", Some(&data(json!({"a": 1}))));
        assert!(!d.allowed);
        let d = a.check(Patch, "x", Some(&data(json!({"secret": "hunter2-value"}))));
        let reason = d.reason.unwrap();
        assert!(reason.contains("\"secret\""), "{reason}");
        assert!(!reason.contains("hunter2"), "reasons never contain values");
    }

    #[test]
    fn allowed_parameters() {
        let a = acl(&[r#"
            path "x" {
              capabilities = ["create", "update"]
              allowed_parameters = {
                "color" = ["red", "blue*", "*green"]
                "size"  = []
                "count" = [1, 2]
              }
            }
            path "any" {
              capabilities = ["update"]
              allowed_parameters = { "*" = [] }
            }
            path "mixed" {
              capabilities = ["update"]
              allowed_parameters = { "*" = [], "color" = ["red"] }
              denied_parameters = { "color" = ["red"] }
            }
            path "star" {
              capabilities = ["update"]
              allowed_parameters = { "v" = ["*"] }
            }
        "#]);
        let check = |p: &str, v: Value| a.check(Update, p, Some(&data(v))).allowed;
        assert!(check("x", json!({"color": "red", "size": "huge"})));
        assert!(check("x", json!({"Color": "blueish"})));
        assert!(check("x", json!({"color": "lightgreen"})));
        assert!(!check("x", json!({"color": "purple"})));
        assert!(
            !check("x", json!({"color": "red", "shape": "round"})),
            "unlisted name"
        );
        assert!(
            check("x", json!({"color": ["red", "bluey"]})),
            "every element allowed"
        );
        assert!(!check("x", json!({"color": ["red", "pink"]})));
        assert!(check("x", json!({"color": "red, blue"})));
        assert!(!check("x", json!({"color": "red,pink"})));
        assert!(check("x", json!({"count": 2})));
        assert!(check("x", json!({"count": 2.0})));
        assert!(!check("x", json!({"count": 3})));
        assert!(check("x", json!({})), "empty data is allowed");
        assert!(a.check(Create, "x", None).allowed);
        assert!(check("any", json!({"whatever": [1, 2, 3]})));
        // '*' allows other names; listed names are still constrained; denied wins.
        assert!(check("mixed", json!({"other": 1})));
        assert!(
            !check("mixed", json!({"color": "red"})),
            "denied wins over allowed"
        );
        assert!(!check("mixed", json!({"color": "blue"})));
        // A lone "*" value is the literal string "*", as in Vault.
        assert!(check("star", json!({"v": "*"})));
        assert!(!check("star", json!({"v": "anything"})));
    }

    #[test]
    fn wrapping_ttls_require_wrapping() {
        let a = acl(&[r#"
            path "w" {
              capabilities = ["read"]
              min_wrapping_ttl = "1m"
              max_wrapping_ttl = "1h"
            }
        "#]);
        assert!(!a.check(Read, "w", None).allowed);
        let ttl = |s| {
            a.check_wrapped(Read, "w", None, Some(Duration::from_secs(s)))
                .allowed
        };
        assert!(ttl(60) && ttl(3600) && ttl(600));
        assert!(!ttl(59) && !ttl(3601));
    }

    #[test]
    fn acl_is_send_sync_and_policies_share() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Acl>();
        assert_send_sync::<Policy>();
        assert_send_sync::<AclDecision>();
        let p = Arc::new(parse_policy("p", r#"path "a/*" { capabilities = ["read"] }"#).unwrap());
        let a = Arc::new(Acl::new(&[p.clone(), p]));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let a = Arc::clone(&a);
                std::thread::spawn(move || a.check(Read, &format!("a/{i}"), None).allowed)
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        const POLICY: &str = r#"
            path "a/*"       { capabilities = ["read", "list"] }
            path "a/b"       { capabilities = ["update"] }
            path "a/+/c"     { capabilities = ["delete"] }
            path "+/b/*"     { capabilities = ["create"] }
            path "a/b/c/*"   { capabilities = ["deny"] }
            path "x+/y*"     { capabilities = ["patch"] }
        "#;

        proptest! {
            #[test]
            fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
                let _ = parse_policy("p", &text);
            }

            #[test]
            fn capabilities_agree_with_check(path in "[ab+xyc/é]{0,12}") {
                let a = acl(&[POLICY]);
                prop_assume!(!path.ends_with('/'));
                let caps = a.capabilities(&path);
                for op in [Read, Update, Delete, Create, Patch] {
                    prop_assert_eq!(
                        a.check(op, &path, None).allowed,
                        caps.contains(&op.as_str()),
                        "{} {}", op.as_str(), path
                    );
                }
            }
        }
    }
}
